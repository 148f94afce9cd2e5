//! Data movement on 32-bit words of any element type, all through one strided copy
//! (`copy.wgsl`): Transpose, Slice (constant starts/ends/axes/steps, negative steps), Concat,
//! Split and Expand.

use super::params::params;
use super::{
    Binding, Build, Kernel, MAX_RANK, Shader, axis, broadcast, broadcast_strides, const_ints, device_type, padded,
    strides,
};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, NodeError, OutputType, Value};

const SHADER: Shader = Shader { name: "copy", source: include_str!("copy.wgsl") };

params! {
    /// `copy.wgsl`'s params: the shape walked and both sides' strides, left-padded to rank
    /// [`MAX_RANK`]; source strides are signed.
    struct CopyParams {
        n: u32,
        src_offset: u32,
        dst_offset: u32,
        shape: [u32; MAX_RANK],
        src_strides: [i32; MAX_RANK],
        dst_strides: [u32; MAX_RANK],
    }
}

/// One strided copy: iterate `shape`, reading `src_offset + Σ idx·src_strides` and writing
/// `dst_offset + Σ idx·dst_strides`.
struct Strided<'s> {
    shape: &'s [usize],
    src_offset: i64,
    src_strides: &'s [i64],
    dst_offset: usize,
    dst_strides: &'s [usize],
}

fn copy(b: &mut Build<'_>, src: Binding, dst: Binding, c: Strided<'_>) -> Result<(), NodeError> {
    let Strided { shape, src_offset, src_strides, dst_offset, dst_strides } = c;
    let n: usize = shape.iter().product();
    if n == 0 {
        return Ok(());
    }
    let (s, d) = padded(shape, dst_strides)?;
    let mut ss = [0i32; MAX_RANK];
    let off = MAX_RANK - shape.len();
    for (i, &x) in src_strides.iter().enumerate() {
        ss[off + i] = i32::try_from(x).map_err(|_| NodeError::TooLarge(format!("source stride {x}")))?;
    }
    let src_offset = u32::try_from(src_offset)
        .map_err(|_| NodeError::Internal(format!("source offset {src_offset} is outside the input")))?;
    let p = CopyParams {
        n: n as u32,
        src_offset,
        dst_offset: dst_offset as u32,
        shape: s,
        src_strides: ss,
        dst_strides: d,
    };
    b.dispatch_1d(&SHADER, "main", &p, &[src, dst], n)
}

fn check_word(v: &Value) -> Result<(), NodeError> {
    if !device_type(v.dtype) {
        return Err(format!("`{}` is {:?}", v.name, v.dtype).into());
    }
    Ok(())
}

/// Transpose.
pub(crate) struct Transpose;

fn permutation(node: &Attrs<'_>, rank: usize) -> Result<Vec<usize>, NodeError> {
    let perm: Vec<usize> = match node.ints("perm") {
        Some(p) => p.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    if sorted != (0..rank).collect::<Vec<_>>() {
        return Err(format!("perm {perm:?} is not a permutation of rank {rank}").into());
    }
    Ok(perm)
}

impl Kernel for Transpose {
    fn ops(&self) -> &'static [&'static str] {
        &["Transpose"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let Some(Some(x)) = inputs.first() else { return Err("missing input".into()) };
        check_word(x)?;
        let perm = permutation(node, x.shape.len())?;
        Ok(vec![OutputType::new(x.dtype, perm.iter().map(|&p| x.shape[p]).collect())])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let x = b.input(0).shape.clone();
        let perm = permutation(&b.attrs(), x.len())?;
        let st = strides(&x);
        let out: Vec<usize> = perm.iter().map(|&p| x[p]).collect();
        let src: Vec<i64> = perm.iter().map(|&p| st[p] as i64).collect();
        let (i, o) = (b.input_id(0), b.output_id(0));
        copy(
            b,
            Binding::Value(i),
            Binding::Value(o),
            Strided { shape: &out, src_offset: 0, src_strides: &src, dst_offset: 0, dst_strides: &strides(&out) },
        )
    }
}

/// Slice (opset 10+ inputs, or opset < 10 attributes).
pub(crate) struct Slice;

/// Per axis of `x`: (start, output length, step).
fn slice_plan(node: &Attrs<'_>, inputs: &[Option<&Value>], x: &[usize]) -> Result<Vec<(i64, usize, i64)>, NodeError> {
    let constant = |i: usize| -> Result<Option<Vec<i64>>, NodeError> {
        match inputs.get(i).copied().flatten() {
            None => Ok(None),
            Some(v) => {
                const_ints(v).map(Some).ok_or_else(|| NodeError::NotConstant { what: "input", name: v.name.clone() })
            }
        }
    };
    let (starts, ends, axes, steps) = if inputs.len() >= 3 {
        (constant(1)?.unwrap_or_default(), constant(2)?.unwrap_or_default(), constant(3)?, constant(4)?)
    } else {
        (node.ints("starts").unwrap_or_default(), node.ints("ends").unwrap_or_default(), node.ints("axes"), None)
    };
    if starts.len() != ends.len() {
        return Err(format!("{} starts but {} ends", starts.len(), ends.len()).into());
    }
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&a| axis(a, x.len())).collect::<Result<_, _>>()?,
        None => (0..starts.len()).collect(),
    };
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if axes.len() != starts.len() || steps.len() != starts.len() {
        return Err("starts, ends, axes and steps differ in length".into());
    }
    let mut plan: Vec<(i64, usize, i64)> = x.iter().map(|&d| (0, d, 1)).collect();
    for (k, &a) in axes.iter().enumerate() {
        let dim = x[a] as i64;
        let step = steps[k];
        if step == 0 {
            return Err("a step of 0 is not valid".into());
        }
        let clampi = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
        let norm = |v: i64| if v < 0 { v + dim } else { v };
        let (start, end) = if step > 0 {
            (clampi(norm(starts[k]), 0, dim), clampi(norm(ends[k]), 0, dim))
        } else {
            (clampi(norm(starts[k]), -1, dim - 1), clampi(norm(ends[k]), -1, dim - 1))
        };
        let len = if step > 0 {
            if end > start { (end - start + step - 1) / step } else { 0 }
        } else if start > end {
            (start - end + (-step) - 1) / (-step)
        } else {
            0
        };
        plan[a] = (start, len as usize, step);
    }
    Ok(plan)
}

impl Kernel for Slice {
    fn ops(&self) -> &'static [&'static str] {
        &["Slice"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let Some(Some(x)) = inputs.first() else { return Err("missing input".into()) };
        check_word(x)?;
        let plan = slice_plan(node, inputs, &x.shape)?;
        Ok(vec![OutputType::new(x.dtype, plan.iter().map(|p| p.1).collect())])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let inputs: Vec<Option<&Value>> = b.node.inputs.iter().map(|i| i.map(|i| &b.graph.values[i])).collect();
        let x = b.input(0).shape.clone();
        let plan = slice_plan(&b.attrs(), &inputs, &x)?;
        let st = strides(&x);
        let offset: i64 = plan.iter().zip(&st).map(|(p, &s)| p.0 * s as i64).sum();
        let src: Vec<i64> = plan.iter().zip(&st).map(|(p, &s)| p.2 * s as i64).collect();
        let out: Vec<usize> = plan.iter().map(|p| p.1).collect();
        let (i, o) = (b.input_id(0), b.output_id(0));
        copy(
            b,
            Binding::Value(i),
            Binding::Value(o),
            Strided { shape: &out, src_offset: offset, src_strides: &src, dst_offset: 0, dst_strides: &strides(&out) },
        )
    }
}

/// Concat.
pub(crate) struct Concat;

impl Kernel for Concat {
    fn ops(&self) -> &'static [&'static str] {
        &["Concat"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let first = inputs.iter().flatten().next().ok_or("no inputs")?;
        let rank = first.shape.len();
        let a = axis(node.int("axis", 0), rank)?;
        let mut shape = first.shape.clone();
        shape[a] = 0;
        for v in inputs.iter().flatten() {
            check_word(v)?;
            if v.dtype != first.dtype || v.shape.len() != rank {
                return Err(format!("`{}` {:?} {:?} does not match `{}`", v.name, v.dtype, v.shape, first.name).into());
            }
            for d in 0..rank {
                if d != a && v.shape[d] != first.shape[d] {
                    return Err(
                        format!("`{}` {:?} differs from {:?} off the axis", v.name, v.shape, first.shape).into()
                    );
                }
            }
            shape[a] += v.shape[a];
        }
        Ok(vec![OutputType::new(first.dtype, shape)])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let out = b.output(0).shape.clone();
        let a = axis(b.node.int("axis", 0), out.len())?;
        let ost = strides(&out);
        let mut at = 0;
        let ids: Vec<_> = b.node.inputs.iter().flatten().copied().collect();
        let o = b.output_id(0);
        for id in ids {
            let shape = b.graph.values[id].shape.clone();
            let src: Vec<i64> = strides(&shape).iter().map(|&s| s as i64).collect();
            copy(
                b,
                Binding::Value(id),
                Binding::Value(o),
                Strided { shape: &shape, src_offset: 0, src_strides: &src, dst_offset: at * ost[a], dst_strides: &ost },
            )?;
            at += shape[a];
        }
        Ok(())
    }
}

/// Split (sizes from the `split` input or attribute, or equal parts).
pub(crate) struct Split;

fn split_sizes(
    node: &Attrs<'_>,
    inputs: &[Option<&Value>],
    x: &[usize],
    outputs: usize,
) -> Result<(usize, Vec<usize>), NodeError> {
    let a = axis(node.int("axis", 0), x.len())?;
    let given = match inputs.get(1).copied().flatten() {
        Some(v) => Some(const_ints(v).ok_or_else(|| NodeError::NotConstant { what: "split", name: v.name.clone() })?),
        None => node.ints("split"),
    };
    let sizes: Vec<usize> = match given {
        Some(s) => s.iter().map(|&v| v as usize).collect(),
        None => {
            let parts = node.int("num_outputs", outputs as i64).max(1) as usize;
            let chunk = x[a].div_ceil(parts);
            (0..parts).map(|i| chunk.min(x[a].saturating_sub(i * chunk))).collect()
        }
    };
    if sizes.iter().sum::<usize>() != x[a] {
        return Err(format!("split sizes {sizes:?} do not add up to {}", x[a]).into());
    }
    Ok((a, sizes))
}

impl Kernel for Split {
    fn ops(&self) -> &'static [&'static str] {
        &["Split"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let Some(Some(x)) = inputs.first() else { return Err("missing input".into()) };
        check_word(x)?;
        // The number of outputs is known only from the node itself.
        let (a, sizes) = split_sizes(node, inputs, &x.shape, node.outputs.len().max(1))?;
        Ok(sizes
            .iter()
            .map(|&s| {
                let mut shape = x.shape.clone();
                shape[a] = s;
                OutputType::new(x.dtype, shape)
            })
            .collect())
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let x = b.input(0).shape.clone();
        let st = strides(&x);
        let src: Vec<i64> = st.iter().map(|&s| s as i64).collect();
        let a = axis(b.node.int("axis", 0), x.len())?;
        let mut at = 0;
        let i = b.input_id(0);
        for k in 0..b.node.outputs.len() {
            let o = b.output_id(k);
            let shape = b.graph.values[o].shape.clone();
            copy(
                b,
                Binding::Value(i),
                Binding::Value(o),
                Strided {
                    shape: &shape,
                    src_offset: (at * st[a]) as i64,
                    src_strides: &src,
                    dst_offset: 0,
                    dst_strides: &strides(&shape),
                },
            )?;
            at += shape[a];
        }
        Ok(())
    }
}

/// Expand (numpy broadcast to a constant shape).
pub(crate) struct Expand;

impl Kernel for Expand {
    fn ops(&self) -> &'static [&'static str] {
        &["Expand"]
    }

    fn infer(&self, _node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let (Some(Some(x)), Some(Some(s))) = (inputs.first(), inputs.get(1)) else {
            return Err("needs an input and a shape".into());
        };
        check_word(x)?;
        let shape = const_ints(s).ok_or_else(|| NodeError::NotConstant { what: "shape", name: s.name.clone() })?;
        let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        Ok(vec![OutputType::new(x.dtype, broadcast(&x.shape, &shape)?)])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let out = b.output(0).shape.clone();
        let src: Vec<i64> = broadcast_strides(&b.input(0).shape, &out).iter().map(|&s| s as i64).collect();
        let (i, o) = (b.input_id(0), b.output_id(0));
        copy(
            b,
            Binding::Value(i),
            Binding::Value(o),
            Strided { shape: &out, src_offset: 0, src_strides: &src, dst_offset: 0, dst_strides: &strides(&out) },
        )
    }
}
