//! Verification: the reference (fp32) and candidate (quantized) graphs run on the same inputs on
//! the device's CPU backend, and their outputs are compared: cosine (min, mean), max absolute
//! error and, for outputs with classes on the last axis, top-1 agreement. For students with a
//! question set, also answer agreement and accuracy of both.

use std::path::Path;

use edgeqa::backend::BackendChoice;
use edgeqa::backend::{Backend, tract::TractBackend};
use edgeqa::eval::{evaluate, load_set};
use edgeqa::pipeline::Student;
use edgeqa_format::manifest::StageInfo;
use edgeqa_format::package::Package;
use serde::Serialize;
use thiserror::Error;

use crate::data::Sample;
use crate::quantize::math::{argmax, cosine, max_abs_diff};

/// Verification could not run.
#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("{origin}: {reason}")]
    Load { origin: String, reason: String },
    #[error("{origin}: sample `{sample}`: {reason}")]
    Run { origin: String, sample: String, reason: String },
    #[error("{set}: {reason}")]
    Answers { set: String, reason: String },
}

/// How one output of a stage compares.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutputMetrics {
    pub name: String,
    pub samples: usize,
    pub cosine_min: f64,
    pub cosine_mean: f64,
    pub max_abs: f64,
    /// Argmax agreement along the last axis over all rows; `None` when the last axis has one element.
    pub top1_agreement: Option<f64>,
}

/// Answers of a whole student on a question set.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AnswerMetrics {
    pub questions: usize,
    pub agreement: f64,
    pub reference_accuracy: f64,
    pub candidate_accuracy: f64,
}

/// Runs both graphs of one stage on `samples` and compares every output.
pub fn compare_stage(
    stage: &StageInfo,
    reference: &[u8],
    candidate: &[u8],
    samples: &[Sample],
    origin: &str,
) -> Result<Vec<OutputMetrics>, VerifyError> {
    let backend = TractBackend::new();
    let load = |bytes: &[u8], which: &str| {
        backend
            .load_stage(stage, bytes, &format!("{origin} [{which} {}]", stage.name))
            .map_err(|e| VerifyError::Load { origin: origin.to_string(), reason: e.to_string() })
    };
    let r = load(reference, "reference")?;
    let c = load(candidate, "candidate")?;
    let n_out = stage.outputs.len();
    let mut cos: Vec<Vec<f64>> = vec![vec![]; n_out];
    let mut max_abs = vec![0f64; n_out];
    let mut agree = vec![(0usize, 0usize); n_out];
    for s in samples {
        let err = |e: edgeqa::backend::BackendError| VerifyError::Run {
            origin: origin.to_string(),
            sample: s.id.clone(),
            reason: e.to_string(),
        };
        let ro = r.run(s.inputs.clone()).map_err(err)?;
        let co = c.run(s.inputs.clone()).map_err(err)?;
        for (i, (a, b)) in ro.iter().zip(&co).enumerate() {
            let (Some(a), Some(b)) = (a.as_f32(), b.as_f32()) else {
                // Integer outputs must match exactly.
                let same = a.data == b.data;
                cos[i].push(if same { 1.0 } else { 0.0 });
                continue;
            };
            // Non-finite or mismatched outputs count as the worst case, never as agreement.
            cos[i].push(cosine(a, b).unwrap_or(0.0));
            max_abs[i] = max_abs[i].max(max_abs_diff(a, b).unwrap_or(f64::INFINITY));
            let classes = stage.outputs[i].shape.last().copied().unwrap_or(1);
            if classes > 1 {
                for (ra, rb) in a.chunks(classes).zip(b.chunks(classes)) {
                    agree[i].0 += usize::from(matches!((argmax(ra), argmax(rb)), (Ok(x), Ok(y)) if x == y));
                    agree[i].1 += 1;
                }
            }
        }
    }
    Ok(stage
        .outputs
        .iter()
        .enumerate()
        .map(|(i, o)| OutputMetrics {
            name: o.name.clone(),
            samples: samples.len(),
            cosine_min: cos[i].iter().copied().fold(f64::INFINITY, f64::min).min(1.0),
            cosine_mean: if cos[i].is_empty() { 1.0 } else { cos[i].iter().sum::<f64>() / cos[i].len() as f64 },
            max_abs: max_abs[i],
            top1_agreement: (agree[i].1 > 0).then(|| agree[i].0 as f64 / agree[i].1 as f64),
        })
        .collect())
}

/// Answers every question of `set` with both student packages and compares the answers.
pub fn compare_answers(reference: &Package, candidate: &Package, set: &Path) -> Result<AnswerMetrics, VerifyError> {
    let shown = set.display().to_string();
    let fail = |reason: String| VerifyError::Answers { set: shown.clone(), reason };
    let items = load_set(set).map_err(|e| fail(e.to_string()))?;
    let answers = |pkg: &Package| -> Result<(Vec<String>, f64), VerifyError> {
        let student = Student::load(pkg, BackendChoice::Tract, None).map_err(|e| fail(e.to_string()))?;
        let mut out = Vec::with_capacity(items.len());
        let report =
            evaluate(&student, set, &items, |_, a| out.push(a.answer.clone())).map_err(|e| fail(e.to_string()))?;
        Ok((out, report.accuracy))
    };
    let (ra, racc) = answers(reference)?;
    let (ca, cacc) = answers(candidate)?;
    let same = ra.iter().zip(&ca).filter(|(a, b)| a == b).count();
    Ok(AnswerMetrics {
        questions: items.len(),
        agreement: same as f64 / items.len().max(1) as f64,
        reference_accuracy: racc,
        candidate_accuracy: cacc,
    })
}
