// Gather along axis 0 of a packed constant table (embeddings; weights_packed.wgsl supplies
// binding 2 and weight()): y[j, i] = table[idx[j], i], negative indices counted from the end,
// out-of-range ones reported (index_check.wgsl).
// p: 0 n, 1 rows, 2 row length, 3 index count, 4 check site, 5 axis (0).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[0] { return; }
    let within = i % p[2];
    let k = checked_index(p[4], idx[(i / p[2]) % p[3]], p[5], p[1]);
    y[i] = weight(0u, k, within);
}
