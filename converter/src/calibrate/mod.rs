//! Calibration: activation ranges from running the fp32 model on calibration samples.
//!
//! The graph is loaded in tract with every observed tensor made a graph output, then run over the
//! samples twice: pass 1 records min/max, pass 2 (percentile and entropy only) a histogram of
//! |x| over [0, absmax]. [`stats::select_range`] turns those into each tensor's range.

use std::collections::BTreeMap;

use edgeqa_format::manifest::StageInfo;
use edgeqa_format::onnx::pb;
use edgeqa_format::tensor::{Tensor, TensorData};
use edgeqa_format::tract::datum_type;
use indicatif::{ProgressBar, ProgressStyle};
use thiserror::Error;
use tract_onnx::prelude::*;

use crate::data::Sample;

pub mod stats;

pub use stats::Method;
use stats::{AbsHistogram, RangeStats};

/// Calibration failed.
#[derive(Debug, Error)]
pub enum CalibError {
    #[error("{origin}: tract cannot run the fp32 graph for calibration: {reason}")]
    Load { origin: String, reason: String },
    #[error("{origin}: sample `{sample}`: {reason}")]
    Run { origin: String, sample: String, reason: String },
    #[error(
        "{origin}: sample `{sample}`: tensor `{tensor}` has {count} NaN or infinite value(s); the fp32 model overflows on this input"
    )]
    NonFinite { origin: String, sample: String, tensor: String, count: u64 },
    #[error("{origin}: no calibration samples")]
    Empty { origin: String },
    #[error("{origin}: tensor `{tensor}`: {reason}")]
    Range { origin: String, tensor: String, reason: String },
}

/// A calibrated activation range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorRange {
    pub min: f32,
    pub max: f32,
}

/// The graph's own outputs, and the observed tensors by name.
pub type Observed = (Vec<TValue>, Vec<(String, TValue)>);

/// Runs a graph in tract with chosen intermediate tensors as extra outputs.
pub struct Observer {
    origin: String,
    plan: std::sync::Arc<TypedRunnableModel>,
    /// Observed tensor names, in extra-output order.
    names: Vec<String>,
    graph_outputs: usize,
}

/// Converts an edgeqa tensor into a tract tensor.
pub fn to_tract(t: &Tensor) -> TractResult<TValue> {
    let shape = &t.shape;
    let tensor = match &t.data {
        TensorData::F32(v) => tract_ndarray::ArrayD::from_shape_vec(shape.clone(), v.clone())?.into_tensor(),
        TensorData::I64(v) => tract_ndarray::ArrayD::from_shape_vec(shape.clone(), v.clone())?.into_tensor(),
        TensorData::I32(v) => tract_ndarray::ArrayD::from_shape_vec(shape.clone(), v.clone())?.into_tensor(),
        TensorData::U8(v) => tract_ndarray::ArrayD::from_shape_vec(shape.clone(), v.clone())?.into_tensor(),
        TensorData::I8(v) => tract_ndarray::ArrayD::from_shape_vec(shape.clone(), v.clone())?.into_tensor(),
        TensorData::Bool(v) => tract_ndarray::ArrayD::from_shape_vec(shape.clone(), v.clone())?.into_tensor(),
    };
    Ok(tensor.into_tvalue())
}

impl Observer {
    /// Loads `proto` with the inputs fixed by `stage` and `observe` added as outputs.
    pub fn new(
        proto: &pb::ModelProto,
        stage: &StageInfo,
        observe: &[String],
        origin: &str,
    ) -> Result<Observer, CalibError> {
        let fail = |reason: String| CalibError::Load { origin: origin.to_string(), reason };
        let mut p = proto.clone();
        let g = crate::graph::graph_mut(&mut p);
        let graph_outputs = g.output.len();
        let existing: std::collections::HashSet<String> = g.output.iter().map(|o| o.name.clone()).collect();
        let names: Vec<String> = observe.iter().filter(|n| !existing.contains(*n)).cloned().collect();
        for n in &names {
            g.output.push(edgeqa_format::onnx_builder::value_untyped(n));
        }
        let mut model = edgeqa_format::tract::framework().parse(&p, None).map_err(|e| fail(format!("{e:#}")))?.model;
        for ix in 0..model.inputs.len() {
            let name = model.node(model.inputs[ix].node).name.clone();
            let info = stage
                .inputs
                .iter()
                .find(|i| i.name == name)
                .ok_or_else(|| fail(format!("graph input `{name}` has no fixed shape")))?;
            model
                .set_input_fact(ix, InferenceFact::dt_shape(datum_type(info.dtype), &info.shape))
                .map_err(|e| fail(format!("{e:#}")))?;
        }
        let plan = model.into_optimized().and_then(|m| m.into_runnable()).map_err(|e| fail(format!("{e:#}")))?;
        Ok(Observer { origin: origin.to_string(), plan, names, graph_outputs })
    }

    /// Runs one sample; returns the graph's own outputs and the observed tensors by name.
    pub fn run(&self, sample: &Sample) -> Result<Observed, CalibError> {
        let err = |reason: String| CalibError::Run { origin: self.origin.clone(), sample: sample.id.clone(), reason };
        let inputs: TVec<TValue> =
            sample.inputs.iter().map(to_tract).collect::<TractResult<_>>().map_err(|e| err(format!("{e:#}")))?;
        let mut out = self.plan.run(inputs).map_err(|e| err(format!("{e:#}")))?.into_vec();
        let observed = out.split_off(self.graph_outputs);
        Ok((out, self.names.iter().cloned().zip(observed).collect()))
    }
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(len)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:>24} [{bar:32}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

fn floats(v: &TValue) -> Option<Vec<f32>> {
    if v.datum_type() != f32::datum_type() {
        return None;
    }
    v.to_plain_array_view::<f32>().ok().map(|a| a.iter().copied().collect())
}

/// Calibrates the float tensors `observe` of one stage: ranges chosen by `method`.
pub fn calibrate(
    proto: &pb::ModelProto,
    stage: &StageInfo,
    samples: &[Sample],
    observe: &[String],
    method: Method,
    origin: &str,
) -> Result<BTreeMap<String, TensorRange>, CalibError> {
    if samples.is_empty() {
        return Err(CalibError::Empty { origin: origin.to_string() });
    }
    let observer = Observer::new(proto, stage, observe, origin)?;
    let needs_hist = !matches!(method, Method::MinMax);
    let passes = if needs_hist { 2 } else { 1 };
    let bar = progress((samples.len() * passes) as u64, &format!("calibrating {}", stage.name));
    let mut ranges: BTreeMap<String, RangeStats> = BTreeMap::new();
    for s in samples {
        let (_, observed) = observer.run(s)?;
        for (name, v) in &observed {
            let Some(x) = floats(v) else { continue };
            let r = ranges.entry(name.clone()).or_default();
            r.observe(&x).map_err(|_| CalibError::NonFinite {
                origin: origin.to_string(),
                sample: s.id.clone(),
                tensor: name.clone(),
                count: x.iter().filter(|v| !v.is_finite()).count() as u64,
            })?;
        }
        bar.inc(1);
    }
    let mut hists: BTreeMap<String, AbsHistogram> = BTreeMap::new();
    if needs_hist {
        for (name, r) in &ranges {
            let h = AbsHistogram::new(r.absmax(), stats::DEFAULT_BINS).map_err(|e| CalibError::Range {
                origin: origin.to_string(),
                tensor: name.clone(),
                reason: e.to_string(),
            })?;
            hists.insert(name.clone(), h);
        }
        for s in samples {
            let (_, observed) = observer.run(s)?;
            for (name, v) in &observed {
                if let (Some(x), Some(h)) = (floats(v), hists.get_mut(name)) {
                    h.observe(&x).map_err(|e| CalibError::Range {
                        origin: origin.to_string(),
                        tensor: name.clone(),
                        reason: e.to_string(),
                    })?;
                }
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let mut out = BTreeMap::new();
    for (name, r) in &ranges {
        let (min, max) = stats::select_range(r, hists.get(name), method).map_err(|e| CalibError::Range {
            origin: origin.to_string(),
            tensor: name.clone(),
            reason: e.to_string(),
        })?;
        out.insert(name.clone(), TensorRange { min, max });
    }
    Ok(out)
}
