enable f16;
// f16 weights at binding 2, read as f16 (adapter feature `shader-f16`). Layout as packed
// weights (weights.rs): an 8-word header, then the values row by row, two per word;
// weight(i, row, col) widens element (row, col) to f32. The padded column count is read from
// header word 5, which holds it as two f16 integers (low 11 bits, the rest): f16 elements 10, 11.
@group(0) @binding(2) var<storage, read> wh: array<f16>;

fn weight(i: u32, row: u32, col: u32) -> f32 {
    let cols = u32(wh[10]) + 2048u * u32(wh[11]);
    return f32(wh[16u + row * cols + col]);
}
