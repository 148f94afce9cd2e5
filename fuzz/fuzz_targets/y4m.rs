//! Y4M bytes → `parse_y4m`, frames converted to RGB (`edgeqa_fuzz::y4m`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    edgeqa_fuzz::y4m(data);
});
