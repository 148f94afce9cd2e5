// Gather along one axis of 32-bit words: y[o, j, i] = x[o, idx[j], i], negative indices
// counted from the end, out-of-range ones reported (index_check.wgsl).
// Params: `GatherParams` (gather.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[P_N] { return; }
    let len = p[P_LEN];
    let inner = p[P_INNER];
    let count = p[P_COUNT];
    let within = i % inner;
    let j = (i / inner) % count;
    let o = i / (inner * count);
    let k = checked_index(p[P_SITE], idx[j], p[P_AXIS], len);
    y[i] = x[(o * len + k) * inner + within];
}
