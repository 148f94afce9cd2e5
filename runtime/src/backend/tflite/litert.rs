//! The `litert` backend: TFLite stages on LiteRT 2's compiled-model API (`libLiteRt.so`), the
//! TF Lite library that loads on the boards (x86_64 with glibc 2.27+, aarch64 with 2.34+).

use std::sync::Mutex;

use litert::{CompilationOptions, CompiledModel, ElementType, Environment, Model, TensorBuffer, TensorShape};

use super::ModelIo;
use crate::backend::{Backend, BackendError, StageMemory, StageSession};
use crate::manifest::{DType, StageInfo, TensorInfo};
use crate::tensor::{Tensor, TensorData};

const NAME: &str = "litert";

/// TFLite stages on LiteRT's CPU path.
#[derive(Debug, Default)]
pub struct LitertBackend;

impl LitertBackend {
    /// A backend; LiteRT itself is loaded with the first stage. LiteRT's log is set to errors
    /// only where the library exports that control (the `ai-edge-litert` 2.1.4 build does not:
    /// it reports on stderr, at every load, which accelerators it did not find).
    pub fn new() -> LitertBackend {
        if let Err(e) = litert::set_global_log_severity(litert::LogSeverity::Error) {
            log::debug!("LiteRT's log level was not set: {e}");
        }
        LitertBackend
    }
}

fn element_type(d: DType) -> ElementType {
    match d {
        DType::F32 => ElementType::Float32,
        DType::I64 => ElementType::Int64,
        DType::I32 => ElementType::Int32,
        DType::U8 => ElementType::UInt8,
        DType::I8 => ElementType::Int8,
        DType::Bool => ElementType::Bool,
    }
}

fn shape_of(dtype: DType, shape: &[usize]) -> TensorShape {
    TensorShape { element_type: element_type(dtype), dims: shape.iter().map(|&d| d as i32).collect() }
}

/// Input and output buffers of one compiled model, reused by every run.
struct Buffers {
    inputs: Vec<TensorBuffer>,
    outputs: Vec<TensorBuffer>,
}

struct LitertSession {
    origin: String,
    io: ModelIo,
    memory: StageMemory,
    // Field order is drop order: the buffers and the compiled model go before the environment.
    buffers: Mutex<Buffers>,
    compiled: Mutex<CompiledModel>,
}

impl Backend for LitertBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn load_stage(&self, stage: &StageInfo, bytes: &[u8], origin: &str) -> Result<Box<dyn StageSession>, BackendError> {
        let io = ModelIo::load(stage, bytes, origin, NAME)?;
        let load_err = |what: &str, e: litert::Error| BackendError::Load {
            origin: origin.to_string(),
            backend: NAME,
            reason: format!("LiteRT could not {what}: {e}"),
        };
        // Everything the library allocates for this stage, measured (the memory plan).
        let (mut session, measured) = super::measure_load(|| {
            let env = Environment::new().map_err(|e| load_err("start", e))?;
            let model = Model::from_bytes(bytes.to_vec()).map_err(|e| load_err("read the model", e))?;
            let signature = model.signature(0).map_err(|e| load_err("read the model's signature", e))?;
            for (role, count, want) in
                [("inputs", signature.input_count(), &io.inputs), ("outputs", signature.output_count(), &io.outputs)]
            {
                let count = count.map_err(|e| load_err("count the signature's tensors", e))?;
                if count != want.len() {
                    return Err(BackendError::Load {
                        origin: origin.to_string(),
                        backend: NAME,
                        reason: format!(
                            "LiteRT's signature has {count} {role}, the model's main subgraph {}",
                            want.len()
                        ),
                    });
                }
            }
            for (i, TensorInfo { name, dtype, shape }) in io.inputs.iter().enumerate() {
                let got = signature.input_shape(i).map_err(|e| load_err("read an input's shape", e))?;
                let want = shape_of(*dtype, shape);
                if got.element_type != want.element_type || got.dims != want.dims {
                    return Err(BackendError::Load {
                        origin: origin.to_string(),
                        backend: NAME,
                        reason: format!(
                            "LiteRT's signature input {i} is {:?} {:?}, not `{name}` {} {shape:?}: a model whose \
                             signature reorders its inputs is not supported",
                            got.element_type,
                            got.dims,
                            dtype.name()
                        ),
                    });
                }
            }
            let buffer = |t: &TensorInfo| TensorBuffer::managed_host(&env, &shape_of(t.dtype, &t.shape));
            let inputs = io.inputs.iter().map(buffer).collect::<Result<Vec<_>, _>>();
            let outputs = io.outputs.iter().map(buffer).collect::<Result<Vec<_>, _>>();
            let buffers = Buffers {
                inputs: inputs.map_err(|e| load_err("allocate an input buffer", e))?,
                outputs: outputs.map_err(|e| load_err("allocate an output buffer", e))?,
            };
            let options = CompilationOptions::new().map_err(|e| load_err("make compilation options", e))?;
            let compiled = CompiledModel::new(env, model, &options).map_err(|e| load_err("compile the model", e))?;
            let session = LitertSession {
                origin: origin.to_string(),
                io,
                memory: StageMemory::default(),
                buffers: Mutex::new(buffers),
                compiled: Mutex::new(compiled),
            };
            // One run, so that what LiteRT allocates lazily (XNNPACK's packed weights, scratch) is
            // counted, and the first question does not pay for it.
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

impl LitertSession {
    fn run_err(&self, what: &str, e: impl std::fmt::Display) -> BackendError {
        BackendError::Run { origin: self.origin.clone(), backend: NAME, reason: format!("{what}: {e}") }
    }

    /// Copies an input's values into its buffer (the buffer has the input's type and size).
    fn write(&self, buffer: &mut TensorBuffer, t: &Tensor) -> Result<(), BackendError> {
        macro_rules! put {
            ($ty:ty, $v:expr) => {{
                let mut guard = buffer.lock_for_write::<$ty>().map_err(|e| self.run_err("writing an input", e))?;
                if guard.len() != $v.len() {
                    return Err(self.run_err("writing an input", format!("{} values for {}", $v.len(), guard.len())));
                }
                guard.copy_from_slice($v);
            }};
        }
        match &t.data {
            TensorData::F32(v) => put!(f32, v),
            TensorData::I64(v) => put!(i64, v),
            TensorData::I32(v) => put!(i32, v),
            TensorData::U8(v) => put!(u8, v),
            TensorData::I8(v) => put!(i8, v),
            TensorData::Bool(v) => put!(bool, v),
        }
        Ok(())
    }

    /// An output's values out of its buffer.
    fn read(&self, buffer: &TensorBuffer, dtype: DType, shape: &[usize]) -> Result<Tensor, BackendError> {
        macro_rules! get {
            ($ty:ty, $variant:ident) => {{
                let guard = buffer.lock_for_read::<$ty>().map_err(|e| self.run_err("reading an output", e))?;
                TensorData::$variant(guard.to_vec())
            }};
        }
        let data = match dtype {
            DType::F32 => get!(f32, F32),
            DType::I64 => get!(i64, I64),
            DType::I32 => get!(i32, I32),
            DType::U8 => get!(u8, U8),
            DType::I8 => get!(i8, I8),
            DType::Bool => get!(bool, Bool),
        };
        Tensor::new(shape.to_vec(), data).map_err(|e| self.run_err("reading an output", e))
    }
}

impl StageSession for LitertSession {
    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        let mut buffers = self.buffers.lock().map_err(|_| self.run_err("running", "a previous run panicked"))?;
        let Buffers { inputs: ins, outputs: outs } = &mut *buffers;
        for (buffer, t) in ins.iter_mut().zip(&inputs) {
            self.write(buffer, t)?;
        }
        let compiled = self.compiled.lock().map_err(|_| self.run_err("running", "a previous run panicked"))?;
        compiled.run(ins, outs).map_err(|e| self.run_err("LiteRT failed", e))?;
        drop(compiled);
        outs.iter().zip(&self.io.outputs).map(|(b, t)| self.read(b, t.dtype, &t.shape)).collect()
    }

    fn memory(&self) -> StageMemory {
        self.memory
    }

    fn backend(&self) -> &'static str {
        NAME
    }
}
