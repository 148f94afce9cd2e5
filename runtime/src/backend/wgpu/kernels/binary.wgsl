// Broadcasting binary ops on f32: y[i] = f(a[ia], b[ib]).
// Params: `BinaryParams` (elementwise.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[P_N] { return; }
    let o = broadcast_offsets(i, P_SHAPE, vec4<u32>(P_A_STRIDES, P_B_STRIDES, P_B_STRIDES, P_B_STRIDES), 0);
    y[i] = apply_binary(p[P_OP], a[o.x], b[o.y]);
}
