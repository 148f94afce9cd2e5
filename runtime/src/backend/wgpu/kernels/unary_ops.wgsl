// Helpers of the unary ops; `apply_unary` itself is generated from elementwise.rs's UNARY table.

// Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
fn erf_approx(v: f32) -> f32 {
    let s = sign(v);
    let a = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return s * (1.0 - poly * exp(-a * a));
}
