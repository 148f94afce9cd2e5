//! ConvTranspose (1-D and 2-D; strides, pads, output_padding, dilations, groups; explicit
//! `output_shape` and `auto_pad` other than NOTSET are load errors) with a fused bias and
//! activation: `conv_transpose.wgsl`.

use tract_onnx::prelude::DatumType;

use super::conv::{ConvGeometry, dispatch_conv};
use super::{Binding, Build, Kernel, Shader, want_f32};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, NodeError, OutputType, Value};

const SHADER: Shader = Shader { name: "conv_transpose", source: include_str!("conv_transpose.wgsl") };

/// ConvTranspose.
pub(crate) struct ConvTranspose;

fn geometry(node: &Attrs<'_>, x: &[usize], w: &[usize]) -> Result<ConvGeometry, NodeError> {
    if x.len() != w.len() || !(3..=4).contains(&x.len()) {
        return Err(format!("input {x:?} and weight {w:?}: only 1-D and 2-D are supported").into());
    }
    if node.ints("output_shape").is_some() {
        return Err("`output_shape` is not supported (give pads instead)".into());
    }
    if node.string("auto_pad", "NOTSET") != "NOTSET" {
        return Err("auto_pad other than NOTSET is not supported".into());
    }
    let spatial = x.len() - 2;
    if let Some(k) = node.ints("kernel_shape")
        && k.iter().map(|&x| x as usize).collect::<Vec<_>>() != w[2..]
    {
        return Err(format!("kernel_shape {k:?} disagrees with the weight {w:?}").into());
    }
    let group = node.int("group", 1).max(1) as usize;
    if x[1] != w[0] || !x[1].is_multiple_of(group) {
        return Err(format!("input channels {} do not match weight {w:?} with group {group}", x[1]).into());
    }
    let list = |name: &str, default: i64, len: usize| -> Result<Vec<usize>, NodeError> {
        let v = node.ints(name).unwrap_or_else(|| vec![default; len]);
        if v.len() != len || v.iter().any(|&x| x < 0) {
            return Err(format!("`{name}` {v:?} is not valid").into());
        }
        Ok(v.iter().map(|&x| x as usize).collect())
    };
    let strides = list("strides", 1, spatial)?;
    let dilations = list("dilations", 1, spatial)?;
    let pads = list("pads", 0, 2 * spatial)?;
    let extra = list("output_padding", 0, spatial)?;
    let off = 2 - spatial;
    let mut g = ConvGeometry {
        n: x[0],
        c: x[1],
        input: [1, 1],
        m: w[1] * group,
        kernel: [1, 1],
        strides: [1, 1],
        dilations: [1, 1],
        pad_begin: [0, 0],
        output: [1, 1],
        group,
    };
    for d in 0..spatial {
        let full = (x[2 + d] - 1) * strides[d] + dilations[d] * (w[2 + d] - 1) + extra[d] + 1;
        let out = full
            .checked_sub(pads[d] + pads[d + spatial])
            .filter(|&o| o > 0)
            .ok_or_else(|| format!("pads {pads:?} leave no output"))?;
        g.input[off + d] = x[2 + d];
        g.kernel[off + d] = w[2 + d];
        g.strides[off + d] = strides[d].max(1);
        g.dilations[off + d] = dilations[d].max(1);
        g.pad_begin[off + d] = pads[d];
        g.output[off + d] = out;
    }
    Ok(g)
}

impl Kernel for ConvTranspose {
    fn ops(&self) -> &'static [&'static str] {
        &["ConvTranspose"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let (Some(Some(x)), Some(Some(w))) = (inputs.first(), inputs.get(1)) else {
            return Err("needs an input and a weight".into());
        };
        want_f32(x, "input")?;
        want_f32(w, "weight")?;
        let g = geometry(node, &x.shape, &w.shape)?;
        if let Some(Some(b)) = inputs.get(2)
            && b.shape != [g.m]
        {
            return Err(format!("bias {:?} is not [{}]", b.shape, g.m).into());
        }
        Ok(vec![OutputType::new(DatumType::F32, g.output_shape(x.shape.len()))])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let g = geometry(&b.attrs(), &b.input(0).shape, &b.input(1).shape)?;
        dispatch_conv(b, &SHADER, &g, Binding::Value(b.input_id(1)))
    }
}
