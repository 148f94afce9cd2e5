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
    var rem = i;
    var src = i32(p[1]);
    var dst = p[2];
    for (var d = 5i; d >= 0; d--) {
        let k = u32(d);
        let idx = rem % p[3u + k];
        rem = rem / p[3u + k];
        src += i32(idx) * bitcast<i32>(p[9u + k]);
        dst += idx * p[15u + k];
    }
    y[dst] = x[u32(src)];
}
