// Strided copy of 32-bit words (any element type): for every index of a rank-6 shape,
// y[dst offset + Σ idx·dst stride] = x[src offset + Σ idx·src stride]. Source strides are
// signed (Slice with negative steps).
// p: 0 n, 1 src offset, 2 dst offset, 3..9 shape, 9..15 src strides (i32 bits), 15..21 dst strides.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[0] { return; }
    // Negative source strides and the offset that makes up for them wrap back in u32.
    let o = broadcast_offsets(i, 3u, vec4<u32>(9u, 15u, 15u, 15u), 0);
    y[p[2] + o.y] = x[p[1] + o.x];
}
