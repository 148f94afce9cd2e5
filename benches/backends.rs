//! Per-model latency of one stage run on each backend, side by side in one run: the demo
//! student's stages and the real models fetched by `bash scripts/fetch-test-data.sh`
//! (PP-OCR cls, PP-OCRv4 rec and det, MiniLM-L6 int8, Silero VAD's static 16 kHz export), all
//! packaged as they come.
//!
//! `cargo bench -p edgeqa-benches --bench backends` (wgpu uses the adapter wgpu finds: a real GPU,
//! or lavapipe on the CPU, which is correct but much slower than tract).

use std::collections::BTreeMap;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use edgeqa::backend::Backend;
use edgeqa::backend::tract::TractBackend;
use edgeqa::backend::wgpu::WgpuBackend;
use edgeqa::package::Package;
use edgeqa_benches::demo_dir;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/testdata")
}

fn bench_package(c: &mut Criterion, name: &str, pkg: &Package, backends: &[(&str, &dyn Backend)]) {
    for stage in &pkg.manifest().stages {
        let graph = pkg.stage_graph(&stage.name).expect("graph");
        let x = edgeqa::synthetic::inputs(&stage.inputs, 1);
        let id = if pkg.manifest().stages.len() > 1 { format!("{name}/{}", stage.name) } else { name.to_string() };
        let mut group = c.benchmark_group(format!("backend/{id}"));
        for (bname, backend) in backends {
            match backend.load_stage(stage, graph, &id) {
                Ok(session) => {
                    group.bench_function(*bname, |b| b.iter(|| session.run(x.clone()).expect("run")));
                }
                Err(e) => eprintln!("backend/{id}/{bname}: skipped: {e}"),
            }
        }
        group.finish();
    }
}

fn model_package(file: &str, shapes: &[(&str, Vec<usize>)]) -> Package {
    let path = testdata().join("models").join(file);
    assert!(path.is_file(), "{} is missing: run `bash scripts/fetch-test-data.sh`", path.display());
    let shapes: BTreeMap<String, Vec<usize>> = shapes.iter().map(|(n, s)| (n.to_string(), s.clone())).collect();
    let converted = edgeqa_convert::convert_model(&path, &shapes).expect("convert");
    Package::from_bytes(converted.bytes, file).expect("package")
}

fn backends(c: &mut Criterion) {
    let tract = TractBackend::new();
    let gpu = WgpuBackend::new();
    let mut list: Vec<(&str, &dyn Backend)> = vec![("tract", &tract)];
    match &gpu {
        Ok(g) => {
            eprintln!("wgpu adapter: {:?}", g.adapter());
            list.push(("wgpu", g));
        }
        Err(e) => eprintln!("wgpu: skipped: {e}"),
    }
    let demo = Package::open(&demo_dir().join("demo.eqa")).expect("demo package");
    bench_package(c, "demo", &demo, &list);
    let models = [
        ("ppocr_cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx", vec![("x", vec![1, 3, 48, 192])]),
        ("ppocrv4_rec", "ch_PP-OCRv4_rec_infer.onnx", vec![("x", vec![1, 3, 48, 320])]),
        ("ppocrv4_det", "ch_PP-OCRv4_det_infer.onnx", vec![("x", vec![1, 3, 320, 320])]),
        (
            "minilm_int8",
            "minilm-l6-int8.onnx",
            vec![("input_ids", vec![1, 16]), ("attention_mask", vec![1, 16]), ("token_type_ids", vec![1, 16])],
        ),
        ("silero_vad", "silero_vad_openvino_16k.onnx", vec![]),
    ];
    for (name, file, shapes) in models {
        bench_package(c, name, &model_package(file, &shapes), &list);
    }
}

criterion_group!(benches, backends);
criterion_main!(benches);
