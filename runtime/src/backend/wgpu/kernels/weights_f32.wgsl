// f32 weights at binding 2 (see weights.rs): weight(i, row, col) is element i.
@group(0) @binding(2) var<storage, read> wf: array<f32>;

fn weight(i: u32, row: u32, col: u32) -> f32 {
    return wf[i];
}
