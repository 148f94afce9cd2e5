//! The static memory plan: which buffer holds each intermediate tensor, computed at load from
//! the tensors' lifetimes so that buffers are reused and the peak is known before the first run.

use super::{Graph, Node, ValueId};

/// Buffers and their assignment for one graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Size in bytes of each buffer.
    pub buffers: Vec<u64>,
    /// The buffer of each value (`None` for constants and values no node touches).
    pub assignment: Vec<Option<usize>>,
    /// Bytes of every intermediate, input and output tensor without reuse, for comparison.
    pub unshared_bytes: u64,
}

impl MemoryPlan {
    /// Bytes of all buffers: the peak device memory for tensors that are not constants.
    pub fn total_bytes(&self) -> u64 {
        self.buffers.iter().sum()
    }

    /// Plans `graph`. `bytes` gives a value's size on the device; `alias` says which input an op's
    /// output shares its buffer with (a reshape that only changes the shape), if any.
    ///
    /// A tensor lives from the step that writes it (graph inputs: before the first node) to the
    /// last node that reads it (graph outputs: to the end). When a node runs, its outputs take the
    /// smallest free buffer that is big enough, else the biggest free one (grown), else a new one;
    /// tensors whose last reader it is are freed after it, so an output never shares a buffer
    /// with an input of the same node.
    pub fn new(graph: &Graph, bytes: &dyn Fn(ValueId) -> u64, alias: &dyn Fn(&Node) -> Option<usize>) -> MemoryPlan {
        let n_values = graph.values.len();
        // The value whose buffer each value uses (itself unless it aliases).
        let mut root: Vec<ValueId> = (0..n_values).collect();
        for node in &graph.nodes {
            if let Some(i) = alias(node)
                && let (Some(Some(input)), Some(&out)) = (node.inputs.get(i), node.outputs.first())
                && !graph.values[*input].is_constant()
            {
                root[out] = root[*input];
            }
        }
        let end = graph.nodes.len();
        let mut last_use: Vec<Option<usize>> = vec![None; n_values];
        for (step, node) in graph.nodes.iter().enumerate() {
            for &i in node.inputs.iter().flatten() {
                let r = root[i];
                last_use[r] = Some(last_use[r].map_or(step, |s: usize| s.max(step)));
            }
        }
        for &o in &graph.outputs {
            last_use[root[o]] = Some(end);
        }
        let mut plan = MemoryPlan { buffers: Vec::new(), assignment: vec![None; n_values], unshared_bytes: 0 };
        let mut free: Vec<usize> = Vec::new();
        // Buffers to release after each step.
        let mut release: Vec<Vec<usize>> = vec![Vec::new(); end + 1];
        let take = |plan: &mut MemoryPlan, free: &mut Vec<usize>, v: ValueId| -> usize {
            let need = bytes(v);
            plan.unshared_bytes += need;
            let fit = free
                .iter()
                .enumerate()
                .filter(|(_, b)| plan.buffers[**b] >= need)
                .min_by_key(|(_, b)| plan.buffers[**b]);
            let pick = fit
                .map(|(i, _)| i)
                .or_else(|| free.iter().enumerate().max_by_key(|(_, b)| plan.buffers[**b]).map(|(i, _)| i));
            match pick {
                Some(i) => {
                    let b = free.swap_remove(i);
                    plan.buffers[b] = plan.buffers[b].max(need);
                    b
                }
                None => {
                    plan.buffers.push(need);
                    plan.buffers.len() - 1
                }
            }
        };
        let place =
            |plan: &mut MemoryPlan, free: &mut Vec<usize>, release: &mut Vec<Vec<usize>>, v: ValueId, step: usize| {
                if graph.values[v].is_constant() || plan.assignment[v].is_some() {
                    return;
                }
                if root[v] != v {
                    plan.assignment[v] = plan.assignment[root[v]];
                    return;
                }
                let b = take(plan, free, v);
                plan.assignment[v] = Some(b);
                release[last_use[v].unwrap_or(step)].push(b);
            };
        for &i in &graph.inputs {
            place(&mut plan, &mut free, &mut release, i, 0);
        }
        for (step, node) in graph.nodes.iter().enumerate() {
            for &o in &node.outputs {
                place(&mut plan, &mut free, &mut release, o, step);
            }
            free.append(&mut release[step]);
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Value;
    use tract_onnx::prelude::DatumType;

    fn value(name: &str, len: usize) -> Value {
        Value::computed(name, DatumType::F32, vec![len])
    }

    fn node(op: &str, inputs: &[ValueId], outputs: &[ValueId]) -> Node {
        Node {
            name: op.into(),
            op: op.into(),
            inputs: inputs.iter().map(|&i| Some(i)).collect(),
            outputs: outputs.to_vec(),
            output_slots: (0..outputs.len()).collect(),
            attributes: vec![],
        }
    }

    /// A graph of `values` and `nodes` from input 0 to output `output`.
    fn graph(values: Vec<Value>, nodes: Vec<Node>, output: usize) -> Graph {
        Graph {
            values,
            nodes,
            inputs: vec![0],
            outputs: vec![output],
            folded: 0,
            stored: 0,
            stored_nodes: 0,
            opset: 13,
        }
    }

    /// x → a → b → c → y: a chain needs two buffers, not five.
    #[test]
    fn a_chain_ping_pongs_between_two_buffers() {
        let values = (0..5).map(|i| value(&format!("v{i}"), 100)).collect();
        let nodes = (0..4).map(|i| node("Relu", &[i], &[i + 1])).collect();
        let g = graph(values, nodes, 4);
        let p = MemoryPlan::new(&g, &|v| g.values[v].len() as u64 * 4, &|_| None);
        assert_eq!(p.buffers.len(), 2, "{p:?}");
        assert_eq!((p.total_bytes(), p.unshared_bytes), (800, 2000));
        for (step, n) in g.nodes.iter().enumerate() {
            assert_ne!(p.assignment[n.inputs[0].unwrap()], p.assignment[n.outputs[0]], "step {step}");
        }
    }

    /// A skip connection keeps its tensor alive; a reshape shares its input's buffer.
    #[test]
    fn long_lived_tensors_and_aliases() {
        // x → a = Relu(x); b = Reshape(a); c = Relu(b); d = Add(c, x)
        let values = ["x", "a", "b", "c", "d"].iter().map(|n| value(n, 10)).collect();
        let nodes = vec![
            node("Relu", &[0], &[1]),
            node("Reshape", &[1], &[2]),
            node("Relu", &[2], &[3]),
            node("Add", &[3, 0], &[4]),
        ];
        let g = graph(values, nodes, 4);
        let p = MemoryPlan::new(&g, &|v| g.values[v].len() as u64 * 4, &|n| (n.op == "Reshape").then_some(0));
        let a = |v: usize| p.assignment[v].unwrap();
        assert_eq!(a(1), a(2), "the reshape aliases");
        assert_ne!(a(0), a(3), "x is still alive when c is written");
        assert_ne!(a(0), a(4));
        assert_ne!(a(3), a(4));
        assert_eq!(p.buffers.len(), 3, "{p:?}");
    }

    /// Every pair of tensors alive at the same time gets different buffers, and each buffer
    /// is as big as what it holds, on random DAGs.
    #[test]
    fn no_two_live_tensors_share_a_buffer() {
        use proptest::prelude::*;
        proptest!(|(edges in proptest::collection::vec((0usize..100, 0usize..100, 1usize..64), 1..30))| {
            let mut values = vec![value("x", 8)];
            let mut nodes = Vec::new();
            for (k, (a, b, len)) in edges.iter().enumerate() {
                let n = values.len();
                values.push(value(&format!("v{k}"), *len));
                nodes.push(node("Add", &[a % n, b % n], &[n]));
            }
            let last = values.len() - 1;
            let g = graph(values, nodes, last);
            let bytes = |v: usize| g.values[v].len() as u64 * 4;
            let p = MemoryPlan::new(&g, &bytes, &|_| None);
            // Lifetimes: [def, last use].
            let end = g.nodes.len();
            let mut span: Vec<(usize, usize)> = vec![(0, 0); g.values.len()];
            for (s, n) in g.nodes.iter().enumerate() {
                span[n.outputs[0]] = (s, s);
            }
            for (s, n) in g.nodes.iter().enumerate() {
                for &i in n.inputs.iter().flatten() { span[i].1 = span[i].1.max(s); }
            }
            span[last].1 = end;
            for v in 0..g.values.len() {
                let b = p.assignment[v].unwrap();
                prop_assert!(p.buffers[b] >= bytes(v));
                for w in v + 1..g.values.len() {
                    let overlap = span[v].0 <= span[w].1 && span[w].0 <= span[v].1;
                    prop_assert!(!(overlap && p.assignment[w] == Some(b)), "values {v} and {w} share buffer {b}");
                }
            }
        });
    }
}
