//! Quantized conversion, end to end: calibration samples → clean → calibrate → quantize (with the
//! error budget, if any) → package → verify against the fp32 package → report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use edgeqa_format::manifest::{Manifest, QuantizationInfo, QuantizedTensor, StageInfo};
use edgeqa_format::onnx::{self, pb};
use edgeqa_format::package::Package;

use crate::calibrate::{self, Method, TensorRange};
use crate::clean::{self, CleanOptions};
use crate::data::{self, Sample, StageSamples};
use crate::quantize::{self, Int8Form, QuantOptions, QuantSummary, Scheme};
use crate::report::{MixedPrecision, Report, Sizes, StageReport};
use crate::verify::{self, OutputMetrics};
use crate::{ConvertError, Converted, Graph, finish};

/// An error budget (`--max-error`): the least acceptable value of a fidelity metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// Minimum cosine of every output on every calibration sample.
    Cosine(f64),
    /// Minimum top-1 agreement (answers, for a student calibrated on a question set).
    Top1(f64),
}

impl FromStr for Budget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}`: expected cosine=X or top1=X with X in (0, 1], e.g. top1=0.995");
        let (k, v) = s.split_once('=').ok_or_else(bad)?;
        let v: f64 = v.trim().parse().map_err(|_| bad())?;
        if !(v > 0.0 && v <= 1.0) {
            return Err(bad());
        }
        match k.trim() {
            "cosine" => Ok(Budget::Cosine(v)),
            "top1" => Ok(Budget::Top1(v)),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Budget::Cosine(v) => write!(f, "cosine={v}"),
            Budget::Top1(v) => write!(f, "top1={v}"),
        }
    }
}

/// What to quantize and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub scheme: Scheme,
    pub method: Method,
    /// Graph form of the `int8` scheme.
    pub int8_form: Int8Form,
    /// Block length of the weight-only schemes.
    pub block: usize,
    /// Calibration set: a folder of sample folders, or (students) an `edgeqa eval` .jsonl.
    pub calibration: Option<PathBuf>,
    /// Held-out verification set, same forms.
    pub verify: Option<PathBuf>,
    pub max_error: Option<Budget>,
    /// Write the stage inputs calibrated on here (`DIR/<stage>/<sample>/<input>.npy`).
    pub dump_calibration: Option<PathBuf>,
    /// Write the final stage graphs here (`DIR/<stage>.onnx`).
    pub save_onnx: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scheme: Scheme::Fp32,
            method: Method::Percentile(crate::calibrate::stats::DEFAULT_PERCENTILE),
            int8_form: Int8Form::default(),
            block: 32,
            calibration: None,
            verify: None,
            max_error: None,
            dump_calibration: None,
            save_onnx: None,
        }
    }
}

/// The package written, the fp32 reference it was checked against, and the report.
#[derive(Debug)]
pub struct Outcome {
    pub converted: Converted,
    pub reference: Converted,
    pub report: Option<Report>,
}

/// Options that do not go together (the binary says which of its flags to change).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptionError {
    /// A top-1 error budget, but no output has classes on its last axis.
    #[error(
        "an error budget on top-1 agreement needs an output with classes on its last axis; budget the cosine instead"
    )]
    Top1WithoutClasses,
    /// Calibration samples or an error budget with the `fp32` scheme.
    #[error("calibration samples and an error budget need a quantizing scheme (int8, w8 or w4)")]
    NothingToCalibrate,
    /// A quantizing scheme without samples of the model's inputs.
    #[error(
        "scheme {scheme} needs samples of the model's inputs to calibrate{}: a folder of <input>.npy files or a question set (.jsonl)",
        if *verify_will_do { " or verify" } else { "" }
    )]
    NeedsSamples {
        scheme: Scheme,
        /// The verification samples would do (weight-only schemes without an error budget).
        verify_will_do: bool,
    },
}

fn opt_err(s: impl Into<String>) -> ConvertError {
    ConvertError::Options(s.into())
}

/// Samples for every stage from a set path.
fn load_samples(path: &Path, fp32: &Converted, manifest: &Manifest) -> Result<StageSamples, ConvertError> {
    let student = manifest.kind == edgeqa_format::manifest::PackageKind::Student;
    if data::is_question_set(path) {
        if !student {
            return Err(opt_err(format!(
                "{}: a question set (.jsonl) calibrates students only; give a folder of <input>.npy samples",
                path.display()
            )));
        }
        let pkg = Package::from_bytes(fp32.bytes.clone(), "fp32 package")?;
        return Ok(data::student_samples_from_set(&pkg, path)?);
    }
    if student {
        return Ok(data::student_samples_from_dir(path, &manifest.stages)?);
    }
    let stage = &manifest.stages[0];
    // A model's set may also be given in the dumped layout (`DIR/model/<sample>`).
    let dir = if path.join(&stage.name).is_dir() { path.join(&stage.name) } else { path.to_path_buf() };
    Ok(StageSamples::from([(stage.name.clone(), data::load_npy_dir(&dir, stage)?)]))
}

/// A quantized stage graph and what was done to it.
type StageGraph = (Vec<u8>, QuantSummary);

/// One stage, cleaned and calibrated, ready to quantize any number of times.
struct Prepared {
    stage: StageInfo,
    origin: String,
    fp32_bytes: Vec<u8>,
    cleaned: pb::ModelProto,
    ranges: BTreeMap<String, TensorRange>,
}

impl Prepared {
    fn quantize(&self, opts: &Options, keep: &BTreeSet<String>) -> Result<(Vec<u8>, QuantSummary), ConvertError> {
        let mut m = self.cleaned.clone();
        let q = QuantOptions {
            scheme: opts.scheme,
            int8_form: opts.int8_form,
            block: opts.block,
            keep_float: keep.clone(),
        };
        let summary = quantize::apply(&mut m, &self.origin, &q, &self.ranges)?;
        Ok((crate::graph::encode(&m), summary))
    }
}

fn prepare(g: &Graph, stage: &StageInfo, samples: &[Sample], opts: &Options) -> Result<Prepared, ConvertError> {
    let mut cleaned = g.proto.clone();
    let opset = onnx::opset(&cleaned).unwrap_or(0);
    // Per-channel DequantizeLinear needs opset 13.
    let target_opset = (opts.scheme == Scheme::Int8 && opset < 13).then_some(13);
    let cr = clean::clean(&mut cleaned, &g.origin, &CleanOptions { target_opset })?;
    log::info!("{}: cleaned: {cr:?}", g.origin);
    let ranges = if opts.scheme.needs_calibration() {
        let observe = quantize::activation_tensors(crate::graph::graph(&cleaned), opts.int8_form);
        calibrate::calibrate(&cleaned, stage, samples, &observe, opts.method, &g.origin)?
    } else {
        BTreeMap::new()
    };
    Ok(Prepared { stage: stage.clone(), origin: g.origin.clone(), fp32_bytes: g.bytes.clone(), cleaned, ranges })
}

/// Keep-float sets per stage from `stage/node` keys.
fn split_keys(keys: &BTreeSet<(String, String)>, stage: &str) -> BTreeSet<String> {
    keys.iter().filter(|(s, _)| s == stage).map(|(_, n)| n.clone()).collect()
}

fn build_package(
    manifest: &Manifest,
    prepared: &[Prepared],
    graphs: &[Graph],
    opts: &Options,
    keep: &BTreeSet<(String, String)>,
) -> Result<(Converted, Vec<StageGraph>), ConvertError> {
    let mut quantized = Vec::new();
    let mut new_graphs = Vec::new();
    let mut info = QuantizationInfo {
        scheme: opts.scheme.to_string(),
        method: opts.scheme.needs_calibration().then(|| opts.method.to_string()),
        form: opts.scheme.needs_calibration().then(|| opts.int8_form.to_string()),
        ..Default::default()
    };
    for (p, g) in prepared.iter().zip(graphs) {
        let (bytes, summary) = p.quantize(opts, &split_keys(keep, &p.stage.name))?;
        for w in &summary.weights {
            info.tensors.push(QuantizedTensor {
                stage: p.stage.name.clone(),
                tensor: w.weight.clone(),
                format: w.format.clone(),
                packed: w.packed.clone(),
            });
        }
        for a in &summary.activations {
            info.tensors.push(QuantizedTensor {
                stage: p.stage.name.clone(),
                tensor: a.tensor.clone(),
                format: "uint8/tensor".into(),
                packed: None,
            });
        }
        for k in &summary.kept_float {
            info.kept_float.push(format!("{}/{}: {}", p.stage.name, k.node, k.reason));
        }
        let proto = onnx::decode(&bytes, &g.origin)?;
        new_graphs.push(Graph { stage: g.stage.clone(), origin: g.origin.clone(), bytes: bytes.clone(), proto });
        quantized.push((bytes, summary));
    }
    let mut m = manifest.clone();
    m.quantization = info;
    Ok((finish(m, new_graphs)?, quantized))
}

/// The error-budget metric of a candidate on the calibration data (higher is better).
fn measure(
    budget: Budget,
    fp32: &Converted,
    candidate: Option<&Converted>,
    prepared: &[Prepared],
    stage_bytes: &[(Vec<u8>, QuantSummary)],
    samples: &StageSamples,
    calibration: &Path,
) -> Result<f64, ConvertError> {
    if let (Budget::Top1(_), Some(candidate)) = (budget, candidate)
        && data::is_question_set(calibration)
    {
        let r = Package::from_bytes(fp32.bytes.clone(), "fp32 package")?;
        let c = Package::from_bytes(candidate.bytes.clone(), "candidate package")?;
        return Ok(verify::compare_answers(&r, &c, calibration)?.agreement);
    }
    let mut worst = f64::INFINITY;
    for (p, (bytes, _)) in prepared.iter().zip(stage_bytes) {
        let s = samples.get(&p.stage.name).map(Vec::as_slice).unwrap_or_default();
        for o in verify::compare_stage(&p.stage, &p.fp32_bytes, bytes, s, &p.origin)? {
            let v = match budget {
                Budget::Cosine(_) => Some(o.cosine_min),
                Budget::Top1(_) => o.top1_agreement,
            };
            if let Some(v) = v {
                worst = worst.min(v);
            }
        }
    }
    if worst.is_infinite() {
        return Err(OptionError::Top1WithoutClasses.into());
    }
    Ok(worst)
}

/// Quantizes prepared stages, then converts and verifies.
pub(crate) fn run(manifest: Manifest, graphs: Vec<Graph>, opts: &Options) -> Result<Outcome, ConvertError> {
    let fp32 = finish(manifest.clone(), graphs.clone())?;
    if opts.scheme == Scheme::Fp32 {
        if opts.calibration.is_some() || opts.max_error.is_some() {
            return Err(OptionError::NothingToCalibrate.into());
        }
        save_onnx(opts, &graphs.iter().map(|g| (g.stage.clone(), g.bytes.clone())).collect::<Vec<_>>())?;
        return Ok(Outcome { converted: fp32.clone(), reference: fp32, report: None });
    }
    let calibration = match (&opts.calibration, &opts.verify) {
        (Some(c), _) => c.clone(),
        (None, Some(v)) if !opts.scheme.needs_calibration() && opts.max_error.is_none() => v.clone(),
        _ => {
            return Err(OptionError::NeedsSamples {
                scheme: opts.scheme,
                verify_will_do: !opts.scheme.needs_calibration(),
            }
            .into());
        }
    };
    let samples = load_samples(&calibration, &fp32, &manifest)?;
    if let Some(dir) = &opts.dump_calibration {
        for stage in &manifest.stages {
            if let Some(s) = samples.get(&stage.name) {
                data::write_npy_dir(&dir.join(&stage.name), stage, s)?;
            }
        }
    }
    let mut prepared = Vec::new();
    for (g, stage) in graphs.iter().zip(&manifest.stages) {
        let s = samples.get(&stage.name).map(Vec::as_slice).unwrap_or_default();
        if s.is_empty() && opts.scheme.needs_calibration() {
            return Err(opt_err(format!(
                "{}: no calibration samples for stage `{}`",
                calibration.display(),
                stage.name
            )));
        }
        prepared.push(prepare(g, stage, s, opts)?);
    }

    // The error budget: quantize everything, and if the budget fails rank the nodes by the error
    // each one causes alone and keep the most sensitive ones in float until it holds.
    let mut keep: BTreeSet<(String, String)> = BTreeSet::new();
    let mut mixed = None;
    if let Some(budget) = opts.max_error {
        let limit = match budget {
            Budget::Cosine(v) | Budget::Top1(v) => v,
        };
        let eval = |keep: &BTreeSet<(String, String)>| -> Result<f64, ConvertError> {
            if matches!(budget, Budget::Top1(_)) && data::is_question_set(&calibration) {
                let (cand, bytes) = build_package(&manifest, &prepared, &graphs, opts, keep)?;
                return measure(budget, &fp32, Some(&cand), &prepared, &bytes, &samples, &calibration);
            }
            let bytes = prepared
                .iter()
                .map(|p| p.quantize(opts, &split_keys(keep, &p.stage.name)))
                .collect::<Result<Vec<_>, _>>()?;
            measure(budget, &fp32, None, &prepared, &bytes, &samples, &calibration)
        };
        let all = eval(&keep)?;
        let mut sensitivity = Vec::new();
        let mut achieved = all;
        if all < limit {
            let targets: Vec<(String, String)> = prepared
                .iter()
                .flat_map(|p| {
                    quantize::find_targets(crate::graph::graph(&p.cleaned))
                        .0
                        .into_iter()
                        .map(|t| (p.stage.name.clone(), t.node))
                        .collect::<Vec<_>>()
                })
                .collect();
            // Each node's error alone, measured on as many threads as the host has (each
            // measurement quantizes, loads and runs the whole model).
            let alone = |t: &(String, String)| {
                let only: BTreeSet<_> = targets.iter().filter(|x| *x != t).cloned().collect();
                eval(&only)
            };
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, targets.len().max(1));
            let errors: Vec<Result<f64, ConvertError>> = std::thread::scope(|s| {
                let workers: Vec<_> = targets
                    .chunks(targets.len().div_ceil(threads).max(1))
                    .map(|chunk| s.spawn(move || chunk.iter().map(alone).collect::<Vec<_>>()))
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                    .collect()
            });
            for (t, e) in targets.iter().zip(errors) {
                sensitivity.push((t.clone(), e?));
            }
            // Worst first; among equals, the smaller weight first (cheaper to keep in float).
            let size = |t: &(String, String)| -> usize {
                prepared
                    .iter()
                    .find(|p| p.stage.name == t.0)
                    .and_then(|p| {
                        let g = crate::graph::graph(&p.cleaned);
                        let target = quantize::find_targets(g).0.into_iter().find(|x| x.node == t.1)?;
                        crate::graph::initializer(g, &target.weight).map(crate::graph::element_count)
                    })
                    .unwrap_or(0)
            };
            sensitivity.sort_by(|a, b| a.1.total_cmp(&b.1).then(size(&a.0).cmp(&size(&b.0))).then(a.0.cmp(&b.0)));
            // The fewest of the most sensitive nodes in float that meet the budget: a binary
            // search over k (the error is close to monotone in k; every k kept was measured).
            let first = |k: usize| -> BTreeSet<(String, String)> {
                sensitivity.iter().take(k).map(|(t, _)| t.clone()).collect()
            };
            let (mut lo, mut hi) = (0, sensitivity.len());
            let mut at_hi = eval(&first(hi))?;
            log::info!("error budget {budget}: {hi} node(s) in float: {at_hi:.5}");
            if at_hi >= limit {
                while hi - lo > 1 {
                    let mid = (lo + hi) / 2;
                    let v = eval(&first(mid))?;
                    log::info!("error budget {budget}: {mid} node(s) in float: {v:.5}");
                    if v >= limit {
                        (hi, at_hi) = (mid, v);
                    } else {
                        lo = mid;
                    }
                }
            }
            keep = first(hi);
            achieved = at_hi;
        }
        let order: Vec<String> = sensitivity.iter().map(|((s, n), _)| format!("{s}/{n}")).collect();
        mixed = Some(MixedPrecision {
            budget: budget.to_string(),
            all_quantized: all,
            achieved,
            met: achieved >= limit,
            kept_float: order.iter().take(keep.len()).cloned().collect(),
            sensitivity: order.into_iter().zip(sensitivity.iter().map(|(_, v)| *v)).collect(),
        });
    }

    let (converted, stage_bytes) = build_package(&manifest, &prepared, &graphs, opts, &keep)?;
    save_onnx(
        opts,
        &prepared.iter().zip(&stage_bytes).map(|(p, (b, _))| (p.stage.name.clone(), b.clone())).collect::<Vec<_>>(),
    )?;

    // Verification on held-out data (or, without --verify, on the calibration set, said so).
    let (verify_path, held_out) = match &opts.verify {
        Some(v) => (v.clone(), true),
        None => (calibration.clone(), false),
    };
    let verify_samples = if held_out { load_samples(&verify_path, &fp32, &manifest)? } else { samples.clone() };
    let mut stages = Vec::new();
    for (p, (bytes, summary)) in prepared.iter().zip(&stage_bytes) {
        let s = verify_samples.get(&p.stage.name).map(Vec::as_slice).unwrap_or_default();
        let outputs: Vec<OutputMetrics> = verify::compare_stage(&p.stage, &p.fp32_bytes, bytes, s, &p.origin)?;
        stages.push(StageReport {
            stage: p.stage.name.clone(),
            graph_bytes: Sizes::new(p.fp32_bytes.len() as u64, bytes.len() as u64),
            outputs,
            quantization: Some(summary.clone()),
        });
    }
    let answers =
        if manifest.kind == edgeqa_format::manifest::PackageKind::Student && data::is_question_set(&verify_path) {
            let r = Package::from_bytes(fp32.bytes.clone(), "fp32 package")?;
            let c = Package::from_bytes(converted.bytes.clone(), "quantized package")?;
            Some(verify::compare_answers(&r, &c, &verify_path)?)
        } else {
            None
        };
    let report = Report {
        scheme: opts.scheme.to_string(),
        method: opts.scheme.needs_calibration().then(|| opts.method.to_string()),
        int8_form: opts.scheme.needs_calibration().then(|| opts.int8_form.to_string()),
        verify_set: verify_path.display().to_string(),
        verify_held_out: held_out,
        package_bytes: Sizes::new(fp32.bytes.len() as u64, converted.bytes.len() as u64),
        stages,
        answers,
        mixed_precision: mixed,
    };
    Ok(Outcome { converted, reference: fp32, report: Some(report) })
}

fn save_onnx(opts: &Options, stages: &[(String, Vec<u8>)]) -> Result<(), ConvertError> {
    let Some(dir) = &opts.save_onnx else { return Ok(()) };
    std::fs::create_dir_all(dir)
        .map_err(|e| ConvertError::Io { path: dir.display().to_string(), reason: e.to_string() })?;
    for (stage, bytes) in stages {
        let p = dir.join(format!("{stage}.onnx"));
        std::fs::write(&p, bytes)
            .map_err(|e| ConvertError::Io { path: p.display().to_string(), reason: e.to_string() })?;
    }
    Ok(())
}

/// Compares two packages of the same model on a verification set (`edgeqa-convert compare`).
pub fn compare_packages(reference: &Package, candidate: &Package, set: &Path) -> Result<Report, ConvertError> {
    let rm = reference.manifest();
    let cm = candidate.manifest();
    let names = |m: &Manifest| m.stages.iter().map(|s| (s.name.clone(), s.inputs.clone())).collect::<Vec<_>>();
    if names(rm) != names(cm) {
        return Err(opt_err(format!(
            "{} and {} do not have the same stages and inputs: they are not two versions of one model",
            reference.origin(),
            candidate.origin()
        )));
    }
    let ref_conv = Converted { bytes: reference.as_bytes().to_vec(), manifest: rm.clone() };
    let samples = load_samples(set, &ref_conv, rm)?;
    let mut stages = Vec::new();
    for st in &rm.stages {
        let rb = reference.stage_graph(&st.name).unwrap_or_default();
        let cb = candidate.stage_graph(&st.name).unwrap_or_default();
        let s = samples.get(&st.name).map(Vec::as_slice).unwrap_or_default();
        stages.push(StageReport {
            stage: st.name.clone(),
            graph_bytes: Sizes::new(rb.len() as u64, cb.len() as u64),
            outputs: verify::compare_stage(st, rb, cb, s, reference.origin())?,
            quantization: None,
        });
    }
    let answers = if rm.kind == edgeqa_format::manifest::PackageKind::Student && data::is_question_set(set) {
        Some(verify::compare_answers(reference, candidate, set)?)
    } else {
        None
    };
    Ok(Report {
        scheme: cm.quantization.scheme.clone(),
        method: cm.quantization.method.clone(),
        int8_form: cm.quantization.form.clone(),
        verify_set: set.display().to_string(),
        verify_held_out: true,
        package_bytes: Sizes::new(reference.as_bytes().len() as u64, candidate.as_bytes().len() as u64),
        stages,
        answers,
        mixed_precision: None,
    })
}
