//! The body of every fuzz target (each `fuzz_targets/<name>.rs` calls its function here), and
//! what the ONNX targets share: a stage description made from the graph itself, as
//! `edgeqa-convert` would write it into the manifest.
//!
//! The workspace's test command runs these same functions over the seed corpora and random
//! mutations of them (`tests/fuzz_replay.rs`, which includes this file), so the file uses only
//! crates both have: `edgeqa`, `edgeqa_firmware_config` and `serde_json`.

use std::io::Cursor;

use edgeqa::backend::Backend;
use edgeqa::backend::tract::TractBackend;
use edgeqa::capture::mjpeg::{decode_mjpeg, jpeg_size};
use edgeqa::capture::wav::decode_wav;
use edgeqa::capture::y4m::parse_y4m;
use edgeqa::manifest::{DType, Manifest, StageInfo, TensorInfo};
use edgeqa::onnx::{self, Dim};
use edgeqa::package::{HEADER_LEN, Package, reseal};
use edgeqa::preprocess::mel::LogMel;
use edgeqa::tensor::Tensor;
use edgeqa::text::tokenizer::Tokenizer;
use edgeqa::tflite;

/// A target's body: one input.
pub type Body = fn(&[u8]);

/// Every target: its name (the corpus folder) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("package", package),
    ("manifest", manifest),
    ("graph_wgpu", graph_wgpu),
    ("graph_tract", graph_tract),
    ("y4m", y4m),
    ("wav", wav),
    ("npy", npy),
    ("board", board),
    ("mjpeg", mjpeg),
    ("tflite", tflite),
];

/// `.eqa` bytes → a verified `Package`; on success every section and stage graph is read. Then
/// the same bytes resealed (`package::reseal`: the length and digests made to match), so that
/// mutations reach the checks behind the digests: the table's rules, the manifest, the stages.
pub fn package(data: &[u8]) {
    open_package(data.to_vec());
    if data.len() >= HEADER_LEN {
        let mut resealed = data.to_vec();
        reseal(&mut resealed);
        open_package(resealed);
    }
}

fn open_package(data: Vec<u8>) {
    match Package::from_bytes(data, "fuzz.eqa") {
        Ok(p) => {
            for s in p.sections() {
                assert_eq!(p.section(&s.name).map(<[u8]>::len), Some(s.len as usize));
            }
            for st in &p.manifest().stages {
                assert!(p.stage_graph(&st.name).is_some());
            }
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.eqa: ")),
    }
}

/// Manifest JSON → `Manifest` → `validate`; what a load then derives from a valid manifest is
/// computed too: every tensor's element count, the tokenizer and the log-mel extractor.
pub fn manifest(data: &[u8]) {
    let Ok(m) = serde_json::from_slice::<Manifest>(data) else { return };
    if m.validate().is_err() {
        return;
    }
    for t in m.stages.iter().flat_map(|s| s.inputs.iter().chain(&s.outputs)) {
        assert!(!t.is_empty());
    }
    // As `Student::load` builds them: only for the stages that use them.
    if let Some(t) = m.tokenizer.as_ref().filter(|_| m.stage("question_encoder").is_some())
        && let Ok(tok) = Tokenizer::new(t)
    {
        let _ = tok.encode("what colour is the ball?");
    }
    if let Some(a) = m.audio.as_ref().filter(|_| m.stage("audio_encoder").is_some()) {
        let _ = LogMel::new(a);
    }
}

/// ONNX bytes → `onnx::decode` → `Graph::load` with the wgpu backend's op set, fused and
/// memory-planned (`wgpu::plan_stage`, no GPU needed). Constant folding runs tract and catches
/// its panics (the node then runs instead).
pub fn graph_wgpu(data: &[u8]) {
    let Ok(model) = onnx::decode(data, "fuzz.onnx") else { return };
    let stage = stage_for(&model);
    let _ = edgeqa::backend::wgpu::plan_stage(&stage, data, &[], "fuzz.onnx");
}

/// ONNX bytes → the tract backend's `load_stage` (decode, checks, tract's parse and optimiser);
/// the backend catches tract's panics at its boundary and turns them into errors.
pub fn graph_tract(data: &[u8]) {
    let Ok(model) = onnx::decode(data, "fuzz.onnx") else { return };
    let stage = stage_for(&model);
    let _ = TractBackend::new().load_stage(&stage, data, "fuzz.onnx");
}

/// Y4M bytes → `parse_y4m` → every frame (at most 8) converted to RGB.
pub fn y4m(data: &[u8]) {
    let Ok(v) = parse_y4m(data, "fuzz.y4m") else { return };
    assert!(v.frame_count() >= 1);
    for i in 0..v.frame_count().min(8) {
        let rgb = v.frame_rgb(i).expect("a parsed frame converts");
        assert_eq!(rgb.len(), 3 * v.width * v.height);
        assert!(rgb.iter().all(|x| (0.0..=1.0).contains(x)));
    }
    assert!(v.frame_rgb(v.frame_count()).is_err());
}

/// WAV bytes → `decode_wav` at the rate the header announces (so the samples are read too).
pub fn wav(data: &[u8]) {
    let rate = data.get(24..28).map_or(16000, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if let Ok(samples) = decode_wav(Cursor::new(data), "fuzz.wav", rate) {
        assert!(!samples.is_empty());
        assert!(samples.iter().all(|s| (-1.0..=1.0).contains(s)));
    }
}

/// `.npy` bytes → `Tensor::from_npy_bytes`.
pub fn npy(data: &[u8]) {
    if let Ok(t) = Tensor::from_npy_bytes(data, "fuzz.npy") {
        assert_eq!(t.len(), t.shape.iter().product::<usize>());
    }
}

/// Board profile TOML → `edgeqa_firmware_config::parse`.
pub fn board(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match edgeqa_firmware_config::parse(text, "fuzz.toml") {
        Ok(b) => assert!(b.memory_budget_bytes() > 0),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// MJPEG frames as a camera delivers them: `mjpeg::decode_mjpeg` (standard Huffman tables
/// inserted when missing, then zune-jpeg) at the size the headers announce, then conversion to
/// planar RGB; must never panic.
pub fn mjpeg(data: &[u8]) {
    let Some((w, h)) = jpeg_size(data) else { return };
    if w == 0 || h == 0 || w * h > 1 << 20 {
        return;
    }
    let mut rgb8 = Vec::new();
    let _ = decode_mjpeg(data, w, h, &mut rgb8);
    let mut out = vec![0.0f32; 3 * w * h];
    let _ = edgeqa::capture::pixels::to_rgb(
        edgeqa::capture::PixelFormat::Mjpeg,
        data,
        w,
        h,
        &mut out,
        &mut edgeqa::capture::pixels::Scratch::default(),
    );
}

/// `.tflite` bytes → `tflite::parse`; on success the main subgraph, its inputs and outputs, the
/// operator counts, the custom operators and every operator's name are derived.
pub fn tflite(data: &[u8]) {
    let Ok(model) = tflite::parse(data) else { return };
    let uses: usize = model.op_counts().iter().map(|(_, n)| n).sum();
    assert_eq!(uses, model.subgraphs.iter().map(|s| s.operators.len()).sum::<usize>());
    let names: Vec<String> = model.operator_codes.iter().map(|c| c.name()).collect();
    assert!(names.iter().all(|n| !n.is_empty()));
    for custom in model.custom_ops() {
        assert!(names.contains(&format!("CUSTOM:{custom}")));
    }
    match model.main() {
        Ok(main) => match model.io() {
            Ok((inputs, outputs)) => {
                assert_eq!((inputs.len(), outputs.len()), (main.inputs.len(), main.outputs.len()));
            }
            Err(e) => assert!(e.to_string().contains("subgraphs[0].")),
        },
        Err(e) => assert!(model.subgraphs.is_empty() && model.io().is_err_and(|f| f == e)),
    }
}

/// Largest dimension given to a graph input: keeps each run to milliseconds.
const MAX_DIM: usize = 16;

/// A stage whose inputs are the model's declared inputs, with every dimension fixed (symbolic
/// ones to 1, large ones capped) and unknown element types fed as f32.
pub fn stage_for(model: &onnx::pb::ModelProto) -> StageInfo {
    let info = |t: onnx::DeclaredTensor| TensorInfo {
        name: t.name,
        dtype: t.dtype.unwrap_or(DType::F32),
        shape: t
            .dims
            .unwrap_or_default()
            .into_iter()
            .take(6)
            .map(|d| match d {
                Dim::Fixed(n) => n.min(MAX_DIM),
                Dim::Symbolic(_) => 1,
            })
            .collect(),
    };
    StageInfo {
        name: "model".into(),
        section: "model".into(),
        inputs: onnx::graph_inputs(model).into_iter().map(info).collect(),
        outputs: onnx::graph_outputs(model).into_iter().map(info).collect(),
        format: Default::default(),
    }
}

/// Replaces libFuzzer's panic hook (which aborts on any panic, also one edgeqa catches at a
/// boundary and turns into an error) with one that prints one line per panic. An uncaught panic
/// still aborts the run; its line is the last `panicked at` before libFuzzer's report, which
/// `scripts/fuzz.sh` shows.
pub fn print_panics_without_aborting() {
    let _ = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| eprintln!("{}", panic_line(info))));
}

/// `panicked at FILE:LINE: MESSAGE` (the message's first line) of a panic.
pub fn panic_line(info: &std::panic::PanicHookInfo<'_>) -> String {
    let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
    let msg = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_default();
    format!("panicked at {at}: {}", msg.lines().next().unwrap_or(""))
}
