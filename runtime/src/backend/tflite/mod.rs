//! TensorFlow Lite stages (`StageFormat::Tflite`): two engines behind one set of checks.
//!
//! - [`tflitec`] (cargo feature `tflite`, backend `tflite`): the TF Lite C API through the
//!   `tflitec` crate; the library is supplied per target (`docs/tflite.md`).
//! - [`litert`] (cargo feature `litert`, backend `litert`): LiteRT 2's compiled-model API through
//!   the `litert` crate and `libLiteRt.so`, the library that loads on the boards (x86_64, aarch64).
//!
//! What both share lives here: reading the model's operators and tensors before the library sees
//! it ([`ModelIo::read`]), checking them against the manifest, the memory plan, and the element
//! type mapping. A model that needs a custom operator is refused at load naming it: neither
//! library carries MediaPipe's or anyone else's custom operators.

use edgeqa_format::tflite::{self, TfliteModel};

use super::{BackendError, StageMemory, StageSession};
use crate::manifest::{StageFormat, StageInfo, TensorInfo};

#[cfg(feature = "litert")]
pub mod litert;
#[cfg(feature = "tflite")]
pub mod tflitec;

/// A stage's model as read by edgeqa's own reader: the main subgraph's inputs and outputs, in
/// the model's order, and what the memory plan needs.
#[derive(Debug, Clone)]
pub struct ModelIo {
    /// The main subgraph's inputs: name, edgeqa type, shape.
    pub inputs: Vec<TensorInfo>,
    /// Its outputs, likewise.
    pub outputs: Vec<TensorInfo>,
    /// Bytes of every tensor of the main subgraph without constant data (an upper bound of the
    /// interpreter's activation arena, which reuses memory between tensors).
    pub activation_bytes: u64,
}

impl ModelIo {
    /// What every TFLite engine does first: refuses a stage that is not a TFLite model, reads
    /// the model ([`ModelIo::read`]) and checks it against the manifest ([`ModelIo::check`]).
    pub fn load(stage: &StageInfo, bytes: &[u8], origin: &str, backend: &'static str) -> Result<ModelIo, BackendError> {
        super::require_format(stage, StageFormat::Tflite, origin, backend)?;
        let io = ModelIo::read(bytes, origin, backend)?;
        io.check(stage, origin, backend)?;
        Ok(io)
    }

    /// Reads the model and refuses, at once, what no TFLite engine here can run: custom
    /// operators, dynamic dimensions other than the batch on inputs and outputs
    /// ([`tflite::TensorDesc::fixed_shape`]), and element types edgeqa tensors do not carry.
    pub fn read(bytes: &[u8], origin: &str, backend: &'static str) -> Result<ModelIo, BackendError> {
        let load_err = |reason: String| BackendError::Load { origin: origin.to_string(), backend, reason };
        let model: TfliteModel = tflite::parse(bytes).map_err(|e| load_err(e.to_string()))?;
        let custom_ops = model.custom_ops();
        if !custom_ops.is_empty() {
            return Err(BackendError::Unsupported {
                origin: origin.to_string(),
                backend,
                nodes: custom_ops
                    .iter()
                    .map(|c| {
                        format!(
                            "custom operator `{c}`: the TF Lite library here has only TFLite's built-in \
                             operators; export the model without it (or with built-in operators only)"
                        )
                    })
                    .collect(),
            });
        }
        let (ins, outs) = model.io().map_err(|e| load_err(e.to_string()))?;
        let inputs = ins.iter().map(|t| t.info("input").map_err(load_err)).collect::<Result<Vec<_>, _>>()?;
        let outputs = outs.iter().map(|t| t.info("output").map_err(load_err)).collect::<Result<Vec<_>, _>>()?;
        let main = model.main().map_err(|e| load_err(e.to_string()))?;
        let activation_bytes = main
            .tensors
            .iter()
            .zip(main.constants())
            .filter(|(_, constant)| !constant)
            .map(|(t, _)| t.shape.iter().map(|&d| d.max(0) as u64).product::<u64>() * t.dtype.size())
            .sum();
        Ok(ModelIo { inputs, outputs, activation_bytes })
    }

    /// Checks the model's inputs and outputs against the stage's manifest: the same names in
    /// the same order, types and shapes.
    pub fn check(&self, stage: &StageInfo, origin: &str, backend: &'static str) -> Result<(), BackendError> {
        let load_err = |reason: String| BackendError::Load { origin: origin.to_string(), backend, reason };
        for (role, model, manifest) in
            [("inputs", &self.inputs, &stage.inputs), ("outputs", &self.outputs, &stage.outputs)]
        {
            let got: Vec<&str> = model.iter().map(|t| t.name.as_str()).collect();
            let want: Vec<&str> = manifest.iter().map(|t| t.name.as_str()).collect();
            if got != want {
                return Err(load_err(format!(
                    "the model's {role} {got:?} are not the manifest's {want:?} (names, in order); \
                     rebuild the package from this model"
                )));
            }
            if let Some((t, info)) = model.iter().zip(manifest.iter()).find(|(t, info)| t != info) {
                return Err(load_err(format!(
                    "`{}` is {} {:?} in the model but {} {:?} in the manifest; rebuild the package from this model",
                    t.name,
                    t.dtype.name(),
                    t.shape,
                    info.dtype.name(),
                    info.shape
                )));
            }
        }
        Ok(())
    }

    /// Hands an engine's session over to the checks every run goes through
    /// (`checked::wrap_names`, with the model's input and output names).
    pub fn wrap(
        &self,
        stage: &StageInfo,
        origin: &str,
        session: Box<dyn StageSession>,
    ) -> Result<Box<dyn StageSession>, BackendError> {
        let names = |v: &[TensorInfo]| v.iter().map(|t| t.name.clone()).collect();
        super::checked::wrap_names(stage, names(&self.inputs), names(&self.outputs), origin, session)
    }

    /// The memory plan of a loaded model of `model_bytes` bytes.
    pub fn memory(&self, model_bytes: usize) -> StageMemory {
        StageMemory { weights: model_bytes as u64, activations: self.activation_bytes }
    }
}
