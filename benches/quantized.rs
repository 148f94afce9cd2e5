//! tract latency of each quantization scheme (and both int8 graph forms) against fp32, side by
//! side in one run: PP-OCR mobile cls and PP-OCRv4 rec (fetched by
//! `bash scripts/fetch-test-data.sh`). Packages are converted at start-up with the calibration
//! sets the tests use; each runs one calibration image.
//!
//! `cargo bench -p edgeqa-benches --bench quantized`

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use edgeqa::backend::{Backend, tract::TractBackend};
use edgeqa::package::Package;
use edgeqa_convert::calibrate::Method;
use edgeqa_convert::data::load_npy_dir;
use edgeqa_convert::quantize::{Int8Form, Scheme};
use edgeqa_convert::quantized::Options;

/// Benchmark ids and what they convert with.
const VARIANTS: [(&str, Scheme, Int8Form); 5] = [
    ("fp32", Scheme::Fp32, Int8Form::Qdq),
    ("int8-qlinear", Scheme::Int8, Int8Form::QLinear),
    ("int8-qdq", Scheme::Int8, Int8Form::Qdq),
    ("w8", Scheme::W8, Int8Form::Qdq),
    ("w4", Scheme::W4, Int8Form::Qdq),
];

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/testdata")
}

fn bench_model(c: &mut Criterion, name: &str, file: &str, set: &str, shape: Vec<usize>) {
    let model = testdata().join("models").join(file);
    let calibration = testdata().join("ocr").join(set).join("calibration");
    for (path, present) in [(&model, model.is_file()), (&calibration, calibration.is_dir())] {
        assert!(present, "{name}: {} is missing: run `bash scripts/fetch-test-data.sh`", path.display());
    }
    let shapes = [("x".to_string(), shape)].into();
    let mut group = c.benchmark_group(format!("quantized/{name}"));
    for (id, scheme, int8_form) in VARIANTS {
        let opts = Options {
            scheme,
            int8_form,
            method: Method::Percentile(99.99),
            calibration: (scheme != Scheme::Fp32).then(|| calibration.clone()),
            ..Default::default()
        };
        let out = edgeqa_convert::convert_model_with(&model, &shapes, &opts).expect("convert");
        let pkg = Package::from_bytes(out.converted.bytes, name).expect("package");
        let stage = &pkg.manifest().stages[0];
        let session = TractBackend::new().load_stage(stage, pkg.stage_graph("model").unwrap(), name).expect("load");
        let sample = load_npy_dir(&calibration, stage).expect("samples").remove(0);
        group.bench_function(id, |b| b.iter(|| session.run(sample.inputs.clone()).expect("run")));
    }
    group.finish();
}

fn quantized(c: &mut Criterion) {
    bench_model(c, "ppocr_cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx", "cls", vec![1, 3, 48, 192]);
    bench_model(c, "ppocrv4_rec", "ch_PP-OCRv4_rec_infer.onnx", "rec", vec![1, 3, 48, 320]);
}

criterion_group!(benches, quantized);
criterion_main!(benches);
