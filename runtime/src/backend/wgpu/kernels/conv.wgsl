// Direct 2-D convolution (1-D convs run with H = 1), one thread per output element, with the
// bias and an activation fused. Weights [M, C/group, KH, KW] at binding 2 through weight()
// (weights_f32.wgsl, or weights_packed.wgsl: row = output channel, col = (ic, ky, kx)).
// Params: `ConvParams` (conv.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[P_TOTAL] { return; }
    let c = p[P_C]; let h = p[P_H]; let wd = p[P_W]; let m = p[P_M]; let oh = p[P_OH]; let ow = p[P_OW];
    let kh = p[P_KH]; let kw = p[P_KW];
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let oc = (i / (ow * oh)) % m;
    let batch = i / (ow * oh * m);
    let cg = c / p[P_GROUP];
    let g = oc / (m / p[P_GROUP]);
    var acc = 0.0;
    if p[P_HAS_BIAS] != 0u { acc = bias[oc]; }
    let iy0 = i32(oy * p[P_STRIDE_H]) - i32(p[P_PAD_TOP]);
    let ix0 = i32(ox * p[P_STRIDE_W]) - i32(p[P_PAD_LEFT]);
    for (var ic = 0u; ic < cg; ic++) {
        let cin = g * cg + ic;
        let xbase = (batch * c + cin) * h * wd;
        let wbase = (oc * cg + ic) * kh * kw;
        for (var ky = 0u; ky < kh; ky++) {
            let iy = iy0 + i32(ky * p[P_DILATION_H]);
            if iy < 0 || iy >= i32(h) { continue; }
            for (var kx = 0u; kx < kw; kx++) {
                let ix = ix0 + i32(kx * p[P_DILATION_W]);
                if ix < 0 || ix >= i32(wd) { continue; }
                let wi = wbase + ky * kw + kx;
                acc += x[xbase + u32(iy) * wd + u32(ix)] * weight(wi, oc, wi - oc * cg * kh * kw);
            }
        }
    }
    y[i] = apply_activation(p[P_ACTIVATION], acc, bitcast<f32>(p[P_ALPHA]), bitcast<f32>(p[P_BETA]));
}
