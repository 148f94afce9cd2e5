//! Upgrading the default-domain opset from 11 or 12 to 13, rewriting what changed meaning.
//!
//! Per the ONNX operator changelog, the ops below kept their semantics from 11/12 to 13 (new
//! element types, or new attributes whose defaults keep the old behaviour). Ops whose inputs or
//! meaning changed are rewritten: Squeeze, Unsqueeze, ReduceSum (`axes` attribute → input),
//! Split (`split` attribute → input), Softmax, LogSoftmax, Hardmax (2-D coercion → one axis),
//! Resize (`tf_half_pixel_for_nn` removed: refused) and Dropout (`ratio` attribute dropped).
//! Anything else is refused, every such node listed at once.

use std::collections::HashMap;

use edgeqa_format::onnx::{self, pb};

use super::CleanError;
use super::edit::is_default_domain;
use crate::graph::{
    Names, attr_int, get_int, get_ints, get_str, graph, graph_mut, make_i64, node, node_label, set_attr,
};

/// The only upgrade target supported.
pub const UPGRADE_TARGET: i64 = 13;

/// Opsets the upgrade starts from.
pub const UPGRADE_FROM: [i64; 2] = [11, 12];

/// Default-domain ops whose semantics are the same at 11, 12 and 13. If, Loop and Scan are
/// listed: their bodies are checked node by node.
pub const UNCHANGED_11_TO_13: &[&str] = &[
    "Abs",
    "Acos",
    "Acosh",
    "Add",
    "And",
    "ArgMax",
    "ArgMin",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "AveragePool",
    "BatchNormalization",
    "BitShift",
    "Cast",
    "Ceil",
    "Celu",
    "Clip",
    "Compress",
    "Concat",
    "ConcatFromSequence",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "ConvInteger",
    "ConvTranspose",
    "Cos",
    "Cosh",
    "CumSum",
    "DepthToSpace",
    "DequantizeLinear",
    "Det",
    "Div",
    "DynamicQuantizeLinear",
    "Einsum",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "EyeLike",
    "Flatten",
    "Floor",
    "GRU",
    "Gather",
    "GatherElements",
    "GatherND",
    "Gemm",
    "GlobalAveragePool",
    "GlobalLpPool",
    "GlobalMaxPool",
    "Greater",
    "GreaterOrEqual",
    "HardSigmoid",
    "Identity",
    "If",
    "InstanceNormalization",
    "IsInf",
    "IsNaN",
    "LRN",
    "LSTM",
    "LeakyRelu",
    "Less",
    "LessOrEqual",
    "Log",
    "Loop",
    "LpNormalization",
    "LpPool",
    "MatMul",
    "MatMulInteger",
    "Max",
    "MaxPool",
    "MaxRoiPool",
    "MaxUnpool",
    "Mean",
    "MeanVarianceNormalization",
    "Min",
    "Mod",
    "Mul",
    "Multinomial",
    "Neg",
    "NegativeLogLikelihoodLoss",
    "NonMaxSuppression",
    "NonZero",
    "Not",
    "OneHot",
    "Or",
    "PRelu",
    "Pad",
    "Pow",
    "QLinearConv",
    "QLinearMatMul",
    "QuantizeLinear",
    "RNN",
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Range",
    "Reciprocal",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "ReverseSequence",
    "RoiAlign",
    "Round",
    "Scan",
    "ScatterElements",
    "ScatterND",
    "Selu",
    "SequenceAt",
    "SequenceConstruct",
    "SequenceEmpty",
    "SequenceErase",
    "SequenceInsert",
    "SequenceLength",
    "Shape",
    "Shrink",
    "Sigmoid",
    "Sign",
    "Sin",
    "Sinh",
    "Size",
    "Slice",
    "SoftmaxCrossEntropyLoss",
    "Softplus",
    "Softsign",
    "SpaceToDepth",
    "SplitToSequence",
    "Sqrt",
    "Sub",
    "Sum",
    "Tan",
    "Tanh",
    "ThresholdedRelu",
    "Tile",
    "TopK",
    "Transpose",
    "Unique",
    "Where",
    "Xor",
];

/// Default-domain ops the upgrade rewrites (or checks) for opset 13.
pub const REWRITTEN_FOR_13: &[&str] =
    &["Dropout", "Hardmax", "LogSoftmax", "ReduceSum", "Resize", "Softmax", "Split", "Squeeze", "Unsqueeze"];

const SOFTMAX_LIKE: &[&str] = &["Softmax", "LogSoftmax", "Hardmax"];

/// Upgrades the default-domain opset to `target` when the model's is lower. Returns how many
/// nodes were rewritten (0 when nothing had to change).
pub(crate) fn upgrade(model: &mut pb::ModelProto, origin: &str, target: i64) -> Result<usize, CleanError> {
    let from = check_upgradable(model, origin, target)?;
    if from >= target {
        return Ok(0);
    }
    let problems = problems(graph(model), false);
    if !problems.is_empty() {
        return Err(CleanError::Upgrade { origin: origin.into(), from, to: target, nodes: problems });
    }
    let ranks = softmax_ranks(model);
    let g = graph_mut(model);
    let mut names = Names::of(g);
    let mut nodes = Vec::with_capacity(g.node.len());
    let mut made = Vec::new();
    let mut rewritten = 0;
    for mut n in std::mem::take(&mut g.node) {
        // Resize only needs the check in `problems`.
        if !is_default_domain(&n) || !REWRITTEN_FOR_13.contains(&n.op_type.as_str()) || n.op_type == "Resize" {
            nodes.push(n);
            continue;
        }
        rewritten += 1;
        match n.op_type.as_str() {
            "Squeeze" | "Unsqueeze" | "ReduceSum" => attr_to_input(&mut n, "axes", 1, &mut names, &mut made),
            "Split" => attr_to_input(&mut n, "split", 1, &mut names, &mut made),
            "Dropout" => n.attribute.retain(|a| a.name != "ratio"),
            _ => {
                let rank = n.input.first().and_then(|x| ranks.get(x)).copied();
                nodes.extend(softmax_like(n, rank, &mut names));
                continue;
            }
        }
        nodes.push(n);
    }
    g.node = nodes;
    g.initializer.extend(made);
    for o in model.opset_import.iter_mut().filter(|o| o.domain.is_empty() || o.domain == "ai.onnx") {
        o.version = target;
    }
    // Opset 13 needs IR version 7.
    model.ir_version = model.ir_version.max(7);
    Ok(rewritten)
}

/// The model's default-domain opset, when an upgrade to `target` can start from it.
pub(crate) fn check_upgradable(model: &pb::ModelProto, origin: &str, target: i64) -> Result<i64, CleanError> {
    let from = onnx::opset(model).ok_or_else(|| CleanError::NoOpset { origin: origin.into() })?;
    if from >= target {
        return Ok(from);
    }
    if target != UPGRADE_TARGET {
        return Err(CleanError::UpgradeTarget { origin: origin.into(), from, to: target });
    }
    if !UPGRADE_FROM.contains(&from) {
        return Err(CleanError::OpsetTooOld { origin: origin.into(), found: from, to: target });
    }
    Ok(from)
}

/// Every node the upgrade cannot handle, as `Op (node): why`, subgraph bodies included.
fn problems(g: &pb::GraphProto, in_body: bool) -> Vec<String> {
    let mut out = Vec::new();
    for n in &g.node {
        let op = n.op_type.as_str();
        let label = format!("{} ({})", onnx::op_key(n), node_label(n));
        if is_default_domain(n) {
            if op == "Resize" && get_str(n, "coordinate_transformation_mode").as_deref() == Some("tf_half_pixel_for_nn")
            {
                out.push(format!(
                    "{label}: coordinate_transformation_mode=tf_half_pixel_for_nn was removed in opset 13"
                ));
            } else if REWRITTEN_FOR_13.contains(&op) && in_body && op != "Resize" {
                out.push(format!("{label}: changed in opset 13 and sits inside a subgraph, which is not rewritten"));
            } else if !REWRITTEN_FOR_13.contains(&op) && !UNCHANGED_11_TO_13.contains(&op) {
                out.push(format!("{label}: no upgrade rule to opset 13"));
            }
        }
        for a in &n.attribute {
            for sub in a.g.iter().chain(&a.graphs) {
                out.extend(problems(sub, true));
            }
        }
    }
    out
}

/// Moves an ints attribute to an int64 initializer read as input `slot` (absent attribute:
/// nothing to do, the op's default applies in both opsets).
fn attr_to_input(n: &mut pb::NodeProto, attr: &str, slot: usize, names: &mut Names, made: &mut Vec<pb::TensorProto>) {
    let Some(values) = get_ints(n, attr) else { return };
    let name = names.fresh(&format!("{}_{attr}", node_label(n)));
    made.push(make_i64(&name, &[values.len()], &values));
    n.attribute.retain(|a| a.name != attr);
    n.input.resize(slot, String::new());
    n.input.push(name);
}

/// Softmax, LogSoftmax or Hardmax for opset 13. Before 13 they flatten the input to 2-D at
/// `axis` (default 1); that is one-axis semantics when the axis is the last one, otherwise the
/// node becomes Flatten(axis) → op(axis = -1) → Reshape back to Shape(x).
fn softmax_like(mut n: pb::NodeProto, rank: Option<usize>, names: &mut Names) -> Vec<pb::NodeProto> {
    debug_assert!(SOFTMAX_LIKE.contains(&n.op_type.as_str()));
    let axis = get_int(&n, "axis").unwrap_or(1);
    let last = axis == -1 || rank.is_some_and(|r| axis == r as i64 - 1);
    set_attr(&mut n, attr_int("axis", -1));
    if last {
        return vec![n];
    }
    let (x, y) = (n.input[0].clone(), n.output[0].clone());
    let label = node_label(&n);
    let shape = names.fresh(&format!("{y}_shape"));
    let flat = names.fresh(&format!("{y}_2d"));
    let out2d = names.fresh(&format!("{y}_2d_out"));
    let flatten =
        node("Flatten", &names.fresh(&format!("{label}_flatten")), &[&x], &[&flat], vec![attr_int("axis", axis)]);
    let shape_node = node("Shape", &names.fresh(&format!("{label}_shape")), &[&x], &[&shape], vec![]);
    let reshape = node("Reshape", &names.fresh(&format!("{label}_reshape")), &[&out2d, &shape], &[&y], vec![]);
    n.input[0] = flat;
    n.output[0] = out2d;
    vec![shape_node, flatten, n, reshape]
}

/// Ranks of the inputs of Softmax-like nodes whose axis is not -1, where known.
fn softmax_ranks(model: &pb::ModelProto) -> HashMap<String, usize> {
    let wanted: Vec<&str> = graph(model)
        .node
        .iter()
        .filter(|n| is_default_domain(n) && SOFTMAX_LIKE.contains(&n.op_type.as_str()))
        .filter(|n| get_int(n, "axis").unwrap_or(1) != -1)
        .filter_map(|n| n.input.first().map(|s| s.as_str()))
        .collect();
    if wanted.is_empty() {
        return HashMap::new();
    }
    let mut ranks = super::rank::ranks(model);
    ranks.retain(|k, _| wanted.contains(&k.as_str()));
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::testutil::{assert_same_function, model, ops, random_f32, run};
    use crate::graph::{attr_ints, attr_str, make_f32};

    fn upgraded(before: &pb::ModelProto) -> (pb::ModelProto, usize) {
        let mut after = before.clone();
        let n = upgrade(&mut after, "test.onnx", 13).unwrap();
        assert_eq!(onnx::opset(&after), Some(13));
        (after, n)
    }

    #[test]
    fn axes_and_split_attributes_become_inputs() {
        for from in UPGRADE_FROM {
            let before = model(
                from,
                vec![
                    node("Unsqueeze", "u", &["x"], &["a"], vec![attr_ints("axes", &[0, 3])]),
                    node("Squeeze", "s", &["a"], &["b"], vec![attr_ints("axes", &[0])]),
                    node("ReduceSum", "r", &["b"], &["c"], vec![attr_ints("axes", &[-1]), attr_int("keepdims", 0)]),
                    node("ReduceSum", "all", &["b"], &["d"], vec![attr_int("keepdims", 0)]),
                    node("Split", "sp", &["c"], &["e", "f"], vec![attr_int("axis", 1), attr_ints("split", &[1, 3])]),
                    node("Split", "even", &["c"], &["g", "h"], vec![attr_int("axis", 1)]),
                ],
                vec![],
                &[("x", &[2, 4, 3])],
                &["d", "e", "f", "g", "h"],
            );
            let (after, n) = upgraded(&before);
            assert_eq!(n, 6);
            let g = graph(&after);
            assert!(g.node.iter().all(|n| get_ints(n, "axes").is_none() && get_ints(n, "split").is_none()));
            assert_eq!(g.node[0].input.len(), 2);
            assert_eq!(g.node[3].input.len(), 1, "no axes: reduce all in both opsets");
            assert_eq!(g.node[5].input.len(), 1, "no split: even split in both opsets");
            assert_same_function(&before, &after, &[random_f32(&[2, 4, 3], 20)], 0.0);
        }
    }

    #[test]
    fn softmax_on_the_last_axis_just_bumps() {
        let before = model(
            11,
            vec![
                node("Softmax", "last", &["x"], &["a"], vec![attr_int("axis", 2)]),
                node("LogSoftmax", "minus1", &["a"], &["b"], vec![attr_int("axis", -1)]),
                node("Hardmax", "h", &["b"], &["y"], vec![attr_int("axis", 2)]),
            ],
            vec![],
            &[("x", &[2, 3, 5])],
            &["y"],
        );
        let (after, n) = upgraded(&before);
        assert_eq!(n, 3);
        assert_eq!(ops(&after), vec!["Softmax", "LogSoftmax", "Hardmax"]);
        assert!(graph(&after).node.iter().all(|n| get_int(n, "axis") == Some(-1)));
        assert_same_function(&before, &after, &[random_f32(&[2, 3, 5], 21)], 1e-6);
    }

    #[test]
    fn softmax_on_an_inner_axis_keeps_the_2d_coercion() {
        for op in SOFTMAX_LIKE {
            let before = model(
                12,
                vec![
                    node(op, "default_axis", &["x"], &["a"], vec![]),
                    node(op, "axis0", &["a"], &["y"], vec![attr_int("axis", 0)]),
                ],
                vec![],
                &[("x", &[2, 3, 4])],
                &["y"],
            );
            let (after, n) = upgraded(&before);
            assert_eq!(n, 2);
            assert_eq!(ops(&after).len(), 8, "{:?}", ops(&after));
            assert_same_function(&before, &after, &[random_f32(&[2, 3, 4], 22)], 1e-6);
            // A plain per-axis op would differ: the rewrite is needed.
            let mut naive = before.clone();
            naive.opset_import[0].version = 13;
            let x = [random_f32(&[2, 3, 4], 22)];
            let d = crate::clean::testutil::max_abs_diff(&run(&before, &x).unwrap()[0], &run(&naive, &x).unwrap()[0]);
            assert!(d > 1e-3, "{op}: {d}");
        }
    }

    #[test]
    fn dropout_loses_its_ratio_attribute() {
        let mut d = node("Dropout", "d", &["x"], &["y", "mask"], vec![]);
        d.attribute.push(crate::clean::testutil::attr_float("ratio", 0.3));
        let before = model(11, vec![d], vec![], &[("x", &[3])], &["y", "mask"]);
        let (after, _) = upgraded(&before);
        assert!(graph(&after).node[0].attribute.is_empty());
        assert_same_function(&before, &after, &[random_f32(&[3], 23)], 0.0);
    }

    #[test]
    fn the_op_lists_are_disjoint() {
        for op in REWRITTEN_FOR_13 {
            assert!(!UNCHANGED_11_TO_13.contains(op), "{op} is in both lists");
        }
    }

    #[test]
    fn resize_without_tf_half_pixel_for_nn_just_bumps() {
        let before = model(
            11,
            vec![node(
                "Resize",
                "up",
                &["x", "roi", "scales"],
                &["y"],
                vec![attr_str("mode", "nearest"), attr_str("coordinate_transformation_mode", "asymmetric")],
            )],
            vec![make_f32("roi", &[0], &[]), make_f32("scales", &[4], &[1.0, 1.0, 2.0, 2.0])],
            &[("x", &[1, 2, 3, 3])],
            &["y"],
        );
        let (after, n) = upgraded(&before);
        assert_eq!(n, 0);
        assert_eq!(graph(&after).node, graph(&before).node);
        assert_same_function(&before, &after, &[random_f32(&[1, 2, 3, 3], 24)], 0.0);
    }

    #[test]
    fn every_unknown_node_is_listed_at_once() {
        let mut m = model(
            11,
            vec![
                node("Upsample", "up", &["x", "scales"], &["a"], vec![]),
                node("Relu", "fine", &["a"], &["b"], vec![]),
                node(
                    "Resize",
                    "tf",
                    &["b", "", "scales"],
                    &["c"],
                    vec![attr_str("coordinate_transformation_mode", "tf_half_pixel_for_nn")],
                ),
                node("Scatter", "old", &["c", "i", "u"], &["y"], vec![]),
            ],
            vec![make_f32("scales", &[4], &[1.0, 1.0, 2.0, 2.0])],
            &[("x", &[1, 1, 2, 2])],
            &["y"],
        );
        let err = upgrade(&mut m, "model.onnx", 13).unwrap_err();
        let CleanError::Upgrade { nodes, .. } = &err else { panic!("{err}") };
        assert_eq!(nodes.len(), 3, "{nodes:?}");
        let msg = err.to_string();
        for part in ["model.onnx", "Upsample (up)", "Resize (tf)", "tf_half_pixel_for_nn", "Scatter (old)", "opset"] {
            assert!(msg.contains(part), "{part} missing in {msg}");
        }
        assert_eq!(onnx::opset(&m), Some(11), "nothing changed");
    }

    #[test]
    fn old_opsets_and_other_targets_are_refused_newer_ones_untouched() {
        let mut old = model(10, vec![], vec![], &[], &[]);
        let err = upgrade(&mut old, "old.onnx", 13).unwrap_err();
        assert!(matches!(err, CleanError::OpsetTooOld { found: 10, .. }), "{err}");
        assert!(err.to_string().contains("re-export"), "{err}");
        let mut m = model(12, vec![], vec![], &[], &[]);
        assert!(matches!(upgrade(&mut m, "m.onnx", 14), Err(CleanError::UpgradeTarget { .. })));
        let mut new = model(17, vec![node("Softmax", "s", &["x"], &["y"], vec![])], vec![], &[("x", &[2])], &["y"]);
        let copy = new.clone();
        assert_eq!(upgrade(&mut new, "new.onnx", 13).unwrap(), 0);
        assert_eq!(new, copy);
    }

    #[test]
    fn rewrites_inside_bodies_are_refused() {
        let mut body = pb::GraphProto::default();
        body.node.push(node("Squeeze", "inner", &["x"], &["z"], vec![attr_ints("axes", &[0])]));
        let mut iff = node("If", "branch", &["cond"], &["y"], vec![]);
        iff.attribute.push(crate::graph::attr_graph("then_branch", body));
        let mut m = model(11, vec![iff], vec![], &[("x", &[1])], &["y"]);
        let err = upgrade(&mut m, "m.onnx", 13).unwrap_err();
        assert!(err.to_string().contains("Squeeze (inner)"), "{err}");
    }
}
