//! Editing ONNX graphs in place: reading and making initializers, nodes and attributes, lookup
//! maps, fresh names, topological order and dead-node removal. Every converter pass builds on
//! these, so passes stay short and never re-implement protobuf plumbing.

use std::collections::{HashMap, HashSet};

use edgeqa_format::onnx::pb;
use pb::tensor_proto::DataType as T;
use prost::Message;

pub use edgeqa_format::onnx_builder::{
    attr_float, attr_floats, attr_graph, attr_int, attr_ints, attr_str, attr_tensor, make_f16_bits, make_f32, make_i8,
    make_i32, make_i64, make_u8, node,
};

/// A dense f32 tensor read from (or written to) an initializer.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorF32 {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl TensorF32 {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Dimensions of an initializer (negative dims read as 0).
pub fn dims(t: &pb::TensorProto) -> Vec<usize> {
    t.dims.iter().map(|&d| d.max(0) as usize).collect()
}

/// Element count of an initializer.
pub fn element_count(t: &pb::TensorProto) -> usize {
    dims(t).iter().product()
}

fn raw_chunks<const N: usize>(raw: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    raw.chunks_exact(N).map(|c| c.try_into().unwrap_or([0; N]))
}

/// Reads a float initializer (f32, f16 or f64, stored raw or in typed fields) as f32.
/// `None` for other element types or when the stored data does not match the dims.
pub fn tensor_f32(t: &pb::TensorProto) -> Option<TensorF32> {
    let n = element_count(t);
    let data: Vec<f32> = match T::try_from(t.data_type).ok()? {
        T::Float if !t.raw_data.is_empty() => raw_chunks::<4>(&t.raw_data).map(f32::from_le_bytes).collect(),
        T::Float => t.float_data.clone(),
        T::Double if !t.raw_data.is_empty() => {
            raw_chunks::<8>(&t.raw_data).map(|b| f64::from_le_bytes(b) as f32).collect()
        }
        T::Double => t.double_data.iter().map(|&v| v as f32).collect(),
        T::Float16 if !t.raw_data.is_empty() => {
            raw_chunks::<2>(&t.raw_data).map(|b| half::f16::from_le_bytes(b).to_f32()).collect()
        }
        T::Float16 => t.int32_data.iter().map(|&v| half::f16::from_bits(v as u16).to_f32()).collect(),
        _ => return None,
    };
    (data.len() == n).then(|| TensorF32 { shape: dims(t), data })
}

/// Reads an integer initializer (i64, i32, i8, u8, bool) as i64 values.
pub fn tensor_i64(t: &pb::TensorProto) -> Option<Vec<i64>> {
    let n = element_count(t);
    let raw = &t.raw_data;
    let v: Vec<i64> = match T::try_from(t.data_type).ok()? {
        T::Int64 if !raw.is_empty() => raw_chunks::<8>(raw).map(i64::from_le_bytes).collect(),
        T::Int64 => t.int64_data.clone(),
        T::Int32 if !raw.is_empty() => raw_chunks::<4>(raw).map(|b| i32::from_le_bytes(b) as i64).collect(),
        T::Int8 if !raw.is_empty() => raw.iter().map(|&b| b as i8 as i64).collect(),
        T::Uint8 | T::Bool if !raw.is_empty() => raw.iter().map(|&b| b as i64).collect(),
        T::Int32 | T::Int8 | T::Uint8 | T::Bool | T::Int16 | T::Uint16 => {
            t.int32_data.iter().map(|&v| v as i64).collect()
        }
        _ => return None,
    };
    (v.len() == n).then_some(v)
}

/// The attribute `name` of a node.
pub fn attr<'a>(n: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

/// An integer attribute of a node.
pub fn get_int(n: &pb::NodeProto, name: &str) -> Option<i64> {
    attr(n, name).map(|a| a.i)
}

/// A float attribute of a node.
pub fn get_float(n: &pb::NodeProto, name: &str) -> Option<f32> {
    attr(n, name).map(|a| a.f)
}

/// An integer-list attribute of a node.
pub fn get_ints(n: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

/// A string attribute of a node.
pub fn get_str(n: &pb::NodeProto, name: &str) -> Option<String> {
    attr(n, name).map(|a| String::from_utf8_lossy(&a.s).to_string())
}

/// Sets (replacing) an attribute of a node.
pub fn set_attr(n: &mut pb::NodeProto, a: pb::AttributeProto) {
    n.attribute.retain(|x| x.name != a.name);
    n.attribute.push(a);
}

/// A name shown for a node in messages: its name, else its first output.
pub fn node_label(n: &pb::NodeProto) -> String {
    if n.name.is_empty() { n.output.first().cloned().unwrap_or_default() } else { n.name.clone() }
}

/// The graph of a model (an empty one when missing, which `onnx::decode` already rejects).
pub fn graph_mut(m: &mut pb::ModelProto) -> &mut pb::GraphProto {
    m.graph.get_or_insert_with(Default::default)
}

/// The graph of a model.
pub fn graph(m: &pb::ModelProto) -> &pb::GraphProto {
    static EMPTY: std::sync::OnceLock<pb::GraphProto> = std::sync::OnceLock::new();
    m.graph.as_ref().unwrap_or_else(|| EMPTY.get_or_init(Default::default))
}

/// Initializer position by name.
pub fn initializer_index(g: &pb::GraphProto) -> HashMap<String, usize> {
    g.initializer.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect()
}

/// The initializer called `name`.
pub fn initializer<'a>(g: &'a pb::GraphProto, name: &str) -> Option<&'a pb::TensorProto> {
    g.initializer.iter().find(|t| t.name == name)
}

/// For each tensor name, the node that produces it.
pub fn producers(g: &pb::GraphProto) -> HashMap<String, usize> {
    let mut p = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        for o in &n.output {
            if !o.is_empty() {
                p.insert(o.clone(), i);
            }
        }
    }
    p
}

/// For each tensor name, the nodes that read it (a node reading it twice appears twice).
pub fn consumers(g: &pb::GraphProto) -> HashMap<String, Vec<usize>> {
    let mut c: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        for inp in &n.input {
            if !inp.is_empty() {
                c.entry(inp.clone()).or_default().push(i);
            }
        }
    }
    c
}

/// Names of the graph's outputs.
pub fn output_names(g: &pb::GraphProto) -> HashSet<String> {
    g.output.iter().map(|o| o.name.clone()).collect()
}

/// Hands out tensor and node names not used anywhere in a graph.
#[derive(Debug, Default)]
pub struct Names {
    used: HashSet<String>,
}

impl Names {
    /// Collects every name already in `g`.
    pub fn of(g: &pb::GraphProto) -> Names {
        let mut used = HashSet::new();
        for n in &g.node {
            used.insert(n.name.clone());
            used.extend(n.input.iter().cloned());
            used.extend(n.output.iter().cloned());
        }
        used.extend(g.initializer.iter().map(|t| t.name.clone()));
        used.extend(g.input.iter().map(|t| t.name.clone()));
        used.extend(g.output.iter().map(|t| t.name.clone()));
        Names { used }
    }

    /// `base`, or `base_1`, `base_2`, ... whichever is free; the name is then taken.
    pub fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while self.used.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.used.insert(name.clone());
        name
    }
}

/// True when every node comes after the producers of its inputs (outer-scope names of subgraphs
/// aside).
pub fn is_sorted(g: &pb::GraphProto) -> bool {
    let produced: HashSet<&str> = g.node.iter().flat_map(|n| &n.output).map(|s| s.as_str()).collect();
    let mut seen: HashSet<&str> = HashSet::new();
    for n in &g.node {
        if n.input.iter().any(|i| produced.contains(i.as_str()) && !seen.contains(i.as_str())) {
            return false;
        }
        seen.extend(n.output.iter().map(|s| s.as_str()));
    }
    true
}

/// A graph whose nodes cannot be ordered: it has a cycle or reads a tensor nothing produces.
/// Names up to 8 of the nodes left.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the graph has a cycle or reads tensors nothing produces (at {})", .stuck.join(", "))]
pub struct Unsortable {
    pub stuck: Vec<String>,
}

/// Sorts nodes so every node comes after the producers of its inputs (stable for graphs that are
/// already sorted). Errors with the nodes left when the graph has a cycle or reads an unknown
/// tensor.
pub fn topo_sort(g: &mut pb::GraphProto) -> Result<(), Unsortable> {
    let mut available: HashSet<String> = g.input.iter().map(|i| i.name.clone()).collect();
    available.extend(g.initializer.iter().map(|t| t.name.clone()));
    available.insert(String::new());
    let mut pending: Vec<pb::NodeProto> = std::mem::take(&mut g.node);
    let mut sorted = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for n in pending {
            if n.input.iter().all(|i| available.contains(i)) {
                available.extend(n.output.iter().cloned());
                sorted.push(n);
            } else {
                rest.push(n);
            }
        }
        if rest.len() == before {
            let stuck: Vec<String> = rest.iter().take(8).map(node_label).collect();
            g.node = sorted.into_iter().chain(rest).collect();
            return Err(Unsortable { stuck });
        }
        pending = rest;
    }
    g.node = sorted;
    Ok(())
}

/// Removes nodes whose outputs nobody reads and initializers nobody uses. Returns how many
/// nodes went.
pub fn remove_dead(g: &mut pb::GraphProto) -> usize {
    let before = g.node.len();
    // Walk back from the graph outputs through producers (works whatever the node order).
    let producer = producers(g);
    let mut live: HashSet<String> = HashSet::new();
    let mut keep = vec![false; g.node.len()];
    let mut work: Vec<String> = output_names(g).into_iter().collect();
    while let Some(t) = work.pop() {
        if !live.insert(t.clone()) {
            continue;
        }
        if let Some(&i) = producer.get(&t)
            && !keep[i]
        {
            keep[i] = true;
            let n = &g.node[i];
            work.extend(n.input.iter().filter(|x| !x.is_empty()).cloned());
            // Subgraph bodies may read outer tensors.
            for a in &n.attribute {
                for sub in a.g.iter().chain(&a.graphs) {
                    for sn in &sub.node {
                        work.extend(sn.input.iter().cloned());
                    }
                }
            }
        }
    }
    let mut i = 0;
    g.node.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    let all_inits: HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    g.initializer.retain(|t| live.contains(&t.name));
    let kept: HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    // Real graph inputs stay (the manifest lists them); initializers declared as inputs go with
    // their initializer.
    g.input.retain(|v| !all_inits.contains(&v.name) || kept.contains(&v.name));
    g.value_info.retain(|v| live.contains(&v.name));
    before - g.node.len()
}

/// Serialises a model.
pub fn encode(m: &pb::ModelProto) -> Vec<u8> {
    m.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_initializers_round_trip_raw_and_typed() {
        let t = make_f32("w", &[2, 2], &[1.0, -2.0, 3.5, 0.0]);
        assert_eq!(tensor_f32(&t).unwrap().data, vec![1.0, -2.0, 3.5, 0.0]);
        let typed = pb::TensorProto {
            dims: vec![3],
            data_type: T::Float as i32,
            float_data: vec![1.0, 2.0, 3.0],
            ..Default::default()
        };
        assert_eq!(tensor_f32(&typed).unwrap().shape, vec![3]);
        let short = pb::TensorProto { dims: vec![4], ..typed };
        assert!(tensor_f32(&short).is_none(), "data that does not fill the dims is refused");
    }

    #[test]
    fn fresh_names_never_collide() {
        let mut g = pb::GraphProto::default();
        g.node.push(node("Relu", "r", &["x"], &["y"], vec![]));
        let mut names = Names::of(&g);
        assert_eq!(names.fresh("y"), "y_1");
        assert_eq!(names.fresh("y"), "y_2");
        assert_eq!(names.fresh("z"), "z");
    }

    #[test]
    fn topo_sort_orders_and_reports_cycles() {
        let mut g = pb::GraphProto::default();
        g.input.push(edgeqa_format::onnx_builder::value_untyped("x"));
        g.node.push(node("Relu", "b", &["a"], &["b"], vec![]));
        g.node.push(node("Relu", "a", &["x"], &["a"], vec![]));
        topo_sort(&mut g).unwrap();
        assert_eq!(g.node[0].name, "a");
        g.node.push(node("Add", "c", &["d", "b"], &["c"], vec![]));
        g.node.push(node("Add", "d", &["c", "b"], &["d"], vec![]));
        let err = topo_sort(&mut g).unwrap_err().to_string();
        assert!(err.contains("cycle"), "{err}");
    }

    #[test]
    fn dead_nodes_and_unused_initializers_go() {
        let mut g = pb::GraphProto::default();
        g.input.push(edgeqa_format::onnx_builder::value_untyped("x"));
        g.output.push(edgeqa_format::onnx_builder::value_untyped("y"));
        g.initializer.push(make_f32("unused", &[1], &[1.0]));
        g.initializer.push(make_f32("k", &[1], &[1.0]));
        g.node.push(node("Add", "keep", &["x", "k"], &["y"], vec![]));
        g.node.push(node("Relu", "dead", &["x"], &["z"], vec![]));
        assert_eq!(remove_dead(&mut g), 1);
        assert_eq!(g.initializer.len(), 1);
        assert_eq!(g.input.len(), 1);
    }
}
