// Direct 2-D convolution (1-D convs run with H = 1), one thread per output element, with the
// bias and an activation fused. Weights [M, C/group, KH, KW] at binding 2 through weight()
// (weights_f32.wgsl, or weights_packed.wgsl: row = output channel, col = (ic, ky, kx)).
// p: 0 total, 1 C, 2 H, 3 W, 4 M, 5 OH, 6 OW, 7 KH, 8 KW, 9 stride h, 10 stride w, 11 pad top,
// 12 pad left, 13 dilation h, 14 dilation w, 15 group, 16 has bias, 17..20 activation.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[0] { return; }
    let c = p[1]; let h = p[2]; let wd = p[3]; let m = p[4]; let oh = p[5]; let ow = p[6];
    let kh = p[7]; let kw = p[8];
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let oc = (i / (ow * oh)) % m;
    let batch = i / (ow * oh * m);
    let cg = c / p[15];
    let g = oc / (m / p[15]);
    var acc = 0.0;
    if p[16] != 0u { acc = bias[oc]; }
    let iy0 = i32(oy * p[9]) - i32(p[11]);
    let ix0 = i32(ox * p[10]) - i32(p[12]);
    for (var ic = 0u; ic < cg; ic++) {
        let cin = g * cg + ic;
        let xbase = (batch * c + cin) * h * wd;
        let wbase = (oc * cg + ic) * kh * kw;
        for (var ky = 0u; ky < kh; ky++) {
            let iy = iy0 + i32(ky * p[13]);
            if iy < 0 || iy >= i32(h) { continue; }
            for (var kx = 0u; kx < kw; kx++) {
                let ix = ix0 + i32(kx * p[14]);
                if ix < 0 || ix >= i32(wd) { continue; }
                let wi = wbase + ky * kw + kx;
                acc += x[xbase + u32(iy) * wd + u32(ix)] * weight(wi, oc, wi - oc * cg * kh * kw);
            }
        }
    }
    y[i] = apply_activation(p[17], acc, bitcast<f32>(p[18]), bitcast<f32>(p[19]));
}
