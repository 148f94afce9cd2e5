//! Evaluating constant nodes with tract at load (tract tensors become ONNX initializers through
//! [`edgeqa_format::tract::to_proto`]).

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::tract_data::internal::{anyhow, ensure};

use crate::onnx::pb;
use crate::onnx_builder::{GraphBuilder, value_untyped};
use edgeqa_format::tract::framework;
pub use edgeqa_format::tract::to_proto;

/// Runs one node whose inputs are all constants (`inputs` by ONNX name) at `opset` and returns
/// its outputs in order.
pub fn evaluate_node(opset: i64, node: &pb::NodeProto, inputs: &[(String, Arc<Tensor>)]) -> TractResult<Vec<Tensor>> {
    let mut inits = Vec::with_capacity(inputs.len());
    for (name, t) in inputs {
        inits.push(to_proto(name, t).ok_or_else(|| anyhow!("input `{name}` of type {:?}", t.datum_type()))?);
    }
    // tract does not check a LayerNormalization axis against the rank and may then loop without
    // end (`backend::tract_fixes::check_layer_norm_axis`); the input's rank is known here.
    if node.op_type == "LayerNormalization"
        && let Some((_, x)) = inputs.first()
    {
        let axis = node.attribute.iter().find(|a| a.name == "axis").map_or(-1, |a| a.i);
        let rank = x.rank() as i64;
        ensure!((-rank..rank).contains(&axis), "axis {axis} does not fit an input of rank {rank}");
    }
    let outputs: Vec<String> = node.output.iter().filter(|o| !o.is_empty()).cloned().collect();
    let mut b = GraphBuilder::new("constant_node", opset);
    b.push(node.clone());
    for t in inits {
        b.initializer(t);
    }
    let mut proto = b.into_model();
    if let Some(g) = proto.graph.as_mut() {
        g.output = outputs.iter().map(|n| value_untyped(n)).collect();
    }
    // A node from a file can make tract panic (say, a Transpose `perm` that does not fit the
    // input's rank): that is an error here, and the node is left to the backend to judge.
    let run = || -> TractResult<TVec<TValue>> {
        framework().model_for_proto_model(&proto)?.into_optimized()?.into_runnable()?.run(tvec![])
    };
    let values = edgeqa_format::tract::catch_panic(run)
        .map_err(|what| anyhow!("tract panicked evaluating the node: {what}"))??;
    ensure!(values.len() == outputs.len(), "tract returned {} tensors for {} outputs", values.len(), outputs.len());
    Ok(values.into_iter().map(|v| v.into_tensor()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
        crate::onnx_builder::node(op, &op.to_lowercase(), inputs, outputs, vec![])
    }

    #[test]
    fn a_constant_node_is_evaluated() {
        let a = Arc::new(tensor1(&[1.0f32, 2.0, 3.0, 4.0]));
        let s = Arc::new(tensor1(&[2i64, 2]));
        let out =
            evaluate_node(13, &node("Reshape", &["a", "s"], &["r"]), &[("a".into(), a), ("s".into(), s)]).unwrap();
        assert_eq!(out[0], tract_ndarray::arr2(&[[1.0f32, 2.0], [3.0, 4.0]]).into_tensor());
    }

    #[test]
    fn a_layer_norm_axis_outside_the_rank_is_not_given_to_tract() {
        // With the `Mean` output, tract's shape inference never ended for axis -3 of rank 2.
        let x = Arc::new(tensor2(&[[1.0f32, 2.0], [3.0, 5.0]]));
        let s = Arc::new(tensor1(&[1.0f32, 1.0]));
        let inputs = [("x".into(), x), ("s".into(), s)];
        for (axis, ok) in [(-3, false), (2, false), (-2, true), (1, true)] {
            let mut ln = node("LayerNormalization", &["x", "s"], &["y", "mean"]);
            ln.attribute.push(pb::AttributeProto { name: "axis".into(), i: axis, r#type: 2, ..Default::default() });
            let out = evaluate_node(17, &ln, &inputs);
            assert_eq!(out.is_ok(), ok, "axis {axis}: {:?}", out.map(|_| ()));
        }
    }
}
