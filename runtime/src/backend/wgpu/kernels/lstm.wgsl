// LSTM, ONNX gate order i, o, f, c. One workgroup per (batch item, direction) runs every step:
//   i = σ(x·Wi + h·Ri + Wbi + Rbi + Pi⊙c)    f = σ(x·Wf + h·Rf + Wbf + Rbf + Pf⊙c)
//   g = tanh(x·Wc + h·Rc + Wbc + Rbc)         c' = f⊙c + i⊙g
//   o = σ(x·Wo + h·Ro + Wbo + Rbo + Po⊙c')    h' = o⊙tanh(c')
// Params: `LstmParams` (lstm.rs).
// wts: W [D, 4H, I] | R [D, 4H, H] | B [D, 8H] | P [D, 3H] (i, o, f).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wts: array<f32>;
@group(0) @binding(3) var<storage, read> h0: array<f32>;
@group(0) @binding(4) var<storage, read> c0: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read_write> yh: array<f32>;
@group(0) @binding(7) var<storage, read_write> yc: array<f32>;

const WGS: u32 = 256u;
// Hidden units per thread: MAX_HIDDEN (lstm.rs) / WGS.
const PER: u32 = 4u;

var<workgroup> hs: array<f32, 1024>;
var<workgroup> cs: array<f32, 1024>;

fn sigmoid(v: f32) -> f32 {
    return 1.0 / (1.0 + exp(-v));
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let steps = p[P_STEPS];
    let batch = p[P_BATCH];
    let isz = p[P_INPUT];
    let hid = p[P_HIDDEN];
    let dirs = p[P_DIRECTIONS];
    let batch_major = p[P_BATCH_MAJOR] == 1u;
    let b = wid.x;
    let d = wid.y;
    let backward = d == 1u || p[P_REVERSE] == 1u;
    let w_at = d * 4u * hid * isz;
    let r_at = dirs * 4u * hid * isz + d * 4u * hid * hid;
    let b_at = dirs * 4u * hid * (isz + hid) + d * 8u * hid;
    let p_at = dirs * 4u * hid * (isz + hid) + dirs * 8u * hid + d * 3u * hid;
    // State index of (d, b, j): [D, B, H] in layout 0, [B, D, H] in layout 1.
    let s_at = select((d * batch + b) * hid, (b * dirs + d) * hid, batch_major);
    for (var j = lid.x; j < hid; j += WGS) {
        hs[j] = h0[s_at + j];
        cs[j] = c0[s_at + j];
    }
    workgroupBarrier();
    for (var s = 0u; s < steps; s++) {
        let t = select(s, steps - 1u - s, backward);
        let x_at = select((t * batch + b) * isz, (b * steps + t) * isz, batch_major);
        // Y index of (t, d, b, j): [T, D, B, H] in layout 0, [B, T, D, H] in layout 1.
        let y_at = select(((t * dirs + d) * batch + b) * hid, ((b * steps + t) * dirs + d) * hid, batch_major);
        var next: array<f32, 4>;
        for (var k = 0u; k < PER; k++) {
            let j = lid.x + k * WGS;
            if j >= hid { break; }
            var g: array<f32, 4>;
            for (var q = 0u; q < 4u; q++) {
                let row = q * hid + j;
                var acc = wts[b_at + row] + wts[b_at + 4u * hid + row];
                let wr = w_at + row * isz;
                for (var i = 0u; i < isz; i++) {
                    acc += x[x_at + i] * wts[wr + i];
                }
                let rr = r_at + row * hid;
                for (var i = 0u; i < hid; i++) {
                    acc += hs[i] * wts[rr + i];
                }
                g[q] = acc;
            }
            let c_prev = cs[j];
            let pe = select(0.0, 1.0, p[P_PEEPHOLES] == 1u);
            let ig = sigmoid(g[0] + pe * wts[p_at + j] * c_prev);
            let fg = sigmoid(g[2] + pe * wts[p_at + 2u * hid + j] * c_prev);
            let c = fg * c_prev + ig * tanh(g[3]);
            let og = sigmoid(g[1] + pe * wts[p_at + hid + j] * c);
            let h = og * tanh(c);
            cs[j] = c;
            next[k] = h;
            y[y_at + j] = h;
        }
        // Every thread has read the old hidden state before any writes the new one.
        workgroupBarrier();
        for (var k = 0u; k < PER; k++) {
            let j = lid.x + k * WGS;
            if j < hid { hs[j] = next[k]; }
        }
        workgroupBarrier();
    }
    for (var j = lid.x; j < hid; j += WGS) {
        yh[s_at + j] = hs[j];
        yc[s_at + j] = cs[j];
    }
}
