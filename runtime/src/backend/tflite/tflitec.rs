//! The `tflite` backend: TFLite stages on the TF Lite C API through the `tflitec` crate
//! (`libtensorflowlite_c.so`, supplied per target: `docs/tflite.md`).

use std::sync::Mutex;

use tflitec::interpreter::{Interpreter, Options};
use tflitec::model::Model;

use super::ModelIo;
use crate::backend::{Backend, BackendError, StageMemory, StageSession};
use crate::manifest::{DType, StageInfo, TensorInfo};
use crate::tensor::{Tensor, TensorData};

const NAME: &str = "tflite";

/// TFLite stages on the TF Lite C library's interpreter.
#[derive(Debug, Clone, Copy)]
pub struct TfliteBackend {
    threads: usize,
}

impl Default for TfliteBackend {
    fn default() -> Self {
        TfliteBackend { threads: 1 }
    }
}

impl TfliteBackend {
    /// A backend whose interpreters use one thread.
    pub fn new() -> TfliteBackend {
        TfliteBackend::default()
    }

    /// A backend whose interpreters use `threads` threads (at least 1).
    pub fn with_threads(threads: usize) -> TfliteBackend {
        TfliteBackend { threads: threads.max(1) }
    }
}

/// One model and its interpreter. The interpreter borrows the model, which borrows the bytes:
/// all three live here, on the heap, and are dropped in that order (fields drop in declaration
/// order), so no borrow outlives what it borrows.
struct Loaded {
    interpreter: Interpreter<'static>,
    _model: Box<Model<'static>>,
    _bytes: Box<[u8]>,
}

// SAFETY: a TF Lite model is immutable once created and may be used from any thread; the
// interpreter is `Send`, and `TflitecSession` reaches it only through a `Mutex`.
unsafe impl Send for Loaded {}

struct TflitecSession {
    origin: String,
    io: ModelIo,
    memory: StageMemory,
    loaded: Mutex<Loaded>,
}

impl Backend for TfliteBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn load_stage(&self, stage: &StageInfo, bytes: &[u8], origin: &str) -> Result<Box<dyn StageSession>, BackendError> {
        let io = ModelIo::load(stage, bytes, origin, NAME)?;
        let load_err = |what: &str, e: tflitec::Error| BackendError::Load {
            origin: origin.to_string(),
            backend: NAME,
            reason: format!("the TF Lite library could not {what}: {e}"),
        };
        // Everything the library allocates for this stage, measured (the memory plan).
        let (mut session, measured) = super::measure_load(|| {
            let owned: Box<[u8]> = bytes.into();
            // SAFETY: `owned` is kept in `Loaded` beside the model and dropped after it; moving the
            // box moves the pointer, not the bytes.
            let bytes_ref: &'static [u8] = unsafe { &*(owned.as_ref() as *const [u8]) };
            let model = Box::new(Model::from_bytes(bytes_ref).map_err(|e| load_err("read the model", e))?);
            // SAFETY: likewise, the model is dropped after the interpreter that borrows it.
            let model_ref: &'static Model<'static> = unsafe { &*(model.as_ref() as *const Model<'static>) };
            let options = Options { thread_count: self.threads as i32 };
            let interpreter = Interpreter::new(model_ref, Some(options))
                .map_err(|e| load_err("create an interpreter (an operator this library version lacks?)", e))?;
            interpreter.allocate_tensors().map_err(|e| load_err("allocate the tensors", e))?;
            for (role, got, want) in [
                ("inputs", interpreter.input_tensor_count(), io.inputs.len()),
                ("outputs", interpreter.output_tensor_count(), io.outputs.len()),
            ] {
                if got != want {
                    return Err(BackendError::Load {
                        origin: origin.to_string(),
                        backend: NAME,
                        reason: format!("the interpreter has {got} {role}, the model's main subgraph {want}"),
                    });
                }
            }
            let session = TflitecSession {
                origin: origin.to_string(),
                memory: StageMemory::default(),
                loaded: Mutex::new(Loaded { interpreter, _model: model, _bytes: owned }),
                io,
            };
            // One run, so that what the interpreter allocates lazily (kernels' scratch) is counted,
            // and the first question does not pay for it.
            session.run(session.io.warm_up_inputs()).map_err(|e| BackendError::Load {
                origin: origin.to_string(),
                backend: NAME,
                reason: format!("the first run, on synthetic inputs, failed: {e}"),
            })?;
            Ok(session)
        })?;
        session.memory = session.io.memory(bytes.len(), measured);
        session.io.clone().wrap(stage, origin, Box::new(session))
    }
}

impl TflitecSession {
    fn run_err(&self, what: &str, e: impl std::fmt::Display) -> BackendError {
        BackendError::Run { origin: self.origin.clone(), backend: NAME, reason: format!("{what}: {e}") }
    }
}

impl StageSession for TflitecSession {
    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        let loaded = self.loaded.lock().map_err(|_| self.run_err("running", "a previous run panicked"))?;
        let interpreter = &loaded.interpreter;
        for (i, t) in inputs.iter().enumerate() {
            let copied = match &t.data {
                TensorData::F32(v) => interpreter.copy(v, i),
                TensorData::I64(v) => interpreter.copy(v, i),
                TensorData::I32(v) => interpreter.copy(v, i),
                TensorData::U8(v) => interpreter.copy(v, i),
                TensorData::I8(v) => interpreter.copy(v, i),
                TensorData::Bool(v) => interpreter.copy(v, i),
            };
            copied.map_err(|e| self.run_err("copying an input", e))?;
        }
        interpreter.invoke().map_err(|e| self.run_err("the interpreter failed", e))?;
        let mut outputs = Vec::with_capacity(self.io.outputs.len());
        for (i, TensorInfo { name, dtype, shape }) in self.io.outputs.iter().enumerate() {
            let t = interpreter.output(i).map_err(|e| self.run_err("reading an output", e))?;
            // The interpreter checked the output's type and size against the model at load
            // (`ModelIo::check`); `data::<T>` reads it as the values of that type.
            let data = match dtype {
                DType::F32 => TensorData::F32(t.data::<f32>().to_vec()),
                DType::I64 => TensorData::I64(t.data::<i64>().to_vec()),
                DType::I32 => TensorData::I32(t.data::<i32>().to_vec()),
                DType::U8 => TensorData::U8(t.data::<u8>().to_vec()),
                DType::I8 => TensorData::I8(t.data::<i8>().to_vec()),
                DType::Bool => TensorData::Bool(t.data::<u8>().iter().map(|&b| b != 0).collect()),
            };
            let t = Tensor::new(shape.clone(), data)
                .map_err(|e| self.run_err("reading an output", format!("`{name}`: {e}")))?;
            outputs.push(t);
        }
        Ok(outputs)
    }

    fn memory(&self) -> StageMemory {
        self.memory
    }

    fn backend(&self) -> &'static str {
        NAME
    }
}
