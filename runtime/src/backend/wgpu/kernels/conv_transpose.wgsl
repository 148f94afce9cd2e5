// 2-D transposed convolution (1-D with H = 1), one thread per output element, bias and an
// activation fused. Weights [C, M/group, KH, KW].
// Params: `ConvParams` (conv.rs), as for Conv.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
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
    let mg = m / p[P_GROUP];
    let cg = c / p[P_GROUP];
    let g = oc / mg;
    let ocg = oc % mg;
    var acc = 0.0;
    if p[P_HAS_BIAS] != 0u { acc = bias[oc]; }
    for (var ic = 0u; ic < cg; ic++) {
        let cin = g * cg + ic;
        let xbase = (batch * c + cin) * h * wd;
        let wbase = (cin * mg + ocg) * kh * kw;
        for (var ky = 0u; ky < kh; ky++) {
            let ty = i32(oy + p[P_PAD_TOP]) - i32(ky * p[P_DILATION_H]);
            if ty < 0 || ty % i32(p[P_STRIDE_H]) != 0 { continue; }
            let iy = ty / i32(p[P_STRIDE_H]);
            if iy >= i32(h) { continue; }
            for (var kx = 0u; kx < kw; kx++) {
                let tx = i32(ox + p[P_PAD_LEFT]) - i32(kx * p[P_DILATION_W]);
                if tx < 0 || tx % i32(p[P_STRIDE_W]) != 0 { continue; }
                let ix = tx / i32(p[P_STRIDE_W]);
                if ix >= i32(wd) { continue; }
                acc += x[xbase + u32(iy) * wd + u32(ix)] * w[wbase + ky * kw + kx];
            }
        }
    }
    y[i] = apply_activation(p[P_ACTIVATION], acc, bitcast<f32>(p[P_ALPHA]), bitcast<f32>(p[P_BETA]));
}
