//! The `int8` scheme in operator form (`--int8-form qlinear`): each quantized Conv becomes a
//! `QLinearConv` and each MatMul with a constant right-hand side a `QLinearMatMul`, reading a
//! uint8 input (one `QuantizeLinear` per tensor) and writing a uint8 output that one
//! `DequantizeLinear` turns back into the original f32 tensor. Weights are per-channel symmetric
//! int8 (zero points 0), Conv biases int32 at scale `x_scale * w_scale[c]`. tract runs these on
//! its integer kernels, where the QDQ form runs f32 kernels between Q/DQ pairs.
//!
//! Needs calibrated ranges of the nodes' outputs as well as their inputs
//! ([`output_tensors`]). Other targets (Gemm, Gather, ConvTranspose, MatMul with the weight on
//! the left, grouped Conv) are returned for the QDQ rewrite.

use std::collections::{BTreeMap, HashMap};

use edgeqa_format::onnx::pb;

use super::math::{self, ActParams, ActType};
use super::{QuantError, QuantSummary, QuantizedActivation, QuantizedWeight, Target};
use crate::calibrate::TensorRange;
use crate::graph::{self, Names, make_f32, make_i8, make_i32, make_u8, node, node_label};

/// Whether a target is rewritten to a QLinear operator (else it gets the QDQ form).
pub fn handles(g: &pb::GraphProto, t: &Target) -> bool {
    let rank = graph::initializer(g, &t.weight).map(|w| graph::dims(w).len());
    match t.op.as_str() {
        "Conv" => {
            let group = g.node.iter().find(|n| node_label(n) == t.node).and_then(|n| graph::get_int(n, "group"));
            // Grouped (depthwise) QLinearConv is far slower than float in tract 0.23: QDQ instead.
            group.unwrap_or(1) == 1 && t.weight_input == 1 && t.activations.iter().any(|(i, _)| *i == 0)
        }
        "MatMul" => t.weight_input == 1 && rank == Some(2) && t.activations.iter().any(|(i, _)| *i == 0),
        _ => false,
    }
}

/// The output tensors of the targets this form rewrites (calibrated in addition to the inputs).
pub fn output_tensors(g: &pb::GraphProto, targets: &[Target]) -> Vec<String> {
    targets
        .iter()
        .filter(|t| handles(g, t))
        .filter_map(|t| g.node.iter().find(|n| node_label(n) == t.node).and_then(|n| n.output.first().cloned()))
        .collect()
}

/// Rewrites the targets it [`handles`]; returns the others.
pub fn apply(
    model: &mut pb::ModelProto,
    origin: &str,
    targets: &[Target],
    ranges: &BTreeMap<String, TensorRange>,
    summary: &mut QuantSummary,
) -> Result<Vec<Target>, QuantError> {
    let g = graph::graph_mut(model);
    let mut names = Names::of(g);
    let mut quantized_inputs: HashMap<String, (String, String, String)> = HashMap::new();
    let mut rest = Vec::new();
    let mut new_nodes = Vec::new();
    for t in targets {
        if !handles(g, t) {
            rest.push(t.clone());
            continue;
        }
        let node_err = |reason: String| t.error(origin, reason);
        let range = |tensor: &str| -> Result<ActParams, QuantError> {
            let r = ranges
                .get(tensor)
                .ok_or_else(|| QuantError::NoRange { origin: origin.to_string(), tensor: tensor.to_string() })?;
            math::activation_params(r.min, r.max, ActType::U8)
                .map_err(|e| node_err(format!("activation `{tensor}`: {e}")))
        };
        let pos = t.position(g, origin)?;
        let n = g.node[pos].clone();
        let x = n.input[0].clone();
        let y = n.output.first().cloned().ok_or_else(|| node_err("the node has no output".into()))?;
        let (xp, yp) = (range(&x)?, range(&y)?);

        // The input, quantized once per tensor.
        if !quantized_inputs.contains_key(&x) {
            let s = names.fresh(&format!("{x}_scale"));
            let zp = names.fresh(&format!("{x}_zero_point"));
            let q = names.fresh(&format!("{x}_quantized"));
            g.initializer.push(make_f32(&s, &[], &[xp.scale]));
            g.initializer.push(make_u8(&zp, &[], &[xp.zero_point as u8]));
            new_nodes.push(node(
                "QuantizeLinear",
                &names.fresh(&format!("{x}_QuantizeLinear")),
                &[&x, &s, &zp],
                &[&q],
                vec![],
            ));
            record_activation(summary, &x, &ranges[&x], &xp);
            quantized_inputs.insert(x.clone(), (q, s, zp));
        }
        let (xq, xs, xzp) = quantized_inputs[&x].clone();

        // The weight, per output channel (Conv: axis 0; MatMul [K, N]: axis 1).
        let w = t.float_weight(g, origin)?;
        let pc = math::quantize_per_channel_i8(&w.data, &w.shape, t.channel_axis)
            .map_err(|e| node_err(format!("weight `{}`: {e}", t.weight)))?;
        let channels = pc.scales.len();
        let wq = names.fresh(&format!("{}_quantized", t.weight));
        let ws = names.fresh(&format!("{}_scale", t.weight));
        let wzp = names.fresh(&format!("{}_zero_point", t.weight));
        g.initializer.push(make_i8(&wq, &w.shape, &pc.values));
        g.initializer.push(make_f32(&ws, &[channels], &pc.scales));
        if t.op == "Conv" {
            g.initializer.push(make_i8(&wzp, &[], &[0]));
        } else {
            g.initializer.push(make_i8(&wzp, &[channels], &vec![0; channels]));
        }
        summary.weights.push(QuantizedWeight {
            node: t.node.clone(),
            op: t.op.clone(),
            weight: t.weight.clone(),
            format: "int8/channel".into(),
            elements: w.len(),
            packed: None,
        });

        // The output, in uint8, and its dequantization under the original name.
        let ys = names.fresh(&format!("{y}_scale"));
        let yzp = names.fresh(&format!("{y}_zero_point"));
        let yq = names.fresh(&format!("{y}_quantized"));
        g.initializer.push(make_f32(&ys, &[], &[yp.scale]));
        g.initializer.push(make_u8(&yzp, &[], &[yp.zero_point as u8]));
        record_activation(summary, &y, &ranges[&y], &yp);

        let mut inputs = vec![xq, xs, xzp, wq, ws, wzp, ys.clone(), yzp.clone()];
        let op = if t.op == "Conv" {
            if let Some(b) = n.input.get(2).filter(|b| !b.is_empty()) {
                let bias = graph::initializer(g, b)
                    .and_then(graph::tensor_f32)
                    .ok_or_else(|| node_err(format!("bias `{b}` is not a constant float initializer")))?;
                if bias.len() != channels {
                    return Err(node_err(format!("bias `{b}` has {} values for {channels} channels", bias.len())));
                }
                let q: Vec<i32> = bias
                    .data
                    .iter()
                    .zip(&pc.scales)
                    .map(|(&v, &s)| {
                        let q = math::round_half_even(v / (xp.scale * s));
                        q.clamp(i32::MIN as f32, i32::MAX as f32) as i32
                    })
                    .collect();
                let bq = names.fresh(&format!("{b}_quantized"));
                g.initializer.push(make_i32(&bq, &[channels], &q));
                inputs.push(bq);
            }
            "QLinearConv"
        } else {
            if n.input.len() > 2 {
                return Err(node_err("MatMul with more than two inputs".into()));
            }
            "QLinearMatMul"
        };
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        // Conv attributes (kernel, pads, strides, dilations, group) carry over unchanged.
        let attrs = if op == "QLinearConv" { n.attribute.clone() } else { vec![] };
        new_nodes.push(node(op, &names.fresh(&format!("{}_{op}", t.node)), &refs, &[&yq], attrs));
        new_nodes.push(node(
            "DequantizeLinear",
            &names.fresh(&format!("{y}_DequantizeLinear")),
            &[&yq, &ys, &yzp],
            &[&y],
            vec![],
        ));
        g.node.remove(pos);
    }
    g.node.extend(new_nodes);
    Ok(rest)
}

fn record_activation(summary: &mut QuantSummary, tensor: &str, r: &TensorRange, p: &ActParams) {
    if !summary.activations.iter().any(|a| a.tensor == tensor) {
        summary.activations.push(QuantizedActivation {
            tensor: tensor.to_string(),
            min: r.min,
            max: r.max,
            scale: p.scale,
            zero_point: p.zero_point,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::testutil::{max_abs_diff, model, ops, random_f32, run};
    use crate::graph::{attr_int, attr_ints};
    use crate::quantize::{Int8Form, QuantOptions, Scheme};
    use tract_onnx::prelude::*;

    /// x → Conv(3→4, 3×3, bias) → c, x → depthwise Conv (group 3) → d, y → MatMul([16, 8]) → o.
    fn small() -> pb::ModelProto {
        let w = random_f32(&[4, 3, 3, 3], 1);
        let dw = random_f32(&[3, 1, 3, 3], 2);
        let mw = random_f32(&[16, 8], 3);
        let f = |t: &Tensor| t.to_plain_array_view::<f32>().unwrap().iter().copied().collect::<Vec<_>>();
        let pads = attr_ints("pads", &[1, 1, 1, 1]);
        model(
            13,
            vec![
                node("Conv", "conv", &["x", "w", "b"], &["c"], vec![pads.clone()]),
                node("Conv", "dwconv", &["x", "dw"], &["d"], vec![pads, attr_int("group", 3)]),
                node("MatMul", "mm", &["y", "mw"], &["o"], vec![]),
            ],
            vec![
                make_f32("w", &[4, 3, 3, 3], &f(&w)),
                make_f32("b", &[4], &[0.5, -0.25, 0.0, 1.0]),
                make_f32("dw", &[3, 1, 3, 3], &f(&dw)),
                make_f32("mw", &[16, 8], &f(&mw)),
            ],
            &[("x", &[1, 3, 8, 8]), ("y", &[2, 16])],
            &["c", "d", "o"],
        )
    }

    #[test]
    fn qlinear_and_qdq_forms_match_float_within_a_few_steps() {
        let m = small();
        let inputs = [random_f32(&[1, 3, 8, 8], 4), random_f32(&[2, 16], 5)];
        let float = run(&m, &inputs).unwrap();
        // Ranges: the inputs' [-1, 1) and the float outputs' observed min/max.
        let mut ranges: BTreeMap<String, TensorRange> =
            ["x", "y"].iter().map(|n| (n.to_string(), TensorRange { min: -1.0, max: 1.0 })).collect();
        for (name, t) in ["c", "d", "o"].iter().zip(&float) {
            let v: Vec<f32> = t.to_plain_array_view::<f32>().unwrap().iter().copied().collect();
            let (min, max) = v.iter().fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            ranges.insert(name.to_string(), TensorRange { min, max });
        }
        for form in [Int8Form::QLinear, Int8Form::Qdq] {
            let mut q = m.clone();
            let opts =
                QuantOptions { scheme: Scheme::Int8, int8_form: form, block: 32, keep_float: Default::default() };
            let summary = crate::quantize::apply(&mut q, "test", &opts, &ranges).unwrap();
            assert_eq!(summary.weights.len(), 3, "{form}");
            let ops = ops(&q);
            let has = |op: &str| ops.iter().any(|o| o == op);
            assert_eq!(has("QLinearConv") && has("QLinearMatMul"), form == Int8Form::QLinear, "{form}: {ops:?}");
            // The depthwise conv keeps the QDQ form in both.
            assert!(has("Conv"), "{form}: {ops:?}");
            let out = run(&q, &inputs).unwrap();
            for ((name, a), b) in ["c", "d", "o"].iter().zip(&float).zip(&out) {
                let r = &ranges[*name];
                // Input, weight and (QLinear) output rounding: a few output steps at most.
                let step = (r.max - r.min) / 255.0;
                let d = max_abs_diff(a, b);
                assert!(d <= 4.0 * step.max(0.02), "{form} {name}: max abs diff {d}, output step {step}");
            }
        }
    }

    #[test]
    fn conv_bias_is_int32_at_input_times_weight_scale() {
        let mut m = small();
        let ranges: BTreeMap<String, TensorRange> =
            ["x", "y", "c", "d", "o"].iter().map(|n| (n.to_string(), TensorRange { min: -2.0, max: 2.0 })).collect();
        let opts = QuantOptions {
            scheme: Scheme::Int8,
            int8_form: Int8Form::QLinear,
            block: 32,
            keep_float: Default::default(),
        };
        crate::quantize::apply(&mut m, "test", &opts, &ranges).unwrap();
        let g = graph::graph(&m);
        let conv = g.node.iter().find(|n| n.op_type == "QLinearConv").unwrap();
        assert_eq!(conv.input.len(), 9);
        let scalar = |name: &str| graph::tensor_f32(graph::initializer(g, name).unwrap()).unwrap().data;
        let (xs, ws) = (scalar(&conv.input[1])[0], scalar(&conv.input[4]));
        let bias = graph::initializer(g, &conv.input[8]).unwrap();
        assert_eq!(bias.data_type, pb::tensor_proto::DataType::Int32 as i32);
        let q: Vec<i32> = if bias.int32_data.is_empty() {
            bias.raw_data.chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect()
        } else {
            bias.int32_data.clone()
        };
        for (c, (&b, &s)) in [0.5f32, -0.25, 0.0, 1.0].iter().zip(&ws).enumerate() {
            assert!((q[c] as f32 * xs * s - b).abs() <= xs * s, "channel {c}: {} vs {b}", q[c] as f32 * xs * s);
        }
    }
}
