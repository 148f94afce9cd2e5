// Broadcasting comparisons and logic on 32-bit words, boolean (0/1) results.
// Params: `CompareParams` (logic.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<u32>;

fn order(x: u32, z: u32) -> i32 {
    // -1, 0, 1 for x < z, x == z, x > z under the element kind; 2 when unordered (NaN).
    if p[P_KIND] == 0u {
        let fx = bitcast<f32>(x);
        let fz = bitcast<f32>(z);
        if fx < fz { return -1; }
        if fx > fz { return 1; }
        if fx == fz { return 0; }
        return 2;
    }
    let ix = bitcast<i32>(x);
    let iz = bitcast<i32>(z);
    if ix < iz { return -1; }
    if ix > iz { return 1; }
    return 0;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[P_N] { return; }
    let o = broadcast_offsets(i, P_SHAPE, vec4<u32>(P_A_STRIDES, P_B_STRIDES, P_B_STRIDES, P_B_STRIDES), 0);
    let x = a[o.x];
    let z = b[o.y];
    var r = false;
    switch p[P_OP] {
        case OP_Equal: { r = order(x, z) == 0; }
        case OP_Less: { r = order(x, z) == -1; }
        case OP_Greater: { r = order(x, z) == 1; }
        case OP_LessOrEqual: { let o = order(x, z); r = o == -1 || o == 0; }
        case OP_GreaterOrEqual: { let o = order(x, z); r = o == 1 || o == 0; }
        case OP_And: { r = x != 0u && z != 0u; }
        case OP_Or: { r = x != 0u || z != 0u; }
        case OP_Xor, default: { r = (x != 0u) != (z != 0u); }
    }
    y[i] = select(0u, 1u, r);
}
