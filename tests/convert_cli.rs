//! End-to-end tests of the `edgeqa-convert` binary.

use std::ffi::OsStr;
use std::path::Path;

use edgeqa::onnx::Dim;
use edgeqa::onnx_builder::GraphBuilder;
use edgeqa_tests::probe_student::write_student_dir;
use edgeqa_tests::{assert_clean_error, run_bin};

const CONVERT: &str = env!("CARGO_BIN_EXE_edgeqa-convert");

fn convert(args: &[&OsStr]) -> (bool, String, String) {
    run_bin(CONVERT, args, &[])
}

fn student_args<'a>(dir: &'a Path, out: &'a Path) -> Vec<&'a OsStr> {
    vec![OsStr::new("--student"), dir.as_os_str(), OsStr::new("-o"), out.as_os_str()]
}

#[test]
fn student_conversion_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("student");
    write_student_dir(&dir).unwrap();
    let (a, b) = (tmp.path().join("a.eqa"), tmp.path().join("b.eqa"));
    let (ok, out, err) = convert(&student_args(&dir, &a));
    assert!(ok, "{err}");
    assert!(out.contains("frame_encoder, audio_encoder, question_encoder, head"), "{out}");
    assert!(convert(&student_args(&dir, &b)).0);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let pkg = edgeqa::package::Package::open(&a).unwrap();
    assert_eq!(pkg.manifest().producer, edgeqa_convert::PRODUCER);
}

#[test]
fn bad_student_directories_are_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.eqa");
    let fresh = |name: &str| {
        let dir = tmp.path().join(name);
        write_student_dir(&dir).unwrap();
        dir
    };

    let dir = fresh("nohead");
    std::fs::remove_file(dir.join("head.onnx")).unwrap();
    assert_clean_error(&convert(&student_args(&dir, &out)), &["head.onnx"]);

    let dir = fresh("notonnx");
    std::fs::write(dir.join("audio_encoder.onnx"), b"this is not a protobuf \xff\xff\xff").unwrap();
    assert_clean_error(&convert(&student_args(&dir, &out)), &["audio_encoder.onnx", "not an ONNX model"]);

    let dir = fresh("stray");
    std::fs::write(dir.join("decoder.onnx"), b"").unwrap();
    assert_clean_error(&convert(&student_args(&dir, &out)), &["decoder.onnx", "not a stage"]);

    let dir = fresh("typo");
    let toml = std::fs::read_to_string(dir.join("student.toml")).unwrap().replace("max_len", "max_length");
    std::fs::write(dir.join("student.toml"), toml).unwrap();
    assert_clean_error(&convert(&student_args(&dir, &out)), &["student.toml", "max_length", "line"]);

    let dir = fresh("labels");
    let toml = std::fs::read_to_string(dir.join("student.toml")).unwrap().replace("\"low\"]", "]");
    std::fs::write(dir.join("student.toml"), toml).unwrap();
    assert_clean_error(&convert(&student_args(&dir, &out)), &["labels", "14 labels for 15"]);
    assert!(!out.exists(), "nothing may be written on failure");
}

/// A `selector_keys.onnx` (each frame's key: its features through a ReLU, `[N,6]` for the test
/// student's `[N,6]` frame features) and a `selector.onnx` whose candidate count is `r`
/// (symbolic when `None`): it scores each candidate by the mean of its key and ignores the
/// question.
fn write_selector(dir: &Path, r: Option<usize>) {
    let mut g = GraphBuilder::new("selector_keys", 13);
    let f = g.input_f32("frame_features", &[Dim::Symbolic("N".into()), Dim::Fixed(6)]);
    let k = g.node("Relu", &[&f], vec![]);
    g.output(&k, "frame_keys");
    std::fs::write(dir.join("selector_keys.onnx"), g.build()).unwrap();

    let mut g = GraphBuilder::new("selector", 13);
    g.input_f32("question_features", &[Dim::Fixed(1), Dim::Fixed(8)]);
    let r = r.map_or(Dim::Symbolic("R".into()), Dim::Fixed);
    let c = g.input_f32("candidate_keys", &[Dim::Fixed(1), r, Dim::Fixed(6)]);
    let s = g.node(
        "ReduceMean",
        &[&c],
        vec![("axes", edgeqa::onnx_builder::Attr::Ints(vec![2])), ("keepdims", edgeqa::onnx_builder::Attr::Int(0))],
    );
    g.output(&s, "frame_scores");
    std::fs::write(dir.join("selector.onnx"), g.build()).unwrap();
}

#[test]
fn a_selector_without_a_fixed_candidate_count_or_its_other_stages_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.eqa");
    let dir = tmp.path().join("symbolic");
    write_student_dir(&dir).unwrap();
    write_selector(&dir, None);
    assert_clean_error(&convert(&student_args(&dir, &out)), &["selector.onnx", "candidate_keys", "must fix R"]);

    let dir = tmp.path().join("alone");
    write_student_dir(&dir).unwrap();
    write_selector(&dir, Some(32));
    std::fs::remove_file(dir.join("question_encoder.onnx")).unwrap();
    assert_clean_error(
        &convert(&student_args(&dir, &out)),
        &["selector.onnx needs selector_keys.onnx, frame_encoder.onnx and question_encoder.onnx"],
    );

    let dir = tmp.path().join("no-keys");
    write_student_dir(&dir).unwrap();
    write_selector(&dir, Some(32));
    std::fs::remove_file(dir.join("selector_keys.onnx")).unwrap();
    assert_clean_error(&convert(&student_args(&dir, &out)), &["selector.onnx needs selector_keys.onnx"]);

    let dir = tmp.path().join("no-frames");
    write_student_dir(&dir).unwrap();
    write_selector(&dir, Some(32));
    std::fs::remove_file(dir.join("selector.onnx")).unwrap();
    std::fs::remove_file(dir.join("frame_encoder.onnx")).unwrap();
    assert_clean_error(&convert(&student_args(&dir, &out)), &["selector_keys.onnx needs frame_encoder.onnx"]);
    assert!(!out.exists(), "nothing may be written on failure");
}

#[test]
fn unsupported_ops_are_all_listed_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("student");
    write_student_dir(&dir).unwrap();
    for (stage, op) in [("question_encoder", "Tokenize"), ("head", "Fuse")] {
        let mut g = GraphBuilder::new(stage, 13);
        let x = g.input_f32("x", &[Dim::Fixed(1), Dim::Fixed(2)]);
        let y = g.custom_node("com.example", op, &[&x]);
        let z = g.custom_node("com.example", "Second", &[&y]);
        g.output(&z, "y");
        std::fs::write(dir.join(format!("{stage}.onnx")), g.build()).unwrap();
    }
    let out = tmp.path().join("x.eqa");
    let r = convert(&student_args(&dir, &out));
    assert_clean_error(
        &r,
        &["question_encoder.onnx", "com.example:Tokenize", "head.onnx", "com.example:Fuse", "com.example:Second"],
    );
    assert!(!out.exists());
}

/// `dir/m.onnx`: a Relu whose input `x` is `[batch, 4]`, `batch` symbolic.
fn batch_relu(dir: &std::path::Path) -> std::path::PathBuf {
    let mut g = GraphBuilder::new("m", 13);
    let x = g.input_f32("x", &[Dim::Symbolic("batch".into()), Dim::Fixed(4)]);
    let y = g.node("Relu", &[&x], vec![]);
    g.output(&y, "y");
    let model = dir.join("m.onnx");
    std::fs::write(&model, g.build()).unwrap();
    model
}

#[test]
fn generic_models_need_fixed_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = batch_relu(tmp.path());
    let out = tmp.path().join("m.eqa");
    let args = |extra: &[&'static str]| {
        let mut v: Vec<&OsStr> = vec![OsStr::new("--model"), model.as_os_str(), OsStr::new("-o"), out.as_os_str()];
        v.extend(extra.iter().map(OsStr::new));
        convert(&v)
    };
    assert_clean_error(&args(&[]), &["m.onnx", "`batch`", "--input-shape x="]);
    assert_clean_error(&args(&["--input-shape", "x=2,5"]), &["m.onnx", "[batch,4]"]);
    assert_clean_error(&args(&["--input-shape", "x=2,zero"]), &["x=2,zero"]);
    assert_clean_error(&args(&["--input-shape", "q=1,4"]), &["`q`", "inputs: x"]);
    let (ok, _, err) = args(&["--input-shape", "x=2,4"]);
    assert!(ok, "{err}");
    let pkg = edgeqa::package::Package::open(&out).unwrap();
    assert_eq!(pkg.manifest().stages[0].outputs[0].shape, vec![2, 4]);
    // Options that do not go together: the binary names the flags to change.
    let shape: [&'static str; 2] = ["--input-shape", "x=2,4"];
    let with = |extra: &[&'static str]| args(&[&shape[..], extra].concat());
    assert_clean_error(&with(&["--scheme", "int8"]), &["scheme int8 needs samples", "pass --calibration"]);
    assert_clean_error(&with(&["--scheme", "w4"]), &["scheme w4 needs samples", "or --verify"]);
    assert_clean_error(&with(&["--calibration", "m.onnx"]), &["need a quantizing scheme", "pass --scheme"]);
}

/// The converter library's errors about its options name no command-line flag (the binary adds
/// them): a library caller has no flags.
#[test]
fn library_errors_name_no_flags() {
    use edgeqa_convert::quantized::OptionError;
    let tmp = tempfile::tempdir().unwrap();
    let model = batch_relu(tmp.path());
    let opts = edgeqa_convert::quantized::Options::default();
    let shape = edgeqa_convert::convert_model_with(&model, &Default::default(), &opts).unwrap_err().to_string();
    let scheme = edgeqa_convert::quantize::Scheme::W4;
    let messages = [
        shape,
        edgeqa_convert::parse_shape_args(&["x=zero".into()]).unwrap_err().to_string(),
        "x".parse::<edgeqa_convert::quantized::Budget>().unwrap_err(),
        OptionError::Top1WithoutClasses.to_string(),
        OptionError::NothingToCalibrate.to_string(),
        OptionError::NeedsSamples { scheme, verify_will_do: true }.to_string(),
    ];
    assert!(messages[0].contains("`batch`"), "{}", messages[0]);
    for m in &messages {
        assert!(!m.contains("--"), "a library error names a flag: {m}");
    }
}

/// A TFLite model from the registry (scripts/fetch-tflite.sh) is packaged as the stage `model`;
/// the quantizing flags are refused for it, naming the flag.
#[test]
fn a_tflite_model_is_packaged_as_exported() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let index = root.join(".cache/testdata/tflite/reference/index.json");
    let text = std::fs::read_to_string(&index)
        .unwrap_or_else(|e| panic!("{}: {e}: run `bash scripts/fetch-tflite.sh`", index.display()));
    let index: serde_json::Value = serde_json::from_str(&text).unwrap();
    let model = index["models"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m.get("error").is_none()))
        .expect("index.json lists no runnable model");
    let src = root.join(model["file"].as_str().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m.eqa");
    let (ok, stdout, err) = convert(&[OsStr::new("--model"), src.as_os_str(), OsStr::new("-o"), out.as_os_str()]);
    assert!(ok, "{err}");
    assert!(stdout.contains("(TFLite)"), "{stdout}");
    let pkg = edgeqa::package::Package::open(&out).unwrap();
    let stage = &pkg.manifest().stages[0];
    assert_eq!(stage.format, edgeqa::manifest::StageFormat::Tflite);
    assert_eq!(pkg.stage_graph("model").unwrap(), std::fs::read(&src).unwrap(), "the model is packaged as given");
    let names: Vec<&str> = stage.inputs.iter().map(|t| t.name.as_str()).collect();
    let want: Vec<&str> = model["inputs"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, want, "inputs in the model's order");
    for flag in [["--scheme", "int8"], ["--input-shape", "x=1"]] {
        let mut args = vec![OsStr::new("--model"), src.as_os_str(), OsStr::new("-o"), out.as_os_str()];
        args.extend(flag.map(OsStr::new));
        let (ok, _, err) = convert(&args);
        assert!(!ok && err.contains(&format!("{} does not apply to a TFLite model", flag[0])), "{err}");
    }
}
