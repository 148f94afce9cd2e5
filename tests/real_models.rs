//! End-to-end tests on real models: PP-OCR's mobile text-direction classifier and PP-OCRv4's text
//! recogniser, as shipped in the `rapidocr-onnxruntime` wheel (Apache-2.0). Each model is converted
//! with edgeqa-convert, run with `edgeqa run`, and its output compared with ONNX Runtime's on the
//! same input. `bash scripts/fetch-test-data.sh` (called by scripts/test.sh) fetches the models and
//! writes the references into `.cache/testdata/`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use edgeqa::tensor::Tensor;
use edgeqa_tests::run_bin;

const EDGEQA: &str = env!("CARGO_BIN_EXE_edgeqa");

/// Cosine similarity with ONNX Runtime's output must be at least this.
const MIN_COSINE: f64 = 0.9999;
/// Largest absolute difference from ONNX Runtime's output allowed.
const MAX_ABS_ERROR: f64 = 1e-3;

fn testdata() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/testdata");
    assert!(
        dir.is_dir(),
        "{} is missing: run `bash scripts/fetch-test-data.sh` (scripts/test.sh does) to fetch the real models",
        dir.display()
    );
    dir
}

fn need(path: PathBuf) -> PathBuf {
    assert!(
        path.is_file(),
        "{} is missing: run `bash scripts/fetch-test-data.sh` to fetch the models and write the references",
        path.display()
    );
    path
}

fn f32_data<'a>(t: &'a Tensor, what: &str) -> &'a [f32] {
    t.as_f32().unwrap_or_else(|| panic!("{what}: expected f32, got {:?}", t.dtype()))
}

/// Index of the largest value of each row (the last axis).
fn argmax_rows(data: &[f32], row: usize) -> Vec<usize> {
    data.chunks(row).map(|r| r.iter().enumerate().fold(0, |best, (i, &v)| if v > r[best] { i } else { best })).collect()
}

/// Converts `<model>.onnx`, runs it with `edgeqa run` on the reference input and compares the
/// first output with ONNX Runtime's: same shape, cosine, max abs error, argmax of every row.
fn check_model(model: &str, input_shape: &[usize]) {
    let data = testdata();
    let model_path = need(data.join(format!("models/{model}.onnx")));
    let input_npy = need(data.join(format!("reference/{model}/input.npy")));
    let reference = Tensor::read_npy(&need(data.join(format!("reference/{model}/output.npy")))).unwrap();
    assert_eq!(
        Tensor::read_npy(&input_npy).unwrap().shape,
        input_shape,
        "{}: unexpected shape; re-run scripts/fetch-test-data.sh",
        input_npy.display()
    );

    let proto = edgeqa::onnx::decode(&std::fs::read(&model_path).unwrap(), &model_path.display().to_string()).unwrap();
    let inputs = edgeqa::onnx::graph_inputs(&proto);
    assert_eq!(inputs.len(), 1, "{model}: expected one input, got {inputs:?}");
    let input_name = &inputs[0].name;
    let output_name = &edgeqa::onnx::graph_outputs(&proto)[0].name;

    let dims: Vec<String> = input_shape.iter().map(|d| d.to_string()).collect();
    let shapes = edgeqa_convert::parse_shape_args(&[format!("{input_name}={}", dims.join(","))]).unwrap();
    let converted = edgeqa_convert::convert_model(&model_path, &shapes).unwrap_or_else(|e| panic!("{model}: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join(format!("{model}.eqa"));
    converted.write(&package).unwrap();

    let out_dir = dir.path().join("out");
    let input_arg = format!("{input_name}={}", input_npy.display());
    let args: Vec<&OsStr> = [
        OsStr::new("run"),
        OsStr::new("--package"),
        package.as_os_str(),
        OsStr::new("--input"),
        OsStr::new(&input_arg),
        OsStr::new("--output-dir"),
        out_dir.as_os_str(),
        OsStr::new("--json"),
    ]
    .to_vec();
    let (ok, stdout, stderr) = run_bin(EDGEQA, &args, &[]);
    assert!(ok, "{model}: edgeqa run failed: {stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{model}: bad --json output ({e}): {stdout}"));
    let entry = summary
        .as_array()
        .and_then(|a| a.iter().find(|o| o["name"] == output_name.as_str()))
        .unwrap_or_else(|| panic!("{model}: output `{output_name}` missing from: {stdout}"));
    let file = entry["file"].as_str().unwrap_or_else(|| panic!("{model}: no file for `{output_name}`: {stdout}"));
    let ours = Tensor::read_npy(Path::new(file)).unwrap();

    assert_eq!(ours.shape, reference.shape, "{model}: output shape differs from ONNX Runtime's");
    let (a, b) = (f32_data(&ours, "edgeqa"), f32_data(&reference, "reference"));
    let (mut dot, mut na, mut nb, mut max_err) = (0f64, 0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        dot += x * y;
        na += x * x;
        nb += y * y;
        max_err = max_err.max((x - y).abs());
    }
    let cosine = dot / (na.sqrt() * nb.sqrt());
    let row = *reference.shape.last().unwrap();
    let (am_ours, am_ref) = (argmax_rows(a, row), argmax_rows(b, row));
    let same_argmax = am_ours.iter().zip(&am_ref).filter(|(x, y)| x == y).count();
    let measured = format!(
        "{model} {:?}: cosine {cosine:.8} (1 - cosine {:.1e}), max abs error {max_err:.3e}, argmax equal on {same_argmax}/{} rows",
        ours.shape,
        1.0 - cosine,
        am_ref.len()
    );
    eprintln!("{measured}");
    assert!(cosine >= MIN_COSINE, "{measured}: cosine below {MIN_COSINE}");
    assert!(max_err <= MAX_ABS_ERROR, "{measured}: max abs error above {MAX_ABS_ERROR}");
    assert_eq!(am_ours, am_ref, "{measured}: argmax differs");
}

/// Text-direction classifier: [1,3,48,192] -> [1,2] (0° / 180° probabilities).
#[test]
fn ppocr_mobile_cls_matches_onnxruntime() {
    check_model("ch_ppocr_mobile_v2.0_cls_infer", &[1, 3, 48, 192]);
}

/// PP-OCRv4 recogniser: [1,3,48,320] -> [1,40,6625] (per time step, character probabilities).
#[test]
fn ppocrv4_rec_matches_onnxruntime() {
    check_model("ch_PP-OCRv4_rec_infer", &[1, 3, 48, 320]);
}
