// LayerNormalization over the trailing `len` elements of each row, one thread per row:
// y = (x - mean) / sqrt(var + eps) * scale + bias.
// Params: `LayerNormParams` (norm.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = linear_index(gid, nwg);
    if r >= p[P_ROWS] { return; }
    let len = p[P_LEN];
    let base = r * len;
    var mean = 0.0;
    for (var k = 0u; k < len; k++) {
        mean += x[base + k];
    }
    mean = mean / f32(len);
    var v = 0.0;
    for (var k = 0u; k < len; k++) {
        let d = x[base + k] - mean;
        v += d * d;
    }
    let inv = 1.0 / sqrt(v / f32(len) + bitcast<f32>(p[P_EPSILON]));
    for (var k = 0u; k < len; k++) {
        var o = (x[base + k] - mean) * inv * scale[k];
        if p[P_HAS_BIAS] != 0u {
            o += bias[k];
        }
        y[base + k] = o;
    }
}

// The same, one workgroup per row (`Build::dispatch_rows`), for long rows: the 256 threads
// stride over the row and combine their sums with `row_combine` (`row_reduce.wgsl`).
@compute @workgroup_size(256)
fn wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
    // No early return: every thread of the workgroup reaches every barrier. A workgroup past
    // the last row (the y split) walks an empty row.
    let r = wid.x + wid.y * nwg.x;
    let len = select(0u, p[P_LEN], r < p[P_ROWS]);
    let base = r * p[P_LEN];
    var s = 0.0;
    for (var k = t; k < len; k += 256u) {
        s += x[base + k];
    }
    let n = f32(max(len, 1u));
    let mean = row_combine(t, s, false) / n;
    var v = 0.0;
    for (var k = t; k < len; k += 256u) {
        let d = x[base + k] - mean;
        v += d * d;
    }
    let inv = 1.0 / sqrt(row_combine(t, v, false) / n + bitcast<f32>(p[P_EPSILON]));
    for (var k = t; k < len; k += 256u) {
        var o = (x[base + k] - mean) * inv * scale[k];
        if p[P_HAS_BIAS] != 0u {
            o += bias[k];
        }
        y[base + k] = o;
    }
}
