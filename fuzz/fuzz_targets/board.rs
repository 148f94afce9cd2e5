//! Board profile TOML → `edgeqa_firmware_config::parse` (`edgeqa_fuzz::board`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    edgeqa_fuzz::board(data);
});
