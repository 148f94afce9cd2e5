//! BatchNormalization folded into the Conv (or ConvTranspose) before it:
//! `W' = W·s` per output channel and `b' = (b − mean)·s + B`, with `s = scale / √(var + ε)`.

use std::collections::HashSet;

use edgeqa_format::onnx::pb;

use super::edit::{is_default_domain, remove_nodes};
use crate::graph::{
    Names, TensorF32, consumers, get_float, get_int, initializer, make_f32, output_names, producers, tensor_f32,
};

/// A BatchNormalization that can be folded, and what to write into its Conv.
struct Fold {
    bn: usize,
    conv: usize,
    weight: TensorF32,
    bias: Vec<f32>,
}

/// Folds every BatchNormalization whose input comes from a Conv (any group) or a ConvTranspose
/// with group 1, when that output feeds only the BN and is no graph output, and every
/// parameter is an f32 initializer. Other BNs stay. Returns how many were folded.
pub(crate) fn fold_batchnorms(g: &mut pb::GraphProto) -> usize {
    let folds: Vec<Fold> = (0..g.node.len()).filter_map(|i| plan(g, i)).collect();
    let mut names = Names::of(g);
    let mut dead = HashSet::new();
    for f in folds {
        let (w_name, b_name) = {
            let conv = &g.node[f.conv];
            let base = if conv.name.is_empty() { conv.output[0].clone() } else { conv.name.clone() };
            (names.fresh(&format!("{base}.weight_bn")), names.fresh(&format!("{base}.bias_bn")))
        };
        g.initializer.push(make_f32(&w_name, &f.weight.shape, &f.weight.data));
        g.initializer.push(make_f32(&b_name, &[f.bias.len()], &f.bias));
        let bn_out = g.node[f.bn].output[0].clone();
        let conv = &mut g.node[f.conv];
        conv.input.resize(3, String::new());
        conv.input[1] = w_name;
        conv.input[2] = b_name;
        conv.output[0] = bn_out;
        dead.insert(f.bn);
    }
    remove_nodes(g, &dead);
    dead.len()
}

/// The fold for the BatchNormalization at `i`, when it is foldable.
fn plan(g: &pb::GraphProto, i: usize) -> Option<Fold> {
    let bn = &g.node[i];
    let single_output = bn.output.len() == 1 || bn.output.iter().skip(1).all(|o| o.is_empty());
    if bn.op_type != "BatchNormalization" || !is_default_domain(bn) || bn.input.len() != 5 || !single_output {
        return None;
    }
    if get_int(bn, "training_mode").unwrap_or(0) != 0 {
        return None;
    }
    let x = &bn.input[0];
    let c = producers(g).get(x).copied()?;
    let conv = &g.node[c];
    if !is_default_domain(conv) || conv.output.len() != 1 || output_names(g).contains(x) {
        return None;
    }
    if consumers(g).get(x).map_or(0, |v| v.len()) != 1 {
        return None;
    }
    let axis = match conv.op_type.as_str() {
        "Conv" => 0,
        "ConvTranspose" if get_int(conv, "group").unwrap_or(1) == 1 => 1,
        _ => return None,
    };
    let f32_init = |name: &str| {
        initializer(g, name).filter(|t| t.data_type == pb::tensor_proto::DataType::Float as i32).and_then(tensor_f32)
    };
    let weight = f32_init(conv.input.get(1)?)?;
    let channels = *weight.shape.get(axis)?;
    let param = |k: usize| f32_init(&bn.input[k]).filter(|t| t.len() == channels).map(|t| t.data);
    let (gamma, beta, mean, var) = (param(1)?, param(2)?, param(3)?, param(4)?);
    let bias = match conv.input.get(2).filter(|b| !b.is_empty()) {
        Some(b) => f32_init(b).filter(|t| t.len() == channels)?.data,
        None => vec![0.0; channels],
    };
    let eps = get_float(bn, "epsilon").unwrap_or(1e-5) as f64;
    let scale: Vec<f64> = (0..channels).map(|k| gamma[k] as f64 / (var[k] as f64 + eps).sqrt()).collect();
    let new_bias =
        (0..channels).map(|k| ((bias[k] as f64 - mean[k] as f64) * scale[k] + beta[k] as f64) as f32).collect();
    Some(Fold { bn: i, conv: c, weight: scale_channels(&weight, axis, &scale), bias: new_bias })
}

/// `w` with every slice along `axis` (0 or 1) multiplied by its channel's factor.
fn scale_channels(w: &TensorF32, axis: usize, scale: &[f64]) -> TensorF32 {
    let inner: usize = w.shape[axis + 1..].iter().product();
    let channels = w.shape[axis];
    let data = w.data.iter().enumerate().map(|(i, &v)| (v as f64 * scale[(i / inner) % channels]) as f32).collect();
    TensorF32 { shape: w.shape.clone(), data }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::testutil::{assert_same_function, attr_float, model, ops, random_f32};
    use crate::graph::{attr_int, attr_ints, graph, graph_mut, node};

    fn values(n: usize, seed: u64, lo: f32) -> Vec<f32> {
        let t = random_f32(&[n], seed);
        t.to_plain_array_view::<f32>().unwrap().iter().map(|v| v.abs() + lo).collect()
    }

    fn bn_inits(prefix: &str, c: usize) -> Vec<pb::TensorProto> {
        vec![
            make_f32(&format!("{prefix}_g"), &[c], &values(c, 11, 0.5)),
            make_f32(&format!("{prefix}_b"), &[c], &values(c, 12, -0.5)),
            make_f32(&format!("{prefix}_m"), &[c], &values(c, 13, -0.5)),
            make_f32(&format!("{prefix}_v"), &[c], &values(c, 14, 0.1)),
        ]
    }

    fn bn(prefix: &str, x: &str, y: &str) -> pb::NodeProto {
        let p = |s: &str| format!("{prefix}_{s}");
        let (g, b, m, v) = (p("g"), p("b"), p("m"), p("v"));
        let mut n = node("BatchNormalization", prefix, &[x, &g, &b, &m, &v], &[y], vec![]);
        n.attribute.push(attr_float("epsilon", 1e-3));
        n
    }

    fn weight(name: &str, shape: &[usize], seed: u64) -> pb::TensorProto {
        let t = random_f32(shape, seed);
        make_f32(name, shape, t.to_plain_array_view::<f32>().unwrap().as_slice().unwrap())
    }

    #[test]
    fn conv_with_and_without_bias_and_grouped() {
        let mut inits = vec![weight("w1", &[4, 3, 3, 3], 1), weight("b1", &[4], 2), weight("w2", &[4, 1, 3, 3], 3)];
        inits.extend(bn_inits("bn1", 4));
        inits.extend(bn_inits("bn2", 4));
        let before = model(
            13,
            vec![
                node("Conv", "c1", &["x", "w1", "b1"], &["a"], vec![attr_ints("pads", &[1, 1, 1, 1])]),
                bn("bn1", "a", "b"),
                node("Conv", "dw", &["b", "w2"], &["c"], vec![attr_int("group", 4)]),
                bn("bn2", "c", "y"),
            ],
            inits,
            &[("x", &[2, 3, 8, 8])],
            &["y"],
        );
        let mut after = before.clone();
        assert_eq!(fold_batchnorms(graph_mut(&mut after)), 2);
        assert_eq!(ops(&after), vec!["Conv", "Conv"]);
        let g = graph(&after);
        assert_eq!(g.node[1].output, vec!["y"]);
        assert_eq!(g.node[1].input.len(), 3, "a bias was added");
        assert_same_function(&before, &after, &[random_f32(&[2, 3, 8, 8], 4)], 1e-5);
    }

    #[test]
    fn conv_transpose_scales_axis_one() {
        let mut inits = vec![weight("w", &[3, 5, 2, 2], 5)];
        inits.extend(bn_inits("bn", 5));
        let before = model(
            13,
            vec![
                node("ConvTranspose", "ct", &["x", "w"], &["a"], vec![attr_ints("strides", &[2, 2])]),
                bn("bn", "a", "y"),
            ],
            inits,
            &[("x", &[1, 3, 4, 4])],
            &["y"],
        );
        let mut after = before.clone();
        assert_eq!(fold_batchnorms(graph_mut(&mut after)), 1);
        assert_eq!(ops(&after), vec!["ConvTranspose"]);
        assert_same_function(&before, &after, &[random_f32(&[1, 3, 4, 4], 6)], 1e-5);
    }

    #[test]
    fn shared_outputs_grouped_transpose_and_other_producers_stay() {
        let mut inits = vec![weight("w", &[4, 4, 1, 1], 7), weight("wt", &[4, 2, 1, 1], 8)];
        inits.extend(bn_inits("bn1", 4));
        inits.extend(bn_inits("bn2", 4));
        inits.extend(bn_inits("bn3", 4));
        let mut m = model(
            13,
            vec![
                node("Conv", "c", &["x", "w"], &["a"], vec![]),
                bn("bn1", "a", "b"),
                node("Add", "also_reads_a", &["a", "b"], &["c"], vec![]),
                node("ConvTranspose", "ct", &["c", "wt"], &["d"], vec![attr_int("group", 2)]),
                bn("bn2", "d", "e"),
                node("Relu", "r", &["e"], &["f"], vec![]),
                bn("bn3", "f", "y"),
            ],
            inits,
            &[("x", &[1, 4, 2, 2])],
            &["y"],
        );
        assert_eq!(fold_batchnorms(graph_mut(&mut m)), 0);
        assert_eq!(ops(&m).iter().filter(|o| *o == "BatchNormalization").count(), 3);
    }

    #[test]
    fn shared_weights_are_not_changed_in_place() {
        let mut inits = vec![weight("w", &[2, 2, 1, 1], 9)];
        inits.extend(bn_inits("bn", 2));
        let before = model(
            13,
            vec![
                node("Conv", "c1", &["x", "w"], &["a"], vec![]),
                bn("bn", "a", "b"),
                node("Conv", "c2", &["b", "w"], &["y"], vec![]),
            ],
            inits,
            &[("x", &[1, 2, 3, 3])],
            &["y"],
        );
        let mut after = before.clone();
        assert_eq!(fold_batchnorms(graph_mut(&mut after)), 1);
        assert_eq!(graph(&after).node[1].input[1], "w");
        assert_same_function(&before, &after, &[random_f32(&[1, 2, 3, 3], 10)], 1e-5);
    }
}
