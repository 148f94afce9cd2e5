// A fused chain of elementwise ops (fuse.rs): v = s[0] at this element, then each step
// v = unary(v) or v = binary(v, operand) (operands swapped when the chain value is the right
// one), y = v. Up to 4 input slots, each broadcast to the output through its strides. The
// entry point, one straight line of steps, is generated per op sequence by chain.rs.
// Params: `ChainParams` (chain.rs); each step's 4 words: code (< 100 unary, else 100 +
// binary), operand (slot 0..3, 254 = v itself, 255 = the scalar in alpha) | swapped << 8,
// alpha bits, beta bits.

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

// Step s of the chain (its alpha and beta at p[P_STEPS + 4s + 2..]). The generated entry point
// (chain.rs) calls these with literal codes and operands, so the driver's compiler keeps only
// the op each step runs.
fn unary_step(code: u32, s: u32, v: f32) -> f32 {
    let at = P_STEPS + 4u * s;
    return apply_unary(code, v, bitcast<f32>(p[at + 2u]), bitcast<f32>(p[at + 3u]));
}

fn binary_step(code: u32, operand: u32, swapped: bool, s: u32, v: f32, off: vec4<u32>) -> f32 {
    var o = bitcast<f32>(p[P_STEPS + 4u * s + 2u]);
    if operand == 254u {
        o = v;
    } else if operand < 4u {
        o = slot(operand, off);
    }
    if swapped {
        return apply_binary(code, o, v);
    }
    return apply_binary(code, v, o);
}
