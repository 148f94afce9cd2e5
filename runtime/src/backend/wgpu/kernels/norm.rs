//! Row-wise normalisations: Softmax and LogSoftmax (`softmax.wgsl`, both the opset < 13
//! flatten-to-2-D and the opset ≥ 13 single-axis semantics) and LayerNormalization
//! (`layernorm.wgsl`).

use tract_onnx::prelude::DatumType;

use super::params::params;
use super::{Binding, Build, Kernel, Shader, axis, want_f32};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, NodeError, OutputType, Value};

// Both reduce long rows with `row_reduce.wgsl`'s `row_combine`.
const SOFTMAX: Shader =
    Shader { name: "softmax", source: concat!(include_str!("softmax.wgsl"), include_str!("row_reduce.wgsl")) };
const LAYERNORM: Shader =
    Shader { name: "layernorm", source: concat!(include_str!("layernorm.wgsl"), include_str!("row_reduce.wgsl")) };

/// Rows at least this long are reduced by a workgroup together (the shaders' `wide` entry),
/// shorter ones by one thread each (`main`).
const WIDE_ROW: usize = 128;

params! {
    /// `softmax.wgsl`'s params. Element k of row r sits at
    /// `(r / inner) * len * inner + r % inner + k * inner`.
    struct SoftmaxParams {
        rows: u32,
        len: u32,
        inner: u32,
        /// LogSoftmax (else Softmax).
        log: bool,
    }
}

params! {
    /// `layernorm.wgsl`'s params: rows of `len` contiguous elements.
    struct LayerNormParams {
        rows: u32,
        len: u32,
        epsilon: f32,
        has_bias: bool,
    }
}

/// Softmax and LogSoftmax.
pub(crate) struct Softmax;

/// (rows, len, inner) of a softmax over `shape`.
fn softmax_rows(node: &Attrs<'_>, shape: &[usize], opset: i64) -> Result<(usize, usize, usize), NodeError> {
    let rank = shape.len().max(1);
    if opset < 13 {
        let a = axis(node.int("axis", 1), rank)?;
        let rows: usize = shape[..a].iter().product();
        let len: usize = shape[a..].iter().product();
        return Ok((rows, len, 1));
    }
    let a = axis(node.int("axis", -1), rank)?;
    let len = shape.get(a).copied().unwrap_or(1);
    let inner: usize = shape[(a + 1).min(shape.len())..].iter().product();
    let total: usize = shape.iter().product();
    Ok((total / len.max(1), len, inner))
}

impl Kernel for Softmax {
    fn ops(&self) -> &'static [&'static str] {
        &["Softmax", "LogSoftmax"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let Some(Some(x)) = inputs.first() else { return Err("missing input".into()) };
        want_f32(x, "input")?;
        axis(node.int("axis", -1), x.shape.len().max(1))?;
        Ok(vec![OutputType::new(DatumType::F32, x.shape.clone())])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let (rows, len, inner) = softmax_rows(&b.attrs(), &b.input(0).shape, b.graph.opset)?;
        let p = SoftmaxParams {
            rows: rows as u32,
            len: len as u32,
            inner: inner.max(1) as u32,
            log: b.node.op == "LogSoftmax",
        };
        let bindings = [Binding::Value(b.input_id(0)), Binding::Value(b.output_id(0))];
        if len >= WIDE_ROW {
            return b.dispatch_rows(&SOFTMAX, "wide", &p, &bindings, rows);
        }
        b.dispatch_1d(&SOFTMAX, "main", &p, &bindings, rows)
    }
}

/// LayerNormalization (first output only).
pub(crate) struct LayerNorm;

/// What a LayerNormalization node runs.
struct LayerNormAttrs {
    axis: usize,
    epsilon: f32,
}

impl LayerNormAttrs {
    fn new(node: &Attrs<'_>, rank: usize) -> Result<LayerNormAttrs, NodeError> {
        if node.int("stash_type", 1) != 1 {
            return Err("stash_type other than float is not supported".into());
        }
        Ok(LayerNormAttrs { axis: axis(node.int("axis", -1), rank)?, epsilon: node.float("epsilon", 1e-5) })
    }
}

impl Kernel for LayerNorm {
    fn ops(&self) -> &'static [&'static str] {
        &["LayerNormalization"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let (Some(Some(x)), Some(Some(scale))) = (inputs.first(), inputs.get(1)) else {
            return Err("needs an input and a scale".into());
        };
        want_f32(x, "input")?;
        want_f32(scale, "scale")?;
        let a = LayerNormAttrs::new(node, x.shape.len())?.axis;
        let normalized = &x.shape[a..];
        let len: usize = normalized.iter().product();
        for v in inputs[1..].iter().flatten() {
            if v.len() != len || !(v.shape == normalized || v.shape == [len]) {
                return Err(format!("`{}` {:?} must have the normalised shape {normalized:?}", v.name, v.shape).into());
            }
        }
        Ok(vec![OutputType::new(DatumType::F32, x.shape.clone())])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let x = b.input(0).shape.clone();
        let LayerNormAttrs { axis: a, epsilon } = LayerNormAttrs::new(&b.attrs(), x.len())?;
        let len: usize = x[a..].iter().product();
        let rows: usize = x[..a].iter().product();
        let has_bias = b.has_input(2);
        let p = LayerNormParams { rows: rows as u32, len: len as u32, epsilon, has_bias };
        let bias = if has_bias { b.input_id(2) } else { b.input_id(1) };
        let bindings = [
            Binding::Value(b.input_id(0)),
            Binding::Value(b.input_id(1)),
            Binding::Value(bias),
            Binding::Value(b.output_id(0)),
        ];
        if len >= WIDE_ROW {
            return b.dispatch_rows(&LAYERNORM, "wide", &p, &bindings, rows);
        }
        b.dispatch_1d(&LAYERNORM, "main", &p, &bindings, rows)
    }
}
