// Per-channel affine map y = x * a[c] + b[c] (BatchNormalization at inference, folded at load).
// Params: `AffineParams` (batchnorm.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> ab: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[P_N] { return; }
    let c = (i / p[P_INNER]) % p[P_CHANNELS];
    y[i] = x[i] * ab[2u * c] + ab[2u * c + 1u];
}
