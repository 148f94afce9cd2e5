//! ONNX bytes → `onnx::decode` → `Graph::load` with the wgpu backend's op set, fused and
//! memory-planned (`wgpu::plan_stage`, no GPU needed).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // Constant folding runs tract and catches its panics (the node then runs instead).
        edgeqa_fuzz::print_panics_without_aborting();
    },
    |data: &[u8]| {
        let Ok(model) = edgeqa::onnx::decode(data, "fuzz.onnx") else { return };
        let stage = edgeqa_fuzz::stage_for(&model);
        let _ = edgeqa::backend::wgpu::plan_stage(&stage, data, "fuzz.onnx");
    }
);
