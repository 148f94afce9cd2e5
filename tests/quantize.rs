//! The quantizing converter on real models: the demo student (int8, w4) calibrated on a fresh
//! SynthAVQA set and verified on its committed eval set, and PP-OCRv4 det/rec and PP-OCR mobile
//! cls calibrated and verified on rendered text images (`scripts/make_ocr_data.py`, run by
//! `bash scripts/fetch-test-data.sh`). Each test checks the fidelity bar and the size.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use edgeqa::backend::{Backend, tract::TractBackend};
use edgeqa::package::Package;
use edgeqa::tensor::Tensor;
use edgeqa_convert::calibrate::Method;
use edgeqa_convert::data::load_npy_dir;
use edgeqa_convert::quantize::Scheme;
use edgeqa_convert::quantized::{Budget, Options, Outcome};
use edgeqa_convert::{convert_model_with, convert_student_with};
use edgeqa_tests::{assert_clean_error, repo_root, run_bin, synth_set};

const CONVERT: &str = env!("CARGO_BIN_EXE_edgeqa-convert");
/// SynthAVQA seed of the demo student's calibration set (training used 1-3, the eval set 2026).
const CALIBRATION_SEED: u64 = 11;
const CALIBRATION_CLIPS: usize = 12;
/// Sequence length of the MiniLM-L6 samples.
const MINILM_SEQ: usize = 16;

fn testdata() -> PathBuf {
    let dir = repo_root().join(".cache/testdata");
    assert!(dir.is_dir(), "{} is missing: run `bash scripts/fetch-test-data.sh`", dir.display());
    dir
}

fn ocr(model: &str) -> (PathBuf, PathBuf, PathBuf) {
    let d = testdata();
    let file = match model {
        "det" => "ch_PP-OCRv4_det_infer.onnx",
        "rec" => "ch_PP-OCRv4_rec_infer.onnx",
        _ => "ch_ppocr_mobile_v2.0_cls_infer.onnx",
    };
    let set = d.join("ocr").join(model);
    let paths = (d.join("models").join(file), set.join("calibration"), set.join("verify"));
    for p in [&paths.0, &paths.1, &paths.2] {
        assert!(p.exists(), "{} is missing: run `bash scripts/fetch-test-data.sh`", p.display());
    }
    paths
}

fn shape(model: &str) -> Vec<usize> {
    match model {
        "det" => vec![1, 3, 320, 320],
        "rec" => vec![1, 3, 48, 320],
        _ => vec![1, 3, 48, 192],
    }
}

fn convert_ocr(model: &str, scheme: Scheme, method: Method) -> Outcome {
    let (onnx, calibration, verify) = ocr(model);
    let shapes = [("x".to_string(), shape(model))].into();
    let opts = Options { scheme, method, calibration: Some(calibration), verify: Some(verify), ..Default::default() };
    convert_model_with(&onnx, &shapes, &opts).unwrap_or_else(|e| panic!("{model}: {e}"))
}

/// Runs the single stage of a model package on every verification sample.
fn outputs(bytes: &[u8], verify: &Path) -> Vec<Tensor> {
    let pkg = Package::from_bytes(bytes.to_vec(), "package").unwrap();
    let stage = &pkg.manifest().stages[0];
    let session = TractBackend::new().load_stage(stage, pkg.stage_graph(&stage.name).unwrap(), "package").unwrap();
    load_npy_dir(verify, stage).unwrap().into_iter().map(|s| session.run(s.inputs).unwrap().remove(0)).collect()
}

/// CTC greedy decoding: class ids of the best path, blanks (0) and repeats removed.
fn ctc_decode(t: &Tensor) -> Vec<usize> {
    let classes = *t.shape.last().unwrap();
    let mut out = Vec::new();
    let mut prev = 0;
    for row in t.as_f32().unwrap().chunks(classes) {
        let best = row.iter().enumerate().fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
        if best != 0 && best != prev {
            out.push(best);
        }
        prev = best;
    }
    out
}

fn refs(v: &[std::ffi::OsString]) -> Vec<&OsStr> {
    v.iter().map(|s| s.as_os_str()).collect()
}

fn print_report(what: &str, o: &Outcome) {
    let r = o.report.as_ref().unwrap();
    eprintln!("{what}:\n{}", r.table());
}

#[test]
fn ocr_rec_int8_decodes_the_same_text() {
    // PP-OCRv4 rec amplifies rounding error through its depthwise stages: all-int8 flips ~2% of
    // the frames, so the error budget keeps the most sensitive convolutions in float.
    let (onnx, calibration, verify) = ocr("rec");
    let shapes = [("x".to_string(), shape("rec"))].into();
    let opts = Options {
        scheme: Scheme::Int8,
        calibration: Some(calibration),
        verify: Some(verify.clone()),
        max_error: Some(Budget::Top1(0.995)),
        ..Default::default()
    };
    let o = convert_model_with(&onnx, &shapes, &opts).unwrap();
    print_report("PP-OCRv4 rec int8, top1=0.995", &o);
    let fp32 = outputs(&o.reference.bytes, &verify);
    let int8 = outputs(&o.converted.bytes, &verify);
    // The same text: CTC ids equal once a space read in a line's blank margin is trimmed (the
    // last class is PP-OCR's space; a leading or trailing one is margin, not text).
    let trimmed = |t: &Tensor| {
        let space = t.shape.last().unwrap() - 1;
        let ids = ctc_decode(t);
        let start = ids.iter().position(|&c| c != space).unwrap_or(ids.len());
        let end = ids.iter().rposition(|&c| c != space).map_or(start, |e| e + 1);
        ids[start..end].to_vec()
    };
    let differ: Vec<usize> = (0..fp32.len()).filter(|&i| trimmed(&fp32[i]) != trimmed(&int8[i])).collect();
    let untrimmed = (0..fp32.len()).filter(|&i| ctc_decode(&fp32[i]) == ctc_decode(&int8[i])).count();
    eprintln!(
        "same text on {}/{} lines ({untrimmed} also with the same margin spaces)",
        fp32.len() - differ.len(),
        fp32.len()
    );
    assert!(differ.is_empty(), "int8 decodes differently on verification lines {differ:?}");
    // ONNX Runtime's int8 that decodes every line (quantize_dynamic) is 0.72x: stay well below.
    let r = o.report.as_ref().unwrap();
    assert!(r.package_bytes.ratio <= 0.60, "int8 package is {:.3}x fp32", r.package_bytes.ratio);
    assert!(r.mixed_precision.as_ref().is_some_and(|m| m.met), "{:?}", r.mixed_precision);
}

#[test]
fn ocr_det_int8_probability_map_matches() {
    let o = convert_ocr("det", Scheme::Int8, Method::Percentile(99.99));
    print_report("PP-OCRv4 det int8", &o);
    let (_, _, verify) = ocr("det");
    let fp32 = outputs(&o.reference.bytes, &verify);
    let int8 = outputs(&o.converted.bytes, &verify);
    for (i, (a, b)) in fp32.iter().zip(&int8).enumerate() {
        let (a, b) = (a.as_f32().unwrap(), b.as_f32().unwrap());
        let inter = a.iter().zip(b).filter(|(x, y)| **x > 0.3 && **y > 0.3).count();
        let union = a.iter().zip(b).filter(|(x, y)| **x > 0.3 || **y > 0.3).count();
        let iou = if union == 0 { 1.0 } else { inter as f64 / union as f64 };
        assert!(iou >= 0.95, "verification image {i}: IoU of the >0.3 masks is {iou:.4}");
    }
}

#[test]
fn ocr_cls_int8_agrees_on_every_image() {
    let o = convert_ocr("cls", Scheme::Int8, Method::MinMax);
    print_report("PP-OCR cls int8", &o);
    let out = &o.report.as_ref().unwrap().stages[0].outputs[0];
    assert_eq!(out.top1_agreement, Some(1.0), "{out:?}");
}

fn demo_calibration(dir: &Path) -> PathBuf {
    synth_set(CALIBRATION_SEED, CALIBRATION_CLIPS, dir);
    dir.join("questions.jsonl")
}

fn convert_demo(scheme: Scheme, calibration: &Path, max_error: Option<Budget>) -> Outcome {
    let opts = Options {
        scheme,
        calibration: Some(calibration.to_path_buf()),
        verify: Some(repo_root().join("models/demo/eval/questions.jsonl")),
        max_error,
        ..Default::default()
    };
    // The student without its [voice] table: the grammar and pronunciations (about 4 KiB of
    // manifest, the same in every scheme) are not what quantization shrinks.
    let dir = tempfile::tempdir().unwrap();
    let student = edgeqa_tests::demo_student_copy(dir.path(), edgeqa_tests::without_voice);
    convert_student_with(&student, &opts).unwrap()
}

#[test]
fn demo_student_int8_agrees_with_fp32_at_under_a_third_of_the_size() {
    let tmp = tempfile::tempdir().unwrap();
    let calibration = demo_calibration(tmp.path());
    let o = convert_demo(Scheme::Int8, &calibration, None);
    print_report("demo student int8", &o);
    let r = o.report.unwrap();
    let a = r.answers.as_ref().unwrap();
    assert!(a.agreement >= 0.995, "top-1 agreement {:.4}", a.agreement);
    assert!((a.reference_accuracy - a.candidate_accuracy).abs() <= 0.005, "{a:?}");
    // The manifest's translate-once records (`packed`) add a few hundred bytes of pretty-printed
    // JSON per weight: 6.6 KB (0.007 of this 0.96 MB student) to the int8 package, 0.30 before.
    assert!(r.package_bytes.ratio <= 0.31, "package ratio {:.3}", r.package_bytes.ratio);
    assert_eq!(Package::from_bytes(o.converted.bytes, "int8").unwrap().manifest().quantization.scheme, "int8");

    // w4: a fifth of the size or less, agreement reported (asserted loosely: it is what it is).
    let o = convert_demo(Scheme::W4, &calibration, None);
    print_report("demo student w4", &o);
    let r = o.report.unwrap();
    // 0.18 before the records (see above).
    assert!(r.package_bytes.ratio <= 0.19, "w4 package ratio {:.3}", r.package_bytes.ratio);
    let a = r.answers.unwrap();
    assert!(a.agreement > 0.8, "w4 agreement {:.4}", a.agreement);
}

#[test]
fn error_budget_keeps_sensitive_layers_in_float_until_it_holds() {
    let (onnx, calibration, verify) = ocr("cls");
    let shapes = [("x".to_string(), shape("cls"))].into();
    // A budget w4 cannot meet everywhere: the search must keep some layers in float and meet it.
    let opts = Options {
        scheme: Scheme::W4,
        block: 32,
        calibration: Some(calibration),
        verify: Some(verify),
        max_error: Some(Budget::Cosine(0.9999)),
        ..Default::default()
    };
    let o = convert_model_with(&onnx, &shapes, &opts).unwrap();
    let r = o.report.unwrap();
    let m = r.mixed_precision.as_ref().unwrap();
    eprintln!("{}", r.table());
    assert!(m.all_quantized < 0.9999, "the budget was already met: {m:?}");
    assert!(m.met && m.achieved >= 0.9999 && !m.kept_float.is_empty(), "{m:?}");
    let kept = &r.stages[0].quantization.as_ref().unwrap().kept_float;
    for k in &m.kept_float {
        let node = k.trim_start_matches("model/");
        assert!(kept.iter().any(|x| x.node == node && x.reason.contains("error budget")), "{k} not reported: {kept:?}");
    }
}

#[test]
fn cli_writes_report_and_rejects_bad_calibration_data() {
    let (onnx, calibration, verify) = ocr("cls");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cls.eqa");
    let report = tmp.path().join("report.json");
    let args = |calib: &Path| -> Vec<std::ffi::OsString> {
        [
            OsStr::new("--model"),
            onnx.as_os_str(),
            OsStr::new("--input-shape"),
            OsStr::new("x=1,3,48,192"),
            OsStr::new("--scheme"),
            OsStr::new("int8"),
            OsStr::new("--method"),
            OsStr::new("entropy"),
            OsStr::new("--calibration"),
            calib.as_os_str(),
            OsStr::new("--verify"),
            verify.as_os_str(),
            OsStr::new("--report"),
            report.as_os_str(),
            OsStr::new("-o"),
            out.as_os_str(),
        ]
        .iter()
        .map(|s| s.to_os_string())
        .collect()
    };
    let (ok, stdout, stderr) = run_bin(CONVERT, &refs(&args(&calibration)), &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("cos min") && stdout.contains("scheme int8, calibration entropy"), "{stdout}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(v["scheme"], "int8");
    assert!(v["stages"][0]["outputs"][0]["cosine_min"].as_f64().unwrap() > 0.99, "{v}");

    // A sample with the wrong shape is named.
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(bad.join("s0")).unwrap();
    Tensor::f32(vec![1, 3, 48, 100], vec![0.0; 3 * 48 * 100]).unwrap().write_npy(&bad.join("s0/x.npy")).unwrap();
    assert_clean_error(&run_bin(CONVERT, &refs(&args(&bad)), &[]), &["s0/x.npy", "[1, 3, 48, 192]"]);
    // NaN is refused.
    Tensor::f32(vec![1, 3, 48, 192], vec![f32::NAN; 3 * 48 * 192]).unwrap().write_npy(&bad.join("s0/x.npy")).unwrap();
    assert_clean_error(&run_bin(CONVERT, &refs(&args(&bad)), &[]), &["NaN", "`x`"]);
    // An empty set is refused.
    std::fs::remove_dir_all(bad.join("s0")).unwrap();
    assert_clean_error(&run_bin(CONVERT, &refs(&args(&bad)), &[]), &["no samples"]);
    assert!(!out.with_extension("eqa.partial").exists());
}

/// Writes `n` tokenized "sentences" for MiniLM-L6 (`[CLS] ids… [SEP]` then padding, seeded):
/// `DIR/<id>/{input_ids,attention_mask,token_type_ids}.npy`, each int64 `[1, MINILM_SEQ]`.
fn minilm_samples(dir: &Path, n: usize, seed: u64) {
    let mut random = edgeqa::synthetic::Synthetic::new(seed);
    let mut next = move || random.next_u64();
    for i in 0..n {
        let len = 4 + (next() % (MINILM_SEQ as u64 - 4)) as usize;
        let mut ids = vec![0i64; MINILM_SEQ];
        let mut mask = vec![0i64; MINILM_SEQ];
        for (t, (id, m)) in ids.iter_mut().zip(&mut mask).enumerate().take(len) {
            // 101 [CLS], 102 [SEP]; word pieces from the common part of the 30,522-entry vocabulary.
            *id = match t {
                0 => 101,
                t if t == len - 1 => 102,
                _ => 1996 + (next() % 8000) as i64,
            };
            *m = 1;
        }
        let d = dir.join(format!("{i:03}"));
        std::fs::create_dir_all(&d).unwrap();
        let shape = vec![1, MINILM_SEQ];
        Tensor::i64(shape.clone(), ids).unwrap().write_npy(&d.join("input_ids.npy")).unwrap();
        Tensor::i64(shape.clone(), mask).unwrap().write_npy(&d.join("attention_mask.npy")).unwrap();
        Tensor::i64(shape.clone(), vec![0; MINILM_SEQ]).unwrap().write_npy(&d.join("token_type_ids.npy")).unwrap();
    }
}

#[test]
fn minilm_with_int8_weights_is_accepted_and_stays_runnable() {
    let onnx = testdata().join("models/minilm-l6-int8.onnx");
    assert!(onnx.is_file(), "{} is missing: run `bash scripts/fetch-test-data.sh`", onnx.display());
    let tmp = tempfile::tempdir().unwrap();
    let (calibration, verify) = (tmp.path().join("calibration"), tmp.path().join("verify"));
    minilm_samples(&calibration, 8, 1);
    minilm_samples(&verify, 8, 2);
    let shapes = ["input_ids", "attention_mask", "token_type_ids"]
        .iter()
        .map(|n| (n.to_string(), vec![1, MINILM_SEQ]))
        .collect();
    let opts = Options {
        scheme: Scheme::Int8,
        calibration: Some(calibration),
        verify: Some(verify.clone()),
        ..Default::default()
    };
    let o = convert_model_with(&onnx, &shapes, &opts).unwrap();
    print_report("MiniLM-L6 (int8 weights) int8", &o);
    let r = o.report.as_ref().unwrap();
    // Its weights stay the int8 the model ships with: the package is no larger than the model.
    let original = std::fs::metadata(&onnx).unwrap().len();
    assert!(r.package_bytes.candidate <= original + 64 * 1024, "{} > {original}", r.package_bytes.candidate);
    for out in &r.stages[0].outputs {
        assert!(out.cosine_min >= 0.999, "{out:?}");
    }
    // And it runs: finite sentence embeddings from the package, on every verification sample.
    for t in outputs(&o.converted.bytes, &verify) {
        assert_eq!(t.shape[..2], [1, MINILM_SEQ], "{:?}", t.shape);
        assert!(t.as_f32().unwrap().iter().all(|v| v.is_finite()));
    }
}
