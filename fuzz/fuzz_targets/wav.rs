//! WAV bytes → `decode_wav` (`edgeqa_fuzz::wav`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    edgeqa_fuzz::wav(data);
});
