//! What the ONNX targets share: a stage description made from the graph itself, as
//! `edgeqa-convert` would write it into the manifest.

use edgeqa::manifest::{DType, StageInfo, TensorInfo};
use edgeqa::onnx::{self, Dim};

/// Largest dimension given to a graph input: keeps each run to milliseconds.
const MAX_DIM: usize = 16;

/// A stage whose inputs are the model's declared inputs, with every dimension fixed (symbolic
/// ones to 1, large ones capped) and unknown element types fed as f32.
pub fn stage_for(model: &onnx::pb::ModelProto) -> StageInfo {
    let info = |t: onnx::DeclaredTensor| TensorInfo {
        name: t.name,
        dtype: t.dtype.unwrap_or(DType::F32),
        shape: t
            .dims
            .unwrap_or_default()
            .into_iter()
            .take(6)
            .map(|d| match d {
                Dim::Fixed(n) => n.min(MAX_DIM),
                Dim::Symbolic(_) => 1,
            })
            .collect(),
    };
    StageInfo {
        name: "model".into(),
        section: "model".into(),
        inputs: onnx::graph_inputs(model).into_iter().map(info).collect(),
        outputs: onnx::graph_outputs(model).into_iter().map(info).collect(),
    }
}

/// Replaces libFuzzer's panic hook (which aborts on any panic, also one edgeqa catches at a
/// boundary and turns into an error) with one that prints one line per panic. An uncaught panic
/// still aborts the run; its line is the last `panicked at` before libFuzzer's report, which
/// `scripts/fuzz.sh` shows.
pub fn print_panics_without_aborting() {
    let _ = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("panicked at {at}: {}", msg.lines().next().unwrap_or(""));
    }));
}
