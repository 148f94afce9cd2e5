//! Pad (opset 2–23): `constant`, `reflect`, `edge` and `wrap` modes, negative pads (cropping),
//! the opset 18 `axes` input, on 32-bit words of any element type: `pad.wgsl`.

use std::sync::LazyLock;

use super::params::params;
use super::{Binding, Build, Kernel, MAX_RANK, Shader, axis, const_ints, device_type, strides, with_codes, words};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, NodeError, OutputType, Value};

static SHADER: LazyLock<String> = LazyLock::new(|| with_codes("MODE_", MODES, include_str!("pad.wgsl")));

/// Pad.
pub(crate) struct Pad;

/// Modes in code order (`pad.wgsl` switches on their `MODE_` names).
pub(crate) const MODES: &[&str] = &["constant", "reflect", "edge", "wrap"];

/// What a Pad node does: pads before each axis (negative crops), the output shape, the mode code
/// and the fill word.
struct Plan {
    before: Vec<i64>,
    out: Vec<usize>,
    mode: u32,
    fill: u32,
}

fn plan(node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Plan, NodeError> {
    let x = inputs.first().copied().flatten().ok_or("missing input")?;
    if !device_type(x.dtype) {
        return Err(format!("input `{}` is {:?}", x.name, x.dtype).into());
    }
    let rank = x.shape.len();
    if rank > MAX_RANK {
        return Err(format!("rank {rank} (at most {MAX_RANK} supported)").into());
    }
    let mode_name = node.string("mode", "constant");
    let mode = MODES.iter().position(|m| *m == mode_name).ok_or_else(|| format!("mode `{mode_name}`"))? as u32;
    // Opset < 11 carries pads and the fill value as attributes; later opsets as inputs.
    let (pads, fill, axes) = if let Some(p) = node.ints("pads") {
        (p, node.float("value", 0.0).to_bits(), None)
    } else {
        let p = inputs.get(1).copied().flatten().ok_or("missing pads")?;
        let pads = const_ints(p).ok_or_else(|| NodeError::NotConstant { what: "pads", name: p.name.clone() })?;
        let fill = match inputs.get(2).copied().flatten() {
            None => 0,
            Some(v) => {
                let t = v
                    .constant
                    .as_ref()
                    .ok_or_else(|| NodeError::NotConstant { what: "constant_value", name: v.name.clone() })?;
                let w = words(t).map_err(|e| format!("constant_value `{}`: {e}", v.name))?;
                *w.first().ok_or_else(|| format!("constant_value `{}` is empty", v.name))?
            }
        };
        let axes = match inputs.get(3).copied().flatten() {
            None => None,
            Some(v) => {
                Some(const_ints(v).ok_or_else(|| NodeError::NotConstant { what: "axes", name: v.name.clone() })?)
            }
        };
        (pads, fill, axes)
    };
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(format!("{} pads for {} axes (want 2 per axis)", pads.len(), axes.len()).into());
    }
    let mut before = vec![0i64; rank];
    let mut after = vec![0i64; rank];
    for (k, &a) in axes.iter().enumerate() {
        before[a] = pads[k];
        after[a] = pads[k + axes.len()];
    }
    let mut out = Vec::with_capacity(rank);
    for a in 0..rank {
        let d = x.shape[a] as i64;
        let o = d + before[a] + after[a];
        if o < 0 {
            return Err(format!("pads {}/{} crop axis {a} of length {d} below zero", before[a], after[a]).into());
        }
        let padded = before[a].max(0) + after[a].max(0) > 0;
        if padded && d == 0 && mode_name != "constant" {
            return Err(format!("mode `{mode_name}` cannot pad the empty axis {a}").into());
        }
        // One reflection only, as NumPy's `reflect` does for pads shorter than the axis.
        if mode_name == "reflect" && padded && (before[a] >= d || after[a] >= d) {
            return Err(format!("reflect pads {}/{} must be shorter than axis {a} ({d})", before[a], after[a]).into());
        }
        out.push(o as usize);
    }
    Ok(Plan { before, out, mode, fill })
}

params! {
    /// `pad.wgsl`'s params, shapes left-padded to rank [`MAX_RANK`].
    struct PadParams {
        n: u32,
        /// Position in [`MODES`].
        mode: u32,
        /// The word `constant` mode writes.
        fill: u32,
        out_shape: [u32; MAX_RANK],
        in_shape: [u32; MAX_RANK],
        /// Elements added before each axis (negative: cropped).
        before: [i32; MAX_RANK],
        in_strides: [u32; MAX_RANK],
    }
}

impl Kernel for Pad {
    fn ops(&self) -> &'static [&'static str] {
        &["Pad"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let p = plan(node, inputs)?;
        Ok(vec![OutputType::new(inputs[0].expect("checked").dtype, p.out)])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let inputs: Vec<Option<&Value>> = b.node.inputs.iter().map(|i| i.map(|i| &b.graph.values[i])).collect();
        let Plan { before, out, mode, fill } = plan(&b.attrs(), &inputs)?;
        let x = b.input(0).shape.clone();
        let n: usize = out.iter().product();
        if n == 0 {
            return Ok(());
        }
        let off = MAX_RANK - x.len();
        let (mut os, mut is, mut bs, mut st) = ([1u32; MAX_RANK], [1u32; MAX_RANK], [0i32; MAX_RANK], [0u32; MAX_RANK]);
        let xs = strides(&x);
        for a in 0..x.len() {
            os[off + a] = out[a] as u32;
            is[off + a] = x[a] as u32;
            bs[off + a] = i32::try_from(before[a]).map_err(|_| NodeError::TooLarge(format!("pad {}", before[a])))?;
            st[off + a] = u32::try_from(xs[a]).map_err(|_| NodeError::TooLarge(format!("stride {}", xs[a])))?;
        }
        let p = PadParams { n: n as u32, mode, fill, out_shape: os, in_shape: is, before: bs, in_strides: st };
        let bindings = [Binding::Value(b.input_id(0)), Binding::Value(b.output_id(0))];
        b.dispatch_1d(&Shader { name: "pad", source: &SHADER }, "main", &p, &bindings, n)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tract_onnx::prelude::{DatumType, Tensor};

    use super::*;
    use crate::graph::Node;

    fn pad_node(mode: &str) -> Node {
        Node {
            name: "pad".into(),
            op: "Pad".into(),
            inputs: vec![Some(0), Some(1)],
            outputs: vec![2],
            output_slots: vec![0],
            attributes: vec![crate::onnx_builder::attr_str("mode", mode)],
        }
    }

    fn values(pads: &[i64]) -> (Value, Value) {
        let x = Value::computed("x", DatumType::F32, vec![1, 4]);
        let t = Tensor::from_shape(&[pads.len()], pads).unwrap();
        let p = Value { constant: Some(Arc::new(t)), ..Value::computed("pads", DatumType::I64, vec![pads.len()]) };
        (x, p)
    }

    #[test]
    fn bad_pads_and_modes_say_why() {
        let (x, p) = values(&[0, 4, 0, 0]);
        let err =
            |mode: &str, p: &Value| plan(&Attrs::new(&pad_node(mode)), &[Some(&x), Some(p)]).err().unwrap().to_string();
        assert_eq!(err("reflect", &p), "reflect pads 4/0 must be shorter than axis 1 (4)");
        assert_eq!(err("mirror", &p), "mode `mirror`");
        let (_, short) = values(&[0, 1]);
        assert_eq!(err("constant", &short), "2 pads for 2 axes (want 2 per axis)");
        let (_, crop) = values(&[0, -3, 0, -2]);
        assert!(err("constant", &crop).contains("below zero"));
        let ok = plan(&Attrs::new(&pad_node("edge")), &[Some(&x), Some(&p)]).unwrap();
        assert_eq!(ok.out, [1, 8]);
    }
}
