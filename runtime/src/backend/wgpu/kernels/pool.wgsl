// Max and average pooling over 2-D windows (1-D pools run with H = 1), one thread per output.
// p: 0 total, 1 H, 2 W, 3 OH, 4 OW, 5 KH, 6 KW, 7 stride h, 8 stride w, 9 pad top, 10 pad left,
// 11 dilation h, 12 dilation w, 13 op (0 max, 1 average), 14 count_include_pad,
// 15 padded end h (H + pad bottom), 16 padded end w.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[0] { return; }
    let h = p[1]; let w = p[2]; let oh = p[3]; let ow = p[4];
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let plane = i / (ow * oh);
    let base = plane * h * w;
    let iy0 = i32(oy * p[7]) - i32(p[9]);
    let ix0 = i32(ox * p[8]) - i32(p[10]);
    var best = -3.4028235e38;
    var sum = 0.0;
    var count = 0u;
    var padded = 0u;
    for (var ky = 0u; ky < p[5]; ky++) {
        let iy = iy0 + i32(ky * p[11]);
        for (var kx = 0u; kx < p[6]; kx++) {
            let ix = ix0 + i32(kx * p[12]);
            if iy < i32(p[15]) && ix < i32(p[16]) {
                padded += 1u;
            }
            if iy < 0 || iy >= i32(h) || ix < 0 || ix >= i32(w) { continue; }
            let v = x[base + u32(iy) * w + u32(ix)];
            best = max(best, v);
            sum += v;
            count += 1u;
        }
    }
    if p[13] == 0u {
        y[i] = best;
    } else if p[14] != 0u {
        y[i] = sum / f32(padded);
    } else {
        y[i] = sum / f32(max(count, 1u));
    }
}
