//! `.npy` bytes → `Tensor::from_npy_bytes`.
#![no_main]

use edgeqa::tensor::Tensor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Tensor::from_npy_bytes(data, "fuzz.npy") {
        assert_eq!(t.len(), t.shape.iter().product::<usize>());
    }
});
