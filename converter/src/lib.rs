//! edgeqa converter: turns a student exported to ONNX (or any ONNX model) into one verified
//! `.eqa` package.
//!
//! Steps: read `student.toml` and the stage graphs → refuse graphs ONNX's checker would refuse
//! ([`check`]) → reject what the runtime cannot run
//! (every unsupported node of every stage listed at once) → fix input shapes from the contract
//! and infer output shapes → write the manifest and graphs → reopen the package and load every
//! stage on the CPU backend, so a package that leaves the converter is known to load.

use edgeqa_format::contract::{
    AUDIO_ENCODER, AUDIO_FEATURES, CANDIDATE_KEYS, FRAME_ENCODER, FRAME_FEATURES, FRAMES, HEAD, LOG_MEL,
    QUESTION_ENCODER, QUESTION_FEATURES, QUESTION_IDS, QUESTION_MASK, SELECTOR, SELECTOR_KEYS,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgeqa::backend::{Backend, tract::TractBackend, tract::unsupported_nodes};
use edgeqa_format::manifest::{
    CONTRACT_VERSION, MODEL_STAGE, Manifest, PackageKind, QuantizationInfo, STUDENT_STAGES, StageInfo, VAD_SECTION,
    VadModel,
};
use edgeqa_format::onnx::{self, pb};
use edgeqa_format::package::{Package, PackageWriter};
use thiserror::Error;

pub mod calibrate;
pub mod check;
pub mod clean;
pub mod data;
pub mod graph;
pub mod quantize;
pub mod quantized;
pub mod report;
pub mod shapes;
pub mod student;
pub mod tflite;
pub mod verify;
pub mod voice;

/// Identifies the converter in every package it writes.
pub const PRODUCER: &str = concat!("edgeqa-convert ", env!("CARGO_PKG_VERSION"));

/// Why a conversion failed.
#[derive(Debug, Error)]
pub enum ConvertError {
    #[error("{file}: {reason}")]
    Student { file: String, reason: String },
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error(transparent)]
    Onnx(#[from] onnx::OnnxError),
    #[error(transparent)]
    Invalid(#[from] check::InvalidOnnx),
    #[error("unsupported ONNX, nothing was written: {}", .0.join("; "))]
    Unsupported(Vec<String>),
    #[error("{origin}: input `{input}`: {reason}")]
    Shape { origin: String, input: String, reason: String },
    /// The graph does not fix an input's shape, and no shape was given for it
    /// ([`parse_shape_args`] reads `NAME=D0,D1,...`).
    #[error("{origin}: input `{input}`: {reason}: its shape must be given")]
    NeedsShape { origin: String, input: String, reason: String },
    #[error("{origin}: {reason}")]
    Graph { origin: String, reason: String },
    #[error("{dir}: {reason}")]
    Layout { dir: String, reason: String },
    #[error("input shape `{0}`: expected NAME=D0,D1,... with positive integers")]
    BadShapeArg(String),
    #[error(transparent)]
    Package(#[from] edgeqa_format::package::PackageError),
    #[error("the written package does not load: {0}")]
    Verify(String),
    #[error(transparent)]
    Clean(#[from] clean::CleanError),
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error(transparent)]
    Calibration(#[from] calibrate::CalibError),
    #[error(transparent)]
    Quantize(#[from] quantize::QuantError),
    #[error(transparent)]
    Verification(#[from] verify::VerifyError),
    #[error("{0}")]
    Options(String),
    #[error(transparent)]
    Option(#[from] quantized::OptionError),
}

/// A finished conversion: the package bytes and what went into them.
#[derive(Debug, Clone)]
pub struct Converted {
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
}

impl Converted {
    /// Writes the package atomically (temporary file, then rename).
    pub fn write(&self, path: &Path) -> Result<(), ConvertError> {
        let tmp = path.with_extension("eqa.partial");
        let io = |e: std::io::Error| ConvertError::Io { path: path.display().to_string(), reason: e.to_string() };
        std::fs::write(&tmp, &self.bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

#[derive(Clone)]
struct Graph {
    stage: String,
    origin: String,
    bytes: Vec<u8>,
    proto: pb::ModelProto,
}

fn read_graph(stage: &str, path: &Path) -> Result<Graph, ConvertError> {
    let origin = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ConvertError::Io { path: origin.clone(), reason: e.to_string() })?;
    let mut proto = onnx::decode(&bytes, &origin)?;
    check::check_model(&proto, &origin)?;
    // What every backend checks when it loads a stage (an axis beyond any rank, a Transpose
    // `perm` that repeats an axis), checked before tract first sees the graph here: tract hangs
    // or allocates without end on some of these.
    onnx::check_wiring(&proto).map_err(|e| ConvertError::Graph { origin: origin.clone(), reason: e.to_string() })?;
    let renamed = unique_node_names(&mut proto);
    // The check allows any node order (every input is defined somewhere); packages get ONNX's.
    let unsorted = !graph::is_sorted(graph::graph(&proto));
    if unsorted {
        graph::topo_sort(graph::graph_mut(&mut proto))
            .map_err(|e| ConvertError::Graph { origin: origin.clone(), reason: e.to_string() })?;
        log::info!("{origin}: nodes put in topological order");
    }
    let bytes = if renamed == 0 && !unsorted {
        bytes
    } else {
        // Some exporters repeat node names; tract (and other tools) need them unique.
        if renamed > 0 {
            log::info!("{origin}: renamed {renamed} node(s) whose names repeat an earlier node's");
        }
        prost::Message::encode_to_vec(&proto)
    };
    Ok(Graph { stage: stage.to_string(), origin, bytes, proto })
}

/// Gives every node of the main graph a unique name (`name.1`, `name.2`, … for repeats);
/// returns how many were renamed.
fn unique_node_names(proto: &mut onnx::pb::ModelProto) -> usize {
    let Some(g) = proto.graph.as_mut() else { return 0 };
    let mut taken: std::collections::HashSet<String> =
        g.node.iter().filter(|n| !n.name.is_empty()).map(|n| n.name.clone()).collect();
    let mut seen = std::collections::HashSet::new();
    let mut renamed = 0;
    for n in g.node.iter_mut().filter(|n| !n.name.is_empty()) {
        if seen.insert(n.name.clone()) {
            continue;
        }
        let name = (1..).map(|k| format!("{}.{k}", n.name)).find(|c| !taken.contains(c)).expect("unbounded");
        taken.insert(name.clone());
        n.name = name;
        renamed += 1;
    }
    renamed
}

/// Everything in these graphs the runtime cannot run, across all of them.
fn check_supported(graphs: &[Graph]) -> Result<(), ConvertError> {
    let mut problems = Vec::new();
    for g in graphs {
        let external = onnx::external_initializers(&g.proto);
        if !external.is_empty() {
            problems.push(format!(
                "{}: initializers stored as external data ({}): save the model with onnx.save(model, path, save_as_external_data=False)",
                g.origin,
                external.join(", ")
            ));
        }
        match onnx::opset(&g.proto) {
            Some(v) if (9..=22).contains(&v) => {}
            v => problems.push(format!(
                "{}: opset {} (supported: 9 to 22); re-export with opset 13 to 17",
                g.origin,
                v.map_or("missing".into(), |v| v.to_string())
            )),
        }
        let nodes = unsupported_nodes(&g.proto);
        if !nodes.is_empty() {
            problems.push(format!("{}: unsupported node(s): {}", g.origin, nodes.join(", ")));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(ConvertError::Unsupported(problems)) }
}

/// Parses `NAME=D0,D1,...` arguments.
pub fn parse_shape_args(args: &[String]) -> Result<BTreeMap<String, Vec<usize>>, ConvertError> {
    let mut out = BTreeMap::new();
    for a in args {
        let bad = || ConvertError::BadShapeArg(a.clone());
        let (name, dims) = a.split_once('=').ok_or_else(bad)?;
        let dims: Vec<usize> = dims
            .split(',')
            .map(|d| d.trim().parse::<usize>().ok().filter(|&v| v > 0).ok_or_else(bad))
            .collect::<Result<_, _>>()?;
        if name.is_empty() || out.insert(name.to_string(), dims).is_some() {
            return Err(bad());
        }
    }
    Ok(out)
}

/// Fixes a graph's inputs (`wanted` by name) and infers its outputs.
fn stage_info(g: &Graph, wanted: &BTreeMap<String, Vec<usize>>) -> Result<StageInfo, ConvertError> {
    let declared = onnx::graph_inputs(&g.proto);
    for name in wanted.keys() {
        if !declared.iter().any(|d| &d.name == name) {
            return Err(ConvertError::Shape {
                origin: g.origin.clone(),
                input: name.clone(),
                reason: format!(
                    "the graph has no such input (inputs: {})",
                    declared.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    let inputs = declared
        .iter()
        .map(|d| shapes::fix_input(&g.origin, d, wanted.get(&d.name).map(|v| v.as_slice())))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = shapes::infer_outputs(&g.origin, &g.proto, &inputs)?;
    Ok(StageInfo { name: g.stage.clone(), section: g.stage.clone(), inputs, outputs, format: Default::default() })
}

fn finish(manifest: Manifest, graphs: Vec<Graph>) -> Result<Converted, ConvertError> {
    let mut writer = PackageWriter::new(manifest.clone());
    for g in graphs {
        writer.add_onnx(&g.stage, g.bytes)?;
    }
    let bytes = writer.to_bytes()?;
    // Verify: the bytes read back, and every stage loads on the CPU backend.
    let pkg = Package::from_bytes(bytes.clone(), "converted package")?;
    let backend = TractBackend::new();
    for stage in &pkg.manifest().stages {
        let graph = pkg
            .stage_graph(&stage.name)
            .ok_or_else(|| ConvertError::Verify(format!("no section for {}", stage.name)))?;
        backend.load_stage(stage, graph, &stage.name).map_err(|e| ConvertError::Verify(e.to_string()))?;
    }
    Ok(Converted { bytes, manifest })
}

/// Converts a student directory: `student.toml` plus `<stage>.onnx` for each stage it has.
pub fn convert_student(dir: &Path) -> Result<Converted, ConvertError> {
    let (manifest, graphs, vad) = prepare_student(dir)?;
    attach_vad(finish(manifest, graphs)?, vad.as_deref())
}

/// Converts and quantizes a student directory (see [`quantized::Options`]).
pub fn convert_student_with(dir: &Path, opts: &quantized::Options) -> Result<quantized::Outcome, ConvertError> {
    let (manifest, graphs, vad) = prepare_student(dir)?;
    let mut outcome = quantized::run(manifest, graphs, opts)?;
    outcome.converted = attach_vad(outcome.converted, vad.as_deref())?;
    Ok(outcome)
}

/// Adds the voice activity model (`[voice] vad`) to a converted student: its own section
/// [`VAD_SECTION`], float as given, checked to load on the CPU backend and to have the shape of a
/// Silero-style model (`[1, 64 + 512]` samples at 16 kHz and a recurrent state).
fn attach_vad(converted: Converted, vad: Option<&Path>) -> Result<Converted, ConvertError> {
    let Some(path) = vad else { return Ok(converted) };
    let shown = path.display().to_string();
    let g = read_graph(VAD_SECTION, path)?;
    check_supported(std::slice::from_ref(&g))?;
    let mut stage = stage_info(&g, &BTreeMap::new())?;
    stage.section = VAD_SECTION.into();
    let (context, window) = (64, 512);
    let pkg = Package::from_bytes(converted.bytes, "converted package")?;
    let mut manifest = pkg.manifest().clone();
    let voice = manifest.voice.as_mut().ok_or_else(|| ConvertError::Student {
        file: shown.clone(),
        reason: "a voice activity model needs the rest of [voice] (templates)".into(),
    })?;
    voice.vad = Some(VadModel { stage, sample_rate: 16000, window, context });
    manifest.validate().map_err(|e| ConvertError::Student {
        file: shown.clone(),
        reason: format!("{e} (the static 16 kHz Silero VAD export has this form)"),
    })?;
    let mut writer = PackageWriter::new(manifest.clone());
    for s in pkg.sections().iter().skip(1) {
        let bytes = pkg.section(&s.name).ok_or_else(|| ConvertError::Verify(format!("no section {}", s.name)))?;
        writer.add_onnx(&s.name, bytes.to_vec())?;
    }
    writer.add_onnx(VAD_SECTION, g.bytes)?;
    let bytes = writer.to_bytes()?;
    let pkg = Package::from_bytes(bytes.clone(), "converted package")?;
    let vad = manifest.voice.as_ref().and_then(|v| v.vad.as_ref()).map(|v| &v.stage);
    if let (Some(stage), Some(graph)) = (vad, pkg.section(VAD_SECTION)) {
        TractBackend::new().load_stage(stage, graph, &shown).map_err(|e| ConvertError::Verify(e.to_string()))?;
    }
    Ok(Converted { bytes, manifest })
}

/// Reads, checks and fixes the shapes of a student directory.
fn prepare_student(dir: &Path) -> Result<(Manifest, Vec<Graph>, Option<PathBuf>), ConvertError> {
    let shown = dir.display().to_string();
    let layout = |reason: String| ConvertError::Layout { dir: shown.clone(), reason };
    let spec = student::load(dir)?;
    let entries =
        std::fs::read_dir(dir).map_err(|e| ConvertError::Io { path: shown.clone(), reason: e.to_string() })?;
    let mut strays = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(stem) = name.strip_suffix(".onnx")
            && !STUDENT_STAGES.contains(&stem)
        {
            strays.push(name);
        }
    }
    if !strays.is_empty() {
        strays.sort();
        return Err(layout(format!(
            "{} is not a stage of the student contract (stage files are {})",
            strays.join(", "),
            STUDENT_STAGES.map(|s| format!("{s}.onnx")).join(", ")
        )));
    }
    let mut graphs = Vec::new();
    for stage in STUDENT_STAGES {
        let path: PathBuf = dir.join(format!("{stage}.onnx"));
        if path.exists() {
            graphs.push(read_graph(stage, &path)?);
        }
    }
    if !graphs.iter().any(|g| g.stage == HEAD) {
        return Err(layout("missing head.onnx: every student needs a head".into()));
    }
    check_supported(&graphs)?;

    // Fix shapes stage by stage: encoders from the contract, the head from the encoders.
    let mut stages: Vec<StageInfo> = Vec::new();
    for g in &graphs {
        let mut wanted = BTreeMap::new();
        let declared = onnx::graph_inputs(&g.proto);
        let batch = |name: &str, all: usize| {
            declared
                .iter()
                .find(|d| d.name == name)
                .and_then(|d| d.dims.as_ref()?.first().cloned())
                .and_then(|d| if let onnx::Dim::Fixed(v) = d { Some(v) } else { None })
                .unwrap_or(all)
        };
        match g.stage.as_str() {
            FRAME_ENCODER => {
                let v = spec
                    .video
                    .as_ref()
                    .ok_or_else(|| layout("frame_encoder.onnx needs a [video] table in student.toml".into()))?;
                wanted.insert(FRAMES.to_string(), vec![batch(FRAMES, v.frames), 3, v.height, v.width]);
            }
            AUDIO_ENCODER => {
                let a = spec
                    .audio
                    .as_ref()
                    .ok_or_else(|| layout("audio_encoder.onnx needs an [audio] table in student.toml".into()))?;
                wanted.insert(LOG_MEL.to_string(), vec![batch(LOG_MEL, a.segments), 1, a.n_mels, a.segment_frames]);
            }
            QUESTION_ENCODER => {
                let t = spec
                    .tokenizer
                    .as_ref()
                    .ok_or_else(|| layout("question_encoder.onnx needs a [tokenizer] table in student.toml".into()))?;
                wanted.insert(QUESTION_IDS.to_string(), vec![1, t.max_len]);
                wanted.insert(QUESTION_MASK.to_string(), vec![1, t.max_len]);
            }
            SELECTOR_KEYS => {
                // Keys are made per frame as the frame encoder's batches come out.
                let f = stages.iter().find(|s| s.name == FRAME_ENCODER).and_then(|s| s.outputs.first()).ok_or_else(
                    || {
                        layout(
                            "selector_keys.onnx needs frame_encoder.onnx: it reads the frame encoder's output".into(),
                        )
                    },
                )?;
                wanted.insert(FRAME_FEATURES.to_string(), f.shape.clone());
            }
            SELECTOR => {
                // R, the candidate count, is the graph's own (fixed) choice; the rest follows
                // selector_keys and the question encoder.
                let r = declared
                    .iter()
                    .find(|d| d.name == CANDIDATE_KEYS)
                    .and_then(|d| d.dims.as_ref()?.get(1).cloned())
                    .and_then(|d| if let onnx::Dim::Fixed(v) = d { Some(v) } else { None })
                    .ok_or_else(|| {
                        layout(format!(
                            "selector.onnx: input `{CANDIDATE_KEYS}` must fix R, the number of candidate frames it scores ([1,R,K])"
                        ))
                    })?;
                let out = |stage: &str| stages.iter().find(|s| s.name == stage).and_then(|s| s.outputs.first());
                let (Some(keys), Some(q)) = (out(SELECTOR_KEYS), out(QUESTION_ENCODER)) else {
                    return Err(layout(
                        "selector.onnx needs selector_keys.onnx, frame_encoder.onnx and question_encoder.onnx: it scores frames' keys for a question"
                            .into(),
                    ));
                };
                wanted.insert(
                    CANDIDATE_KEYS.to_string(),
                    [1, r].into_iter().chain(keys.shape.iter().skip(1).copied()).collect(),
                );
                wanted.insert(QUESTION_FEATURES.to_string(), q.shape.clone());
            }
            _ => {
                let feature = |enc: &str, items: usize| -> Option<Vec<usize>> {
                    let out = &stages.iter().find(|s| s.name == enc)?.outputs.first()?.shape;
                    Some([1, items].into_iter().chain(out.iter().skip(1).copied()).collect())
                };
                if let Some(s) = feature(FRAME_ENCODER, spec.video.as_ref().map_or(0, |v| v.frames)) {
                    wanted.insert(FRAME_FEATURES.to_string(), s);
                }
                if let Some(s) = feature(AUDIO_ENCODER, spec.audio.as_ref().map_or(0, |a| a.segments)) {
                    wanted.insert(AUDIO_FEATURES.to_string(), s);
                }
                if let Some(q) = stages.iter().find(|s| s.name == QUESTION_ENCODER).and_then(|s| s.outputs.first()) {
                    wanted.insert(QUESTION_FEATURES.to_string(), q.shape.clone());
                }
                wanted.retain(|k, _| declared.iter().any(|d| &d.name == k));
            }
        }
        stages.push(stage_info(g, &wanted)?);
    }
    let manifest = Manifest {
        contract_version: CONTRACT_VERSION,
        producer: PRODUCER.to_string(),
        kind: PackageKind::Student,
        name: spec.name,
        stages,
        video: spec.video,
        audio: spec.audio,
        tokenizer: spec.tokenizer,
        labels: spec.labels,
        quantization: QuantizationInfo::default(),
        voice: spec.voice,
    };
    manifest.validate().map_err(|e| layout(e.to_string()))?;
    Ok((manifest, graphs, spec.vad))
}

/// Converts one generic ONNX model into a package with a single `model` stage.
pub fn convert_model(path: &Path, input_shapes: &BTreeMap<String, Vec<usize>>) -> Result<Converted, ConvertError> {
    let (manifest, graphs) = prepare_model(path, input_shapes)?;
    finish(manifest, graphs)
}

/// Converts and quantizes one generic ONNX model (see [`quantized::Options`]).
pub fn convert_model_with(
    path: &Path,
    input_shapes: &BTreeMap<String, Vec<usize>>,
    opts: &quantized::Options,
) -> Result<quantized::Outcome, ConvertError> {
    let (manifest, graphs) = prepare_model(path, input_shapes)?;
    quantized::run(manifest, graphs, opts)
}

fn prepare_model(
    path: &Path,
    input_shapes: &BTreeMap<String, Vec<usize>>,
) -> Result<(Manifest, Vec<Graph>), ConvertError> {
    let g = read_graph(MODEL_STAGE, path)?;
    check_supported(std::slice::from_ref(&g))?;
    let stage = stage_info(&g, input_shapes)?;
    let name = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "model".into());
    let manifest = Manifest::model(PRODUCER, &name, stage.inputs, stage.outputs);
    Ok((manifest, vec![g]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_node_names_become_unique() {
        let node = |name: &str| onnx::pb::NodeProto { name: name.into(), ..Default::default() };
        let mut proto = onnx::pb::ModelProto {
            graph: Some(onnx::pb::GraphProto {
                node: vec![node("a"), node("a"), node(""), node("a.1"), node("a"), node("b")],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(unique_node_names(&mut proto), 2);
        let names: Vec<&str> = proto.graph.as_ref().unwrap().node.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "a.2", "", "a.1", "a.3", "b"]);
    }

    #[test]
    fn unsorted_graphs_are_sorted_and_cycles_refused() {
        use edgeqa_format::onnx_builder::{model, node};
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m.onnx");
        let relu = |i: &str, o: &str| node("Relu", o, &[i], &[o], vec![]);
        let unsorted = model(13, vec![relu("h", "y"), relu("x", "h")], vec![], &[("x", &[1])], &["y"]);
        std::fs::write(&path, prost::Message::encode_to_vec(&unsorted)).unwrap();
        let g = read_graph(MODEL_STAGE, &path).unwrap();
        assert!(graph::is_sorted(graph::graph(&g.proto)));
        assert_eq!(onnx::decode(&g.bytes, "bytes").unwrap(), g.proto, "the package gets the sorted graph");
        let cycle = model(13, vec![relu("y", "h"), relu("h", "y")], vec![], &[("x", &[1])], &["y"]);
        std::fs::write(&path, prost::Message::encode_to_vec(&cycle)).unwrap();
        let err = read_graph(MODEL_STAGE, &path).err().unwrap();
        assert!(matches!(err, ConvertError::Graph { .. }) && err.to_string().contains("cycle"), "{err}");
    }

    #[test]
    fn a_transpose_that_repeats_an_axis_is_refused_before_tract_sees_it() {
        // ONNX's checker lets it through (only its shape inference refuses it); tract allocated
        // without end on it, so `edgeqa-convert` never returned.
        use edgeqa_format::onnx_builder::{attr_ints, model, node};
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("t.onnx");
        let t = node("Transpose", "t", &["x"], &["y"], vec![attr_ints("perm", &[1, 1, 2])]);
        let m = model(13, vec![t], vec![], &[("x", &[2, 3, 4])], &["y"]);
        std::fs::write(&path, prost::Message::encode_to_vec(&m)).unwrap();
        let err = convert_model(&path, &BTreeMap::new()).err().unwrap().to_string();
        assert_eq!(
            err,
            format!(
                "{}: Transpose (t): `perm` [1, 1, 2] is not a permutation of 0..3 (each axis exactly once); \
                 the graph is malformed, re-export the model",
                path.display()
            )
        );
    }
}
