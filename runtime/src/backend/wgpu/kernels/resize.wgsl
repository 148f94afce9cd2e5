// Resize of the last two axes, nearest or (bi)linear, one thread per output element.
// Params: `ResizeParams` (resize.rs), ending in the source tables made on the host: OH rows
// then OW columns of three words each, (i0, i1, weight of i1 as f32 bits); nearest reads i0
// only. The coordinate math is done there, in f64, because
// WGSL's division may be off by 2.5 ULP: a source coordinate of exactly .5 must not round the
// other way on one GPU.

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
    let base = (i / (ow * oh)) * h * w;
    let ty = P_TABLES + oy * 3u;
    let tx = P_TABLES + oh * 3u + ox * 3u;
    let y0 = p[ty];
    let x0 = p[tx];
    if p[P_MODE] == 0u {
        y[i] = x[base + y0 * w + x0];
        return;
    }
    let y1 = p[ty + 1u];
    let x1 = p[tx + 1u];
    let fy = bitcast<f32>(p[ty + 2u]);
    let fx = bitcast<f32>(p[tx + 2u]);
    let top = mix(x[base + y0 * w + x0], x[base + y0 * w + x1], fx);
    let bottom = mix(x[base + y1 * w + x0], x[base + y1 * w + x1], fx);
    y[i] = mix(top, bottom, fy);
}
