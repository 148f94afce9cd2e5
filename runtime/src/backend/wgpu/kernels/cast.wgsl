// Cast between the device's 32-bit element kinds (0 f32, 1 i32, 2 bool). Params: `CastParams`
// (cast.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if i >= p[P_N] { return; }
    let v = x[i];
    var f: f32;
    switch p[P_FROM] {
        case 0u: { f = bitcast<f32>(v); }
        case 1u: { f = f32(bitcast<i32>(v)); }
        default: { f = select(0.0, 1.0, v != 0u); }
    }
    switch p[P_TO] {
        case 0u: { y[i] = bitcast<u32>(f); }
        case 1u: {
            if p[P_FROM] == 1u { y[i] = v; } else { y[i] = bitcast<u32>(i32(trunc(f))); }
        }
        default: { y[i] = select(0u, 1u, f != 0.0); }
    }
}
