// Resize of the last two axes, nearest or (bi)linear, one thread per output element.
// p: 0 total, 1 H, 2 W, 3 OH, 4 OW, 5 scale h bits, 6 scale w bits, 7 mode (0 nearest,
// 1 linear), 8 coordinates (0 half_pixel, 1 pytorch_half_pixel, 2 asymmetric, 3 align_corners),
// 9 nearest rounding (0 round_prefer_floor, 1 round_prefer_ceil, 2 floor, 3 ceil).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn source(o: u32, len_in: u32, len_out: u32, scale: f32) -> f32 {
    let fo = f32(o);
    switch p[8] {
        case 0u: { return (fo + 0.5) / scale - 0.5; }
        case 1u: { return select(0.0, (fo + 0.5) / scale - 0.5, len_out > 1u); }
        case 2u: { return fo / scale; }
        // The resized length is len_in · scale, unrounded, as in ONNX's reference.
        default: { return select(0.0, fo * f32(len_in - 1u) / (f32(len_in) * scale - 1.0), len_out > 1u); }
    }
}

fn nearest(v: f32, len: u32) -> u32 {
    var r: f32;
    switch p[9] {
        case 0u: { r = select(round(v), floor(v), fract(v) == 0.5); }
        case 1u: { r = select(round(v), ceil(v), fract(v) == 0.5); }
        case 2u: { r = floor(v); }
        default: { r = ceil(v); }
    }
    return u32(clamp(r, 0.0, f32(len - 1u)));
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[0] { return; }
    let h = p[1]; let w = p[2]; let oh = p[3]; let ow = p[4];
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let base = (i / (ow * oh)) * h * w;
    let sy = source(oy, h, oh, bitcast<f32>(p[5]));
    let sx = source(ox, w, ow, bitcast<f32>(p[6]));
    if p[7] == 0u {
        y[i] = x[base + nearest(sy, h) * w + nearest(sx, w)];
        return;
    }
    let cy = clamp(sy, 0.0, f32(h - 1u));
    let cx = clamp(sx, 0.0, f32(w - 1u));
    let y0 = u32(floor(cy));
    let x0 = u32(floor(cx));
    let y1 = min(y0 + 1u, h - 1u);
    let x1 = min(x0 + 1u, w - 1u);
    let fy = cy - f32(y0);
    let fx = cx - f32(x0);
    let top = mix(x[base + y0 * w + x0], x[base + y0 * w + x1], fx);
    let bottom = mix(x[base + y1 * w + x0], x[base + y1 * w + x1], fx);
    y[i] = mix(top, bottom, fy);
}
