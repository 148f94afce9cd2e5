// Pad of 32-bit words: y[idx] = x[src(idx)], or the fill word where `constant` mode reads
// outside x. src = idx - before per axis, mapped back into the axis by the mode:
// constant, reflect (one reflection), edge (clamp), wrap (`MODE_` codes, pad.rs MODES).
// Params: `PadParams` (pad.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[P_N] { return; }
    let mode = p[P_MODE];
    var rem = i;
    var src = 0u;
    for (var d = 5i; d >= 0; d--) {
        let k = u32(d);
        let idx = rem % p[P_OUT_SHAPE + k];
        rem = rem / p[P_OUT_SHAPE + k];
        let dim = i32(p[P_IN_SHAPE + k]);
        var s = i32(idx) - bitcast<i32>(p[P_BEFORE + k]);
        if s < 0 || s >= dim {
            switch mode {
                case MODE_constant: { y[i] = p[P_FILL]; return; }
                case MODE_reflect: { s = select(2 * (dim - 1) - s, -s, s < 0); }
                case MODE_edge: { s = clamp(s, 0, dim - 1); }
                case MODE_wrap, default: { s = ((s % dim) + dim) % dim; }
            }
        }
        src += u32(s) * p[P_IN_STRIDES + k];
    }
    y[i] = x[src];
}
