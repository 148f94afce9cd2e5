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
