//! ONNX bytes → the tract backend's `load_stage` (decode, checks, tract's parse and optimiser).
#![no_main]

use edgeqa::backend::Backend;
use edgeqa::backend::tract::TractBackend;
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // The backend catches tract's panics at its boundary and turns them into errors.
        edgeqa_fuzz::print_panics_without_aborting();
    },
    |data: &[u8]| {
        let Ok(model) = edgeqa::onnx::decode(data, "fuzz.onnx") else { return };
        let stage = edgeqa_fuzz::stage_for(&model);
        let _ = TractBackend::new().load_stage(&stage, data, "fuzz.onnx");
    }
);
