//! Test helpers for the clean passes: running a model through tract, seeded inputs and comparing
//! two models' outputs. Models are built with [`edgeqa_format::onnx_builder`] (re-exported here).

use edgeqa_format::onnx::pb;
use tract_onnx::prelude::*;

pub(crate) use edgeqa_format::onnx_builder::{attr_float, model, value_f32};

/// Runs a model through tract with these inputs (graph input order); shapes come from the
/// inputs, so symbolic dims need no other fixing.
pub(crate) fn run(model: &pb::ModelProto, inputs: &[Tensor]) -> TractResult<Vec<Tensor>> {
    let mut m = edgeqa_format::tract::framework().model_for_proto_model(model)?;
    for (ix, t) in inputs.iter().enumerate() {
        m.set_input_fact(ix, InferenceFact::dt_shape(t.datum_type(), t.shape()))?;
    }
    let plan = m.into_optimized()?.into_runnable()?;
    let out = plan.run(inputs.iter().cloned().map(|t| t.into_tvalue()).collect())?;
    Ok(out.into_iter().map(|t| t.into_tensor()).collect())
}

/// A deterministic pseudo-random f32 tensor in [-1, 1) ([`edgeqa_format::synthetic`], seeded).
pub(crate) fn random_f32(shape: &[usize], seed: u64) -> Tensor {
    let data = edgeqa_format::synthetic::f32s(shape.iter().product(), seed);
    tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), data).unwrap().into_tensor()
}

/// A tract tensor with the data of an edgeqa one.
pub(crate) fn to_tract(t: &edgeqa_format::tensor::Tensor) -> Tensor {
    use edgeqa_format::tensor::TensorData as D;
    let s = t.shape.clone();
    match &t.data {
        D::F32(v) => tract_ndarray::ArrayD::from_shape_vec(s, v.clone()).unwrap().into_tensor(),
        D::I64(v) => tract_ndarray::ArrayD::from_shape_vec(s, v.clone()).unwrap().into_tensor(),
        D::I32(v) => tract_ndarray::ArrayD::from_shape_vec(s, v.clone()).unwrap().into_tensor(),
        D::U8(v) => tract_ndarray::ArrayD::from_shape_vec(s, v.clone()).unwrap().into_tensor(),
        D::I8(v) => tract_ndarray::ArrayD::from_shape_vec(s, v.clone()).unwrap().into_tensor(),
        D::Bool(v) => tract_ndarray::ArrayD::from_shape_vec(s, v.clone()).unwrap().into_tensor(),
    }
}

/// Largest absolute difference between two tensors of the same shape (compared as f32).
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape(), "output shapes differ");
    let a = a.cast_to::<f32>().unwrap();
    let b = b.cast_to::<f32>().unwrap();
    let (a, b) = (a.to_plain_array_view::<f32>().unwrap(), b.to_plain_array_view::<f32>().unwrap());
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Asserts that two models give the same outputs (within `tol`) on these inputs.
pub(crate) fn assert_same_function(before: &pb::ModelProto, after: &pb::ModelProto, inputs: &[Tensor], tol: f32) {
    let a = run(before, inputs).expect("the original model runs");
    let b = run(after, inputs).expect("the cleaned model runs");
    assert_eq!(a.len(), b.len(), "output counts differ");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x.datum_type(), y.datum_type(), "output {i}: element types differ");
        let d = max_abs_diff(x, y);
        assert!(d <= tol, "output {i}: max abs diff {d} > {tol}");
    }
}

/// The op types of a graph's nodes, in order.
pub(crate) fn ops(m: &pb::ModelProto) -> Vec<String> {
    crate::graph::graph(m).node.iter().map(|n| n.op_type.clone()).collect()
}
