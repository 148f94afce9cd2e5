//! The streaming engine: watch and listen continuously, answer from what was seen and heard.
//!
//! Threads (see `docs/live.md`):
//! - one capture thread per source fills preallocated buffers of a bounded [`handoff`]
//!   (dropping the oldest and counting it when the encoder is behind; never an unbounded queue);
//!   a lost device is reopened once a second while answers go on from what the rings hold;
//! - one encode thread per modality: the [`paths`] sample frames at the student's rate,
//!   preprocess them and the audio as they arrive, batch to the encoders' fixed batch sizes and
//!   push features, with timestamps, into fixed-capacity [`ring`]s;
//! - the caller's thread answers: [`Live::ask`] copies the entries a [`Selector`] chooses out of
//!   the rings (holding each ring's lock only for the copy, so capture never stops) and runs the
//!   question encoder and the head.
//!
//! The per-clip [`crate::pipeline::Student`] API runs the same stages; this engine only changes
//! when they run.

pub mod handoff;
pub mod paths;
pub mod ring;
pub mod select;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::backend::BackendError;
use crate::budget::{Budget, BudgetError, MemoryPlan};
use crate::capture::{AudioBlock, AudioSource, CaptureError, Frame, FrameSource};
use crate::contract::{AUDIO_ENCODER, FRAME_ENCODER, SELECTOR, SELECTOR_KEYS};
use crate::manifest::Manifest;
use crate::pipeline::{Answer, ClipFeatures, PipelineError, Student};
use crate::preprocess::image::sample_indices;
use crate::stream::select::question_span;
use crate::tensor::Tensor;

pub use handoff::{Handoff, Overflow};
pub use paths::{AudioPath, KeyStage, VideoPath, per_item};
pub use ring::FeatureRing;
pub use select::{Selection, Selector};

/// Frames per second sampled from a camera when neither the package nor the caller says.
pub const DEFAULT_FRAME_RATE: f64 = 8.0;
/// Samples per audio block a source delivers (20 ms at 16 kHz).
pub fn audio_block(rate: u32) -> usize {
    (rate as usize / 50).max(1)
}

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Seconds of features the rings hold.
    pub history_s: f64,
    /// Frames per second taken from the camera into the frame encoder (the student's sampling
    /// rate, not the camera's).
    pub frame_rate: f64,
    /// Log-mel frames between the starts of consecutive audio segments (1: every hop).
    pub audio_stride: usize,
    /// Which entries a question looks at.
    pub selection: Selection,
    /// What capture does when encoding falls behind.
    pub overflow: Overflow,
    /// A copy of every audio block goes here as it is encoded (for a listener of spoken
    /// questions); closed when the audio ends. Make it `DropOldest` so a slow listener never holds
    /// up encoding.
    pub audio_tap: Option<Arc<Handoff<AudioBlock>>>,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            history_s: 30.0,
            frame_rate: DEFAULT_FRAME_RATE,
            audio_stride: 1,
            selection: Selection::Uniform { window: None },
            overflow: Overflow::DropOldest,
            audio_tap: None,
        }
    }
}

/// What the sources deliver, for the memory plan before the first frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceShape {
    /// Bytes of the largest frame, and its width and height; `None` without video.
    pub video: Option<(usize, usize, usize)>,
    /// Samples of the largest audio block; `None` without audio.
    pub audio: Option<usize>,
}

/// Why live answering failed.
#[derive(Debug, Error)]
pub enum LiveError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Budget(Box<BudgetError>),
    #[error("{0}")]
    Config(String),
    #[error("nothing {0} yet: the {1} has not produced features (wait a moment, or check the source)")]
    NotYet(&'static str, &'static str),
}

impl From<BudgetError> for LiveError {
    fn from(e: BudgetError) -> Self {
        LiveError::Budget(Box::new(e))
    }
}

/// Ring sizes and the memory the engine adds to the student's plan.
#[derive(Debug, Clone)]
pub struct LivePlan {
    /// Frame and audio feature ring capacities (entries).
    pub frame_entries: usize,
    pub audio_entries: usize,
    /// Seconds of history the rings hold.
    pub history_s: f64,
    /// The student's load-time plan plus the engine's buffers and rings.
    pub memory: MemoryPlan,
    /// Set when the history was shortened to fit the budget: what was asked for.
    pub shortened_from: Option<f64>,
}

/// Entries per second each ring receives.
fn rates(m: &Manifest, cfg: &LiveConfig) -> (f64, f64) {
    let audio =
        m.audio.as_ref().map_or(0.0, |a| f64::from(a.sample_rate) / a.hop as f64 / cfg.audio_stride.max(1) as f64);
    (cfg.frame_rate, audio)
}

/// Values per frame key the engine keeps beside each frame's features: the student's key length
/// when the selection is by question and the student has a selector, else `None`.
fn key_len(student: &Student, cfg: &LiveConfig) -> Option<usize> {
    if cfg.selection == Selection::Question { student.key_len() } else { None }
}

/// The memory plan of a live session: the student's load-time plan, then the hand-off slots,
/// conversion and batch buffers, and the feature rings for `cfg.history_s`. With a budget the
/// history is shortened until the plan fits (at least one head's worth of entries), and the
/// plan says so; if even that does not fit, the error carries the breakdown.
pub fn plan(
    student: &Student,
    shape: SourceShape,
    cfg: &LiveConfig,
    budget: Option<&Budget>,
) -> Result<LivePlan, LiveError> {
    let m = student.manifest();
    let build = |history: f64| -> LivePlan {
        let mut memory = student.memory_plan().clone();
        let (frame_rate, audio_rate) = rates(m, cfg);
        let mut frame_entries = 0;
        let mut audio_entries = 0;
        if let (Some(v), Some(stage), Some((bytes, w, h))) = (&m.video, m.stage(FRAME_ENCODER), shape.video) {
            frame_entries = ((history * frame_rate).ceil() as usize).max(v.frames);
            let dim = per_item(&stage.outputs[0]);
            let keys = key_len(student, cfg).unwrap_or(0);
            memory.add(
                format!("video hand-off ({} frames of {bytes} bytes)", handoff::SLOTS),
                (handoff::SLOTS * bytes) as u64,
            );
            memory.add("frame conversion and encoder batch", VideoPath::bytes(v, &stage.inputs[0], w, h));
            let what = if keys > 0 { format!("{dim} + {keys} key") } else { dim.to_string() };
            memory.add(
                format!("frame feature ring ({frame_entries} x {what} f32)"),
                FeatureRing::bytes_for(frame_entries, dim + keys),
            );
        }
        if let (Some(a), Some(stage), Some(block)) = (&m.audio, m.stage(AUDIO_ENCODER), shape.audio) {
            audio_entries = ((history * audio_rate).ceil() as usize).max(a.segments);
            let dim = per_item(&stage.outputs[0]);
            memory.add(
                format!("audio hand-off ({} blocks of {block} samples)", handoff::SLOTS),
                (handoff::SLOTS * block * 4) as u64,
            );
            memory.add("log-mel and encoder batch", AudioPath::bytes(a, &stage.inputs[0], block));
            memory.add(
                format!("audio feature ring ({audio_entries} x {dim} f32)"),
                FeatureRing::bytes_for(audio_entries, dim),
            );
        }
        LivePlan { frame_entries, audio_entries, history_s: history, memory, shortened_from: None }
    };
    let wanted = build(cfg.history_s);
    let Some(b) = budget else { return Ok(wanted) };
    if wanted.memory.total() <= b.bytes {
        return Ok(wanted);
    }
    // Shorten the history, halving until it fits or reaches one head's worth of entries.
    let mut history = cfg.history_s;
    loop {
        let p = build(history);
        let minimal = m.video.as_ref().is_none_or(|v| p.frame_entries <= v.frames)
            && m.audio.as_ref().is_none_or(|a| p.audio_entries <= a.segments);
        if p.memory.total() <= b.bytes {
            return Ok(LivePlan { shortened_from: Some(cfg.history_s), ..p });
        }
        if minimal {
            p.memory.check(b.bytes, &b.board)?;
        }
        history /= 2.0;
    }
}

/// Counters shared by the threads.
#[derive(Default)]
struct Counters {
    frames_captured: AtomicU64,
    frames_dropped: AtomicU64,
    source_frames_dropped: AtomicU64,
    source_frames_corrupt: AtomicU64,
    source_audio_dropped: AtomicU64,
    frames_corrupt: AtomicU64,
    frames_sampled: AtomicU64,
    blocks_captured: AtomicU64,
    audio_dropped: AtomicU64,
    segments: AtomicU64,
}

struct Shared {
    /// Frame entries: the frame's features (`frame_dim` values), then its key when kept.
    frames: Mutex<FeatureRing>,
    frame_dim: usize,
    audio: Mutex<FeatureRing>,
    counters: Counters,
    stop: AtomicBool,
    /// Per source: a message while it is lost or failed.
    video_state: Mutex<Option<String>>,
    audio_state: Mutex<Option<String>>,
    /// Encode threads still running, and a signal when one ends.
    running: Mutex<usize>,
    ended: Condvar,
    /// First encoder failure (the thread stops).
    failure: Mutex<Option<String>>,
}

impl Shared {
    fn set(slot: &Mutex<Option<String>>, v: Option<String>) {
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }
    fn get(slot: &Mutex<Option<String>>) -> Option<String> {
        slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A one-line status of a running engine.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LiveStatus {
    pub seconds: f64,
    pub frames_captured: u64,
    pub frames_encoded: u64,
    pub frames_dropped: u64,
    pub frames_corrupt: u64,
    pub audio_blocks: u64,
    pub audio_segments: u64,
    pub audio_dropped: u64,
    pub frame_ring: (usize, usize),
    pub audio_ring: (usize, usize),
    pub video_source: Option<String>,
    pub audio_source: Option<String>,
    pub failure: Option<String>,
    /// Resident memory now, MiB (Linux).
    pub rss_mib: Option<f64>,
}

impl LiveStatus {
    /// `12.0 s | video 15.0 fps captured, 8.0 encoded, 0 dropped | ring 96/240 | audio ...`.
    pub fn line(&self) -> String {
        let s = self.seconds.max(1e-9);
        let mut parts = vec![format!("{:.1} s", self.seconds)];
        if self.frame_ring.1 > 0 {
            parts.push(format!(
                "video {:.1} fps captured, {:.1} encoded, {} dropped, {} corrupt, ring {}/{}",
                self.frames_captured as f64 / s,
                self.frames_encoded as f64 / s,
                self.frames_dropped,
                self.frames_corrupt,
                self.frame_ring.0,
                self.frame_ring.1
            ));
        }
        if self.audio_ring.1 > 0 {
            parts.push(format!(
                "audio {:.1} segments/s, {} overruns, ring {}/{}",
                self.audio_segments as f64 / s,
                self.audio_dropped,
                self.audio_ring.0,
                self.audio_ring.1
            ));
        }
        if let Some(rss) = self.rss_mib {
            parts.push(format!("RSS {rss:.1} MiB"));
        }
        for state in [&self.video_source, &self.audio_source, &self.failure].into_iter().flatten() {
            parts.push(state.clone());
        }
        parts.join(" | ")
    }
}

/// An answer from the rings, with what it looked at.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveAnswer {
    #[serde(flatten)]
    pub answer: Answer,
    /// From the question to the answer, snapshot included.
    pub latency_ms: f64,
    /// Time span (seconds since the sources started) of the frames and audio looked at.
    pub frames_span_s: Option<(f64, f64)>,
    pub audio_span_s: Option<(f64, f64)>,
    /// The selection that chose the entries (`uniform`, `recent`, `question`; `uniform` when
    /// `question` was asked of a student without a selector).
    pub selection: &'static str,
}

/// A running live session.
pub struct Live {
    student: Arc<Student>,
    shared: Arc<Shared>,
    selection: Selection,
    started: Instant,
    encoders: Vec<JoinHandle<()>>,
    plan: LivePlan,
    video_desc: Option<String>,
    audio_desc: Option<String>,
}

fn wait_or_stop(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a capture loop: the source fills buffers of the hand-off (`count` publishes its counters
/// after every read); a lost source is reopened once a second.
fn capture_loop<B: Send + 'static>(
    source: &mut impl Capture<B>,
    hand: &Handoff<B>,
    shared: &Shared,
    state: &Mutex<Option<String>>,
    count: fn(&Counters, crate::capture::SourceStats),
) {
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(mut buf) = hand.acquire() else { break };
        let read = source.fill(&mut buf);
        count(&shared.counters, source.stats());
        match read {
            Ok(true) => hand.publish(buf),
            Ok(false) => {
                hand.give_back(buf);
                break;
            }
            Err(e) if e.is_lost() => {
                hand.give_back(buf);
                log::warn!("{}", crate::error_line(&e));
                Shared::set(state, Some(format!("{} lost, reopening", source.describe())));
                while !shared.stop.load(Ordering::Relaxed) {
                    wait_or_stop(&shared.stop, Duration::from_secs(1));
                    if source.reopen().is_ok() {
                        Shared::set(state, None);
                        break;
                    }
                }
            }
            Err(e) => {
                hand.give_back(buf);
                let line = crate::error_line(&e);
                log::error!("{line}");
                Shared::set(state, Some(format!("source failed: {line}")));
                break;
            }
        }
    }
    hand.close();
}

impl Live {
    /// Plans memory (shortening the history to fit the student's budget, see [`plan`]) and
    /// starts the capture and encode threads. The student must watch if `video` is given and
    /// listen if `audio` is; a student that needs a modality needs its source.
    pub fn start(
        student: Arc<Student>,
        video: Option<Box<dyn FrameSource>>,
        audio: Option<Box<dyn AudioSource>>,
        cfg: LiveConfig,
    ) -> Result<Live, LiveError> {
        let m = student.manifest().clone();
        let watches = m.stage(FRAME_ENCODER).is_some();
        let listens = m.stage(AUDIO_ENCODER).is_some();
        match (watches, video.is_some(), listens, audio.is_some()) {
            (true, false, _, _) => return Err(PipelineError::NeedsVideo.into()),
            (_, _, true, false) => return Err(PipelineError::NeedsAudio.into()),
            (false, true, _, _) => {
                return Err(LiveError::Config("this student does not watch video: drop the video source".into()));
            }
            (_, _, false, true) => {
                return Err(LiveError::Config("this student does not listen: drop the audio source".into()));
            }
            _ => {}
        }
        if !(cfg.frame_rate.is_finite() && cfg.frame_rate > 0.0 && cfg.history_s.is_finite() && cfg.history_s > 0.0) {
            return Err(LiveError::Config(format!(
                "the frame rate ({}) and the history ({} s) must be positive",
                cfg.frame_rate, cfg.history_s
            )));
        }
        if let Some(a) = &audio
            && let Some(p) = &m.audio
            && a.sample_rate() != p.sample_rate
        {
            return Err(LiveError::Config(format!(
                "{} delivers {} Hz but the student listens at {} Hz",
                a.describe(),
                a.sample_rate(),
                p.sample_rate
            )));
        }
        let shape = SourceShape {
            video: video.as_ref().map(|v| (v.max_frame_bytes(), v.size().0, v.size().1)),
            audio: audio.as_ref().map(|a| a.max_block_samples()),
        };
        let plan = plan(&student, shape, &cfg, student.budget())?;
        if let (Some(from), Some(b)) = (plan.shortened_from, student.budget()) {
            log::warn!(
                "the {} budget does not fit {from} s of history: keeping {} s ({})",
                b.board,
                plan.history_s,
                plan.memory.breakdown()
            );
        }
        let dim = |stage: &str| m.stage(stage).map_or(1, |s| per_item(&s.outputs[0]));
        let shared = Arc::new(Shared {
            frames: Mutex::new(FeatureRing::new(
                plan.frame_entries,
                dim(FRAME_ENCODER) + key_len(&student, &cfg).unwrap_or(0),
            )),
            frame_dim: dim(FRAME_ENCODER),
            audio: Mutex::new(FeatureRing::new(plan.audio_entries, dim(AUDIO_ENCODER))),
            counters: Counters::default(),
            stop: AtomicBool::new(false),
            video_state: Mutex::new(None),
            audio_state: Mutex::new(None),
            running: Mutex::new(0),
            ended: Condvar::new(),
            failure: Mutex::new(None),
        });
        let mut encoders = Vec::new();
        let video_desc = video.as_ref().map(|v| v.describe());
        let audio_desc = audio.as_ref().map(|a| a.describe());
        if let (Some(source), Some(p), Some(stage)) = (video, m.video.clone(), m.stage(FRAME_ENCODER).cloned()) {
            let (bytes, w, h) = shape.video.unwrap_or_default();
            let hand =
                Arc::new(Handoff::new(cfg.overflow, || Frame { data: Vec::with_capacity(bytes), ..Frame::default() }));
            spawn_capture(
                "edgeqa-camera",
                source,
                Arc::clone(&hand),
                Arc::clone(&shared),
                |s| &s.video_state,
                |c, st| {
                    c.frames_captured.store(st.delivered, Ordering::Relaxed);
                    c.source_frames_dropped.store(st.dropped, Ordering::Relaxed);
                    c.source_frames_corrupt.store(st.corrupt, Ordering::Relaxed);
                },
            )?;
            let mut path = VideoPath::new(&p, &stage.inputs[0], cfg.frame_rate, w, h);
            let (student, shared2) = (Arc::clone(&student), Arc::clone(&shared));
            // With the question selection, each frame's key is made as the frame is encoded.
            let keys_input = key_len(&student, &cfg).and(m.stage(SELECTOR_KEYS)).map(|s| s.inputs[0].clone());
            encoders.push(spawn_encoder("edgeqa-video", &shared, move || {
                let session = student.stage_session(FRAME_ENCODER).ok_or(EncodeStopped::NoStage(FRAME_ENCODER))?;
                let keys = match &keys_input {
                    Some(info) => {
                        Some((student.stage_session(SELECTOR_KEYS).ok_or(EncodeStopped::NoStage(SELECTOR_KEYS))?, info))
                    }
                    None => None,
                };
                while let Some(frame) = hand.take() {
                    let full = path.ingest(&frame);
                    shared2.counters.frames_dropped.store(hand.dropped(), Ordering::Relaxed);
                    hand.release(frame);
                    match full {
                        Ok(true) => path.encode(session, keys, &shared2.frames)?,
                        Ok(false) => {}
                        Err(e) => log::warn!("frame skipped: {e}"),
                    }
                    shared2.counters.frames_corrupt.store(path.corrupt, Ordering::Relaxed);
                    shared2.counters.frames_sampled.store(path.sampled, Ordering::Relaxed);
                    if shared2.stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                }
                Ok(path.encode(session, keys, &shared2.frames)?)
            })?);
        }
        if let (Some(source), Some(p), Some(stage)) = (audio, m.audio.clone(), m.stage(AUDIO_ENCODER).cloned()) {
            let block = shape.audio.unwrap_or(1);
            let hand = Arc::new(Handoff::new(cfg.overflow, || AudioBlock {
                samples: Vec::with_capacity(block),
                ..AudioBlock::default()
            }));
            spawn_capture(
                "edgeqa-mic",
                source,
                Arc::clone(&hand),
                Arc::clone(&shared),
                |s| &s.audio_state,
                |c, st| {
                    c.blocks_captured.store(st.delivered, Ordering::Relaxed);
                    c.source_audio_dropped.store(st.dropped, Ordering::Relaxed);
                },
            )?;
            let mut path = AudioPath::new(&p, &stage.inputs[0], cfg.audio_stride, block);
            let (student, shared2) = (Arc::clone(&student), Arc::clone(&shared));
            let tap = cfg.audio_tap.clone();
            encoders.push(spawn_encoder("edgeqa-audio", &shared, move || {
                struct CloseOnExit(Option<Arc<Handoff<AudioBlock>>>);
                impl Drop for CloseOnExit {
                    fn drop(&mut self) {
                        if let Some(t) = &self.0 {
                            t.close();
                        }
                    }
                }
                let tap = CloseOnExit(tap);
                let session = student.stage_session(AUDIO_ENCODER).ok_or(EncodeStopped::NoStage(AUDIO_ENCODER))?;
                while let Some(b) = hand.take() {
                    if let Some(t) = &tap.0
                        && let Some(mut copy) = t.acquire()
                    {
                        copy.samples.clear();
                        copy.samples.extend_from_slice(&b.samples);
                        copy.timestamp = b.timestamp;
                        t.publish(copy);
                    }
                    let r = path.ingest(&b.samples, b.timestamp.as_secs_f64(), session, &shared2.audio);
                    shared2.counters.audio_dropped.store(hand.dropped(), Ordering::Relaxed);
                    hand.release(b);
                    r?;
                    shared2.counters.segments.store(path.segments(), Ordering::Relaxed);
                    if shared2.stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                }
                path.finish(session, &shared2.audio)?;
                shared2.counters.segments.store(path.segments(), Ordering::Relaxed);
                Ok(())
            })?);
        }
        Ok(Live {
            student,
            shared,
            selection: cfg.selection,
            started: Instant::now(),
            encoders,
            plan,
            video_desc,
            audio_desc,
        })
    }

    /// The ring sizes and the memory plan in force.
    pub fn plan(&self) -> &LivePlan {
        &self.plan
    }

    /// What the sources are.
    pub fn sources(&self) -> (Option<&str>, Option<&str>) {
        (self.video_desc.as_deref(), self.audio_desc.as_deref())
    }

    /// The student answering.
    pub fn student(&self) -> &Student {
        &self.student
    }

    /// Counters, ring fill and source states now.
    pub fn status(&self) -> LiveStatus {
        let c = &self.shared.counters;
        let fill = |r: &Mutex<FeatureRing>| {
            let r = r.lock().unwrap_or_else(|p| p.into_inner());
            (r.len(), r.capacity(), r.pushed())
        };
        let (fl, fc, fp) = fill(&self.shared.frames);
        let (al, ac, _) = fill(&self.shared.audio);
        LiveStatus {
            seconds: self.started.elapsed().as_secs_f64(),
            frames_captured: c.frames_captured.load(Ordering::Relaxed),
            frames_encoded: fp,
            frames_dropped: c.frames_dropped.load(Ordering::Relaxed) + c.source_frames_dropped.load(Ordering::Relaxed),
            frames_corrupt: c.frames_corrupt.load(Ordering::Relaxed) + c.source_frames_corrupt.load(Ordering::Relaxed),
            audio_blocks: c.blocks_captured.load(Ordering::Relaxed),
            audio_segments: c.segments.load(Ordering::Relaxed),
            audio_dropped: c.audio_dropped.load(Ordering::Relaxed) + c.source_audio_dropped.load(Ordering::Relaxed),
            frame_ring: if self.plan.frame_entries > 0 { (fl, fc) } else { (0, 0) },
            audio_ring: if self.plan.audio_entries > 0 { (al, ac) } else { (0, 0) },
            video_source: Shared::get(&self.shared.video_state),
            audio_source: Shared::get(&self.shared.audio_state),
            failure: Shared::get(&self.shared.failure),
            rss_mib: crate::budget::rss().map(|(now, _)| now as f64 / crate::budget::MIB),
        }
    }

    /// Waits until every source has ended and its data is encoded (file sources without
    /// looping); returns at once if an encoder failed.
    pub fn wait_until_drained(&self) {
        let mut running = self.shared.running.lock().unwrap_or_else(|p| p.into_inner());
        while *running > 0 {
            running = self.shared.ended.wait(running).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// True once every encode thread has ended.
    pub fn drained(&self) -> bool {
        *self.shared.running.lock().unwrap_or_else(|p| p.into_inner()) == 0
    }

    /// Copies the first `dim` values (the features; `None`: all) of the selected entries of one
    /// ring into a `[wanted, dim]` tensor: those the live
    /// selection chooses, or with `between` those spread uniformly over the entries stamped in
    /// that time span (the nearest entry when none is).
    fn snapshot(
        &self,
        ring: &Mutex<FeatureRing>,
        dim: Option<usize>,
        wanted: usize,
        between: Option<(f64, f64)>,
    ) -> Option<(Tensor, (f64, f64))> {
        let mut chosen = Vec::with_capacity(wanted);
        let ring = ring.lock().unwrap_or_else(|p| p.into_inner());
        match between {
            None => self.selection.select(&ring, wanted, &mut chosen),
            Some((from, to)) => {
                let n = ring.len();
                let inside: Vec<usize> = (0..n).filter(|&i| (from..=to).contains(&ring.stamp(i))).collect();
                match (inside.first(), inside.last()) {
                    (Some(&a), Some(&b)) => {
                        chosen.extend(sample_indices(b - a + 1, wanted).into_iter().map(|i| a + i));
                    }
                    _ if n > 0 => {
                        let nearest = (0..n)
                            .min_by(|&a, &b| (ring.stamp(a) - from).abs().total_cmp(&(ring.stamp(b) - from).abs()))
                            .unwrap_or(0);
                        chosen.resize(wanted, nearest);
                    }
                    _ => {}
                }
            }
        }
        if chosen.is_empty() {
            return None;
        }
        let dim = dim.unwrap_or(ring.dim()).min(ring.dim());
        let mut data = Vec::with_capacity(wanted * dim);
        for &i in &chosen {
            data.extend_from_slice(&ring.get(i)[..dim]);
        }
        let span = (ring.stamp(chosen[0]), ring.stamp(chosen[chosen.len() - 1]));
        drop(ring);
        Tensor::f32(vec![wanted, dim], data).ok().map(|t| (t, span))
    }

    /// The time span (seconds) of the frames the student's selector finds relevant to a
    /// question: R candidates spread over the frame ring are scored and [`question_span`] picks
    /// the part; `None` when the ring is empty.
    fn question_span_s(&self, q: &Tensor, r: usize) -> Result<Option<(f64, f64)>, LiveError> {
        let (candidates, picks, stamps) = {
            let ring = self.shared.frames.lock().unwrap_or_else(|p| p.into_inner());
            let n = ring.len();
            if n == 0 {
                return Ok(None);
            }
            let picks = sample_indices(n, r);
            let from = self.shared.frame_dim;
            let k = ring.dim().saturating_sub(from);
            let mut data = Vec::with_capacity(r * k);
            for &i in &picks {
                data.extend_from_slice(&ring.get(i)[from..]);
            }
            let stamps: Vec<f64> = (0..n).map(|i| ring.stamp(i)).collect();
            (Tensor::f32(vec![r, k], data).map_err(|e| LiveError::Config(e.to_string()))?, picks, stamps)
        };
        let wanted = self.student.manifest().video.as_ref().map_or(1, |v| v.frames);
        let scores = self.student.score_candidates(q, &candidates)?;
        Ok(question_span(&scores, &picks, stamps.len(), wanted).map(|(lo, hi)| (stamps[lo], stamps[hi - 1])))
    }

    /// Answers a question from what the rings hold now.
    pub fn ask(&self, question: &str) -> Result<LiveAnswer, LiveError> {
        let t = Instant::now();
        let m = self.student.manifest();
        let q = self.student.question_features(question)?;
        // The question selection needs the question's features and a selector; without one
        // the selection is uniform over everything held.
        let mut selection = self.selection;
        let mut between = None;
        let mut select_ms = None;
        if selection == Selection::Question {
            match (self.student.selector_candidates(), &q.features) {
                (Some(r), Some(f)) if self.plan.frame_entries > 0 => {
                    let ts = Instant::now();
                    between = Some(self.question_span_s(f, r)?.ok_or(LiveError::NotYet("seen", "camera"))?);
                    select_ms = Some(ts.elapsed().as_secs_f64() * 1e3);
                }
                _ => selection = Selection::Uniform { window: None },
            }
        }
        let frames = match &m.video {
            Some(v) if self.plan.frame_entries > 0 => {
                let dim = Some(self.shared.frame_dim);
                Some(
                    self.snapshot(&self.shared.frames, dim, v.frames, between)
                        .ok_or(LiveError::NotYet("seen", "camera"))?,
                )
            }
            _ => None,
        };
        let audio = match &m.audio {
            Some(a) if self.plan.audio_entries > 0 => Some(
                self.snapshot(&self.shared.audio, None, a.segments, between)
                    .ok_or(LiveError::NotYet("heard", "microphone"))?,
            ),
            _ => None,
        };
        let frames_span_s = frames.as_ref().map(|f| f.1);
        let audio_span_s = audio.as_ref().map(|a| a.1);
        let clip = ClipFeatures::from_features(frames.map(|f| f.0), audio.map(|a| a.0));
        let mut answer = self.student.answer_with(q, &clip)?;
        if let Some(ms) = select_ms {
            answer.timings_ms.insert(SELECTOR.into(), ms);
        }
        Ok(LiveAnswer {
            answer,
            latency_ms: t.elapsed().as_secs_f64() * 1e3,
            frames_span_s,
            audio_span_s,
            selection: selection.name(),
        })
    }

    /// Stops capture and encoding and returns the final status. Capture threads blocked in a
    /// device read are left to end with the process.
    pub fn stop(mut self) -> LiveStatus {
        self.shared.stop.store(true, Ordering::Relaxed);
        let status = self.status();
        for h in self.encoders.drain(..) {
            let _ = h.join();
        }
        status
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// Why an encode thread stopped.
#[derive(Debug, Error)]
enum EncodeStopped {
    #[error("the student has no `{0}` stage")]
    NoStage(&'static str),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("internal error (a panic in the encode thread)")]
    Panicked,
}

fn spawn_encoder(
    name: &str,
    shared: &Arc<Shared>,
    work: impl FnOnce() -> Result<(), EncodeStopped> + Send + 'static,
) -> Result<JoinHandle<()>, LiveError> {
    *shared.running.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    let shared = Arc::clone(shared);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // A panic is reported like an error, and the thread still counts itself out so that
            // nobody waits for it.
            let failed = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(EncodeStopped::Panicked),
            };
            if let Some(e) = failed {
                log::error!("encoding stopped: {e}");
                Shared::set(&shared.failure, Some(format!("encoding stopped: {e}")));
            }
            *shared.running.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
            shared.ended.notify_all();
        })
        .map_err(|e| LiveError::Config(format!("cannot start a thread: {e}")))
}

/// What a capture thread needs of a source, whichever its kind.
trait Capture<B>: Send {
    fn fill(&mut self, buf: &mut B) -> Result<bool, CaptureError>;
    fn stats(&self) -> crate::capture::SourceStats;
    fn reopen(&mut self) -> Result<(), CaptureError>;
    fn describe(&self) -> String;
}

impl Capture<Frame> for Box<dyn FrameSource> {
    fn fill(&mut self, buf: &mut Frame) -> Result<bool, CaptureError> {
        self.next_frame(buf)
    }
    fn stats(&self) -> crate::capture::SourceStats {
        self.as_ref().stats()
    }
    fn reopen(&mut self) -> Result<(), CaptureError> {
        self.as_mut().reopen()
    }
    fn describe(&self) -> String {
        self.as_ref().describe()
    }
}

impl Capture<AudioBlock> for Box<dyn AudioSource> {
    fn fill(&mut self, buf: &mut AudioBlock) -> Result<bool, CaptureError> {
        self.next_block(buf)
    }
    fn stats(&self) -> crate::capture::SourceStats {
        self.as_ref().stats()
    }
    fn reopen(&mut self) -> Result<(), CaptureError> {
        self.as_mut().reopen()
    }
    fn describe(&self) -> String {
        self.as_ref().describe()
    }
}

/// Starts a capture thread running [`capture_loop`] on `source`; `state` picks the source's
/// state slot and `count` publishes its counters after every read.
fn spawn_capture<B: Send + 'static>(
    name: &str,
    mut source: impl Capture<B> + 'static,
    hand: Arc<Handoff<B>>,
    shared: Arc<Shared>,
    state: fn(&Shared) -> &Mutex<Option<String>>,
    count: fn(&Counters, crate::capture::SourceStats),
) -> Result<(), LiveError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || capture_loop(&mut source, &hand, &shared, state(&shared), count))
        .map(|_| ())
        .map_err(|e| LiveError::Config(format!("cannot start a thread: {e}")))
}
