//! The `int8` scheme as a QDQ graph: each quantized node reads its weight through a per-channel
//! `DequantizeLinear` (symmetric int8, one scale per output channel, zero points 0) and each float activation
//! input through a `QuantizeLinear` → `DequantizeLinear` pair with the calibrated per-tensor
//! uint8 scale and zero point. Biases stay f32. A weight or activation shared by several nodes is
//! quantized once.

use std::collections::{BTreeMap, HashMap};

use edgeqa_format::manifest::PackedWeight;
use edgeqa_format::onnx::pb;

use super::math::{self, ActType};
use super::{QuantError, QuantSummary, QuantizedActivation, QuantizedWeight, Target};
use crate::calibrate::TensorRange;
use crate::graph::{self, Names, attr_int, make_f32, make_i8, make_u8, node};

/// Rewrites `targets` of a graph (opset ≥ 13: per-channel `DequantizeLinear`).
pub fn apply(
    model: &mut pb::ModelProto,
    origin: &str,
    targets: &[Target],
    ranges: &BTreeMap<String, TensorRange>,
    summary: &mut QuantSummary,
) -> Result<(), QuantError> {
    let g = graph::graph_mut(model);
    let mut names = Names::of(g);
    let mut weights: HashMap<String, String> = HashMap::new();
    let mut acts: HashMap<String, String> = HashMap::new();
    // One all-zero int8 zero point per channel count, shared by every weight of that count.
    let mut zero_points: HashMap<usize, String> = HashMap::new();
    let mut new_nodes = Vec::new();
    for t in targets {
        let node_err = |reason: String| t.error(origin, reason);
        let pos = t.position(g, origin)?;
        if !weights.contains_key(&t.weight) {
            let w = t.float_weight(g, origin)?;
            let pc = math::quantize_per_channel_i8(&w.data, &w.shape, t.channel_axis)
                .map_err(|e| node_err(format!("weight `{}`: {e}", t.weight)))?;
            let q = names.fresh(&format!("{}_quantized", t.weight));
            let s = names.fresh(&format!("{}_scale", t.weight));
            let out = names.fresh(&format!("{}_dequantized", t.weight));
            g.initializer.push(make_i8(&q, &w.shape, &pc.values));
            g.initializer.push(make_f32(&s, &[pc.scales.len()], &pc.scales));
            // Explicit zeros (symmetric): ONNX Runtime's QDQ fusions want the zero point present.
            let channels = pc.scales.len();
            let zp = zero_points
                .entry(channels)
                .or_insert_with(|| {
                    let zp = names.fresh(&format!("weight_zero_point_{channels}"));
                    g.initializer.push(make_i8(&zp, &[channels], &vec![0; channels]));
                    zp
                })
                .clone();
            let dq = names.fresh(&format!("{}_DequantizeLinear", t.weight));
            new_nodes.push(node(
                "DequantizeLinear",
                &dq,
                &[&q, &s, &zp],
                &[&out],
                vec![attr_int("axis", t.channel_axis as i64)],
            ));
            summary.weights.push(QuantizedWeight {
                node: t.node.clone(),
                op: t.op.clone(),
                weight: t.weight.clone(),
                format: "int8/channel".into(),
                elements: w.len(),
                packed: Some(PackedWeight {
                    value: out.clone(),
                    data: q.clone(),
                    scales: s.clone(),
                    shape: w.shape.clone(),
                    axis: t.channel_axis,
                }),
            });
            weights.insert(t.weight.clone(), out);
        }
        g.node[pos].input[t.weight_input] = weights[&t.weight].clone();
        for (ix, act) in &t.activations {
            if !acts.contains_key(act) {
                let r = ranges
                    .get(act)
                    .ok_or_else(|| QuantError::NoRange { origin: origin.to_string(), tensor: act.clone() })?;
                let p = math::activation_params(r.min, r.max, ActType::U8)
                    .map_err(|e| node_err(format!("activation `{act}`: {e}")))?;
                let s = names.fresh(&format!("{act}_scale"));
                let zp = names.fresh(&format!("{act}_zero_point"));
                let q = names.fresh(&format!("{act}_quantized"));
                let dq = names.fresh(&format!("{act}_dequantized"));
                g.initializer.push(make_f32(&s, &[], &[p.scale]));
                g.initializer.push(make_u8(&zp, &[], &[p.zero_point as u8]));
                let qn = names.fresh(&format!("{act}_QuantizeLinear"));
                let dqn = names.fresh(&format!("{act}_DequantizeLinear"));
                new_nodes.push(node("QuantizeLinear", &qn, &[act, &s, &zp], &[&q], vec![]));
                new_nodes.push(node("DequantizeLinear", &dqn, &[&q, &s, &zp], &[&dq], vec![]));
                summary.activations.push(QuantizedActivation {
                    tensor: act.clone(),
                    min: r.min,
                    max: r.max,
                    scale: p.scale,
                    zero_point: p.zero_point,
                });
                acts.insert(act.clone(), dq);
            }
            g.node[pos].input[*ix] = acts[act].clone();
        }
    }
    g.node.extend(new_nodes);
    Ok(())
}
