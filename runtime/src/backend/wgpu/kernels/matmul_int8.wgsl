// Batched Y = act(alpha · (A·B) + beta · bias) for a quantized A (DequantizeLinear's input:
// uint8/int8 values as i32 words, one scale and zero point) and per-channel int8 weights B
// (weights.rs, rows = output columns padded to whole words): integer dot products of four
// int8 pairs at a time with dot4I8Packed, in 16×16 tiles over 64 k per step.
// Uint8 values are shifted by 128 into int8, which the weights' row sums correct for:
//   Σ_k (a_k − zp) w_kn = Σ_k (a_k − o) w_kn + (o − zp) Σ_k w_kn,  o = 128 (uint8) or 0 (int8).
// Params: `GemmInt8Params` (matmul.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<i32>;
@group(0) @binding(2) var<storage, read> wq: array<u32>;
@group(0) @binding(3) var<storage, read> sums: array<i32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

var<workgroup> ta: array<array<u32, 16>, 16>;
var<workgroup> tb: array<array<u32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let m = p[P_M];
    let n = p[P_N];
    let k = p[P_K];
    let row = wid.y * 16u + lid.y;
    let col = wid.x * 16u + lid.x;
    var rem = wid.z;
    var a_base = 0u;
    for (var d = 3i; d >= 0; d--) {
        let i = u32(d);
        let idx = rem % p[P_BATCH_SHAPE + i];
        rem = rem / p[P_BATCH_SHAPE + i];
        a_base += idx * p[P_A_BATCH + i];
    }
    let a_sm = p[P_A_SM];
    let a_sk = p[P_A_SK];
    let offset = i32(p[P_OFFSET]);
    let row_words = wq[1] / 4u;
    // The weight row (output column) this thread loads words of.
    let b_row = wid.x * 16u + lid.y;
    var acc = 0i;
    for (var t = 0u; t < k; t += 64u) {
        let k0 = t + 4u * lid.x;
        var wa = 0u;
        if row < m {
            for (var j = 0u; j < 4u; j++) {
                if k0 + j < k {
                    let v = a[a_base + row * a_sm + (k0 + j) * a_sk] - offset;
                    wa |= (bitcast<u32>(v) & 0xffu) << (8u * j);
                }
            }
        }
        ta[lid.y][lid.x] = wa;
        let kw = t / 4u + lid.x;
        var wb = 0u;
        if b_row < n && kw < row_words {
            wb = wq[8u + b_row * row_words + kw];
        }
        tb[lid.y][lid.x] = wb;
        workgroupBarrier();
        for (var q = 0u; q < 16u; q++) {
            acc += dot4I8Packed(ta[lid.y][q], tb[lid.x][q]);
        }
        workgroupBarrier();
    }
    if row < m && col < n {
        let total = acc + bitcast<i32>(p[P_ZERO_SHIFT]) * sums[col];
        let scale = bitcast<f32>(p[P_A_SCALE]) * bitcast<f32>(wq[wq[4] + col]);
        var v = bitcast<f32>(p[P_ALPHA]) * scale * f32(total);
        if p[P_HAS_BIAS] != 0u {
            v += bitcast<f32>(p[P_BETA]) * bias[row * p[P_BIAS_SM] + col * p[P_BIAS_SN]];
        }
        y[wid.z * p[P_Y_BATCH] + row * p[P_Y_SM] + col * p[P_Y_SN]] = apply_activation(p[P_ACTIVATION], v, bitcast<f32>(p[P_ACT_ALPHA]), bitcast<f32>(p[P_ACT_BETA]));
    }
}
