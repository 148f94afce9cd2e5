// A fused chain of elementwise ops (fuse.rs): v = s[0] at this element, then each step
// v = unary(v) or v = binary(v, operand) (operands swapped when the chain value is the right
// one), y = v. Up to 4 input slots, each broadcast to the output through its strides.
// p: 0 n, 1 steps, 2..8 out shape[6], 8..32 slot strides[4][6], then 4 words a step:
// code (< 100 unary, else 100 + binary), operand (slot 0..3, 254 = v itself, 255 = the scalar
// in alpha) | swapped << 8, alpha bits, beta bits.

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> s0: array<f32>;
@group(0) @binding(2) var<storage, read> s1: array<f32>;
@group(0) @binding(3) var<storage, read> s2: array<f32>;
@group(0) @binding(4) var<storage, read> s3: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

fn slot(k: u32, off: vec4<u32>) -> f32 {
    switch k {
        case 0u: { return s0[off.x]; }
        case 1u: { return s1[off.y]; }
        case 2u: { return s2[off.z]; }
        default: { return s3[off.w]; }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[0] { return; }
    var rem = i;
    var off = vec4<u32>(0u);
    for (var d = 5i; d >= 0; d--) {
        let k = u32(d);
        let idx = rem % p[2u + k];
        rem = rem / p[2u + k];
        off += idx * vec4<u32>(p[8u + k], p[14u + k], p[20u + k], p[26u + k]);
    }
    var v = slot(0u, off);
    for (var s = 0u; s < p[1]; s++) {
        let at = 32u + 4u * s;
        let code = p[at];
        let alpha = bitcast<f32>(p[at + 2u]);
        if code < 100u {
            v = apply_unary(code, v, alpha, bitcast<f32>(p[at + 3u]));
        } else {
            let operand = p[at + 1u] & 255u;
            var o = alpha;
            if operand == 254u {
                o = v;
            } else if operand < 4u {
                o = slot(operand, off);
            }
            if (p[at + 1u] >> 8u) != 0u {
                v = apply_binary(code - 100u, o, v);
            } else {
                v = apply_binary(code - 100u, v, o);
            }
        }
    }
    y[i] = v;
}
