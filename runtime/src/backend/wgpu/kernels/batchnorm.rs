//! BatchNormalization in inference mode: scale, bias, mean and variance (constants) are folded
//! at load into one multiplier and offset per channel, applied by `affine.wgsl`.

use tract_onnx::prelude::DatumType;

use super::params::params;
use super::{Binding, Build, Kernel, Shader, const_floats, want_f32};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, NodeError, OutputType, Value};

const SHADER: Shader = Shader { name: "affine", source: include_str!("affine.wgsl") };

params! {
    /// `affine.wgsl`'s params.
    struct AffineParams {
        n: u32,
        channels: u32,
        /// Elements per channel per batch item.
        inner: u32,
    }
}

/// BatchNormalization.
pub(crate) struct BatchNorm;

/// Per channel (multiplier, offset) from the constant inputs.
fn coefficients(node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<(f32, f32)>, NodeError> {
    let x = inputs.first().copied().flatten().ok_or("missing input")?;
    if x.shape.len() < 2 {
        return Err(format!("input {:?} has no channel axis", x.shape).into());
    }
    let c = x.shape[1];
    let mut params = Vec::new();
    for (i, what) in ["scale", "B", "input_mean", "input_var"].into_iter().enumerate() {
        let v = inputs.get(i + 1).copied().flatten().ok_or_else(|| format!("missing {what}"))?;
        let f = const_floats(v).ok_or_else(|| NodeError::NotConstant { what, name: v.name.clone() })?;
        if f.len() != c {
            return Err(format!("{what} `{}` has {} values for {c} channels", v.name, f.len()).into());
        }
        params.push(f);
    }
    let eps = node.float("epsilon", 1e-5);
    // Opset < 9: `spatial` 0 would normalise per element; `is_test` and `momentum` (and opset 6's
    // `consumed_inputs`) only concern training.
    if node.int("spatial", 1) != 1 {
        return Err("spatial=0 is not supported".into());
    }
    let _ = (node.int("is_test", 1), node.float("momentum", 0.9), node.ints("consumed_inputs"));
    Ok((0..c)
        .map(|k| {
            let a = params[0][k] / (params[3][k] + eps).sqrt();
            (a, params[1][k] - params[2][k] * a)
        })
        .collect())
}

impl Kernel for BatchNorm {
    fn ops(&self) -> &'static [&'static str] {
        &["BatchNormalization"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let Some(Some(x)) = inputs.first() else { return Err("missing input".into()) };
        want_f32(x, "input")?;
        if node.int("training_mode", 0) != 0 {
            return Err("training_mode=1 is not supported".into());
        }
        coefficients(node, inputs)?;
        Ok(vec![OutputType::new(DatumType::F32, x.shape.clone())])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let inputs: Vec<Option<&Value>> = b.node.inputs.iter().map(|i| i.map(|i| &b.graph.values[i])).collect();
        let ab: Vec<u32> =
            coefficients(&b.attrs(), &inputs)?.iter().flat_map(|(a, c)| [a.to_bits(), c.to_bits()]).collect();
        let x = b.input(0).shape.clone();
        let inner: usize = x[2..].iter().product();
        let n = b.output(0).len();
        let table = b.upload(&format!("{} affine", b.node.name), &ab);
        let bindings = [Binding::Value(b.input_id(0)), table, Binding::Value(b.output_id(0))];
        b.dispatch_1d(
            &SHADER,
            "main",
            &AffineParams { n: n as u32, channels: x[1] as u32, inner: inner.max(1) as u32 },
            &bindings,
            n,
        )
    }
}
