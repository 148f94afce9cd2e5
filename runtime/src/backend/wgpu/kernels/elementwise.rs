//! Elementwise f32 ops: broadcasting binary arithmetic (`binary.wgsl`) and unary activations
//! and math (`unary.wgsl`).

use tract_onnx::prelude::DatumType;

use super::{Binding, Build, Kernel, Shader, broadcast, broadcast_strides, const_floats, padded, want_f32};
use crate::graph::{Node, OutputType, Value};

const BINARY: Shader = Shader { name: "binary", source: include_str!("binary.wgsl") };
const UNARY: Shader = Shader { name: "unary", source: include_str!("unary.wgsl") };

/// Add, Sub, Mul, Div, Pow and two-input Max/Min with numpy broadcasting.
pub(crate) struct Binary;

const BINARY_OPS: &[&str] = &["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"];

impl Kernel for Binary {
    fn ops(&self) -> &'static [&'static str] {
        BINARY_OPS
    }

    fn infer(&self, _node: &Node, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, String> {
        let [Some(a), Some(b)] = inputs else {
            return Err(format!("{} inputs (exactly 2 supported)", inputs.len()));
        };
        want_f32(a, "input")?;
        want_f32(b, "input")?;
        let shape = broadcast(&a.shape, &b.shape)?;
        padded(&shape, &vec![0; shape.len()])?;
        Ok(vec![OutputType::new(DatumType::F32, shape)])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), String> {
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

/// Op types in `apply_unary`'s code order.
const UNARY_OPS: &[&str] = &[
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
fn parameters(node: &Node, inputs: &[Option<&Value>]) -> Result<(f32, f32), String> {
    Ok(match node.op.as_str() {
        "HardSigmoid" => (node.float("alpha", 0.2), node.float("beta", 0.5)),
        "LeakyRelu" => (node.float("alpha", 0.01), 0.0),
        "Elu" => (node.float("alpha", 1.0), 0.0),
        "Clip" => {
            let bound = |i: usize, attr: &str, default: f32| -> Result<f32, String> {
                match inputs.get(i).copied().flatten() {
                    Some(v) => const_floats(v)
                        .and_then(|f| f.first().copied())
                        .ok_or_else(|| format!("bound `{}` must be a constant", v.name)),
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

    fn infer(&self, node: &Node, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, String> {
        let Some(Some(x)) = inputs.first() else { return Err("missing input".into()) };
        want_f32(x, "input")?;
        parameters(node, inputs)?;
        Ok(vec![OutputType::new(DatumType::F32, x.shape.clone())])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), String> {
        let op = UNARY_OPS.iter().position(|o| *o == b.node.op).expect("claimed op") as u32;
        let inputs: Vec<Option<&Value>> = b.node.inputs.iter().map(|i| i.map(|i| &b.graph.values[i])).collect();
        let (alpha, beta) = parameters(b.node, &inputs)?;
        let n = b.output(0).len();
        let p = [n as u32, op, alpha.to_bits(), beta.to_bits()];
        let bindings = [Binding::Value(b.input_id(0)), Binding::Value(b.output_id(0))];
        b.dispatch_1d(&UNARY, "main", &p, &bindings, n)
    }
}
