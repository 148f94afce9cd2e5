//! Packaging a TensorFlow Lite model: the generic stage `model`, its section the `.tflite` file
//! as given, its inputs and outputs read from the file (TFLite models have fixed shapes).
//!
//! edgeqa's quantizer rewrites ONNX graphs; a TFLite model is packaged as it was exported
//! (float, or quantized by the TFLite converter).

use std::path::Path;

use edgeqa_format::manifest::{Manifest, StageFormat};
use edgeqa_format::package::{Package, PackageWriter};
use edgeqa_format::tflite::{self, TensorDesc};

use crate::{ConvertError, Converted, PRODUCER};

/// True when `path` names a TFLite model (by its `.tflite` extension).
pub fn is_tflite(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tflite"))
}

/// Packages one TFLite model as the generic stage `model`. Refuses, naming what and where, a
/// file that is not a TFLite model, a model with custom operators (no TFLite engine here has
/// them), inputs or outputs with dynamic dimensions other than the batch (which runs at the
/// file's size), and element types edgeqa tensors do not carry.
pub fn convert_tflite(path: &Path) -> Result<Converted, ConvertError> {
    let origin = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ConvertError::Io { path: origin.clone(), reason: e.to_string() })?;
    let graph_err = |reason: String| ConvertError::Graph { origin: origin.clone(), reason };
    let model = tflite::parse(&bytes).map_err(|e| graph_err(e.to_string()))?;
    let custom = model.custom_ops();
    if !custom.is_empty() {
        return Err(graph_err(format!(
            "the model needs custom operator(s) {}, which no TFLite engine edgeqa runs carries \
             (they have TFLite's built-in operators only); export it with built-in operators",
            custom.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
        )));
    }
    let (inputs, outputs) = model.io().map_err(|e| graph_err(e.to_string()))?;
    let info = |t: &TensorDesc, role: &str| t.info(role).map_err(graph_err);
    let inputs = inputs.iter().map(|t| info(t, "input")).collect::<Result<Vec<_>, _>>()?;
    let outputs = outputs.iter().map(|t| info(t, "output")).collect::<Result<Vec<_>, _>>()?;
    let name = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "model".into());
    let mut manifest = Manifest::model(PRODUCER, &name, inputs, outputs);
    manifest.stages[0].format = StageFormat::Tflite;
    let section = manifest.stages[0].section.clone();
    let mut writer = PackageWriter::new(manifest.clone());
    writer.add_tflite(&section, bytes)?;
    let bytes = writer.to_bytes()?;
    Package::from_bytes(bytes.clone(), "converted package")?;
    Ok(Converted { bytes, manifest })
}
