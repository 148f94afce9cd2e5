// Helpers of the binary ops; `apply_binary` itself is generated from elementwise.rs's BINARY table.

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
