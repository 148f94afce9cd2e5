// 2-D transposed convolution (1-D with H = 1), one thread per output element, bias and an
// activation fused. Weights [C, M/group, KH, KW].
// p: 0 total, 1 C, 2 H, 3 W, 4 M, 5 OH, 6 OW, 7 KH, 8 KW, 9 stride h, 10 stride w, 11 pad top,
// 12 pad left, 13 dilation h, 14 dilation w, 15 group, 16 has bias, 17..20 activation.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
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
    let mg = m / p[15];
    let cg = c / p[15];
    let g = oc / mg;
    let ocg = oc % mg;
    var acc = 0.0;
    if p[16] != 0u { acc = bias[oc]; }
    for (var ic = 0u; ic < cg; ic++) {
        let cin = g * cg + ic;
        let xbase = (batch * c + cin) * h * wd;
        let wbase = (cin * mg + ocg) * kh * kw;
        for (var ky = 0u; ky < kh; ky++) {
            let ty = i32(oy + p[11]) - i32(ky * p[13]);
            if ty < 0 || ty % i32(p[9]) != 0 { continue; }
            let iy = ty / i32(p[9]);
            if iy >= i32(h) { continue; }
            for (var kx = 0u; kx < kw; kx++) {
                let tx = i32(ox + p[12]) - i32(kx * p[14]);
                if tx < 0 || tx % i32(p[10]) != 0 { continue; }
                let ix = tx / i32(p[10]);
                if ix >= i32(wd) { continue; }
                acc += x[xbase + u32(iy) * wd + u32(ix)] * w[wbase + ky * kw + kx];
            }
        }
    }
    y[i] = apply_activation(p[17], acc, bitcast<f32>(p[18]), bitcast<f32>(p[19]));
}
