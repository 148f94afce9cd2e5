// Unary f32 ops: y[i] = f(x[i]). Params: `UnaryParams` (elementwise.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[P_N] { return; }
    y[i] = apply_unary(p[P_OP], x[i], bitcast<f32>(p[P_ALPHA]), bitcast<f32>(p[P_BETA]));
}
