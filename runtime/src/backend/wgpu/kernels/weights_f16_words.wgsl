// f16 weights at binding 2 on an adapter without `shader-f16`: the same buffer as
// weights_f16.wgsl read as u32 words and widened with unpack2x16float.
@group(0) @binding(2) var<storage, read> wh: array<u32>;

fn weight(i: u32, row: u32, col: u32) -> f32 {
    let e = row * wh[1] + col;
    return unpack2x16float(wh[8u + e / 2u])[e % 2u];
}
