//! `edgeqa bench`: latency of a package on this device, on one backend or several side by side.
//!
//! Every stage of the package is a figure (`stage/<name>`), and for a student so are encoding
//! a clip (`clip`: reading and decoding, preprocessing, both encoders) and answering a question
//! from encoded features (`question`: tokenizer, question encoder and head; with a selector
//! stage also `question+selector`, which scores the selector's R candidates first). Each
//! figure is loaded and run once on every backend asked for (load and first-run times are kept
//! apart), warmed up, then timed in rounds in which the backends take turns, so that figures
//! side by side share the machine's state. `docs/benchmarks.md` documents the output.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use edgeqa::backend::{self, Backend, BackendChoice, StageSession};
use edgeqa::capture::y4m::Y4mVideo;
use edgeqa::contract::{AUDIO_FEATURES, CANDIDATE_KEYS, FRAME_FEATURES, HEAD, SELECTOR};
use edgeqa::manifest::{PackageKind, StageFormat, StageInfo};
use edgeqa::package::Package;
use edgeqa::pipeline::{ClipFeatures, Student};
use edgeqa::stream::select::question_span;
use edgeqa::tensor::Tensor;
use serde::Serialize;

use super::open_package;

/// Version of the JSON written by `--format json` and `jsonl`.
pub const SCHEMA: &str = "edgeqa-bench/1";
/// Runs per figure and backend when neither `--iterations` nor `--min-time` is given.
const DEFAULT_ITERATIONS: u32 = 20;
/// Most `--threads` accepted.
const MAX_THREADS: usize = 64;
/// Slowest nodes shown per figure and backend by the text forms of `--profile` (JSON has all).
const PROFILE_TOP: usize = 10;
/// With `--min-time`: the fewest timed runs per figure and backend.
const MIN_RUNS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON document with every raw sample (schema `edgeqa-bench/1`).
    Json,
    /// One JSON object per figure and backend, one per line.
    Jsonl,
    /// Comma-separated values, one row per figure and backend (no raw samples).
    Csv,
    /// A Markdown table.
    Md,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The package (.eqa): a student or a generic model.
    #[arg(long)]
    package: PathBuf,
    /// Backends, comma-separated: `auto`, `tract`, `wgpu`, `litert`, `tflite`, or `all` (every
    /// backend this build has that starts here and runs the package's format: tract and wgpu
    /// for ONNX, litert and tflite for TFLite). Several run side by side, with ratios to the first.
    #[arg(long, value_delimiter = ',', default_value = "auto")]
    backend: Vec<String>,
    /// CPU threads for tract's matrix products, comma-separated to compare (e.g. 1,2,4): every
    /// count is a configuration of its own on tract (wgpu runs once). Default: the `--board`
    /// profile's `threads`, else 1.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    threads: Vec<usize>,
    /// Board profile the figures are for: recorded with them, and the measured peak resident
    /// memory is compared with its budget.
    #[arg(long, value_name = "NAME")]
    board: Option<String>,
    /// Untimed runs after the first run, before timing.
    #[arg(long, default_value_t = 3, value_name = "N")]
    warmup: u32,
    /// Warm up for this long instead of a number of runs.
    #[arg(long, value_name = "SECONDS", conflicts_with = "warmup")]
    warmup_time: Option<f64>,
    /// Timed runs per figure and backend (default 20).
    #[arg(long, value_name = "N", conflicts_with_all = ["min_time", "max_time"])]
    iterations: Option<u32>,
    /// Time each figure on each backend at least this long (and at least 5 runs).
    #[arg(long, value_name = "SECONDS")]
    min_time: Option<f64>,
    /// With --min-time: stop after this long even with fewer than 5 runs (at least one runs).
    #[arg(long, value_name = "SECONDS", requires = "min_time")]
    max_time: Option<f64>,
    /// Rounds the timed runs are split into; in each the backends take turns.
    #[arg(long, default_value_t = 5, value_name = "N")]
    rounds: u32,
    /// Pause between one backend's turn and the next (to cool down), in seconds.
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    delay: f64,
    /// Pace the runs at this rate, like frames from a camera (e.g. 15): shows sustained
    /// behaviour and throttling rather than back-to-back speed.
    #[arg(long, value_name = "HZ")]
    rate: Option<f64>,
    /// A real input instead of synthetic data: `[STAGE:]NAME=FILE.npy` (STAGE when several
    /// stages have an input of that name).
    #[arg(long = "input", value_name = "[STAGE:]NAME=FILE.npy")]
    inputs: Vec<String>,
    /// The question of the `question` figure (students; default: the first words the
    /// tokenizer knows).
    #[arg(long)]
    question: Option<String>,
    /// Y4M video of the `clip` figure (a student's reading and decoding, preprocessing and
    /// encoders, as `edgeqa ask` pays for a clip); default: a synthetic 2 s clip in memory.
    #[arg(long, value_name = "FILE.y4m")]
    video: Option<PathBuf>,
    /// WAV audio of the `clip` figure (with or without `--video`, as the student needs).
    #[arg(long, value_name = "FILE.wav")]
    audio: Option<PathBuf>,
    /// Also time every node of each stage over RUNS runs, on each backend (wgpu: GPU timestamps
    /// where the adapter has them; tract: the wall clock of each node of its optimised plan).
    #[arg(long, value_name = "RUNS", value_parser = clap::value_parser!(u32).range(1..))]
    profile: Option<u32>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write the output to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// How many runs a figure gets on one backend.
#[derive(Debug, Clone, Copy, Serialize)]
struct Plan {
    warmup_runs: u32,
    warmup_s: Option<f64>,
    iterations: Option<u32>,
    min_time_s: Option<f64>,
    max_time_s: Option<f64>,
    rounds: u32,
    delay_s: f64,
    rate_hz: Option<f64>,
}

impl Plan {
    fn from_args(a: &Args) -> Result<Plan> {
        let positive = |v: Option<f64>, flag: &str| -> Result<()> {
            match v {
                Some(s) if !(s.is_finite() && s > 0.0) => bail!("{flag} must be a positive number, not {s}"),
                _ => Ok(()),
            }
        };
        positive(a.warmup_time, "--warmup-time")?;
        positive(a.min_time, "--min-time")?;
        positive(a.max_time, "--max-time")?;
        positive(a.rate, "--rate")?;
        if !(a.delay.is_finite() && a.delay >= 0.0) {
            bail!("--delay must be zero or more seconds, not {}", a.delay);
        }
        if a.iterations == Some(0) {
            bail!("--iterations must be at least 1");
        }
        if a.rounds == 0 {
            bail!("--rounds must be at least 1");
        }
        if let (Some(min), Some(max)) = (a.min_time, a.max_time)
            && max < min
        {
            bail!("--max-time {max} is shorter than --min-time {min}");
        }
        let iterations = match (a.iterations, a.min_time) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_ITERATIONS),
        };
        Ok(Plan {
            warmup_runs: a.warmup,
            warmup_s: a.warmup_time,
            iterations,
            min_time_s: a.min_time,
            max_time_s: a.max_time,
            rounds: a.rounds,
            delay_s: a.delay,
            rate_hz: a.rate,
        })
    }
}

/// Order statistics of the timed runs, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Stats {
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
    pub stdev: f64,
}

impl Stats {
    /// Nearest-rank percentiles, the sample standard deviation; `None` without samples.
    pub fn of(samples: &[f64]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let rank = |p: f64| s[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1];
        let mean = s.iter().sum::<f64>() / n as f64;
        let var = if n > 1 { s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
        Some(Stats {
            min: s[0],
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: s[n - 1],
            mean,
            stdev: var.sqrt(),
        })
    }
}

/// Memory seen while a figure ran on one backend.
#[derive(Debug, Clone, Copy, Serialize)]
struct Memory {
    /// Heap the load added (counted by the binary's allocator).
    load_heap_mib: f64,
    /// Most heap one run had live above what was live before the runs.
    run_heap_mib: f64,
    /// The process's peak resident set during the figure's runs (everything loaded counts).
    peak_rss_mib: Option<f64>,
}

/// One figure on one backend.
#[derive(Debug, Clone, Serialize)]
struct Figure {
    figure: String,
    backend: String,
    /// Why this backend (`auto`), or its adapter (`wgpu`).
    backend_note: String,
    threads: usize,
    load_ms: f64,
    first_run_ms: f64,
    runs: usize,
    stats: Stats,
    /// Runs per second at the mean.
    throughput_per_s: f64,
    /// This figure's p50 over the first backend's (several backends only).
    #[serde(skip_serializing_if = "Option::is_none")]
    p50_ratio: Option<f64>,
    /// `question+selector` only: its p50 over the `question` figure's p50 on the same backend
    /// and threads, timed in the same rounds (the selector's cost per question).
    #[serde(skip_serializing_if = "Option::is_none")]
    question_ratio: Option<f64>,
    memory: Memory,
    samples_ms: Vec<f64>,
    /// Per-node times (`--profile`, stages only).
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<backend::NodeProfile>,
    /// The `clip` figure's parts, p50 milliseconds over the timed runs: `read` (files
    /// only), `preprocess_video`, `frame_encoder`, `preprocess_audio`, `audio_encoder`.
    #[serde(skip_serializing_if = "Option::is_none")]
    parts_ms: Option<BTreeMap<String, f64>>,
}

/// A backend asked for that could not run, or a figure it could not load.
#[derive(Debug, Clone, Serialize)]
struct Skipped {
    backend: String,
    figure: Option<String>,
    reason: String,
}

#[derive(Debug, Serialize)]
struct PackageInfo {
    file: String,
    name: String,
    kind: String,
    bytes: u64,
    sha256: String,
}

#[derive(Debug, Serialize)]
struct Machine {
    cpu: String,
    cores: usize,
    os: &'static str,
    arch: &'static str,
}

#[derive(Debug, Serialize)]
struct BoardInfo {
    name: String,
    budget_mib: f64,
    /// The highest peak resident set of any figure, and whether it is within the budget.
    peak_rss_mib: Option<f64>,
    fits: Option<bool>,
}

#[derive(Debug, Serialize)]
struct Report {
    schema: &'static str,
    edgeqa_version: &'static str,
    package: PackageInfo,
    machine: Machine,
    board: Option<BoardInfo>,
    plan: Plan,
    /// `synthetic` or the given `--input` files.
    inputs: Vec<String>,
    results: Vec<Figure>,
    skipped: Vec<Skipped>,
}

/// A figure's work on one backend: a loaded stage and its inputs, or a loaded student.
enum Work {
    Stage {
        session: Box<dyn StageSession>,
        inputs: Vec<Tensor>,
    },
    Question {
        student: Box<Student>,
        clip: ClipFeatures,
        question: String,
        /// With a selector: its R candidates' keys, scored on every run before the head.
        candidates: Option<Tensor>,
    },
    /// Encoding a clip: from files (read, decoded, preprocessed, encoded) or from a decoded
    /// synthetic clip; `parts` collects each run's per-part timings.
    Clip {
        student: Box<Student>,
        source: ClipSource,
        parts: RefCell<Vec<BTreeMap<String, f64>>>,
    },
}

/// Where the `clip` figure's clip comes from.
enum ClipSource {
    Files { video: Option<PathBuf>, audio: Option<PathBuf> },
    Decoded { video: Option<Y4mVideo>, samples: Option<Vec<f32>> },
}

impl Work {
    /// The backend that runs it (`auto` picks one per stage).
    fn backend(&self) -> &'static str {
        match self {
            Work::Stage { session, .. } => session.backend(),
            Work::Question { student, .. } | Work::Clip { student, .. } => student.backend().0,
        }
    }

    /// One run, tract's products on `threads` threads.
    fn run(&self, threads: usize) -> Result<()> {
        on_threads(threads, || -> Result<()> {
            match self {
                Work::Stage { session, inputs } => session.run(inputs.clone()).map(|_| ())?,
                Work::Question { student, clip, question, candidates: None } => {
                    student.answer(question, clip).map(|_| ())?
                }
                Work::Question { student, clip, question, candidates: Some(c) } => {
                    let q = student.question_features(question)?;
                    let f = q.features.as_ref().context("the selector needs question features")?;
                    let scores = student.score_candidates(f, c)?;
                    let frames: Vec<usize> = (0..scores.len()).collect();
                    let wanted = student.manifest().video.as_ref().map_or(1, |v| v.frames);
                    question_span(&scores, &frames, scores.len(), wanted).context("no candidates")?;
                    student.answer_with(q, clip).map(|_| ())?
                }
                Work::Clip { student, source, parts } => {
                    let clip = match source {
                        ClipSource::Files { video, audio } => {
                            student.encode_files(video.as_deref(), audio.as_deref())?
                        }
                        ClipSource::Decoded { video, samples } => student.encode(video.as_ref(), samples.as_deref())?,
                    };
                    parts.borrow_mut().push(clip.timings_ms);
                }
            }
            Ok(())
        })?
    }
}

#[cfg(feature = "tract")]
fn on_threads<R>(threads: usize, f: impl FnOnce() -> R) -> Result<R> {
    Ok(edgeqa::backend::tract::with_threads(threads, f)?)
}

#[cfg(not(feature = "tract"))]
fn on_threads<R>(threads: usize, f: impl FnOnce() -> R) -> Result<R> {
    if threads != 1 {
        bail!("--threads: this build has no tract backend, so there are no CPU threads to set");
    }
    Ok(f())
}

/// One backend, resolved.
struct Engine {
    name: String,
    threads: usize,
    note: String,
    backend: Box<dyn Backend>,
    choice: BackendChoice,
}

fn engines(
    asked: &[String],
    threads: &[usize],
    format: StageFormat,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<Engine>> {
    let mut out: Vec<Engine> = Vec::new();
    for &t in threads {
        if !(1..=MAX_THREADS).contains(&t) {
            bail!("--threads {t}: give 1 to {MAX_THREADS}");
        }
    }
    for a in asked {
        let a = a.trim();
        let (choices, optional): (Vec<BackendChoice>, bool) = match a {
            "all" if format == StageFormat::Tflite => (vec![BackendChoice::Litert, BackendChoice::Tflite], true),
            "all" => (vec![BackendChoice::Tract, BackendChoice::Wgpu], true),
            other => (vec![other.parse().map_err(|e: String| anyhow::anyhow!("--backend: {e}, or all"))?], false),
        };
        for choice in choices {
            match backend::select_for(choice, format, None) {
                Ok((b, reason)) => {
                    let name = b.name().to_string();
                    if out.iter().any(|e| e.name == name) {
                        continue;
                    }
                    // `auto` resolves to a named backend; the figures are that backend's.
                    let choice = match name.as_str() {
                        "tract" => BackendChoice::Tract,
                        "wgpu" => BackendChoice::Wgpu,
                        "tflite" => BackendChoice::Tflite,
                        "litert" => BackendChoice::Litert,
                        _ => choice,
                    };
                    // CPU threads mean nothing to wgpu, and the TFLite engines keep their own
                    // (tflite: one; litert: the library's default): they run once.
                    let counts: &[usize] = if name == "tract" { threads } else { &[1] };
                    let mut first = Some(b);
                    for &t in counts {
                        let backend = match first.take() {
                            Some(b) => b,
                            None => backend::select_for(choice, format, None)?.0,
                        };
                        out.push(Engine { name: name.clone(), threads: t, note: reason.clone(), backend, choice });
                    }
                }
                Err(e) if optional => skipped.push(Skipped {
                    backend: format!("{choice:?}").to_lowercase(),
                    figure: None,
                    reason: edgeqa::error_line(&e),
                }),
                Err(e) => return Err(e).context(format!("--backend {a}")),
            }
        }
    }
    if out.is_empty() {
        bail!("no backend asked for can run here");
    }
    Ok(out)
}

/// The `--input` files by stage and input name.
fn given_inputs(specs: &[String], pkg: &Package) -> Result<Vec<(String, String, Tensor)>> {
    let stages = &pkg.manifest().stages;
    let mut out: Vec<(String, String, Tensor)> = Vec::new();
    for spec in specs {
        let (target, file) =
            spec.split_once('=').with_context(|| format!("--input `{spec}`: expected [STAGE:]NAME=FILE.npy"))?;
        let (stage, name) = match target.split_once(':') {
            Some((s, n)) => (Some(s), n),
            None => (None, target),
        };
        let having: Vec<&StageInfo> = stages
            .iter()
            .filter(|s| stage.is_none_or(|st| st == s.name) && s.inputs.iter().any(|i| i.name == name))
            .collect();
        let st = match having.as_slice() {
            [one] => *one,
            [] => {
                let all: Vec<String> = stages
                    .iter()
                    .flat_map(|s| s.inputs.iter().map(move |i| format!("{}:{}", s.name, i.name)))
                    .collect();
                bail!("--input `{target}`: the package has no such input (inputs: {})", all.join(", "))
            }
            many => bail!(
                "--input `{name}`: stages {} all have it: write STAGE:{name}=FILE.npy",
                many.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(" and ")
            ),
        };
        if out.iter().any(|(s, n, _)| *s == st.name && n == name) {
            bail!("--input `{}:{name}` is given twice", st.name);
        }
        let info = st.inputs.iter().find(|i| i.name == name).context("input vanished")?;
        let t = Tensor::read_npy(Path::new(file))?;
        t.check(info, &format!("{file} (input `{}:{name}`)", st.name))?;
        out.push((st.name.clone(), name.to_string(), t));
    }
    Ok(out)
}

/// The question of the `question` figure: the first words of the vocabulary that are words.
fn default_question(pkg: &Package) -> Option<String> {
    let tok = pkg.manifest().tokenizer.as_ref()?;
    let words: Vec<&str> = tok
        .vocab
        .iter()
        .map(String::as_str)
        .filter(|w| w.chars().all(|c| c.is_alphabetic()) && w.len() > 1)
        .take(6)
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// Synthetic encoder features for the head, as a clip would give.
fn synthetic_clip(pkg: &Package) -> Result<ClipFeatures> {
    let head = pkg.manifest().stage(HEAD).context("the student has no head stage")?;
    let feature = |name: &str| -> Result<Option<Tensor>> {
        match head.inputs.iter().find(|i| i.name == name) {
            Some(i) => Ok(Some(Tensor::f32(vec![i.len()], edgeqa::synthetic::f32s(i.len(), 7))?)),
            None => Ok(None),
        }
    };
    Ok(ClipFeatures::from_features(feature(FRAME_FEATURES)?, feature(AUDIO_FEATURES)?))
}

/// A synthetic clip for the `clip` figure: 2 s of 320×240 video at 15 fps (a moving
/// gradient, decoded from Y4M in memory) and 2 s of a tone in noise at the student's rate.
fn synthetic_decoded_clip(pkg: &Package) -> Result<ClipSource> {
    let m = pkg.manifest();
    let video = match &m.video {
        Some(_) => {
            let (w, h, n) = (320usize, 240usize, 30usize);
            let frames: Vec<Vec<u8>> = (0..n)
                .map(|f| (0..w * h * 3).map(|i| ((i / 3 % w + i / 3 / w + 4 * f + i % 3 * 60) % 256) as u8).collect())
                .collect();
            let mut bytes = Vec::new();
            edgeqa::capture::y4m::write_y4m_420(&mut bytes, w, h, (15, 1), &frames)
                .context("cannot make the synthetic clip")?;
            Some(edgeqa::capture::y4m::parse_y4m(&bytes, "synthetic clip")?)
        }
        None => None,
    };
    let samples = m.audio.as_ref().map(|a| {
        let rate = a.sample_rate as usize;
        let noise = edgeqa::synthetic::f32s(2 * rate, 11);
        (0..2 * rate)
            .map(|i| 0.3 * (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() + 0.05 * noise[i])
            .collect()
    });
    Ok(ClipSource::Decoded { video, samples })
}

/// The p50 of each part of a `clip` figure's last `runs` runs (the timed ones).
fn clip_parts(work: &Work, runs: usize) -> Option<BTreeMap<String, f64>> {
    let Work::Clip { parts, .. } = work else { return None };
    let parts = parts.borrow();
    let timed = &parts[parts.len().saturating_sub(runs)..];
    let mut by_part: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for run in timed {
        for (k, v) in run {
            by_part.entry(k.clone()).or_default().push(*v);
        }
    }
    Some(by_part.into_iter().filter_map(|(k, v)| Some((k, Stats::of(&v)?.p50))).collect())
}

fn mib(b: u64) -> f64 {
    b as f64 / edgeqa::budget::MIB
}

/// A figure being measured on one backend.
struct Slot {
    /// Index into the figures measured together.
    figure: usize,
    engine: usize,
    work: Work,
    load_ms: f64,
    first_run_ms: f64,
    load_heap: u64,
    samples: Vec<f64>,
    time_s: f64,
    run_heap: u64,
    peak_rss: Option<u64>,
}

/// Paces runs at `rate` Hz.
struct Pacer {
    period: Option<Duration>,
    next: Instant,
}

impl Pacer {
    fn wait(&mut self) {
        if let Some(p) = self.period {
            let now = Instant::now();
            if self.next > now {
                std::thread::sleep(self.next - now);
            }
            self.next = self.next.max(now) + p;
        }
    }
}

fn progress(total: Option<u64>) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} runs")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// How a figure's work is loaded on an engine.
type Load<'a> = &'a dyn Fn(&Engine) -> Result<Work>;

/// Measures one figure on every engine that can load it.
fn measure(
    figure: &str,
    engines: &[Engine],
    plan: &Plan,
    load: Load<'_>,
    profile: Option<u32>,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<Figure>> {
    measure_together(&[(figure, load)], engines, plan, profile, skipped)
}

/// Measures figures side by side on every engine that can load them: in each round every
/// figure takes its turn on every engine, so figures compared with each other (`question` and
/// `question+selector`) share the machine's state as backends do.
fn measure_together(
    figures: &[(&str, Load<'_>)],
    engines: &[Engine],
    plan: &Plan,
    profile: Option<u32>,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<Figure>> {
    let mut slots = Vec::new();
    for (f, (figure, load), i, e) in
        figures.iter().enumerate().flat_map(|(f, fl)| engines.iter().enumerate().map(move |(i, e)| (f, fl, i, e)))
    {
        let heap0 = edgeqa::budget::heap().0;
        let t = Instant::now();
        let work = match load(e) {
            Ok(w) => w,
            Err(err) => {
                skipped.push(Skipped {
                    backend: e.name.clone(),
                    figure: Some(figure.to_string()),
                    reason: format!("{err:#}"),
                });
                continue;
            }
        };
        let load_ms = t.elapsed().as_secs_f64() * 1e3;
        let load_heap = edgeqa::budget::heap().0.saturating_sub(heap0);
        let t = Instant::now();
        work.run(e.threads).with_context(|| format!("{figure} on {}: the first run failed", e.name))?;
        let first_run_ms = t.elapsed().as_secs_f64() * 1e3;
        let warm_until = plan.warmup_s.map(|s| Instant::now() + Duration::from_secs_f64(s));
        let mut n = 0;
        while match warm_until {
            Some(t) => Instant::now() < t,
            None => n < plan.warmup_runs,
        } {
            work.run(e.threads)?;
            n += 1;
        }
        slots.push(Slot {
            figure: f,
            engine: i,
            work,
            load_ms,
            first_run_ms,
            load_heap,
            samples: Vec::new(),
            time_s: 0.0,
            run_heap: 0,
            peak_rss: None,
        });
    }
    let total = plan.iterations.map(|n| u64::from(n) * slots.len() as u64);
    let bar = progress(total);
    if let Some(b) = &bar {
        b.set_message(figures.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", "));
    }
    let rounds = plan.rounds as usize;
    let mut pacer = Pacer { period: plan.rate_hz.map(|hz| Duration::from_secs_f64(1.0 / hz)), next: Instant::now() };
    for round in 0..rounds {
        for (k, slot) in slots.iter_mut().enumerate() {
            let threads = engines[slot.engine].threads;
            if k > 0 || round > 0 {
                std::thread::sleep(Duration::from_secs_f64(plan.delay_s));
            }
            let (live0, _) = edgeqa::budget::heap();
            let rss_reset = edgeqa::budget::reset_peaks();
            // This round's share of the runs or of the time.
            let quota = plan.iterations.map(|n| {
                let n = n as usize;
                n / rounds + usize::from(round < n % rounds)
            });
            let until = plan.min_time_s.map(|s| s * (round + 1) as f64 / rounds as f64);
            let deadline = plan.max_time_s.map(|s| s * (round + 1) as f64 / rounds as f64);
            let mut done = 0;
            loop {
                let more = match (quota, until) {
                    (Some(q), _) => done < q,
                    (None, Some(u)) => {
                        let need_runs = slot.samples.len() < MIN_RUNS * (round + 1) / rounds;
                        (slot.time_s < u || need_runs) && deadline.is_none_or(|d| slot.time_s < d || done == 0)
                    }
                    (None, None) => false,
                };
                if !more {
                    break;
                }
                pacer.wait();
                let t = Instant::now();
                slot.work.run(threads)?;
                let s = t.elapsed().as_secs_f64();
                slot.samples.push(s * 1e3);
                slot.time_s += s;
                done += 1;
                if let Some(b) = &bar {
                    b.inc(1);
                }
            }
            let (_, peak) = edgeqa::budget::heap();
            slot.run_heap = slot.run_heap.max(peak.saturating_sub(live0));
            if rss_reset && let Some((_, hwm)) = edgeqa::budget::rss() {
                slot.peak_rss = Some(slot.peak_rss.map_or(hwm, |p| p.max(hwm)));
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut out: Vec<Figure> = Vec::new();
    for slot in slots {
        let stats = Stats::of(&slot.samples).context("no run was timed")?;
        let node_profile = match (&slot.work, profile) {
            (Work::Stage { session, inputs }, Some(runs)) => {
                on_threads(engines[slot.engine].threads, || session.profile(inputs.clone(), runs as usize))??
            }
            _ => None,
        };
        let e = &engines[slot.engine];
        out.push(Figure {
            figure: figures[slot.figure].0.to_string(),
            backend: slot.work.backend().to_string(),
            backend_note: e.note.clone(),
            threads: e.threads,
            load_ms: slot.load_ms,
            first_run_ms: slot.first_run_ms,
            runs: slot.samples.len(),
            stats,
            throughput_per_s: 1e3 / stats.mean,
            p50_ratio: None,
            question_ratio: None,
            memory: Memory {
                load_heap_mib: mib(slot.load_heap),
                run_heap_mib: mib(slot.run_heap),
                peak_rss_mib: slot.peak_rss.map(mib),
            },
            parts_ms: clip_parts(&slot.work, slot.samples.len()),
            samples_ms: slot.samples,
            profile: node_profile,
        });
    }
    // Backends side by side: each figure's p50 against its first backend's.
    if engines.len() > 1 {
        for (name, _) in figures {
            let first = out.iter().find(|f| f.figure == *name).map(|f| f.stats.p50);
            for f in out.iter_mut().filter(|f| f.figure == *name) {
                f.p50_ratio = first.map(|p| f.stats.p50 / p);
            }
        }
    }
    Ok(out)
}

/// The figure of one question answered from encoded features.
const QUESTION: &str = "question";
/// The same question with the selector choosing the frames first.
const QUESTION_SELECTED: &str = "question+selector";

/// Sets each `question+selector` figure's p50 over its backend's `question` p50 (same threads).
fn set_question_ratios(figures: &mut [Figure]) {
    let question: Vec<(String, usize, f64)> =
        figures.iter().filter(|f| f.figure == QUESTION).map(|f| (f.backend.clone(), f.threads, f.stats.p50)).collect();
    for f in figures.iter_mut().filter(|f| f.figure == QUESTION_SELECTED) {
        f.question_ratio =
            question.iter().find(|(b, t, _)| *b == f.backend && *t == f.threads).map(|(_, _, p)| f.stats.p50 / p);
    }
}

/// The CPU's model name, from `/proc/cpuinfo` (x86 `model name`, ARM `Model`/`Hardware`).
fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    for key in ["model name", "Model", "Hardware", "cpu model"] {
        if let Some(v) = info.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        }) {
            return v;
        }
    }
    "unknown".into()
}

fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

pub fn main(args: Args) -> Result<()> {
    let plan = Plan::from_args(&args)?;
    // Fail on an unwritable output before measuring anything.
    let mut sink: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot write --output {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let board = args.board.as_deref().map(edgeqa_firmware_config::find).transpose()?;
    let pkg = open_package(&args.package)?;
    let given = given_inputs(&args.inputs, &pkg)?;
    if (args.video.is_some() || args.audio.is_some()) && pkg.manifest().kind != PackageKind::Student {
        bail!("--video and --audio feed a student's `clip` figure; {} is a generic package", args.package.display());
    }
    for f in [&args.video, &args.audio].into_iter().flatten() {
        if !f.is_file() {
            bail!("{}: no such file", f.display());
        }
    }
    let mut skipped = Vec::new();
    // A board's count applies to tract; a build without it has no CPU threads to set.
    let threads = match (&args.threads[..], &board) {
        #[cfg(feature = "tract")]
        ([], Some(b)) => vec![super::board_threads(b)],
        ([], _) => vec![1],
        (given, _) => given.to_vec(),
    };
    let engines = engines(&args.backend, &threads, pkg.manifest().format(), &mut skipped)?;
    let m = pkg.manifest();
    let mut results = Vec::new();
    for st in &m.stages {
        let graph = pkg.stage_graph(&st.name).with_context(|| format!("stage `{}` has no graph", st.name))?;
        let origin = format!("{} [{}]", pkg.origin(), st.name);
        let stored = m.packed_weights(&st.name);
        let mut inputs = edgeqa::synthetic::inputs(&st.inputs, 1);
        for (i, info) in st.inputs.iter().enumerate() {
            if let Some((_, _, t)) = given.iter().find(|(s, n, _)| *s == st.name && *n == info.name) {
                inputs[i] = t.clone();
            }
        }
        let load = |e: &Engine| -> Result<Work> {
            let session = e.backend.load_stage_stored(st, graph, &stored, &origin)?;
            Ok(Work::Stage { session, inputs: inputs.clone() })
        };
        results.extend(measure(&format!("stage/{}", st.name), &engines, &plan, &load, args.profile, &mut skipped)?);
    }
    if m.kind == PackageKind::Student {
        let question = match (&args.question, m.tokenizer.is_some()) {
            (Some(q), _) => Some(q.clone()),
            (None, true) => default_question(&pkg),
            (None, false) => None,
        };
        let clip_source = || -> Result<ClipSource> {
            if args.video.is_some() || args.audio.is_some() {
                Ok(ClipSource::Files { video: args.video.clone(), audio: args.audio.clone() })
            } else {
                synthetic_decoded_clip(&pkg)
            }
        };
        let load = |e: &Engine| -> Result<Work> {
            let student = Box::new(Student::load(&pkg, e.choice, None)?);
            Ok(Work::Clip { student, source: clip_source()?, parts: RefCell::new(Vec::new()) })
        };
        if m.video.is_some() || m.audio.is_some() {
            results.extend(measure("clip", &engines, &plan, &load, None, &mut skipped)?);
        }
        if let Some(question) = question {
            let clip = synthetic_clip(&pkg)?;
            let load = |e: &Engine| -> Result<Work> {
                let student = Box::new(Student::load(&pkg, e.choice, None)?);
                student.answer(&question, &clip).with_context(|| format!("question `{question}`"))?;
                Ok(Work::Question { student, clip: clip.clone(), question: question.clone(), candidates: None })
            };
            // With a selector, `question+selector` answers the same question as `edgeqa live
            // --selection question` does, in the same rounds as `question`: the selector scores R
            // candidates' keys first (synthetic, as the clip's features are; live makes the keys
            // as frames are encoded, not per question).
            let candidates =
                m.stage(SELECTOR).and_then(|sel| sel.inputs.iter().find(|i| i.name == CANDIDATE_KEYS)).map(|info| {
                    let mut c = edgeqa::synthetic::inputs(std::slice::from_ref(info), 1).swap_remove(0);
                    c.shape = vec![info.shape[1], info.shape[2..].iter().product()];
                    c
                });
            let load_selected = |e: &Engine| -> Result<Work> {
                let student = Box::new(Student::load(&pkg, e.choice, None)?);
                Ok(Work::Question {
                    student,
                    clip: clip.clone(),
                    question: question.clone(),
                    candidates: candidates.clone(),
                })
            };
            let mut figures: Vec<(&str, Load<'_>)> = vec![(QUESTION, &load)];
            if candidates.is_some() {
                figures.push((QUESTION_SELECTED, &load_selected));
            }
            let mut timed = measure_together(&figures, &engines, &plan, None, &mut skipped)?;
            set_question_ratios(&mut timed);
            results.extend(timed);
        }
    }
    let peak = results
        .iter()
        .filter_map(|f| f.memory.peak_rss_mib)
        .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
    let report = Report {
        schema: SCHEMA,
        edgeqa_version: env!("CARGO_PKG_VERSION"),
        package: PackageInfo {
            file: args.package.display().to_string(),
            name: m.name.clone(),
            kind: format!("{:?}", m.kind).to_lowercase(),
            bytes: pkg.file_len(),
            sha256: sha256_file(&args.package)?,
        },
        machine: Machine {
            cpu: cpu_model(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
        },
        board: board.map(|b| {
            let budget = mib(b.memory_budget_bytes());
            BoardInfo { name: b.name, budget_mib: budget, peak_rss_mib: peak, fits: peak.map(|p| p <= budget) }
        }),
        plan,
        inputs: if args.inputs.is_empty() { vec!["synthetic".into()] } else { args.inputs.clone() },
        results,
        skipped,
    };
    let text = render(&report, args.format)?;
    sink.write_all(text.as_bytes()).context("cannot write the results")?;
    sink.flush().context("cannot write the results")?;
    Ok(())
}

fn render(r: &Report, format: Format) -> Result<String> {
    let several = r.results.iter().any(|f| f.p50_ratio.is_some());
    let mut s = String::new();
    match format {
        Format::Json => {
            s = serde_json::to_string_pretty(r)?;
            s.push('\n');
        }
        Format::Jsonl => {
            for f in &r.results {
                let mut v = serde_json::to_value(f)?;
                v["schema"] = SCHEMA.into();
                v["package_sha256"] = r.package.sha256.clone().into();
                v["edgeqa_version"] = r.edgeqa_version.into();
                v["cpu"] = r.machine.cpu.clone().into();
                s.push_str(&serde_json::to_string(&v)?);
                s.push('\n');
            }
        }
        Format::Csv => {
            s.push_str("figure,backend,threads,load_ms,first_run_ms,runs,min_ms,p50_ms,p90_ms,p99_ms,max_ms,mean_ms,stdev_ms,throughput_per_s,p50_ratio,peak_rss_mib,question_ratio\n");
            for f in &r.results {
                let st = &f.stats;
                let _ = writeln!(
                    s,
                    "{},{},{},{:.3},{:.3},{},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.2},{},{},{}",
                    f.figure,
                    f.backend,
                    f.threads,
                    f.load_ms,
                    f.first_run_ms,
                    f.runs,
                    st.min,
                    st.p50,
                    st.p90,
                    st.p99,
                    st.max,
                    st.mean,
                    st.stdev,
                    f.throughput_per_s,
                    f.p50_ratio.map_or(String::new(), |v| format!("{v:.3}")),
                    f.memory.peak_rss_mib.map_or(String::new(), |v| format!("{v:.1}")),
                    f.question_ratio.map_or(String::new(), |v| format!("{v:.3}"))
                );
            }
        }
        Format::Table | Format::Md => {
            let mut head = vec![
                "figure",
                "backend",
                "threads",
                "load ms",
                "first ms",
                "runs",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "min ms",
                "max ms",
                "stdev ms",
                "runs/s",
                "peak RSS MiB",
            ];
            if several {
                head.push("p50 ratio");
            }
            let rows: Vec<Vec<String>> = r
                .results
                .iter()
                .map(|f| {
                    let st = &f.stats;
                    let mut row = vec![
                        f.figure.clone(),
                        f.backend.clone(),
                        f.threads.to_string(),
                        format!("{:.1}", f.load_ms),
                        format!("{:.3}", f.first_run_ms),
                        f.runs.to_string(),
                        format!("{:.3}", st.p50),
                        format!("{:.3}", st.p90),
                        format!("{:.3}", st.p99),
                        format!("{:.3}", st.min),
                        format!("{:.3}", st.max),
                        format!("{:.3}", st.stdev),
                        format!("{:.1}", f.throughput_per_s),
                        f.memory.peak_rss_mib.map_or("?".into(), |v| format!("{v:.1}")),
                    ];
                    if several {
                        row.push(f.p50_ratio.map_or(String::new(), |v| format!("{v:.2}")));
                    }
                    row
                })
                .collect();
            let _ = writeln!(
                s,
                "{} ({}, {}) · {} · {} core(s) · edgeqa {}{}",
                r.package.file,
                r.package.kind,
                &r.package.sha256[..12],
                r.machine.cpu,
                r.machine.cores,
                r.edgeqa_version,
                r.board.as_ref().map_or(String::new(), |b| format!(" · board {}", b.name))
            );
            if format == Format::Md {
                s.push('\n');
                let _ = writeln!(s, "| {} |", head.join(" | "));
                let _ = writeln!(s, "|{}", "---|".repeat(head.len()));
                for row in &rows {
                    let _ = writeln!(s, "| {} |", row.join(" | "));
                }
            } else {
                let widths: Vec<usize> = (0..head.len())
                    .map(|i| rows.iter().map(|r| r[i].len()).chain([head[i].len()]).max().unwrap_or(0))
                    .collect();
                let line =
                    |cells: Vec<&str>| -> String {
                        cells
                            .iter()
                            .enumerate()
                            .map(|(i, c)| {
                                if i < 2 {
                                    format!("{c:<w$}", w = widths[i])
                                } else {
                                    format!("{c:>w$}", w = widths[i])
                                }
                            })
                            .collect::<Vec<_>>()
                            .join("  ")
                    };
                let _ = writeln!(s, "{}", line(head.clone()));
                for row in &rows {
                    let _ = writeln!(s, "{}", line(row.iter().map(String::as_str).collect()));
                }
            }
            for f in &r.results {
                if let Some(parts) = &f.parts_ms {
                    let list: Vec<String> = parts.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
                    let _ =
                        writeln!(s, "\nclip on {} ({} thread(s)), p50 ms: {}", f.backend, f.threads, list.join(", "));
                }
            }
            for f in &r.results {
                if let Some(q) = f.question_ratio {
                    let _ = writeln!(
                        s,
                        "\n{} on {} ({} thread(s)): p50 {q:.3} x question's p50, timed in the same rounds",
                        f.figure, f.backend, f.threads
                    );
                }
            }
            for f in &r.results {
                if let Some(p) = &f.profile {
                    let _ = write!(s, "\n{} on {} ({} thread(s)):", f.figure, f.backend, f.threads);
                    s.push_str(&super::run::profile_text(p, PROFILE_TOP));
                }
            }
            for k in &r.skipped {
                let _ = writeln!(
                    s,
                    "skipped: {}{}: {}",
                    k.backend,
                    k.figure.as_ref().map_or(String::new(), |f| format!(" ({f})")),
                    k.reason
                );
            }
            if let Some(b) = &r.board {
                let verdict = match b.fits {
                    Some(true) => "within",
                    Some(false) => "OVER",
                    None => "not measured against",
                };
                let _ = writeln!(
                    s,
                    "board {}: peak resident {} MiB, {verdict} its {:.0} MiB budget",
                    b.name,
                    b.peak_rss_mib.map_or("?".into(), |v| format!("{v:.1}")),
                    b.budget_mib
                );
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = Stats::of(&samples).unwrap();
        assert_eq!((s.min, s.p50, s.p90, s.p99, s.max), (1.0, 50.0, 90.0, 99.0, 100.0));
        assert!((s.mean - 50.5).abs() < 1e-12);
        assert!((s.stdev - 29.011491975882016).abs() < 1e-9);
        let one = Stats::of(&[3.0]).unwrap();
        assert_eq!((one.p50, one.p99, one.stdev), (3.0, 3.0, 0.0));
        assert!(Stats::of(&[]).is_none());
    }
}
