//! Gather along one axis (`gather.wgsl`; `gather_packed.wgsl` for a packed constant table, see
//! `weights.rs`) and GatherND with batch_dims 0 (`gather_nd.wgsl`), for
//! 32-bit words of any element type. Indices lie in [-len, len - 1] (negative ones count from
//! the end): constant indices are range-checked at load, indices computed or fed at run time on
//! the device (`index_check.wgsl`), an out-of-range one failing the run with the node named.

use tract_onnx::prelude::DatumType;

use super::params::params;
use super::weights::{self, Form, WeightShaders, weight_shaders};
use super::{Binding, Build, Kernel, MAX_RANK, Shader, axis, const_ints, device_type};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, Node, NodeError, OutputType, Value};

const SHADER: Shader =
    Shader { name: "gather", source: concat!(include_str!("index_check.wgsl"), include_str!("gather.wgsl")) };
/// A packed table's builds (its f32 build is unused: an f32 table is read by `gather.wgsl`).
const PACKED: WeightShaders = weight_shaders!("gather_table", "index_check.wgsl", "gather_packed.wgsl");

params! {
    /// `gather.wgsl`'s and `gather_packed.wgsl`'s params: one thread per output word.
    struct GatherParams {
        n: u32,
        /// Length of the gathered axis (a packed table's rows).
        len: u32,
        /// Words after the axis (a packed table's row length).
        inner: u32,
        /// Indices.
        count: u32,
        /// Index-check site ([`Build::index_check`]).
        site: u32,
        axis: u32,
    }
}

params! {
    /// `gather_nd.wgsl`'s params.
    struct GatherNdParams {
        n: u32,
        /// Length of each index tuple.
        k: u32,
        /// Words of each slice picked.
        inner: u32,
        /// Index-check site ([`Build::index_check`]).
        site: u32,
        /// The data's shape, left-aligned (only the first `k` dims are read).
        shape: [u32; MAX_RANK],
    }
}
const SHADER_ND: Shader =
    Shader { name: "gather_nd", source: concat!(include_str!("index_check.wgsl"), include_str!("gather_nd.wgsl")) };

/// Gather.
pub(crate) struct Gather;

impl Kernel for Gather {
    fn ops(&self) -> &'static [&'static str] {
        &["Gather"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let (Some(Some(x)), Some(Some(i))) = (inputs.first(), inputs.get(1)) else {
            return Err("needs data and indices".into());
        };
        if !device_type(x.dtype) {
            return Err(format!("data `{}` is {:?}", x.name, x.dtype).into());
        }
        if !matches!(i.dtype, DatumType::I64 | DatumType::I32) {
            return Err(format!("indices `{}` are {:?} (int64 or int32 expected)", i.name, i.dtype).into());
        }
        let a = axis(node.int("axis", 0), x.shape.len())?;
        if let Some(idx) = const_ints(i) {
            let len = x.shape[a] as i64;
            if let Some(bad) = idx.iter().find(|&&k| k < -len || k >= len) {
                return Err(format!("index {bad} is out of range for axis {a} of length {len}").into());
            }
        }
        let mut shape = x.shape[..a].to_vec();
        shape.extend(&i.shape);
        shape.extend(&x.shape[a + 1..]);
        Ok(vec![OutputType::new(x.dtype, shape)])
    }

    fn index_sites(&self, _node: &Node) -> usize {
        1
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let x = b.input(0).shape.clone();
        let a = axis(b.node.int("axis", 0), x.len())?;
        let inner: usize = x[a + 1..].iter().product();
        let count = b.input(1).len();
        let n = b.output(0).len();
        let (errors, site) = b.index_check()?;
        let p = GatherParams {
            n: n as u32,
            len: x[a] as u32,
            inner: inner as u32,
            count: count as u32,
            site,
            axis: a as u32,
        };
        // A constant f32 table gathered along axis 0 (embeddings) may be packed.
        if a == 0 {
            let (packed, form) = weights::bind(b, b.input_id(0), x[0], inner, &|r, c| r * inner + c);
            if form != Form::F32 {
                let bindings = [Binding::Value(b.input_id(1)), packed, Binding::Value(b.output_id(0)), errors];
                return b.dispatch_1d(PACKED.pick(form, b.shader_f16), "main", &p, &bindings, n);
            }
        }
        let bindings =
            [Binding::Value(b.input_id(0)), Binding::Value(b.input_id(1)), Binding::Value(b.output_id(0)), errors];
        b.dispatch_1d(&SHADER, "main", &p, &bindings, n)
    }
}

/// GatherND (batch_dims 0).
pub(crate) struct GatherNd;

impl Kernel for GatherNd {
    fn ops(&self) -> &'static [&'static str] {
        &["GatherND"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let (Some(Some(x)), Some(Some(i))) = (inputs.first(), inputs.get(1)) else {
            return Err("needs data and indices".into());
        };
        if !device_type(x.dtype) || !matches!(i.dtype, DatumType::I64 | DatumType::I32) {
            return Err(format!("data {:?} / indices {:?} not supported", x.dtype, i.dtype).into());
        }
        if node.int("batch_dims", 0) != 0 {
            return Err("batch_dims other than 0 is not supported".into());
        }
        let k = *i.shape.last().ok_or("indices must have at least one axis")?;
        if k == 0 || k > x.shape.len() || k > 6 {
            return Err(format!("index tuples of {k} for data of rank {}", x.shape.len()).into());
        }
        if let Some(idx) = const_ints(i) {
            for t in idx.chunks(k) {
                for (d, &v) in t.iter().enumerate() {
                    let len = x.shape[d] as i64;
                    if v < -len || v >= len {
                        return Err(format!("index {v} is out of range for axis {d} of length {len}").into());
                    }
                }
            }
        }
        let mut shape = i.shape[..i.shape.len() - 1].to_vec();
        shape.extend(&x.shape[k..]);
        Ok(vec![OutputType::new(x.dtype, shape)])
    }

    fn index_sites(&self, _node: &Node) -> usize {
        1
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let x = b.input(0).shape.clone();
        let k = *b.input(1).shape.last().expect("checked");
        let inner: usize = x[k..].iter().product();
        let n = b.output(0).len();
        let (errors, site) = b.index_check()?;
        let shape = std::array::from_fn(|d| x.get(d).copied().unwrap_or(1) as u32);
        let p = GatherNdParams { n: n as u32, k: k as u32, inner: inner as u32, site, shape };
        let bindings =
            [Binding::Value(b.input_id(0)), Binding::Value(b.input_id(1)), Binding::Value(b.output_id(0)), errors];
        b.dispatch_1d(&SHADER_ND, "main", &p, &bindings, n)
    }
}
