//! Calibration and verification data: the inputs each stage is run on.
//!
//! Two forms:
//! - a folder with one subfolder per sample, each holding `<input name>.npy` for every input of
//!   the model (other files, e.g. `expected.json`, are ignored); for a student, a folder with one
//!   such folder per stage (`DIR/<stage>/<sample>/<input>.npy`, as `--dump-calibration` writes);
//! - for a student, an `edgeqa eval` question set (`.jsonl`): its clips and questions go through
//!   the runtime's own preprocessing and the fp32 student, and every stage's inputs are recorded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use edgeqa::backend::{Backend, BackendError, StageMemory, StageSession, tract::TractBackend};
use edgeqa::pipeline::Student;
use edgeqa_format::contract::SELECTOR_KEYS;
use edgeqa_format::manifest::{DType, StageInfo};
use edgeqa_format::package::Package;
use edgeqa_format::tensor::{Tensor, TensorData};
use thiserror::Error;

/// A calibration or verification set that cannot be used.
#[derive(Debug, Error)]
pub enum DataError {
    #[error("{path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: no samples (expected one subfolder per sample holding <input>.npy files)")]
    Empty { path: String },
    #[error("{path}: {reason}")]
    Sample { path: String, reason: String },
    #[error("{path}: input `{input}` has {count} NaN or infinite value(s) (first at flat index {first})")]
    NonFinite { path: String, input: String, count: usize, first: usize },
    #[error("{path}: {reason}")]
    Student { path: String, reason: String },
}

/// One sample: a stage's inputs in the manifest's input order.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Where it came from (folder name, or `<set>:<line>` for question sets).
    pub id: String,
    pub inputs: Vec<Tensor>,
}

/// Samples per stage name.
pub type StageSamples = BTreeMap<String, Vec<Sample>>;

fn read_err(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Read { path: path.display().to_string(), reason: e.to_string() }
}

fn sorted_subdirs(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| read_err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Rejects NaN and infinities in a float input.
pub fn check_finite(t: &Tensor, path: &str, input: &str) -> Result<(), DataError> {
    if let TensorData::F32(v) = &t.data {
        let bad: Vec<usize> = v.iter().enumerate().filter(|(_, x)| !x.is_finite()).map(|(i, _)| i).collect();
        if let Some(&first) = bad.first() {
            return Err(DataError::NonFinite { path: path.into(), input: input.into(), count: bad.len(), first });
        }
    }
    Ok(())
}

/// Reads `DIR/<sample>/<input>.npy` for every input of `stage`, checking names, dtypes, shapes
/// and values. Samples come in folder-name order.
pub fn load_npy_dir(dir: &Path, stage: &StageInfo) -> Result<Vec<Sample>, DataError> {
    if !dir.is_dir() {
        return Err(read_err(dir, "not a folder (a calibration set is a folder of sample folders)"));
    }
    let mut samples = Vec::new();
    for sub in sorted_subdirs(dir)? {
        let shown = sub.display().to_string();
        let sample_err = |reason: String| DataError::Sample { path: shown.clone(), reason };
        let mut present: Vec<String> = std::fs::read_dir(&sub)
            .map_err(|e| read_err(&sub, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".npy")).map(str::to_string))
            .collect();
        present.sort();
        let wanted: Vec<&str> = stage.inputs.iter().map(|i| i.name.as_str()).collect();
        let stray: Vec<&String> = present.iter().filter(|p| !wanted.contains(&p.as_str())).collect();
        let missing: Vec<&&str> = wanted.iter().filter(|w| !present.iter().any(|p| p == **w)).collect();
        if !stray.is_empty() || !missing.is_empty() {
            let mut why = Vec::new();
            if !missing.is_empty() {
                why.push(format!(
                    "missing {}",
                    missing.iter().map(|m| format!("{m}.npy")).collect::<Vec<_>>().join(", ")
                ));
            }
            if !stray.is_empty() {
                why.push(format!(
                    "{} not an input of the model",
                    stray.iter().map(|m| format!("{m}.npy")).collect::<Vec<_>>().join(", ")
                ));
            }
            return Err(sample_err(format!(
                "{} (the model's inputs are {})",
                why.join("; "),
                stage
                    .inputs
                    .iter()
                    .map(|i| format!("{} {} {:?}", i.name, i.dtype.name(), i.shape))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut inputs = Vec::new();
        for info in &stage.inputs {
            let file = sub.join(format!("{}.npy", info.name));
            let shown_file = file.display().to_string();
            let t = Tensor::read_npy(&file)
                .map_err(|e| DataError::Sample { path: shown_file.clone(), reason: e.to_string() })?;
            t.check(info, &shown_file).map_err(|e| DataError::Sample {
                path: shown_file.clone(),
                reason: format!("{e} (the model input `{}` needs exactly this)", info.name),
            })?;
            check_finite(&t, &shown_file, &info.name)?;
            inputs.push(t);
        }
        let id = sub.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        samples.push(Sample { id, inputs });
    }
    if samples.is_empty() {
        return Err(DataError::Empty { path: dir.display().to_string() });
    }
    Ok(samples)
}

/// Writes samples as `DIR/<sample>/<input>.npy` (the form [`load_npy_dir`] reads).
pub fn write_npy_dir(dir: &Path, stage: &StageInfo, samples: &[Sample]) -> Result<(), DataError> {
    for (i, s) in samples.iter().enumerate() {
        let sub = dir.join(format!("{i:05}"));
        std::fs::create_dir_all(&sub).map_err(|e| read_err(&sub, e))?;
        for (info, t) in stage.inputs.iter().zip(&s.inputs) {
            let file = sub.join(format!("{}.npy", info.name));
            t.write_npy(&file).map_err(|e| read_err(&file, e))?;
        }
    }
    Ok(())
}

/// A backend that runs tract and records the inputs of every stage run.
struct Recorder {
    inner: TractBackend,
    log: Arc<Mutex<StageSamples>>,
    /// Id under which runs are recorded now (empty: not recorded), and the one stage recorded
    /// when not all are.
    current: Arc<Mutex<Recording>>,
}

/// What a [`Recorder`] records now.
#[derive(Default)]
struct Recording {
    id: String,
    only: Option<&'static str>,
}

impl Recording {
    fn set(slot: &Mutex<Recording>, id: &str, only: Option<&'static str>) {
        if let Ok(mut c) = slot.lock() {
            c.id = id.to_string();
            c.only = only;
        }
    }
}

struct RecordingSession {
    stage: String,
    inner: Box<dyn StageSession>,
    log: Arc<Mutex<StageSamples>>,
    current: Arc<Mutex<Recording>>,
}

impl Backend for Recorder {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn load_stage(&self, stage: &StageInfo, onnx: &[u8], origin: &str) -> Result<Box<dyn StageSession>, BackendError> {
        Ok(Box::new(RecordingSession {
            stage: stage.name.clone(),
            inner: self.inner.load_stage(stage, onnx, origin)?,
            log: self.log.clone(),
            current: self.current.clone(),
        }))
    }
}

impl StageSession for RecordingSession {
    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        let id = self
            .current
            .lock()
            .ok()
            .filter(|c| c.only.is_none_or(|o| o == self.stage))
            .map(|c| c.id.clone())
            .unwrap_or_default();
        if !id.is_empty()
            && let Ok(mut log) = self.log.lock()
        {
            log.entry(self.stage.clone()).or_default().push(Sample { id, inputs: inputs.clone() });
        }
        self.inner.run(inputs)
    }

    fn memory(&self) -> StageMemory {
        self.inner.memory()
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

/// Runs an fp32 student package over an `edgeqa eval` question set and records the inputs of
/// every stage: encoders once per clip, selector_keys over the clip's candidate frames, and the
/// question encoder, the selector and the head once per question.
pub fn student_samples_from_set(fp32: &Package, set: &Path) -> Result<StageSamples, DataError> {
    let shown = set.display().to_string();
    let fail = |reason: String| DataError::Student { path: shown.clone(), reason };
    let items = edgeqa::eval::load_set(set).map_err(|e| fail(e.to_string()))?;
    let log = Arc::new(Mutex::new(StageSamples::new()));
    let current = Arc::new(Mutex::new(Recording::default()));
    let recorder = Recorder { inner: TractBackend::new(), log: log.clone(), current: current.clone() };
    let student = Student::load_on(fp32, Box::new(recorder), "calibration".into(), None)
        .map_err(|e| fail(format!("the fp32 student does not load: {e}")))?;
    let mut seen_clips = std::collections::HashSet::new();
    let mut candidates = std::collections::HashMap::new();
    for item in &items {
        let tag = format!("{shown}:{}", item.line);
        let key = (item.video.clone(), item.audio.clone());
        // Warm-up runs at load are not recorded (the id is empty); encoders are recorded once per clip.
        let first = seen_clips.insert(key.clone());
        Recording::set(&current, if first { &tag } else { "" }, None);
        let clip = student
            .encode_files(item.video.as_deref(), item.audio.as_deref())
            .map_err(|e| fail(format!("line {}: {e}", item.line)))?;
        let line_err = |e: edgeqa::pipeline::PipelineError| fail(format!("line {}: {e}", item.line));
        // A selector scores the clip's candidate frames for each question: their keys are made
        // once per clip (recorded as selector_keys samples; the frame encoder's runs on them are
        // not samples of its own).
        if student.selector_candidates().is_some() && !candidates.contains_key(&key) {
            Recording::set(&current, &tag, Some(SELECTOR_KEYS));
            let (video, _) = student.read_clip(item.video.as_deref(), item.audio.as_deref()).map_err(line_err)?;
            let video = video.ok_or(edgeqa::pipeline::PipelineError::NeedsVideo).map_err(line_err)?;
            let (_, keys) = student.encode_candidates(&video).map_err(line_err)?;
            candidates.insert(key.clone(), keys);
        }
        Recording::set(&current, &tag, None);
        let q = student.question_features(&item.question).map_err(line_err)?;
        if let (Some(keys), Some(f)) = (candidates.get(&key), &q.features) {
            student.score_candidates(f, keys).map_err(line_err)?;
        }
        student.answer_with(q, &clip).map_err(line_err)?;
    }
    Recording::set(&current, "", None);
    drop(student);
    let samples = std::mem::take(&mut *log.lock().map_err(|_| fail("recording failed".into()))?);
    for (stage, list) in &samples {
        for s in list {
            for (t, info) in
                s.inputs.iter().zip(&fp32.manifest().stage(stage).map(|s| s.inputs.clone()).unwrap_or_default())
            {
                check_finite(t, &s.id, &info.name)?;
            }
        }
    }
    Ok(samples)
}

/// Loads a student's per-stage set from `DIR/<stage>/...` folders (the stages present).
pub fn student_samples_from_dir(dir: &Path, stages: &[StageInfo]) -> Result<StageSamples, DataError> {
    let mut out = StageSamples::new();
    for stage in stages {
        let sub = dir.join(&stage.name);
        if !sub.is_dir() {
            return Err(DataError::Sample {
                path: dir.display().to_string(),
                reason: format!(
                    "no `{}` folder: a student's calibration folder holds one folder per stage ({}), or pass an `edgeqa eval` .jsonl",
                    stage.name,
                    stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
        out.insert(stage.name.clone(), load_npy_dir(&sub, stage)?);
    }
    Ok(out)
}

/// True when `path` names a question set rather than a folder of samples.
pub fn is_question_set(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "jsonl")
}

/// A one-line description of an input, for messages.
pub fn describe(dtype: DType, shape: &[usize]) -> String {
    format!("{} {shape:?}", dtype.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeqa_format::manifest::TensorInfo;

    fn stage() -> StageInfo {
        StageInfo {
            name: "model".into(),
            section: "model".into(),
            inputs: vec![TensorInfo { name: "x".into(), dtype: DType::F32, shape: vec![1, 3] }],
            outputs: vec![],
            format: Default::default(),
        }
    }

    #[test]
    fn reads_samples_in_order_and_names_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let st = stage();
        let ok = |v: Vec<f32>| Sample { id: String::new(), inputs: vec![Tensor::f32(vec![1, 3], v).unwrap()] };
        write_npy_dir(dir.path(), &st, &[ok(vec![1.0, 2.0, 3.0]), ok(vec![4.0, 5.0, 6.0])]).unwrap();
        let got = load_npy_dir(dir.path(), &st).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].inputs[0].as_f32().unwrap(), &[4.0, 5.0, 6.0]);

        // Wrong shape.
        Tensor::f32(vec![3], vec![0.0; 3]).unwrap().write_npy(&dir.path().join("00001/x.npy")).unwrap();
        let e = load_npy_dir(dir.path(), &st).unwrap_err().to_string();
        assert!(e.contains("00001/x.npy") && e.contains("[1, 3]"), "{e}");

        // NaN.
        Tensor::f32(vec![1, 3], vec![0.0, f32::NAN, 1.0]).unwrap().write_npy(&dir.path().join("00001/x.npy")).unwrap();
        let e = load_npy_dir(dir.path(), &st).unwrap_err().to_string();
        assert!(e.contains("NaN") && e.contains("`x`") && e.contains("index 1"), "{e}");

        // Stray and missing inputs.
        std::fs::rename(dir.path().join("00001/x.npy"), dir.path().join("00001/y.npy")).unwrap();
        let e = load_npy_dir(dir.path(), &st).unwrap_err().to_string();
        assert!(e.contains("missing x.npy") && e.contains("y.npy not an input"), "{e}");
    }

    #[test]
    fn empty_and_missing_sets_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_npy_dir(dir.path(), &stage()).unwrap_err().to_string();
        assert!(e.contains("no samples"), "{e}");
        let e = load_npy_dir(&dir.path().join("nope"), &stage()).unwrap_err().to_string();
        assert!(e.contains("not a folder"), "{e}");
    }
}
