//! Accuracy of a student on a question set (`edgeqa eval`, `edgeqa demo`).
//!
//! A set is a JSON-lines file; each line is
//! `{"video": "clip.y4m", "audio": "clip.wav", "question": "...", "answer": "...", "type": "..."}`
//! with paths relative to the set file (`audio` and `type` are optional). A line may also give
//! `"window": [start, end]`, the frames (end exclusive) that hold what the question is about, as
//! `training/synth.py --long` writes for long streams: [`EvalSelection::Oracle`] encodes exactly
//! those. Each clip is encoded once per part of it that is asked about, however many questions
//! it has. [`EvalSelection::Question`] lets the student's selector choose the part per question.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::capture::y4m::Y4mVideo;
use crate::pipeline::{Answer, ClipFeatures, ClipSpan, PipelineError, Student};
use crate::tensor::Tensor;

/// A question set that cannot be read or evaluated.
#[derive(Debug, Error)]
pub enum EvalError {
    #[error("{path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}:{line}: {reason}")]
    Line { path: String, line: usize, reason: String },
    #[error("{path}: the set has no questions")]
    Empty { path: String },
    #[error(
        "{path}:{line}: selection `oracle` needs every question's \"window\": [start, end] (the frames it is about); this line has none"
    )]
    NoWindow { path: String, line: usize },
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
    /// The frames `[start, end)` that hold what the question is about (known for generated sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<[usize; 2]>,
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
        if let Some([start, end]) = item.window
            && start >= end
        {
            return Err(EvalError::Line {
                path: shown.clone(),
                line: i + 1,
                reason: format!("\"window\": [{start}, {end}] is empty: it must be [start, end] with start < end"),
            });
        }
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

/// Which frames of a clip the student sees for a question.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalSelection {
    /// F frames spread over the whole clip, and all of its audio.
    #[default]
    Uniform,
    /// The clip's last F frames and the audio of their time.
    Recent,
    /// The part the student's selector finds relevant to each question (see
    /// [`Student::answer_selected`]); a student without a selector falls back to `Uniform`.
    Question,
    /// The question's `window` (the generator's ground truth, for evaluation only): F frames
    /// spread over it and the audio of its time.
    Oracle,
}

impl EvalSelection {
    /// The name reports use: `uniform`, `recent`, `question` or `oracle`.
    pub fn name(self) -> &'static str {
        match self {
            EvalSelection::Uniform => "uniform",
            EvalSelection::Recent => "recent",
            EvalSelection::Question => "question",
            EvalSelection::Oracle => "oracle",
        }
    }

    /// The part of the item's clip to encode; `None` for an oracle without a window. (The
    /// question selection chooses per question: `Whole` stands for the clip it chooses from.)
    fn span(self, item: &EvalItem) -> Option<ClipSpan> {
        match self {
            EvalSelection::Uniform | EvalSelection::Question => Some(ClipSpan::Whole),
            EvalSelection::Recent => Some(ClipSpan::Recent),
            EvalSelection::Oracle => item.window.map(|[start, end]| ClipSpan::Frames { start, end }),
        }
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
    /// The frame selection that ran.
    pub selection: EvalSelection,
}

/// Answers every question of a set with the whole clips in view ([`EvalSelection::Uniform`]),
/// calling `on_answer` after each one (for progress or a table).
pub fn evaluate(
    student: &Student,
    set_path: &Path,
    items: &[EvalItem],
    on_answer: impl FnMut(&EvalItem, &Answer),
) -> Result<EvalReport, EvalError> {
    evaluate_with(student, set_path, items, EvalSelection::Uniform, on_answer)
}

/// [`evaluate`] with the given frame selection. [`EvalSelection::Oracle`] refuses, before any
/// question is answered, a set with a line that has no `window`.
pub fn evaluate_with(
    student: &Student,
    set_path: &Path,
    items: &[EvalItem],
    selection: EvalSelection,
    mut on_answer: impl FnMut(&EvalItem, &Answer),
) -> Result<EvalReport, EvalError> {
    let shown = set_path.display().to_string();
    let selection = if selection == EvalSelection::Question && student.selector_candidates().is_none() {
        log::warn!("{shown}: the student has no selector stage: selection `question` falls back to `uniform`");
        EvalSelection::Uniform
    } else {
        selection
    };
    let spans = items
        .iter()
        .map(|item| selection.span(item).ok_or_else(|| EvalError::NoWindow { path: shown.clone(), line: item.line }))
        .collect::<Result<Vec<_>, _>>()?;
    type ClipKey = (Option<PathBuf>, Option<PathBuf>, ClipSpan);
    let mut clips: HashMap<ClipKey, ClipFeatures> = HashMap::new();
    // For the question selection: each clip read once, with its candidates encoded.
    type Candidates = (Y4mVideo, Option<Vec<f32>>, (Vec<usize>, Tensor));
    let mut streams: HashMap<(Option<PathBuf>, Option<PathBuf>), Candidates> = HashMap::new();
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
    for (item, &span) in items.iter().zip(&spans) {
        let item_err = |source| EvalError::Item { path: shown.clone(), line: item.line, source };
        let answer = if selection == EvalSelection::Question {
            let key = (item.video.clone(), item.audio.clone());
            if !streams.contains_key(&key) {
                let (video, samples) =
                    student.read_clip(item.video.as_deref(), item.audio.as_deref()).map_err(item_err)?;
                let video = video.ok_or(PipelineError::NeedsVideo).map_err(item_err)?;
                let candidates = student.encode_candidates(&video).map_err(item_err)?;
                streams.insert(key.clone(), (video, samples, candidates));
            }
            let (video, samples, candidates) = &streams[&key];
            let (answer, (start, end)) =
                student.answer_selected(&item.question, video, samples.as_deref(), candidates).map_err(item_err)?;
            log::debug!("{shown}:{}: answered from frames {start}..{end}", item.line);
            answer
        } else {
            let key = (item.video.clone(), item.audio.clone(), span);
            if !clips.contains_key(&key) {
                let clip =
                    student.encode_files_span(item.video.as_deref(), item.audio.as_deref(), span).map_err(item_err)?;
                clips.insert(key.clone(), clip);
            }
            student.answer(&item.question, &clips[&key]).map_err(item_err)?
        };
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
        selection,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(lines: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("questions.jsonl");
        std::fs::write(&path, lines).unwrap();
        (dir, path)
    }

    #[test]
    fn windows_are_read_and_checked() {
        let (dir, path) = set(concat!(
            r#"{"video":"s.y4m","question":"q?","answer":"red","window":[40,56]}"#,
            "\n",
            r#"{"video":"s.y4m","question":"q?","answer":"red"}"#,
            "\n"
        ));
        let items = load_set(&path).unwrap();
        assert_eq!(items[0].window, Some([40, 56]));
        assert_eq!(items[0].video.as_deref(), Some(dir.path().join("s.y4m").as_path()));
        assert_eq!(items[1].window, None);
        assert_eq!(EvalSelection::Oracle.span(&items[0]), Some(ClipSpan::Frames { start: 40, end: 56 }));
        assert_eq!(EvalSelection::Oracle.span(&items[1]), None);
        assert_eq!(EvalSelection::Recent.span(&items[1]), Some(ClipSpan::Recent));
        assert_eq!(EvalSelection::Uniform.span(&items[0]), Some(ClipSpan::Whole), "uniform ignores the window");

        let (_dir, path) = set(r#"{"question":"q?","answer":"red","window":[5,5]}"#);
        let err = load_set(&path).unwrap_err().to_string();
        assert!(err.ends_with(":1: \"window\": [5, 5] is empty: it must be [start, end] with start < end"), "{err}");
        let (_dir, path) = set(r#"{"question":"q?","answer":"red","window":[5]}"#);
        let err = load_set(&path).unwrap_err().to_string();
        assert!(err.contains(":1: "), "{err}");
    }

    #[test]
    fn selections_have_their_names() {
        for s in [EvalSelection::Uniform, EvalSelection::Recent, EvalSelection::Question, EvalSelection::Oracle] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.name());
        }
    }
}
