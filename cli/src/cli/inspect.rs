//! `edgeqa inspect`: what a package holds, with every checksum verified.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use edgeqa::manifest::{Manifest, StageFormat, StageInfo, TensorInfo};
use edgeqa::onnx;
use serde::Serialize;

use super::{BackendArg, open_package, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The package (.eqa).
    package: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also list the tokenizer vocabulary (the words a student understands).
    #[arg(long)]
    vocab: bool,
    /// Load the package on a backend and print its memory plan against this board's budget.
    #[arg(long, value_name = "NAME")]
    board: Option<String>,
    /// With --board and a student: the plan of `edgeqa live` keeping SECONDS of history
    /// (capture hand-offs, conversion buffers, feature rings).
    #[arg(long, value_name = "SECONDS", requires = "board")]
    history: Option<f64>,
    /// With --history: the camera's capture size (YUYV) the plan assumes.
    #[arg(long, value_name = "WxH", default_value = "640x480", value_parser = super::live::parse_size)]
    capture: (usize, usize),
    #[command(flatten)]
    backend: BackendArg,
}

#[derive(Serialize)]
struct SectionReport {
    name: String,
    kind: String,
    offset: u64,
    bytes: u64,
    sha256: String,
    verified: bool,
}

#[derive(Serialize)]
struct StageReport {
    name: String,
    section: String,
    /// `onnx` or `tflite`.
    format: &'static str,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    opset: Option<i64>,
    parameters: usize,
    nodes: usize,
    ops: BTreeMap<String, usize>,
    /// The wgpu backend's static plan (computed without a device), or why it cannot run the stage.
    wgpu: WgpuPlan,
    /// A TFLite model's tensors (main subgraph), in the model's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tensors: Vec<TfliteTensor>,
}

#[derive(Serialize)]
struct TfliteTensor {
    name: String,
    dtype: String,
    shape: Vec<i32>,
    /// Holds constant data (a weight) rather than an activation.
    constant: bool,
    quantized: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
enum WgpuPlan {
    Plan {
        /// Nodes that run after constant folding and fusion.
        nodes: usize,
        folded: usize,
        /// Quantized weights taken as the package stores them (not folded to f32), and the nodes
        /// of their dequantizing sub-graphs.
        stored_weights: usize,
        stored_nodes: usize,
        /// Device buffers for activations, and their bytes (peak device memory for tensors).
        buffers: usize,
        activation_bytes: u64,
        /// The same tensors without buffer reuse.
        unshared_bytes: u64,
        /// Bytes of constants the kernels read (upper bound of the weights uploaded).
        constant_bytes: u64,
    },
    Unsupported(String),
}

#[derive(Serialize)]
struct Report<'a> {
    file: String,
    file_bytes: u64,
    sections: Vec<SectionReport>,
    stages: Vec<StageReport>,
    manifest: &'a Manifest,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<PlanReport>,
}

#[derive(Serialize)]
struct PlanReport {
    board: String,
    /// tract's threads (`--threads`, else the board's): the stages were warmed up on them, so
    /// their stacks and scratch are in the resident figure.
    threads: usize,
    budget_bytes: u64,
    total_bytes: u64,
    fits: bool,
    items: Vec<edgeqa::budget::PlanItem>,
    details: Vec<edgeqa::budget::PlanItem>,
    /// Hearing spoken questions, timed on this machine (packages with a grammar).
    #[serde(skip_serializing_if = "Option::is_none")]
    voice_cost: Option<edgeqa::voice::ListenCost>,
}

/// Loads every stage on the chosen backend and builds the memory plan for a board.
fn memory_plan(pkg: &edgeqa::package::Package, board: &str, backend: &BackendArg) -> Result<PlanReport> {
    let threads = backend.apply_threads(Some(board))?;
    let board = edgeqa_firmware_config::find(board)?;
    let resident = edgeqa::budget::rss().map_or(0, |(now, _)| now);
    let budget = board.memory_budget_bytes();
    let (b, _) = edgeqa::backend::select_for(backend.backend, pkg.manifest().format(), Some(budget))?;
    let mut sessions = Vec::new();
    for st in &pkg.manifest().stages {
        let graph = pkg.stage_graph(&st.name).with_context(|| format!("no graph for stage {}", st.name))?;
        let stored = pkg.manifest().packed_weights(&st.name);
        let origin = format!("{} [{}]", pkg.origin(), st.name);
        sessions.push((st.name.as_str(), b.load_stage_stored(st, graph, &stored, &origin)?));
    }
    let refs: Vec<(&str, &dyn edgeqa::backend::StageSession)> =
        sessions.iter().map(|(n, s)| (*n, s.as_ref())).collect();
    let mut plan = edgeqa::pipeline::warm_up_and_plan(pkg.manifest(), resident, &refs)?;
    let voice_cost = add_voice(pkg, &mut plan, 0)?;
    Ok(PlanReport {
        board: board.name,
        threads,
        budget_bytes: budget,
        total_bytes: plan.total(),
        fits: plan.total() <= budget,
        items: plan.items,
        details: plan.details,
        voice_cost,
    })
}

/// Adds what hearing spoken questions takes (`voice` builds, packages with a grammar, and an
/// installed acoustic model) to a plan, with `queued` utterances waiting for the recognizer,
/// and times it here.
#[cfg(feature = "voice")]
fn add_voice(
    pkg: &edgeqa::package::Package,
    plan: &mut edgeqa::budget::MemoryPlan,
    queued: usize,
) -> Result<Option<edgeqa::voice::ListenCost>> {
    use edgeqa::voice::{Listener, VadConfig, VoiceError, sphinx::DEFAULT_ACOUSTIC_MODEL};
    if pkg.manifest().voice.is_none() {
        return Ok(None);
    }
    match Listener::new(pkg, std::path::Path::new(DEFAULT_ACOUSTIC_MODEL), VadConfig::default()) {
        Ok(mut l) => {
            plan.items.extend(l.memory(queued)?.items);
            Ok(Some(l.measure_cost()?))
        }
        Err(e @ VoiceError::AcousticModel { .. }) => {
            log::warn!("the plan leaves out spoken questions: {}", edgeqa::error_line(&e));
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(feature = "voice"))]
fn add_voice(
    _: &edgeqa::package::Package,
    _: &mut edgeqa::budget::MemoryPlan,
    _: usize,
) -> Result<Option<edgeqa::voice::ListenCost>> {
    Ok(None)
}

/// The plan of `edgeqa live` on a board: the student loaded, then [`edgeqa::stream::plan`] for
/// a YUYV camera of `capture` size and the microphone's 20 ms blocks.
fn live_plan(
    pkg: &edgeqa::package::Package,
    board: &str,
    history: f64,
    capture: (usize, usize),
    backend: &BackendArg,
) -> Result<PlanReport> {
    if !(history.is_finite() && history > 0.0) {
        anyhow::bail!("--history must be a positive number of seconds, not {history}");
    }
    let threads = backend.apply_threads(Some(board))?;
    let board = edgeqa_firmware_config::find(board)?;
    let budget = board.memory_budget_bytes();
    let student = edgeqa::pipeline::Student::load(pkg, backend.backend, None)?;
    let m = student.manifest();
    let (w, h) = capture;
    let shape = edgeqa::stream::SourceShape {
        video: m.video.as_ref().map(|_| (2 * w * h, w, h)),
        audio: m.audio.as_ref().map(|a| edgeqa::stream::audio_block(a.sample_rate)),
    };
    let cfg = edgeqa::stream::LiveConfig { history_s: history, ..Default::default() };
    let mut plan = edgeqa::stream::plan(&student, shape, &cfg, None)?.memory;
    let voice_cost = add_voice(pkg, &mut plan, edgeqa::voice::QUEUED_UTTERANCES)?;
    Ok(PlanReport {
        board: format!("{} with {history} s of live history", board.name),
        threads,
        budget_bytes: budget,
        total_bytes: plan.total(),
        fits: plan.total() <= budget,
        items: plan.items,
        details: plan.details,
        voice_cost,
    })
}

fn shape(t: &TensorInfo) -> String {
    format!("{} {}[{}]", t.name, t.dtype.name(), t.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","))
}

/// What the wgpu backend would run of a stage: its plan, or why it cannot.
#[cfg(feature = "wgpu")]
fn wgpu_plan(m: &edgeqa::manifest::Manifest, st: &edgeqa::manifest::StageInfo, bytes: &[u8], origin: &str) -> WgpuPlan {
    match edgeqa::backend::wgpu::plan_stage(st, bytes, &m.packed_weights(&st.name), origin) {
        Ok((g, p)) => WgpuPlan::Plan {
            nodes: g.nodes.len(),
            folded: g.folded,
            stored_weights: g.stored,
            stored_nodes: g.stored_nodes,
            buffers: p.buffers.len(),
            activation_bytes: p.total_bytes(),
            unshared_bytes: p.unshared_bytes,
            constant_bytes: g.constant_bytes(),
        },
        Err(e) => WgpuPlan::Unsupported(e.to_string()),
    }
}

/// A build without the wgpu backend has no plan to show.
#[cfg(not(feature = "wgpu"))]
fn wgpu_plan(_: &edgeqa::manifest::Manifest, _: &edgeqa::manifest::StageInfo, _: &[u8], _: &str) -> WgpuPlan {
    WgpuPlan::Unsupported("this build of edgeqa has no wgpu backend".into())
}

/// What a TFLite stage holds: its operators and tensors, read by edgeqa's own reader.
fn tflite_stage(st: &StageInfo, bytes: &[u8], origin: &str) -> Result<StageReport> {
    let model = edgeqa::tflite::parse(bytes).with_context(|| format!("{origin}: not a readable TFLite model"))?;
    let main = model.main().with_context(|| origin.to_string())?;
    let ops: BTreeMap<String, usize> = model.op_counts().into_iter().collect();
    let tensors: Vec<TfliteTensor> = main
        .tensors
        .iter()
        .zip(main.constants())
        .map(|(t, constant)| TfliteTensor {
            name: t.name.clone(),
            dtype: format!("{:?}", t.dtype).to_lowercase(),
            shape: t.shape.clone(),
            constant,
            quantized: t.quantized,
        })
        .collect();
    let parameters = tensors
        .iter()
        .filter(|t| t.constant)
        .map(|t| t.shape.iter().map(|&d| d.max(0) as usize).product::<usize>())
        .sum();
    Ok(StageReport {
        name: st.name.clone(),
        section: st.section.clone(),
        format: st.format.name(),
        inputs: st.inputs.clone(),
        outputs: st.outputs.clone(),
        opset: None,
        parameters,
        nodes: ops.values().sum(),
        ops,
        wgpu: WgpuPlan::Unsupported("a TFLite model runs on the litert or tflite backend".into()),
        tensors,
    })
}

pub fn main(args: Args) -> Result<()> {
    let pkg = open_package(&args.package)?;
    let m = pkg.manifest();
    let sections = pkg
        .sections()
        .iter()
        .map(|s| SectionReport {
            name: s.name.clone(),
            kind: format!("{:?}", s.kind).to_lowercase(),
            offset: s.offset,
            bytes: s.len,
            sha256: s.sha256_hex(),
            verified: true,
        })
        .collect();
    let mut stages = Vec::new();
    for st in &m.stages {
        let origin = format!("{} [{}]", pkg.origin(), st.name);
        let bytes = pkg.stage_graph(&st.name).with_context(|| format!("{origin}: no graph section"))?;
        if st.format == StageFormat::Tflite {
            stages.push(tflite_stage(st, bytes, &origin)?);
            continue;
        }
        let proto = onnx::decode(bytes, &origin)?;
        let ops = onnx::op_histogram(&proto);
        let wgpu = wgpu_plan(m, st, bytes, &origin);
        stages.push(StageReport {
            name: st.name.clone(),
            section: st.section.clone(),
            inputs: st.inputs.clone(),
            outputs: st.outputs.clone(),
            opset: onnx::opset(&proto),
            parameters: onnx::parameter_count(&proto),
            nodes: ops.values().sum(),
            ops,
            wgpu,
            format: st.format.name(),
            tensors: vec![],
        });
    }
    let plan = match (&args.board, args.history) {
        (Some(name), Some(history)) => Some(live_plan(&pkg, name, history, args.capture, &args.backend)?),
        (Some(name), None) => Some(memory_plan(&pkg, name, &args.backend)?),
        _ => None,
    };
    let report =
        Report { file: pkg.origin().to_string(), file_bytes: pkg.file_len(), sections, stages, manifest: m, plan };
    if args.json {
        return print_json(&report);
    }
    println!("{}  ({} bytes, all checksums verified)", report.file, report.file_bytes);
    println!(
        "  {} `{}` · contract v{} · by {} · weights {}",
        format!("{:?}", m.kind).to_lowercase(),
        m.name,
        m.contract_version,
        m.producer,
        m.quantization.scheme
    );
    println!("sections:");
    for s in &report.sections {
        println!(
            "  {:<20} {:<9} offset {:>9}  {:>10} bytes  sha256 {}",
            s.name,
            s.kind,
            s.offset,
            s.bytes,
            &s.sha256[..16]
        );
    }
    println!("stages:");
    for s in &report.stages {
        if s.format == "tflite" {
            let constants = s.tensors.iter().filter(|t| t.constant).count();
            println!(
                "  {} (TFLite, {} operators, {} tensors of which {constants} constant, {} parameters)",
                s.name,
                s.nodes,
                s.tensors.len(),
                s.parameters
            );
        } else {
            println!(
                "  {} (opset {}, {} nodes, {} parameters)",
                s.name,
                s.opset.map_or("?".into(), |o| o.to_string()),
                s.nodes,
                s.parameters
            );
        }
        println!("    in : {}", s.inputs.iter().map(shape).collect::<Vec<_>>().join(", "));
        println!("    out: {}", s.outputs.iter().map(shape).collect::<Vec<_>>().join(", "));
        println!("    ops: {}", s.ops.iter().map(|(k, v)| format!("{k}×{v}")).collect::<Vec<_>>().join(" "));
        match &s.wgpu {
            WgpuPlan::Plan {
                nodes,
                folded,
                stored_weights,
                stored_nodes,
                buffers,
                activation_bytes,
                unshared_bytes,
                constant_bytes,
            } => println!(
                "    wgpu: {nodes} nodes to run ({folded} folded at load, {stored_weights} weights taken as stored \
                 instead of {stored_nodes} dequantizing nodes), {buffers} buffers {activation_bytes} bytes \
                 ({unshared_bytes} without reuse), constants {constant_bytes} bytes"
            ),
            WgpuPlan::Unsupported(why) => println!("    wgpu: cannot run it ({why})"),
        }
    }
    if let Some(v) = &m.video {
        println!("video: {} frames at {}x{}, mean {:?}, std {:?}", v.frames, v.width, v.height, v.mean, v.std);
    }
    if let Some(a) = &m.audio {
        println!(
            "audio: {} Hz, n_fft {}, hop {}, {} mels {}–{} Hz, {} segments of {} frames",
            a.sample_rate, a.n_fft, a.hop, a.n_mels, a.f_min, a.f_max, a.segments, a.segment_frames
        );
    }
    if let Some(t) = &m.tokenizer {
        println!("tokenizer: {} words, max {} tokens, lowercase {}", t.vocab.len(), t.max_len, t.lowercase);
        if args.vocab {
            println!("  {}", t.vocab.join(" "));
        }
    }
    if !m.labels.is_empty() {
        println!("answers ({}): {}", m.labels.len(), m.labels.join(", "));
    }
    if let Some(p) = &report.plan {
        let mib = |b: u64| b as f64 / edgeqa::budget::MIB;
        println!(
            "memory plan for {} (budget {:.1} MiB; warmed up on {} tract thread(s)):",
            p.board,
            mib(p.budget_bytes),
            p.threads
        );
        // The details break down the first line (what is resident after loading the stages).
        for (k, i) in p.items.iter().enumerate() {
            println!("  {:<56} {:>8.2} MiB", i.name, mib(i.bytes));
            if k == 0 {
                for d in &p.details {
                    println!("    of which {:<47} {:>8.2} MiB", d.name, mib(d.bytes));
                }
            }
        }
        let verdict = if p.fits { "fits" } else { "DOES NOT FIT" };
        println!("  {:<56} {:>8.2} MiB  {verdict}", "total", mib(p.total_bytes));
        if let Some(c) = &p.voice_cost {
            println!(
                "voice, timed here on {:.0} s of synthetic voiced sound: voice activity {:.1} ms per s of audio; \
                 recognizer {:.0} ms per s of speech (all three searches, the most an utterance takes)",
                c.seconds, c.vad_ms_per_s, c.recognize_ms_per_s
            );
        }
    }
    Ok(())
}
