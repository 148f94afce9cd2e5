//! WAV bytes → `decode_wav` at the rate the header announces (so the samples are read too).
#![no_main]

use std::io::Cursor;

use edgeqa::capture::wav::decode_wav;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rate = data.get(24..28).map_or(16000, |b| u32::from_le_bytes(b.try_into().unwrap()));
    if let Ok(samples) = decode_wav(Cursor::new(data), "fuzz.wav", rate) {
        assert!(!samples.is_empty());
        assert!(samples.iter().all(|s| (-1.0..=1.0).contains(s)));
    }
});
