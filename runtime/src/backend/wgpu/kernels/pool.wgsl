// Max and average pooling over 2-D windows (1-D pools run with H = 1), one thread per output.
// Params: `PoolParams` (pool.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[P_TOTAL] { return; }
    let h = p[P_H]; let w = p[P_W]; let oh = p[P_OH]; let ow = p[P_OW];
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let plane = i / (ow * oh);
    let base = plane * h * w;
    let iy0 = i32(oy * p[P_STRIDE_H]) - i32(p[P_PAD_TOP]);
    let ix0 = i32(ox * p[P_STRIDE_W]) - i32(p[P_PAD_LEFT]);
    var best = -3.4028235e38;
    var sum = 0.0;
    var count = 0u;
    var padded = 0u;
    for (var ky = 0u; ky < p[P_KH]; ky++) {
        let iy = iy0 + i32(ky * p[P_DILATION_H]);
        for (var kx = 0u; kx < p[P_KW]; kx++) {
            let ix = ix0 + i32(kx * p[P_DILATION_W]);
            if iy < i32(p[P_END_H]) && ix < i32(p[P_END_W]) {
                padded += 1u;
            }
            if iy < 0 || iy >= i32(h) || ix < 0 || ix >= i32(w) { continue; }
            let v = x[base + u32(iy) * w + u32(ix)];
            best = max(best, v);
            sum += v;
            count += 1u;
        }
    }
    if p[P_AVERAGE] == 0u {
        y[i] = best;
    } else if p[P_COUNT_INCLUDE_PAD] != 0u {
        y[i] = sum / f32(padded);
    } else {
        y[i] = sum / f32(max(count, 1u));
    }
}
