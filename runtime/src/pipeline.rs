//! The question-answering engine: encoders run once per clip, a question pays only for the
//! question encoder and the head.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use thiserror::Error;

use crate::backend::{self, BackendChoice, BackendError, StageSession};
use crate::budget::{Budget, BudgetError, MemoryPlan};
use crate::capture::wav::{WavError, read_wav};
use crate::capture::y4m::{Y4mError, Y4mVideo, open_y4m, read_y4m};
use crate::contract::{
    AUDIO_ENCODER, AUDIO_FEATURES, CANDIDATE_KEYS, FRAME_ENCODER, FRAME_FEATURES, HEAD, QUESTION_ENCODER,
    QUESTION_FEATURES, QUESTION_IDS, QUESTION_MASK, SELECTOR, SELECTOR_KEYS,
};
use crate::manifest::{DType, Manifest, PackageKind, StageInfo, TensorInfo};
use crate::package::Package;
use crate::preprocess::image::{frames_tensor_at, sample_indices};
use crate::preprocess::mel::LogMel;
use crate::stream::select::question_span;
use crate::tensor::{Tensor, TensorData};
use crate::text::{Tokenizer, TokenizerError};

/// Anything that stops a question from being answered.
#[derive(Debug, Error)]
pub enum PipelineError {
    #[error(transparent)]
    Backend(Box<BackendError>),
    #[error(transparent)]
    Video(#[from] Y4mError),
    #[error(transparent)]
    Audio(#[from] WavError),
    #[error(transparent)]
    Question(#[from] TokenizerError),
    #[error("{origin}: {reason}")]
    Contract { origin: String, reason: String },
    #[error(transparent)]
    Budget(Box<BudgetError>),
    #[error("this student watches video: it needs a video clip (Y4M)")]
    NeedsVideo,
    #[error("this student listens to audio: it needs an audio clip (WAV)")]
    NeedsAudio,
    #[error("{0}")]
    Span(String),
}

impl From<BackendError> for PipelineError {
    fn from(e: BackendError) -> Self {
        PipelineError::Backend(Box::new(e))
    }
}

impl From<BudgetError> for PipelineError {
    fn from(e: BudgetError) -> Self {
        PipelineError::Budget(Box::new(e))
    }
}

/// Probability of one answer label.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scored {
    pub answer: String,
    pub confidence: f32,
}

/// An answer with its confidence, the runner-up answers and the time the question took
/// (clip encoding is timed separately in [`ClipFeatures::timings_ms`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Answer {
    pub question: String,
    pub answer: String,
    pub confidence: f32,
    pub top_k: Vec<Scored>,
    pub backend: String,
    pub timings_ms: BTreeMap<String, f64>,
}

/// Encoder outputs for one clip, ready for any number of questions.
#[derive(Debug, Clone)]
pub struct ClipFeatures {
    frame: Option<Tensor>,
    audio: Option<Tensor>,
    /// Milliseconds spent reading, preprocessing and encoding, by stage.
    pub timings_ms: BTreeMap<String, f64>,
}

impl ClipFeatures {
    /// Features gathered elsewhere (the streaming engine's rings): frame features `[F, ...]`
    /// and audio features `[A, ...]`, `f32`, as the encoders produce them.
    pub fn from_features(frame: Option<Tensor>, audio: Option<Tensor>) -> ClipFeatures {
        ClipFeatures { frame, audio, timings_ms: BTreeMap::new() }
    }
}

/// Which part of a clip the encoders see: the frame encoder gets its F frames spread uniformly
/// over the part (temporal order kept), the audio encoder the audio of the part's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ClipSpan {
    /// The whole clip: its frames and all of its audio.
    #[default]
    Whole,
    /// The clip's last F frames (all of them when it is shorter) and their time's audio.
    Recent,
    /// Frames `start..end` (end exclusive) and their time's audio.
    Frames { start: usize, end: usize },
}

impl ClipSpan {
    /// The frames `start..end` this span takes from a clip of `frames` frames, for an encoder
    /// that wants `wanted` of them; an empty range, or one past the clip's end, is an error.
    pub fn resolve(self, frames: usize, wanted: usize) -> Result<(usize, usize), PipelineError> {
        let (start, end) = match self {
            ClipSpan::Whole => (0, frames),
            ClipSpan::Recent => (frames.saturating_sub(wanted), frames),
            ClipSpan::Frames { start, end } => (start, end),
        };
        if start >= end {
            return Err(PipelineError::Span(format!("frames {start}..{end}: the part of the clip to encode is empty")));
        }
        if end > frames {
            return Err(PipelineError::Span(format!(
                "frames {start}..{end}: the clip has only {frames} frames; give a part inside it"
            )));
        }
        Ok((start, end))
    }
}

/// The audio sample at which video frame `frame` starts, for a frame rate of `fps.0 / fps.1` and
/// `sample_rate` samples per second: `frame * sample_rate * fps.1 / fps.0`, rounded to the
/// nearest sample (halves up), exactly in integers.
pub fn frame_sample(frame: usize, fps: (u32, u32), sample_rate: u32) -> usize {
    let (num, den) = (u128::from(fps.0.max(1)), u128::from(fps.1));
    let exact2 = 2 * frame as u128 * u128::from(sample_rate) * den;
    usize::try_from((exact2 + num) / (2 * num)).unwrap_or(usize::MAX)
}

/// A question as the question encoder encoded it (no features for a student without one).
#[derive(Debug, Clone)]
pub struct QuestionFeatures {
    pub question: String,
    pub features: Option<Tensor>,
    /// Milliseconds spent tokenizing and encoding.
    pub timings_ms: BTreeMap<String, f64>,
}

/// A loaded student package.
pub struct Student {
    manifest: Manifest,
    origin: String,
    backend: &'static str,
    backend_reason: String,
    frame: Option<Box<dyn StageSession>>,
    audio: Option<(Box<dyn StageSession>, LogMel)>,
    question: Option<(Box<dyn StageSession>, Tokenizer)>,
    /// `selector_keys` and `selector`, which come together.
    selector: Option<(Box<dyn StageSession>, Box<dyn StageSession>)>,
    head: Box<dyn StageSession>,
    plan: MemoryPlan,
    budget: Option<Budget>,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn contract(origin: &str, reason: impl Into<String>) -> PipelineError {
    PipelineError::Contract { origin: origin.to_string(), reason: reason.into() }
}

/// Checks at load that an encoder's output, concatenated over batches, fills a head input.
fn check_feeds(origin: &str, encoder: &StageInfo, items: usize, head_in: &TensorInfo) -> Result<(), PipelineError> {
    let out = &encoder.outputs[0];
    let batch = encoder.inputs[0].shape[0];
    let per_item = out.len() / out.shape.first().copied().unwrap_or(1).max(1);
    if out.shape.first() != Some(&batch) || out.dtype != DType::F32 || per_item * items != head_in.len() {
        return Err(contract(
            origin,
            format!(
                "{} output {} {:?} for {items} items cannot fill head input `{}` {:?}",
                encoder.name, out.name, out.shape, head_in.name, head_in.shape
            ),
        ));
    }
    Ok(())
}

impl Student {
    /// Loads every stage of a student package on the chosen backend, builds the memory plan and,
    /// with a budget, refuses a plan that does not fit.
    pub fn load(pkg: &Package, choice: BackendChoice, budget: Option<Budget>) -> Result<Student, PipelineError> {
        let (backend, reason) = backend::select(choice, budget.as_ref().map(|b| b.bytes))?;
        Student::load_on(pkg, backend, reason, budget)
    }

    /// [`Student::load`] on a given backend; `reason` says why it was chosen. Tools wrap a
    /// backend this way, e.g. the converter records every stage's inputs for calibration.
    pub fn load_on(
        pkg: &Package,
        backend: Box<dyn backend::Backend>,
        reason: String,
        budget: Option<Budget>,
    ) -> Result<Student, PipelineError> {
        let resident_at_start = crate::budget::rss().map_or(0, |(now, _)| now);
        let m = pkg.manifest().clone();
        let origin = pkg.origin().to_string();
        if m.kind != PackageKind::Student {
            return Err(contract(&origin, "this is a generic model package: use `edgeqa run`"));
        }
        log::info!("{origin}: backend {} ({reason})", backend.name());
        let load = |name: &str| -> Result<Option<Box<dyn StageSession>>, PipelineError> {
            let Some(stage) = m.stage(name) else { return Ok(None) };
            let graph = pkg
                .stage_graph(name)
                .ok_or_else(|| contract(&origin, format!("stage `{name}` has no graph section")))?;
            let stored = m.packed_weights(name);
            Ok(Some(backend.load_stage_stored(stage, graph, &stored, &format!("{origin} [{name}]"))?))
        };
        let head_info = m.stage(HEAD).ok_or_else(|| contract(&origin, "no head stage"))?;
        for input in &head_info.inputs {
            let Some(producer) = crate::contract::producer_of(&input.name) else {
                return Err(contract(
                    &origin,
                    format!("head input `{}` is not part of the student contract", input.name),
                ));
            };
            let Some(p) = m.stage(producer.name) else {
                return Err(contract(
                    &origin,
                    format!("head input `{}` needs the {} stage", input.name, producer.name),
                ));
            };
            let items = match producer.name {
                FRAME_ENCODER => m.video.as_ref().map_or(0, |v| v.frames),
                AUDIO_ENCODER => m.audio.as_ref().map_or(0, |a| a.segments),
                _ => 1,
            };
            check_feeds(&origin, p, items, input)?;
        }
        if let Some(q) = m.stage(QUESTION_ENCODER)
            && let Some(other) = q.inputs.iter().find(|i| i.name != QUESTION_IDS && i.name != QUESTION_MASK)
        {
            return Err(contract(
                &origin,
                format!("question_encoder input `{}` is not part of the student contract", other.name),
            ));
        }
        let frame = load(FRAME_ENCODER)?;
        let audio = match (load(AUDIO_ENCODER)?, &m.audio) {
            (Some(s), Some(a)) => Some((s, LogMel::new(a))),
            _ => None,
        };
        let question = match (load(QUESTION_ENCODER)?, &m.tokenizer) {
            (Some(s), Some(t)) => Some((s, Tokenizer::new(t)?)),
            _ => None,
        };
        let selector = match (load(SELECTOR_KEYS)?, load(SELECTOR)?) {
            (Some(k), Some(s)) => Some((k, s)),
            _ => None,
        };
        let head = load(HEAD)?.ok_or_else(|| contract(&origin, "no head stage"))?;
        let mut sessions: Vec<(&str, &dyn StageSession)> = vec![(HEAD, head.as_ref())];
        sessions.extend(frame.as_deref().map(|s| (FRAME_ENCODER, s)));
        sessions.extend(audio.as_ref().map(|(s, _)| (AUDIO_ENCODER, s.as_ref())));
        sessions.extend(question.as_ref().map(|(s, _)| (QUESTION_ENCODER, s.as_ref())));
        if let Some((k, s)) = &selector {
            sessions.extend([(SELECTOR_KEYS, k.as_ref()), (SELECTOR, s.as_ref())]);
        }
        let plan = warm_up_and_plan(&m, resident_at_start, &sessions)?;
        if let Some(b) = &budget {
            plan.check(b.bytes, &b.board)?;
        }
        log::info!("{origin}: memory plan {}", plan.breakdown());
        Ok(Student {
            manifest: m,
            origin,
            backend: backend.name(),
            backend_reason: reason,
            frame,
            audio,
            question,
            selector,
            head,
            plan,
            budget,
        })
    }

    /// The package manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Name of the backend running the stages, and why it was chosen.
    pub fn backend(&self) -> (&'static str, &str) {
        (self.backend, &self.backend_reason)
    }

    /// The load-time memory plan.
    pub fn memory_plan(&self) -> &MemoryPlan {
        &self.plan
    }

    /// The budget in force, if any.
    pub fn budget(&self) -> Option<&Budget> {
        self.budget.as_ref()
    }

    /// The loaded session of a stage (`frame_encoder`, `audio_encoder`, `question_encoder`,
    /// `selector_keys`, `selector`, `head`), if the student has it.
    pub fn stage_session(&self, name: &str) -> Option<&dyn StageSession> {
        match name {
            FRAME_ENCODER => self.frame.as_deref(),
            AUDIO_ENCODER => self.audio.as_ref().map(|(s, _)| s.as_ref()),
            QUESTION_ENCODER => self.question.as_ref().map(|(s, _)| s.as_ref()),
            SELECTOR_KEYS => self.selector.as_ref().map(|(k, _)| k.as_ref()),
            SELECTOR => self.selector.as_ref().map(|(_, s)| s.as_ref()),
            HEAD => Some(self.head.as_ref()),
            _ => None,
        }
    }

    /// Opens a clip's video within the budget. Without a budget, or when the whole file fits
    /// beside the plan (file size plus two RGB frames being converted, estimated as 5/4 of the
    /// file), the file is read. Otherwise it degrades to reading frames from the open file as
    /// they are sampled, so that only one raw frame at a time becomes resident besides the frame
    /// index; if even that does not fit, the clip is refused before its frames are converted.
    fn open_video(&self, path: &Path, audio_bytes: u64) -> Result<Y4mVideo, PipelineError> {
        let Some(b) = &self.budget else { return Ok(read_y4m(path)?) };
        let left = b.bytes.saturating_sub(self.plan.total()).saturating_sub(audio_bytes);
        let file_len = std::fs::metadata(path).map_or(0, |m| m.len());
        if file_len * 5 / 4 <= left {
            return Ok(read_y4m(path)?);
        }
        let video = open_y4m(path)?;
        let frame_len = video.frame_len() as u64;
        let rgb = (3 * video.width * video.height * 4) as u64;
        // One raw frame read at a time, two RGB frames being converted, 8 bytes per frame of index.
        let needs = frame_len + video.frame_count() as u64 * 8 + 2 * rgb;
        if needs > left {
            return Err(self.clip_too_large(path, needs, left, b));
        }
        log::info!(
            "{}: the whole clip ({file_len} bytes) does not fit the {} budget; reading only its sampled frames from the file",
            path.display(),
            b.board
        );
        Ok(video)
    }

    fn clip_too_large(&self, path: &Path, needs: u64, left: u64, budget: &Budget) -> PipelineError {
        BudgetError::ClipTooLarge {
            clip: path.display().to_string(),
            needs,
            left,
            board: budget.board.clone(),
            plan: self.plan.clone(),
        }
        .into()
    }

    /// With a budget, refuses audio whose decoded samples (f32, estimated as twice a 16-bit
    /// file) do not fit beside the plan, and returns that estimate.
    fn check_audio(&self, path: &Path) -> Result<u64, PipelineError> {
        let Some(b) = &self.budget else { return Ok(0) };
        let left = b.bytes.saturating_sub(self.plan.total());
        let needs = 2 * std::fs::metadata(path).map_or(0, |m| m.len());
        if needs > left {
            return Err(self.clip_too_large(path, needs, left, b));
        }
        Ok(needs)
    }

    /// Reads the clip files this student needs and runs its encoders.
    pub fn encode_files(&self, video: Option<&Path>, audio: Option<&Path>) -> Result<ClipFeatures, PipelineError> {
        self.encode_files_span(video, audio, ClipSpan::Whole)
    }

    /// [`Student::encode_files`] on a part of the clip.
    pub fn encode_files_span(
        &self,
        video: Option<&Path>,
        audio: Option<&Path>,
        span: ClipSpan,
    ) -> Result<ClipFeatures, PipelineError> {
        let t = Instant::now();
        let (video, samples) = self.read_clip(video, audio)?;
        let read_ms = ms(t);
        let mut clip = self.encode_span(video.as_ref(), samples.as_deref(), span)?;
        clip.timings_ms.insert("read".into(), read_ms);
        Ok(clip)
    }

    /// Reads (within the budget, see [`Student::encode_files`]) the clip files this student needs:
    /// its video and its audio resampled to nothing, checked against the manifest's rate.
    pub fn read_clip(
        &self,
        video: Option<&Path>,
        audio: Option<&Path>,
    ) -> Result<(Option<Y4mVideo>, Option<Vec<f32>>), PipelineError> {
        let audio_bytes = match (self.audio.is_some(), audio) {
            (true, Some(p)) => self.check_audio(p)?,
            _ => 0,
        };
        let video = match (self.frame.is_some(), video) {
            (true, Some(p)) => Some(self.open_video(p, audio_bytes)?),
            (true, None) => return Err(PipelineError::NeedsVideo),
            (false, _) => None,
        };
        let samples = match (&self.manifest.audio, self.audio.is_some(), audio) {
            (Some(a), true, Some(p)) => Some(read_wav(p, a.sample_rate)?),
            (_, true, None) => return Err(PipelineError::NeedsAudio),
            _ => None,
        };
        Ok((video, samples))
    }

    /// The number of candidate frames R the student's selector scores, if it has one.
    pub fn selector_candidates(&self) -> Option<usize> {
        self.selector.as_ref()?;
        self.manifest.stage(SELECTOR)?.inputs.iter().find(|i| i.name == CANDIDATE_KEYS)?.shape.get(1).copied()
    }

    /// Values per key `selector_keys` writes for a frame (K), if the student has a selector.
    pub fn key_len(&self) -> Option<usize> {
        self.selector.as_ref()?;
        self.manifest.stage(SELECTOR_KEYS)?.outputs.first()?.shape.get(1).copied()
    }

    /// Runs `selector_keys` over frame features `[n, ...]` (as the frame encoder writes them,
    /// one row per frame) in the stage's fixed batch, padding the last batch by repeating its
    /// last frame: the keys `[n, K]`.
    pub fn frame_keys(&self, features: &Tensor) -> Result<Tensor, PipelineError> {
        let (keys, _) = self.selector.as_ref().ok_or_else(|| self.no_selector())?;
        let input = &self.manifest.stage(SELECTOR_KEYS).ok_or_else(|| self.no_selector())?.inputs[0];
        let k = self.key_len().ok_or_else(|| self.no_selector())?;
        let values = features.as_f32().ok_or_else(|| contract(&self.origin, "frame features are not f32"))?;
        let batch = input.shape[0].max(1);
        let per = input.len() / batch;
        let n = features.shape.first().copied().unwrap_or(0);
        if values.len() != n * per || n == 0 {
            return Err(contract(
                &self.origin,
                format!("{SELECTOR_KEYS}: {} values for {n} frames of {per} features", values.len()),
            ));
        }
        let mut out = Vec::with_capacity(n.div_ceil(batch) * batch * k);
        for chunk in values.chunks(batch * per) {
            let mut data = chunk.to_vec();
            while data.len() < batch * per {
                data.extend_from_within(chunk.len() - per..chunk.len());
            }
            let mut res = keys.run(vec![Tensor { shape: input.shape.clone(), data: TensorData::F32(data) }])?;
            match res.swap_remove(0).data {
                TensorData::F32(v) if v.len() == batch * k => out.extend(v),
                _ => return Err(contract(&self.origin, format!("{SELECTOR_KEYS} output is not f32 [{batch},{k}]"))),
            }
        }
        out.truncate(n * k);
        if out.iter().any(|v| !v.is_finite()) {
            return Err(contract(&self.origin, format!("{SELECTOR_KEYS} produced non-finite keys")));
        }
        Tensor::f32(vec![n, k], out).map_err(|e| contract(&self.origin, e.to_string()))
    }

    /// Encodes the selector's R candidate frames of a clip, spread over all of it as
    /// [`sample_indices`] spreads them (a clip shorter than R repeats frames): their frame
    /// indices and their keys `[R, K]` ([`Student::frame_keys`]).
    pub fn encode_candidates(&self, video: &Y4mVideo) -> Result<(Vec<usize>, Tensor), PipelineError> {
        let r = self.selector_candidates().ok_or_else(|| self.no_selector())?;
        let enc = self.frame.as_deref().ok_or(PipelineError::NeedsVideo)?;
        let p = self.manifest.video.as_ref().ok_or_else(|| contract(&self.origin, "no video preprocessing"))?;
        let batch = self.manifest.stage(FRAME_ENCODER).map_or(1, |s| s.inputs[0].shape[0].max(1));
        let frames = sample_indices(video.frame_count(), r);
        // The encoder runs in whole batches: repeat the last candidate, then drop the extra rows.
        let mut padded = frames.clone();
        padded.resize(r.div_ceil(batch) * batch, frames.last().copied().unwrap_or(0));
        let pixels = frames_tensor_at(video, p, &padded)?;
        let mut out = self.run_batched(enc, FRAME_ENCODER, pixels, padded.len())?;
        let per = out.len() / padded.len();
        if let TensorData::F32(v) = &mut out.data {
            v.truncate(r * per);
        }
        out.shape = vec![r, per];
        Ok((frames, self.frame_keys(&out)?))
    }

    fn no_selector(&self) -> PipelineError {
        contract(&self.origin, "this student has no selector stage: question-aware selection needs one")
    }

    /// The selector's scores (logits, one per candidate) for question features (as
    /// [`Student::question_features`] gives them) and candidate keys `[R, K]`.
    pub fn score_candidates(&self, question: &Tensor, keys: &Tensor) -> Result<Vec<f32>, PipelineError> {
        let (_, sel) = self.selector.as_ref().ok_or_else(|| self.no_selector())?;
        let info = self.manifest.stage(SELECTOR).ok_or_else(|| self.no_selector())?;
        if let Some(c) = info.inputs.iter().find(|i| i.name == CANDIDATE_KEYS)
            && keys.as_f32().map(<[f32]>::len) != Some(c.len())
        {
            return Err(contract(
                &self.origin,
                format!("the selector scores f32 {:?} candidate keys, got {:?}", c.shape, keys.shape),
            ));
        }
        let inputs = info
            .inputs
            .iter()
            .map(|i| {
                let data = if i.name == QUESTION_FEATURES { &question.data } else { &keys.data };
                Tensor { shape: i.shape.clone(), data: data.clone() }
            })
            .collect();
        let out = sel.run(inputs)?.swap_remove(0);
        let scores = out.as_f32().ok_or_else(|| contract(&self.origin, "frame_scores is not f32"))?.to_vec();
        if scores.iter().any(|s| !s.is_finite()) {
            return Err(contract(&self.origin, "the selector produced non-finite scores"));
        }
        Ok(scores)
    }

    /// Preprocesses and encodes an already decoded clip.
    pub fn encode(&self, video: Option<&Y4mVideo>, samples: Option<&[f32]>) -> Result<ClipFeatures, PipelineError> {
        self.encode_span(video, samples, ClipSpan::Whole)
    }

    /// [`Student::encode`] on a part of the clip. A part other than the whole is located by the
    /// video's frames, so it needs a student that watches video; the audio is cut to the part's
    /// time (and must reach into it).
    pub fn encode_span(
        &self,
        video: Option<&Y4mVideo>,
        samples: Option<&[f32]>,
        span: ClipSpan,
    ) -> Result<ClipFeatures, PipelineError> {
        let mut timings = BTreeMap::new();
        let mut samples = samples;
        // The frames start..end of a part other than the whole; the audio is cut to their time.
        let mut part = None;
        if span != ClipSpan::Whole {
            let (Some(p), Some(v)) = (&self.manifest.video, video) else {
                return Err(match self.frame {
                    Some(_) => PipelineError::NeedsVideo,
                    None => PipelineError::Span(
                        "this student watches no video: only a whole clip can be encoded, not a part of it".into(),
                    ),
                });
            };
            let (start, end) = span.resolve(v.frame_count(), p.frames)?;
            if let (Some(s), Some(a)) = (samples, &self.manifest.audio) {
                let from = frame_sample(start, v.fps, a.sample_rate);
                let to = frame_sample(end, v.fps, a.sample_rate).min(s.len());
                if from >= to {
                    return Err(PipelineError::Span(format!(
                        "frames {start}..{end}: the audio ({} samples at {} Hz) ends before frame {start}",
                        s.len(),
                        a.sample_rate
                    )));
                }
                samples = Some(&s[from..to]);
            }
            part = Some((start, end));
        }
        let frame = match (&self.frame, video) {
            (Some(enc), Some(v)) => {
                let p = self.manifest.video.as_ref().ok_or_else(|| contract(&self.origin, "no video preprocessing"))?;
                let t = Instant::now();
                let (start, end) = part.unwrap_or((0, v.frame_count()));
                let indices: Vec<usize> =
                    sample_indices(end - start, p.frames).into_iter().map(|i| start + i).collect();
                let pixels = frames_tensor_at(v, p, &indices)?;
                timings.insert("preprocess_video".into(), ms(t));
                let t = Instant::now();
                let out = self.run_batched(enc.as_ref(), FRAME_ENCODER, pixels, p.frames)?;
                timings.insert(FRAME_ENCODER.into(), ms(t));
                Some(out)
            }
            (Some(_), None) => return Err(PipelineError::NeedsVideo),
            _ => None,
        };
        let audio = match (&self.audio, samples) {
            (Some((enc, mel)), Some(s)) => {
                let a = self.manifest.audio.as_ref().ok_or_else(|| contract(&self.origin, "no audio preprocessing"))?;
                let t = Instant::now();
                let segments = mel.segments(s);
                timings.insert("preprocess_audio".into(), ms(t));
                let t = Instant::now();
                let out = self.run_batched(enc.as_ref(), AUDIO_ENCODER, segments, a.segments)?;
                timings.insert(AUDIO_ENCODER.into(), ms(t));
                Some(out)
            }
            (Some(_), None) => return Err(PipelineError::NeedsAudio),
            _ => None,
        };
        Ok(ClipFeatures { frame, audio, timings_ms: timings })
    }

    /// Runs an encoder over `items` items in batches of its fixed batch size and concatenates
    /// the outputs (f32, `[items, ...]`).
    fn run_batched(
        &self,
        enc: &dyn StageSession,
        stage: &str,
        data: Vec<f32>,
        items: usize,
    ) -> Result<Tensor, PipelineError> {
        let info = self.manifest.stage(stage).ok_or_else(|| contract(&self.origin, format!("no {stage} stage")))?;
        let input = &info.inputs[0];
        let batch = input.shape[0];
        let chunk = input.len();
        if data.len() != chunk / batch * items {
            return Err(contract(&self.origin, format!("{stage}: preprocessing produced {} values", data.len())));
        }
        let mut out = Vec::new();
        for part in data.chunks(chunk) {
            let t =
                Tensor::f32(input.shape.clone(), part.to_vec()).map_err(|e| contract(&self.origin, e.to_string()))?;
            let mut res = enc.run(vec![t])?;
            match res.swap_remove(0).data {
                TensorData::F32(v) => out.extend(v),
                _ => return Err(contract(&self.origin, format!("{stage} output is not f32"))),
            }
        }
        let per_item = out.len() / items;
        Tensor::f32(vec![items, per_item], out).map_err(|e| contract(&self.origin, e.to_string()))
    }

    /// Answers a question from the part of a clip its selector finds relevant: the question is
    /// encoded, the selector scores the clip's `candidates` (from [`Student::encode_candidates`]),
    /// [`question_span`] turns the scores into frames `start..end`, and those are encoded as
    /// [`ClipSpan::Frames`] would encode them. Returns the answer (its timings include the
    /// selector's) and the part answered from.
    pub fn answer_selected(
        &self,
        question: &str,
        video: &Y4mVideo,
        samples: Option<&[f32]>,
        candidates: &(Vec<usize>, Tensor),
    ) -> Result<(Answer, (usize, usize)), PipelineError> {
        let q = self.question_features(question)?;
        let features = q.features.as_ref().ok_or_else(|| self.no_selector())?;
        let wanted = self.manifest.video.as_ref().map_or(1, |v| v.frames);
        let t = Instant::now();
        let scores = self.score_candidates(features, &candidates.1)?;
        let (start, end) = question_span(&scores, &candidates.0, video.frame_count(), wanted)
            .ok_or_else(|| PipelineError::Span("the clip has no frames to choose from".into()))?;
        let select_ms = ms(t);
        let clip = self.encode_span(Some(video), samples, ClipSpan::Frames { start, end })?;
        let mut answer = self.answer_with(q, &clip)?;
        answer.timings_ms.insert(SELECTOR.into(), select_ms);
        Ok((answer, (start, end)))
    }

    /// Answers one question about an encoded clip.
    pub fn answer(&self, question: &str, clip: &ClipFeatures) -> Result<Answer, PipelineError> {
        let q = self.question_features(question)?;
        self.answer_with(q, clip)
    }

    /// Runs the question encoder (when the student has one) on a question, timed.
    pub fn question_features(&self, question: &str) -> Result<QuestionFeatures, PipelineError> {
        let mut timings = BTreeMap::new();
        let features = match &self.question {
            Some((enc, tok)) => {
                let t = Instant::now();
                let tokens = tok.encode(question)?;
                timings.insert("tokenize".into(), ms(t));
                let t = Instant::now();
                let len = tokens.ids.len();
                let ids = Tensor::i64(vec![1, len], tokens.ids).map_err(|e| contract(&self.origin, e.to_string()))?;
                let mask = Tensor::i64(vec![1, len], tokens.mask).map_err(|e| contract(&self.origin, e.to_string()))?;
                let info = self.manifest.stage(QUESTION_ENCODER).map(|s| &s.inputs);
                let inputs = info
                    .into_iter()
                    .flatten()
                    .map(|i| if i.name == QUESTION_IDS { ids.clone() } else { mask.clone() })
                    .collect();
                let out = enc.run(inputs)?.swap_remove(0);
                timings.insert(QUESTION_ENCODER.into(), ms(t));
                Some(out)
            }
            None => {
                if question.trim().is_empty() {
                    return Err(TokenizerError::Empty.into());
                }
                None
            }
        };
        Ok(QuestionFeatures { question: question.to_string(), features, timings_ms: timings })
    }

    /// Answers a question, already encoded, about an encoded clip.
    pub fn answer_with(&self, q: QuestionFeatures, clip: &ClipFeatures) -> Result<Answer, PipelineError> {
        let QuestionFeatures { question, features: question_features, timings_ms: mut timings } = q;
        let head_info = self.manifest.stage(HEAD).ok_or_else(|| contract(&self.origin, "no head stage"))?;
        let mut inputs = Vec::with_capacity(head_info.inputs.len());
        for input in &head_info.inputs {
            let source = match input.name.as_str() {
                FRAME_FEATURES => clip.frame.as_ref().ok_or(PipelineError::NeedsVideo)?,
                AUDIO_FEATURES => clip.audio.as_ref().ok_or(PipelineError::NeedsAudio)?,
                _ => question_features.as_ref().ok_or_else(|| contract(&self.origin, "no question features"))?,
            };
            inputs.push(Tensor { shape: input.shape.clone(), data: source.data.clone() });
        }
        let t = Instant::now();
        let logits = self.head.run(inputs)?.swap_remove(0);
        timings.insert(HEAD.into(), ms(t));
        let logits = logits.as_f32().ok_or_else(|| contract(&self.origin, "answer_logits is not f32"))?;
        let probs = softmax(logits);
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        let top_k: Vec<Scored> = order
            .iter()
            .take(5)
            .map(|&i| Scored { answer: self.manifest.labels[i].clone(), confidence: probs[i] })
            .collect();
        let best = top_k.first().cloned().ok_or_else(|| contract(&self.origin, "the head produced no logits"))?;
        if !best.confidence.is_finite() {
            return Err(contract(&self.origin, "the head produced non-finite logits"));
        }
        Ok(Answer {
            question,
            answer: best.answer,
            confidence: best.confidence,
            top_k,
            backend: self.backend.to_string(),
            timings_ms: timings,
        })
    }
}

/// Runs a loaded stage once on zero inputs, so first-run costs (code paged in, buffers sized)
/// are paid and measured at load, and a stage that cannot run fails here, not mid-answer.
fn warm_up(info: &StageInfo, session: &dyn StageSession) -> Result<(), BackendError> {
    let inputs = info
        .inputs
        .iter()
        .map(|t| {
            let n = t.len();
            let data = match t.dtype {
                DType::F32 => TensorData::F32(vec![0.0; n]),
                DType::I64 => TensorData::I64(vec![0; n]),
                DType::I32 => TensorData::I32(vec![0; n]),
                DType::U8 => TensorData::U8(vec![0; n]),
                DType::I8 => TensorData::I8(vec![0; n]),
                DType::Bool => TensorData::Bool(vec![false; n]),
            };
            Tensor { shape: t.shape.clone(), data }
        })
        .collect();
    session.run(inputs).map(|_| ())
}

/// Warms up every loaded stage ([`warm_up`]) and builds the load-time plan, see
/// [`crate::budget`]; `resident_before` is the process's resident memory when loading began.
pub fn warm_up_and_plan(
    m: &Manifest,
    resident_before: u64,
    sessions: &[(&str, &dyn StageSession)],
) -> Result<MemoryPlan, BackendError> {
    for (name, session) in sessions {
        if let Some(info) = m.stage(name) {
            warm_up(info, *session)?;
        }
    }
    let mut plan = MemoryPlan::default();
    let weights: u64 = sessions.iter().map(|(_, s)| s.memory().weights).sum();
    let (peak_stage, peak) =
        sessions.iter().map(|(n, s)| (*n, s.memory().activations)).max_by_key(|x| x.1).unwrap_or(("", 0));
    match crate::budget::rss() {
        Some((now, _)) => plan.add("resident after load and warm-up (code, package, weights, buffers)", now),
        None => plan.add("resident before load + weights + peak activations", resident_before + weights + peak),
    }
    for (name, s) in sessions {
        plan.detail(format!("{name} weights"), s.memory().weights);
    }
    plan.detail(format!("activations (peak: {peak_stage})"), peak);
    let f32s = |n: usize| (n * 4) as u64;
    let features: usize = m.stage(HEAD).map_or(0, |h| h.inputs.iter().map(|i| i.len()).sum());
    let video = m.video.as_ref().map_or(0, |v| f32s(v.frames * 3 * v.height * v.width));
    let audio = m.audio.as_ref().map_or(0, |a| f32s(a.segments * a.n_mels * a.segment_frames + 3 * a.n_fft));
    plan.add("preprocessing and features", video + audio + f32s(features));
    Ok(plan)
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_stable_and_normalised() {
        let p = softmax(&[1000.0, 1000.0, -1000.0]);
        assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6 && p[2] == 0.0);
        assert!((softmax(&[0.1, 0.2, 0.3]).iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn spans_resolve_inside_the_clip() {
        assert_eq!(ClipSpan::Whole.resolve(128, 16).unwrap(), (0, 128));
        assert_eq!(ClipSpan::Recent.resolve(128, 16).unwrap(), (112, 128));
        assert_eq!(ClipSpan::Recent.resolve(10, 16).unwrap(), (0, 10), "a short clip gives all it has");
        assert_eq!(ClipSpan::Frames { start: 40, end: 56 }.resolve(128, 16).unwrap(), (40, 56));
        assert_eq!(ClipSpan::Frames { start: 120, end: 128 }.resolve(128, 16).unwrap(), (120, 128));
        let past = ClipSpan::Frames { start: 120, end: 129 }.resolve(128, 16).unwrap_err().to_string();
        assert!(past.contains("120..129") && past.contains("only 128 frames"), "{past}");
        let empty = ClipSpan::Frames { start: 5, end: 5 }.resolve(128, 16).unwrap_err().to_string();
        assert!(empty.contains("5..5") && empty.contains("empty"), "{empty}");
        assert!(ClipSpan::Whole.resolve(0, 16).is_err());
    }

    #[test]
    fn frames_start_at_the_nearest_sample() {
        assert_eq!(frame_sample(0, (8, 1), 16000), 0);
        assert_eq!(frame_sample(16, (8, 1), 16000), 32000);
        // 7 fps: frame 1 starts at 2285.71... samples.
        assert_eq!(frame_sample(1, (7, 1), 16000), 2286);
        assert_eq!(frame_sample(7, (7, 1), 16000), 16000);
        // NTSC 30000/1001: frame 1 at 533.866..., frame 3 at 1601.6.
        assert_eq!(frame_sample(1, (30000, 1001), 16000), 534);
        assert_eq!(frame_sample(3, (30000, 1001), 16000), 1602);
        // At 2 fps and 3 Hz, frame 1 starts at 1.5 samples: a half rounds up.
        assert_eq!(frame_sample(1, (2, 1), 3), 2);
        assert_eq!(frame_sample(1_000_000_000, (30000, 1001), 48000), 1_601_600_000_000);
    }
}
