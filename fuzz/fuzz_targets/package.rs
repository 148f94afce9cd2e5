//! `.eqa` bytes → a verified `Package`, every section read (`edgeqa_fuzz::package`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    edgeqa_fuzz::package(data);
});
