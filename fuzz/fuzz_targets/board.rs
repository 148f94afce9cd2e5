//! Board profile TOML → `edgeqa_firmware_config::parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match edgeqa_firmware_config::parse(text, "fuzz.toml") {
        Ok(b) => assert!(b.memory_budget_bytes() > 0),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
