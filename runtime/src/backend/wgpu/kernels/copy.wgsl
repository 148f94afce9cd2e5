// Strided copy of 32-bit words (any element type): for every index of a rank-6 shape,
// y[dst offset + Σ idx·dst stride] = x[src offset + Σ idx·src stride]. Source strides are
// signed (Slice with negative steps).
// Params: `CopyParams` (layout.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[P_N] { return; }
    // Negative source strides and the offset that makes up for them wrap back in u32.
    let o = broadcast_offsets(i, P_SHAPE, vec4<u32>(P_SRC_STRIDES, P_DST_STRIDES, P_DST_STRIDES, P_DST_STRIDES), 0);
    y[p[P_DST_OFFSET] + o.y] = x[p[P_SRC_OFFSET] + o.x];
}
