//! ONNX bytes → the tract backend's `load_stage` (decode, checks, tract's parse and optimiser).
#![no_main]

use edgeqa::backend::Backend;
use edgeqa::backend::tract::TractBackend;
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // libFuzzer's hook aborts on any panic, also one the backend catches at its boundary
        // and turns into an error; an uncaught panic still aborts (libfuzzer-sys checks).
        let _ = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| {
        let Ok(model) = edgeqa::onnx::decode(data, "fuzz.onnx") else { return };
        let stage = edgeqa_fuzz::stage_for(&model);
        let _ = TractBackend::new().load_stage(&stage, data, "fuzz.onnx");
    }
);
