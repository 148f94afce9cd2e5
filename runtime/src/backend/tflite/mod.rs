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
//!
//! The memory plan of a loaded stage is measured, not estimated: [`measure_load`] counts the C
//! heap the library took while it built its interpreter and ran it once.

use edgeqa_format::tflite::{self, TfliteModel};

use std::sync::Mutex;

use super::{BackendError, StageMemory, StageSession};
use crate::manifest::{StageFormat, StageInfo, TensorInfo};
use crate::synthetic;

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
    /// Bytes of every tensor of the main subgraph without constant data: an upper bound of the
    /// interpreter's activation arena, which reuses memory between tensors. The memory plan uses
    /// it only where the load could not be measured ([`measure_load`]).
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

    /// The memory plan of a loaded model of `model_bytes` bytes: the model's bytes (the copy the
    /// library keeps) as weights; as activations, the rest of the heap the load was measured to
    /// take ([`measure_load`]), or [`ModelIo::activation_bytes`] where it was not measured.
    pub fn memory(&self, model_bytes: usize, measured: Option<u64>) -> StageMemory {
        let weights = model_bytes as u64;
        StageMemory { weights, activations: measured.map_or(self.activation_bytes, |m| m.saturating_sub(weights)) }
    }

    /// Inputs to run a just-built interpreter once with, as `edgeqa bench` makes them.
    pub fn warm_up_inputs(&self) -> Vec<crate::tensor::Tensor> {
        synthetic::inputs(&self.inputs, 0)
    }
}

/// Bytes the C heap has handed out and not taken back (`mallinfo`: `uordblks + hblkhd`, over
/// every arena). Both TF Lite libraries allocate through it. `None` where the C library is not
/// glibc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_in_use() -> Option<u64> {
    // SAFETY: `mallinfo` only reads the allocator's statistics. Its fields are C ints, which
    // wrap past 2 GiB; read as unsigned they hold up to 4 GiB, far above any model here.
    let m = unsafe { libc::mallinfo() };
    Some(u64::from(m.uordblks as u32) + u64::from(m.hblkhd as u32))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_in_use() -> Option<u64> {
    None
}

/// Runs `load` (an engine building its interpreter and running it once) and measures the C heap
/// it took: the interpreter's arena, weights the library repacked (XNNPACK), kernels' scratch
/// and bookkeeping. Measured loads in this process take turns, so two of them do not count each
/// other's memory; anything else the process allocates or frees meanwhile still skews the
/// figure, which is why edgeqa loads its stages before it starts capturing. `None` for the
/// figure where the heap cannot be read (not glibc) or the load failed.
pub fn measure_load<T, E>(load: impl FnOnce() -> Result<T, E>) -> Result<(T, Option<u64>), E> {
    static TURN: Mutex<()> = Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let before = heap_in_use();
    let loaded = load()?;
    let after = heap_in_use();
    Ok((loaded, before.zip(after).map(|(b, a)| a.saturating_sub(b))))
}
