//! QuantizeLinear and DequantizeLinear (opset 10–19; per tensor, or per axis from opset 13;
//! int8/uint8), `qdq.wgsl`. A DequantizeLinear of a constant weight is taken as stored or folded
//! to f32 at load (`graph::stored`), so these kernels run on activations: a full-int8
//! package's Q/DQ pairs.

use tract_onnx::prelude::DatumType;

use super::params::params;
use super::{Binding, Build, Kernel, Shader, axis, const_floats, const_ints};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, NodeError, OutputType, Value};

const SHADER: Shader = Shader { name: "qdq", source: include_str!("qdq.wgsl") };

params! {
    /// `qdq.wgsl`'s params.
    struct QdqParams {
        n: u32,
        /// Length of the quantization axis (1 per tensor).
        len: u32,
        /// Elements after the axis.
        inner: u32,
        /// The quantized type's range.
        qmin: i32,
        qmax: i32,
    }
}

/// QuantizeLinear, DequantizeLinear.
pub(crate) struct Qdq;

/// (axis length, inner, scales, zero points) of a node on input `x`.
fn parameters(
    node: &Attrs<'_>,
    inputs: &[Option<&Value>],
    x: &[usize],
) -> Result<(usize, usize, Vec<f32>, Vec<i64>), NodeError> {
    let s = inputs.get(1).copied().flatten().ok_or("missing scale")?;
    let scales = const_floats(s).ok_or_else(|| NodeError::NotConstant { what: "scale", name: s.name.clone() })?;
    let zeros = match inputs.get(2).copied().flatten() {
        Some(z) => const_ints(z).ok_or_else(|| NodeError::NotConstant { what: "zero point", name: z.name.clone() })?,
        None => vec![0; scales.len()],
    };
    // Opset 19's `saturate` concerns float8 types only, which are refused.
    let _ = node.int("saturate", 1);
    if node.int("block_size", 0) != 0 {
        return Err("blocked quantization is not supported".into());
    }
    if scales.len() == 1 {
        return Ok((1, 1, scales, zeros));
    }
    let a = axis(node.int("axis", 1), x.len())?;
    if scales.len() != x[a] || zeros.len() != x[a] {
        return Err(format!("{} scales / {} zero points for axis {a} of {x:?}", scales.len(), zeros.len()).into());
    }
    Ok((x[a], x[a + 1..].iter().product(), scales, zeros))
}

/// The quantized element type: from the zero point, else uint8 (QuantizeLinear's default).
fn quantized_type(inputs: &[Option<&Value>]) -> DatumType {
    inputs.get(2).copied().flatten().map_or(DatumType::U8, |z| z.dtype)
}

impl Kernel for Qdq {
    fn ops(&self) -> &'static [&'static str] {
        &["QuantizeLinear", "DequantizeLinear"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let Some(Some(x)) = inputs.first() else { return Err("missing input".into()) };
        parameters(node, inputs, &x.shape)?;
        let q = if node.op == "QuantizeLinear" { quantized_type(inputs) } else { x.dtype };
        if !matches!(q, DatumType::U8 | DatumType::I8) {
            return Err(format!("quantized type {q:?} is not supported (int8, uint8)").into());
        }
        if node.op == "QuantizeLinear" {
            if x.dtype != DatumType::F32 {
                return Err(format!("input `{}` is {:?}", x.name, x.dtype).into());
            }
            Ok(vec![OutputType::new(q, x.shape.clone())])
        } else {
            Ok(vec![OutputType::new(DatumType::F32, x.shape.clone())])
        }
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let inputs: Vec<Option<&Value>> = b.node.inputs.iter().map(|i| i.map(|i| &b.graph.values[i])).collect();
        let x = b.input(0).shape.clone();
        let (len, inner, scales, zeros) = parameters(&b.attrs(), &inputs, &x)?;
        let quantize = b.node.op == "QuantizeLinear";
        let q = if quantize { quantized_type(&inputs) } else { b.input(0).dtype };
        let (lo, hi) = if q == DatumType::I8 { (-128i32, 127i32) } else { (0, 255) };
        let n = b.output(0).len();
        let p = QdqParams { n: n as u32, len: len as u32, inner: inner.max(1) as u32, qmin: lo, qmax: hi };
        let scale = b.upload("scale", &scales.iter().map(|s| s.to_bits()).collect::<Vec<_>>());
        let zero = b.upload("zero point", &zeros.iter().map(|&z| z as i32 as u32).collect::<Vec<_>>());
        let bindings = [Binding::Value(b.input_id(0)), scale, zero, Binding::Value(b.output_id(0))];
        b.dispatch_1d(&SHADER, if quantize { "quantize" } else { "dequantize" }, &p, &bindings, n)
    }
}
