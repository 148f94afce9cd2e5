//! Elementwise f32 ops: broadcasting binary arithmetic (`binary.wgsl`) and unary activations
//! and math (`unary.wgsl`). [`UNARY`] and [`BINARY`] are the one source of their op codes: the
//! WGSL switches (`apply_unary`, `apply_binary`, the fused `apply_activation`) are generated
//! from them.

use std::sync::LazyLock;

use tract_onnx::prelude::DatumType;

use super::params::params;
use super::{Binding, Build, Kernel, MAX_RANK, Shader, broadcast, broadcast_strides, const_floats, padded, want_f32};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, Graph, Node, NodeError, OutputType, Value};

/// One binary f32 op: its ONNX type and its WGSL on `x` and `z`. Its code in `apply_binary` is
/// its index in [`BINARY`].
pub(crate) struct BinaryOp {
    pub op: &'static str,
    pub wgsl: &'static str,
}

/// Every binary op, in code order: the one table `apply_binary`, [`BINARY_OPS`] and the chain
/// codes (`100 +` index) come from.
pub(crate) const BINARY: &[BinaryOp] = &[
    BinaryOp { op: "Add", wgsl: "x + z" },
    BinaryOp { op: "Sub", wgsl: "x - z" },
    BinaryOp { op: "Mul", wgsl: "x * z" },
    BinaryOp { op: "Div", wgsl: "x / z" },
    BinaryOp { op: "Pow", wgsl: "pow_onnx(x, z)" },
    BinaryOp { op: "Max", wgsl: "max(x, z)" },
    BinaryOp { op: "Min", wgsl: "min(x, z)" },
];

/// Op types of [`BINARY`], in code order.
pub(crate) const BINARY_OPS: &[&str] = &{
    let mut out = [""; BINARY.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = BINARY[i].op;
        i += 1;
    }
    out
};

/// One unary f32 op: its ONNX type, its WGSL on `v` (with `alpha`, `beta` from [`parameters`])
/// and whether a Conv, ConvTranspose, MatMul or Gemm can run it in its epilogue (`fuse.rs`). Its
/// code in `apply_unary` is its index in [`UNARY`]; a fusable one's `apply_activation` code is
/// that index + 1 (0: none).
pub(crate) struct UnaryOp {
    pub op: &'static str,
    pub wgsl: &'static str,
    pub fusable: bool,
}

const fn unary(op: &'static str, wgsl: &'static str) -> UnaryOp {
    UnaryOp { op, wgsl, fusable: false }
}

const fn fusable(op: &'static str, wgsl: &'static str) -> UnaryOp {
    UnaryOp { op, wgsl, fusable: true }
}

/// Every unary op, in code order: the one table `apply_unary`, `apply_activation`,
/// [`UNARY_OPS`], [`activation_of`] and the chain codes come from.
pub(crate) const UNARY: &[UnaryOp] = &[
    fusable("Relu", "max(v, 0.0)"),
    fusable("Sigmoid", "1.0 / (1.0 + exp(-v))"),
    fusable("Tanh", "tanh(v)"),
    fusable("HardSigmoid", "clamp(alpha * v + beta, 0.0, 1.0)"),
    fusable("HardSwish", "v * clamp(v / 6.0 + 0.5, 0.0, 1.0)"),
    unary("Erf", "erf_approx(v)"),
    fusable("Clip", "min(max(v, alpha), beta)"),
    fusable("LeakyRelu", "select(alpha * v, v, v >= 0.0)"),
    unary("Sqrt", "sqrt(v)"),
    unary("Exp", "exp(v)"),
    unary("Log", "log(v)"),
    unary("Neg", "-v"),
    unary("Abs", "abs(v)"),
    unary("Reciprocal", "1.0 / v"),
    unary("Floor", "floor(v)"),
    unary("Ceil", "ceil(v)"),
    unary("Gelu", "0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752))"),
    unary("Softplus", "select(log(1.0 + exp(v)), v, v > 20.0)"),
    unary("Elu", "select(alpha * (exp(v) - 1.0), v, v >= 0.0)"),
    unary("Sin", "sin(v)"),
    unary("Cos", "cos(v)"),
    unary("Swish", "v * (1.0 / (1.0 + exp(-alpha * v)))"),
];

/// Op types of [`UNARY`], in code order.
pub(crate) const UNARY_OPS: &[&str] = &{
    let mut out = [""; UNARY.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = UNARY[i].op;
        i += 1;
    }
    out
};

/// `fn $name(code: u32, $args) -> f32`: a switch over `cases` (code, WGSL expression) that
/// returns `fallback` for any other code.
fn switch_fn(name: &str, args: &str, cases: impl Iterator<Item = (usize, &'static str)>, fallback: &str) -> String {
    let mut f = format!("fn {name}(code: u32, {args}) -> f32 {{\n    switch code {{\n");
    for (code, wgsl) in cases {
        f.push_str(&format!("        case {code}u: {{ return {wgsl}; }}\n"));
    }
    f.push_str(&format!("        default: {{ return {fallback}; }}\n    }}\n}}\n"));
    f
}

/// `apply_unary(code, v, alpha, beta)` from [`UNARY`], with the helpers it calls.
pub(crate) static UNARY_WGSL: LazyLock<String> = LazyLock::new(|| {
    let cases = UNARY.iter().enumerate().map(|(k, u)| (k, u.wgsl));
    format!(
        "{}\n{}",
        include_str!("unary_ops.wgsl"),
        switch_fn("apply_unary", "v: f32, alpha: f32, beta: f32", cases, "v")
    )
});

/// `apply_binary(code, x, z)` from [`BINARY`], with the helpers it calls.
pub(crate) static BINARY_WGSL: LazyLock<String> = LazyLock::new(|| {
    let cases = BINARY.iter().enumerate().map(|(k, b)| (k, b.wgsl));
    format!("{}\n{}", include_str!("binary_ops.wgsl"), switch_fn("apply_binary", "x: f32, z: f32", cases, "x"))
});

/// `apply_activation(code, v, alpha, beta)`, the epilogue of Conv, ConvTranspose, MatMul and
/// Gemm, from the fusable ops of [`UNARY`] (code = index + 1; 0 and any other code: none).
pub(crate) static ACTIVATION_WGSL: LazyLock<String> = LazyLock::new(|| {
    let cases = UNARY.iter().enumerate().filter(|(_, u)| u.fusable).map(|(k, u)| (k + 1, u.wgsl));
    // erf_approx is not needed: no fusable op calls it.
    switch_fn("apply_activation", "v: f32, alpha: f32, beta: f32", cases, "v")
});

static UNARY_SHADER: LazyLock<String> = LazyLock::new(|| format!("{}\n{}", *UNARY_WGSL, include_str!("unary.wgsl")));
static BINARY_SHADER: LazyLock<String> = LazyLock::new(|| format!("{}\n{}", *BINARY_WGSL, include_str!("binary.wgsl")));

/// Add, Sub, Mul, Div, Pow and two-input Max/Min with numpy broadcasting.
pub(crate) struct Binary;

impl Kernel for Binary {
    fn ops(&self) -> &'static [&'static str] {
        BINARY_OPS
    }

    fn infer(&self, _node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
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
        let p = BinaryParams { n: n as u32, op, shape, a_strides: sa, b_strides: sb };
        let bindings = [Binding::Value(b.input_id(0)), Binding::Value(b.input_id(1)), Binding::Value(b.output_id(0))];
        b.dispatch_1d(&Shader { name: "binary", source: &BINARY_SHADER }, "main", &p, &bindings, n)
    }
}

params! {
    /// `binary.wgsl`'s params: the output shape and each input's broadcast strides, left-padded
    /// to rank [`MAX_RANK`].
    struct BinaryParams {
        n: u32,
        /// Position in [`BINARY`].
        op: u32,
        shape: [u32; MAX_RANK],
        a_strides: [u32; MAX_RANK],
        b_strides: [u32; MAX_RANK],
    }
}

/// Unary activations and math.
pub(crate) struct Unary;

params! {
    /// `unary.wgsl`'s params.
    struct UnaryParams {
        n: u32,
        /// Position in [`UNARY`].
        op: u32,
        alpha: f32,
        beta: f32,
    }
}

/// `alpha`, `beta` of a unary node (Clip's bounds from attributes or constant inputs).
pub(crate) fn parameters(node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<(f32, f32), NodeError> {
    Ok(match node.op.as_str() {
        "HardSigmoid" => (node.float("alpha", 0.2), node.float("beta", 0.5)),
        "LeakyRelu" => (node.float("alpha", 0.01), 0.0),
        "Elu" | "Swish" => (node.float("alpha", 1.0), 0.0),
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

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let Some(Some(x)) = inputs.first() else { return Err("missing input".into()) };
        want_f32(x, "input")?;
        parameters(node, inputs)?;
        Ok(vec![OutputType::new(DatumType::F32, x.shape.clone())])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let op = UNARY_OPS.iter().position(|o| *o == b.node.op).expect("claimed op") as u32;
        let inputs: Vec<Option<&Value>> = b.node.inputs.iter().map(|i| i.map(|i| &b.graph.values[i])).collect();
        let (alpha, beta) = parameters(&b.attrs(), &inputs)?;
        let n = b.output(0).len();
        let p = UnaryParams { n: n as u32, op, alpha, beta };
        let bindings = [Binding::Value(b.input_id(0)), Binding::Value(b.output_id(0))];
        b.dispatch_1d(&Shader { name: "unary", source: &UNARY_SHADER }, "main", &p, &bindings, n)
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
    let (alpha, beta) = parameters(&Attrs::new(node), &inputs).ok()?;
    f32_in(0).then_some((code as u32, alpha, beta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::wgpu::kernels::activation_of;

    fn graph() -> Graph {
        let v = |name: &str| Value::computed(name, DatumType::F32, vec![4]);
        Graph {
            values: vec![v("x"), v("z"), v("y")],
            nodes: vec![],
            inputs: vec![0, 1],
            outputs: vec![2],
            folded: 0,
            stored: 0,
            stored_nodes: 0,
            opset: 17,
        }
    }

    fn node(op: &str, inputs: &[usize]) -> Node {
        Node {
            name: op.to_lowercase(),
            op: op.into(),
            inputs: inputs.iter().map(|&i| Some(i)).collect(),
            outputs: vec![2],
            output_slots: vec![0],
            attributes: vec![],
        }
    }

    /// Every op code the Rust side hands out (the unary and binary kernels, fused chains,
    /// fused activations) selects that op's WGSL in the generated switches, and nothing else
    /// has a case.
    #[test]
    fn op_codes_and_wgsl_come_from_one_table() {
        let g = graph();
        let cases = |src: &str| src.matches("case ").count();
        assert_eq!(cases(&UNARY_WGSL), UNARY.len());
        assert_eq!(cases(&BINARY_WGSL), BINARY.len());
        assert_eq!(cases(&ACTIVATION_WGSL), UNARY.iter().filter(|u| u.fusable).count());
        assert_eq!(Unary.ops(), UNARY.iter().map(|u| u.op).collect::<Vec<_>>());
        assert_eq!(Binary.ops(), BINARY.iter().map(|b| b.op).collect::<Vec<_>>());
        for (k, u) in UNARY.iter().enumerate() {
            assert!(UNARY_WGSL.contains(&format!("case {k}u: {{ return {}; }}", u.wgsl)), "{}", u.op);
            let n = node(u.op, &[0]);
            assert_eq!(chain_step(&n, &g).map(|s| s.0), Some(k as u32), "{}", u.op);
            let fused = activation_of(&n, &g);
            assert_eq!(fused.map(|a| a.code), u.fusable.then_some(k as u32 + 1), "{}", u.op);
            if u.fusable {
                assert!(ACTIVATION_WGSL.contains(&format!("case {}u: {{ return {}; }}", k + 1, u.wgsl)), "{}", u.op);
            }
        }
        for (k, b) in BINARY.iter().enumerate() {
            assert!(BINARY_WGSL.contains(&format!("case {k}u: {{ return {}; }}", b.wgsl)), "{}", b.op);
            assert_eq!(chain_step(&node(b.op, &[0, 1]), &g).map(|s| s.0), Some(100 + k as u32), "{}", b.op);
        }
    }
}
