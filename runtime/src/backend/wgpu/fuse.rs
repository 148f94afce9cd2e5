//! Fusion on the graph IR before planning: an activation that is the only reader of a Conv,
//! ConvTranspose, MatMul or Gemm output runs in that kernel's epilogue, and a MatMul followed by the Add of a
//! constant bias over its last axis becomes one product with a bias. Fewer dispatches, fewer
//! intermediate buffers.

use super::kernels::{FUSED_ACTIVATION, FUSED_ALPHA, FUSED_BETA, activation_of, broadcast_strides};
use crate::graph::{Graph, ValueId};
use crate::onnx::pb;

/// Ops whose kernels apply a fused activation.
const PRODUCERS: &[&str] = &["Conv", "ConvTranspose", "MatMul", "Gemm"];

/// Applies every fusion; returns how many nodes were absorbed.
pub(crate) fn fuse(graph: &mut Graph) -> usize {
    let mut absorbed = 0;
    loop {
        let readers = reader_counts(graph);
        let Some((producer, consumer)) = candidate(graph, &readers) else { break };
        let c = graph.nodes[consumer].clone();
        let act = activation_of(&c, graph);
        let p = &mut graph.nodes[producer];
        if c.op == "Add" {
            // MatMul + constant bias: the bias becomes the product's third input.
            let bias = c.inputs.iter().flatten().copied().find(|&i| i != p.outputs[0]).expect("checked");
            p.inputs.push(Some(bias));
        } else {
            let act = act.expect("checked");
            p.attributes.push(int_attr(FUSED_ACTIVATION, act.code as i64));
            p.attributes.push(float_attr(FUSED_ALPHA, act.alpha));
            p.attributes.push(float_attr(FUSED_BETA, act.beta));
        }
        p.outputs = c.outputs.clone();
        graph.nodes.remove(consumer);
        absorbed += 1;
    }
    absorbed
}

fn reader_counts(graph: &Graph) -> Vec<usize> {
    let mut readers = vec![0; graph.values.len()];
    for n in &graph.nodes {
        for &i in n.inputs.iter().flatten() {
            readers[i] += 1;
        }
    }
    for &o in &graph.outputs {
        readers[o] += 1;
    }
    readers
}

/// The first (producer, consumer) pair that can fuse.
fn candidate(graph: &Graph, readers: &[usize]) -> Option<(usize, usize)> {
    for (pi, p) in graph.nodes.iter().enumerate() {
        if !PRODUCERS.contains(&p.op.as_str()) || p.outputs.len() != 1 || readers[p.outputs[0]] != 1 {
            continue;
        }
        if p.attribute_names().any(|a| a == FUSED_ACTIVATION) {
            continue;
        }
        let out: ValueId = p.outputs[0];
        let Some(ci) = graph.nodes.iter().position(|n| n.inputs.contains(&Some(out))) else { continue };
        let c = &graph.nodes[ci];
        if c.outputs.len() != 1 || graph.values[c.outputs[0]].shape != graph.values[out].shape {
            continue;
        }
        if c.op == "Add" && p.op == "MatMul" && p.inputs.len() == 2 {
            let other = c.inputs.iter().flatten().copied().find(|&i| i != out);
            if let Some(b) = other
                && c.inputs.iter().flatten().filter(|&&i| i == out).count() == 1
                && graph.values[b].constant.is_some()
                && graph.values[b].dtype == graph.values[out].dtype
                && bias_over_last_axis(&graph.values[b].shape, &graph.values[out].shape)
            {
                return Some((pi, ci));
            }
            continue;
        }
        if c.inputs.first() == Some(&Some(out)) && activation_of(c, graph).is_some() {
            return Some((pi, ci));
        }
    }
    None
}

/// Whether a bias of `shape` varies only along the last axis of `out` (what the product's
/// epilogue indexes).
fn bias_over_last_axis(shape: &[usize], out: &[usize]) -> bool {
    if shape.len() > out.len() || out.len() < 2 {
        return false;
    }
    let st = broadcast_strides(shape, out);
    let compatible = shape.iter().rev().zip(out.iter().rev()).all(|(&s, &o)| s == o || s == 1);
    compatible && st[..st.len() - 1].iter().all(|&s| s == 0)
}

fn int_attr(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        i: v,
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        ..Default::default()
    }
}

fn float_attr(name: &str, v: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        f: v,
        r#type: pb::attribute_proto::AttributeType::Float as i32,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bias_must_vary_along_the_last_axis_only() {
        assert!(bias_over_last_axis(&[8], &[2, 4, 8]));
        assert!(bias_over_last_axis(&[1, 8], &[4, 8]));
        assert!(!bias_over_last_axis(&[4, 8], &[4, 8]));
        assert!(!bias_over_last_axis(&[4, 1], &[4, 8]));
        assert!(!bias_over_last_axis(&[8], &[8]));
    }
}
