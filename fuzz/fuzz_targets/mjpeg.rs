//! MJPEG frames as a camera delivers them: `mjpeg::decode_mjpeg` (standard Huffman tables
//! inserted when missing, then zune-jpeg) at the size the headers announce, then conversion to
//! planar RGB; must never panic.
#![no_main]

use edgeqa::capture::mjpeg::{decode_mjpeg, jpeg_size};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((w, h)) = jpeg_size(data) else { return };
    if w == 0 || h == 0 || w * h > 1 << 20 {
        return;
    }
    let mut rgb8 = Vec::new();
    let _ = decode_mjpeg(data, w, h, &mut rgb8);
    let mut out = vec![0.0f32; 3 * w * h];
    let _ = edgeqa::capture::pixels::to_rgb(
        edgeqa::capture::PixelFormat::Mjpeg,
        data,
        w,
        h,
        &mut out,
        &mut edgeqa::capture::pixels::Scratch::default(),
    );
});
