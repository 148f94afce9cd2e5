//! LSTM (opset 7–22): forward, reverse and bidirectional, optional biases, peepholes, initial
//! states and any subset of the outputs `Y`, `Y_h`, `Y_c`, both layouts, default activations
//! (Sigmoid, Tanh, Tanh): `lstm.wgsl`.
//!
//! The recurrence is sequential, so one workgroup runs one (direction, batch item) through every
//! time step, the hidden state in workgroup memory and a barrier between steps. W, R, B and P are
//! constants packed at load into one buffer.

use tract_onnx::prelude::DatumType;

use super::params::params;
use super::{Binding, Build, Kernel, Shader, const_floats, const_ints, want_f32};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, NodeError, OutputType, Value};

const SHADER: Shader = Shader { name: "lstm", source: include_str!("lstm.wgsl") };

params! {
    /// `lstm.wgsl`'s params.
    struct LstmParams {
        /// Time steps.
        steps: u32,
        batch: u32,
        /// Input size.
        input: u32,
        hidden: u32,
        directions: u32,
        /// `layout` = 1: batch-major input and outputs.
        batch_major: bool,
        /// One direction, run backwards.
        reverse: bool,
        peepholes: bool,
    }
}

/// Largest hidden size (the workgroup arrays in `lstm.wgsl`).
const MAX_HIDDEN: usize = 1024;

/// LSTM.
pub(crate) struct Lstm;

/// An LSTM node's params, parsed once from its attributes and inputs: its sizes and direction.
/// `clip`, `activation_alpha` and `activation_beta` are never read, so the loader refuses them.
struct Dims {
    reverse: bool,
    seq: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    directions: usize,
    layout: usize,
}

fn dims(node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Dims, NodeError> {
    let get = |i: usize, what: &str| inputs.get(i).copied().flatten().ok_or_else(|| format!("missing {what}"));
    let (x, w, r) = (get(0, "X")?, get(1, "W")?, get(2, "R")?);
    for (v, what) in [(x, "X"), (w, "W"), (r, "R")] {
        want_f32(v, what)?;
    }
    for (i, what) in [(3, "B"), (7, "P")] {
        if let Some(v) = inputs.get(i).copied().flatten() {
            want_f32(v, what)?;
            if v.constant.is_none() {
                return Err(NodeError::NotConstant { what, name: v.name.clone() });
            }
        }
    }
    for (v, what) in [(w, "W"), (r, "R")] {
        if v.constant.is_none() {
            return Err(NodeError::NotConstant { what, name: v.name.clone() });
        }
    }
    let direction = node.string("direction", "forward");
    let directions = match direction.as_str() {
        "forward" | "reverse" => 1,
        "bidirectional" => 2,
        other => return Err(format!("direction `{other}`").into()),
    };
    if node.has("activations") {
        let defaults = ["Sigmoid", "Tanh", "Tanh"];
        let got = node.strings("activations");
        if got.len() != 3 * directions || got.iter().enumerate().any(|(i, a)| a != defaults[i % 3]) {
            return Err(format!("activations {got:?} (only Sigmoid, Tanh, Tanh)").into());
        }
    }
    if node.int("input_forget", 0) != 0 {
        return Err("input_forget=1 is not supported".into());
    }
    let layout = node.int("layout", 0);
    if !(0..=1).contains(&layout) {
        return Err(format!("layout {layout}").into());
    }
    if x.shape.len() != 3 {
        return Err(format!("X has shape {:?} (want rank 3)", x.shape).into());
    }
    let (seq, batch) = if layout == 0 { (x.shape[0], x.shape[1]) } else { (x.shape[1], x.shape[0]) };
    let input = x.shape[2];
    let hidden = match node.int("hidden_size", 0) {
        0 => r.shape.last().copied().unwrap_or(0),
        h => h as usize,
    };
    if hidden == 0 || hidden > MAX_HIDDEN {
        return Err(format!("hidden size {hidden} (1 to {MAX_HIDDEN} supported)").into());
    }
    let want = |v: &Value, shape: &[usize], what: &str| -> Result<(), NodeError> {
        if v.shape != shape {
            return Err(format!("{what} `{}` has shape {:?}, want {shape:?}", v.name, v.shape).into());
        }
        Ok(())
    };
    want(w, &[directions, 4 * hidden, input], "W")?;
    want(r, &[directions, 4 * hidden, hidden], "R")?;
    if let Some(b) = inputs.get(3).copied().flatten() {
        want(b, &[directions, 8 * hidden], "B")?;
    }
    if let Some(s) = inputs.get(4).copied().flatten() {
        // Only sequence lengths that are the whole sequence for every batch item.
        let lens =
            const_ints(s).ok_or_else(|| NodeError::NotConstant { what: "sequence_lens", name: s.name.clone() })?;
        if lens.len() != batch || lens.iter().any(|&l| l != seq as i64) {
            return Err(format!("sequence_lens {lens:?} (only the full length {seq} is supported)").into());
        }
    }
    let state = if layout == 0 { [directions, batch, hidden] } else { [batch, directions, hidden] };
    for (i, what) in [(5, "initial_h"), (6, "initial_c")] {
        if let Some(v) = inputs.get(i).copied().flatten() {
            want_f32(v, what)?;
            want(v, &state, what)?;
        }
    }
    if let Some(p) = inputs.get(7).copied().flatten() {
        want(p, &[directions, 3 * hidden], "P")?;
    }
    Ok(Dims { reverse: direction == "reverse", seq, batch, input, hidden, directions, layout: layout as usize })
}

/// Shapes of `Y`, `Y_h`, `Y_c`.
fn output_shapes(d: &Dims) -> [Vec<usize>; 3] {
    let (t, b, n, h) = (d.seq, d.batch, d.directions, d.hidden);
    if d.layout == 0 {
        [vec![t, n, b, h], vec![n, b, h], vec![n, b, h]]
    } else {
        [vec![b, t, n, h], vec![b, n, h], vec![b, n, h]]
    }
}

impl Kernel for Lstm {
    fn ops(&self) -> &'static [&'static str] {
        &["LSTM"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let d = dims(node, inputs)?;
        let shapes = output_shapes(&d);
        node.output_slots
            .iter()
            .map(|&k| {
                shapes
                    .get(k)
                    .map(|s| OutputType::new(DatumType::F32, s.clone()))
                    .ok_or_else(|| "more than 3 outputs".into())
            })
            .collect()
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let inputs: Vec<Option<&Value>> = b.node.inputs.iter().map(|i| i.map(|i| &b.graph.values[i])).collect();
        let d = dims(&b.attrs(), &inputs)?;
        // W | R | B (zeros when absent) | P (zeros when absent), as f32 bits.
        let floats = |i: usize, len: usize| -> Vec<f32> {
            inputs.get(i).copied().flatten().and_then(const_floats).unwrap_or_else(|| vec![0.0; len])
        };
        let (n, h) = (d.directions, d.hidden);
        let mut packed: Vec<u32> = Vec::new();
        for (i, len) in [(1, n * 4 * h * d.input), (2, n * 4 * h * h), (3, n * 8 * h), (7, n * 3 * h)] {
            packed.extend(floats(i, len).iter().map(|f| f.to_bits()));
        }
        let weights = b.upload(&format!("{} weights", b.node.name), &packed);
        let state_len = n * d.batch * h;
        let zeros = |b: &Build<'_>, what: &str| b.upload(&format!("{} {what}", b.node.name), &vec![0; state_len]);
        let state_in = |b: &Build<'_>, i: usize, what: &str| match b.node.inputs.get(i).copied().flatten() {
            Some(v) => Binding::Value(v),
            None => zeros(b, what),
        };
        let (h0, c0) = (state_in(b, 5, "initial_h"), state_in(b, 6, "initial_c"));
        // Outputs the graph does not name are written to scratch buffers.
        let mut outs = Vec::with_capacity(3);
        for (k, len) in [(0, d.seq * state_len), (1, state_len), (2, state_len)] {
            outs.push(match b.node.output_slots.iter().position(|&s| s == k) {
                Some(at) => Binding::Value(b.output_id(at)),
                None => b.upload(&format!("{} unused output {k}", b.node.name), &vec![0; len.max(1)]),
            });
        }
        let reverse = d.reverse;
        let has_peepholes = b.node.inputs.get(7).copied().flatten().is_some();
        let p = LstmParams {
            steps: d.seq as u32,
            batch: d.batch as u32,
            input: d.input as u32,
            hidden: h as u32,
            directions: n as u32,
            batch_major: d.layout == 1,
            reverse,
            peepholes: has_peepholes,
        };
        let bindings =
            [Binding::Value(b.input_id(0)), weights, h0, c0, outs[0].clone(), outs[1].clone(), outs[2].clone()];
        b.dispatch(&SHADER, "main", &p, &bindings, [d.batch as u32, n as u32, 1])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tract_onnx::prelude::Tensor;

    use super::*;
    use crate::graph::{Node, OpSet};
    use crate::onnx::pb;

    fn value(name: &str, shape: &[usize], constant: bool) -> Value {
        let n = shape.iter().product();
        let t = constant.then(|| Arc::new(Tensor::from_shape(shape, &vec![0f32; n]).unwrap()));
        Value { constant: t, ..Value::computed(name, DatumType::F32, shape.to_vec()) }
    }

    fn lstm(attributes: Vec<pb::AttributeProto>) -> Node {
        Node {
            name: "rnn".into(),
            op: "LSTM".into(),
            inputs: vec![Some(0), Some(1), Some(2)],
            outputs: vec![3],
            output_slots: vec![1],
            attributes,
        }
    }

    #[test]
    fn what_the_kernel_does_not_run_is_named() {
        let (x, w, r) = (value("x", &[5, 1, 3], false), value("w", &[1, 8, 3], true), value("r", &[1, 8, 2], true));
        let ok = Lstm.infer(&Attrs::new(&lstm(vec![])), &[Some(&x), Some(&w), Some(&r)]).unwrap();
        assert_eq!(ok, [OutputType::new(DatumType::F32, vec![1, 1, 2])], "Y_h only");
        let clip = crate::onnx_builder::attr_float("clip", 3.0);
        // Refused by the registry: the kernel never reads `clip`.
        let err = super::super::Kernels.infer(&lstm(vec![clip]), &[Some(&x), Some(&w), Some(&r)]).unwrap().unwrap_err();
        assert_eq!(err.to_string(), "attribute `clip` is not supported");
        let fed = value("r", &[1, 8, 2], false);
        let err = Lstm.infer(&Attrs::new(&lstm(vec![])), &[Some(&x), Some(&w), Some(&fed)]).unwrap_err();
        assert_eq!(err, NodeError::NotConstant { what: "R", name: "r".into() });
        let wrong = value("w", &[1, 8, 4], true);
        let err = Lstm.infer(&Attrs::new(&lstm(vec![])), &[Some(&x), Some(&wrong), Some(&r)]).unwrap_err();
        assert_eq!(err.to_string(), "W `w` has shape [1, 8, 4], want [1, 8, 3]");
    }
}
