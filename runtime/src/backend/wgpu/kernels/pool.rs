//! MaxPool, AveragePool (pads, strides, dilations, ceil_mode, count_include_pad) and
//! GlobalAveragePool/GlobalMaxPool: `pool.wgsl`.

use tract_onnx::prelude::DatumType;

use super::conv::{WindowParams, axis_geometry};
use super::params::params;
use super::{Binding, Build, Kernel, Shader, want_f32};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, NodeError, OutputType, Value};

const SHADER: Shader = Shader { name: "pool", source: include_str!("pool.wgsl") };

/// Pooling ops.
pub(crate) struct Pool;

params! {
    /// `pool.wgsl`'s params: one thread per output element.
    struct PoolParams {
        total: u32,
        window: WindowParams,
        /// Average (else max).
        average: bool,
        count_include_pad: bool,
        /// H + pad bottom: the last row an average counts with `count_include_pad`.
        end_h: u32,
        end_w: u32,
    }
}

/// A pooling node's params, parsed once from its attributes: the window geometry, 1-D pools as
/// 2-D with height 1 ((H, W), (OH, OW), kernel, strides, pad begin, pad end, dilations), and
/// whether an average counts the padding.
struct Window {
    count_include_pad: bool,
    input: [usize; 2],
    output: [usize; 2],
    kernel: [usize; 2],
    strides: [usize; 2],
    pad_begin: [usize; 2],
    pad_end: [usize; 2],
    dilations: [usize; 2],
}

fn window(node: &Attrs<'_>, x: &[usize]) -> Result<Window, NodeError> {
    if !(3..=4).contains(&x.len()) {
        return Err(format!("input {x:?}: only 1-D and 2-D pooling is supported").into());
    }
    let spatial = x.len() - 2;
    let off = 2 - spatial;
    let mut w = Window {
        count_include_pad: false,
        input: [1, 1],
        output: [1, 1],
        kernel: [1, 1],
        strides: [1, 1],
        pad_begin: [0, 0],
        pad_end: [0, 0],
        dilations: [1, 1],
    };
    if node.op.starts_with("Global") {
        w.input[off..].copy_from_slice(&x[2..]);
        w.kernel[off..].copy_from_slice(&x[2..]);
        return Ok(w);
    }
    let kernel = node.ints("kernel_shape").ok_or("`kernel_shape` is required")?;
    let list = |name: &str, default: i64| -> Result<Vec<usize>, NodeError> {
        let v = node.ints(name).unwrap_or_else(|| vec![default; spatial]);
        if v.len() != spatial || v.iter().any(|&x| x < 1) {
            return Err(format!("`{name}` {v:?} is not valid for {spatial} spatial dims").into());
        }
        Ok(v.iter().map(|&x| x as usize).collect())
    };
    if kernel.len() != spatial || kernel.iter().any(|&k| k < 1) {
        return Err(format!("`kernel_shape` {kernel:?} is not valid").into());
    }
    let strides = list("strides", 1)?;
    let dilations = list("dilations", 1)?;
    let pads = node.ints("pads").unwrap_or_else(|| vec![0; 2 * spatial]);
    if pads.len() != 2 * spatial || pads.iter().any(|&p| p < 0) {
        return Err(format!("`pads` {pads:?} is not valid").into());
    }
    let ceil = node.int("ceil_mode", 0) != 0;
    w.count_include_pad = node.int("count_include_pad", 0) != 0;
    // Only MaxPool's second output (indices, which no kernel writes) depends on it.
    if node.int("storage_order", 0) != 0 {
        return Err("storage_order=1 is not supported".into());
    }
    let auto_pad = node.string("auto_pad", "NOTSET");
    for d in 0..spatial {
        let (k, s, dl) = (kernel[d] as usize, strides[d], dilations[d]);
        let (p0, p1) = (pads[d] as usize, pads[d + spatial] as usize);
        let (mut out, begin) = axis_geometry(&auto_pad, x[2 + d], k, s, dl, (p0, p1), ceil)?;
        // ceil_mode: a last window must start inside the input or the left padding.
        if ceil && auto_pad == "NOTSET" && (out - 1) * s >= x[2 + d] + p0 {
            out -= 1;
        }
        w.input[off + d] = x[2 + d];
        w.output[off + d] = out;
        w.kernel[off + d] = k;
        w.strides[off + d] = s;
        w.dilations[off + d] = dl;
        w.pad_begin[off + d] = begin;
        let total =
            if auto_pad == "NOTSET" { p0 + p1 } else { ((out - 1) * s + dl * (k - 1) + 1).saturating_sub(x[2 + d]) };
        w.pad_end[off + d] = total.saturating_sub(begin);
    }
    Ok(w)
}

impl Kernel for Pool {
    fn ops(&self) -> &'static [&'static str] {
        &["MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let Some(Some(x)) = inputs.first() else { return Err("missing input".into()) };
        want_f32(x, "input")?;
        let w = window(node, &x.shape)?;
        let mut shape = x.shape[..2].to_vec();
        shape.extend(&w.output[4 - x.shape.len()..]);
        Ok(vec![OutputType::new(DatumType::F32, shape)])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let w = window(&b.attrs(), &b.input(0).shape)?;
        let total = b.output(0).len();
        let max = b.node.op.contains("Max");
        let p = PoolParams {
            total: total as u32,
            window: WindowParams::new(w.input, w.output, w.kernel, w.strides, w.pad_begin, w.dilations),
            average: !max,
            count_include_pad: w.count_include_pad,
            end_h: (w.input[0] + w.pad_end[0]) as u32,
            end_w: (w.input[1] + w.pad_end[1]) as u32,
        };
        b.dispatch_1d(&SHADER, "main", &p, &[Binding::Value(b.input_id(0)), Binding::Value(b.output_id(0))], total)
    }
}
