//! Rewrites around faults of tract 0.23.9 (all seen upstream too), applied to a stage's ONNX
//! before tract parses it, plus a net for panics. One function per fault; each can be deleted
//! once the tract version edgeqa uses is fixed (the tests in `tests/tract_faults.rs` say when).
//!
//! - [`requantize_exactly`]: `DequantizeLinear → Softmax → QuantizeLinear → DequantizeLinear`
//!   gives 1.0 everywhere.
//! - [`split_negative_pads`]: `Pad` with a negative (cropping) pad panics at run time.
//! - [`drop_unused_pad_value`]: a reflect or edge `Pad` given a `constant_value` pads with it.
//! - [`check_layer_norm_axis`]: a `LayerNormalization` whose axis does not fit its input's rank
//!   gives its bias (silently) or, with its `Mean`/`InvStdDev` outputs, never finishes loading.
//! - [`catch_panic`]: `Gather` with an out-of-range index panics; the indices that reach a
//!   `Gather` from a stage input are checked before running by `backend::checked` (for every
//!   backend), and any panic left is caught here and becomes an error.

use std::collections::{HashMap, HashSet};

use tract_onnx::prelude::{DatumType, Tensor};

use crate::onnx::{self as onnx_pb, pb};

/// Single-input ops that compute each output element from the input element at the same place.
/// tract treats a chain of these between a `DequantizeLinear` and a `QuantizeLinear` as one
/// function of the 8-bit input (a lookup table), which is right for them.
const ELEMENTWISE: &[&str] = &[
    "Abs",
    "Acos",
    "Acosh",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "Cast",
    "Ceil",
    "Celu",
    "Clip",
    "Cos",
    "Cosh",
    "Elu",
    "Erf",
    "Exp",
    "Floor",
    "Gelu",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "IsInf",
    "IsNaN",
    "LeakyRelu",
    "Log",
    "Mish",
    "Neg",
    "Not",
    "Reciprocal",
    "Relu",
    "Round",
    "Selu",
    "Shrink",
    "Sigmoid",
    "Sign",
    "Sin",
    "Sinh",
    "Softplus",
    "Softsign",
    "Sqrt",
    "Tan",
    "Tanh",
    "ThresholdedRelu",
];

/// Ops tract also folds into that lookup table although each output depends on a whole axis
/// (tract gives them an element-wise axes mapping). Found by `tests/tract_faults.rs`, which runs
/// every single-input op of tract's ONNX front end between a `DequantizeLinear` and a
/// `QuantizeLinear` against the float result.
pub const FOLDED_WRONGLY: &[&str] = &["Softmax", "LogSoftmax"];

/// A constant of the graph (initializer or `Constant` node) by name, as a tract tensor.
struct Constants<'g> {
    protos: HashMap<&'g str, &'g pb::TensorProto>,
    attrs: HashMap<&'g str, &'g pb::AttributeProto>,
}

impl<'g> Constants<'g> {
    fn new(g: &'g pb::GraphProto) -> Constants<'g> {
        let mut protos: HashMap<&str, &pb::TensorProto> = g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut attrs = HashMap::new();
        for n in g.node.iter().filter(|n| n.op_type == "Constant") {
            let (Some(o), Some(a)) = (n.output.first(), n.attribute.first()) else { continue };
            match (&a.t, a.name.as_str()) {
                (Some(t), "value") => {
                    protos.insert(o, t);
                }
                (_, "value_int" | "value_ints" | "value_float" | "value_floats") => {
                    attrs.insert(o.as_str(), a);
                }
                _ => {}
            }
        }
        Constants { protos, attrs }
    }

    fn contains(&self, name: &str) -> bool {
        self.protos.contains_key(name) || self.attrs.contains_key(name)
    }

    fn get(&self, name: &str) -> Option<Tensor> {
        if let Some(t) = self.protos.get(name) {
            let provider = tract_onnx::data_resolver::default();
            return tract_onnx::tensor::load_tensor(&*provider, t, None).ok();
        }
        let a = self.attrs.get(name)?;
        Some(match a.name.as_str() {
            "value_int" => tract_onnx::prelude::tensor0(a.i),
            "value_ints" => tract_onnx::prelude::tensor1(&a.ints),
            "value_float" => tract_onnx::prelude::tensor0(a.f),
            _ => tract_onnx::prelude::tensor1(&a.floats),
        })
    }

    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        let t = self.get(name)?;
        let t = t.cast_to::<i64>().ok()?;
        Some(t.to_plain_array_view::<i64>().ok()?.iter().copied().collect())
    }
}

pub(super) fn node_label(n: &pb::NodeProto) -> String {
    if n.name.is_empty() { n.output.first().cloned().unwrap_or_default() } else { n.name.clone() }
}

pub(super) fn default_domain(n: &pb::NodeProto) -> bool {
    n.domain.is_empty() || n.domain == "ai.onnx"
}

fn scalar_f32(name: String, v: f32) -> pb::TensorProto {
    pb::TensorProto {
        name,
        data_type: pb::tensor_proto::DataType::Float as i32,
        raw_data: v.to_le_bytes().to_vec(),
        ..Default::default()
    }
}

fn ints_i64(name: String, v: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name,
        dims: vec![v.len() as i64],
        data_type: pb::tensor_proto::DataType::Int64 as i32,
        raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub(super) fn node(
    op: &str,
    name: String,
    inputs: &[&str],
    output: &str,
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name,
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        attribute,
        ..Default::default()
    }
}

pub(super) fn attr_int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn attr_ints(name: &str, ints: Vec<i64>) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints,
        ..Default::default()
    }
}

/// tract 0.23.9, fault: `DequantizeLinear → Softmax → QuantizeLinear(uint8, scale 1/255, zp 0)
/// → DequantizeLinear` (what ONNX Runtime's `quantize_static` writes around attention softmaxes)
/// gives 1.0 everywhere, with no error.
///
/// Cause: tract's `DequantizeLinearF32::declutter` walks from a `DequantizeLinear` of 8-bit
/// values through single-successor ops whose axes mapping is element-wise to a `QuantizeLinear`
/// and replaces the chain with a 256-entry lookup table, evaluating the chain on each value
/// *alone*. Softmax and LogSoftmax have such a mapping but mix a whole axis: alone, every value's
/// softmax is 1. Any chain crossing one of [`FOLDED_WRONGLY`] is hit, whatever the ops around it.
///
/// Rewrite: each `QuantizeLinear` that such a walk reaches becomes the same arithmetic in float,
/// `Cast(Clip(Round(x / scale) + zero_point, lo, hi))` to uint8/int8 (ONNX's definition; `Round`
/// is half-to-even, as in tract), so no lookup table can swallow the softmax. Its output keeps
/// its name and type, so what reads it is untouched. Returns the names of the rewritten nodes;
/// an affected node that cannot be rewritten (scale or zero point not a constant scalar, opset
/// < 11) is an error rather than a wrong result.
pub fn requantize_exactly(model: &mut pb::ModelProto) -> Result<Vec<String>, FixError> {
    let opset = onnx_pb::opset(model).unwrap_or(1);
    let Some(g) = model.graph.as_mut() else { return Ok(vec![]) };
    let mut readers: HashMap<&str, usize> = HashMap::new();
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        for x in n.input.iter().filter(|x| !x.is_empty()) {
            *readers.entry(x).or_default() += 1;
        }
        for o in &n.output {
            producer.insert(o, i);
        }
    }
    let consts = Constants::new(g);
    // Walks back from each QuantizeLinear the way tract walks forward from a DequantizeLinear.
    let mut targets: Vec<(usize, String)> = Vec::new();
    for (qi, q) in g.node.iter().enumerate() {
        if q.op_type != "QuantizeLinear" || !default_domain(q) {
            continue;
        }
        let Some(mut name) = q.input.first().map(String::as_str) else { continue };
        let mut crossed: Option<String> = None;
        while let Some(&pi) = producer.get(name) {
            let p = &g.node[pi];
            if readers.get(name) != Some(&1) || !default_domain(p) {
                break;
            }
            if p.op_type == "DequantizeLinear" {
                if let Some(op) = crossed.take() {
                    targets.push((qi, op));
                }
                break;
            }
            let data: Vec<&String> = p.input.iter().filter(|x| !x.is_empty() && !consts.contains(x)).collect();
            if p.output.len() != 1 || data.len() != 1 || p.input.first() != Some(data[0]) {
                break;
            }
            if FOLDED_WRONGLY.contains(&p.op_type.as_str()) {
                crossed = Some(format!("{} `{}`", p.op_type, node_label(p)));
            } else if !ELEMENTWISE.contains(&p.op_type.as_str()) {
                break;
            }
            name = data[0];
        }
    }
    let mut replace: HashMap<usize, Vec<pb::NodeProto>> = HashMap::new();
    let mut inits = Vec::new();
    let mut done = Vec::new();
    for (qi, via) in targets {
        let q = &g.node[qi];
        let label = node_label(q);
        let fail = |why: &str| FixError::Requantize { node: label.clone(), via: via.clone(), why: why.to_string() };
        if opset < 11 {
            return Err(fail(&format!("opset {opset} has no Round; re-export with opset 11 or later")));
        }
        let scalar = |name: &str| -> Option<Tensor> { consts.get(name).filter(|t| t.len() == 1) };
        let scale = q.input.get(1).and_then(|s| scalar(s)).ok_or_else(|| fail("the scale is not a constant scalar"))?;
        if scale.datum_type() != DatumType::F32 {
            return Err(fail("the scale is not f32"));
        }
        let (zp, dt) = match q.input.get(2).filter(|s| !s.is_empty()) {
            Some(z) => {
                let t = scalar(z).ok_or_else(|| fail("the zero point is not a constant scalar"))?;
                let dt = t.datum_type().unquantized();
                let v = t.cast_to_scalar::<i64>().map_err(|e| fail(&e.to_string()))?;
                (v, dt)
            }
            None => {
                let to = q.attribute.iter().find(|a| a.name == "output_dtype").map_or(0, |a| a.i);
                let dt = if to == pb::tensor_proto::DataType::Int8 as i64 { DatumType::I8 } else { DatumType::U8 };
                (0, dt)
            }
        };
        let (to, lo, hi) = match dt {
            DatumType::U8 => (pb::tensor_proto::DataType::Uint8, 0.0, 255.0),
            DatumType::I8 => (pb::tensor_proto::DataType::Int8, -128.0, 127.0),
            _ => continue, // tract folds only 8-bit quantization into a table
        };
        let x = q.input[0].as_str();
        let s = q.input[1].as_str();
        let out = q.output[0].as_str();
        let base = format!("{out}.edgeqa_requantize");
        let mut nodes = vec![
            node("Div", format!("{label}.div"), &[x, s], &format!("{base}.div"), vec![]),
            node("Round", format!("{label}.round"), &[&format!("{base}.div")], &format!("{base}.round"), vec![]),
        ];
        let mut last = format!("{base}.round");
        if zp != 0 {
            inits.push(scalar_f32(format!("{base}.zero_point"), zp as f32));
            nodes.push(node(
                "Add",
                format!("{label}.add_zero_point"),
                &[&last, &format!("{base}.zero_point")],
                &format!("{base}.shifted"),
                vec![],
            ));
            last = format!("{base}.shifted");
        }
        inits.push(scalar_f32(format!("{base}.lo"), lo));
        inits.push(scalar_f32(format!("{base}.hi"), hi));
        nodes.push(node(
            "Clip",
            format!("{label}.clip"),
            &[&last, &format!("{base}.lo"), &format!("{base}.hi")],
            &format!("{base}.clipped"),
            vec![],
        ));
        nodes.push(node("Cast", label.clone(), &[&format!("{base}.clipped")], out, vec![attr_int("to", to as i64)]));
        replace.insert(qi, nodes);
        done.push(label);
    }
    splice(g, replace);
    g.initializer.extend(inits);
    Ok(done)
}

/// Replaces the nodes at the given positions by node sequences, keeping the order.
pub(super) fn splice(g: &mut pb::GraphProto, mut replace: HashMap<usize, Vec<pb::NodeProto>>) {
    if replace.is_empty() {
        return;
    }
    let old = std::mem::take(&mut g.node);
    for (i, n) in old.into_iter().enumerate() {
        match replace.remove(&i) {
            Some(nodes) => g.node.extend(nodes),
            None => g.node.push(n),
        }
    }
}

/// tract 0.23.9, fault: `Pad` with a negative (cropping) pad loads but panics at run time.
///
/// Rewrite: the negative parts become a `Slice` (a crop needs no shapes: ends count from the
/// end) and the rest a `Pad` of the cropped tensor — crop first, as ONNX Runtime does, so
/// reflect/edge/wrap padding reads the cropped tensor. Pads that are not constants cannot be
/// checked here (a panic is then caught by [`catch_panic`]). Returns the rewritten nodes.
pub fn split_negative_pads(model: &mut pb::ModelProto) -> Result<Vec<String>, FixError> {
    let opset = onnx_pb::opset(model).unwrap_or(1);
    let Some(g) = model.graph.as_mut() else { return Ok(vec![]) };
    let consts = Constants::new(g);
    let names: HashSet<String> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().cloned())
        .chain(g.initializer.iter().map(|t| t.name.clone()))
        .collect();
    let mut replace = HashMap::new();
    let mut inits = Vec::new();
    let mut done = Vec::new();
    for (i, n) in g.node.iter().enumerate() {
        if n.op_type != "Pad" || !default_domain(n) || n.input.is_empty() || n.output.len() != 1 {
            continue;
        }
        let label = node_label(n);
        let pads = if opset >= 11 {
            n.input.get(1).and_then(|p| consts.ints(p))
        } else {
            n.attribute.iter().find(|a| a.name == "pads" || a.name == "paddings").map(|a| a.ints.clone())
        };
        let Some(pads) = pads else { continue };
        if pads.iter().all(|&p| p >= 0) || pads.len() % 2 != 0 {
            continue;
        }
        let r = pads.len() / 2;
        let axes: Vec<i64> = match n.input.get(3).filter(|a| !a.is_empty()) {
            Some(a) => consts.ints(a).ok_or_else(|| FixError::NegativePad {
                node: label.clone(),
                why: "negative pads with axes that are not a constant; make `axes` a constant".into(),
            })?,
            None => (0..r as i64).collect(),
        };
        if axes.len() != r {
            return Err(FixError::NegativePad {
                node: label.clone(),
                why: format!("{} pads for {} axes", pads.len(), axes.len()),
            });
        }
        let starts: Vec<i64> = pads[..r].iter().map(|&p| (-p).max(0)).collect();
        let ends: Vec<i64> = pads[r..].iter().map(|&p| if p < 0 { p } else { i64::MAX }).collect();
        let kept: Vec<i64> = pads.iter().map(|&p| p.max(0)).collect();
        let mut base = format!("{}.edgeqa_crop", n.output[0]);
        while names.contains(&base) {
            base.push('_');
        }
        let x = n.input[0].as_str();
        let pad_needed = kept.iter().any(|&p| p > 0);
        let cropped = if pad_needed { base.clone() } else { n.output[0].clone() };
        let slice_name = if pad_needed { format!("{label}.crop") } else { label.clone() };
        let slice = if opset >= 10 {
            inits.push(ints_i64(format!("{base}.starts"), &starts));
            inits.push(ints_i64(format!("{base}.ends"), &ends));
            inits.push(ints_i64(format!("{base}.axes"), &axes));
            let (s, e, a) = (format!("{base}.starts"), format!("{base}.ends"), format!("{base}.axes"));
            node("Slice", slice_name, &[x, &s, &e, &a], &cropped, vec![])
        } else {
            let attrs = vec![attr_ints("starts", starts), attr_ints("ends", ends), attr_ints("axes", axes)];
            node("Slice", slice_name, &[x], &cropped, attrs)
        };
        let mut nodes = vec![slice];
        if pad_needed {
            let mut pad = n.clone();
            pad.input[0] = cropped.clone();
            if opset >= 11 {
                inits.push(ints_i64(format!("{base}.pads"), &kept));
                pad.input[1] = format!("{base}.pads");
            } else {
                for a in pad.attribute.iter_mut().filter(|a| a.name == "pads" || a.name == "paddings") {
                    a.ints = kept.clone();
                }
            }
            nodes.push(pad);
        }
        replace.insert(i, nodes);
        done.push(label);
    }
    splice(g, replace);
    g.initializer.extend(inits);
    Ok(done)
}

/// tract 0.23.9, fault: a `LayerNormalization` whose `axis` does not fit its input's rank is not
/// refused. tract normalises over `axis..rank`, which is empty for an axis past the rank, so the
/// node gives its bias; an axis below `-rank` wraps to a huge `usize`, and with the `Mean` or
/// `InvStdDev` output present tract's shape inference then loops (allocating) without end.
///
/// Rewrite: the normalised input first goes through a one-input `Concat` on the same axis, an
/// identity that tract checks against the rank (and removes when it optimises). Its analysis
/// runs before the `LayerNormalization`'s (it comes first), so a bad axis fails loading with
/// tract's message. Returns the rewritten nodes.
pub fn check_layer_norm_axis(model: &mut pb::ModelProto) -> Vec<String> {
    let Some(g) = model.graph.as_mut() else { return vec![] };
    let mut names: HashSet<String> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().cloned())
        .chain(g.initializer.iter().map(|t| t.name.clone()))
        .chain(g.input.iter().map(|v| v.name.clone()))
        .collect();
    let mut replace = HashMap::new();
    let mut done = Vec::new();
    for (i, n) in g.node.iter().enumerate() {
        if n.op_type != "LayerNormalization" || !default_domain(n) || n.input.first().is_none_or(|x| x.is_empty()) {
            continue;
        }
        let axis = n.attribute.iter().find(|a| a.name == "axis").map_or(-1, |a| a.i);
        let label = node_label(n);
        let mut checked = format!("{}.edgeqa_axis_checked", n.input[0]);
        while names.contains(&checked) {
            checked.push('_');
        }
        names.insert(checked.clone());
        let guard =
            node("Concat", format!("{label}.axis_check"), &[&n.input[0]], &checked, vec![attr_int("axis", axis)]);
        let mut ln = n.clone();
        ln.input[0] = checked;
        replace.insert(i, vec![guard, ln]);
        done.push(label);
    }
    splice(g, replace);
    done
}

/// tract 0.23.9, fault: a `Pad` (opset 11 or later) in `reflect` or `edge` mode that is given a
/// `constant_value` input pads with that constant instead (tract picks constant mode whenever the
/// value is there; ONNX ignores it outside `constant` mode).
///
/// Rewrite: such a `Pad` loses its `constant_value` input (left empty, so `axes` keeps its
/// place). Returns the rewritten nodes.
pub fn drop_unused_pad_value(model: &mut pb::ModelProto) -> Vec<String> {
    if onnx_pb::opset(model).unwrap_or(1) < 11 {
        return vec![];
    }
    let Some(g) = model.graph.as_mut() else { return vec![] };
    let mut done = Vec::new();
    for n in g.node.iter_mut().filter(|n| n.op_type == "Pad" && default_domain(n)) {
        let mode = n.attribute.iter().find(|a| a.name == "mode").map(|a| a.s.as_slice()).unwrap_or(b"constant");
        if mode == b"constant" || n.input.get(2).is_none_or(|v| v.is_empty()) {
            continue;
        }
        n.input[2].clear();
        while n.input.last().is_some_and(|i| i.is_empty()) {
            n.input.pop();
        }
        done.push(node_label(n));
    }
    done
}

/// tract 0.23.9, fault: some bad inputs panic inside tract instead of failing — `Gather` with an
/// out-of-range index (a token id past the vocabulary) among them. [`catch_panic`] turns such a
/// panic into an error carrying its message, so a stage fails with a message instead of taking
/// the process down. tract's plans keep no state between runs, so the stage stays usable.
pub use edgeqa_format::tract::catch_panic;

/// A graph tract is known to compute wrongly that cannot be rewritten for it: refused rather
/// than run to a wrong answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FixError {
    /// A `QuantizeLinear` after an op tract folds wrongly (see [`requantize_exactly`]).
    #[error(
        "QuantizeLinear `{node}` after {via}: tract 0.23.9 computes this pattern wrongly and edgeqa cannot \
         rewrite it ({why}); run the stage on the wgpu backend, or quantize the graph without Q/DQ around {via}"
    )]
    Requantize { node: String, via: String, why: String },
    /// A `Pad` with negative pads that cannot be split (see [`split_negative_pads`]).
    #[error("Pad `{node}`: {why}")]
    NegativePad { node: String, why: String },
}

/// Applies every rewrite to a stage's graph before tract parses it; logs what it changed.
pub fn apply(model: &mut pb::ModelProto, origin: &str) -> Result<(), FixError> {
    let requantized = requantize_exactly(model)?;
    if !requantized.is_empty() {
        log::debug!("{origin}: QuantizeLinear rewritten in float for tract: {}", requantized.join(", "));
    }
    let valueless = drop_unused_pad_value(model);
    if !valueless.is_empty() {
        log::debug!("{origin}: reflect/edge Pad without its unused constant value for tract: {}", valueless.join(", "));
    }
    let guarded = check_layer_norm_axis(model);
    if !guarded.is_empty() {
        log::debug!("{origin}: LayerNormalization axis checked against the rank for tract: {}", guarded.join(", "));
    }
    let cropped = split_negative_pads(model)?;
    if !cropped.is_empty() {
        log::debug!("{origin}: negative pads split into Slice + Pad for tract: {}", cropped.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
        node(op, format!("{op}_{output}"), inputs, output, vec![])
    }

    fn model(opset: i64, nodes: Vec<pb::NodeProto>, inits: Vec<pb::TensorProto>) -> pb::ModelProto {
        pb::ModelProto {
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: opset }],
            graph: Some(pb::GraphProto { node: nodes, initializer: inits, ..Default::default() }),
            ..Default::default()
        }
    }

    fn qdq_around(op: &str, scale_is_constant: bool, opset: i64) -> pb::ModelProto {
        let mut inits = vec![scalar_f32("s".into(), 0.1)];
        if scale_is_constant {
            inits.push(scalar_f32("so".into(), 1.0 / 255.0));
        }
        let nodes = vec![
            n("DequantizeLinear", &["x", "s"], "xd"),
            n(op, &["xd"], "p"),
            n("QuantizeLinear", &["p", "so"], "pq"),
            n("DequantizeLinear", &["pq", "so"], "y"),
        ];
        model(opset, nodes, inits)
    }

    fn ops(m: &pb::ModelProto) -> Vec<String> {
        m.graph.as_ref().unwrap().node.iter().map(|n| n.op_type.clone()).collect()
    }

    #[test]
    fn a_quantize_after_softmax_becomes_float_arithmetic_keeping_its_output() {
        let mut m = qdq_around("Softmax", true, 13);
        assert_eq!(requantize_exactly(&mut m).unwrap(), vec!["QuantizeLinear_pq".to_string()]);
        assert_eq!(ops(&m), ["DequantizeLinear", "Softmax", "Div", "Round", "Clip", "Cast", "DequantizeLinear"]);
        let cast = &m.graph.as_ref().unwrap().node[5];
        assert_eq!(cast.output, ["pq"]);
        assert_eq!(cast.attribute[0].i, pb::tensor_proto::DataType::Uint8 as i64);
    }

    #[test]
    fn element_wise_chains_keep_their_quantize_linear() {
        let mut m = qdq_around("Relu", true, 13);
        assert!(requantize_exactly(&mut m).unwrap().is_empty());
        assert_eq!(ops(&m), ["DequantizeLinear", "Relu", "QuantizeLinear", "DequantizeLinear"]);
    }

    #[test]
    fn what_cannot_be_rewritten_is_refused_naming_the_node() {
        let e = requantize_exactly(&mut qdq_around("Softmax", false, 13)).unwrap_err().to_string();
        assert!(e.contains("QuantizeLinear `QuantizeLinear_pq` after Softmax `Softmax_p`"), "{e}");
        assert!(e.contains("scale is not a constant scalar"), "{e}");
        let e = requantize_exactly(&mut qdq_around("LogSoftmax", true, 10)).unwrap_err().to_string();
        assert!(e.contains("opset 10 has no Round"), "{e}");
    }

    #[test]
    fn only_negative_pads_are_split() {
        let pad = |pads: &[i64]| model(13, vec![n("Pad", &["x", "pads"], "y")], vec![ints_i64("pads".into(), pads)]);
        let mut m = pad(&[0, 1, 0, 2]);
        assert!(split_negative_pads(&mut m).unwrap().is_empty());
        let mut m = pad(&[0, -1, 0, 2]);
        assert_eq!(split_negative_pads(&mut m).unwrap(), ["Pad_y"]);
        assert_eq!(ops(&m), ["Slice", "Pad"]);
        assert_eq!(m.graph.as_ref().unwrap().node[1].output, ["y"]);
        let mut m = pad(&[0, -1, 0, -2]);
        split_negative_pads(&mut m).unwrap();
        assert_eq!(ops(&m), ["Slice"]);
    }

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(catch_panic(|| 7), Ok(7));
        let e = catch_panic(|| -> i32 { panic!("index {} out of range", 5) }).unwrap_err();
        assert_eq!(e.to_string(), "index 5 out of range");
    }
}
