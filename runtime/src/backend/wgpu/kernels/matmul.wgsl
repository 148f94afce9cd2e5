// Batched C = act(alpha * A·B + beta * bias), register-tiled (below).
// A and B are addressed through strides, so transposed operands (Gemm's transA/transB) and
// broadcast batches cost nothing. B is binding 2 through weight() (weights_f32.wgsl, or
// weights_packed.wgsl for a packed constant B: row = output column, col = k).
// Also runs 1×1 convolutions (conv.rs), whose output is written transposed: hence Y strides.
// Params: `GemmParams` (matmul.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// 64×64 output tile per workgroup of 16×16 threads, each thread 4×4 outputs in registers
// (rows ly + 16i, columns lx + 16j); A and B tiles of 16 k per step in workgroup memory.
const TK: u32 = 16u;
const TILE: u32 = 64u;
var<workgroup> ta: array<array<f32, 64>, 16>;
var<workgroup> tb: array<array<f32, 64>, 16>;

@compute @workgroup_size(16, 16)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let m = p[P_M];
    let n = p[P_N];
    let k = p[P_K];
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    // Batch offsets from the flat batch index.
    var rem = wid.z;
    var a_base = 0u;
    var b_base = 0u;
    for (var d = 3i; d >= 0; d--) {
        let i = u32(d);
        let idx = rem % p[P_BATCH_SHAPE + i];
        rem = rem / p[P_BATCH_SHAPE + i];
        a_base += idx * p[P_A_BATCH + i];
        b_base += idx * p[P_B_BATCH + i];
    }
    let a_sm = p[P_A_SM];
    let a_sk = p[P_A_SK];
    let b_sk = p[P_B_SK];
    let b_sn = p[P_B_SN];
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var t = 0u; t < k; t += TK) {
        // 1024 values of each tile, four per thread: A as (row, k) with k fastest, B as
        // (k, col) with col fastest.
        for (var r = 0u; r < 4u; r++) {
            let e = li + r * 256u;
            let ar = row0 + e / TK;
            let ak = t + e % TK;
            var va = 0.0;
            if ar < m && ak < k {
                va = a[a_base + ar * a_sm + ak * a_sk];
            }
            ta[e % TK][e / TK] = va;
            let bk = t + e / TILE;
            let bc = col0 + e % TILE;
            var vb = 0.0;
            if bk < k && bc < n {
                vb = weight(b_base + bk * b_sk + bc * b_sn, bc, bk);
            }
            tb[e / TILE][e % TILE] = vb;
        }
        workgroupBarrier();
        for (var q = 0u; q < TK; q++) {
            let b = vec4<f32>(tb[q][lid.x], tb[q][lid.x + 16u], tb[q][lid.x + 32u], tb[q][lid.x + 48u]);
            acc0 += ta[q][lid.y] * b;
            acc1 += ta[q][lid.y + 16u] * b;
            acc2 += ta[q][lid.y + 32u] * b;
            acc3 += ta[q][lid.y + 48u] * b;
        }
        workgroupBarrier();
    }
    var rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    let alpha = bitcast<f32>(p[P_ALPHA]);
    let beta = bitcast<f32>(p[P_BETA]);
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x + 16u * j;
            if row < m && col < n {
                var v = alpha * rows[i][j];
                if p[P_HAS_BIAS] != 0u {
                    v += beta * bias[row * p[P_BIAS_SM] + col * p[P_BIAS_SN]];
                }
                y[wid.z * p[P_Y_BATCH] + row * p[P_Y_SM] + col * p[P_Y_SN]] =
                    apply_activation(p[P_ACTIVATION], v, bitcast<f32>(p[P_ACT_ALPHA]), bitcast<f32>(p[P_ACT_BETA]));
            }
        }
    }
}
