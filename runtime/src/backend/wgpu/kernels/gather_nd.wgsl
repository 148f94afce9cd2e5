// GatherND with batch_dims = 0 on 32-bit words: each index tuple (k values) picks a slice of
// `inner` words; negative indices count from the end, out-of-range ones are reported
// (index_check.wgsl). Params: `GatherNdParams` (gather.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[P_N] { return; }
    let k = p[P_K];
    let inner = p[P_INNER];
    let tuple = i / inner;
    var off = 0u;
    for (var d = 0u; d < k; d++) {
        let len = p[P_SHAPE + d];
        off = off * len + checked_index(p[P_SITE], idx[tuple * k + d], d, len);
    }
    y[i] = x[off * inner + i % inner];
}
