//! Identity and inference-mode Dropout removal: their readers read the input directly.

use edgeqa_format::onnx::pb;

use super::edit::{is_default_domain, real_inputs, rename_uses};
use crate::graph::{consumers, initializer, output_names, producers, tensor_i64};

/// Removes every `Identity`, and every `Dropout` that runs in inference mode with its mask
/// unused, rewiring readers to the input. When the output is a graph output the producer of the
/// input is renamed instead; when that is impossible (the input is a graph input, an
/// initializer or another graph output) the node stays. Returns how many nodes went.
pub(crate) fn remove_identities(g: &mut pb::GraphProto) -> usize {
    let mut removed = 0;
    let mut i = 0;
    while i < g.node.len() {
        if is_pass_through(g, &g.node[i]) && bypass(g, i) {
            g.node.remove(i);
            removed += 1;
        } else {
            i += 1;
        }
    }
    removed
}

/// True for an Identity, or a Dropout in inference mode whose mask nobody reads.
fn is_pass_through(g: &pb::GraphProto, n: &pb::NodeProto) -> bool {
    if !is_default_domain(n) || n.input.first().is_none_or(|i| i.is_empty()) || n.output.is_empty() {
        return false;
    }
    match n.op_type.as_str() {
        "Identity" => n.output.len() == 1,
        "Dropout" => {
            let mask_unused = n.output.get(1).is_none_or(|m| m.is_empty() || !is_read(g, m));
            let inference = match n.input.get(2).filter(|t| !t.is_empty()) {
                None => true,
                Some(t) => initializer(g, t).and_then(tensor_i64).is_some_and(|v| v.iter().all(|&x| x == 0)),
            };
            mask_unused && inference
        }
        _ => false,
    }
}

fn is_read(g: &pb::GraphProto, name: &str) -> bool {
    consumers(g).contains_key(name) || output_names(g).contains(name)
}

/// Rewires the graph around node `i` (input 0 → output 0). False when it must stay.
fn bypass(g: &mut pb::GraphProto, i: usize) -> bool {
    let (input, output) = (g.node[i].input[0].clone(), g.node[i].output[0].clone());
    let outputs = output_names(g);
    if !outputs.contains(&output) {
        rename_uses(g, &output, &input);
        return true;
    }
    // The output is a graph output: give the input's producer that name instead.
    let Some(&p) = producers(g).get(&input) else { return false };
    if outputs.contains(&input) || real_inputs(g).contains(&input) || initializer(g, &input).is_some() {
        return false;
    }
    for o in g.node[p].output.iter_mut().filter(|o| **o == input) {
        *o = output.clone();
    }
    rename_uses(g, &input, &output);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::testutil::{assert_same_function, model, ops, random_f32};
    use crate::graph::{graph, graph_mut, make_f32, node};

    #[test]
    fn identities_in_the_middle_and_at_the_end_go() {
        let before = model(
            13,
            vec![
                node("Relu", "r1", &["x"], &["a"], vec![]),
                node("Identity", "id1", &["a"], &["b"], vec![]),
                node("Sigmoid", "s", &["b"], &["c"], vec![]),
                node("Identity", "id2", &["c"], &["y"], vec![]),
            ],
            vec![],
            &[("x", &[2, 3])],
            &["y"],
        );
        let mut after = before.clone();
        assert_eq!(remove_identities(graph_mut(&mut after)), 2);
        assert_eq!(ops(&after), vec!["Relu", "Sigmoid"]);
        let g = graph(&after);
        assert_eq!(g.node[1].input, vec!["a"]);
        assert_eq!(g.node[1].output, vec!["y"], "the producer now writes the graph output");
        assert_same_function(&before, &after, &[random_f32(&[2, 3], 2)], 0.0);
    }

    #[test]
    fn identity_from_an_input_or_initializer_to_an_output_stays() {
        let mut m = model(
            13,
            vec![
                node("Identity", "pass", &["x"], &["y"], vec![]),
                node("Identity", "konst", &["k"], &["z"], vec![]),
                node("Identity", "dup", &["y"], &["w"], vec![]),
            ],
            vec![make_f32("k", &[1], &[1.0])],
            &[("x", &[2])],
            &["y", "z", "w"],
        );
        assert_eq!(remove_identities(graph_mut(&mut m)), 0);
        assert_eq!(ops(&m).len(), 3);
    }

    #[test]
    fn inference_dropout_goes_but_a_read_mask_keeps_it() {
        let before = model(
            12,
            vec![
                node("Dropout", "d1", &["x"], &["a"], vec![]),
                node("Dropout", "d2", &["a"], &["b", "mask"], vec![]),
                node("Relu", "r", &["b"], &["y"], vec![]),
            ],
            vec![],
            &[("x", &[3])],
            &["y", "mask"],
        );
        let mut after = before.clone();
        assert_eq!(remove_identities(graph_mut(&mut after)), 1);
        assert_eq!(ops(&after), vec!["Dropout", "Relu"]);
        assert_eq!(graph(&after).node[0].input, vec!["x"]);
        assert_same_function(&before, &after, &[random_f32(&[3], 3)], 0.0);
    }
}
