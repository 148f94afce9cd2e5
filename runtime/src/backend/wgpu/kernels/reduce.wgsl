// Reductions over any set of axes, one thread per output element.
// p: 0 outputs, 1 op (0 sum, 1 mean, 2 max, 3 min, 4 prod, 5 sum of squares, 6 L2, 7 L1,
// 8 log-sum-exp), 2 reduced count, 3..9 kept shape, 9..15 kept strides (in x),
// 15..21 reduced shape, 21..27 reduced strides (dims left-padded to rank 6).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[0] { return; }
    let base = broadcast_offsets(i, 3u, vec4<u32>(9u), 0).x;
    let op = p[1];
    let count = p[2];
    var acc = 0.0;
    if op == 2u { acc = -3.4028235e38; }
    if op == 3u { acc = 3.4028235e38; }
    if op == 4u { acc = 1.0; }
    var peak = -3.4028235e38;
    if op == 8u {
        for (var j = 0u; j < count; j++) {
            peak = max(peak, x[base + broadcast_offsets(j, 15u, vec4<u32>(21u), 0).x]);
        }
    }
    for (var j = 0u; j < count; j++) {
        let v = x[base + broadcast_offsets(j, 15u, vec4<u32>(21u), 0).x];
        switch op {
            case 2u: { acc = max(acc, v); }
            case 3u: { acc = min(acc, v); }
            case 4u: { acc = acc * v; }
            case 5u, 6u: { acc += v * v; }
            case 7u: { acc += abs(v); }
            case 8u: { acc += exp(v - peak); }
            default: { acc += v; }
        }
    }
    if op == 1u { acc = acc / f32(count); }
    if op == 6u { acc = sqrt(acc); }
    if op == 8u { acc = peak + log(acc); }
    y[i] = acc;
}
