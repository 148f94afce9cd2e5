// Unary f32 ops by code (elementwise.rs UNARY_OPS order); shared by unary.wgsl and chain.wgsl.

// Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
fn erf_approx(v: f32) -> f32 {
    let s = sign(v);
    let a = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return s * (1.0 - poly * exp(-a * a));
}

fn apply_unary(op: u32, v: f32, alpha: f32, beta: f32) -> f32 {
    switch op {
        case 0u: { return max(v, 0.0); }
        case 1u: { return 1.0 / (1.0 + exp(-v)); }
        case 2u: { return tanh(v); }
        case 3u: { return clamp(alpha * v + beta, 0.0, 1.0); }
        case 4u: { return v * clamp(v / 6.0 + 0.5, 0.0, 1.0); }
        case 5u: { return erf_approx(v); }
        case 6u: { return min(max(v, alpha), beta); }
        case 7u: { return select(alpha * v, v, v >= 0.0); }
        case 8u: { return sqrt(v); }
        case 9u: { return exp(v); }
        case 10u: { return log(v); }
        case 11u: { return -v; }
        case 12u: { return abs(v); }
        case 13u: { return 1.0 / v; }
        case 14u: { return floor(v); }
        case 15u: { return ceil(v); }
        case 16u: { return 0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752)); }
        case 17u: { return select(log(1.0 + exp(v)), v, v > 20.0); }
        case 18u: { return select(alpha * (exp(v) - 1.0), v, v >= 0.0); }
        case 19u: { return sin(v); }
        case 20u: { return cos(v); }
        case 21u: { return v * (1.0 / (1.0 + exp(-v))); }
        default: { return v; }
    }
}
