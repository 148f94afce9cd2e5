//! ONNX's own node tests (`onnx/backend/test/data/node/*` from the onnx 1.22.0 wheel, fetched by
//! `bash scripts/fetch-test-data.sh` into `.cache/testdata/onnx-node/`) on the wgpu backend.
//!
//! `tests/onnx-conformance/claimed.txt` lists the tests the backend claims: every claimed one must
//! pass. `tests/onnx-conformance/skipped.txt` lists, with the reason, node tests of claimed ops
//! that are not claimed. `cargo test -p edgeqa --test onnx_conformance -- --ignored --nocapture`
//! runs every node test of a claimed op and prints which pass, to grow the claimed list.

use std::path::{Path, PathBuf};

use edgeqa::backend::wgpu::WgpuBackend;
use edgeqa::backend::{Backend, StageSession};
use edgeqa::manifest::{StageInfo, TensorInfo};
use edgeqa::onnx::{self, pb};
use edgeqa::tensor::{Tensor, TensorData};
use prost::Message;

/// Relative and absolute tolerance for float outputs: |got − want| ≤ ATOL + RTOL·|want|.
/// (ONNX's runner uses rtol 1e-3 and atol 1e-7; GPU `exp`/`tanh` and our `erf` differ from
/// NumPy's by a few 1e-7 around zero.)
const RTOL: f32 = 1e-3;
const ATOL: f32 = 1e-5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn node_tests() -> PathBuf {
    let dir = root().join(".cache/testdata/onnx-node");
    assert!(dir.is_dir(), "{} is missing: run `bash scripts/fetch-test-data.sh`", dir.display());
    dir
}

/// Test names in a list file (one per line; `#` starts a comment).
fn list(file: &str) -> Vec<String> {
    let path = root().join("tests/onnx-conformance").join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn read_tensor(path: &Path) -> Result<(String, Tensor), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let proto = pb::TensorProto::decode(bytes.as_slice()).map_err(|e| format!("{}: {e}", path.display()))?;
    let provider = tract_onnx::data_resolver::default();
    let t = tract_onnx::tensor::load_tensor(&*provider, &proto, None).map_err(|e| format!("{e:#}"))?;
    use tract_onnx::prelude::DatumType as D;
    let shape = t.shape().to_vec();
    let data = match t.datum_type() {
        D::F32 => TensorData::F32(t.to_plain_array_view::<f32>().map_err(|e| e.to_string())?.iter().copied().collect()),
        D::I64 => TensorData::I64(t.to_plain_array_view::<i64>().map_err(|e| e.to_string())?.iter().copied().collect()),
        D::I32 => TensorData::I32(t.to_plain_array_view::<i32>().map_err(|e| e.to_string())?.iter().copied().collect()),
        D::U8 => TensorData::U8(t.to_plain_array_view::<u8>().map_err(|e| e.to_string())?.iter().copied().collect()),
        D::I8 => TensorData::I8(t.to_plain_array_view::<i8>().map_err(|e| e.to_string())?.iter().copied().collect()),
        D::Bool => {
            TensorData::Bool(t.to_plain_array_view::<bool>().map_err(|e| e.to_string())?.iter().copied().collect())
        }
        other => return Err(format!("element type {other:?} is not carried by edgeqa")),
    };
    Ok((proto.name, Tensor::new(shape, data).map_err(|e| e.to_string())?))
}

/// Runs one node test on `gpu`: `Ok` when every output matches.
///
/// edgeqa fixes every shape at load, so an op's shape-determining parameters (Reshape's shape,
/// Slice's starts, Resize's scales, Clip's bounds, …) must be constants. Many node tests feed
/// them as graph inputs: when the load says a parameter "must be a constant", the test runs
/// again with every input after the first frozen into an initializer holding the test's data.
fn run_test(gpu: &WgpuBackend, name: &str) -> Result<(), String> {
    match run_test_with(gpu, name, false) {
        Err(e) if e.contains("must be a constant") => run_test_with(gpu, name, true),
        other => other,
    }
}

fn run_test_with(gpu: &WgpuBackend, name: &str, freeze: bool) -> Result<(), String> {
    let dir = node_tests().join(name);
    let bytes = std::fs::read(dir.join("model.onnx")).map_err(|e| e.to_string())?;
    let mut model = onnx::decode(&bytes, name).map_err(|e| e.to_string())?;
    let data = dir.join("test_data_set_0");
    let read_all = |prefix: &str| -> Result<Vec<Tensor>, String> {
        let mut out = Vec::new();
        for i in 0.. {
            let p = data.join(format!("{prefix}_{i}.pb"));
            if !p.is_file() {
                break;
            }
            out.push(read_tensor(&p)?.1);
        }
        Ok(out)
    };
    let mut inputs = read_all("input")?;
    let outputs = read_all("output")?;
    if freeze {
        let g = model.graph.as_mut().ok_or("no graph")?;
        let inits: std::collections::HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
        let names: Vec<String> = g.input.iter().map(|v| v.name.clone()).filter(|n| !inits.contains(n)).collect();
        for (i, input) in names.iter().enumerate().skip(1) {
            let mut t = pb::TensorProto::decode(
                std::fs::read(data.join(format!("input_{i}.pb"))).map_err(|e| e.to_string())?.as_slice(),
            )
            .map_err(|e| e.to_string())?;
            t.name = input.clone();
            g.initializer.push(t);
        }
        g.input.retain(|v| !names[1..].contains(&v.name));
        inputs.truncate(1);
    }
    let bytes = model.encode_to_vec();
    let g = model.graph.as_ref().ok_or("no graph")?;
    let inits: std::collections::HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let input_names: Vec<&str> = g.input.iter().map(|v| v.name.as_str()).filter(|n| !inits.contains(n)).collect();
    if input_names.len() != inputs.len() || g.output.len() != outputs.len() {
        return Err("inputs or outputs do not match the data files".into());
    }
    let info = |name: &str, t: &Tensor| TensorInfo { name: name.to_string(), dtype: t.dtype(), shape: t.shape.clone() };
    let stage = StageInfo {
        name: "model".into(),
        section: "graph/model".into(),
        inputs: input_names.iter().zip(&inputs).map(|(n, t)| info(n, t)).collect(),
        outputs: g.output.iter().zip(&outputs).map(|(o, t)| info(&o.name, t)).collect(),
    };
    let session: Box<dyn StageSession> = gpu.load_stage(&stage, &bytes, name).map_err(|e| e.to_string())?;
    let got = session.run(inputs).map_err(|e| e.to_string())?;
    for ((g, w), o) in got.iter().zip(&outputs).zip(&stage.outputs) {
        if g.shape != w.shape {
            return Err(format!("output `{}`: shape {:?}, expected {:?}", o.name, g.shape, w.shape));
        }
        match (g.as_f32(), w.as_f32()) {
            (Some(a), Some(b)) => {
                for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
                    let ok = (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= ATOL + RTOL * y.abs();
                    if !ok {
                        return Err(format!("output `{}`[{i}]: {x}, expected {y}", o.name));
                    }
                }
            }
            _ if g != w => return Err(format!("output `{}` differs: {:?} vs {:?}", o.name, g.data, w.data)),
            _ => {}
        }
    }
    Ok(())
}

fn gpu() -> WgpuBackend {
    let gpu = WgpuBackend::new().unwrap_or_else(|e| panic!("{e}"));
    let adapter = gpu.adapter();
    if std::env::var_os("EDGEQA_REQUIRE_GPU").is_some_and(|v| v == "1") {
        assert_ne!(adapter.device_type, "Cpu", "EDGEQA_REQUIRE_GPU=1 but the adapter is software: {adapter:?}");
    }
    println!("adapter: {adapter:?}");
    gpu
}

#[test]
fn claimed_node_tests_pass() {
    let gpu = gpu();
    let claimed = list("claimed.txt");
    let skipped = list("skipped.txt");
    let mut failed = Vec::new();
    for name in &claimed {
        assert!(!skipped.contains(name), "{name} is both claimed and skipped");
        if let Err(e) = run_test(&gpu, name) {
            failed.push(format!("{name}: {e}"));
        }
    }
    println!("ONNX node tests on wgpu: {} passed, {} failed", claimed.len() - failed.len(), failed.len());
    assert!(failed.is_empty(), "failed:\n{}", failed.join("\n"));
}

/// Every op the backend claims appears in a claimed node test, or in a skipped one saying why.
#[test]
fn every_claimed_op_is_tested() {
    let mut covered = std::collections::HashSet::new();
    for name in list("claimed.txt").iter().chain(&list("skipped.txt")) {
        let bytes = std::fs::read(node_tests().join(name).join("model.onnx")).unwrap();
        let model = onnx::decode(&bytes, name).unwrap();
        covered.extend(model.graph.iter().flat_map(|g| g.node.iter().map(|n| n.op_type.clone())));
    }
    let untested: Vec<&str> =
        edgeqa::backend::wgpu::kernels::claimed_ops().into_iter().filter(|op| !covered.contains(*op)).collect();
    assert!(untested.is_empty(), "claimed ops without node tests: {untested:?}");
}

/// Runs every node test whose graph uses only claimed ops and prints which pass.
#[test]
#[ignore = "discovery run for growing tests/onnx-conformance/claimed.txt"]
fn discover() {
    let gpu = gpu();
    let ops = edgeqa::backend::wgpu::kernels::claimed_ops();
    let mut names: Vec<String> = std::fs::read_dir(node_tests())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("test_"))
        .collect();
    names.sort();
    let (mut pass, mut fail) = (0, 0);
    for name in names {
        let Ok(bytes) = std::fs::read(node_tests().join(&name).join("model.onnx")) else { continue };
        let Ok(model) = onnx::decode(&bytes, &name) else { continue };
        let uses: Vec<String> = model.graph.iter().flat_map(|g| g.node.iter().map(|n| n.op_type.clone())).collect();
        if uses.is_empty() || !uses.iter().all(|o| ops.contains(&o.as_str())) {
            continue;
        }
        match run_test(&gpu, &name) {
            Ok(()) => {
                pass += 1;
                println!("PASS {name}");
            }
            Err(e) => {
                fail += 1;
                println!("FAIL {name}: {}", e.lines().next().unwrap_or(""));
            }
        }
    }
    println!("{pass} passed, {fail} failed");
}
