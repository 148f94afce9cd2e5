// Reductions over any set of axes, one thread per output element.
// p: 0 outputs, 1 op (an `OP_` code, reduce.rs OPS), 2 reduced count, 3..9 kept shape, 9..15 kept strides (in x),
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
    if op == OP_ReduceMax { acc = -3.4028235e38; }
    if op == OP_ReduceMin { acc = 3.4028235e38; }
    if op == OP_ReduceProd { acc = 1.0; }
    var peak = -3.4028235e38;
    if op == OP_ReduceLogSumExp {
        for (var j = 0u; j < count; j++) {
            peak = max(peak, x[base + broadcast_offsets(j, 15u, vec4<u32>(21u), 0).x]);
        }
    }
    for (var j = 0u; j < count; j++) {
        let v = x[base + broadcast_offsets(j, 15u, vec4<u32>(21u), 0).x];
        switch op {
            case OP_ReduceMax: { acc = max(acc, v); }
            case OP_ReduceMin: { acc = min(acc, v); }
            case OP_ReduceProd: { acc = acc * v; }
            case OP_ReduceSumSquare, OP_ReduceL2: { acc += v * v; }
            case OP_ReduceL1: { acc += abs(v); }
            case OP_ReduceLogSumExp: { acc += exp(v - peak); }
            case OP_ReduceSum, OP_ReduceMean, default: { acc += v; }
        }
    }
    if op == OP_ReduceMean { acc = acc / f32(count); }
    if op == OP_ReduceL2 { acc = sqrt(acc); }
    if op == OP_ReduceLogSumExp { acc = peak + log(acc); }
    y[i] = acc;
}
