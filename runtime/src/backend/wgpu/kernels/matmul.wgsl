// Batched C = act(alpha * A·B + beta * bias), register-tiled (below).
// A and B are addressed through strides, so transposed operands (Gemm's transA/transB) and
// broadcast batches cost nothing. B is binding 2 through weight() (weights_f32.wgsl, or
// weights_packed.wgsl for a packed constant B: row = output column, col = k).
// Also runs 1×1 convolutions (conv.rs), whose output is written transposed: hence Y strides.
// p: 0 M, 1 N, 2 K, 3 batch, 4..8 batch shape (4 dims), 8..12 A batch strides, 12..16 B batch
// strides, 16 A row stride, 17 A k stride, 18 B k stride, 19 B col stride, 20 has bias,
// 21 bias row stride, 22 bias col stride, 23 alpha bits, 24 beta bits, 25..28 activation,
// 28 Y batch stride, 29 Y row stride, 30 Y col stride.

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
    let m = p[0];
    let n = p[1];
    let k = p[2];
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    // Batch offsets from the flat batch index.
    var rem = wid.z;
    var a_base = 0u;
    var b_base = 0u;
    for (var d = 3i; d >= 0; d--) {
        let i = u32(d);
        let idx = rem % p[4u + i];
        rem = rem / p[4u + i];
        a_base += idx * p[8u + i];
        b_base += idx * p[12u + i];
    }
    let a_sm = p[16];
    let a_sk = p[17];
    let b_sk = p[18];
    let b_sn = p[19];
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
    let alpha = bitcast<f32>(p[23]);
    let beta = bitcast<f32>(p[24]);
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x + 16u * j;
            if row < m && col < n {
                var v = alpha * rows[i][j];
                if p[20] != 0u {
                    v += beta * bias[row * p[21] + col * p[22]];
                }
                y[wid.z * p[28] + row * p[29] + col * p[30]] =
                    apply_activation(p[25], v, bitcast<f32>(p[26]), bitcast<f32>(p[27]));
            }
        }
    }
}
