//! The GPU backend: our own WGSL compute kernels through wgpu (Vulkan; Mesa's lavapipe where
//! there is no GPU).
//!
//! Loading a stage: ONNX → graph IR with shapes fixed and constants folded
//! ([`crate::graph::Graph`]; every node the kernels cannot run is listed at once) → fusion
//! (`fuse.rs`) → static memory plan ([`crate::graph::plan::MemoryPlan`]) → device buffers for
//! the plan and the constants → one pipeline and bind group per dispatch, all fixed. A run writes
//! the inputs, records every dispatch in one command encoder, copies the outputs into one
//! readback buffer and maps it: no per-op readback, host↔device copies only at the stage edges.

mod fuse;
pub mod kernels;
mod profile;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::DatumType;

use super::{Backend, BackendError, NodeProfile, StageMemory, StageSession};
use crate::graph::plan::MemoryPlan;
use crate::graph::{Graph, GraphError, InputSpec, NodeError, ValueId};
use crate::manifest::{DType, QuantizedTensor, StageInfo};
use crate::tensor::{Tensor, TensorData};
use kernels::{Build, Dispatch, IndexChecks, Kernels, PipelineCache, SITE_WORDS};

const NAME: &str = "wgpu";

/// The GPU device is missing, refused, failed or was lost. A lost device needs the stages
/// reloaded (on a new [`WgpuBackend`]) or run on another backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("no GPU adapter ({0}); install a Vulkan driver (Debian: mesa-vulkan-drivers libvulkan1)")]
    NoAdapter(String),
    #[error("adapter `{adapter}` refused a device: {message}")]
    Refused { adapter: String, message: String },
    #[error("the GPU device was lost; reload the package (or load it on the tract backend)")]
    Lost,
    #[error("the GPU device was lost during the run; no result")]
    LostDuringRun,
    #[error("the GPU device was lost while profiling")]
    LostWhileProfiling,
    #[error("waiting for the GPU: {0}")]
    Wait(String),
    #[error("reading results back: {0}")]
    Readback(String),
}

/// An adapter and device shared by every stage the backend loads.
struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    shader_f16: bool,
    /// Whether the device writes timestamps (`edgeqa run --profile` then times each dispatch
    /// on the device).
    timestamps: bool,
    lost: Arc<AtomicBool>,
}

impl Gpu {
    /// Blocks until submission `index` has run.
    fn wait(&self, index: wgpu::SubmissionIndex) -> Result<(), DeviceError> {
        self.device
            .poll(wgpu::PollType::Wait { submission_index: Some(index), timeout: None })
            .map(drop)
            .map_err(|e| DeviceError::Wait(e.to_string()))
    }

    /// Maps `buffer` (MAP_READ) once submission `index`, which fills it, has run.
    fn map_read(&self, buffer: &wgpu::Buffer, index: wgpu::SubmissionIndex) -> Result<(), DeviceError> {
        let (tx, rx) = std::sync::mpsc::channel();
        buffer.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait(index)?;
        rx.recv()
            .map_err(|_| DeviceError::Readback("the mapping callback was dropped".into()))?
            .map_err(|e| DeviceError::Readback(e.to_string()))
    }
}

/// The wgpu backend: one device, opened at construction.
pub struct WgpuBackend {
    gpu: Arc<Gpu>,
}

/// What the adapter is, for logs and `--json` output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    /// `vulkan`, `gl`, …
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `Cpu` (lavapipe), …
    pub device_type: String,
    pub driver: String,
    pub shader_f16: bool,
}

impl WgpuBackend {
    /// Opens the first suitable adapter (a real GPU before a software one). `Err` says why no
    /// device is available (no Vulkan loader or driver, or the adapter refused a device).
    pub fn new() -> Result<WgpuBackend, DeviceError> {
        Self::open(true)
    }

    /// As [`WgpuBackend::new`], but never using the adapter's `shader-f16` (f16 weights are then
    /// widened with `unpack2x16float`): for drivers whose f16 support misbehaves.
    pub fn without_shader_f16() -> Result<WgpuBackend, DeviceError> {
        Self::open(false)
    }

    fn open(allow_f16: bool) -> Result<WgpuBackend, DeviceError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::VULKAN);
        let instance = wgpu::Instance::new(desc);
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            apply_limit_buckets: false,
        }))
        .map_err(|e| DeviceError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let shader_f16 = allow_f16 && adapter.features().contains(wgpu::Features::SHADER_F16);
        let limits = adapter.limits();
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let mut features = wgpu::Features::empty();
        if shader_f16 {
            features |= wgpu::Features::SHADER_F16;
        }
        if timestamps {
            features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("edgeqa"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| DeviceError::Refused { adapter: info.name.clone(), message: e.to_string() })?;
        let lost = Arc::new(AtomicBool::new(false));
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            log::error!("wgpu device lost ({reason:?}): {message}");
            flag.store(true, Ordering::SeqCst);
        });
        log::debug!("wgpu adapter: {} ({:?}, {:?}, {})", info.name, info.backend, info.device_type, info.driver);
        Ok(WgpuBackend { gpu: Arc::new(Gpu { device, queue, info, limits, shader_f16, timestamps, lost }) })
    }

    /// The adapter in use.
    pub fn adapter(&self) -> AdapterSummary {
        let i = &self.gpu.info;
        AdapterSummary {
            name: i.name.clone(),
            backend: format!("{:?}", i.backend).to_lowercase(),
            device_type: format!("{:?}", i.device_type),
            driver: format!("{} {}", i.driver, i.driver_info).trim().to_string(),
            shader_f16: self.gpu.shader_f16,
        }
    }
}

/// Device bytes of a value: 32-bit words, at least one.
fn device_bytes(graph: &Graph, v: ValueId) -> u64 {
    (graph.values[v].len().max(1) * 4) as u64
}

fn datum(d: DType) -> DatumType {
    match d {
        DType::F32 => DatumType::F32,
        DType::I64 => DatumType::I64,
        DType::I32 => DatumType::I32,
        DType::U8 => DatumType::U8,
        DType::I8 => DatumType::I8,
        DType::Bool => DatumType::Bool,
    }
}

/// The graph of a stage in the IR, fused and planned (no device needed): what `load_stage`
/// compiles, and what `edgeqa inspect` shows. `stored` are the package's records of the stage's
/// quantized weights (`Manifest::packed_weights`; `&[]` for none), taken as stored where the
/// graph bears them out (`graph::stored`).
pub fn plan_stage(
    stage: &StageInfo,
    onnx: &[u8],
    stored: &[QuantizedTensor],
    origin: &str,
) -> Result<(Graph, MemoryPlan), BackendError> {
    let load_err = |reason: String| BackendError::Load { origin: origin.to_string(), backend: NAME, reason };
    let proto = crate::onnx::decode(onnx, origin).map_err(|e| load_err(e.to_string()))?;
    let specs: Vec<InputSpec> = stage
        .inputs
        .iter()
        .map(|t| InputSpec { name: t.name.clone(), dtype: datum(t.dtype), shape: t.shape.clone() })
        .collect();
    let mut graph = Graph::load(&proto, &specs, stored, &Kernels, origin).map_err(|e| match e {
        GraphError::Unsupported { nodes, .. } => {
            BackendError::Unsupported { origin: origin.to_string(), backend: NAME, nodes }
        }
        GraphError::Invalid { reason, .. } => load_err(reason),
    })?;
    let fused = fuse::fuse(&mut graph);
    log::debug!(
        "{origin}: {} nodes after folding {}, taking {} weights as stored and fusing {fused}",
        graph.nodes.len(),
        graph.folded,
        graph.stored
    );
    let plan =
        MemoryPlan::new(&graph, &|v| device_bytes(&graph, v), &|n| kernels::kernel(&n.op).and_then(|k| k.alias(n)));
    Ok((graph, plan))
}

struct WgpuStage {
    origin: String,
    gpu: Arc<Gpu>,
    stage: StageInfo,
    graph: Graph,
    dispatches: Vec<Dispatch>,
    buffers: Vec<Option<Arc<wgpu::Buffer>>>,
    /// For each manifest input, its graph value (`None` if the graph ignores it).
    inputs: Vec<Option<ValueId>>,
    /// Readback buffer and each output's byte offset in it.
    readback: wgpu::Buffer,
    offsets: Vec<u64>,
    /// Out-of-range index reports (cleared before each run) and their byte offset in `readback`.
    index_checks: IndexChecks,
    checks_at: u64,
    memory: StageMemory,
    /// One run at a time (the readback buffer is shared).
    lock: Mutex<()>,
}

impl Backend for WgpuBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn load_stage(&self, stage: &StageInfo, onnx: &[u8], origin: &str) -> Result<Box<dyn StageSession>, BackendError> {
        self.load_stage_stored(stage, onnx, &[], origin)
    }

    fn load_stage_stored(
        &self,
        stage: &StageInfo,
        onnx: &[u8],
        stored: &[QuantizedTensor],
        origin: &str,
    ) -> Result<Box<dyn StageSession>, BackendError> {
        super::require_onnx(stage, origin, NAME)?;
        let load_err = |reason: String| BackendError::Load { origin: origin.to_string(), backend: NAME, reason };
        let (mut graph, plan) = plan_stage(stage, onnx, stored, origin)?;
        let gpu = self.gpu.clone();
        let max = gpu.limits.max_storage_buffer_binding_size;
        if let Some(big) = plan.buffers.iter().find(|&&b| b > max) {
            return Err(load_err(format!(
                "a {big}-byte tensor exceeds the adapter's {max}-byte storage binding limit"
            )));
        }
        let device = &gpu.device;
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let planned: Vec<Arc<wgpu::Buffer>> = plan
            .buffers
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                Arc::new(device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("{origin} buffer {i}")),
                    size: size.max(4),
                    usage,
                    mapped_at_creation: false,
                }))
            })
            .collect();
        let mut buffers: Vec<Option<Arc<wgpu::Buffer>>> = vec![None; graph.values.len()];
        let mut weights = 0u64;
        for (id, b) in plan.assignment.iter().enumerate() {
            if let Some(b) = b {
                buffers[id] = Some(planned[*b].clone());
            }
        }
        let mut cache = PipelineCache::default();
        let mut dispatches = Vec::new();
        let sites = graph.nodes.iter().map(|n| kernels::kernel(&n.op).map_or(0, |k| k.index_sites(n))).sum::<usize>();
        let mut index_checks = IndexChecks::new(device, sites);
        for (node_index, node) in graph.nodes.iter().enumerate() {
            let Some(kernel) = kernels::kernel(&node.op) else {
                return Err(BackendError::Internal {
                    origin: origin.to_string(),
                    backend: NAME,
                    reason: format!("{}: no kernel, yet the graph loaded", node.label()),
                });
            };
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let mut b = Build {
                graph: &graph,
                node,
                node_index,
                device,
                cache: &mut cache,
                buffers: &mut buffers,
                weight_bytes: &mut weights,
                max_binding: max,
                shader_f16: gpu.shader_f16,
                dispatches: &mut dispatches,
                index_checks: &mut index_checks,
            };
            let built = kernel.build(&mut b);
            let error = pollster::block_on(scope.pop());
            let node_err = |error: NodeError| BackendError::Node {
                origin: origin.to_string(),
                backend: NAME,
                node: node.label(),
                error: Box::new(error),
            };
            built.map_err(node_err)?;
            if let Some(e) = error {
                return Err(node_err(NodeError::Validation(e.to_string())));
            }
        }
        let inputs: Vec<Option<ValueId>> = stage
            .inputs
            .iter()
            .map(|t| graph.inputs.iter().copied().find(|&i| graph.values[i].name == t.name))
            .collect();
        if graph.outputs.len() != stage.outputs.len() {
            return Err(load_err(format!(
                "the graph has {} outputs, the manifest lists {}",
                graph.outputs.len(),
                stage.outputs.len()
            )));
        }
        let mut offsets = Vec::new();
        let mut total = 0u64;
        for &o in &graph.outputs {
            offsets.push(total);
            total += device_bytes(&graph, o);
        }
        let checks_at = total;
        total += index_checks.bytes();
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: total.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let memory = StageMemory { weights, activations: plan.total_bytes() };
        // The device holds the weights now: the host keeps only the constants a run returns.
        for (id, v) in graph.values.iter_mut().enumerate() {
            if !graph.outputs.contains(&id) {
                v.constant = None;
                v.stored = None;
            }
        }
        log::debug!(
            "{origin}: wgpu: {} dispatches, {} buffers ({} bytes; {} without reuse), weights {weights} bytes",
            dispatches.len(),
            plan.buffers.len(),
            plan.total_bytes(),
            plan.unshared_bytes
        );
        let session = Box::new(WgpuStage {
            origin: origin.to_string(),
            gpu,
            stage: stage.clone(),
            graph,
            dispatches,
            buffers,
            inputs,
            readback,
            offsets,
            index_checks,
            checks_at,
            memory,
            lock: Mutex::new(()),
        });
        super::checked::wrap_onnx(stage, onnx, origin, session)
    }
}

/// A host tensor as device words; `Err` holds the first integer the device's i32 cannot hold.
fn to_words(t: &Tensor) -> Result<Vec<u32>, i64> {
    Ok(match &t.data {
        TensorData::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
        TensorData::I64(v) => {
            let mut out = Vec::with_capacity(v.len());
            for &x in v {
                out.push(i32::try_from(x).map_err(|_| x)? as u32);
            }
            out
        }
        TensorData::I32(v) => v.iter().map(|&x| x as u32).collect(),
        TensorData::U8(v) => v.iter().map(|&x| x as u32).collect(),
        TensorData::I8(v) => v.iter().map(|&x| x as i32 as u32).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| x as u32).collect(),
    })
}

/// Device words back into a host tensor of `dt` (an `Err` is a bug: the loader types every
/// output it accepts).
fn from_words(words: &[u32], shape: Vec<usize>, dt: DatumType) -> Result<Tensor, NodeError> {
    let data = match dt {
        DatumType::F32 => TensorData::F32(words.iter().map(|&w| f32::from_bits(w)).collect()),
        DatumType::I64 => TensorData::I64(words.iter().map(|&w| w as i32 as i64).collect()),
        DatumType::I32 => TensorData::I32(words.iter().map(|&w| w as i32).collect()),
        DatumType::Bool => TensorData::Bool(words.iter().map(|&w| w != 0).collect()),
        DatumType::U8 => TensorData::U8(words.iter().map(|&w| w as u8).collect()),
        DatumType::I8 => TensorData::I8(words.iter().map(|&w| w as i32 as i8).collect()),
        other => return Err(NodeError::Internal(format!("output type {other:?} is not supported"))),
    };
    Tensor::new(shape, data).map_err(|e| NodeError::Internal(e.to_string()))
}

/// A constant graph output as a host tensor.
fn constant_tensor(t: &tract_onnx::prelude::Tensor) -> Result<Tensor, NodeError> {
    let words = kernels::words(t)?;
    from_words(&words, t.shape().to_vec(), t.datum_type())
}

impl WgpuStage {
    /// Checks the inputs against the manifest and writes them into their device buffers.
    fn write_inputs(&self, inputs: &[Tensor]) -> Result<(), BackendError> {
        if inputs.len() != self.stage.inputs.len() {
            return Err(BackendError::InputCount {
                origin: self.origin.clone(),
                given: inputs.len(),
                expected: self.stage.inputs.len(),
                names: self.stage.inputs.iter().map(|t| t.name.clone()).collect(),
            });
        }
        for ((t, info), id) in inputs.iter().zip(&self.stage.inputs).zip(&self.inputs) {
            let input_err =
                |reason: String| BackendError::Input { origin: self.origin.clone(), name: info.name.clone(), reason };
            t.check(info, &info.name).map_err(|e| input_err(e.to_string()))?;
            let Some(id) = id else { continue };
            let Some(buf) = &self.buffers[*id] else { continue };
            let words = to_words(t).map_err(|x| input_err(format!("value {x} does not fit the device's i32")))?;
            if !words.is_empty() {
                self.gpu.queue.write_buffer(buf, 0, bytemuck::cast_slice(&words));
            }
        }
        Ok(())
    }
}

impl WgpuStage {
    fn device_err(&self, error: DeviceError) -> BackendError {
        BackendError::Device { origin: self.origin.clone(), backend: NAME, error }
    }

    fn internal(&self, reason: String) -> BackendError {
        BackendError::Internal { origin: self.origin.clone(), backend: NAME, reason }
    }

    /// The first out-of-range index the sites recorded (`words`: [`SITE_WORDS`] per site), in
    /// run order.
    fn index_error(&self, words: &[u32]) -> Result<(), BackendError> {
        for (site, w) in words.chunks_exact(SITE_WORDS).enumerate() {
            if w[0] != 0 {
                let node = &self.graph.nodes[self.index_checks.sites[site]];
                return Err(BackendError::IndexOutOfRange {
                    origin: self.origin.clone(),
                    node: node.label(),
                    index: i64::from(w[1] as i32),
                    axis: w[2] as usize,
                    len: w[3] as usize,
                    input: None,
                });
            }
        }
        Ok(())
    }
}

impl StageSession for WgpuStage {
    fn memory(&self) -> StageMemory {
        self.memory
    }

    fn backend(&self) -> &'static str {
        NAME
    }

    fn profile(&self, inputs: Vec<Tensor>, runs: usize) -> Result<Option<NodeProfile>, BackendError> {
        profile::profile(self, inputs, runs).map(Some)
    }

    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        if self.gpu.lost.load(Ordering::SeqCst) {
            return Err(self.device_err(DeviceError::Lost));
        }
        let _guard = self.lock.lock().map_err(|_| self.internal("a previous run panicked".into()))?;
        let queue = &self.gpu.queue;
        self.write_inputs(&inputs)?;
        let device = &self.gpu.device;
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(&self.origin) });
        if let Some(checks) = &self.index_checks.buffer {
            encoder.clear_buffer(checks, 0, None);
        }
        {
            let mut pass =
                encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            for d in &self.dispatches {
                d.record(&mut pass);
            }
        }
        if let Some(checks) = &self.index_checks.buffer {
            encoder.copy_buffer_to_buffer(checks, 0, &self.readback, self.checks_at, self.index_checks.bytes());
        }
        for (&o, &off) in self.graph.outputs.iter().zip(&self.offsets) {
            if self.graph.values[o].constant.is_some() {
                continue;
            }
            if let Some(buf) = &self.buffers[o] {
                encoder.copy_buffer_to_buffer(buf, 0, &self.readback, off, device_bytes(&self.graph, o));
            }
        }
        let index = queue.submit(Some(encoder.finish()));
        self.gpu.map_read(&self.readback, index).map_err(|e| self.device_err(e))?;
        let slice = self.readback.slice(..);
        if self.gpu.lost.load(Ordering::SeqCst) {
            self.readback.unmap();
            return Err(self.device_err(DeviceError::LostDuringRun));
        }
        let mut outputs = Vec::with_capacity(self.graph.outputs.len());
        {
            let data = slice.get_mapped_range().map_err(|e| self.device_err(DeviceError::Readback(e.to_string())))?;
            let words: &[u32] = bytemuck::cast_slice(&data);
            let start = (self.checks_at / 4) as usize;
            if let Err(e) = self.index_error(&words[start..start + self.index_checks.sites.len() * SITE_WORDS]) {
                drop(data);
                self.readback.unmap();
                return Err(e);
            }
            for (&o, &off) in self.graph.outputs.iter().zip(&self.offsets) {
                let v = &self.graph.values[o];
                let t = if let Some(c) = &v.constant {
                    constant_tensor(c)
                } else {
                    let start = (off / 4) as usize;
                    from_words(&words[start..start + v.len()], v.shape.clone(), v.dtype)
                };
                outputs.push(t.map_err(|e| self.internal(format!("output `{}`: {e}", v.name)))?);
            }
        }
        self.readback.unmap();
        Ok(outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ErrorKind;

    #[test]
    fn errors_say_what_a_caller_can_do() {
        let origin = || "x.eqa [head]".to_string();
        let node = |error: NodeError| BackendError::Node {
            origin: origin(),
            backend: NAME,
            node: "Conv (c)".into(),
            error: Box::new(error),
        };
        let device = BackendError::Device { origin: origin(), backend: NAME, error: DeviceError::Lost };
        assert_eq!(device.kind(), ErrorKind::Device);
        assert_eq!(
            device.to_string(),
            "x.eqa [head]: wgpu: the GPU device was lost; reload the package (or load it on the tract backend)"
        );
        assert!(!device.to_string().contains("--"), "no CLI flags in library errors: {device}");
        let index = BackendError::IndexOutOfRange {
            origin: origin(),
            node: "Gather (g)".into(),
            index: -4,
            axis: 0,
            len: 3,
            input: None,
        };
        assert_eq!(index.kind(), ErrorKind::Input);
        assert_eq!(
            index.to_string(),
            "x.eqa [head]: Gather (g): index -4 is out of range for axis 0 of length 3 (valid: -3 to 2)"
        );
        assert_eq!(
            BackendError::InputCount { origin: origin(), given: 1, expected: 2, names: vec![] }.kind(),
            ErrorKind::Input
        );
        assert_eq!(node(NodeError::Rank { rank: 7, max: 6 }).kind(), ErrorKind::Unsupported);
        assert_eq!(node(NodeError::TooLarge("big".into())).kind(), ErrorKind::Unsupported);
        let bug = node(NodeError::Internal("no buffer".into()));
        assert_eq!(bug.kind(), ErrorKind::Internal);
        assert_eq!(bug.to_string(), "x.eqa [head]: wgpu cannot load the graph: Conv (c): internal error: no buffer");
        let source = std::error::Error::source(&bug).map(|e| e.to_string());
        assert_eq!(source.as_deref(), Some("internal error: no buffer"));
    }
}
