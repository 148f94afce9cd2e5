// Boolean unary ops on 32-bit words: Not (bool), IsNaN (f32), IsInf (f32, detecting negative
// and/or positive infinities). Params: `TestBitsParams` (logic.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[P_N] { return; }
    let v = x[i];
    // Exponent all ones: infinity (mantissa 0) or NaN (mantissa non-zero).
    let special = (v & 0x7f800000u) == 0x7f800000u;
    let mantissa = v & 0x007fffffu;
    var r = false;
    switch p[P_OP] {
        case OP_Not: { r = v == 0u; }
        case OP_IsNaN: { r = special && mantissa != 0u; }
        case OP_IsInf, default: {
            let negative = (v & 0x80000000u) != 0u;
            r = special && mantissa == 0u && ((negative && p[P_NEGATIVE] != 0u) || (!negative && p[P_POSITIVE] != 0u));
        }
    }
    y[i] = select(0u, 1u, r);
}
