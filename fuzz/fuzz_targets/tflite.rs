//! `.tflite` bytes → `tflite::parse` (`edgeqa_fuzz::tflite`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    edgeqa_fuzz::tflite(data);
});
