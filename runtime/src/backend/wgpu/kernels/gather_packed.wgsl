// Gather along axis 0 of a packed constant table (embeddings; weights_packed.wgsl supplies
// binding 2 and weight()): y[j, i] = table[idx[j], i], negative indices counted from the end,
// out-of-range ones reported (index_check.wgsl).
// Params: `GatherParams` (gather.rs): the axis (0) length is the table's rows, inner its row length.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[P_N] { return; }
    let within = i % p[P_INNER];
    let k = checked_index(p[P_SITE], idx[(i / p[P_INNER]) % p[P_COUNT]], p[P_AXIS], p[P_LEN]);
    y[i] = weight(0u, k, within);
}
