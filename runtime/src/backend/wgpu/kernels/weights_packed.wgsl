// Packed int8 / int4 weights at binding 2 (layout in weights.rs): weight(i, row, col) is
// q[row, col] · scale[row, col / block], sign-extended from the low bits of its word.
@group(0) @binding(2) var<storage, read> wq: array<u32>;

fn weight(i: u32, row: u32, col: u32) -> f32 {
    let bits = wq[0];
    let e = row * wq[1] + col;
    let per_word = 32u / bits;
    let word = wq[8u + e / per_word];
    let q = bitcast<i32>(word << (32u - bits - bits * (e % per_word))) >> (32u - bits);
    return f32(q) * bitcast<f32>(wq[wq[4] + row * wq[3] + col / wq[2]]);
}
