//! Fixing a stage's input shapes and inferring its output shapes with tract.

use edgeqa_format::manifest::TensorInfo;
use edgeqa_format::onnx::{self, DeclaredTensor, Dim, pb};
use edgeqa_format::tract::{datum_type, dtype_of};
use tract_onnx::prelude::*;

use crate::ConvertError;

/// Reconciles a declared input with the shape the contract (or `--input-shape`) wants.
/// Fixed declared dimensions must agree; symbolic ones take the wanted value.
pub fn fix_input(origin: &str, decl: &DeclaredTensor, wanted: Option<&[usize]>) -> Result<TensorInfo, ConvertError> {
    let bad = |reason: String| ConvertError::Shape { origin: origin.to_string(), input: decl.name.clone(), reason };
    let needs =
        |reason: String| ConvertError::NeedsShape { origin: origin.to_string(), input: decl.name.clone(), reason };
    let dtype = decl
        .dtype
        .ok_or_else(|| bad(format!("element type {} is not supported", onnx::onnx_type_name(decl.onnx_type))))?;
    let shape = match (&decl.dims, wanted) {
        (None, Some(w)) => w.to_vec(),
        (None, None) => {
            return Err(needs("the graph declares no shape".into()));
        }
        (Some(dims), None) => dims
            .iter()
            .map(|d| match d {
                Dim::Fixed(v) => Ok(*v),
                Dim::Symbolic(s) => Err(needs(format!("dimension `{s}` is symbolic in {}", show(dims)))),
            })
            .collect::<Result<_, _>>()?,
        (Some(dims), Some(w)) => {
            if dims.len() != w.len() {
                return Err(bad(format!(
                    "the graph declares rank {} {} but {:?} is wanted",
                    dims.len(),
                    show(dims),
                    w
                )));
            }
            for (d, &v) in dims.iter().zip(w) {
                if let Dim::Fixed(f) = d
                    && *f != v
                {
                    return Err(bad(format!("the graph declares {} but the contract needs {:?}", show(dims), w)));
                }
            }
            w.to_vec()
        }
    };
    Ok(TensorInfo { name: decl.name.clone(), dtype, shape })
}

fn show(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Dim::Fixed(v) => v.to_string(),
            Dim::Symbolic(s) if s.is_empty() => "?".into(),
            Dim::Symbolic(s) => s.clone(),
        })
        .collect();
    format!("[{}]", parts.join(","))
}

/// Output names, types and concrete shapes of a graph given fixed inputs, in graph order.
pub fn infer_outputs(
    origin: &str,
    proto: &pb::ModelProto,
    inputs: &[TensorInfo],
) -> Result<Vec<TensorInfo>, ConvertError> {
    let fail = |reason: String| ConvertError::Graph { origin: origin.to_string(), reason };
    let mut model = edgeqa_format::tract::framework().parse(proto, None).map_err(|e| fail(format!("{e:#}")))?.model;
    for ix in 0..model.inputs.len() {
        let name = model.node(model.inputs[ix].node).name.clone();
        let info =
            inputs.iter().find(|i| i.name == name).ok_or_else(|| fail(format!("input `{name}` has no fixed shape")))?;
        model
            .set_input_fact(ix, InferenceFact::dt_shape(datum_type(info.dtype), &info.shape))
            .map_err(|e| fail(format!("{e:#}")))?;
    }
    let typed = model.into_typed().map_err(|e| fail(format!("shape inference failed: {e:#}")))?;
    let names: Vec<String> = onnx::graph_outputs(proto).into_iter().map(|o| o.name).collect();
    let mut out = Vec::new();
    for (i, outlet) in typed.outputs.iter().enumerate() {
        let fact = typed.outlet_fact(*outlet).map_err(|e| fail(format!("{e:#}")))?;
        let name = names.get(i).cloned().unwrap_or_else(|| format!("output_{i}"));
        let shape = fact
            .shape
            .as_concrete()
            .ok_or_else(|| {
                fail(format!("output `{name}` has a shape that depends on the input values ({:?})", fact.shape))
            })?
            .to_vec();
        let dtype = dtype_of(fact.datum_type).ok_or_else(|| {
            fail(format!("output `{name}` has element type {:?}, which edgeqa cannot return", fact.datum_type))
        })?;
        out.push(TensorInfo { name, dtype, shape });
    }
    Ok(out)
}
