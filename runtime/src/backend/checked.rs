//! The checks every backend's sessions go through, written once: [`wrap`] puts a
//! [`CheckedSession`] around any [`StageSession`].
//!
//! At load it checks that the graph's inputs are the manifest's (by name) and its outputs are the
//! manifest's (names, in order). On every run it checks the inputs against the manifest (count,
//! element type, shape), checks the values of integer inputs that reach a `Gather` as indices
//! (see [`gather_bounds`]), and checks every output against the manifest.
//!
//! **The output-type rule** (one rule for every backend): a stage returns exactly the element
//! types and shapes its manifest declares. A graph output whose element type edgeqa tensors do not
//! carry (f16, f64, …), or that differs from the manifest's, is an error naming the stage, the
//! output and both types — at load where the backend knows the types then
//! ([`check_output_type`]), else at run. Nothing is converted: a silently changed type is a
//! silently wrong number.

use std::collections::HashMap;

use super::{BackendError, NodeProfile, StageMemory, StageSession};
use crate::manifest::{DType, StageInfo, TensorInfo};
use crate::onnx::{self as onnx_pb, pb};
use crate::tensor::{Tensor, TensorData};

/// Ops an index passes through unchanged between a graph input and a `Gather`.
const INDEX_PRESERVING: &[&str] = &["Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity"];

/// A `Gather` whose indices come straight from a stage input, with the range ONNX allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatherBound {
    /// Position of the stage input in the manifest's inputs.
    pub input: usize,
    /// The `Gather` node's name (its output's name when it has none).
    pub node: String,
    /// The gathered axis of the data (non-negative).
    pub axis: usize,
    /// Size `n` of that axis: indices must lie in `[-n, n-1]`.
    pub size: usize,
}

/// Every `Gather` of the top-level graph whose indices are a stage input of an integer type,
/// possibly through [`INDEX_PRESERVING`] ops, and whose data's shape is known at load (an
/// initializer, a `Constant` or a stage input).
pub fn gather_bounds(model: &pb::ModelProto, stage: &StageInfo) -> Vec<GatherBound> {
    let Some(g) = &model.graph else { return vec![] };
    let mut producer: HashMap<&str, &pb::NodeProto> = HashMap::new();
    let mut shapes: HashMap<&str, Vec<usize>> = HashMap::new();
    for t in &g.initializer {
        shapes.insert(&t.name, t.dims.iter().map(|&d| d.max(0) as usize).collect());
    }
    for n in &g.node {
        for o in &n.output {
            producer.insert(o, n);
        }
        if n.op_type == "Constant"
            && let Some(t) = n.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.as_ref())
            && let Some(o) = n.output.first()
        {
            shapes.insert(o, t.dims.iter().map(|&d| d.max(0) as usize).collect());
        }
    }
    for t in &stage.inputs {
        shapes.entry(&t.name).or_insert_with(|| t.shape.clone());
    }
    let mut out = Vec::new();
    for n in g.node.iter().filter(|n| n.op_type == "Gather" && (n.domain.is_empty() || n.domain == "ai.onnx")) {
        let (Some(data), Some(indices)) = (n.input.first(), n.input.get(1)) else { continue };
        let Some(shape) = shapes.get(data.as_str()) else { continue };
        let mut source = indices.as_str();
        while let Some(p) = producer.get(source).filter(|p| INDEX_PRESERVING.contains(&p.op_type.as_str())) {
            match p.input.first() {
                Some(i) => source = i,
                None => break,
            }
        }
        let Some(input) = stage.inputs.iter().position(|t| t.name == source) else { continue };
        if !matches!(stage.inputs[input].dtype, DType::I64 | DType::I32 | DType::U8 | DType::I8) {
            continue;
        }
        let axis = n.attribute.iter().find(|a| a.name == "axis").map_or(0, |a| a.i);
        let rank = shape.len() as i64;
        let axis = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&axis) {
            continue; // the backend reports the bad axis itself
        }
        let node = if n.name.is_empty() { n.output.first().cloned().unwrap_or_default() } else { n.name.clone() };
        out.push(GatherBound { input, node, axis: axis as usize, size: shape[axis as usize] });
    }
    out
}

/// Checks a graph output's element type at load: `got` is the backend's name for the type and
/// `carried` its edgeqa dtype (`None` when edgeqa tensors do not carry it). See the module docs.
pub fn check_output_type(
    origin: &str,
    backend: &'static str,
    info: &TensorInfo,
    got: &str,
    carried: Option<DType>,
) -> Result<(), BackendError> {
    let reason = match carried {
        None => format!(
            "output `{}` has element type {got}, which edgeqa tensors do not carry (f32, i64, i32, u8, i8, bool); \
             end the graph with a Cast to one of them (edgeqa never converts output types)",
            info.name
        ),
        Some(d) if d != info.dtype => format!(
            "output `{}` has element type {} but the manifest declares {}; rebuild the package from this graph",
            info.name,
            d.name(),
            info.dtype.name()
        ),
        Some(_) => return Ok(()),
    };
    Err(BackendError::Load { origin: origin.to_string(), backend, reason })
}

/// A session whose inputs and outputs are checked against the manifest on every run.
pub struct CheckedSession {
    origin: String,
    stage: StageInfo,
    gathers: Vec<GatherBound>,
    inner: Box<dyn StageSession>,
}

/// Wraps a backend's freshly loaded session (see the module docs); `model` is the stage's graph.
/// Fails when the graph's inputs or outputs are not the manifest's.
pub fn wrap(
    stage: &StageInfo,
    model: &pb::ModelProto,
    origin: &str,
    inner: Box<dyn StageSession>,
) -> Result<Box<dyn StageSession>, BackendError> {
    let inputs: Vec<String> = onnx_pb::graph_inputs(model).into_iter().map(|t| t.name).collect();
    let outputs: Vec<String> = onnx_pb::graph_outputs(model).into_iter().map(|t| t.name).collect();
    let mut session = check_names(stage, inputs, outputs, origin, inner)?;
    session.gathers = gather_bounds(model, stage);
    Ok(Box::new(session))
}

/// [`wrap`] for a graph that is not ONNX (a TFLite model): `inputs` and `outputs` are the
/// graph's names, in its order. Indices are checked by the backend itself.
pub fn wrap_names(
    stage: &StageInfo,
    inputs: Vec<String>,
    outputs: Vec<String>,
    origin: &str,
    inner: Box<dyn StageSession>,
) -> Result<Box<dyn StageSession>, BackendError> {
    Ok(Box::new(check_names(stage, inputs, outputs, origin, inner)?))
}

fn check_names(
    stage: &StageInfo,
    inputs: Vec<String>,
    outputs: Vec<String>,
    origin: &str,
    inner: Box<dyn StageSession>,
) -> Result<CheckedSession, BackendError> {
    let backend = inner.backend();
    let load_err = |reason: String| BackendError::Load { origin: origin.to_string(), backend, reason };
    for name in &inputs {
        if !stage.inputs.iter().any(|t| &t.name == name) {
            return Err(load_err(format!(
                "graph input `{name}` is not in the manifest (was the package built from this graph?)"
            )));
        }
    }
    if let Some(t) = stage.inputs.iter().find(|t| !inputs.contains(&t.name)) {
        return Err(load_err(format!(
            "the manifest's input `{}` is not an input of the graph (was the package built from this graph?)",
            t.name
        )));
    }
    let declared: Vec<&str> = stage.outputs.iter().map(|t| t.name.as_str()).collect();
    if outputs != declared {
        return Err(load_err(format!(
            "the graph's outputs {outputs:?} are not the manifest's {declared:?} (names, in order); \
             rebuild the package from this graph"
        )));
    }
    Ok(CheckedSession { origin: origin.to_string(), stage: stage.clone(), gathers: vec![], inner })
}

/// [`wrap`] for a backend that has only the ONNX bytes at hand.
pub fn wrap_onnx(
    stage: &StageInfo,
    onnx: &[u8],
    origin: &str,
    inner: Box<dyn StageSession>,
) -> Result<Box<dyn StageSession>, BackendError> {
    let model = onnx_pb::decode(onnx, origin).map_err(|e| BackendError::Load {
        origin: origin.to_string(),
        backend: inner.backend(),
        reason: e.to_string(),
    })?;
    wrap(stage, &model, origin, inner)
}

/// The values of an integer tensor as i64 (`None` for other types).
fn integers(t: &Tensor) -> Option<Box<dyn Iterator<Item = i64> + '_>> {
    Some(match &t.data {
        TensorData::I64(v) => Box::new(v.iter().copied()),
        TensorData::I32(v) => Box::new(v.iter().map(|&x| x as i64)),
        TensorData::U8(v) => Box::new(v.iter().map(|&x| x as i64)),
        TensorData::I8(v) => Box::new(v.iter().map(|&x| x as i64)),
        TensorData::F32(_) | TensorData::Bool(_) => return None,
    })
}

impl CheckedSession {
    fn check_inputs(&self, inputs: &[Tensor]) -> Result<(), BackendError> {
        if inputs.len() != self.stage.inputs.len() {
            let names: Vec<&str> = self.stage.inputs.iter().map(|t| t.name.as_str()).collect();
            return Err(BackendError::InputCount {
                origin: self.origin.clone(),
                given: inputs.len(),
                expected: self.stage.inputs.len(),
                names: names.iter().map(|n| n.to_string()).collect(),
            });
        }
        for (t, info) in inputs.iter().zip(&self.stage.inputs) {
            t.check(info, &info.name).map_err(|e| BackendError::Input {
                origin: self.origin.clone(),
                name: info.name.clone(),
                reason: e.to_string(),
            })?;
        }
        for b in &self.gathers {
            let t = &inputs[b.input];
            let Some(values) = integers(t) else { continue };
            let n = b.size as i64;
            if let Some((at, v)) = values.enumerate().find(|&(_, v)| v < -n || v >= n) {
                return Err(BackendError::IndexOutOfRange {
                    origin: self.origin.clone(),
                    node: format!("Gather ({})", b.node),
                    index: v,
                    axis: b.axis,
                    len: b.size,
                    input: Some((self.stage.inputs[b.input].name.clone(), at)),
                });
            }
        }
        Ok(())
    }

    fn check_outputs(&self, outputs: &[Tensor]) -> Result<(), BackendError> {
        let run_err =
            |reason: String| BackendError::Run { origin: self.origin.clone(), backend: self.inner.backend(), reason };
        if outputs.len() != self.stage.outputs.len() {
            return Err(run_err(format!(
                "the graph gave {} outputs, the manifest declares {}",
                outputs.len(),
                self.stage.outputs.len()
            )));
        }
        for (t, info) in outputs.iter().zip(&self.stage.outputs) {
            if t.dtype() != info.dtype || t.shape != info.shape {
                return Err(run_err(format!(
                    "output `{}` came back as {} {:?} but the manifest declares {} {:?} \
                     (edgeqa never converts outputs; rebuild the package from this graph)",
                    info.name,
                    t.dtype().name(),
                    t.shape,
                    info.dtype.name(),
                    info.shape
                )));
            }
        }
        Ok(())
    }
}

impl StageSession for CheckedSession {
    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        self.check_inputs(&inputs)?;
        let outputs = self.inner.run(inputs)?;
        self.check_outputs(&outputs)?;
        Ok(outputs)
    }

    fn memory(&self) -> StageMemory {
        self.inner.memory()
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn profile(&self, inputs: Vec<Tensor>, runs: usize) -> Result<Option<NodeProfile>, BackendError> {
        self.check_inputs(&inputs)?;
        self.inner.profile(inputs, runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// A session that returns fixed outputs.
    struct Fixed(Vec<Tensor>);

    impl StageSession for Fixed {
        fn run(&self, _: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
            Ok(self.0.clone())
        }
        fn memory(&self) -> StageMemory {
            StageMemory::default()
        }
        fn backend(&self) -> &'static str {
            "fixed"
        }
    }

    fn info(name: &str, dtype: DType, shape: &[usize]) -> TensorInfo {
        TensorInfo { name: name.into(), dtype, shape: shape.to_vec() }
    }

    fn value(name: &str) -> pb::ValueInfoProto {
        pb::ValueInfoProto { name: name.into(), ..Default::default() }
    }

    fn node(op: &str, name: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
        pb::NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    /// `ids` [1,4] i64 → Reshape → Gather from a [10, 3] table → `y`.
    fn embedding() -> (StageInfo, pb::ModelProto) {
        let table = pb::TensorProto {
            name: "table".into(),
            dims: vec![10, 3],
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: vec![0.0; 30],
            ..Default::default()
        };
        let model = pb::ModelProto {
            graph: Some(pb::GraphProto {
                node: vec![
                    node("Reshape", "flat", &["ids", "shape"], "ids4"),
                    node("Gather", "embed", &["table", "ids4"], "y"),
                ],
                initializer: vec![table],
                input: vec![value("ids")],
                output: vec![value("y")],
                ..Default::default()
            }),
            ..Default::default()
        };
        let stage = StageInfo {
            name: "model".into(),
            section: "model".into(),
            inputs: vec![info("ids", DType::I64, &[1, 4])],
            outputs: vec![info("y", DType::F32, &[4, 3])],
            format: Default::default(),
        };
        (stage, model)
    }

    fn checked(outputs: Vec<Tensor>) -> Box<dyn StageSession> {
        let (stage, model) = embedding();
        wrap(&stage, &model, "m.onnx", Box::new(Fixed(outputs))).unwrap()
    }

    fn ok_output() -> Vec<Tensor> {
        vec![Tensor::f32(vec![4, 3], vec![0.0; 12]).unwrap()]
    }

    #[test]
    fn finds_a_gather_fed_by_an_input_through_a_reshape() {
        let (stage, model) = embedding();
        assert_eq!(
            gather_bounds(&model, &stage),
            vec![GatherBound { input: 0, node: "embed".into(), axis: 0, size: 10 }]
        );
    }

    #[test]
    fn indices_outside_minus_n_to_n_minus_1_are_refused_before_running() {
        let s = checked(ok_output());
        let ids = |v: Vec<i64>| vec![Tensor::i64(vec![1, 4], v).unwrap()];
        assert!(s.run(ids(vec![0, 9, -1, -10])).is_ok());
        let e = s.run(ids(vec![0, 1, 10, 2])).unwrap_err().to_string();
        assert!(e.contains("m.onnx") && e.contains("input `ids` at flat position 2"), "{e}");
        assert!(e.contains("Gather (embed): index 10 is out of range") && e.contains("valid: -10 to 9"), "{e}");
        let e = s.run(ids(vec![-11, 0, 0, 0])).unwrap_err().to_string();
        assert!(e.contains("index -11"), "{e}");
    }

    #[test]
    fn inputs_are_checked_against_the_manifest() {
        let s = checked(ok_output());
        let e = s.run(vec![Tensor::f32(vec![1, 4], vec![0.0; 4]).unwrap()]).unwrap_err().to_string();
        assert!(e.contains("input `ids`") && e.contains("expected i64 [1, 4], got f32 [1, 4]"), "{e}");
        let e = s.run(vec![Tensor::i64(vec![4], vec![0; 4]).unwrap()]).unwrap_err().to_string();
        assert!(e.contains("expected i64 [1, 4], got i64 [4]"), "{e}");
        let e = s.run(vec![]).unwrap_err().to_string();
        assert!(e.contains("0 inputs given, 1 expected"), "{e}");
    }

    #[test]
    fn outputs_of_another_type_or_shape_are_an_error_naming_stage_and_output() {
        let ids = || vec![Tensor::i64(vec![1, 4], vec![0; 4]).unwrap()];
        assert_eq!(checked(ok_output()).run(ids()).unwrap(), ok_output());
        let e = checked(vec![Tensor::i64(vec![4, 3], vec![0; 12]).unwrap()]).run(ids()).unwrap_err().to_string();
        assert!(e.contains("m.onnx") && e.contains("output `y` came back as i64 [4, 3]"), "{e}");
        assert!(e.contains("declares f32 [4, 3]"), "{e}");
        let e = checked(vec![Tensor::f32(vec![12], vec![0.0; 12]).unwrap()]).run(ids()).unwrap_err().to_string();
        assert!(e.contains("as f32 [12]"), "{e}");
        let e = checked(vec![]).run(ids()).unwrap_err().to_string();
        assert!(e.contains("gave 0 outputs, the manifest declares 1"), "{e}");
    }

    #[test]
    fn graph_inputs_and_outputs_must_be_the_manifests() {
        let (mut stage, model) = embedding();
        stage.outputs[0].name = "z".into();
        let e = wrap(&stage, &model, "m.onnx", Box::new(Fixed(vec![]))).err().unwrap().to_string();
        assert!(e.contains("outputs [\"y\"] are not the manifest's [\"z\"]"), "{e}");
        let (mut stage, model) = embedding();
        stage.inputs[0].name = "tokens".into();
        let e = wrap(&stage, &model, "m.onnx", Box::new(Fixed(vec![]))).err().unwrap().to_string();
        assert!(e.contains("graph input `ids` is not in the manifest"), "{e}");
        let (stage, model) = embedding();
        assert!(wrap_onnx(&stage, &model.encode_to_vec(), "m.onnx", Box::new(Fixed(vec![]))).is_ok());
    }

    #[test]
    fn an_uncarried_or_different_output_type_is_refused_at_load() {
        let y = info("y", DType::F32, &[2]);
        let e = check_output_type("m.onnx", "tract", &y, "F16", None).unwrap_err().to_string();
        assert!(e.contains("m.onnx") && e.contains("output `y` has element type F16"), "{e}");
        let e = check_output_type("m.onnx", "tract", &y, "I64", Some(DType::I64)).unwrap_err().to_string();
        assert!(e.contains("element type i64 but the manifest declares f32"), "{e}");
        assert!(check_output_type("m.onnx", "tract", &y, "F32", Some(DType::F32)).is_ok());
    }
}
