//! Backends run one stage graph each. The tract backend is the CPU path; every backend implements
//! [`Backend`] and passes the same shared test suite.

use thiserror::Error;

use crate::manifest::StageInfo;
use crate::tensor::Tensor;

pub mod tract;

/// A backend failed to load or run a stage.
#[derive(Debug, Error)]
pub enum BackendError {
    #[error("{origin}: unsupported ONNX node(s) for the {backend} backend: {}", .nodes.join("; "))]
    Unsupported { origin: String, backend: &'static str, nodes: Vec<String> },
    #[error("{origin}: {backend} cannot load the graph: {reason}")]
    Load { origin: String, backend: &'static str, reason: String },
    #[error("{origin}: input `{name}`: {reason}")]
    Input { origin: String, name: String, reason: String },
    #[error("{origin}: {backend} failed while running: {reason}")]
    Run { origin: String, backend: &'static str, reason: String },
}

/// Which backend the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// The best backend that can run the package on this machine.
    #[default]
    Auto,
    /// tract on the CPU.
    Tract,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "tract" => Ok(BackendChoice::Tract),
            other => Err(format!("unknown backend `{other}` (choose auto or tract)")),
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
}

/// Memory a loaded stage holds and needs while it runs, known at load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StageMemory {
    /// Constant tensors (weights, packed weights) kept by the backend.
    pub weights: u64,
    /// Peak bytes of intermediate tensors alive at once, from a liveness walk of the plan.
    pub activations: u64,
}

/// A loaded stage, ready to run many times.
pub trait StageSession: Send + Sync {
    /// Runs the stage: `inputs` in the manifest's input order, outputs in its output order.
    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError>;
    /// What the stage holds and needs (see [`StageMemory`]).
    fn memory(&self) -> StageMemory;
}

/// Resolves a choice into a backend, with the reason for the pick (logged and shown by `--json`).
pub fn select(choice: BackendChoice) -> (Box<dyn Backend>, String) {
    match choice {
        BackendChoice::Tract => (Box::new(tract::TractBackend::new()), "requested with --backend tract".into()),
        BackendChoice::Auto => {
            (Box::new(tract::TractBackend::new()), "auto: tract is the only backend built into this binary".into())
        }
    }
}
