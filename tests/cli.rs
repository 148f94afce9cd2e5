//! End-to-end tests of the `edgeqa` binary on a generated probe student and generated clips.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use edgeqa::onnx::Dim;
use edgeqa::onnx_builder::{Attr, GraphBuilder};
use edgeqa_tests::{assert_clean_error, run_bin, write_probe_bundle};

const EDGEQA: &str = env!("CARGO_BIN_EXE_edgeqa");

/// A demo bundle with 6 clips, generated once per test process.
fn bundle() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        write_probe_bundle(dir.path(), 7, 6).unwrap();
        dir
    })
    .path()
}

fn edgeqa(args: &[&str]) -> (bool, String, String) {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    run_bin(EDGEQA, &args, &[])
}

fn p(path: PathBuf) -> String {
    path.display().to_string()
}

fn package() -> String {
    p(bundle().join("demo.eqa"))
}

fn clip(n: usize, ext: &str) -> String {
    p(bundle().join(format!("eval/clip_{n:03}.{ext}")))
}

fn questions() -> Vec<serde_json::Value> {
    std::fs::read_to_string(bundle().join("eval/questions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn inspect_shows_stages_checksums_and_ops() {
    let (ok, out, err) = edgeqa(&["inspect", &package()]);
    assert!(ok, "{err}");
    assert!(out.contains("all checksums verified"), "{out}");
    for stage in ["frame_encoder", "audio_encoder", "question_encoder", "head"] {
        assert!(out.contains(stage), "{stage} missing: {out}");
    }
    assert!(out.contains("frames f32[4,3,32,32]"), "{out}");
    assert!(out.contains("Gather×1"), "{out}");

    let (ok, out, err) = edgeqa(&["inspect", "--json", &package()]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["stages"].as_array().unwrap().len(), 4);
    assert_eq!(v["sections"][0]["name"], "manifest");
    assert_eq!(v["manifest"]["labels"].as_array().unwrap().len(), 15);
    assert_eq!(v["stages"][3]["outputs"][0]["shape"], serde_json::json!([1, 15]));
}

/// `edgeqa ask --json` on an eval question `q` of the bundle, on its clip, with `extra` flags.
fn ask_json(q: &serde_json::Value, extra: &[&str]) -> (serde_json::Value, String) {
    let n: usize = q["video"].as_str().unwrap()[5..8].parse().unwrap();
    let (pkg, video, audio) = (package(), clip(n, "y4m"), clip(n, "wav"));
    let head = ["ask", "--package", &pkg, "--video", &video, "--audio", &audio, "--json"];
    let (ok, out, err) = edgeqa(&[&head[..], extra, &[q["question"].as_str().unwrap()]].concat());
    assert!(ok, "{err}");
    (serde_json::from_str(&out).unwrap(), out)
}

#[test]
fn ask_answers_with_confidence_and_timings() {
    for q in questions().iter().take(8) {
        let (a, out) = ask_json(q, &[]);
        assert_eq!(a["answer"], q["answer"], "{q}: {out}");
        assert_eq!(a["question"], q["question"]);
        assert_eq!(a["backend"], "tract");
        let conf = a["confidence"].as_f64().unwrap();
        assert!(conf > 0.5 && conf <= 1.0, "{out}");
        assert_eq!(a["top_k"][0]["answer"], a["answer"]);
        for stage in ["frame_encoder", "audio_encoder", "question_encoder", "head", "read"] {
            assert!(a["timings_ms"][stage].as_f64().is_some(), "{stage} timing missing: {out}");
        }
    }
    let (ok, out, _) = edgeqa(&[
        "ask",
        "--package",
        &package(),
        "--video",
        &clip(0, "y4m"),
        "--audio",
        &clip(0, "wav"),
        "is there a sound?",
    ]);
    assert!(ok);
    assert!(out.lines().next().unwrap().contains('%'), "{out}");
}

#[test]
fn eval_reports_accuracy_per_type() {
    let set = p(bundle().join("eval/questions.jsonl"));
    let (ok, out, err) = edgeqa(&["eval", "--package", &package(), "--set", &set, "--json"]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["n"].as_u64().unwrap() as usize, questions().len());
    assert!(r["accuracy"].as_f64().unwrap() >= 0.95, "{out}");
    for kind in ["colour", "motion", "sound"] {
        assert!(r["per_type"][kind]["n"].as_u64().unwrap() > 0, "{kind}: {out}");
    }
    let (ok, out, _) = edgeqa(&["eval", "--package", &package(), "--set", &set]);
    assert!(ok);
    assert!(out.contains("accuracy") && out.contains("motion"), "{out}");
}

/// `edgeqa eval --json --answers` on the probe set `set` with `--selection selection`.
fn eval_selection(set: &str, selection: &str) -> serde_json::Value {
    let (ok, out, err) =
        edgeqa(&["eval", "--package", &package(), "--set", set, "--selection", selection, "--json", "--answers"]);
    assert!(ok, "--selection {selection}: {err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["selection"], selection, "{out}");
    r
}

#[test]
fn eval_selections_choose_the_frames_and_say_which_ran() {
    let set = p(bundle().join("eval/questions.jsonl"));
    let uniform = eval_selection(&set, "uniform");
    let (ok, out, err) = edgeqa(&["eval", "--package", &package(), "--set", &set, "--json", "--answers"]);
    assert!(ok, "{err}");
    let default: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(default["selection"], "uniform", "uniform is the default");
    assert_eq!(default["answers"], uniform["answers"]);
    let (ok, out, _) = edgeqa(&["eval", "--package", &package(), "--set", &set, "--selection", "recent"]);
    assert!(ok && out.contains("selection recent"), "the human report names the selection: {out}");

    // The probe student has no selector stage: `question` falls back to uniform and says so.
    let (ok, out, err) =
        edgeqa(&["eval", "--package", &package(), "--set", &set, "--selection", "question", "--json", "--answers"]);
    assert!(ok, "{err}");
    let fallback: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(fallback["selection"], "uniform", "the report names the selection that ran");
    assert_eq!(fallback["answers"], uniform["answers"]);
    assert!(err.contains("no selector stage") && err.contains("falls back to `uniform`"), "{err}");

    // The probe set gives no windows: oracle refuses before answering anything.
    assert_clean_error(
        &edgeqa(&["eval", "--package", &package(), "--set", &set, "--selection", "oracle"]),
        &["questions.jsonl:1", "`oracle`", "\"window\""],
    );

    // Windows over every frame are the whole clips: oracle answers exactly as uniform does. Clip
    // paths become absolute, so the set can live elsewhere.
    let dir = tempfile::tempdir().unwrap();
    let mut whole = String::new();
    let mut past_end = String::new();
    for mut q in questions() {
        let video = bundle().join("eval").join(q["video"].as_str().unwrap());
        let frames = edgeqa::capture::y4m::read_y4m(&video).unwrap().frame_count();
        q["video"] = p(video).into();
        q["audio"] = p(bundle().join("eval").join(q["audio"].as_str().unwrap())).into();
        q["window"] = serde_json::json!([0, frames]);
        whole += &format!("{q}\n");
        q["window"] = serde_json::json!([frames - 4, frames + 1]);
        past_end += &format!("{q}\n");
    }
    let whole = write(dir.path(), "whole.jsonl", whole.as_bytes());
    let oracle = eval_selection(&whole, "oracle");
    assert_eq!(oracle["answers"], uniform["answers"], "a whole-clip window is the whole clip");
    assert_eq!(oracle["accuracy"], uniform["accuracy"]);
    // Recent takes the last frames only: it runs, and sees less of the clips than uniform.
    let recent = eval_selection(&set, "recent");
    assert_eq!(recent["n"], uniform["n"]);
    assert_ne!(recent["answers"], uniform["answers"], "the last frames are not the whole clip");

    let past_end = write(dir.path(), "past_end.jsonl", past_end.as_bytes());
    assert_clean_error(
        &edgeqa(&["eval", "--package", &package(), "--set", &past_end, "--selection", "oracle"]),
        &["past_end.jsonl:1", "frames 20..25", "only 24 frames"],
    );
    let empty =
        write(dir.path(), "empty_window.jsonl", b"{\"question\": \"q\", \"answer\": \"red\", \"window\": [3, 3]}\n");
    assert_clean_error(
        &edgeqa(&["eval", "--package", &package(), "--set", &empty]),
        &["empty_window.jsonl:1", "[3, 3]", "start < end"],
    );
}

#[test]
fn demo_runs_on_the_committed_bundle() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/demo");
    let (ok, out, err) = run_bin(EDGEQA, &[OsStr::new("demo")], &[("EDGEQA_DEMO_DIR", &committed)]);
    assert!(ok, "{err}");
    assert!(out.contains("question") && out.contains("truth") && out.contains("conf"), "{out}");
    // Six clips, six questions each, of as many types as each clip has (the accuracy bar itself is
    // checked on the whole set in tests/demo_student.rs).
    assert!(out.lines().any(|l| l.starts_with("accuracy")), "{out}");
    for kind in ["appearance", "counting", "motion", "audio"] {
        assert!(out.contains(kind), "no {kind} question in the demo: {out}");
    }
}

/// A generic model: y = relu(x · W + b) with x [1,3].
fn write_generic_model(dir: &Path) -> PathBuf {
    let mut g = GraphBuilder::new("tiny", 13);
    let x = g.input_f32("x", &[Dim::Symbolic("batch".into()), Dim::Fixed(3)]);
    let w = g.const_f32("w", &[3, 2], vec![1.0, -1.0, 2.0, 0.5, -3.0, 1.0]);
    let b = g.const_f32("b", &[2], vec![0.25, -0.5]);
    let mm = g.node("MatMul", &[&x, &w], vec![]);
    let add = g.node("Add", &[&mm, &b], vec![]);
    let y = g.node("Relu", &[&add], vec![]);
    g.output(&y, "y/out");
    let path = dir.join("tiny.onnx");
    std::fs::write(&path, g.build()).unwrap();
    path
}

/// The generic model packaged for x [2, 3], and an input for it: (package, x.npy).
fn write_generic_package(dir: &Path) -> (PathBuf, PathBuf) {
    let model = write_generic_model(dir);
    let pkg = dir.join("tiny.eqa");
    let converted =
        edgeqa_convert::convert_model(&model, &edgeqa_convert::parse_shape_args(&["x=2,3".into()]).unwrap()).unwrap();
    converted.write(&pkg).unwrap();
    let input = dir.join("x.npy");
    edgeqa::tensor::Tensor::f32(vec![2, 3], vec![1.0, 2.0, 3.0, -1.0, 0.0, 1.0]).unwrap().write_npy(&input).unwrap();
    (pkg, input)
}

#[test]
fn run_executes_a_generic_package_on_npy() {
    let dir = tempfile::tempdir().unwrap();
    let (pkg, input) = write_generic_package(dir.path());
    let out_dir = dir.path().join("out");
    let (ok, out, err) = edgeqa(&[
        "run",
        "--package",
        &p(pkg.clone()),
        "--input",
        &format!("x={}", input.display()),
        "--output-dir",
        &p(out_dir.clone()),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("y/out f32[2, 2]"), "{out}");
    let y = edgeqa::tensor::Tensor::read_npy(&out_dir.join("y_out.npy")).unwrap();
    // Row 0: [1+4-9, -1+1+3] + b = [-4+0.25, 3-0.5] -> relu; row 1: [-1-3, 1+1] + b.
    assert_eq!(y.as_f32().unwrap(), &[0.0, 2.5, 0.0, 1.5]);

    // Bad inputs: wrong shape, unknown input name, missing input.
    let bad = dir.path().join("bad.npy");
    edgeqa::tensor::Tensor::f32(vec![1, 3], vec![0.0; 3]).unwrap().write_npy(&bad).unwrap();
    let r = edgeqa(&["run", "--package", &p(pkg.clone()), "--input", &format!("x={}", bad.display())]);
    assert_clean_error(&r, &["bad.npy", "[2, 3]", "[1, 3]"]);
    let r = edgeqa(&["run", "--package", &p(pkg.clone()), "--input", &format!("z={}", bad.display())]);
    assert_clean_error(&r, &["`z`", "inputs: x"]);
}

/// `run --profile` times every node on wgpu (lavapipe in CI) and on tract.
#[test]
fn run_profiles_nodes_on_wgpu() {
    let dir = tempfile::tempdir().unwrap();
    let (pkg, input) = write_generic_package(dir.path());
    let x = format!("x={}", input.display());
    let (ok, out, err) =
        edgeqa(&["run", "--package", &p(pkg.clone()), "--input", &x, "--backend", "wgpu", "--profile", "2", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["outputs"][0]["name"], "y/out", "{out}");
    let profile = &v["profile"];
    assert_eq!(profile["runs"], 2);
    let nodes = profile["nodes"].as_array().unwrap();
    // MatMul with its bias Add and Relu fused: one node, one dispatch.
    assert_eq!(nodes.len(), 1, "{out}");
    assert_eq!(nodes[0]["op"], "MatMul");
    assert_eq!(nodes[0]["dispatches"], 1);
    assert!(nodes[0]["median_us"].as_f64().unwrap() > 0.0, "{out}");
    let (ok, out, err) =
        edgeqa(&["run", "--package", &p(pkg.clone()), "--input", &x, "--backend", "wgpu", "--profile", "1"]);
    assert!(ok, "{err}");
    assert!(out.contains("slowest nodes:") && out.contains("per op:") && out.contains("MatMul ×1"), "{out}");
    // tract times the nodes of its own optimised plan.
    let (ok, out, err) =
        edgeqa(&["run", "--package", &p(pkg.clone()), "--input", &x, "--backend", "tract", "--profile", "2"]);
    assert!(ok, "{err}");
    assert!(out.contains("tract's plan") && out.contains("slowest nodes:"), "{out}");
    // clap's own error: one line naming the flag and the value, then its pointer to --help.
    for runs in ["0", "two"] {
        let (ok, _, err) =
            edgeqa(&["run", "--package", &p(pkg.clone()), "--input", &x, "--backend", "wgpu", "--profile", runs]);
        assert!(!ok && !err.contains("panicked"), "{err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: invalid value") && first.contains("--profile") && first.contains(runs),
            "{err}"
        );
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    p(path)
}

#[test]
fn bad_clips_and_questions_give_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = package();
    let wav = clip(0, "wav");
    let y4m = clip(0, "y4m");
    let ask =
        |video: &str, audio: &str, q: &str| edgeqa(&["ask", "--package", &pkg, "--video", video, "--audio", audio, q]);

    let bad_header = write(dir.path(), "bad_header.y4m", b"YUV4MPEG2 W64 Hxx F12:1\nFRAME\n");
    assert_clean_error(&ask(&bad_header, &wav, "is there a sound?"), &["bad_header.y4m"]);
    let ten_bit = write(dir.path(), "tenbit.y4m", b"YUV4MPEG2 W2 H2 F12:1 C420p10\nFRAME\n");
    assert_clean_error(&ask(&ten_bit, &wav, "is there a sound?"), &["tenbit.y4m", "420p10"]);
    let not_video = write(dir.path(), "notes.y4m", b"hello");
    assert_clean_error(&ask(&not_video, &wav, "is there a sound?"), &["notes.y4m"]);

    let slow = dir.path().join("8k.wav");
    edgeqa::capture::wav::write_wav_mono_i16(&slow, 8000, &[0.0; 8000]).unwrap();
    assert_clean_error(&ask(&y4m, &p(slow), "is there a sound?"), &["8k.wav", "8000", "16000"]);

    assert_clean_error(&ask(&y4m, &wav, "   "), &["empty"]);
    assert_clean_error(&ask(&y4m, &wav, "is there a zebra or a giraffe?"), &["`zebra`", "`giraffe`"]);
    assert_clean_error(&edgeqa(&["ask", "--package", &pkg, "--video", &y4m, "is there a sound?"]), &["--audio"]);
    assert_clean_error(&edgeqa(&["inspect", "/nonexistent/x.eqa"]), &["/nonexistent/x.eqa"]);
}

#[test]
fn bad_question_sets_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let set = write(
        dir.path(),
        "set.jsonl",
        b"{\"video\": \"a.y4m\", \"question\": \"q\", \"answer\": \"red\"}\n{\"video\": 3}\n",
    );
    let r = edgeqa(&["eval", "--package", &package(), "--set", &set]);
    assert_clean_error(&r, &["set.jsonl:2"]);
    let empty = write(dir.path(), "empty.jsonl", b"\n");
    assert_clean_error(&edgeqa(&["eval", "--package", &package(), "--set", &empty]), &["empty.jsonl", "no questions"]);
    let missing = write(dir.path(), "missing.jsonl", b"{\"video\": \"nope.y4m\", \"audio\": \"nope.wav\", \"question\": \"is there a sound?\", \"answer\": \"no\"}\n");
    assert_clean_error(
        &edgeqa(&["eval", "--package", &package(), "--set", &missing]),
        &["missing.jsonl:1", "nope.y4m"],
    );
}

#[test]
fn a_package_with_an_op_tract_lacks_lists_it_at_load() {
    // Built with the package writer directly, as a converter of another version might.
    let mut g = GraphBuilder::new("custom", 13);
    let x = g.input_f32("x", &[Dim::Fixed(1), Dim::Fixed(2)]);
    let a = g.custom_node("com.example", "FancyOp", &[&x]);
    let b = g.node("Relu", &[&a], vec![("alpha", Attr::Float(0.1))]);
    let c = g.custom_node("com.example", "OtherOp", &[&b]);
    g.output(&c, "y");
    let info = |n: &str| edgeqa::manifest::TensorInfo {
        name: n.into(),
        dtype: edgeqa::manifest::DType::F32,
        shape: vec![1, 2],
    };
    let manifest = edgeqa::manifest::Manifest::model("test", "custom", vec![info("x")], vec![info("y")]);
    let mut w = edgeqa::package::PackageWriter::new(manifest);
    w.add_onnx("model", g.build()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("custom.eqa");
    w.write(&pkg).unwrap();
    let input = dir.path().join("x.npy");
    edgeqa::tensor::Tensor::f32(vec![1, 2], vec![0.0; 2]).unwrap().write_npy(&input).unwrap();
    let r = edgeqa(&["run", "--package", &p(pkg), "--input", &format!("x={}", input.display())]);
    assert_clean_error(&r, &["com.example:FancyOp", "com.example:OtherOp"]);
}

#[test]
fn memory_budget_refuses_with_a_breakdown_and_reports_the_peak() {
    let set = p(bundle().join("eval/questions.jsonl"));
    // Far too small: refused at load with every line of the plan.
    let r = edgeqa(&["eval", "--package", &package(), "--set", &set, "--memory-budget-mib", "1"]);
    assert_clean_error(&r, &["exceeds the --memory-budget-mib budget of 1.0 MiB", "head weights", "activations"]);

    // The smallest board profile: the demo fits and the measured peak stays under it.
    let (ok, out, err) = edgeqa(&["eval", "--package", &package(), "--set", &set, "--board", "rpi-zero-2w", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let m = &v["memory"];
    assert_eq!(m["board"], "rpi-zero-2w");
    let budget = m["budget_mib"].as_f64().unwrap();
    let peak = m["peak_rss_mib"].as_f64().unwrap();
    assert!(m["plan_mib"].as_f64().unwrap() <= budget, "{out}");
    assert!(peak > 0.0 && peak <= budget, "peak RSS {peak} MiB over the {budget} MiB budget");
    assert!(m["peak_heap_mib"].as_f64().unwrap() > 0.0, "{out}");

    // A long clip that does not fit whole degrades to mapping the file and keeping only the
    // sampled frames: it is still answered, and the peak stays under the budget.
    let plan = m["plan_mib"].as_f64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join("long.y4m");
    let mut frames = Vec::new();
    for i in 0..40 {
        let mut f = vec![128u8; 640 * 480 * 3];
        for y in 200..280 {
            for x in (i * 8)..(i * 8 + 80) {
                f[(y * 640 + x) * 3] = 230; // a red square moving right
                f[(y * 640 + x) * 3 + 1] = 10;
                f[(y * 640 + x) * 3 + 2] = 10;
            }
        }
        frames.push(f);
    }
    edgeqa::capture::y4m::write_y4m_420_file(&long, 640, 480, (24, 1), &frames).unwrap();
    assert!(std::fs::metadata(&long).unwrap().len() > 17 * 1024 * 1024);
    let budget = format!("{}", plan.ceil() as u32 + 16);
    let ask = |video: &Path, q: &str| {
        edgeqa(&[
            "ask",
            "--package",
            &package(),
            "--video",
            &p(video.to_path_buf()),
            "--audio",
            &clip(0, "wav"),
            "--memory-budget-mib",
            &budget,
            "--json",
            q,
        ])
    };
    for (q, want) in [("what colour is the square?", "red"), ("where is the square moving?", "right")] {
        let (ok, out, err) = ask(&long, q);
        assert!(ok, "{err}");
        let a: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(a["answer"], want, "{out}");
        let peak = a["memory"]["peak_rss_mib"].as_f64().unwrap();
        let budget = a["memory"]["budget_mib"].as_f64().unwrap();
        assert!(peak <= budget, "peak RSS {peak} MiB over the {budget} MiB budget");
    }

    // A clip whose sampled frames alone do not fit is refused before its frames are touched.
    let big = dir.path().join("big.y4m");
    edgeqa::capture::y4m::write_y4m_420_file(&big, 640, 480, (12, 1), &vec![vec![128u8; 640 * 480 * 3]; 8]).unwrap();
    let budget = format!("{}", plan.ceil() as u32 + 1);
    let r = edgeqa(&[
        "ask",
        "--package",
        &package(),
        "--video",
        &p(big),
        "--audio",
        &clip(0, "wav"),
        "--memory-budget-mib",
        &budget,
        "is there a sound?",
    ]);
    assert_clean_error(&r, &["big.y4m", "decoding the clip needs"]);

    let r = edgeqa(&["eval", "--package", &package(), "--set", &set, "--board", "no-such-board"]);
    assert_clean_error(&r, &["no-such-board", "rpi4"]);
}

#[test]
fn inspect_prints_the_memory_plan_for_a_board() {
    let (ok, out, err) = edgeqa(&["inspect", &package(), "--board", "rpi-zero-2w"]);
    assert!(ok, "{err}");
    // The board's `threads` (2) unless --threads says otherwise; the warm-up ran on them.
    assert!(out.contains("memory plan for rpi-zero-2w (budget 64.0 MiB; warmed up on 2 tract thread(s))"), "{out}");
    assert!(out.contains("head weights") && out.contains("fits"), "{out}");
    let (ok, out, err) =
        edgeqa(&["inspect", &package(), "--board", "rpi-zero-2w", "--backend", "tract", "--threads", "1", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["plan"]["threads"], 1, "{out}");
    let (ok, out, _) = edgeqa(&["boards"]);
    assert!(ok);
    for board in ["rpi-zero-2w", "rpi4", "rpi5", "jetson-nano", "jetson-orin-nano", "generic-aarch64", "generic-x86_64"]
    {
        assert!(out.contains(board), "{board} missing: {out}");
    }
}

/// `edgeqa bench` on the probe student: every stage and the question path, each with the
/// number of runs asked for, the raw samples and their statistics, in every format.
#[test]
fn bench_times_every_stage_and_the_question_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let json_file = dir.path().join("bench.json");
    let base = ["bench", "--package", &package(), "--backend", "tract", "--iterations", "4", "--rounds", "2"];
    let (ok, _, err) = edgeqa(&[&base[..], &["--format", "json", "--output", &p(json_file.clone())]].concat());
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).unwrap();
    assert_eq!(r["schema"], "edgeqa-bench/1");
    assert_eq!(r["package"]["kind"], "student");
    assert_eq!(r["package"]["sha256"].as_str().unwrap().len(), 64);
    assert!(r["machine"]["cores"].as_u64().unwrap() >= 1);
    let figures: Vec<&str> = r["results"].as_array().unwrap().iter().map(|f| f["figure"].as_str().unwrap()).collect();
    assert_eq!(
        figures,
        ["stage/frame_encoder", "stage/audio_encoder", "stage/question_encoder", "stage/head", "clip", "question"]
    );
    // The clip figure's parts: a synthetic clip, decoded in memory, so no `read`.
    let parts = r["results"][4]["parts_ms"].as_object().unwrap();
    let names: Vec<&str> = parts.keys().map(String::as_str).collect();
    assert_eq!(names, ["audio_encoder", "frame_encoder", "preprocess_audio", "preprocess_video"]);
    assert!(parts.values().all(|v| v.as_f64().unwrap() > 0.0), "{parts:?}");
    for f in r["results"].as_array().unwrap() {
        assert_eq!(f["backend"], "tract");
        assert_eq!(f["runs"], 4);
        let samples: Vec<f64> = f["samples_ms"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(samples.len(), 4);
        let s = &f["stats"];
        let (min, p50, max) = (s["min"].as_f64().unwrap(), s["p50"].as_f64().unwrap(), s["max"].as_f64().unwrap());
        assert!(min > 0.0 && min <= p50 && p50 <= max, "{s}");
        assert_eq!(min, samples.iter().copied().fold(f64::INFINITY, f64::min));
        assert!(f["load_ms"].as_f64().unwrap() > 0.0 && f["first_run_ms"].as_f64().unwrap() > 0.0);
        assert!(f.get("p50_ratio").is_none(), "one backend has no ratios");
    }
    let (ok, out, err) = edgeqa(&[&base[..], &["--format", "jsonl"]].concat());
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 6);
    for l in out.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["schema"], "edgeqa-bench/1");
    }
    let (ok, out, err) = edgeqa(&[&base[..], &["--format", "csv"]].concat());
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("figure,backend,threads,load_ms"), "{out}");
    assert_eq!(lines.len(), 7);
    assert!(lines[6].starts_with("question,tract,1,"), "{out}");
    let (ok, out, err) = edgeqa(&[&base[..], &["--format", "md", "--board", "rpi4"]].concat());
    assert!(ok, "{err}");
    // Without --threads, the board's thread count (rpi4: 2).
    assert!(out.contains("| figure | backend |") && out.contains("| question | tract | 2 |"), "{out}");
    assert!(out.contains("board rpi4: peak resident"), "{out}");
    let (ok, out, err) = edgeqa(&[
        "bench",
        "--package",
        &package(),
        "--backend",
        "tract",
        "--min-time",
        "0.05",
        "--warmup-time",
        "0.01",
        "--rate",
        "200",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("stage/head") && out.contains("p50 ms"), "{out}");
}

/// `edgeqa bench` on the demo student, which has a selector: its two stages are figures, and
/// `question+selector` is measured beside `question` with as many runs.
#[test]
fn bench_times_the_selector_beside_the_question() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/demo/demo.eqa");
    let (ok, out, err) = edgeqa(&[
        "bench",
        "--package",
        &p(demo),
        "--backend",
        "tract",
        "--iterations",
        "4",
        "--rounds",
        "2",
        "--format",
        "json",
    ]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let figures: Vec<&str> = r["results"].as_array().unwrap().iter().map(|f| f["figure"].as_str().unwrap()).collect();
    assert_eq!(
        figures,
        [
            "stage/frame_encoder",
            "stage/audio_encoder",
            "stage/question_encoder",
            "stage/selector_keys",
            "stage/selector",
            "stage/head",
            "clip",
            "question",
            "question+selector"
        ]
    );
    let p50 = |name: &str| {
        r["results"].as_array().unwrap().iter().find(|f| f["figure"] == name).unwrap()["stats"]["p50"].as_f64().unwrap()
    };
    for f in r["results"].as_array().unwrap() {
        assert_eq!(f["runs"], 4, "{}", f["figure"]);
        assert!(f.get("p50_ratio").is_none(), "one backend has no ratios");
        if f["figure"] == "question+selector" {
            let ratio = f["question_ratio"].as_f64().expect("question+selector has its ratio to question");
            assert!((ratio - p50("question+selector") / p50("question")).abs() < 1e-9, "{ratio}");
        } else {
            assert!(f.get("question_ratio").is_none(), "{} has no question ratio", f["figure"]);
        }
    }
}

/// The `clip` figure on the bundled clip files: reading and decoding them is one of its parts.
#[test]
fn bench_times_a_clip_from_files() {
    let (ok, out, err) = edgeqa(&[
        "bench",
        "--package",
        &package(),
        "--backend",
        "tract",
        "--iterations",
        "3",
        "--video",
        &clip(1, "y4m"),
        "--audio",
        &clip(1, "wav"),
    ]);
    assert!(ok, "{err}");
    let line =
        out.lines().find(|l| l.starts_with("clip on tract (1 thread(s)), p50 ms: ")).unwrap_or_else(|| panic!("{out}"));
    for part in ["read ", "preprocess_video ", "frame_encoder ", "preprocess_audio ", "audio_encoder "] {
        assert!(line.contains(part), "{line}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (generic, _) = write_generic_package(dir.path());
    let r = edgeqa(&["bench", "--package", &p(generic), "--video", &clip(1, "y4m")]);
    assert_clean_error(&r, &["--video", "generic package"]);
    let r = edgeqa(&["bench", "--package", &package(), "--audio", "/nonexistent/a.wav"]);
    assert_clean_error(&r, &["/nonexistent/a.wav", "no such file"]);
}

/// A generic package with a real input, on tract and on wgpu side by side (lavapipe in CI).
#[test]
fn bench_runs_a_generic_package_on_both_backends_with_a_given_input() {
    let dir = tempfile::tempdir().unwrap();
    let (pkg, input) = write_generic_package(dir.path());
    let (ok, out, err) = edgeqa(&[
        "bench",
        "--package",
        &p(pkg),
        "--backend",
        "tract,wgpu",
        "--threads",
        "1,2",
        "--iterations",
        "3",
        "--input",
        &format!("x={}", input.display()),
        "--format",
        "json",
    ]);
    assert!(ok, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["inputs"][0], format!("x={}", input.display()));
    let results = r["results"].as_array().unwrap();
    let backends: Vec<&str> = results.iter().map(|f| f["backend"].as_str().unwrap()).collect();
    assert_eq!(backends, ["tract", "tract", "wgpu"], "each thread count on tract, wgpu once");
    let threads: Vec<u64> = results.iter().map(|f| f["threads"].as_u64().unwrap()).collect();
    assert_eq!(threads, [1, 2, 1]);
    assert!(results.iter().all(|f| f["figure"] == "stage/model"));
    assert_eq!(results[0]["p50_ratio"], 1.0);
    assert!(results[1]["p50_ratio"].as_f64().unwrap() > 0.0 && results[2]["p50_ratio"].as_f64().unwrap() > 0.0);
    assert!(results.iter().all(|f| f.get("profile").is_none()));
    // --profile adds both backends' per-node times.
    let (ok, out, err) = edgeqa(&[
        "bench",
        "--package",
        &p(dir.path().join("tiny.eqa")),
        "--backend",
        "tract,wgpu",
        "--iterations",
        "2",
        "--profile",
        "2",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("stage/model on tract (1 thread(s)):") && out.contains("stage/model on wgpu ("), "{out}");
    assert!(out.contains("slowest nodes:"), "{out}");
}

/// Bad flags and inputs are one clear line each, before anything is measured.
#[test]
fn bench_refuses_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (pkg, _) = write_generic_package(dir.path());
    let pkg = p(pkg);
    let bench =
        |extra: &[&str]| edgeqa(&[&["bench", "--package", pkg.as_str(), "--backend", "tract"][..], extra].concat());
    assert_clean_error(&bench(&["--iterations", "0"]), &["--iterations", "at least 1"]);
    assert_clean_error(&bench(&["--rate", "0"]), &["--rate", "positive"]);
    assert_clean_error(&bench(&["--threads", "0"]), &["--threads 0", "1 to 64"]);
    assert_clean_error(&bench(&["--min-time", "2", "--max-time", "1"]), &["--max-time", "--min-time"]);
    let bad = dir.path().join("bad.npy");
    edgeqa::tensor::Tensor::f32(vec![1, 3], vec![0.0; 3]).unwrap().write_npy(&bad).unwrap();
    assert_clean_error(&bench(&["--input", &format!("z={}", bad.display())]), &["`z`", "model:x"]);
    assert_clean_error(&bench(&["--input", &format!("x={}", bad.display())]), &["bad.npy", "[2, 3]", "[1, 3]"]);
    assert_clean_error(&bench(&["--input", "x"]), &["NAME=FILE.npy"]);
    assert_clean_error(&bench(&["--output", "/nonexistent/dir/out.json"]), &["--output", "/nonexistent/dir/out.json"]);
    let r = edgeqa(&["bench", "--package", &pkg, "--backend", "gpu"]);
    assert_clean_error(&r, &["unknown backend `gpu`"]);
}

/// `--threads` spreads tract's products over threads without changing a number: the same
/// answer and confidence as on one thread; a count of 0 is refused.
#[test]
fn ask_on_two_threads_gives_the_same_answer() {
    let q = &questions()[0];
    let ask = |threads: &str| {
        let (a, _) = ask_json(q, &["--backend", "tract", "--threads", threads]);
        (a["answer"].clone(), a["confidence"].clone())
    };
    assert_eq!(ask("2"), ask("1"));
    let r = edgeqa(&["ask", "--package", &package(), "--threads", "0", "--video", &clip(0, "y4m"), "what"]);
    assert_clean_error(&r, &["--threads", "1 to 64"]);
}

/// A reader that closes the pipe first (`edgeqa inspect P | head -1`) ends the process quietly:
/// no panic message, no "failed printing to stdout".
#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(EDGEQA)
        .args(["inspect", &package()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before the child has printed anything: its first write meets a broken pipe.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("failed printing"), "{stderr}");
}
