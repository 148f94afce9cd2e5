//! The graph IR a compiling backend (wgpu) works on: a stage's ONNX graph with every tensor's
//! element type and shape fixed at load, constant sub-graphs folded into constants, and nodes
//! nothing reads removed.
//!
//! Loading needs the backend's op set ([`OpSet`]): it infers each node's output shapes, and every
//! node it does not know (or knows but cannot run with these attributes and shapes) is collected,
//! so the error lists all of them at once. Constant folding runs on tract, the CPU reference
//! engine that ships in every build: a node whose inputs are all constants is evaluated once at
//! load, whatever its op, and `Shape` of a tensor whose shape is known becomes a constant.

mod attrs;
mod error;
pub mod fold;
pub mod plan;
pub mod stored;

pub use attrs::{Attrs, ReadAttrs};
pub use error::NodeError;
pub use stored::{StoredForm, StoredWeight};

use std::collections::HashMap;
use std::sync::Arc;

use thiserror::Error;
use tract_onnx::prelude::{DatumType, Tensor};

use crate::onnx::{self as onnx_pb, pb};
use edgeqa_format::manifest::QuantizedTensor;

/// Index of a [`Value`] in [`Graph::values`].
pub type ValueId = usize;

/// A tensor of the graph: an input, a constant or a node output.
#[derive(Debug, Clone)]
pub struct Value {
    /// The ONNX tensor name.
    pub name: String,
    pub dtype: DatumType,
    pub shape: Vec<usize>,
    /// The value, for initializers and folded nodes.
    pub constant: Option<Arc<Tensor>>,
    /// A quantized weight kept as the package stores it ([`stored`]): a constant whose f32
    /// values are not materialized ([`Value::constant_tensor`] computes them).
    pub stored: Option<Arc<StoredWeight>>,
}

impl Value {
    /// A tensor computed at run time (a graph input or node output) of `dtype` and `shape`.
    pub fn computed(name: &str, dtype: DatumType, shape: Vec<usize>) -> Value {
        Value { name: name.to_string(), dtype, shape, constant: None, stored: None }
    }

    /// Whether the value is known at load (held, or stored quantized).
    pub fn is_constant(&self) -> bool {
        self.constant.is_some() || self.stored.is_some()
    }

    /// The value as a tensor when it is a constant; a stored weight is dequantized (a new f32
    /// tensor each call).
    pub fn constant_tensor(&self) -> Option<Arc<Tensor>> {
        self.constant.clone().or_else(|| self.stored.as_ref().map(|s| Arc::new(s.dequantize())))
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the tensor occupies at its element type.
    pub fn bytes(&self) -> u64 {
        (self.len() * self.dtype.size_of()) as u64
    }
}

/// An operation that runs at inference time.
#[derive(Debug, Clone)]
pub struct Node {
    /// The ONNX node name (or its first output's name when the node has none).
    pub name: String,
    /// The ONNX op type.
    pub op: String,
    /// Inputs in ONNX order; `None` for an omitted optional input.
    pub inputs: Vec<Option<ValueId>>,
    /// The outputs the graph names, in ONNX order (omitted optional outputs are left out).
    pub outputs: Vec<ValueId>,
    /// The ONNX output position of each entry of `outputs` (LSTM's `Y_h` alone is `[1]`).
    pub output_slots: Vec<usize>,
    pub attributes: Vec<pb::AttributeProto>,
}

impl Node {
    /// `Op (name)`, how nodes are named in messages.
    pub fn label(&self) -> String {
        format!("{} ({})", self.op, self.name)
    }

    /// Names of the attributes present, for "unsupported attribute" checks.
    pub fn attribute_names(&self) -> impl Iterator<Item = &str> {
        self.attributes.iter().map(|a| a.name.as_str())
    }
}

impl ReadAttrs for Node {
    /// Reads without recording (see [`Attrs`] for kernels).
    fn attr(&self, name: &str) -> Option<&pb::AttributeProto> {
        self.attributes.iter().find(|a| a.name == name)
    }
}

/// The inferred type of one node output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputType {
    pub dtype: DatumType,
    pub shape: Vec<usize>,
}

impl OutputType {
    /// An output of `dtype` and `shape`.
    pub fn new(dtype: DatumType, shape: Vec<usize>) -> OutputType {
        OutputType { dtype, shape }
    }
}

/// What a backend can run: output types for a node, or why it cannot run it.
pub trait OpSet {
    /// Whether the backend has the op type at all.
    fn knows(&self, op: &str) -> bool;
    /// `None` when the op type is unknown to the backend; otherwise the node's output types, or
    /// why this node (attributes, element types, shapes) cannot run.
    fn infer(&self, node: &Node, inputs: &[Option<&Value>]) -> Option<Result<Vec<OutputType>, NodeError>>;
}

/// A stage graph that cannot be loaded into the IR.
#[derive(Debug, Error)]
pub enum GraphError {
    #[error("{origin}: {reason}")]
    Invalid { origin: String, reason: String },
    /// Every node the op set cannot run, as `Op (name): why`.
    #[error("{origin}: {} unsupported node(s): {}", .nodes.len(), .nodes.join("; "))]
    Unsupported { origin: String, nodes: Vec<String> },
}

/// A loaded stage graph.
#[derive(Debug, Clone)]
pub struct Graph {
    pub values: Vec<Value>,
    /// Nodes that run, in a valid execution order.
    pub nodes: Vec<Node>,
    /// Graph inputs in ONNX order.
    pub inputs: Vec<ValueId>,
    /// Graph outputs in ONNX order (an output may be a constant or an input).
    pub outputs: Vec<ValueId>,
    /// Nodes folded into constants at load.
    pub folded: usize,
    /// Quantized weights taken as stored ([`stored`]) and the nodes of their dequantizing
    /// sub-graphs, which were neither folded nor kept.
    pub stored: usize,
    pub stored_nodes: usize,
    /// The default-domain opset (op semantics that changed between opsets depend on it).
    pub opset: i64,
}

/// A graph input with its element type and shape fixed (from the manifest).
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub name: String,
    pub dtype: DatumType,
    pub shape: Vec<usize>,
}

/// Ops never folded even with constant inputs (randomness, bodies).
const NEVER_FOLD: &[&str] = &[
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
    "If",
    "Loop",
    "Scan",
];

impl Graph {
    /// Builds the IR of an ONNX model with its inputs fixed by `inputs` (every graph input that is
    /// not an initializer must be listed). `stored` are the package's records of the stage's
    /// quantized weights (`Manifest::packed_weights`): each one the graph bears out is kept as
    /// stored instead of folded ([`stored`]); pass `&[]` for a plain ONNX model.
    pub fn load(
        model: &pb::ModelProto,
        inputs: &[InputSpec],
        stored: &[QuantizedTensor],
        ops: &dyn OpSet,
        origin: &str,
    ) -> Result<Graph, GraphError> {
        let invalid = |reason: String| GraphError::Invalid { origin: origin.to_string(), reason };
        check_wiring(model).map_err(|e| invalid(e.to_string()))?;
        let g = model.graph.as_ref().ok_or_else(|| invalid("the model has no graph".into()))?;
        let opset = onnx_pb::opset(model).unwrap_or(13);
        let mut values: Vec<Value> = Vec::new();
        let mut by_name: HashMap<String, ValueId> = HashMap::new();
        let provider = tract_onnx::data_resolver::default();
        for t in &g.initializer {
            let tensor = tract_onnx::tensor::load_tensor(&*provider, t, None)
                .map_err(|e| invalid(format!("initializer `{}`: {e:#}", t.name)))?;
            add(&mut values, &mut by_name, constant(&t.name, tensor));
        }
        let mut graph_inputs = Vec::new();
        for vi in &g.input {
            if by_name.contains_key(&vi.name) {
                // An initializer listed as an input (ONNX IR < 4 style): it stays a constant.
                continue;
            }
            let spec = inputs.iter().find(|s| s.name == vi.name).ok_or_else(|| {
                invalid(format!("graph input `{}` has no fixed shape (is it in the manifest?)", vi.name))
            })?;
            let id = add(&mut values, &mut by_name, Value::computed(&vi.name, spec.dtype, spec.shape.clone()));
            graph_inputs.push(id);
        }
        // Translate once: the records the graph bears out, by the nodes of their sub-graphs.
        let wiring = stored::Wiring::new(g);
        let mut claims: Vec<Option<StoredWeight>> = Vec::new();
        let mut claimed: HashMap<usize, usize> = HashMap::new();
        for record in stored {
            let constant = |name: &str| by_name.get(name).and_then(|&id| values[id].constant.clone());
            match stored::claim(&wiring, opset, record, &constant) {
                Ok(c) if c.nodes.iter().all(|ix| !claimed.contains_key(ix)) => {
                    for ix in c.nodes {
                        claimed.insert(ix, claims.len());
                    }
                    claims.push(Some(c.weight));
                }
                Ok(_) => log::debug!("{origin}: weight `{}`: its sub-graph is another record's; folded", record.tensor),
                Err(why) => log::warn!(
                    "{origin}: weight `{}` ({}): stored form not taken ({why}); folded instead",
                    record.tensor,
                    record.format
                ),
            }
        }
        let stored_nodes = claimed.len();
        let mut nodes: Vec<Node> = Vec::new();
        let mut unsupported: Vec<String> = Vec::new();
        let mut folded = 0;
        for (ix, n) in g.node.iter().enumerate() {
            if let Some(&c) = claimed.get(&ix) {
                // A node of a dequantizing sub-graph: the weight's own node adds the weight.
                if let Some(weight) = claims[c].take_if(|w| g.node[ix].output.first() == Some(&w.value_name)) {
                    let v = Value::computed(&weight.value_name, DatumType::F32, weight.shape.clone());
                    add(&mut values, &mut by_name, Value { stored: Some(Arc::new(weight)), ..v });
                }
                continue;
            }
            let name = if !n.name.is_empty() {
                n.name.clone()
            } else {
                n.output.first().cloned().unwrap_or_else(|| format!("node{ix}"))
            };
            let label = format!("{} ({name})", onnx_pb::op_key(n));
            let default_domain = n.domain.is_empty() || n.domain == "ai.onnx";
            let mut node_inputs = Vec::with_capacity(n.input.len());
            let mut unknown_input = false;
            for i in &n.input {
                if i.is_empty() {
                    node_inputs.push(None);
                } else if let Some(&id) = by_name.get(i) {
                    node_inputs.push(Some(id));
                } else {
                    // Produced by a node we could not type (reported already) or missing.
                    unknown_input = true;
                }
            }
            if n.op_type == "Constant" && default_domain {
                let out = single_output(n).map_err(|e| invalid(format!("{label}: {e}")))?;
                let tensor = constant_node(n).map_err(|e| invalid(format!("{label}: {e}")))?;
                add(&mut values, &mut by_name, constant(out, tensor));
                folded += 1;
                continue;
            }
            let node = Node {
                name: name.clone(),
                op: n.op_type.clone(),
                inputs: node_inputs,
                outputs: Vec::new(),
                output_slots: n.output.iter().enumerate().filter(|(_, o)| !o.is_empty()).map(|(k, _)| k).collect(),
                attributes: n.attribute.clone(),
            };
            if !default_domain {
                unsupported.push(format!("{label}: domain `{}` is not supported", n.domain));
                continue;
            }
            if unknown_input {
                if !n.input.iter().all(|i| i.is_empty() || by_name.contains_key(i)) {
                    let missing: Vec<&String> =
                        n.input.iter().filter(|i| !i.is_empty() && !by_name.contains_key(*i)).collect();
                    // Inputs that no earlier node produces at all are an invalid graph; inputs of
                    // unsupported nodes are already reported.
                    if missing.iter().all(|m| !g.node[..ix].iter().any(|p| p.output.contains(m))) {
                        return Err(invalid(format!("{label}: input `{}` is not produced before it", missing[0])));
                    }
                }
                if n.op_type != "Shape" && !ops.knows(&node.op) {
                    unsupported.push(format!("{label}: op not supported"));
                }
                continue;
            }
            let input_values: Vec<Option<&Value>> = node.inputs.iter().map(|i| i.map(|i| &values[i])).collect();
            // Fold: `Shape` of a typed tensor, or any node whose inputs are all constants.
            if n.op_type == "Shape"
                && let Some(Some(v)) = input_values.first()
            {
                let out = single_output(n).map_err(|e| invalid(format!("{label}: {e}")))?;
                let rank = v.shape.len() as i64;
                let clamp = |x: i64| if x < 0 { (x + rank).max(0) } else { x.min(rank) } as usize;
                let (start, end) = (clamp(node.int("start", 0)), clamp(node.int("end", rank)));
                let dims: Vec<i64> = v.shape[start..end.max(start)].iter().map(|&d| d as i64).collect();
                let t = Tensor::from_shape(&[dims.len()], &dims).map_err(|e| invalid(format!("{label}: {e}")))?;
                add(&mut values, &mut by_name, constant(out, t));
                folded += 1;
                continue;
            }
            let all_constant = input_values.iter().flatten().all(|v| v.is_constant());
            if all_constant && !NEVER_FOLD.contains(&n.op_type.as_str()) {
                let ins: Vec<(String, Arc<Tensor>)> = n
                    .input
                    .iter()
                    .zip(&input_values)
                    .filter_map(|(name, v)| Some((name.clone(), v.as_ref()?.constant_tensor()?)))
                    .collect();
                match fold::evaluate_node(opset, n, &ins) {
                    Ok(outs) => {
                        for (out, t) in n.output.iter().zip(outs) {
                            if !out.is_empty() {
                                add(&mut values, &mut by_name, constant(out, t));
                            }
                        }
                        folded += 1;
                        continue;
                    }
                    Err(e) => log::debug!("{origin}: {label}: constant node not folded ({e:#}); it runs instead"),
                }
            }
            // Output ids are assigned in order right after inference (ops like Split read
            // their output count from the node).
            let mut node = node;
            node.outputs = (0..n.output.iter().filter(|o| !o.is_empty()).count()).map(|k| values.len() + k).collect();
            let input_values: Vec<Option<&Value>> = node.inputs.iter().map(|i| i.map(|i| &values[i])).collect();
            match ops.infer(&node, &input_values) {
                None => unsupported.push(format!("{label}: op not supported")),
                Some(Err(why)) => unsupported.push(format!("{label}: {why}")),
                Some(Ok(types)) => {
                    if types.len() < n.output.iter().filter(|o| !o.is_empty()).count() {
                        unsupported.push(format!("{label}: only {} output(s) supported", types.len()));
                        continue;
                    }
                    let names = n.output.iter().filter(|o| !o.is_empty());
                    for ((out, t), &want) in names.zip(types).zip(&node.outputs) {
                        let id = add(&mut values, &mut by_name, Value::computed(out, t.dtype, t.shape));
                        debug_assert_eq!(id, want);
                    }
                    nodes.push(node);
                }
            }
        }
        if !unsupported.is_empty() {
            return Err(GraphError::Unsupported { origin: origin.to_string(), nodes: unsupported });
        }
        let mut outputs = Vec::new();
        for o in &g.output {
            let id = *by_name
                .get(&o.name)
                .ok_or_else(|| invalid(format!("graph output `{}` is produced by no node", o.name)))?;
            outputs.push(id);
        }
        let taken = claims.iter().filter(|c| c.is_none()).count();
        let mut graph =
            Graph { values, nodes, inputs: graph_inputs, outputs, folded, stored: taken, stored_nodes, opset };
        graph.remove_dead_nodes();
        graph.materialize_stored();
        Ok(graph)
    }

    /// Gives every stored weight that is read other than as a kernel's packable weight (or is a
    /// graph output) its f32 values, so that only [`stored::takes_stored`] inputs see a
    /// [`StoredWeight`].
    fn materialize_stored(&mut self) {
        let mut other: Vec<ValueId> = self.outputs.clone();
        for n in &self.nodes {
            for (slot, i) in n.inputs.iter().enumerate() {
                if let Some(i) = *i
                    && !stored::takes_stored(&n.op, slot)
                {
                    other.push(i);
                }
            }
        }
        for id in other {
            let v = &mut self.values[id];
            if let Some(s) = v.stored.take() {
                log::debug!("weight `{}` is read as f32 too: dequantized at load", v.name);
                v.constant = Some(Arc::new(s.dequantize()));
                self.stored -= 1;
            }
        }
    }

    /// Drops nodes none of whose outputs reach a graph output.
    fn remove_dead_nodes(&mut self) {
        let mut needed = vec![false; self.values.len()];
        for &o in &self.outputs {
            needed[o] = true;
        }
        let mut keep = vec![false; self.nodes.len()];
        for (ix, n) in self.nodes.iter().enumerate().rev() {
            if n.outputs.iter().any(|&o| needed[o]) {
                keep[ix] = true;
                for &i in n.inputs.iter().flatten() {
                    needed[i] = true;
                }
            }
        }
        let mut it = keep.iter();
        self.nodes.retain(|_| *it.next().unwrap_or(&false));
    }

    /// Bytes of the constants the remaining nodes read.
    pub fn constant_bytes(&self) -> u64 {
        let mut seen = vec![false; self.values.len()];
        let mut total = 0;
        for id in self.nodes.iter().flat_map(|n| n.inputs.iter().flatten()).chain(&self.outputs) {
            let v = &self.values[*id];
            if v.is_constant() && !seen[*id] {
                seen[*id] = true;
                total += v.stored.as_ref().map_or(v.bytes(), |s| s.bytes());
            }
        }
        total
    }
}

pub use crate::onnx::{MAX_RANK, check_wiring};

fn add(values: &mut Vec<Value>, by_name: &mut HashMap<String, ValueId>, v: Value) -> ValueId {
    by_name.insert(v.name.clone(), values.len());
    values.push(v);
    values.len() - 1
}

fn constant(name: &str, tensor: Tensor) -> Value {
    Value {
        name: name.to_string(),
        dtype: tensor.datum_type(),
        shape: tensor.shape().to_vec(),
        constant: Some(Arc::new(tensor)),
        stored: None,
    }
}

/// Why a `Constant` or `Shape` node cannot be folded at load.
#[derive(Debug, thiserror::Error)]
enum FoldError {
    #[error("its output name is empty; the graph is malformed, re-export the model")]
    EmptyOutput,
    #[error("has {0} outputs, the op has exactly one; the graph is malformed, re-export the model")]
    Outputs(usize),
    #[error("Constant without a value attribute")]
    NoValue,
    #[error("`value` holds no tensor")]
    NoTensor,
    /// tract could not read the tensor (its message).
    #[error("{0}")]
    Tensor(String),
    #[error("attribute `{0}` is not supported (use `value`)")]
    Attribute(String),
}

/// The one output name of a node whose op has exactly one output (`Constant`, `Shape`).
fn single_output(n: &pb::NodeProto) -> Result<&str, FoldError> {
    match n.output.as_slice() {
        [out] if !out.is_empty() => Ok(out),
        [_] => Err(FoldError::EmptyOutput),
        outs => Err(FoldError::Outputs(outs.len())),
    }
}

/// The tensor of a `Constant` node (`value`, `value_float(s)`, `value_int(s)`).
fn constant_node(n: &pb::NodeProto) -> Result<Tensor, FoldError> {
    let a = n.attribute.first().ok_or(FoldError::NoValue)?;
    let provider = tract_onnx::data_resolver::default();
    let tensor = |e: tract_onnx::prelude::TractError| FoldError::Tensor(format!("{e:#}"));
    match a.name.as_str() {
        "value" => {
            let t = a.t.as_ref().ok_or(FoldError::NoTensor)?;
            tract_onnx::tensor::load_tensor(&*provider, t, None).map_err(tensor)
        }
        "value_float" => Ok(Tensor::from(a.f)),
        "value_floats" => Tensor::from_shape(&[a.floats.len()], &a.floats).map_err(tensor),
        "value_int" => Ok(Tensor::from(a.i)),
        "value_ints" => Tensor::from_shape(&[a.ints.len()], &a.ints).map_err(tensor),
        other => Err(FoldError::Attribute(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Knows `Relu` only: one output shaped like its input.
    struct ReluOnly;

    impl OpSet for ReluOnly {
        fn knows(&self, op: &str) -> bool {
            op == "Relu"
        }
        fn infer(&self, node: &Node, inputs: &[Option<&Value>]) -> Option<Result<Vec<OutputType>, NodeError>> {
            if node.op != "Relu" {
                return None;
            }
            let x = inputs.first().copied().flatten()?;
            Some(Ok(vec![OutputType::new(x.dtype, x.shape.clone())]))
        }
    }

    fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
        crate::onnx_builder::node(op, name, inputs, outputs, vec![])
    }

    fn value_float(v: f32) -> pb::AttributeProto {
        pb::AttributeProto { name: "value_float".into(), f: v, r#type: 1, ..Default::default() }
    }

    /// `y = Relu(x)`, `c = Constant(2)`, `s = Shape(x)`; outputs y, c and s.
    fn model(edit: impl FnOnce(&mut pb::GraphProto)) -> pb::ModelProto {
        let vi = |name: &str| pb::ValueInfoProto { name: name.into(), ..Default::default() };
        let mut constant = node("Constant", "c", &[], &["c"]);
        constant.attribute.push(value_float(2.0));
        let mut g = pb::GraphProto {
            node: vec![node("Relu", "relu", &["x"], &["y"]), constant, node("Shape", "shape", &["x"], &["s"])],
            input: vec![vi("x")],
            output: vec![vi("y"), vi("c"), vi("s")],
            ..Default::default()
        };
        edit(&mut g);
        pb::ModelProto {
            graph: Some(g),
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
            ..Default::default()
        }
    }

    /// A stage whose one input is f32 `x` of `shape`.
    fn stage_of_x(shape: Vec<usize>) -> crate::manifest::StageInfo {
        crate::manifest::StageInfo {
            name: "model".into(),
            section: "model".into(),
            inputs: vec![crate::manifest::TensorInfo { name: "x".into(), dtype: crate::manifest::DType::F32, shape }],
            outputs: vec![],
            format: Default::default(),
        }
    }

    fn load(m: &pb::ModelProto) -> Result<Graph, GraphError> {
        let x = InputSpec { name: "x".into(), dtype: DatumType::F32, shape: vec![2, 3] };
        Graph::load(m, &[x], &[], &ReluOnly, "crafted.onnx")
    }

    fn invalid(m: &pb::ModelProto, needles: &[&str]) {
        let e = load(m).unwrap_err();
        assert!(matches!(e, GraphError::Invalid { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.starts_with("crafted.onnx: ") && !msg.contains('\n'), "{msg}");
        for n in needles {
            assert!(msg.contains(n), "`{n}` missing from: {msg}");
        }
        assert_eq!(format!("crafted.onnx: {}", check_wiring(m).unwrap_err()), msg);
    }

    #[test]
    fn well_wired_model_loads() {
        let m = model(|_| {});
        check_wiring(&m).unwrap();
        let g = load(&m).unwrap();
        assert_eq!((g.nodes.len(), g.folded, g.outputs.len()), (1, 2, 3));
        let shape = g.values[g.outputs[2]].constant.as_ref().unwrap();
        assert_eq!(shape.to_plain_array_view::<i64>().unwrap().iter().copied().collect::<Vec<_>>(), [2, 3]);
    }

    #[test]
    fn nodes_without_their_outputs_are_errors_not_panics() {
        // The crafted package of the review: a Constant node that names no output.
        invalid(&model(|g| g.node[1].output.clear()), &["Constant (c): the node names no output", "re-export"]);
        invalid(&model(|g| g.node[1].output = vec![String::new()]), &["Constant (c): the node names no output"]);
        invalid(&model(|g| g.node[1].output.push("d".into())), &["Constant (c): has 2 outputs"]);
        invalid(&model(|g| g.node[2].output.clear()), &["Shape (shape): the node names no output"]);
        invalid(&model(|g| g.node[2].output.push("t".into())), &["Shape (shape): has 2 outputs"]);
        invalid(&model(|g| g.node[0].output.clear()), &["Relu (relu): the node names no output"]);
        let mut unnamed = model(|g| g.node[1].output.clear());
        unnamed.graph.as_mut().unwrap().node[1].name.clear();
        invalid(&unnamed, &["Constant (node 1)"]);
    }

    #[test]
    fn dangling_names_are_errors() {
        invalid(&model(|g| g.node[0].input[0] = "nowhere".into()), &["Relu (relu): input `nowhere` is no graph input"]);
        invalid(&model(|g| g.output[0].name = "lost".into()), &["graph output `lost` is no graph input"]);
        // Produced, but only after it is used: wired, yet not in execution order.
        let late = model(|g| g.node[0].input[0] = "c".into());
        check_wiring(&late).unwrap();
        let e = load(&late).unwrap_err().to_string();
        assert!(e.contains("input `c` is not produced before it"), "{e}");
        assert!(load(&pb::ModelProto::default()).unwrap_err().to_string().contains("no graph"));
    }

    #[test]
    fn axes_beyond_any_rank_are_errors() {
        // Found by the `graph_tract` fuzz target: tract counted up to this LayerNormalization
        // axis (as a usize) and ran for hours.
        let axis = |name: &str, i: i64, ints: Vec<i64>| pb::AttributeProto {
            name: name.into(),
            i,
            ints,
            ..Default::default()
        };
        let m = model(|g| g.node[0].attribute.push(axis("axis", -18014398509481985, vec![])));
        invalid(&m, &["Relu (relu): attribute `axis` holds -18014398509481985, beyond any tensor's rank (at most 64)"]);
        invalid(&model(|g| g.node[0].attribute.push(axis("axes", 0, vec![0, 64]))), &["`axes` holds 64"]);
        check_wiring(&model(|g| g.node[0].attribute.push(axis("axes", 0, vec![-64, 63])))).unwrap();
        // The tract backend checks before tract sees the graph.
        use crate::backend::Backend;
        use prost::Message;
        let mut ln = node("LayerNormalization", "ln", &["x", "w"], &["y"]);
        ln.attribute.push(axis("axis", -18014398509481985, vec![]));
        let m = model(|g| {
            g.node = vec![ln];
            g.output.truncate(1);
            g.initializer.push(pb::TensorProto {
                name: "w".into(),
                dims: vec![3],
                data_type: 1,
                float_data: vec![1.0; 3],
                ..Default::default()
            });
        });
        let stage = stage_of_x(vec![2, 3]);
        let e =
            crate::backend::tract::TractBackend::new().load_stage(&stage, &m.encode_to_vec(), "ln.onnx").err().unwrap();
        assert!(
            e.to_string()
                .starts_with("ln.onnx: tract cannot load the graph: LayerNormalization (ln): attribute `axis`"),
            "{e}"
        );
    }

    #[test]
    fn a_transpose_perm_that_is_no_permutation_is_an_error() {
        let transpose = |perm: Vec<i64>| {
            let mut t = node("Transpose", "t", &["x"], &["y"]);
            t.attribute.push(crate::onnx_builder::attr_ints("perm", &perm));
            model(|g| {
                g.node = vec![t];
                g.output.truncate(1);
            })
        };
        invalid(
            &transpose(vec![1, 1]),
            &["Transpose (t): `perm` [1, 1] is not a permutation of 0..2 (each axis exactly once)", "re-export"],
        );
        invalid(&transpose(vec![0, 2]), &["`perm` [0, 2] is not a permutation of 0..2"]);
        invalid(&transpose(vec![-1, 0]), &["`perm` [-1, 0]"]);
        check_wiring(&transpose(vec![1, 0])).unwrap();
        check_wiring(&transpose(vec![])).unwrap();
        // Found by the `graph_tract` fuzz target: tract allocated without end on a repeated axis.
        // The tract backend checks before tract sees the graph; a permutation of the wrong rank
        // is tract's to refuse, and it does.
        use crate::backend::Backend;
        use prost::Message;
        let typed = |perm: Vec<i64>| {
            let mut m = transpose(perm);
            m.graph.as_mut().unwrap().input = vec![crate::onnx_builder::value_f32("x", &[2, 3, 4])];
            m.encode_to_vec()
        };
        let tract = crate::backend::tract::TractBackend::new();
        let mut stage = stage_of_x(vec![2, 3, 4]);
        let y =
            crate::manifest::TensorInfo { name: "y".into(), dtype: crate::manifest::DType::F32, shape: vec![4, 2, 3] };
        stage.outputs.push(y);
        let e = tract.load_stage(&stage, &typed(vec![1, 1, 2]), "t.onnx").err().unwrap();
        assert!(
            e.to_string().starts_with("t.onnx: tract cannot load the graph: Transpose (t): `perm` [1, 1, 2] is not"),
            "{e}"
        );
        let e = tract.load_stage(&stage, &typed(vec![1, 0]), "t.onnx").err().unwrap().to_string();
        assert!(e.starts_with("t.onnx: ") && !e.contains("has no type"), "{e}");
        let ok = tract.load_stage(&stage, &typed(vec![2, 0, 1]), "t.onnx").unwrap();
        let x = crate::tensor::Tensor::f32(vec![2, 3, 4], (0..24).map(|v| v as f32).collect()).unwrap();
        let y = ok.run(vec![x]).unwrap();
        assert_eq!(
            (y[0].shape.as_slice(), y[0].as_f32().unwrap()[..3].to_vec()),
            (&[4, 2, 3][..], vec![0.0, 4.0, 8.0])
        );
    }

    #[test]
    fn a_node_tract_panics_on_is_not_folded() {
        // Found by the `graph_wgpu` fuzz target: a Transpose without inputs has only constant
        // inputs, so it was folded, and tract indexed its missing input. Now it is left to the
        // op set, which reports it.
        let m = model(|g| g.node[0] = node("Transpose", "t", &[], &["y"]));
        let e = load(&m).unwrap_err();
        assert!(
            matches!(&e, GraphError::Unsupported { nodes, .. } if nodes == &["Transpose (t): op not supported"]),
            "{e}"
        );
        let run = fold::evaluate_node(13, &node("Transpose", "t", &[], &["y"]), &[]).unwrap_err();
        assert!(run.to_string().starts_with("tract panicked evaluating the node: "), "{run}");
    }

    #[test]
    fn reshape_to_an_overflowing_shape_is_unsupported_not_a_panic() {
        // Found by the `graph_wgpu` fuzz target: the wgpu op set multiplied the requested dims
        // without checking for overflow.
        use prost::Message;
        let huge = 1i64 << 62;
        for spec in [vec![huge, huge, -1], vec![huge, huge, 4], vec![-1, huge, huge]] {
            let shape = pb::TensorProto {
                name: "shape".into(),
                dims: vec![spec.len() as i64],
                data_type: pb::tensor_proto::DataType::Int64 as i32,
                int64_data: spec.clone(),
                ..Default::default()
            };
            let m = model(|g| {
                g.node = vec![node("Reshape", "reshape", &["x", "shape"], &["y"])];
                g.initializer.push(shape);
                g.output.truncate(1);
            });
            let stage = stage_of_x(vec![2, 3]);
            let e = crate::backend::wgpu::plan_stage(&stage, &m.encode_to_vec(), &[], "reshape.onnx").unwrap_err();
            assert!(e.to_string().contains("Reshape (reshape): cannot reshape [2, 3]"), "{spec:?}: {e}");
        }
    }

    #[test]
    fn an_axis_of_a_scalar_is_an_error_not_a_panic() {
        // Found by the `graph_wgpu` fuzz target: a Gather on scalar data took axis 0 of a
        // rank-0 shape and indexed past it. No op has an axis on a scalar.
        use prost::Message;
        let mut indices = pb::TensorProto {
            name: "i".into(),
            dims: vec![1],
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            int64_data: vec![0],
            ..Default::default()
        };
        let cases = [
            ("Gather", vec!["x", "i"]),
            ("Concat", vec!["x", "x"]),
            ("Split", vec!["x"]),
            ("LayerNormalization", vec!["x", "x"]),
            ("ReduceSum", vec!["x", "i"]),
        ];
        for (op, inputs) in cases {
            indices.name = "i".into();
            let m = model(|g| {
                g.node = vec![node(op, "n", &inputs, &["y"])];
                g.initializer.push(indices.clone());
                g.output.truncate(1);
            });
            let stage = stage_of_x(vec![]);
            let e = crate::backend::wgpu::plan_stage(&stage, &m.encode_to_vec(), &[], "scalar.onnx").unwrap_err();
            assert!(e.to_string().contains(&format!("{op} (n): ")), "{op}: {e}");
        }
    }
}
