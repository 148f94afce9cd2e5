//! Ops that only change a tensor's shape: Reshape, Flatten, Squeeze, Unsqueeze and Identity.
//! Their output is the input's buffer (no dispatch); new shapes must come from constants.

use super::{Build, Kernel, axis, const_ints, device_type};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, Node, NodeError, OutputType, Value};

/// Reshape, Flatten, Squeeze, Unsqueeze, Identity.
pub(crate) struct Reshape;

/// Axes from the input at `index` (opset 13+) or the `axes` attribute.
fn axes_of(node: &Attrs<'_>, inputs: &[Option<&Value>], index: usize) -> Result<Option<Vec<i64>>, NodeError> {
    match inputs.get(index).copied().flatten() {
        Some(v) => const_ints(v).map(Some).ok_or_else(|| NodeError::NotConstant { what: "axes", name: v.name.clone() }),
        None => Ok(node.ints("axes")),
    }
}

fn new_shape(node: &Attrs<'_>, inputs: &[Option<&Value>], x: &[usize]) -> Result<Vec<usize>, NodeError> {
    let total: usize = x.iter().product();
    match node.op.as_str() {
        "Identity" => Ok(x.to_vec()),
        "Reshape" => {
            let s = inputs.get(1).copied().flatten().ok_or("missing shape input")?;
            let spec = const_ints(s).ok_or_else(|| NodeError::NotConstant { what: "shape", name: s.name.clone() })?;
            let allow_zero = node.int("allowzero", 0) != 0;
            let mut out = Vec::with_capacity(spec.len());
            let mut infer_at = None;
            for (i, &d) in spec.iter().enumerate() {
                match d {
                    -1 if infer_at.is_none() => {
                        infer_at = Some(i);
                        out.push(1);
                    }
                    0 if !allow_zero => out.push(*x.get(i).ok_or("0 copies a dim the input lacks")?),
                    d if d >= 0 => out.push(d as usize),
                    d => return Err(format!("shape value {d} is not valid").into()),
                }
            }
            // Shape values come from the file: multiply without overflowing.
            let product = |dims: &[usize]| dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
            if let Some(i) = infer_at {
                let known = product(&out).unwrap_or(0);
                if known == 0 || !total.is_multiple_of(known) {
                    return Err(format!("cannot reshape {x:?} to {spec:?}").into());
                }
                out[i] = total / known;
            }
            if product(&out) != Some(total) {
                return Err(format!("cannot reshape {x:?} to {spec:?}").into());
            }
            Ok(out)
        }
        "Flatten" => {
            let r = x.len() as i64;
            let a = node.int("axis", 1);
            if a < -r || a > r {
                return Err(format!("axis {a} out of range for rank {r}").into());
            }
            let a = if a < 0 { a + r } else { a } as usize;
            Ok(vec![x[..a].iter().product(), x[a..].iter().product()])
        }
        "Squeeze" => {
            let axes = axes_of(node, inputs, 1)?;
            let drop: Vec<usize> = match axes {
                Some(a) => a.iter().map(|&a| axis(a, x.len())).collect::<Result<_, _>>()?,
                None => (0..x.len()).filter(|&d| x[d] == 1).collect(),
            };
            if let Some(&d) = drop.iter().find(|&&d| x[d] != 1) {
                return Err(format!("axis {d} of {x:?} is not 1").into());
            }
            Ok((0..x.len()).filter(|d| !drop.contains(d)).map(|d| x[d]).collect())
        }
        "Unsqueeze" => {
            let axes = axes_of(node, inputs, 1)?.ok_or("axes are required")?;
            let rank = x.len() + axes.len();
            let mut at: Vec<usize> = axes.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?;
            at.sort_unstable();
            let mut out = Vec::with_capacity(rank);
            let mut src = x.iter();
            for d in 0..rank {
                if at.contains(&d) {
                    out.push(1);
                } else {
                    out.push(*src.next().ok_or("too many axes")?);
                }
            }
            Ok(out)
        }
        op => Err(format!("{op} is not a reshape").into()),
    }
}

impl Kernel for Reshape {
    fn ops(&self) -> &'static [&'static str] {
        &["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let Some(Some(x)) = inputs.first() else { return Err("missing input".into()) };
        if !device_type(x.dtype) {
            return Err(format!("`{}` is {:?}", x.name, x.dtype).into());
        }
        Ok(vec![OutputType::new(x.dtype, new_shape(node, inputs, &x.shape)?)])
    }

    fn alias(&self, _node: &Node) -> Option<usize> {
        Some(0)
    }

    fn build(&self, _b: &mut Build<'_>) -> Result<(), NodeError> {
        Ok(())
    }
}
