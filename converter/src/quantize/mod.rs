//! Quantization schemes and the graph rewrites that apply them.
//!
//! [`find_targets`] picks the nodes whose constant weights can be quantized (Conv, ConvTranspose,
//! MatMul, Gemm, Gather); every other node with a sizeable float weight stays in float and is
//! listed with the reason. [`int8`] writes QDQ graphs (per-channel int8 weights, calibrated
//! per-tensor activations); [`weight_only`] writes block-quantized int8/int4 weights that are
//! dequantized inside the graph, activations staying f32.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use edgeqa_format::onnx::pb;
use serde::Serialize;
use thiserror::Error;

use crate::graph::{self, get_int, node_label};

pub mod int8;
pub mod math;
pub mod qlinear;
pub mod weight_only;

/// A quantization scheme (`--scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// No quantization: the graphs are packaged as they are.
    Fp32,
    /// Per-channel int8 weights and calibrated per-tensor uint8 activations (QDQ).
    Int8,
    /// Weight-only int8 with block scales.
    W8,
    /// Weight-only int4 with block scales.
    W4,
}

impl FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fp32" => Ok(Scheme::Fp32),
            "int8" => Ok(Scheme::Int8),
            "w8" => Ok(Scheme::W8),
            "w4" => Ok(Scheme::W4),
            other => Err(format!("unknown scheme `{other}` (choose fp32, int8, w8 or w4)")),
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Fp32 => "fp32",
            Scheme::Int8 => "int8",
            Scheme::W8 => "w8",
            Scheme::W4 => "w4",
        })
    }
}

impl Scheme {
    /// Whether the scheme needs calibrated activation ranges.
    pub fn needs_calibration(self) -> bool {
        self == Scheme::Int8
    }
}

/// How the `int8` scheme is written into the graph (`--int8-form`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Int8Form {
    /// `QuantizeLinear`/`DequantizeLinear` pairs around float operators (ONNX Runtime's
    /// default form; tract folds the weights back to f32 at load). The default: the fastest
    /// int8 form on tract 0.23 (docs/quantization.md).
    #[default]
    Qdq,
    /// `QLinearConv` / `QLinearMatMul` operators, QDQ for the rest.
    QLinear,
}

impl FromStr for Int8Form {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "qdq" => Ok(Int8Form::Qdq),
            "qlinear" => Ok(Int8Form::QLinear),
            other => Err(format!("unknown int8 form `{other}` (choose qdq or qlinear)")),
        }
    }
}

impl fmt::Display for Int8Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Int8Form::Qdq => "qdq",
            Int8Form::QLinear => "qlinear",
        })
    }
}

/// A quantization rewrite failed.
#[derive(Debug, Error)]
pub enum QuantError {
    #[error("{origin}: node `{node}` ({op}): {reason}")]
    Node { origin: String, node: String, op: String, reason: String },
    #[error("{origin}: tensor `{tensor}` has no calibrated range (was it observed?)")]
    NoRange { origin: String, tensor: String },
    #[error("{origin}: {reason}")]
    Graph { origin: String, reason: String },
}

/// A node whose constant weight input can be quantized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Node label (its name, else its first output).
    pub node: String,
    pub op: String,
    /// Index of the weight among the node's inputs.
    pub weight_input: usize,
    /// Initializer name of the weight.
    pub weight: String,
    /// Axis of the weight that indexes output channels (rows for block quantization).
    pub channel_axis: usize,
    /// Float activation inputs (for int8: quantized per tensor), by input index.
    pub activations: Vec<(usize, String)>,
}

impl Target {
    /// An error about this target's node.
    pub(crate) fn error(&self, origin: &str, reason: String) -> QuantError {
        QuantError::Node { origin: origin.to_string(), node: self.node.clone(), op: self.op.clone(), reason }
    }

    /// Index of this target's node in `g`.
    pub(crate) fn position(&self, g: &pb::GraphProto, origin: &str) -> Result<usize, QuantError> {
        g.node
            .iter()
            .position(|n| graph::node_label(n) == self.node)
            .ok_or_else(|| self.error(origin, "the node disappeared while quantizing".into()))
    }

    /// The float weight of this target.
    pub(crate) fn float_weight(&self, g: &pb::GraphProto, origin: &str) -> Result<graph::TensorF32, QuantError> {
        graph::initializer(g, &self.weight)
            .and_then(graph::tensor_f32)
            .ok_or_else(|| self.error(origin, format!("weight `{}` is not a readable float initializer", self.weight)))
    }
}

/// A node kept in float although it holds a float weight, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptFloat {
    pub node: String,
    pub op: String,
    pub reason: String,
}

/// Float initializers smaller than this, or of rank below 2 (biases, norm scales), are not
/// reported when they stay in float: no scheme quantizes them.
pub const REPORT_MIN_ELEMENTS: usize = 256;

fn float_weight(g: &pb::GraphProto, name: &str) -> Option<Vec<usize>> {
    let t = graph::initializer(g, name)?;
    use pb::tensor_proto::DataType as T;
    matches!(T::try_from(t.data_type), Ok(T::Float | T::Float16 | T::Double)).then(|| graph::dims(t))
}

/// Whether `n` is the scaling step of a weight the model already stores as integers
/// (`Mul(Cast(int8 initializer), scale)`, as weight-quantized exports do): not a float weight.
fn dequantizes_int_weight(g: &pb::GraphProto, n: &pb::NodeProto, producers: &HashMap<String, usize>) -> bool {
    use pb::tensor_proto::DataType as T;
    n.op_type == "Mul"
        && n.input.iter().any(|i| {
            producers.get(i).map(|&p| &g.node[p]).is_some_and(|c| {
                c.op_type == "Cast"
                    && c.input.first().and_then(|x| graph::initializer(g, x)).is_some_and(|t| {
                        matches!(T::try_from(t.data_type), Ok(T::Int8 | T::Uint8 | T::Int4 | T::Uint4 | T::Int16))
                    })
            })
        })
}

/// Finds every quantizable node, and every node that keeps a sizeable float weight and why.
pub fn find_targets(g: &pb::GraphProto) -> (Vec<Target>, Vec<KeptFloat>) {
    let inits: BTreeSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let is_act = |name: &str| !name.is_empty() && !inits.contains(name);
    let producers = graph::producers(g);
    let mut targets = Vec::new();
    let mut kept = Vec::new();
    for n in &g.node {
        let label = node_label(n);
        let keep = |reason: String| KeptFloat { node: label.clone(), op: n.op_type.clone(), reason };
        let default_domain = n.domain.is_empty() || n.domain == "ai.onnx";
        let weight = |ix: usize| n.input.get(ix).and_then(|w| float_weight(g, w).map(|d| (w.clone(), d)));
        let acts = |ixs: &[usize]| -> Vec<(usize, String)> {
            ixs.iter().filter_map(|&i| n.input.get(i).filter(|x| is_act(x)).map(|x| (i, x.clone()))).collect()
        };
        let target = |ix: usize, w: String, axis: usize, activations| Target {
            node: label.clone(),
            op: n.op_type.clone(),
            weight_input: ix,
            weight: w,
            channel_axis: axis,
            activations,
        };
        if !default_domain {
            continue;
        }
        match n.op_type.as_str() {
            "Conv" => match weight(1) {
                Some((w, d)) if d.len() >= 3 => targets.push(target(1, w, 0, acts(&[0]))),
                Some(_) => kept.push(keep("weight rank below 3".into())),
                None => kept.push(keep("the weight is not a constant".into())),
            },
            "ConvTranspose" => match weight(1) {
                Some((w, d)) if d.len() >= 3 && get_int(n, "group").unwrap_or(1) == 1 => {
                    targets.push(target(1, w, 1, acts(&[0])))
                }
                Some(_) => kept.push(keep("grouped ConvTranspose weights are kept in float".into())),
                None => kept.push(keep("the weight is not a constant".into())),
            },
            "MatMul" => match (weight(1), weight(0)) {
                (Some((w, d)), _) if d.len() == 2 => targets.push(target(1, w, 1, acts(&[0]))),
                (Some(_), _) => kept.push(keep("batched (rank > 2) MatMul weights are kept in float".into())),
                (None, Some(_)) => kept.push(keep("the constant is the left operand".into())),
                (None, None) => {}
            },
            "Gemm" => {
                let trans_b = get_int(n, "transB").unwrap_or(0) != 0;
                match weight(1) {
                    Some((w, d)) if d.len() == 2 => targets.push(target(1, w, if trans_b { 0 } else { 1 }, acts(&[0]))),
                    Some(_) => kept.push(keep("weight is not a matrix".into())),
                    None if weight(0).is_some() => kept.push(keep("the constant is the left operand".into())),
                    None => {}
                }
            }
            "Gather" => {
                if let Some((w, d)) = weight(0)
                    && d.len() == 2
                    && get_int(n, "axis").unwrap_or(0) == 0
                {
                    targets.push(target(0, w, 0, vec![]));
                } else if weight(0).is_some_and(|(_, d)| d.iter().product::<usize>() >= REPORT_MIN_ELEMENTS) {
                    kept.push(keep("only row gathers (axis 0) from a matrix are quantized".into()));
                }
            }
            _ if dequantizes_int_weight(g, n, &producers) => {}
            _ => {
                let big: Vec<String> = n
                    .input
                    .iter()
                    .filter(|i| {
                        float_weight(g, i)
                            .is_some_and(|d| d.len() >= 2 && d.iter().product::<usize>() >= REPORT_MIN_ELEMENTS)
                    })
                    .cloned()
                    .collect();
                if !big.is_empty() {
                    kept.push(keep(format!(
                        "{} has no quantized form in edgeqa (weights {})",
                        n.op_type,
                        big.join(", ")
                    )));
                }
            }
        }
    }
    (targets, kept)
}

/// What a quantization pass did to one stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QuantSummary {
    /// Quantized weights: node, op, format (e.g. `int8/channel`, `int4/block32`).
    pub weights: Vec<QuantizedWeight>,
    /// Activation tensors quantized per tensor (int8 only).
    pub activations: Vec<QuantizedActivation>,
    /// Nodes kept in float and why (including ones the error budget kept).
    pub kept_float: Vec<KeptFloat>,
}

/// One quantized weight.
#[derive(Debug, Clone, Serialize)]
pub struct QuantizedWeight {
    pub node: String,
    pub op: String,
    pub weight: String,
    pub format: String,
    pub elements: usize,
    /// Where the stored form is (the manifest's record); `None` where the quantized node reads
    /// the integers itself (QLinear).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packed: Option<edgeqa_format::manifest::PackedWeight>,
}

/// One quantized activation.
#[derive(Debug, Clone, Serialize)]
pub struct QuantizedActivation {
    pub tensor: String,
    pub min: f32,
    pub max: f32,
    pub scale: f32,
    pub zero_point: i32,
}

/// Options shared by the schemes.
#[derive(Debug, Clone)]
pub struct QuantOptions {
    pub scheme: Scheme,
    /// Graph form of the `int8` scheme.
    pub int8_form: Int8Form,
    /// Block length for weight-only schemes.
    pub block: usize,
    /// Nodes (labels) to keep in float regardless.
    pub keep_float: BTreeSet<String>,
}

/// Applies `opts.scheme` to a cleaned graph. `ranges` are the calibrated activation ranges
/// (int8 only).
pub fn apply(
    model: &mut pb::ModelProto,
    origin: &str,
    opts: &QuantOptions,
    ranges: &BTreeMap<String, crate::calibrate::TensorRange>,
) -> Result<QuantSummary, QuantError> {
    let (targets, kept) = find_targets(graph::graph(model));
    let mut summary = QuantSummary { kept_float: kept, ..Default::default() };
    // Nodes the error budget keeps stay entirely in float (weights and activations): on real
    // models (PP-OCRv4 rec) weight rounding alone moves the output, so keeping only the
    // activations in float does not buy the fidelity back.
    for t in targets.iter().filter(|t| opts.keep_float.contains(&t.node)) {
        summary.kept_float.push(KeptFloat {
            node: t.node.clone(),
            op: t.op.clone(),
            reason: "kept in float to meet the error budget".into(),
        });
    }
    let chosen: Vec<Target> = targets.iter().filter(|t| !opts.keep_float.contains(&t.node)).cloned().collect();
    match opts.scheme {
        Scheme::Fp32 => {}
        Scheme::Int8 => {
            let rest = match opts.int8_form {
                Int8Form::Qdq => chosen,
                Int8Form::QLinear => qlinear::apply(model, origin, &chosen, ranges, &mut summary)?,
            };
            int8::apply(model, origin, &rest, ranges, &mut summary)?;
            let g = graph::graph_mut(model);
            let mut names = graph::Names::of(g);
            weight_only::store_rest_as_f16(g, &mut names, &mut summary);
        }
        Scheme::W8 => weight_only::apply(model, origin, &chosen, math::Bits::Eight, opts.block, &mut summary)?,
        Scheme::W4 => weight_only::apply(model, origin, &chosen, math::Bits::Four, opts.block, &mut summary)?,
    }
    let g = graph::graph_mut(model);
    graph::remove_dead(g);
    graph::topo_sort(g).map_err(|e| QuantError::Graph { origin: origin.to_string(), reason: e.to_string() })?;
    Ok(summary)
}

/// The activation tensors `find_targets` would quantize under int8 in `form` (to calibrate
/// them): the targets' float inputs, and in the QLinear form the rewritten nodes' outputs.
pub fn activation_tensors(g: &pb::GraphProto, form: Int8Form) -> Vec<String> {
    let (targets, _) = find_targets(g);
    let mut names: Vec<String> = targets.iter().flat_map(|t| t.activations.iter().map(|(_, n)| n.clone())).collect();
    if form == Int8Form::QLinear {
        names.extend(qlinear::output_tensors(g, &targets));
    }
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{attr_int, make_f32, node};

    #[test]
    fn targets_cover_weighted_ops_and_report_the_rest() {
        let mut g = pb::GraphProto::default();
        g.initializer.push(make_f32("cw", &[4, 3, 3, 3], &[0.1; 108]));
        g.initializer.push(make_f32("mw", &[8, 4], &[0.1; 32]));
        g.initializer.push(make_f32("gw", &[4, 8], &[0.1; 32]));
        g.initializer.push(make_f32("big", &[3, 100], &[0.1; 300]));
        g.node.push(node("Conv", "conv", &["x", "cw"], &["c"], vec![]));
        g.node.push(node("MatMul", "mm", &["c", "mw"], &["m"], vec![]));
        g.node.push(node("Gemm", "gemm", &["m", "gw"], &["y"], vec![attr_int("transB", 1)]));
        g.node.push(node("Add", "add", &["y", "big"], &["z"], vec![]));
        g.node.push(node("MatMul", "mm2", &["mw", "z"], &["w"], vec![]));
        let (t, kept) = find_targets(&g);
        let axes: Vec<(&str, usize)> = t.iter().map(|t| (t.node.as_str(), t.channel_axis)).collect();
        assert_eq!(axes, vec![("conv", 0), ("mm", 1), ("gemm", 0)]);
        assert_eq!(t[0].activations, vec![(0, "x".to_string())]);
        let kept: Vec<&str> = kept.iter().map(|k| k.node.as_str()).collect();
        assert_eq!(kept, vec!["add", "mm2"]);
    }

    #[test]
    fn schemes_parse_and_print() {
        for s in ["fp32", "int8", "w8", "w4"] {
            assert_eq!(s.parse::<Scheme>().unwrap().to_string(), s);
        }
        assert!("int4".parse::<Scheme>().unwrap_err().contains("w4"));
    }
}
