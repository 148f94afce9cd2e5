// Unary f32 ops: y[i] = f(x[i]). p: n, op, alpha bits, beta bits.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[0] { return; }
    y[i] = apply_unary(p[1], x[i], bitcast<f32>(p[2]), bitcast<f32>(p[3]));
}
