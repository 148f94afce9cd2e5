// LayerNormalization over the trailing `len` elements of each row, one thread per row:
// y = (x - mean) / sqrt(var + eps) * scale + bias.
// p: 0 rows, 1 len, 2 epsilon bits, 3 has bias.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = linear_index(gid, nwg);
    if r >= p[0] { return; }
    let len = p[1];
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
    let inv = 1.0 / sqrt(v / f32(len) + bitcast<f32>(p[2]));
    for (var k = 0u; k < len; k++) {
        var o = (x[base + k] - mean) * inv * scale[k];
        if p[3] != 0u {
            o += bias[k];
        }
        y[base + k] = o;
    }
}
