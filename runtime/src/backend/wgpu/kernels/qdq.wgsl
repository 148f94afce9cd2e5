// QuantizeLinear / DequantizeLinear, per tensor or per axis. Quantized values live as i32
// words. Params: `QdqParams` (qdq.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> zero: array<i32>;
@group(0) @binding(4) var<storage, read_write> y: array<u32>;

fn channel(i: u32) -> u32 {
    return (i / p[P_INNER]) % p[P_LEN];
}

// Round half to even, as ONNX QuantizeLinear specifies.
fn round_even(v: f32) -> f32 {
    let f = floor(v);
    let d = v - f;
    if d > 0.5 { return f + 1.0; }
    if d < 0.5 { return f; }
    return select(f + 1.0, f, f % 2.0 == 0.0);
}

@compute @workgroup_size(256)
fn quantize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[P_N] { return; }
    let c = channel(i);
    let q = round_even(bitcast<f32>(x[i]) / scale[c]) + f32(zero[c]);
    let lo = f32(bitcast<i32>(p[P_QMIN]));
    let hi = f32(bitcast<i32>(p[P_QMAX]));
    y[i] = bitcast<u32>(i32(clamp(q, lo, hi)));
}

@compute @workgroup_size(256)
fn dequantize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[P_N] { return; }
    let c = channel(i);
    y[i] = bitcast<u32>(f32(bitcast<i32>(x[i]) - zero[c]) * scale[c]);
}
