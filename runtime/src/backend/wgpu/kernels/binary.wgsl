// Broadcasting binary ops on f32: y[i] = f(a[ia], b[ib]).
// p: n, op, out shape[6], a strides[6], b strides[6] (dims left-padded to rank 6).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[0] { return; }
    let o = broadcast_offsets(i, 2u, vec4<u32>(8u, 14u, 14u, 14u), 0);
    y[i] = apply_binary(p[1], a[o.x], b[o.y]);
}
