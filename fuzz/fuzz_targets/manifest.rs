//! Manifest JSON → `Manifest`, `validate` and what a load derives (`edgeqa_fuzz::manifest`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    edgeqa_fuzz::manifest(data);
});
