// Batched C = act(alpha * A·B + beta * bias) with 16×16 workgroup tiles in shared memory.
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

const T: u32 = 16u;
var<workgroup> ta: array<array<f32, 16>, 16>;
var<workgroup> tb: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let m = p[0];
    let n = p[1];
    let k = p[2];
    let row = wid.y * T + lid.y;
    let col = wid.x * T + lid.x;
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
    var acc = 0.0;
    for (var t = 0u; t < k; t += T) {
        let ka = t + lid.x;
        var va = 0.0;
        if row < m && ka < k {
            va = a[a_base + row * a_sm + ka * a_sk];
        }
        ta[lid.y][lid.x] = va;
        let kb = t + lid.y;
        var vb = 0.0;
        if kb < k && col < n {
            vb = weight(b_base + kb * b_sk + col * b_sn, col, kb);
        }
        tb[lid.y][lid.x] = vb;
        workgroupBarrier();
        for (var q = 0u; q < T; q++) {
            acc += ta[lid.y][q] * tb[q][lid.x];
        }
        workgroupBarrier();
    }
    if row < m && col < n {
        var v = bitcast<f32>(p[23]) * acc;
        if p[20] != 0u {
            v += bitcast<f32>(p[24]) * bias[row * p[21] + col * p[22]];
        }
        y[wid.z * p[28] + row * p[29] + col * p[30]] = apply_activation(v, p[25], bitcast<f32>(p[26]), bitcast<f32>(p[27]));
    }
}
