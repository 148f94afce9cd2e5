//! Elementwise f32 ops: broadcasting binary arithmetic (`binary.wgsl`) and unary activations
//! and math (`unary.wgsl`).

use tract_onnx::prelude::DatumType;

use super::{Binding, Build, Kernel, Shader, broadcast, broadcast_strides, const_floats, padded, want_f32};
use crate::graph::{Graph, Node, NodeError, OutputType, Value};

const BINARY: Shader =
    Shader { name: "binary", source: concat!(include_str!("binary_ops.wgsl"), include_str!("binary.wgsl")) };
const UNARY: Shader =
    Shader { name: "unary", source: concat!(include_str!("unary_ops.wgsl"), include_str!("unary.wgsl")) };

/// Add, Sub, Mul, Div, Pow and two-input Max/Min with numpy broadcasting.
pub(crate) struct Binary;

/// Op types in `apply_binary`'s code order (`binary_ops.wgsl`).
pub(crate) const BINARY_OPS: &[&str] = &["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"];

impl Kernel for Binary {
    fn ops(&self) -> &'static [&'static str] {
        BINARY_OPS
    }

    fn infer(&self, _node: &Node, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let [Some(a), Some(b)] = inputs else {
            return Err(format!("{} inputs (exactly 2 supported)", inputs.len()).into());
        };
        want_f32(a, "input")?;
        want_f32(b, "input")?;
        let shape = broadcast(&a.shape, &b.shape)?;
        padded(&shape, &vec![0; shape.len()])?;
        Ok(vec![OutputType::new(DatumType::F32, shape)])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let op = BINARY_OPS.iter().position(|o| *o == b.node.op).expect("claimed op") as u32;
        let out = b.output(0).shape.clone();
        let (shape, sa) = padded(&out, &broadcast_strides(&b.input(0).shape, &out))?;
        let (_, sb) = padded(&out, &broadcast_strides(&b.input(1).shape, &out))?;
        let n = b.output(0).len();
        let mut p = vec![n as u32, op];
        p.extend(shape);
        p.extend(sa);
        p.extend(sb);
        let bindings = [Binding::Value(b.input_id(0)), Binding::Value(b.input_id(1)), Binding::Value(b.output_id(0))];
        b.dispatch_1d(&BINARY, "main", &p, &bindings, n)
    }
}

/// Unary activations and math.
pub(crate) struct Unary;

/// Op types in `apply_unary`'s code order (`unary_ops.wgsl`).
pub(crate) const UNARY_OPS: &[&str] = &[
    "Relu",
    "Sigmoid",
    "Tanh",
    "HardSigmoid",
    "HardSwish",
    "Erf",
    "Clip",
    "LeakyRelu",
    "Sqrt",
    "Exp",
    "Log",
    "Neg",
    "Abs",
    "Reciprocal",
    "Floor",
    "Ceil",
    "Gelu",
    "Softplus",
    "Elu",
    "Sin",
    "Cos",
    "Swish",
];

/// `alpha`, `beta` of a unary node (Clip's bounds from attributes or constant inputs).
fn parameters(node: &Node, inputs: &[Option<&Value>]) -> Result<(f32, f32), NodeError> {
    Ok(match node.op.as_str() {
        "HardSigmoid" => (node.float("alpha", 0.2), node.float("beta", 0.5)),
        "LeakyRelu" => (node.float("alpha", 0.01), 0.0),
        "Elu" => (node.float("alpha", 1.0), 0.0),
        "Clip" => {
            let bound = |i: usize, attr: &str, default: f32| -> Result<f32, NodeError> {
                match inputs.get(i).copied().flatten() {
                    Some(v) => const_floats(v)
                        .and_then(|f| f.first().copied())
                        .ok_or_else(|| NodeError::NotConstant { what: "bound", name: v.name.clone() }),
                    None => Ok(node.float(attr, default)),
                }
            };
            (bound(1, "min", f32::MIN)?, bound(2, "max", f32::MAX)?)
        }
        "Gelu" => {
            if node.string("approximate", "none") != "none" {
                return Err("approximate=tanh is not supported".into());
            }
            (0.0, 0.0)
        }
        _ => (0.0, 0.0),
    })
}

impl Kernel for Unary {
    fn ops(&self) -> &'static [&'static str] {
        UNARY_OPS
    }

    fn infer(&self, node: &Node, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let Some(Some(x)) = inputs.first() else { return Err("missing input".into()) };
        want_f32(x, "input")?;
        parameters(node, inputs)?;
        Ok(vec![OutputType::new(DatumType::F32, x.shape.clone())])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let op = UNARY_OPS.iter().position(|o| *o == b.node.op).expect("claimed op") as u32;
        let inputs: Vec<Option<&Value>> = b.node.inputs.iter().map(|i| i.map(|i| &b.graph.values[i])).collect();
        let (alpha, beta) = parameters(b.node, &inputs)?;
        let n = b.output(0).len();
        let p = [n as u32, op, alpha.to_bits(), beta.to_bits()];
        let bindings = [Binding::Value(b.input_id(0)), Binding::Value(b.output_id(0))];
        b.dispatch_1d(&UNARY, "main", &p, &bindings, n)
    }
}

/// How an f32 elementwise node runs as one step of a fused chain (`chain.rs`): its code there
/// (`< 100` unary, `100 +` binary) and parameters, or `None` when it is not such a node.
pub(crate) fn chain_step(node: &Node, graph: &Graph) -> Option<(u32, f32, f32)> {
    let inputs: Vec<Option<&Value>> = node.inputs.iter().map(|i| i.map(|i| &graph.values[i])).collect();
    let f32_in = |i: usize| inputs.get(i).copied().flatten().is_some_and(|v| v.dtype == DatumType::F32);
    if node.outputs.len() != 1 || graph.values[node.outputs[0]].dtype != DatumType::F32 {
        return None;
    }
    if let Some(code) = BINARY_OPS.iter().position(|o| *o == node.op) {
        return (inputs.len() == 2 && f32_in(0) && f32_in(1)).then_some((100 + code as u32, 0.0, 0.0));
    }
    let code = UNARY_OPS.iter().position(|o| *o == node.op)?;
    let (alpha, beta) = parameters(node, &inputs).ok()?;
    f32_in(0).then_some((code as u32, alpha, beta))
}
