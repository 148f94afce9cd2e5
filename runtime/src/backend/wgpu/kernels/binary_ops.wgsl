// Binary f32 ops by code (elementwise.rs BINARY_OPS order); shared by binary.wgsl and chain.wgsl.

fn apply_binary(op: u32, x: f32, z: f32) -> f32 {
    switch op {
        case 0u: { return x + z; }
        case 1u: { return x - z; }
        case 2u: { return x * z; }
        case 3u: { return x / z; }
        case 4u: { return pow_onnx(x, z); }
        case 5u: { return max(x, z); }
        case 6u: { return min(x, z); }
        default: { return x; }
    }
}

// ONNX Pow: negative bases with integral exponents are defined.
fn pow_onnx(x: f32, z: f32) -> f32 {
    if z == 2.0 { return x * x; }
    if z == 1.0 { return x; }
    if z == 0.5 { return sqrt(x); }
    if x < 0.0 && z == floor(z) {
        let r = pow(-x, z);
        return select(r, -r, (i32(z) & 1) == 1);
    }
    return pow(x, z);
}
