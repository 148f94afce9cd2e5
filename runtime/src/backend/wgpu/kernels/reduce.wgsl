// Reductions over any set of axes, one thread per output element.
// Params: `ReduceParams` (reduce.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[P_OUTPUTS] { return; }
    let base = broadcast_offsets(i, P_KEPT_SHAPE, vec4<u32>(P_KEPT_STRIDES), 0).x;
    let op = p[P_OP];
    let count = p[P_COUNT];
    var acc = 0.0;
    if op == OP_ReduceMax { acc = -3.4028235e38; }
    if op == OP_ReduceMin { acc = 3.4028235e38; }
    if op == OP_ReduceProd { acc = 1.0; }
    var peak = -3.4028235e38;
    if op == OP_ReduceLogSumExp {
        for (var j = 0u; j < count; j++) {
            peak = max(peak, x[base + broadcast_offsets(j, P_REDUCED_SHAPE, vec4<u32>(P_REDUCED_STRIDES), 0).x]);
        }
    }
    for (var j = 0u; j < count; j++) {
        let v = x[base + broadcast_offsets(j, P_REDUCED_SHAPE, vec4<u32>(P_REDUCED_STRIDES), 0).x];
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
