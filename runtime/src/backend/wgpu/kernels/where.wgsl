// Where(cond, x, y) on 32-bit words with broadcasting.
// Params: `WhereParams` (logic.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> cond: array<u32>;
@group(0) @binding(2) var<storage, read> a: array<u32>;
@group(0) @binding(3) var<storage, read> b: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[P_N] { return; }
    let o = broadcast_offsets(i, P_SHAPE, vec4<u32>(P_COND_STRIDES, P_X_STRIDES, P_Y_STRIDES, P_Y_STRIDES), 0);
    y[i] = select(b[o.z], a[o.y], cond[o.x] != 0u);
}
