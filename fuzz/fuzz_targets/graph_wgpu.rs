//! ONNX bytes → the wgpu backend's `plan_stage`, no GPU needed (`edgeqa_fuzz::graph_wgpu`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // edgeqa catches tract's panics at its boundary: print them, abort only on the others.
        edgeqa_fuzz::print_panics_without_aborting();
    },
    |data: &[u8]| {
        edgeqa_fuzz::graph_wgpu(data);
    }
);
