//! Accuracy of a student on a question set (`edgeqa eval`, `edgeqa demo`).
//!
//! A set is a JSON-lines file; each line is
//! `{"video": "clip.y4m", "audio": "clip.wav", "question": "...", "answer": "...", "type": "..."}`
//! with paths relative to the set file (`audio` and `type` are optional). Each clip is encoded
//! once, however many questions it has.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::pipeline::{Answer, ClipFeatures, PipelineError, Student};

/// A question set that cannot be read or evaluated.
#[derive(Debug, Error)]
pub enum EvalError {
    #[error("{path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}:{line}: {reason}")]
    Line { path: String, line: usize, reason: String },
    #[error("{path}: the set has no questions")]
    Empty { path: String },
    #[error("{path}:{line}: {source}")]
    Item {
        path: String,
        line: usize,
        #[source]
        source: PipelineError,
    },
}

/// One line of a question set.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvalItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<PathBuf>,
    pub question: String,
    pub answer: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// 1-based line in the set file (not part of the file format).
    #[serde(skip)]
    pub line: usize,
}

/// Reads a question set; clip paths become relative to the set's folder.
pub fn load_set(path: &Path) -> Result<Vec<EvalItem>, EvalError> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| EvalError::Read { path: shown.clone(), reason: e.to_string() })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut item: EvalItem = serde_json::from_str(line).map_err(|e| EvalError::Line {
            path: shown.clone(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        item.line = i + 1;
        item.video = item.video.map(|v| base.join(v));
        item.audio = item.audio.map(|a| base.join(a));
        items.push(item);
    }
    if items.is_empty() {
        return Err(EvalError::Empty { path: shown });
    }
    Ok(items)
}

/// Count and accuracy of one group of questions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Score {
    pub n: usize,
    pub correct: usize,
    pub accuracy: f64,
}

impl Score {
    fn add(&mut self, correct: bool) {
        self.n += 1;
        self.correct += usize::from(correct);
        self.accuracy = self.correct as f64 / self.n as f64;
    }
}

/// Result of a whole set.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub n: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub per_type: BTreeMap<String, Score>,
    pub backend: String,
}

/// Answers every question of a set, calling `on_answer` after each one (for progress or a table).
pub fn evaluate(
    student: &Student,
    set_path: &Path,
    items: &[EvalItem],
    mut on_answer: impl FnMut(&EvalItem, &Answer),
) -> Result<EvalReport, EvalError> {
    let shown = set_path.display().to_string();
    let mut clips: HashMap<(Option<PathBuf>, Option<PathBuf>), ClipFeatures> = HashMap::new();
    let mut total = Score::default();
    let mut per_type: BTreeMap<String, Score> = BTreeMap::new();
    let labels = &student.manifest().labels;
    let mut foreign: Vec<&str> =
        items.iter().map(|i| i.answer.as_str()).filter(|a| !labels.iter().any(|l| l == a)).collect();
    foreign.sort_unstable();
    foreign.dedup();
    if !foreign.is_empty() {
        log::warn!("{shown}: answers the student cannot give (always counted wrong): {}", foreign.join(", "));
    }
    for item in items {
        let item_err = |source| EvalError::Item { path: shown.clone(), line: item.line, source };
        let key = (item.video.clone(), item.audio.clone());
        if !clips.contains_key(&key) {
            let clip = student.encode_files(item.video.as_deref(), item.audio.as_deref()).map_err(item_err)?;
            clips.insert(key.clone(), clip);
        }
        let answer = student.answer(&item.question, &clips[&key]).map_err(item_err)?;
        let correct = answer.answer == item.answer;
        total.add(correct);
        per_type.entry(item.kind.clone().unwrap_or_else(|| "all".into())).or_default().add(correct);
        on_answer(item, &answer);
    }
    Ok(EvalReport {
        n: total.n,
        correct: total.correct,
        accuracy: total.accuracy,
        per_type,
        backend: student.backend().0.to_string(),
    })
}
