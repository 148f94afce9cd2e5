//! Backends run one stage graph each: [`wgpu`] on the GPU through our WGSL kernels (cargo feature
//! `wgpu`), [`tract`] on the CPU (feature `tract`). Every backend implements [`Backend`]; ONNX's
//! node tests run against each one (`tests/onnx_conformance.rs`). [`select`] resolves a
//! [`BackendChoice`] into the backends this build carries.

use thiserror::Error;

use crate::manifest::{QuantizedTensor, StageFormat, StageInfo};
use crate::tensor::Tensor;

pub mod checked;
#[cfg(any(feature = "tflite", feature = "litert"))]
pub mod tflite;
#[cfg(feature = "tract")]
pub mod tract;
#[cfg(feature = "tract")]
pub mod tract_fixes;
#[cfg(feature = "tract")]
pub mod tract_speed;
#[cfg(feature = "wgpu")]
pub mod wgpu;

/// A backend failed to load or run a stage. [`BackendError::kind`] says what a caller can do
/// about it.
#[derive(Debug, Error)]
pub enum BackendError {
    /// Nodes (ONNX) or operators (TFLite) the backend has no kernel for, or cannot run with
    /// their attributes, types or shapes.
    #[error("{origin}: unsupported {} for the {backend} backend: {}", if matches!(*.backend, "litert" | "tflite") { "operator(s)" } else { "ONNX node(s)" }, .nodes.join("; "))]
    Unsupported { origin: String, backend: &'static str, nodes: Vec<String> },
    /// The graph as a whole cannot be loaded (invalid, or beyond the device's limits).
    #[error("{origin}: {backend} cannot load the graph: {reason}")]
    Load { origin: String, backend: &'static str, reason: String },
    /// Building one node failed (a limit of the device, a shader it does not compile, or a bug).
    #[cfg(feature = "wgpu")]
    #[error("{origin}: {backend} cannot load the graph: {node}: {error}")]
    Node {
        origin: String,
        backend: &'static str,
        /// The node's label, `Op (name)`.
        node: String,
        #[source]
        error: Box<crate::graph::NodeError>,
    },
    /// An input that does not match the manifest (count, shape, type) or the device.
    #[error("{origin}: input `{name}`: {reason}")]
    Input { origin: String, name: String, reason: String },
    /// A run given more or fewer inputs than the manifest lists.
    #[error("{origin}: {given} inputs given, {expected} expected{}", if .names.is_empty() { String::new() } else { format!(" ({})", .names.join(", ")) })]
    InputCount { origin: String, given: usize, expected: usize, names: Vec<String> },
    /// The run failed (a backend without finer errors, such as tract).
    #[error("{origin}: {backend} failed while running: {reason}")]
    Run { origin: String, backend: &'static str, reason: String },
    /// A stage in a format the backend does not run (a TFLite model on tract or wgpu, an ONNX
    /// graph on litert or tflite).
    #[error(
        "{origin}: stage `{stage}` is {} model; the {backend} backend runs {}",
        if *.format == StageFormat::Tflite { "a TFLite" } else { "an ONNX" },
        if *.format == StageFormat::Tflite { "ONNX graphs (TFLite models run on the litert or tflite backend)" } else { "TFLite models (ONNX graphs run on tract or wgpu)" }
    )]
    WrongFormat { origin: String, backend: &'static str, stage: String, format: StageFormat },
    /// A backend this build does not carry (its cargo feature is off).
    #[error("this build of edgeqa has no {backend} backend (it was built without the `{feature}` cargo feature)")]
    NotBuilt { backend: &'static str, feature: &'static str },
    /// An index tensor (Gather's, GatherND's) held an index outside its axis: the input that led
    /// to it is bad; the stage can run other inputs. `input` names the stage input and the flat
    /// position of the index when it was checked there, before running.
    #[error(
        "{origin}: {node}: index {index} is out of range for axis {axis} of length {len} (valid: -{len} to {}){}",
        *.len as i64 - 1,
        .input.as_ref().map_or(String::new(), |(name, at)| format!("; it is input `{name}` at flat position {at}"))
    )]
    IndexOutOfRange {
        origin: String,
        node: String,
        index: i64,
        axis: usize,
        len: usize,
        input: Option<(String, usize)>,
    },
    /// The GPU device is missing, refused, failed or was lost.
    #[cfg(feature = "wgpu")]
    #[error("{origin}: {backend}: {error}")]
    Device {
        origin: String,
        backend: &'static str,
        #[source]
        error: wgpu::DeviceError,
    },
    /// A broken invariant of the backend: a bug.
    #[error("{origin}: {backend}: internal error: {reason}")]
    Internal { origin: String, backend: &'static str, reason: String },
}

/// What a caller can do about a [`BackendError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The device failed or was lost: reload the stage (or the package) and continue, or load
    /// it on another backend.
    Device,
    /// This input is bad (count, shape, type, an out-of-range index): drop it; the stage still
    /// runs other inputs.
    Input,
    /// The backend cannot run this model: load it on another backend.
    Unsupported,
    /// A bug of the backend.
    Internal,
}

impl BackendError {
    /// What a caller can do about the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BackendError::Unsupported { .. }
            | BackendError::Load { .. }
            | BackendError::NotBuilt { .. }
            | BackendError::WrongFormat { .. } => ErrorKind::Unsupported,
            #[cfg(feature = "wgpu")]
            BackendError::Node { error, .. } if error.is_internal() => ErrorKind::Internal,
            #[cfg(feature = "wgpu")]
            BackendError::Node { .. } => ErrorKind::Unsupported,
            BackendError::Input { .. } | BackendError::InputCount { .. } | BackendError::IndexOutOfRange { .. } => {
                ErrorKind::Input
            }
            #[cfg(feature = "wgpu")]
            BackendError::Device { .. } => ErrorKind::Device,
            BackendError::Run { .. } | BackendError::Internal { .. } => ErrorKind::Internal,
        }
    }
}

/// Which backend the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// The best backend that can run the package on this machine.
    #[default]
    Auto,
    /// tract on the CPU.
    Tract,
    /// Our WGSL kernels through wgpu; fails when there is no adapter or a node is unsupported.
    Wgpu,
    /// TFLite models on the TF Lite C library (`tflitec`).
    Tflite,
    /// TFLite models on LiteRT (`libLiteRt.so`).
    Litert,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "tract" => Ok(BackendChoice::Tract),
            "wgpu" => Ok(BackendChoice::Wgpu),
            "tflite" => Ok(BackendChoice::Tflite),
            "litert" => Ok(BackendChoice::Litert),
            other => Err(format!("unknown backend `{other}` (choose auto, wgpu, tract, litert or tflite)")),
        }
    }
}

/// Loads stage graphs for one kind of device.
pub trait Backend: Send + Sync {
    /// Short name shown to users (`tract`).
    fn name(&self) -> &'static str;
    /// Loads a stage with its shapes fixed by the manifest. Every node the backend cannot run
    /// is reported at once in [`BackendError::Unsupported`].
    fn load_stage(&self, stage: &StageInfo, onnx: &[u8], origin: &str) -> Result<Box<dyn StageSession>, BackendError>;
    /// [`Backend::load_stage`] of a package's stage with the package's records of its quantized
    /// weights (`Manifest::packed_weights`): a backend that can take a weight as stored does,
    /// instead of folding it to f32 at load (wgpu, `graph::stored`); the others (tract) load
    /// the graph alone. The answers are the same either way.
    fn load_stage_stored(
        &self,
        stage: &StageInfo,
        onnx: &[u8],
        stored: &[QuantizedTensor],
        origin: &str,
    ) -> Result<Box<dyn StageSession>, BackendError> {
        let _ = stored;
        self.load_stage(stage, onnx, origin)
    }
}

/// Refuses a stage that is not an ONNX graph (a TFLite model) on an ONNX backend.
pub fn require_onnx(stage: &StageInfo, origin: &str, backend: &'static str) -> Result<(), BackendError> {
    require_format(stage, StageFormat::Onnx, origin, backend)
}

/// Refuses a stage whose format is not `format`: [`BackendError::WrongFormat`].
pub fn require_format(
    stage: &StageInfo,
    format: StageFormat,
    origin: &str,
    backend: &'static str,
) -> Result<(), BackendError> {
    if stage.format == format {
        return Ok(());
    }
    Err(BackendError::WrongFormat {
        origin: origin.to_string(),
        backend,
        stage: stage.name.clone(),
        format: stage.format,
    })
}

/// Memory a loaded stage holds and needs while it runs, known at load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StageMemory {
    /// Constant tensors (weights, packed weights) kept by the backend.
    pub weights: u64,
    /// Peak bytes of intermediate tensors alive at once, from a liveness walk of the plan (the
    /// TFLite engines: the heap their load was measured to take besides the model's bytes).
    pub activations: u64,
}

/// A loaded stage, ready to run many times.
pub trait StageSession: Send + Sync {
    /// Runs the stage: `inputs` in the manifest's input order, outputs in its output order.
    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError>;
    /// What the stage holds and needs (see [`StageMemory`]).
    fn memory(&self) -> StageMemory;
    /// Name of the backend the stage runs on (`wgpu`, `tract`).
    fn backend(&self) -> &'static str;
    /// Times each node of the stage over `runs` runs of `inputs` (after one untimed run), or
    /// `None` when the backend cannot time single nodes (both built-in backends can).
    fn profile(&self, inputs: Vec<Tensor>, runs: usize) -> Result<Option<NodeProfile>, BackendError> {
        let _ = (inputs, runs);
        Ok(None)
    }
}

/// Per-node times of one stage, from [`StageSession::profile`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeProfile {
    /// How the times were taken: `gpu timestamps` (device time of each dispatch) or
    /// `wall clock per submission` (each dispatch submitted and waited for alone, so every
    /// node also pays one submission).
    pub clock: &'static str,
    /// Runs timed.
    pub runs: usize,
    /// Nodes in run order.
    pub nodes: Vec<NodeTime>,
}

/// The median of `v` (the mean of the middle two for an even count; 0 when empty).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One node's time in a [`NodeProfile`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeTime {
    /// The op (`Conv`, or an internal one such as `edgeqa.ElementwiseChain`).
    pub op: String,
    /// The node's name in the graph.
    pub name: String,
    /// Dispatches the node records per run.
    pub dispatches: usize,
    /// Median over the runs of the node's time in one run, in microseconds.
    pub median_us: f64,
}

/// Resolves a choice into a backend, with the reason for the pick (logged and shown by `--json`).
///
/// `Auto` takes wgpu when a hardware GPU adapter exists (a GPU device node is checked first, see
/// [`gpu_device_nodes`]), stage by stage (see [`AutoBackend`]): a stage with an unsupported
/// node, one the device cannot hold or compile, or one whose memory plan would take the GPU
/// stages past `budget` (bytes) loads on tract instead and the reason is logged. A software
/// adapter (Mesa's lavapipe or llvmpipe) is not taken by `Auto`: it is correct but slower than
/// tract on the same CPU. `Wgpu` fails without an adapter. A choice of a backend this build does
/// not carry (its cargo feature is off) is [`BackendError::NotBuilt`].
pub fn select(choice: BackendChoice, budget: Option<u64>) -> Result<(Box<dyn Backend>, String), BackendError> {
    match choice {
        BackendChoice::Tract => tract_backend("requested".into()),
        BackendChoice::Wgpu => wgpu_backend(),
        BackendChoice::Tflite => tflite_backend("requested".into()),
        BackendChoice::Litert => litert_backend("requested".into()),
        BackendChoice::Auto => auto_backend(budget),
    }
}

/// [`select`] for a package whose stages are in `format`: `Auto` for TFLite stages takes
/// LiteRT when this build carries it, else the TF Lite C library.
pub fn select_for(
    choice: BackendChoice,
    format: StageFormat,
    budget: Option<u64>,
) -> Result<(Box<dyn Backend>, String), BackendError> {
    match (choice, format) {
        (BackendChoice::Auto, StageFormat::Tflite) if cfg!(feature = "litert") || !cfg!(feature = "tflite") => {
            litert_backend("auto: the package's stages are TFLite models".into())
        }
        (BackendChoice::Auto, StageFormat::Tflite) => {
            tflite_backend("auto: the package's stages are TFLite models".into())
        }
        _ => select(choice, budget),
    }
}

#[cfg(feature = "tflite")]
fn tflite_backend(reason: String) -> Result<(Box<dyn Backend>, String), BackendError> {
    Ok((Box::new(tflite::tflitec::TfliteBackend::new()), reason))
}

#[cfg(not(feature = "tflite"))]
fn tflite_backend(_reason: String) -> Result<(Box<dyn Backend>, String), BackendError> {
    Err(BackendError::NotBuilt { backend: "tflite", feature: "tflite" })
}

#[cfg(feature = "litert")]
fn litert_backend(reason: String) -> Result<(Box<dyn Backend>, String), BackendError> {
    Ok((Box::new(tflite::litert::LitertBackend::new()), reason))
}

#[cfg(not(feature = "litert"))]
fn litert_backend(_reason: String) -> Result<(Box<dyn Backend>, String), BackendError> {
    Err(BackendError::NotBuilt { backend: "litert", feature: "litert" })
}

#[cfg(feature = "tract")]
fn tract_backend(reason: String) -> Result<(Box<dyn Backend>, String), BackendError> {
    Ok((Box::new(tract::TractBackend::new()), reason))
}

#[cfg(not(feature = "tract"))]
fn tract_backend(_reason: String) -> Result<(Box<dyn Backend>, String), BackendError> {
    Err(BackendError::NotBuilt { backend: "tract", feature: "tract" })
}

#[cfg(feature = "wgpu")]
fn wgpu_backend() -> Result<(Box<dyn Backend>, String), BackendError> {
    let gpu = wgpu::WgpuBackend::new().map_err(|error| BackendError::Device {
        origin: "the wgpu backend".into(),
        backend: "wgpu",
        error,
    })?;
    let a = gpu.adapter();
    let reason = format!("requested; adapter {} ({})", a.name, a.device_type);
    Ok((Box::new(gpu), reason))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_backend() -> Result<(Box<dyn Backend>, String), BackendError> {
    Err(BackendError::NotBuilt { backend: "wgpu", feature: "wgpu" })
}

#[cfg(all(feature = "wgpu", feature = "tract"))]
fn auto_backend(budget: Option<u64>) -> Result<(Box<dyn Backend>, String), BackendError> {
    if gpu_device_nodes().is_empty() {
        return tract_backend(
            "auto: tract; no GPU device node (/dev/dri/renderD*, /dev/nvidia*, /dev/nvhost-ctrl-gpu)".into(),
        );
    }
    match wgpu::WgpuBackend::new() {
        Ok(gpu) if gpu.adapter().device_type != "Cpu" => {
            let a = gpu.adapter();
            let reason = format!(
                "auto: GPU adapter {} ({}); stages wgpu cannot run or hold within the budget fall back to tract",
                a.name, a.device_type
            );
            Ok((Box::new(AutoBackend::new(gpu, budget)), reason))
        }
        Ok(gpu) => tract_backend(format!(
            "auto: tract; the only GPU adapter is software ({}), slower than tract",
            gpu.adapter().name
        )),
        Err(why) => tract_backend(format!("auto: tract; {why}")),
    }
}

#[cfg(all(feature = "tract", not(feature = "wgpu")))]
fn auto_backend(_budget: Option<u64>) -> Result<(Box<dyn Backend>, String), BackendError> {
    tract_backend("auto: tract; this build carries no GPU backend".into())
}

#[cfg(all(feature = "wgpu", not(feature = "tract")))]
fn auto_backend(_budget: Option<u64>) -> Result<(Box<dyn Backend>, String), BackendError> {
    let (backend, reason) = wgpu_backend()?;
    Ok((backend, format!("auto: wgpu, the only backend of this build; {reason}")))
}

/// GPU device nodes present on this machine: Mesa and most ARM GPU drivers expose
/// `/dev/dri/renderD*`, NVIDIA `/dev/nvidia*`, Jetson's nvgpu `/dev/nvhost-ctrl-gpu`. `auto`
/// looks here before opening Vulkan: without one, only a software adapter could exist, and
/// loading a Vulkan driver (lavapipe brings LLVM) costs tens of MB of resident memory for nothing.
pub fn gpu_device_nodes() -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut scan = |dir: &str, prefix: &str| {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(prefix) {
                    found.push(e.path());
                }
            }
        }
    };
    scan("/dev/dri", "renderD");
    scan("/dev", "nvidia");
    scan("/dev", "nvhost-ctrl-gpu");
    found
}

#[cfg(all(feature = "wgpu", feature = "tract"))]
/// `auto` with a GPU: each stage on wgpu, or on tract when wgpu cannot load it or its memory
/// plan (weights and peak activations, known at load) would take the stages loaded on wgpu so
/// far past the budget.
pub struct AutoBackend {
    gpu: wgpu::WgpuBackend,
    cpu: tract::TractBackend,
    budget: Option<u64>,
    /// Bytes the stages loaded on wgpu so far hold and need.
    on_gpu: std::sync::Mutex<u64>,
}

#[cfg(all(feature = "wgpu", feature = "tract"))]
impl AutoBackend {
    /// `auto` over `gpu` (any adapter, a software one included) with an optional budget in bytes.
    pub fn new(gpu: wgpu::WgpuBackend, budget: Option<u64>) -> AutoBackend {
        AutoBackend { gpu, cpu: tract::TractBackend::new(), budget, on_gpu: std::sync::Mutex::new(0) }
    }
}

/// Why a stage needing `stage` bytes on the GPU does not fit when `used` bytes are already taken
/// there, or `None` when it fits (always without a budget).
pub fn over_budget(used: u64, stage: StageMemory, budget: Option<u64>) -> Option<String> {
    let budget = budget?;
    let needs = stage.weights + stage.activations;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    (used.saturating_add(needs) > budget).then(|| {
        format!(
            "its wgpu plan ({:.1} MiB: weights {:.1} + activations {:.1}) with the {:.1} MiB of stages already on wgpu exceeds the {:.1} MiB budget",
            mib(needs),
            mib(stage.weights),
            mib(stage.activations),
            mib(used),
            mib(budget)
        )
    })
}

#[cfg(all(feature = "wgpu", feature = "tract"))]
impl Backend for AutoBackend {
    fn name(&self) -> &'static str {
        "auto"
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
        match self.gpu.load_stage_stored(stage, onnx, stored, origin) {
            Ok(s) => {
                let mut used = self.on_gpu.lock().unwrap_or_else(|e| e.into_inner());
                match over_budget(*used, s.memory(), self.budget) {
                    None => {
                        *used += s.memory().weights + s.memory().activations;
                        log::info!("{origin}: on wgpu");
                        Ok(s)
                    }
                    Some(why) => {
                        drop(s);
                        log::info!("{origin}: on tract, because {why}");
                        self.cpu.load_stage(stage, onnx, origin)
                    }
                }
            }
            Err(e) => {
                log::info!("{origin}: on tract, because {e}");
                self.cpu.load_stage(stage, onnx, origin)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_bounds_what_auto_puts_on_the_gpu() {
        let stage = StageMemory { weights: 3 << 20, activations: 1 << 20 };
        assert_eq!(over_budget(0, stage, None), None);
        assert_eq!(over_budget(0, stage, Some(4 << 20)), None);
        let why = over_budget(1, stage, Some(4 << 20)).expect("one byte over");
        assert!(why.contains("4.0 MiB: weights 3.0 + activations 1.0") && why.contains("4.0 MiB budget"), "{why}");
        // No overflow near the top of the range.
        assert!(over_budget(u64::MAX - 1, stage, Some(u64::MAX - 1)).is_some());
    }
}
