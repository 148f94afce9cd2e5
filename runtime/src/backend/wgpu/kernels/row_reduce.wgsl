// Combining one value per thread over a workgroup of 256, for the kernels that reduce a row
// together (appended to `softmax.wgsl` and `layernorm.wgsl` by `norm.rs`). Every thread of the
// workgroup must call it, in uniform control flow: it holds barriers.
var<workgroup> part: array<f32, 256>;

// `v` combined over the workgroup: the maximum when `take_max`, else the sum. Every thread gets it.
fn row_combine(t: u32, v: f32, take_max: bool) -> f32 {
    part[t] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if t < s {
            part[t] = select(part[t] + part[t + s], max(part[t], part[t + s]), take_max);
        }
        workgroupBarrier();
    }
    let all = part[0];
    workgroupBarrier();
    return all;
}
