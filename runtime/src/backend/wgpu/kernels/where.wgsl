// Where(cond, x, y) on 32-bit words with broadcasting.
// p: 0 n, 1..7 out shape, 7..13 cond strides, 13..19 x strides, 19..25 y strides.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> cond: array<u32>;
@group(0) @binding(2) var<storage, read> a: array<u32>;
@group(0) @binding(3) var<storage, read> b: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[0] { return; }
    let o = broadcast_offsets(i, 1u, vec4<u32>(7u, 13u, 19u, 19u), 0);
    y[i] = select(b[o.z], a[o.y], cond[o.x] != 0u);
}
