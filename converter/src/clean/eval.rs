//! Evaluating constant sub-graphs with tract and turning tract tensors back into initializers.

use std::collections::HashMap;

use edgeqa_format::onnx::pb;
use edgeqa_format::onnx_builder::{GraphBuilder, value_untyped};
use edgeqa_format::tract::framework;
pub(crate) use edgeqa_format::tract::to_proto;
use tract_onnx::prelude::*;

/// Runs `nodes` (a constant sub-graph: every input is one of `inits` or an output of an
/// earlier node) in one tract run, at the opset of `like`, and returns the `wanted` tensors
/// that convert to initializers (by name; element types tract cannot hand back are missing).
pub(crate) fn evaluate(
    like: &pb::ModelProto,
    inits: Vec<pb::TensorProto>,
    nodes: Vec<pb::NodeProto>,
    wanted: &[String],
) -> TractResult<HashMap<String, pb::TensorProto>> {
    let mut b = GraphBuilder::new("constant_subgraph", 0).ir_version(like.ir_version);
    for n in nodes {
        b.push(n);
    }
    for t in inits {
        b.initializer(t);
    }
    let mut proto = b.into_model();
    proto.opset_import = like.opset_import.clone();
    if let Some(g) = proto.graph.as_mut() {
        g.output = wanted.iter().map(|n| value_untyped(n)).collect();
    }
    let model = framework().model_for_proto_model(&proto)?;
    let plan = model.into_optimized()?.into_runnable()?;
    let values = plan.run(tvec![])?;
    anyhow::ensure!(
        values.len() == wanted.len(),
        "tract returned {} tensors for {} outputs",
        values.len(),
        wanted.len()
    );
    Ok(wanted.iter().zip(values.iter()).filter_map(|(name, v)| Some((name.clone(), to_proto(name, v)?))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{make_f32, make_i64, node, tensor_f32, tensor_i64};
    use pb::tensor_proto::DataType as T;

    #[test]
    fn tensors_keep_their_element_type() {
        let t = tract_ndarray::arr2(&[[1.5f32, -2.0], [0.0, 4.0]]).into_tensor();
        let p = to_proto("a", &t).unwrap();
        assert_eq!(tensor_f32(&p).unwrap().data, vec![1.5, -2.0, 0.0, 4.0]);
        assert_eq!(p.dims, vec![2, 2]);
        let p = to_proto("b", &tensor1(&[true, false])).unwrap();
        assert_eq!((p.data_type, tensor_i64(&p).unwrap()), (T::Bool as i32, vec![1, 0]));
        let p = to_proto("c", &tensor0(-3i8)).unwrap();
        assert_eq!((p.data_type, p.dims.len(), tensor_i64(&p).unwrap()), (T::Int8 as i32, 0, vec![-3]));
        let p = to_proto("d", &tensor1(&[TDim::from(3), TDim::from(5)])).unwrap();
        assert_eq!((p.data_type, tensor_i64(&p).unwrap()), (T::Int64 as i32, vec![3, 5]));
        assert!(to_proto("e", &tensor1(&[TDim::Sym(SymbolScope::default().sym("n"))])).is_none());
    }

    #[test]
    fn a_constant_subgraph_runs_in_one_go() {
        let like = crate::clean::testutil::model(13, vec![], vec![], &[], &[]);
        let inits = vec![make_f32("a", &[2], &[1.0, 2.0]), make_i64("s", &[2], &[2, 1])];
        let nodes = vec![
            node("Add", "add", &["a", "a"], &["b"], vec![]),
            node("Reshape", "r", &["b", "s"], &["c"], vec![]),
            node("Shape", "sh", &["c"], &["d"], vec![]),
        ];
        let out = evaluate(&like, inits, nodes, &["b".into(), "c".into(), "d".into()]).unwrap();
        assert_eq!(tensor_f32(&out["b"]).unwrap().data, vec![2.0, 4.0]);
        assert_eq!(out["c"].dims, vec![2, 1]);
        assert_eq!((out["d"].data_type, tensor_i64(&out["d"]).unwrap()), (T::Int64 as i32, vec![2, 1]));
    }
}
