//! ReduceSum/Mean/Max/Min/Prod/SumSquare/L1/L2/LogSumExp over any axes (attribute or constant
//! input), `keepdims` and `noop_with_empty_axes`: `reduce.wgsl`.

use std::sync::LazyLock;

use tract_onnx::prelude::DatumType;

use super::params::params;
use super::{Binding, Build, Kernel, MAX_RANK, Shader, axis, const_ints, padded, strides, want_f32, with_codes};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, NodeError, OutputType, Value};

static SHADER: LazyLock<String> = LazyLock::new(|| with_codes("OP_", OPS, include_str!("reduce.wgsl")));

/// Reductions.
pub(crate) struct Reduce;

/// Op types in code order (`reduce.wgsl` switches on their `OP_` names).
pub(crate) const OPS: &[&str] = &[
    "ReduceSum",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceSumSquare",
    "ReduceL2",
    "ReduceL1",
    "ReduceLogSumExp",
];

/// The reduced axes (sorted, unique) of a node on input `x`.
fn reduced_axes(node: &Attrs<'_>, inputs: &[Option<&Value>], rank: usize) -> Result<Vec<usize>, NodeError> {
    let listed = match inputs.get(1).copied().flatten() {
        Some(v) => Some(const_ints(v).ok_or_else(|| NodeError::NotConstant { what: "axes", name: v.name.clone() })?),
        None => node.ints("axes"),
    };
    let noop = node.int("noop_with_empty_axes", 0) != 0;
    let mut axes = match listed {
        Some(a) if !a.is_empty() => a.iter().map(|&a| axis(a, rank)).collect::<Result<Vec<_>, _>>()?,
        _ if noop => vec![],
        _ => (0..rank).collect(),
    };
    axes.sort_unstable();
    axes.dedup();
    Ok(axes)
}

fn output_shape(x: &[usize], axes: &[usize], keep: bool) -> Vec<usize> {
    (0..x.len()).filter_map(|d| if axes.contains(&d) { keep.then_some(1) } else { Some(x[d]) }).collect()
}

params! {
    /// `reduce.wgsl`'s params: the kept dims (one thread each) and the reduced dims, each with
    /// their strides in the input, left-padded to rank [`MAX_RANK`].
    struct ReduceParams {
        outputs: u32,
        /// Position in [`OPS`].
        op: u32,
        /// Elements reduced into each output.
        count: u32,
        kept_shape: [u32; MAX_RANK],
        kept_strides: [u32; MAX_RANK],
        reduced_shape: [u32; MAX_RANK],
        reduced_strides: [u32; MAX_RANK],
    }
}

impl Kernel for Reduce {
    fn ops(&self) -> &'static [&'static str] {
        OPS
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let Some(Some(x)) = inputs.first() else { return Err("missing input".into()) };
        want_f32(x, "input")?;
        if x.shape.len() > MAX_RANK {
            return Err(format!("rank {} (at most {MAX_RANK})", x.shape.len()).into());
        }
        let axes = reduced_axes(node, inputs, x.shape.len())?;
        Ok(vec![OutputType::new(DatumType::F32, output_shape(&x.shape, &axes, node.int("keepdims", 1) != 0))])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let inputs: Vec<Option<&Value>> = b.node.inputs.iter().map(|i| i.map(|i| &b.graph.values[i])).collect();
        let x = b.input(0).shape.clone();
        let axes = reduced_axes(&b.attrs(), &inputs, x.len())?;
        let st = strides(&x);
        let kept: Vec<usize> = (0..x.len()).filter(|d| !axes.contains(d)).collect();
        let pick = |dims: &[usize]| -> (Vec<usize>, Vec<usize>) {
            (dims.iter().map(|&d| x[d]).collect(), dims.iter().map(|&d| st[d]).collect())
        };
        let (ks, kt) = pick(&kept);
        let (rs, rt) = pick(&axes);
        let (ks, kt) = padded(&ks, &kt)?;
        let (rs, rt) = padded(&rs, &rt)?;
        let op = OPS.iter().position(|o| *o == b.node.op).expect("claimed op") as u32;
        let n = b.output(0).len();
        let count: usize = axes.iter().map(|&d| x[d]).product();
        let p = ReduceParams {
            outputs: n as u32,
            op,
            count: count as u32,
            kept_shape: ks,
            kept_strides: kt,
            reduced_shape: rs,
            reduced_strides: rt,
        };
        b.dispatch_1d(
            &Shader { name: "reduce", source: &SHADER },
            "main",
            &p,
            &[Binding::Value(b.input_id(0)), Binding::Value(b.output_id(0))],
            n,
        )
    }
}
