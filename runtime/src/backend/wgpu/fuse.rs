//! Fusion on the graph IR before planning: an activation that is the only reader of a Conv,
//! ConvTranspose, MatMul or Gemm output runs in that kernel's epilogue, a MatMul followed by the
//! Add of a constant bias over its last axis becomes one product with a bias, and the
//! ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div(/Mul/Add) chain that exporters write for a layer
//! norm before opset 17 becomes one LayerNormalization, and what is left of runs of f32
//! elementwise ops (an exported GELU or hard-swish, a scale and a mask before a softmax) becomes
//! one chain node (`kernels/chain.rs`). Fewer dispatches, fewer intermediate buffers. First of
//! all, a MatMul, Gemm or 1×1 Conv of a full-int8 package — per-channel int8 weights, its input
//! a DequantizeLinear of quantized activations — reads the quantized values itself and
//! multiplies in integers (`kernels/matmul_int8.wgsl`).

use super::kernels::chain::{CHAIN_OP, MAX_STEPS, OPERAND_SCALAR, OPERAND_SELF, PARAMS, SLOTS, STEPS, SWAPPED};
use super::kernels::elementwise::chain_step;
use super::kernels::matmul::{A_SCALE, A_ZERO};
use super::kernels::{
    FUSED_ACTIVATION, FUSED_ALPHA, FUSED_BETA, activation_of, broadcast_strides, const_floats, const_ints,
};
use super::kernels::{conv, matmul};
use crate::graph::ReadAttrs;
use crate::graph::{Graph, ValueId};
use crate::onnx_builder::{attr_float, attr_floats, attr_int, attr_ints};

/// Ops whose kernels apply a fused activation.
const PRODUCERS: &[&str] = &["Conv", "ConvTranspose", "MatMul", "Gemm"];

/// Applies every fusion; returns how many nodes were absorbed.
pub(crate) fn fuse(graph: &mut Graph) -> usize {
    let mut absorbed = int8_products(graph);
    while let Some(ln) = layer_norm(graph) {
        absorbed += ln.replace(graph);
    }
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
            p.attributes.push(attr_int(FUSED_ACTIVATION, act.code as i64));
            p.attributes.push(attr_float(FUSED_ALPHA, act.alpha));
            p.attributes.push(attr_float(FUSED_BETA, act.beta));
        }
        p.outputs = c.outputs.clone();
        graph.nodes.remove(consumer);
        absorbed += 1;
    }
    while let Some(chain) = elementwise_chain(graph) {
        absorbed += chain.replace(graph);
    }
    absorbed
}

/// Points every MatMul, Gemm and 1×1 Conv whose input is `DequantizeLinear(q)` (one scale and
/// zero point, q uint8 or int8) and whose weights hold per-channel int8 values exactly at `q`,
/// with the scale and zero point as attributes (the int8×int8 product); then drops the
/// DequantizeLinear nodes nothing reads any more. Returns how many went.
fn int8_products(graph: &mut Graph) -> usize {
    use tract_onnx::prelude::DatumType;
    for i in 0..graph.nodes.len() {
        let node = &graph.nodes[i];
        if !matches!(node.op.as_str(), "MatMul" | "Gemm" | "Conv") {
            continue;
        }
        let Some(Some(x)) = node.inputs.first().copied() else { continue };
        let Some(dq) = graph.nodes.iter().find(|n| n.op == "DequantizeLinear" && n.outputs == [x]) else { continue };
        let Some(Some(q)) = dq.inputs.first().copied() else { continue };
        if !matches!(graph.values[q].dtype, DatumType::U8 | DatumType::I8) {
            continue;
        }
        let scale = dq.inputs.get(1).copied().flatten().and_then(|v| const_floats(&graph.values[v]));
        let zero = match dq.inputs.get(2).copied().flatten() {
            None => Some(vec![0]),
            Some(z) => const_ints(&graph.values[z]),
        };
        let (Some([scale]), Some([zero])) = (scale.as_deref(), zero.as_deref()) else { continue };
        let (scale, zero) = (*scale, *zero);
        if !(scale.is_finite() && scale > 0.0) {
            continue;
        }
        let int8 = if node.op == "Conv" {
            conv::int8_weights(node, graph).is_some()
        } else {
            matmul::int8_weights(node, graph).is_some()
        };
        if !int8 {
            continue;
        }
        let node = &mut graph.nodes[i];
        node.inputs[0] = Some(q);
        node.attributes.push(attr_float(A_SCALE, scale));
        node.attributes.push(attr_int(A_ZERO, zero));
    }
    let readers = reader_counts(graph);
    let before = graph.nodes.len();
    graph.nodes.retain(|n| n.op != "DequantizeLinear" || n.outputs.iter().any(|&o| readers[o] > 0));
    before - graph.nodes.len()
}

/// A run of elementwise nodes to fuse: each reads the previous one's output, which nothing
/// else reads, and keeps its shape.
struct ElementwiseChain {
    /// Node indices, in order.
    members: Vec<usize>,
    /// Tensor inputs (slot 0 is where the chain value starts).
    slots: Vec<ValueId>,
    /// Per step: code, operand word, alpha, beta.
    steps: Vec<(u32, u32, f32, f32)>,
    output: ValueId,
}

impl ElementwiseChain {
    /// Puts one chain node where the last member was; returns how many nodes went.
    fn replace(self, graph: &mut Graph) -> usize {
        let last = *self.members.last().expect("at least two members");
        let head = &graph.nodes[self.members[0]];
        let node = crate::graph::Node {
            name: format!("{}..{}", head.name, graph.nodes[last].name),
            op: CHAIN_OP.into(),
            inputs: self.slots.iter().map(|&v| Some(v)).collect(),
            outputs: vec![self.output],
            output_slots: vec![0],
            attributes: vec![
                attr_ints(STEPS, &self.steps.iter().flat_map(|s| [s.0 as i64, s.1 as i64]).collect::<Vec<_>>()),
                attr_floats(PARAMS, &self.steps.iter().flat_map(|s| [s.2, s.3]).collect::<Vec<_>>()),
            ],
        };
        graph.nodes[last] = node;
        for &i in self.members[..self.members.len() - 1].iter().rev() {
            graph.nodes.remove(i);
        }
        self.members.len() - 1
    }
}

/// The first run of two or more fusable elementwise nodes.
fn elementwise_chain(graph: &Graph) -> Option<ElementwiseChain> {
    let readers = reader_counts(graph);
    'heads: for (hi, head) in graph.nodes.iter().enumerate() {
        let Some((code, alpha, beta)) = chain_step(head, graph) else { continue };
        let out = head.outputs[0];
        let shape = &graph.values[out].shape;
        let x = head.inputs[0].expect("chain_step checked");
        let mut chain = ElementwiseChain { members: vec![hi], slots: vec![x], steps: vec![], output: out };
        // The operand word for `v`, taking a slot when it is a tensor.
        let operand = |slots: &mut Vec<ValueId>, v: ValueId| -> Option<(u32, f32)> {
            if let Some(f) = const_floats(&graph.values[v])
                && f.len() == 1
            {
                return Some((OPERAND_SCALAR, f[0]));
            }
            if let Some(s) = slots.iter().position(|&s| s == v) {
                return Some((s as u32, 0.0));
            }
            (slots.len() < SLOTS).then(|| {
                slots.push(v);
                ((slots.len() - 1) as u32, 0.0)
            })
        };
        if code >= 100 {
            let Some((word, scalar)) = operand(&mut chain.slots, head.inputs[1].expect("checked")) else { continue };
            chain.steps.push((code, word, scalar, 0.0));
        } else {
            chain.steps.push((code, 0, alpha, beta));
        }
        let mut cur = out;
        while chain.steps.len() < MAX_STEPS {
            // One reader node (which may read it twice, `v · v`), and not a graph output.
            let Some(ci) = graph.nodes.iter().position(|n| n.inputs.contains(&Some(cur))) else { break };
            let c = &graph.nodes[ci];
            if readers[cur] != c.inputs.iter().filter(|&&i| i == Some(cur)).count() {
                break;
            }
            let Some((code, alpha, beta)) = chain_step(c, graph) else { break };
            if graph.values[c.outputs[0]].shape != *shape {
                break;
            }
            let step = if code >= 100 {
                let [Some(l), Some(r)] = c.inputs[..] else { break };
                if l == cur && r == cur {
                    (code, OPERAND_SELF, 0.0, 0.0)
                } else {
                    let (other, swapped) = if l == cur { (r, 0) } else { (l, SWAPPED) };
                    let Some((word, scalar)) = operand(&mut chain.slots, other) else { break };
                    (code, word | swapped, scalar, 0.0)
                }
            } else if c.inputs[0] == Some(cur) {
                (code, 0, alpha, beta)
            } else {
                break;
            };
            chain.steps.push(step);
            chain.members.push(ci);
            cur = c.outputs[0];
        }
        if chain.members.len() < 2 {
            continue 'heads;
        }
        chain.output = cur;
        return Some(chain);
    }
    None
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

/// A layer-norm chain found in the graph: node indices to remove, and the fused node's inputs.
struct LayerNormChain {
    /// The first ReduceMean, replaced by the fused node.
    first: usize,
    /// Every other node of the chain.
    rest: Vec<usize>,
    x: ValueId,
    scale: Option<ValueId>,
    bias: Option<ValueId>,
    epsilon: f32,
    output: ValueId,
}

impl LayerNormChain {
    /// Puts one LayerNormalization in the chain's place; returns how many nodes went.
    fn replace(self, graph: &mut Graph) -> usize {
        let x = &graph.values[self.x];
        let (len, name) = (*x.shape.last().expect("checked: rank ≥ 1"), x.name.clone());
        let scale = self.scale.unwrap_or_else(|| {
            let ones = tract_onnx::prelude::Tensor::from_shape(&[len], &vec![1f32; len]).expect("shape");
            graph.values.push(crate::graph::Value {
                name: format!("{name}.ones"),
                dtype: tract_onnx::prelude::DatumType::F32,
                shape: vec![len],
                constant: Some(std::sync::Arc::new(ones)),
                stored: None,
            });
            graph.values.len() - 1
        });
        let first = &mut graph.nodes[self.first];
        first.op = "LayerNormalization".into();
        first.inputs = vec![Some(self.x), Some(scale), self.bias];
        first.outputs = vec![self.output];
        first.output_slots = vec![0];
        first.attributes = vec![attr_int("axis", -1), attr_float("epsilon", self.epsilon)];
        let mut rest = self.rest;
        rest.sort_unstable();
        for &i in rest.iter().rev() {
            graph.nodes.remove(i);
        }
        rest.len()
    }
}

/// The first layer-norm chain over the last axis:
/// `d = x − ReduceMean(x)`, `y = d / Sqrt(ReduceMean(d²) + ε)`, then optionally `· γ` and `+ β`
/// with constant γ, β over the last axis; every intermediate read only inside the chain.
fn layer_norm(graph: &Graph) -> Option<LayerNormChain> {
    let readers = reader_counts(graph);
    let reader_of = |v: ValueId| -> Option<usize> {
        (readers[v] == 1).then(|| graph.nodes.iter().position(|n| n.inputs.contains(&Some(v))))?
    };
    let scalar = |v: ValueId| -> Option<f32> {
        let f = const_floats(&graph.values[v])?;
        (f.len() == 1).then(|| f[0])
    };
    // A ReduceMean over the last axis only, keeping it.
    let mean_of_last = |i: usize| -> Option<ValueId> {
        let n = &graph.nodes[i];
        let x = (*n.inputs.first()?)?;
        let rank = graph.values[x].shape.len() as i64;
        let axes = match n.ints("axes") {
            Some(a) => a,
            None => const_ints(&graph.values[n.inputs.get(1).copied().flatten()?])?,
        };
        let last = axes.len() == 1 && (axes[0] == -1 || axes[0] == rank - 1);
        (n.op == "ReduceMean" && rank >= 1 && last && n.int("keepdims", 1) == 1).then_some(x)
    };
    let op_is = |i: usize, op: &str| graph.nodes[i].op == op;
    let one_out = |i: usize| graph.nodes[i].outputs[0];
    for first in 0..graph.nodes.len() {
        let Some(x) = mean_of_last(first) else { continue };
        let mean = one_out(first);
        // d = x − mean, read by the square and the division only.
        let Some(sub) = reader_of(mean) else { continue };
        if !op_is(sub, "Sub") || graph.nodes[sub].inputs != [Some(x), Some(mean)] {
            continue;
        }
        let d = one_out(sub);
        let d_readers: Vec<usize> =
            graph.nodes.iter().enumerate().filter(|(_, n)| n.inputs.contains(&Some(d))).map(|(i, _)| i).collect();
        if graph.outputs.contains(&d) || d_readers.len() != 2 {
            continue;
        }
        let square = |i: usize| {
            let n = &graph.nodes[i];
            (n.op == "Pow"
                && n.inputs.first() == Some(&Some(d))
                && n.inputs.get(1).copied().flatten().and_then(scalar) == Some(2.0))
                || (n.op == "Mul" && n.inputs == [Some(d), Some(d)])
        };
        let (sq, div) = if square(d_readers[0]) { (d_readers[0], d_readers[1]) } else { (d_readers[1], d_readers[0]) };
        if !square(sq) || !op_is(div, "Div") || graph.nodes[div].inputs.first() != Some(&Some(d)) {
            continue;
        }
        let Some(var) = reader_of(one_out(sq)) else { continue };
        if mean_of_last(var) != Some(one_out(sq)) {
            continue;
        }
        let Some(add) = reader_of(one_out(var)) else { continue };
        let other = |i: usize, v: ValueId| graph.nodes[i].inputs.iter().flatten().copied().find(|&o| o != v);
        let Some(epsilon) = op_is(add, "Add").then(|| other(add, one_out(var)).and_then(scalar)).flatten() else {
            continue;
        };
        let Some(sqrt) = reader_of(one_out(add)) else { continue };
        if !op_is(sqrt, "Sqrt")
            || reader_of(one_out(sqrt)) != Some(div)
            || graph.nodes[div].inputs.get(1) != Some(&Some(one_out(sqrt)))
        {
            continue;
        }
        let mut chain = LayerNormChain {
            first,
            rest: vec![sub, sq, var, add, sqrt, div],
            x,
            scale: None,
            bias: None,
            epsilon,
            output: one_out(div),
        };
        // Optional · γ and + β: constants with the last axis' length.
        let len = *graph.values[x].shape.last()?;
        let affine = |i: usize, op: &str, v: ValueId| -> Option<ValueId> {
            let c = other(i, v)?;
            let ok = op_is(i, op)
                && graph.nodes[i].inputs.len() == 2
                && graph.values[c].constant.is_some()
                && graph.values[c].dtype == graph.values[v].dtype
                && (graph.values[c].shape == [len]);
            ok.then_some(c)
        };
        if let Some(mul) = reader_of(chain.output)
            && let Some(gamma) = affine(mul, "Mul", chain.output)
        {
            chain.scale = Some(gamma);
            chain.rest.push(mul);
            chain.output = one_out(mul);
            if let Some(plus) = reader_of(chain.output)
                && let Some(beta) = affine(plus, "Add", chain.output)
            {
                chain.bias = Some(beta);
                chain.rest.push(plus);
                chain.output = one_out(plus);
            }
        }
        return Some(chain);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::InputSpec;
    use crate::onnx::pb;
    use tract_onnx::prelude::DatumType;

    /// `x [2, 8]` through the layer-norm chain an opset-13 export writes, with γ and β.
    fn layer_norm_model(square: &str) -> pb::ModelProto {
        use crate::onnx_builder::{attr_ints, make_f32, model, node};
        let n = |op: &str, inputs: &[&str], output: &str, attrs| node(op, output, inputs, &[output], attrs);
        let axes = || vec![attr_ints("axes", &[-1])];
        let sq =
            if square == "Pow" { n("Pow", &["d", "two"], "d2", vec![]) } else { n("Mul", &["d", "d"], "d2", vec![]) };
        let mut m = model(
            13,
            vec![
                n("ReduceMean", &["x"], "m", axes()),
                n("Sub", &["x", "m"], "d", vec![]),
                sq,
                n("ReduceMean", &["d2"], "v", axes()),
                n("Add", &["v", "eps"], "ve", vec![]),
                n("Sqrt", &["ve"], "s", vec![]),
                n("Div", &["d", "s"], "n", vec![]),
                n("Mul", &["n", "gamma"], "g", vec![]),
                n("Add", &["g", "beta"], "y", vec![]),
            ],
            vec![
                make_f32("two", &[], &[2.0]),
                make_f32("eps", &[], &[1e-5]),
                make_f32("gamma", &[8], &[0.5; 8]),
                make_f32("beta", &[8], &[0.25; 8]),
            ],
            &[],
            &["y"],
        );
        m.graph.as_mut().unwrap().input.push(crate::onnx_builder::value_untyped("x"));
        m
    }

    #[test]
    fn a_layer_norm_chain_becomes_one_node() {
        for square in ["Pow", "Mul"] {
            let spec = InputSpec { name: "x".into(), dtype: DatumType::F32, shape: vec![2, 8] };
            let mut g =
                Graph::load(&layer_norm_model(square), &[spec], &[], &super::super::kernels::Kernels, "ln").unwrap();
            assert_eq!(g.nodes.len(), 9);
            assert_eq!(fuse(&mut g), 8);
            let n = &g.nodes[0];
            assert_eq!((g.nodes.len(), n.op.as_str()), (1, "LayerNormalization"), "{square}");
            assert_eq!(n.float("epsilon", 0.0), 1e-5);
            assert_eq!(g.values[n.outputs[0]].name, "y");
            assert_eq!(n.inputs.len(), 3);
        }
    }

    #[test]
    fn a_chain_whose_intermediate_is_read_elsewhere_stays() {
        let mut model = layer_norm_model("Pow");
        let graph = model.graph.as_mut().unwrap();
        graph.output.push(crate::onnx_builder::value_untyped("s"));
        let spec = InputSpec { name: "x".into(), dtype: DatumType::F32, shape: vec![2, 8] };
        let mut g = Graph::load(&model, &[spec], &[], &super::super::kernels::Kernels, "ln").unwrap();
        fuse(&mut g);
        assert!(g.nodes.iter().all(|n| n.op != "LayerNormalization"));
    }

    #[test]
    fn a_bias_must_vary_along_the_last_axis_only() {
        assert!(bias_over_last_axis(&[8], &[2, 4, 8]));
        assert!(bias_over_last_axis(&[1, 8], &[4, 8]));
        assert!(!bias_over_last_axis(&[4, 8], &[4, 8]));
        assert!(!bias_over_last_axis(&[4, 1], &[4, 8]));
        assert!(!bias_over_last_axis(&[8], &[8]));
    }
}
