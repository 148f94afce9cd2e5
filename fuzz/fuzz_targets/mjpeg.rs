//! A camera's MJPEG frame → decoded and converted to RGB (`edgeqa_fuzz::mjpeg`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    edgeqa_fuzz::mjpeg(data);
});
