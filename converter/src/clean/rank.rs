//! Tensor ranks of a graph whose input dims may be unknown: tract's analysis, helped where it
//! gives up (a Reshape whose shape is computed at run time; ops whose output rank follows from
//! their inputs' ranks alone). A rank is reported only when it is certain.

use std::collections::HashMap;

use edgeqa_format::onnx::pb;
use tract_onnx::prelude::{InferenceFact, InferenceModel, InferenceModelExt, OutletId, tvec};
use tract_onnx::tract_hir::infer::{DimFact, Factoid, ShapeFactoid};

use super::edit::is_default_domain;
use crate::graph::{get_int, get_ints, graph, graph_mut, initializer};

/// Ops whose output has the rank of their first input.
const SAME_RANK: &[&str] = &[
    "Abs",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Ceil",
    "Clip",
    "Conv",
    "ConvTranspose",
    "CumSum",
    "DepthToSpace",
    "DequantizeLinear",
    "Dropout",
    "Elu",
    "Erf",
    "Exp",
    "Floor",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Hardmax",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "InstanceNormalization",
    "IsInf",
    "IsNaN",
    "LRN",
    "LayerNormalization",
    "LeakyRelu",
    "Log",
    "LogSoftmax",
    "LpNormalization",
    "MaxPool",
    "Neg",
    "Not",
    "Pad",
    "QuantizeLinear",
    "Reciprocal",
    "Relu",
    "Resize",
    "Round",
    "Selu",
    "Sigmoid",
    "Sign",
    "Slice",
    "Softmax",
    "Softplus",
    "Softsign",
    "SpaceToDepth",
    "Split",
    "Sqrt",
    "Tanh",
    "Tile",
    "Transpose",
    "Trilu",
];

/// Ops whose output has the largest rank of their inputs (multidirectional broadcasting).
const BROADCAST: &[&str] = &[
    "Add",
    "And",
    "BitShift",
    "Div",
    "Equal",
    "Greater",
    "GreaterOrEqual",
    "Less",
    "LessOrEqual",
    "Max",
    "Mean",
    "Min",
    "Mod",
    "Mul",
    "Or",
    "Pow",
    "PRelu",
    "Sub",
    "Sum",
    "Where",
    "Xor",
];

/// Rounds of tract analysis and rules at most (each round is one tract analysis).
const MAX_ROUNDS: usize = 8;

/// Ranks of the main graph's tensors, by name, where known for sure.
pub(crate) fn ranks(model: &pb::ModelProto) -> HashMap<String, usize> {
    let g = graph(model);
    let mut ranks = HashMap::new();
    let Ok(parsed) = edgeqa_format::tract::framework().parse(&with_symbolic_inputs(model), None) else {
        return ranks;
    };
    let (mut m, outlets) = (parsed.model, parsed.outlets_by_name);
    for _ in 0..MAX_ROUNDS {
        let _ = m.analyse(true);
        ranks = outlets.iter().filter_map(|(k, &o)| Some((k.clone(), rank_of(m.outlet_fact(o).ok()?)?))).collect();
        apply_rules(g, &mut ranks);
        reshape_ranks(g, &m, &outlets, &mut ranks);
        // Tell tract what the rules found, so its analysis can go further.
        let mut changed = false;
        for (name, &r) in &ranks {
            if let Some(&o) = outlets.get(name)
                && let Ok(fact) = m.outlet_fact(o)
                && rank_of(fact).is_none()
            {
                let fact = fact.clone().with_shape(ShapeFactoid::closed(tvec![DimFact::default(); r]));
                changed |= m.set_outlet_fact(o, fact).is_ok();
            }
        }
        if !changed {
            break;
        }
    }
    ranks
}

fn rank_of(f: &InferenceFact) -> Option<usize> {
    f.shape.rank().concretize().and_then(|r| usize::try_from(r).ok())
}

/// A Reshape output has the length of its shape input as rank, even when the shape's values are
/// unknown (paddle2onnx computes them through int32 casts, which lose tract's symbols).
fn reshape_ranks(
    g: &pb::GraphProto,
    m: &InferenceModel,
    outlets: &HashMap<String, OutletId>,
    ranks: &mut HashMap<String, usize>,
) {
    for n in g.node.iter().filter(|n| is_default_domain(n) && n.op_type == "Reshape" && n.input.len() == 2) {
        let Some(&shape) = outlets.get(&n.input[1]) else { continue };
        let len = m.outlet_fact(shape).ok().and_then(|f| f.shape.concretize()).and_then(|d| d.first()?.to_i64().ok());
        if let (Some(len), Some(out)) = (len, n.output.first()) {
            ranks.entry(out.clone()).or_insert(len as usize);
        }
    }
}

/// Fills in output ranks that follow from input ranks, in graph order (the graph is sorted).
fn apply_rules(g: &pb::GraphProto, ranks: &mut HashMap<String, usize>) {
    for n in g.node.iter().filter(|n| is_default_domain(n)) {
        let Some(r) = rule(g, n, ranks) else { continue };
        let outs = if n.op_type == "Split" { &n.output[..] } else { &n.output[..1.min(n.output.len())] };
        for o in outs.iter().filter(|o| !o.is_empty()) {
            ranks.entry(o.clone()).or_insert(r);
        }
    }
}

/// The rank of a node's (first) output from its inputs' ranks, when that is certain.
fn rank_rule(op: &str, inputs: &[Option<usize>], n: &pb::NodeProto, axes: Option<usize>) -> Option<usize> {
    let first = inputs.first().copied().flatten();
    Some(match op {
        _ if SAME_RANK.contains(&op) => first?,
        _ if BROADCAST.contains(&op) => inputs.iter().copied().collect::<Option<Vec<usize>>>()?.into_iter().max()?,
        "MatMul" | "MatMulInteger" => match (first?, inputs.get(1).copied().flatten()?) {
            (1, 1) => 0,
            (1, b) => b - 1,
            (a, 1) => a - 1,
            (a, b) => a.max(b),
        },
        "Gemm" | "Flatten" => 2,
        "Shape" => 1,
        "Size" => 0,
        "Concat" => inputs.iter().copied().flatten().next()?,
        "Gather" => (first? + inputs.get(1).copied().flatten()?).checked_sub(1)?,
        "ArgMax" | "ArgMin" if get_int(n, "keepdims").unwrap_or(1) == 0 => first?.checked_sub(1)?,
        "ArgMax" | "ArgMin" => first?,
        _ if op.starts_with("Reduce") && get_int(n, "keepdims").unwrap_or(1) != 0 => first?,
        _ if op.starts_with("Reduce") => first?.checked_sub(axes?)?,
        "Unsqueeze" => first? + axes?,
        "Squeeze" => first?.checked_sub(axes?)?,
        _ => return None,
    })
}

fn rule(g: &pb::GraphProto, n: &pb::NodeProto, ranks: &HashMap<String, usize>) -> Option<usize> {
    let inputs: Vec<Option<usize>> = n.input.iter().filter(|i| !i.is_empty()).map(|i| ranks.get(i).copied()).collect();
    // How many axes an `axes` attribute or constant input names (unique by the ONNX spec).
    let axes = get_ints(n, "axes").map(|a| a.len()).or_else(|| {
        let t = initializer(g, n.input.get(1)?)?;
        Some(crate::graph::element_count(t))
    });
    rank_rule(n.op_type.as_str(), &inputs, n, axes)
}

/// A copy of `model` whose unknown input dims (`?`, -1, missing, or names tract cannot read)
/// are distinct symbols, so tract's analysis carries them (and ranks) through shape arithmetic.
fn with_symbolic_inputs(model: &pb::ModelProto) -> pb::ModelProto {
    use pb::tensor_shape_proto::dimension::Value as D;
    let mut m = model.clone();
    let mut k = 0;
    for input in &mut graph_mut(&mut m).input {
        let Some(pb::type_proto::Value::TensorType(t)) = input.r#type.as_mut().and_then(|t| t.value.as_mut()) else {
            continue;
        };
        for d in t.shape.iter_mut().flat_map(|s| s.dim.iter_mut()) {
            if !matches!(d.value, Some(D::DimValue(v)) if v >= 0) {
                d.value = Some(D::DimParam(format!("cleansym{k}")));
                k += 1;
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::testutil::{model, value_f32};
    use crate::graph::{attr_int, attr_ints, make_f32, make_i64, node};

    #[test]
    fn ranks_survive_runtime_shapes_and_unknown_dims() {
        // paddle2onnx style: Reshape(x, Concat(Slice(Cast<int32>(Shape(x))), -1)) → MatMul → Add.
        let mut m = model(
            11,
            vec![
                node("Shape", "sh", &["x"], &["s"], vec![]),
                node("Cast", "c32", &["s"], &["s32"], vec![attr_int("to", 6)]),
                node("Slice", "sl", &["s32", "zero", "one"], &["n"], vec![]),
                node("Concat", "cat", &["n", "minus1"], &["shape32"], vec![attr_int("axis", 0)]),
                node("Cast", "c64", &["shape32"], &["shape"], vec![attr_int("to", 7)]),
                node("Reshape", "r", &["x", "shape"], &["flat"], vec![]),
                node("MatMul", "mm", &["flat", "w"], &["h"], vec![]),
                node("Add", "add", &["h", "b"], &["logits"], vec![]),
                node("ReduceMean", "mean", &["logits"], &["m"], vec![attr_ints("axes", &[1]), attr_int("keepdims", 0)]),
            ],
            vec![
                make_i64("zero", &[1], &[0]),
                make_i64("one", &[1], &[1]),
                pb::TensorProto {
                    name: "minus1".into(),
                    dims: vec![1],
                    data_type: 6,
                    int32_data: vec![-1],
                    ..Default::default()
                },
                make_f32("w", &[12, 2], &[0.0; 24]),
                make_f32("b", &[2], &[0.0; 2]),
            ],
            &[],
            &["m"],
        );
        // x: [?, 3, ?, 4] with unknown dims.
        let mut x = value_f32("x", &[1, 3, 1, 4]);
        if let Some(pb::type_proto::Value::TensorType(t)) = x.r#type.as_mut().and_then(|t| t.value.as_mut()) {
            let dims = &mut t.shape.as_mut().unwrap().dim;
            dims[0].value = Some(pb::tensor_shape_proto::dimension::Value::DimValue(-1));
            dims[2].value = Some(pb::tensor_shape_proto::dimension::Value::DimParam("?".into()));
        }
        graph_mut(&mut m).input.push(x);
        let r = ranks(&m);
        assert_eq!(r.get("flat"), Some(&2));
        assert_eq!(r.get("logits"), Some(&2));
        assert_eq!(r.get("m"), Some(&1));
    }

    #[test]
    fn no_rank_without_certainty() {
        // Squeeze without axes: the rank depends on which dims are 1.
        let m = model(13, vec![node("Squeeze", "sq", &["x"], &["y"], vec![])], vec![], &[], &["y"]);
        assert_eq!(ranks(&m).get("y"), None);
    }
}
