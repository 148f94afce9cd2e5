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
    var rem = i;
    var ia = 0u;
    var ib = 0u;
    for (var d = 5i; d >= 0; d--) {
        let k = u32(d);
        let idx = rem % p[2u + k];
        rem = rem / p[2u + k];
        ia += idx * p[8u + k];
        ib += idx * p[14u + k];
    }
    y[i] = apply_binary(p[1], a[ia], b[ib]);
}
