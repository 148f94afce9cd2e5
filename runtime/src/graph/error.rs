//! Why an op set cannot run a node of the graph, or a backend cannot build it: [`NodeError`].

use thiserror::Error;
use tract_onnx::prelude::DatumType;

/// Why a node cannot run on a backend (its attributes, element types, shapes), or why building
/// it failed. The loader prefixes the node's label (`Gather (embed): …`).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NodeError {
    /// An attribute the kernel does not read: running the node would silently ignore it.
    #[error("attribute `{0}` is not supported")]
    Attribute(String),
    /// An input that fixes shapes or parameters at load is not a constant.
    #[error("{what} `{name}` must be a constant")]
    NotConstant { what: &'static str, name: String },
    /// An input of an element type the kernel does not take.
    #[error("{what} `{name}` is {dtype:?} (only f32 supported)")]
    NotF32 { what: &'static str, name: String, dtype: DatumType },
    /// A tensor of higher rank than the kernel iterates over.
    #[error("rank {rank} (at most {max} supported)")]
    Rank { rank: usize, max: usize },
    /// An axis attribute outside the tensor's rank.
    #[error("axis {axis} out of range for rank {rank}")]
    Axis { axis: i64, rank: usize },
    /// Shapes that do not broadcast (numpy rules).
    #[error("shapes {a:?} and {b:?} do not broadcast ({x} vs {y})")]
    Broadcast { a: Vec<usize>, b: Vec<usize>, x: usize, y: usize },
    /// A constant index outside its axis (ONNX allows `-len ..= len - 1`).
    #[error("index {index} is out of range for axis {axis} of length {len}")]
    IndexOutOfRange { index: i64, axis: usize, len: usize },
    /// More than one dispatch or binding of the device can cover.
    #[error("{0}")]
    TooLarge(String),
    /// Something else the node asks for that the kernel does not do (an attribute's value, a
    /// type, a shape), said in words.
    #[error("{0}")]
    Unsupported(String),
    /// A shader that the device does not compile or validate.
    #[error("shader `{shader}` entry `{entry}` does not compile: {message}")]
    Shader { shader: String, entry: String, message: String },
    /// A device object the device refused (a validation error).
    #[error("{0}")]
    Validation(String),
    /// A broken invariant of the backend: a bug, not the model's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl NodeError {
    /// Whether the error is a bug of the backend rather than something the model asks for.
    pub fn is_internal(&self) -> bool {
        matches!(self, NodeError::Internal(_))
    }
}

impl From<String> for NodeError {
    fn from(why: String) -> NodeError {
        NodeError::Unsupported(why)
    }
}

impl From<&str> for NodeError {
    fn from(why: &str) -> NodeError {
        NodeError::Unsupported(why.to_string())
    }
}
