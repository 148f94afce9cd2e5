//! Test helpers for the clean passes: building small models, running a model through tract,
//! random inputs and comparing two models' outputs.

use edgeqa::onnx::pb;
use tract_onnx::prelude::*;

/// A graph input or output declared as f32 with a fixed shape.
pub(crate) fn value_f32(name: &str, shape: &[usize]) -> pb::ValueInfoProto {
    value(name, pb::tensor_proto::DataType::Float as i32, Some(shape))
}

/// A graph input or output with an element type and an optional fixed shape.
pub(crate) fn value(name: &str, elem_type: i32, shape: Option<&[usize]>) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value as D};
    let shape = shape.map(|s| pb::TensorShapeProto {
        dim: s.iter().map(|&d| Dimension { value: Some(D::DimValue(d as i64)), ..Default::default() }).collect(),
    });
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor { elem_type, shape })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A model of the default domain at `opset` with these nodes, initializers, f32 inputs (name,
/// shape) and outputs (names, no declared type).
pub(crate) fn model(
    opset: i64,
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    inputs: &[(&str, &[usize])],
    outputs: &[&str],
) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: 7,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: opset }],
        graph: Some(pb::GraphProto {
            name: "test".into(),
            node: nodes,
            initializer: inits,
            input: inputs.iter().map(|(n, s)| value_f32(n, s)).collect(),
            output: outputs.iter().map(|n| pb::ValueInfoProto { name: n.to_string(), ..Default::default() }).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs a model through tract with these inputs (graph input order); shapes come from the
/// inputs, so symbolic dims need no other fixing.
pub(crate) fn run(model: &pb::ModelProto, inputs: &[Tensor]) -> TractResult<Vec<Tensor>> {
    let mut m = edgeqa::backend::tract::framework().model_for_proto_model(model)?;
    for (ix, t) in inputs.iter().enumerate() {
        m.set_input_fact(ix, InferenceFact::dt_shape(t.datum_type(), t.shape()))?;
    }
    let plan = m.into_optimized()?.into_runnable()?;
    let out = plan.run(inputs.iter().cloned().map(|t| t.into_tvalue()).collect())?;
    Ok(out.into_iter().map(|t| t.into_tensor()).collect())
}

/// A deterministic pseudo-random f32 tensor in [-1, 1) (xorshift, seeded).
pub(crate) fn random_f32(shape: &[usize], seed: u64) -> Tensor {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), data).unwrap().into_tensor()
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

/// A float attribute.
pub(crate) fn attr_float(name: &str, v: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Float as i32,
        f: v,
        ..Default::default()
    }
}
