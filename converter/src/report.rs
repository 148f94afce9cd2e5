//! The verification report: written as JSON with `--report` and summarised on the terminal.

use serde::Serialize;

use crate::quantize::{KeptFloat, QuantSummary};
use crate::verify::{AnswerMetrics, OutputMetrics};

/// Sizes of the reference and the candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    pub reference: u64,
    pub candidate: u64,
    pub ratio: f64,
}

impl Sizes {
    /// Sizes and their ratio.
    pub fn new(reference: u64, candidate: u64) -> Sizes {
        Sizes { reference, candidate, ratio: candidate as f64 / reference.max(1) as f64 }
    }
}

/// One stage's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub stage: String,
    pub graph_bytes: Sizes,
    pub outputs: Vec<OutputMetrics>,
    /// What was quantized (absent for `compare`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantization: Option<QuantSummary>,
}

/// Result of the error-budget search.
#[derive(Debug, Clone, Serialize)]
pub struct MixedPrecision {
    /// The budget as given, e.g. `top1=0.995`.
    pub budget: String,
    /// Metric of the fully quantized model on the calibration data.
    pub all_quantized: f64,
    /// Metric with the nodes below kept in float.
    pub achieved: f64,
    pub met: bool,
    /// `stage/node` kept in float, most sensitive first.
    pub kept_float: Vec<String>,
    /// Each target's metric when it alone is quantized (`stage/node`, metric), worst first.
    pub sensitivity: Vec<(String, f64)>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scheme: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub int8_form: Option<String>,
    /// What the outputs were compared on, and whether it was held out from calibration.
    pub verify_set: String,
    pub verify_held_out: bool,
    pub package_bytes: Sizes,
    pub stages: Vec<StageReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answers: Option<AnswerMetrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mixed_precision: Option<MixedPrecision>,
}

fn kb(b: u64) -> String {
    format!("{:.1} KiB", b as f64 / 1024.0)
}

impl Report {
    /// A short table for the terminal.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "package {} -> {} ({:.3}x), scheme {}{}\n",
            kb(self.package_bytes.reference),
            kb(self.package_bytes.candidate),
            self.package_bytes.ratio,
            self.scheme,
            self.method.as_ref().map(|m| format!(", calibration {m}")).unwrap_or_default()
        ));
        s.push_str(&format!(
            "verified on {}{}\n",
            self.verify_set,
            if self.verify_held_out { "" } else { " (NOT held out: it is the calibration set)" }
        ));
        s.push_str(&format!(
            "{:<18} {:<22} {:>7} {:>10} {:>10} {:>10} {:>8}\n",
            "stage", "output", "samples", "cos min", "cos mean", "max abs", "top-1"
        ));
        for st in &self.stages {
            for o in &st.outputs {
                s.push_str(&format!(
                    "{:<18} {:<22} {:>7} {:>10.6} {:>10.6} {:>10.4} {:>8}\n",
                    st.stage,
                    o.name,
                    o.samples,
                    o.cosine_min,
                    o.cosine_mean,
                    o.max_abs,
                    o.top1_agreement.map_or("-".into(), |a| format!("{:.2}%", a * 100.0))
                ));
            }
        }
        if let Some(a) = &self.answers {
            s.push_str(&format!(
                "answers: {} questions, agreement {:.2}%, accuracy {:.2}% (reference) vs {:.2}% (candidate)\n",
                a.questions,
                a.agreement * 100.0,
                a.reference_accuracy * 100.0,
                a.candidate_accuracy * 100.0
            ));
        }
        let kept: Vec<String> = self
            .stages
            .iter()
            .flat_map(|st| {
                st.quantization
                    .iter()
                    .flat_map(|q| &q.kept_float)
                    .map(|k: &KeptFloat| format!("{}/{} ({}): {}", st.stage, k.node, k.op, k.reason))
            })
            .collect();
        if !kept.is_empty() {
            s.push_str(&format!("kept in float ({}):\n", kept.len()));
            for k in kept {
                s.push_str(&format!("  {k}\n"));
            }
        }
        if let Some(m) = &self.mixed_precision {
            s.push_str(&format!(
                "error budget {}: all quantized {:.4}, with {} node(s) in float {:.4} ({})\n",
                m.budget,
                m.all_quantized,
                m.kept_float.len(),
                m.achieved,
                if m.met { "met" } else { "NOT met" }
            ));
        }
        s
    }
}
