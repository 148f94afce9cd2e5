//! `Constant` nodes → initializers. Exporters such as paddle2onnx store every weight as a
//! `Constant` node; the quantizer looks weights up by initializer name, so they must move.

use std::collections::HashSet;

use edgeqa_format::onnx::pb;

use super::edit::{is_default_domain, remove_nodes};
use crate::graph::{attr, make_f32, make_i64, output_names};

/// Turns every `Constant` node of the main graph into an initializer named after its output.
/// Left alone: sparse or string constants, constants that are graph outputs, and names that
/// already have an initializer. Returns how many nodes became initializers.
pub(crate) fn constants_to_initializers(g: &mut pb::GraphProto) -> usize {
    let outputs = output_names(g);
    let mut taken: HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    let mut dead = HashSet::new();
    let mut made = Vec::new();
    for (i, n) in g.node.iter().enumerate() {
        if n.op_type != "Constant" || !is_default_domain(n) || n.output.len() != 1 {
            continue;
        }
        let out = &n.output[0];
        if out.is_empty() || outputs.contains(out) || taken.contains(out) {
            continue;
        }
        if let Some(t) = constant_value(n, out) {
            taken.insert(out.clone());
            made.push(t);
            dead.insert(i);
        }
    }
    remove_nodes(g, &dead);
    g.initializer.extend(made);
    dead.len()
}

/// The tensor a `Constant` node holds, named `name`; `None` for sparse and string values.
fn constant_value(n: &pb::NodeProto, name: &str) -> Option<pb::TensorProto> {
    if let Some(a) = attr(n, "value")
        && let Some(t) = &a.t
    {
        let string = t.data_type == pb::tensor_proto::DataType::String as i32;
        return (!string).then(|| pb::TensorProto { name: name.to_string(), ..t.clone() });
    }
    if let Some(a) = attr(n, "value_float") {
        return Some(make_f32(name, &[], &[a.f]));
    }
    if let Some(a) = attr(n, "value_floats") {
        return Some(make_f32(name, &[a.floats.len()], &a.floats));
    }
    if let Some(a) = attr(n, "value_int") {
        return Some(make_i64(name, &[], &[a.i]));
    }
    if let Some(a) = attr(n, "value_ints") {
        return Some(make_i64(name, &[a.ints.len()], &a.ints));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::testutil::{assert_same_function, model, ops, random_f32};
    use crate::graph::{
        attr_float, attr_floats, attr_int, attr_ints, attr_tensor, graph, graph_mut, initializer, node, tensor_f32,
        tensor_i64,
    };

    fn value_attr(t: pb::TensorProto) -> pb::AttributeProto {
        attr_tensor("value", t)
    }

    #[test]
    fn value_tensors_become_initializers_and_compute_the_same() {
        let w = make_f32("ignored", &[3, 2], &[0.5, -1.0, 2.0, 0.25, -0.75, 1.5]);
        let before = model(
            13,
            vec![
                node("Constant", "c", &[], &["w"], vec![value_attr(w)]),
                node("MatMul", "mm", &["x", "w"], &["y"], vec![]),
            ],
            vec![],
            &[("x", &[4, 3])],
            &["y"],
        );
        let mut after = before.clone();
        assert_eq!(constants_to_initializers(graph_mut(&mut after)), 1);
        assert_eq!(ops(&after), vec!["MatMul"]);
        let w = tensor_f32(initializer(graph(&after), "w").unwrap()).unwrap();
        assert_eq!(w.shape, vec![3, 2]);
        assert_same_function(&before, &after, &[random_f32(&[4, 3], 1)], 0.0);
    }

    #[test]
    fn scalar_and_list_attributes_keep_their_type() {
        let mut g = pb::GraphProto::default();
        let f = node("Constant", "f", &[], &["f"], vec![attr_float("value_float", 2.5)]);
        let fs = node("Constant", "fs", &[], &["fs"], vec![attr_floats("value_floats", &[1.0, 2.0])]);
        let i = node("Constant", "i", &[], &["i"], vec![attr_int("value_int", 7)]);
        let is = node("Constant", "is", &[], &["is"], vec![attr_ints("value_ints", &[1, -1])]);
        g.node = vec![f, fs, i, is];
        assert_eq!(constants_to_initializers(&mut g), 4);
        assert!(g.node.is_empty());
        let f = tensor_f32(initializer(&g, "f").unwrap()).unwrap();
        assert_eq!((f.shape.as_slice(), f.data.as_slice()), (&[][..], &[2.5][..]));
        assert_eq!(tensor_f32(initializer(&g, "fs").unwrap()).unwrap().shape, vec![2]);
        assert_eq!(tensor_i64(initializer(&g, "i").unwrap()).unwrap(), vec![7]);
        assert!(initializer(&g, "i").unwrap().dims.is_empty());
        assert_eq!(tensor_i64(initializer(&g, "is").unwrap()).unwrap(), vec![1, -1]);
    }

    #[test]
    fn graph_outputs_and_strings_stay_nodes() {
        let mut g = pb::GraphProto::default();
        let s = pb::TensorProto {
            data_type: pb::tensor_proto::DataType::String as i32,
            string_data: vec![b"a".to_vec()],
            dims: vec![1],
            ..Default::default()
        };
        g.node.push(node("Constant", "s", &[], &["s"], vec![value_attr(s)]));
        g.node.push(node("Constant", "o", &[], &["o"], vec![attr_int("value_int", 1)]));
        g.output.push(edgeqa_format::onnx_builder::value_untyped("o"));
        assert_eq!(constants_to_initializers(&mut g), 0);
        assert_eq!(g.node.len(), 2);
    }
}
