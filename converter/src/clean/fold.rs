//! Constant folding: nodes whose inputs are all initializers are evaluated (with tract, in one
//! run for the whole constant sub-graph) and replaced by initializers, unless that would grow
//! the model. `Shape` of a graph input whose dims are all fixed folds too.

use std::collections::{HashMap, HashSet};

use edgeqa_format::onnx::{self, Dim, pb};

use super::edit::{has_subgraph, is_default_domain, remove_nodes, tensor_bytes};
use super::eval::evaluate;
use crate::graph::{get_int, graph, graph_mut, make_i64, node_label, output_names};

/// A folded node may be bigger than its inputs only up to this many bytes.
pub const GROWTH_LIMIT_BYTES: usize = 4096;

/// Ops never folded: dequantization (quantized models must stay small), randomness, sequences
/// and anything with a body.
const NEVER_FOLD: &[&str] = &[
    "DequantizeLinear",
    "Constant",
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
    "SequenceAt",
    "SequenceConstruct",
    "SequenceEmpty",
    "SequenceErase",
    "SequenceInsert",
    "SequenceLength",
    "SplitToSequence",
    "ConcatFromSequence",
    "If",
    "Loop",
    "Scan",
];

/// What constant folding did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FoldStats {
    /// Nodes evaluated and replaced by initializers (fixed-shape `Shape` nodes included).
    pub folded: usize,
    /// `Shape` nodes of fixed-shape graph inputs among `folded`.
    pub shapes: usize,
    /// Nodes left in place because their result is bigger than their inputs and the limit.
    pub too_large: usize,
    /// Constant nodes tract could not evaluate (they stay; see the log).
    pub failed: usize,
}

/// Folds the main graph's constant nodes. The graph must be topologically sorted.
pub(crate) fn fold_constants(model: &mut pb::ModelProto, origin: &str) -> FoldStats {
    let shapes = fold_fixed_shapes(model);
    let g = graph(model);
    let candidates = candidates(g);
    if candidates.is_empty() {
        return FoldStats { folded: shapes, shapes, ..Default::default() };
    }
    let (values, failed) = evaluate_all(model, &candidates, origin);
    let (dead, made, too_large) = choose(graph(model), &candidates, &values);
    let g = graph_mut(model);
    remove_nodes(g, &dead);
    g.initializer.extend(made);
    FoldStats { folded: dead.len() + shapes, shapes, too_large, failed }
}

/// Replaces `Shape` of a graph input whose declared dims are all fixed by an initializer.
fn fold_fixed_shapes(model: &mut pb::ModelProto) -> usize {
    let fixed: HashMap<String, Vec<i64>> = onnx::graph_inputs(model)
        .into_iter()
        .filter_map(|d| {
            let dims: Option<Vec<i64>> =
                d.dims?.iter().map(|x| if let Dim::Fixed(v) = x { Some(*v as i64) } else { None }).collect();
            Some((d.name, dims?))
        })
        .collect();
    let g = graph_mut(model);
    let outputs = output_names(g);
    let mut dead = HashSet::new();
    let mut made = Vec::new();
    for (i, n) in g.node.iter().enumerate() {
        if n.op_type != "Shape" || !is_default_domain(n) || n.output.len() != 1 || outputs.contains(&n.output[0]) {
            continue;
        }
        let Some(dims) = n.input.first().and_then(|x| fixed.get(x)) else { continue };
        // Shape-15 slices with start/end (clamped, negative counts from the back).
        let rank = dims.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
        let (start, end) = (clamp(get_int(n, "start").unwrap_or(0)), clamp(get_int(n, "end").unwrap_or(rank)));
        let part = if start < end { &dims[start..end] } else { &[][..] };
        made.push(make_i64(&n.output[0], &[part.len()], part));
        dead.insert(i);
    }
    remove_nodes(g, &dead);
    g.initializer.extend(made);
    dead.len()
}

/// Positions of the nodes all of whose inputs are initializers or outputs of earlier such
/// nodes, in graph order.
fn candidates(g: &pb::GraphProto) -> Vec<usize> {
    let outputs = output_names(g);
    let mut known: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    known.insert("");
    let mut out = Vec::new();
    for (i, n) in g.node.iter().enumerate() {
        let foldable = is_default_domain(n)
            && !NEVER_FOLD.contains(&n.op_type.as_str())
            && !has_subgraph(n)
            && n.input.iter().any(|x| !x.is_empty())
            && n.input.iter().all(|x| known.contains(x.as_str()))
            && !n.output.iter().any(|o| outputs.contains(o));
        if foldable {
            known.extend(n.output.iter().map(|o| o.as_str()));
            out.push(i);
        }
    }
    out
}

/// Values of all candidates' outputs: one tract run for the whole constant sub-graph, or node
/// by node when that fails (then nodes tract cannot run are counted and left out).
fn evaluate_all(
    model: &pb::ModelProto,
    candidates: &[usize],
    origin: &str,
) -> (HashMap<String, pb::TensorProto>, usize) {
    let g = graph(model);
    let nodes: Vec<pb::NodeProto> = candidates.iter().map(|&i| g.node[i].clone()).collect();
    let wanted: Vec<String> = nodes.iter().flat_map(|n| n.output.iter()).filter(|o| !o.is_empty()).cloned().collect();
    let read: HashSet<&str> = nodes.iter().flat_map(|n| n.input.iter().map(|s| s.as_str())).collect();
    let inits: Vec<pb::TensorProto> =
        g.initializer.iter().filter(|t| read.contains(t.name.as_str())).cloned().collect();
    match evaluate(model, inits, nodes.clone(), &wanted) {
        Ok(values) => (values, 0),
        Err(e) => {
            log::debug!("{origin}: folding {} constant nodes at once failed ({e:#}); trying one by one", nodes.len());
            evaluate_one_by_one(model, &nodes, origin)
        }
    }
}

fn evaluate_one_by_one(
    model: &pb::ModelProto,
    nodes: &[pb::NodeProto],
    origin: &str,
) -> (HashMap<String, pb::TensorProto>, usize) {
    let g = graph(model);
    let mut values: HashMap<String, pb::TensorProto> = HashMap::new();
    let mut failed = 0;
    for n in nodes {
        let inits: Option<Vec<pb::TensorProto>> = n
            .input
            .iter()
            .filter(|x| !x.is_empty())
            .map(|x| values.get(x).or_else(|| crate::graph::initializer(g, x)).cloned())
            .collect();
        let Some(mut inits) = inits else { continue };
        inits.sort_by(|a, b| a.name.cmp(&b.name));
        inits.dedup_by(|a, b| a.name == b.name);
        let wanted: Vec<String> = n.output.iter().filter(|o| !o.is_empty()).cloned().collect();
        match evaluate(model, inits, vec![n.clone()], &wanted) {
            Ok(v) => values.extend(v),
            Err(e) => {
                failed += 1;
                log::warn!("{origin}: cannot fold {} ({}): {e:#}", node_label(n), onnx::op_key(n));
            }
        }
    }
    (values, failed)
}

/// Which candidates to fold: every output has a value, every input is an initializer or a
/// folded output, and the result does not grow the model past the limit. Returns the nodes to
/// remove, the new initializers and how many were too large.
fn choose(
    g: &pb::GraphProto,
    candidates: &[usize],
    values: &HashMap<String, pb::TensorProto>,
) -> (HashSet<usize>, Vec<pb::TensorProto>, usize) {
    let mut size: HashMap<&str, usize> = g.initializer.iter().map(|t| (t.name.as_str(), tensor_bytes(t))).collect();
    size.insert("", 0);
    let (mut dead, mut made, mut too_large) = (HashSet::new(), Vec::new(), 0);
    for &i in candidates {
        let n = &g.node[i];
        let outs: Option<Vec<&pb::TensorProto>> =
            n.output.iter().filter(|o| !o.is_empty()).map(|o| values.get(o)).collect();
        let ins: Option<Vec<usize>> = n.input.iter().map(|x| size.get(x.as_str()).copied()).collect();
        let (Some(outs), Some(ins)) = (outs, ins) else { continue };
        let (in_bytes, out_bytes) = (ins.iter().sum::<usize>(), outs.iter().map(|t| tensor_bytes(t)).sum::<usize>());
        if out_bytes > in_bytes && out_bytes > GROWTH_LIMIT_BYTES {
            too_large += 1;
            continue;
        }
        for t in outs {
            size.insert(t.name.as_str(), tensor_bytes(t));
            made.push(t.clone());
        }
        dead.insert(i);
    }
    (dead, made, too_large)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::testutil::{assert_same_function, model, ops, random_f32};
    use crate::graph::{attr_int, initializer, make_f32, make_i8, node, tensor_f32, tensor_i64, topo_sort};

    fn fold(m: &mut pb::ModelProto) -> FoldStats {
        topo_sort(graph_mut(m)).unwrap();
        fold_constants(m, "test.onnx")
    }

    #[test]
    fn a_constant_chain_folds_into_one_initializer() {
        let before = model(
            13,
            vec![
                node("Transpose", "t", &["w"], &["wt"], vec![crate::graph::attr_ints("perm", &[1, 0])]),
                node("Mul", "scale", &["wt", "two"], &["w2"], vec![]),
                node("MatMul", "mm", &["x", "w2"], &["y"], vec![]),
            ],
            vec![make_f32("w", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), make_f32("two", &[], &[2.0])],
            &[("x", &[4, 3])],
            &["y"],
        );
        let mut after = before.clone();
        let stats = fold(&mut after);
        assert_eq!(stats, FoldStats { folded: 2, ..Default::default() });
        assert_eq!(ops(&after), vec!["MatMul"]);
        let w2 = tensor_f32(initializer(graph(&after), "w2").unwrap()).unwrap();
        assert_eq!((w2.shape, w2.data), (vec![3, 2], vec![2.0, 8.0, 4.0, 10.0, 6.0, 12.0]));
        assert_same_function(&before, &after, &[random_f32(&[4, 3], 4)], 0.0);
    }

    #[test]
    fn integer_shape_arithmetic_keeps_int64() {
        let before = model(
            13,
            vec![
                node("Concat", "cat", &["a", "b"], &["shape"], vec![attr_int("axis", 0)]),
                node("Reshape", "r", &["x", "shape"], &["y"], vec![]),
            ],
            vec![make_i64("a", &[1], &[3]), make_i64("b", &[1], &[-1])],
            &[("x", &[2, 6])],
            &["y"],
        );
        let mut after = before.clone();
        assert_eq!(fold(&mut after).folded, 1);
        let s = initializer(graph(&after), "shape").unwrap();
        assert_eq!((s.data_type, tensor_i64(s).unwrap()), (pb::tensor_proto::DataType::Int64 as i32, vec![3, -1]));
        assert_same_function(&before, &after, &[random_f32(&[2, 6], 5)], 0.0);
    }

    #[test]
    fn growth_past_the_limit_and_dequantize_are_left_alone() {
        let before = model(
            13,
            vec![
                // 12 bytes in, 8 KiB out: stays, and so does what reads it.
                node("Expand", "big", &["one", "n_big"], &["ones"], vec![]),
                node("Mul", "after_big", &["ones", "one"], &["ones2"], vec![]),
                // Growth under the limit is fine.
                node("Expand", "small", &["one", "n_small"], &["four_ones"], vec![]),
                node("DequantizeLinear", "dq", &["q", "s"], &["w"], vec![]),
                node("Add", "a1", &["x", "ones2"], &["a"], vec![]),
                node("Add", "a2", &["a", "w"], &["y"], vec![]),
                node("Mul", "m", &["x4", "four_ones"], &["z"], vec![]),
            ],
            vec![
                make_f32("one", &[1], &[1.0]),
                make_i64("n_big", &[1], &[2048]),
                make_i64("n_small", &[1], &[4]),
                make_i8("q", &[2048], &[3; 2048]),
                make_f32("s", &[], &[0.5]),
            ],
            &[("x", &[2048]), ("x4", &[4])],
            &["y", "z"],
        );
        let mut after = before.clone();
        let stats = fold(&mut after);
        assert_eq!(stats, FoldStats { folded: 1, too_large: 1, ..Default::default() });
        let left: Vec<&str> = graph(&after).node.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(left, vec!["big", "after_big", "dq", "a1", "a2", "m"]);
        assert_same_function(&before, &after, &[random_f32(&[2048], 6), random_f32(&[4], 7)], 0.0);
    }

    #[test]
    fn shape_of_a_fixed_input_folds_and_what_follows_with_it() {
        let before = model(
            13,
            vec![
                node("Shape", "sh", &["x"], &["s"], vec![]),
                node("Gather", "g", &["s", "zero"], &["n"], vec![attr_int("axis", 0)]),
                node("Unsqueeze", "u", &["n", "zero1"], &["n1"], vec![]),
                node("Concat", "c", &["n1", "minus1"], &["shape"], vec![attr_int("axis", 0)]),
                node("Reshape", "r", &["x", "shape"], &["y"], vec![]),
            ],
            vec![make_i64("zero", &[], &[0]), make_i64("zero1", &[1], &[0]), make_i64("minus1", &[1], &[-1])],
            &[("x", &[2, 3, 4])],
            &["y"],
        );
        let mut after = before.clone();
        let stats = fold(&mut after);
        assert_eq!((stats.folded, stats.shapes), (4, 1));
        assert_eq!(ops(&after), vec!["Reshape"]);
        assert_eq!(tensor_i64(initializer(graph(&after), "shape").unwrap()).unwrap(), vec![2, -1]);
        assert_same_function(&before, &after, &[random_f32(&[2, 3, 4], 7)], 0.0);
    }

    #[test]
    fn shape_of_a_symbolic_input_stays() {
        let mut m = model(
            13,
            vec![node("Shape", "sh", &["x"], &["s"], vec![]), node("Reshape", "r", &["x", "s"], &["y"], vec![])],
            vec![],
            &[("x", &[2, 3])],
            &["y"],
        );
        if let Some(pb::type_proto::Value::TensorType(t)) =
            graph_mut(&mut m).input[0].r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            t.shape.as_mut().unwrap().dim[0].value =
                Some(pb::tensor_shape_proto::dimension::Value::DimParam("batch".into()));
        }
        assert_eq!(fold(&mut m), FoldStats::default());
        assert_eq!(ops(&m), vec!["Shape", "Reshape"]);
    }

    #[test]
    fn shape_start_and_end_are_honoured() {
        let mut m = model(
            15,
            vec![
                node("Shape", "sh", &["x"], &["s"], vec![attr_int("start", 1), attr_int("end", -1)]),
                node("Reshape", "r", &["x", "s"], &["y"], vec![]),
            ],
            vec![],
            &[("x", &[2, 3, 4])],
            &["y"],
        );
        assert_eq!(fold(&mut m).shapes, 1);
        assert_eq!(tensor_i64(initializer(graph(&m), "s").unwrap()).unwrap(), vec![3]);
    }
}
