//! Reading ONNX protos: decoding, declared inputs/outputs, op histogram, opset.
//!
//! Shared by `edgeqa inspect`, the backends' load-time checks and the converter.

use std::collections::{BTreeMap, HashSet};

use prost::Message;
use thiserror::Error;
pub use tract_onnx::pb;

use crate::manifest::DType;

/// An ONNX file that cannot be used.
#[derive(Debug, Error)]
pub enum OnnxError {
    #[error("{origin}: not an ONNX model ({reason}); export it with torch.onnx.export or onnx.save")]
    Decode { origin: String, reason: String },
    #[error("{origin}: the model has no graph")]
    NoGraph { origin: String },
    #[error("{origin}: {what}")]
    Unsupported { origin: String, what: String },
}

/// A declared dimension: fixed, or symbolic (named or unnamed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    Symbolic(String),
}

/// A graph input or output as declared in the ONNX file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredTensor {
    pub name: String,
    /// `None` when the element type is one edgeqa does not feed (e.g. strings).
    pub dtype: Option<DType>,
    pub onnx_type: i32,
    /// `None` when the file declares no shape.
    pub dims: Option<Vec<Dim>>,
}

/// Decodes an ONNX model; `origin` names the file in errors.
pub fn decode(bytes: &[u8], origin: &str) -> Result<pb::ModelProto, OnnxError> {
    let model = pb::ModelProto::decode(bytes)
        .map_err(|e| OnnxError::Decode { origin: origin.to_string(), reason: e.to_string() })?;
    if model.graph.is_none() {
        // Random bytes often decode as an empty message: treat a graph-less model as "not ONNX".
        return Err(OnnxError::NoGraph { origin: origin.to_string() });
    }
    Ok(model)
}

/// Maps an ONNX `TensorProto.DataType` to an edgeqa dtype.
pub fn dtype_from_onnx(t: i32) -> Option<DType> {
    use pb::tensor_proto::DataType as D;
    match D::try_from(t).ok()? {
        D::Float => Some(DType::F32),
        D::Int64 => Some(DType::I64),
        D::Int32 => Some(DType::I32),
        D::Uint8 => Some(DType::U8),
        D::Int8 => Some(DType::I8),
        D::Bool => Some(DType::Bool),
        _ => None,
    }
}

/// ONNX name of a `TensorProto.DataType` code, for messages.
pub fn onnx_type_name(t: i32) -> String {
    pb::tensor_proto::DataType::try_from(t)
        .map(|d| d.as_str_name().to_lowercase())
        .unwrap_or_else(|_| format!("type {t}"))
}

fn declared(v: &pb::ValueInfoProto) -> DeclaredTensor {
    let (onnx_type, dims) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => {
            let dims = t.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v > 0 => {
                            Dim::Fixed(*v as usize)
                        }
                        Some(pb::tensor_shape_proto::dimension::Value::DimParam(p)) => Dim::Symbolic(p.clone()),
                        _ => Dim::Symbolic(String::new()),
                    })
                    .collect()
            });
            (t.elem_type, dims)
        }
        _ => (0, None),
    };
    DeclaredTensor { name: v.name.clone(), dtype: dtype_from_onnx(onnx_type), onnx_type, dims }
}

/// The graph's real inputs (initializers listed as inputs are skipped) in declaration order.
pub fn graph_inputs(model: &pb::ModelProto) -> Vec<DeclaredTensor> {
    let Some(g) = &model.graph else { return vec![] };
    g.input.iter().filter(|i| !g.initializer.iter().any(|init| init.name == i.name)).map(declared).collect()
}

/// The graph's outputs in declaration order.
pub fn graph_outputs(model: &pb::ModelProto) -> Vec<DeclaredTensor> {
    model.graph.as_ref().map(|g| g.output.iter().map(declared).collect()).unwrap_or_default()
}

/// Default-domain opset version, if declared.
pub fn opset(model: &pb::ModelProto) -> Option<i64> {
    model.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map(|o| o.version)
}

/// Count of each op type in the main graph (`domain:Op` for non-default domains).
pub fn op_histogram(model: &pb::ModelProto) -> BTreeMap<String, usize> {
    let mut h = BTreeMap::new();
    for n in model.graph.iter().flat_map(|g| &g.node) {
        *h.entry(op_key(n)).or_insert(0) += 1;
    }
    h
}

/// `Op` or `domain:Op` for a node.
pub fn op_key(n: &pb::NodeProto) -> String {
    if n.domain.is_empty() || n.domain == "ai.onnx" { n.op_type.clone() } else { format!("{}:{}", n.domain, n.op_type) }
}

/// Number of weight parameters (elements of all initializers).
pub fn parameter_count(model: &pb::ModelProto) -> usize {
    model
        .graph
        .iter()
        .flat_map(|g| &g.initializer)
        .map(|t| t.dims.iter().map(|&d| d.max(0) as usize).product::<usize>())
        .sum()
}

/// Bytes of all initializers at their stored element type.
pub fn initializer_bytes(model: &pb::ModelProto) -> u64 {
    use pb::tensor_proto::DataType as T;
    model
        .graph
        .iter()
        .flat_map(|g| &g.initializer)
        .map(|t| {
            let n: u64 = t.dims.iter().map(|&d| d.max(0) as u64).product();
            let size = match T::try_from(t.data_type) {
                Ok(T::Double | T::Int64 | T::Uint64) => 8,
                Ok(T::Float | T::Int32 | T::Uint32) => 4,
                Ok(T::Float16 | T::Bfloat16 | T::Int16 | T::Uint16) => 2,
                _ => 1,
            };
            n * size
        })
        .sum()
}

/// Every initializer stored outside the file (external data), which a package cannot carry.
pub fn external_initializers(model: &pb::ModelProto) -> Vec<String> {
    model
        .graph
        .iter()
        .flat_map(|g| &g.initializer)
        .filter(|t| {
            t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) || !t.external_data.is_empty()
        })
        .map(|t| t.name.clone())
        .collect()
}
/// Most dimensions a tensor of a stage graph may have; an `axis` beyond it is an error.
pub const MAX_RANK: i64 = 64;

/// How a stage graph is miswired ([`check_wiring`]); each names the node (op and name, or
/// index) or tensor, without the file, which the caller adds.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WiringError {
    #[error("the model has no graph")]
    NoGraph,
    #[error("{node}: the node names no output; {REEXPORT}")]
    NoOutput { node: String },
    #[error("{node}: has {outputs} outputs, the op has exactly one; {REEXPORT}")]
    OutputCount { node: String, outputs: usize },
    #[error("{node}: attribute `{attribute}` holds {value}, beyond any tensor's rank (at most {MAX_RANK}); {REEXPORT}")]
    AxisBeyondRank { node: String, attribute: String, value: i64 },
    #[error("{node}: `perm` {perm:?} is not a permutation of 0..{len} (each axis exactly once); {REEXPORT}", len = perm.len())]
    NotAPermutation { node: String, perm: Vec<i64> },
    #[error("{node}: input `{input}` is no graph input, initializer or node output; {REEXPORT}")]
    UnknownInput { node: String, input: String },
    #[error("graph output `{output}` is no graph input, initializer or node output; {REEXPORT}")]
    UnknownOutput { output: String },
}

/// What a [`WiringError`] asks the user to do.
const REEXPORT: &str = "the graph is malformed, re-export the model";

/// Checks how the main graph's nodes are wired, which every backend relies on: each node names
/// at least one output (`Constant` and `Shape` exactly one), every node input and graph output
/// is a graph input, an initializer or some node's output, no `axis`/`axes` attribute is
/// beyond [`MAX_RANK`] (tract loops for ages on such an axis), and a `Transpose`'s `perm` names
/// each axis once (tract allocates without end on a repeated one).
pub fn check_wiring(model: &pb::ModelProto) -> Result<(), WiringError> {
    let g = model.graph.as_ref().ok_or(WiringError::NoGraph)?;
    let label = |ix: usize, n: &pb::NodeProto| {
        let name = if n.name.is_empty() { format!("node {ix}") } else { n.name.clone() };
        format!("{} ({name})", op_key(n))
    };
    let mut known: HashSet<&str> = HashSet::new();
    known.extend(g.input.iter().map(|v| v.name.as_str()));
    known.extend(g.initializer.iter().map(|t| t.name.as_str()));
    for (ix, n) in g.node.iter().enumerate() {
        let outputs = n.output.iter().filter(|o| !o.is_empty()).count();
        let default_domain = n.domain.is_empty() || n.domain == "ai.onnx";
        if outputs == 0 {
            return Err(WiringError::NoOutput { node: label(ix, n) });
        }
        if default_domain && matches!(n.op_type.as_str(), "Constant" | "Shape") && n.output.len() != 1 {
            return Err(WiringError::OutputCount { node: label(ix, n), outputs: n.output.len() });
        }
        known.extend(n.output.iter().filter(|o| !o.is_empty()).map(String::as_str));
        for a in n.attribute.iter().filter(|a| a.name == "axis" || a.name == "axes") {
            if let Some(value) =
                std::iter::once(a.i).chain(a.ints.iter().copied()).find(|v| !(-MAX_RANK..MAX_RANK).contains(v))
            {
                return Err(WiringError::AxisBeyondRank { node: label(ix, n), attribute: a.name.clone(), value });
            }
        }
        if default_domain
            && n.op_type == "Transpose"
            && let Some(perm) = n.attribute.iter().find(|a| a.name == "perm").map(|a| &a.ints)
        {
            let mut seen = vec![false; perm.len()];
            for &p in perm {
                match usize::try_from(p).ok().and_then(|p| seen.get_mut(p)) {
                    Some(seen) if !*seen => *seen = true,
                    _ => return Err(WiringError::NotAPermutation { node: label(ix, n), perm: perm.clone() }),
                }
            }
        }
    }
    for (ix, n) in g.node.iter().enumerate() {
        if let Some(missing) = n.input.iter().find(|i| !i.is_empty() && !known.contains(i.as_str())) {
            return Err(WiringError::UnknownInput { node: label(ix, n), input: missing.clone() });
        }
    }
    if let Some(o) = g.output.iter().find(|o| !known.contains(o.name.as_str())) {
        return Err(WiringError::UnknownOutput { output: o.name.clone() });
    }
    Ok(())
}
