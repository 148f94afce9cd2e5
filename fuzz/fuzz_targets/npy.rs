//! `.npy` bytes → `Tensor::from_npy_bytes` (`edgeqa_fuzz::npy`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    edgeqa_fuzz::npy(data);
});
