//! Small graph-editing helpers the clean passes share. They are general enough to live in
//! `graph.rs` one day; they sit here while that file is owned elsewhere.

use std::collections::HashSet;

use edgeqa_format::onnx::pb;
use pb::tensor_proto::DataType as T;

/// True for nodes of the default (`ai.onnx`) domain.
pub(crate) fn is_default_domain(n: &pb::NodeProto) -> bool {
    n.domain.is_empty() || n.domain == "ai.onnx"
}

/// True when a node carries a subgraph (If, Loop, Scan bodies).
pub(crate) fn has_subgraph(n: &pb::NodeProto) -> bool {
    n.attribute.iter().any(|a| a.g.is_some() || !a.graphs.is_empty())
}

/// Makes every node that reads `from` read `to` instead, subgraph bodies included (they may
/// read outer tensors by name).
pub(crate) fn rename_uses(g: &mut pb::GraphProto, from: &str, to: &str) {
    for n in &mut g.node {
        for i in n.input.iter_mut().filter(|i| i.as_str() == from) {
            *i = to.to_string();
        }
        for a in &mut n.attribute {
            for sub in a.g.iter_mut().chain(a.graphs.iter_mut()) {
                rename_uses(sub, from, to);
            }
        }
    }
}

/// Removes the nodes at the given positions, keeping the order of the others.
pub(crate) fn remove_nodes(g: &mut pb::GraphProto, dead: &HashSet<usize>) {
    let mut i = 0;
    g.node.retain(|_| {
        i += 1;
        !dead.contains(&(i - 1))
    });
}

/// Bytes one element of an ONNX data type takes (`None` for strings and unknown types).
pub(crate) fn element_size(data_type: i32) -> Option<usize> {
    Some(match T::try_from(data_type).ok()? {
        T::Double | T::Int64 | T::Uint64 | T::Complex64 => 8,
        T::Float | T::Int32 | T::Uint32 => 4,
        T::Float16 | T::Bfloat16 | T::Int16 | T::Uint16 => 2,
        T::Int8 | T::Uint8 | T::Bool => 1,
        T::Complex128 => 16,
        _ => return None,
    })
}

/// Bytes a tensor takes at its element type (strings and unknown types count one byte per
/// element).
pub(crate) fn tensor_bytes(t: &pb::TensorProto) -> usize {
    crate::graph::element_count(t) * element_size(t.data_type).unwrap_or(1)
}

/// The names of the graph's real inputs (initializers listed as inputs excluded).
pub(crate) fn real_inputs(g: &pb::GraphProto) -> HashSet<String> {
    let inits: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    g.input.iter().filter(|i| !inits.contains(i.name.as_str())).map(|i| i.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{make_f32, make_i64, node};

    #[test]
    fn renames_reach_subgraph_bodies() {
        let mut body = pb::GraphProto::default();
        body.node.push(node("Relu", "inner", &["a"], &["b"], vec![]));
        let mut g = pb::GraphProto::default();
        g.node.push(node("Relu", "outer", &["a"], &["c"], vec![]));
        let mut iff = node("If", "if", &["cond"], &["d"], vec![]);
        iff.attribute.push(crate::graph::attr_graph("then_branch", body));
        g.node.push(iff);
        rename_uses(&mut g, "a", "z");
        assert_eq!(g.node[0].input, vec!["z"]);
        assert_eq!(g.node[1].attribute[0].g.as_ref().unwrap().node[0].input, vec!["z"]);
        assert!(has_subgraph(&g.node[1]) && !has_subgraph(&g.node[0]));
    }

    #[test]
    fn sizes_follow_the_element_type() {
        assert_eq!(tensor_bytes(&make_f32("w", &[2, 3], &[0.0; 6])), 24);
        assert_eq!(tensor_bytes(&make_i64("s", &[], &[4])), 8);
        let nodes = ["a", "b", "c"].map(|n| node("Relu", n, &[], &[], vec![]));
        let mut g = pb::GraphProto { node: nodes.to_vec(), ..Default::default() };
        remove_nodes(&mut g, &HashSet::from([1]));
        assert_eq!(g.node.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), vec!["a", "c"]);
    }
}
