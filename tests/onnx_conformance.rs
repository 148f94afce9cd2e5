//! ONNX's own node tests (`onnx/backend/test/data/node/*` from the onnx 1.22.0 wheel, fetched by
//! `bash scripts/fetch-test-data.sh` into `.cache/testdata/onnx-node/`), run on every backend
//! through `&dyn Backend` by one suite, [`conformance`].
//!
//! Each backend has its lists in `tests/onnx-conformance/<backend>/`: `claimed.txt` names the
//! node tests it claims (every one must pass) and `skipped.txt` the node tests of its ops it does
//! not claim, each with why (a refusal at load, an element type edgeqa tensors do not carry, or —
//! tract only — `wrong result:` where tract computes a wrong number). Rules:
//! - every claimed test passes, and no test is both claimed and skipped;
//! - every op the backend claims has at least one claimed (passing) test — skipped tests do not
//!   count. wgpu claims `kernels::claimed_ops()`; tract claims `backend::tract::claimed_ops()`,
//!   which must be exactly the ops of its claimed tests.
//!
//! A claimed entry may carry `outputs=N`: only the first N outputs are checked, and the node's
//! trailing optional outputs nothing reads are dropped (ONNX lets them be omitted; the form
//! exporters write, e.g. LayerNormalization with `Y` only).
//!
//! Discovery, to grow the lists: `cargo test -p edgeqa --test onnx_conformance -- --ignored
//! --nocapture discover_tract` (or `discover_wgpu`) runs every node test the backend could load
//! and prints `PASS name` / `FAIL name: why` lines.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use edgeqa::backend::tract::TractBackend;
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

/// Ops the wgpu loader evaluates at load when their inputs are constants (shapes are fixed):
/// node tests using them are worth a discovery run on wgpu although no kernel claims them.
const FOLDED_AT_LOAD: &[&str] = &["Constant", "Shape", "Size", "ConstantOfShape", "Range"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn node_tests() -> PathBuf {
    let dir = root().join(".cache/testdata/onnx-node");
    assert!(dir.is_dir(), "{} is missing: run `bash scripts/fetch-test-data.sh`", dir.display());
    dir
}

/// One line of a list: a node test and, optionally, how many of its outputs are checked.
struct Entry {
    name: String,
    outputs: Option<usize>,
}

/// Entries of `tests/onnx-conformance/<dir>/<file>` (one per line; `#` starts a comment).
fn list(dir: &str, file: &str) -> Vec<Entry> {
    let path = root().join("tests/onnx-conformance").join(dir).join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next().unwrap_or_default().to_string();
            let outputs = words.next().map(|w| {
                w.strip_prefix("outputs=")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{}: `{l}`: expected `outputs=N` after the name", path.display()))
            });
            Entry { name, outputs }
        })
        .collect()
}

fn read_tensor(path: &Path) -> Result<Tensor, String> {
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
        other => return Err(format!("element type {other:?}: not an edgeqa tensor type")),
    };
    Tensor::new(shape, data).map_err(|e| e.to_string())
}

/// Why a node test did not pass: at load (the backend refused the graph) or after.
enum Failure {
    Load(String),
    Other(String),
}

impl Failure {
    fn message(self) -> String {
        match self {
            Failure::Load(m) | Failure::Other(m) => m,
        }
    }
}

/// Runs one node test on `backend`: `Ok` when every checked output matches.
///
/// edgeqa fixes every shape at load, so an op's shape-determining parameters (Reshape's shape,
/// Slice's starts, Resize's scales, Clip's bounds, …) are constants in a package. Many node
/// tests feed them as graph inputs: when the load fails, the test runs again with every input
/// after the first frozen into an initializer holding the test's data.
fn run_test(backend: &dyn Backend, entry: &Entry) -> Result<(), String> {
    let attempt = |freeze| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_test_with(backend, entry, freeze)))
            .unwrap_or_else(|_| Err(Failure::Other("the test panicked".into())))
    };
    match attempt(false) {
        Err(Failure::Load(first)) => match attempt(true) {
            Err(Failure::Load(e)) if e == "nothing to freeze" => Err(first),
            other => other.map_err(Failure::message),
        },
        other => other.map_err(Failure::message),
    }
}

fn run_test_with(backend: &dyn Backend, entry: &Entry, freeze: bool) -> Result<(), Failure> {
    let name = entry.name.as_str();
    let other = Failure::Other;
    let dir = node_tests().join(name);
    let bytes = std::fs::read(dir.join("model.onnx")).map_err(|e| other(format!("model.onnx: {e}")))?;
    let mut model = onnx::decode(&bytes, name).map_err(|e| other(e.to_string()))?;
    let data = dir.join("test_data_set_0");
    let read_all = |prefix: &str| -> Result<Vec<Tensor>, Failure> {
        let mut out = Vec::new();
        for i in 0.. {
            let p = data.join(format!("{prefix}_{i}.pb"));
            if !p.is_file() {
                break;
            }
            out.push(read_tensor(&p).map_err(Failure::Other)?);
        }
        Ok(out)
    };
    let mut inputs = read_all("input")?;
    let mut outputs = read_all("output")?;
    let g = model.graph.as_mut().ok_or_else(|| other("no graph".into()))?;
    if let Some(keep) = entry.outputs {
        g.output.truncate(keep);
        outputs.truncate(keep);
        let read: HashSet<String> =
            g.node.iter().flat_map(|n| n.input.clone()).chain(g.output.iter().map(|o| o.name.clone())).collect();
        for n in &mut g.node {
            while n.output.len() > 1 && n.output.last().is_some_and(|o| !read.contains(o)) {
                n.output.pop();
            }
        }
    }
    if freeze {
        let inits: HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
        let names: Vec<String> = g.input.iter().map(|v| v.name.clone()).filter(|n| !inits.contains(n)).collect();
        if names.len() < 2 {
            return Err(Failure::Load("nothing to freeze".into()));
        }
        for (i, input) in names.iter().enumerate().skip(1) {
            let raw = std::fs::read(data.join(format!("input_{i}.pb"))).map_err(|e| other(e.to_string()))?;
            let mut t = pb::TensorProto::decode(raw.as_slice()).map_err(|e| other(e.to_string()))?;
            t.name = input.clone();
            g.initializer.push(t);
        }
        g.input.retain(|v| !names[1..].contains(&v.name));
        inputs.truncate(1);
    }
    let bytes = model.encode_to_vec();
    let g = model.graph.as_ref().ok_or_else(|| other("no graph".into()))?;
    let inits: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let input_names: Vec<&str> = g.input.iter().map(|v| v.name.as_str()).filter(|n| !inits.contains(n)).collect();
    if input_names.len() != inputs.len() || g.output.len() != outputs.len() {
        return Err(other("inputs or outputs do not match the data files".into()));
    }
    let info = |name: &str, t: &Tensor| TensorInfo { name: name.to_string(), dtype: t.dtype(), shape: t.shape.clone() };
    let stage = StageInfo {
        name: "model".into(),
        section: "graph/model".into(),
        inputs: input_names.iter().zip(&inputs).map(|(n, t)| info(n, t)).collect(),
        outputs: g.output.iter().zip(&outputs).map(|(o, t)| info(&o.name, t)).collect(),
        format: Default::default(),
    };
    let session: Box<dyn StageSession> =
        backend.load_stage(&stage, &bytes, name).map_err(|e| Failure::Load(e.to_string()))?;
    let got = session.run(inputs).map_err(|e| other(e.to_string()))?;
    for ((g, w), o) in got.iter().zip(&outputs).zip(&stage.outputs) {
        if g.shape != w.shape {
            return Err(other(format!(
                "wrong result: output `{}`: shape {:?}, expected {:?}",
                o.name, g.shape, w.shape
            )));
        }
        match (g.as_f32(), w.as_f32()) {
            (Some(a), Some(b)) => {
                for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
                    let ok = (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= ATOL + RTOL * y.abs();
                    if !ok {
                        return Err(other(format!("wrong result: output `{}`[{i}]: {x}, expected {y}", o.name)));
                    }
                }
            }
            _ if g != w => {
                return Err(other(format!("wrong result: output `{}` differs: {:?} vs {:?}", o.name, g.data, w.data)));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Op types of a node test's graph.
fn ops_of(name: &str) -> Result<BTreeSet<String>, String> {
    let bytes = std::fs::read(node_tests().join(name).join("model.onnx")).map_err(|e| format!("{name}: {e}"))?;
    let model = onnx::decode(&bytes, name).map_err(|e| e.to_string())?;
    Ok(model.graph.iter().flat_map(|g| g.node.iter().map(|n| n.op_type.clone())).collect())
}

/// The suite, for any backend: runs the claimed node tests listed in
/// `tests/onnx-conformance/<dir>/`, checks the lists' rules (see the file's docs) against
/// `claimed_ops`, prints `N passed, M failed` and returns the ops of the claimed tests.
fn conformance(backend: &dyn Backend, dir: &str, claimed_ops: &[&str]) -> BTreeSet<String> {
    let start = Instant::now();
    let claimed = list(dir, "claimed.txt");
    let skipped: HashSet<String> = list(dir, "skipped.txt").into_iter().map(|e| e.name).collect();
    let mut failed = Vec::new();
    let mut covered = BTreeSet::new();
    for entry in &claimed {
        assert!(!skipped.contains(&entry.name), "{dir}: {} is both claimed and skipped", entry.name);
        covered.extend(ops_of(&entry.name).unwrap_or_else(|e| panic!("{e}")));
        if let Err(e) = run_test(backend, entry) {
            failed.push(format!("{}: {e}", entry.name));
        }
    }
    println!(
        "ONNX node tests on {}: {} passed, {} failed ({:.1} s)",
        backend.name(),
        claimed.len() - failed.len(),
        failed.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(failed.is_empty(), "failed on {}:\n{}", backend.name(), failed.join("\n"));
    let untested: Vec<&str> = claimed_ops.iter().copied().filter(|op| !covered.contains(*op)).collect();
    assert!(
        untested.is_empty(),
        "ops {} claims without a claimed (passing) node test in tests/onnx-conformance/{dir}/claimed.txt: {untested:?}",
        backend.name()
    );
    covered
}

/// Runs every node test for which `eligible` holds on the backend and prints which pass.
fn discover(backend: &dyn Backend, eligible: &dyn Fn(&pb::ModelProto) -> bool) {
    let mut names: Vec<String> = std::fs::read_dir(node_tests())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("test_"))
        .collect();
    names.sort();
    let (mut pass, mut fail) = (0, 0);
    let mut passing_ops = BTreeSet::new();
    for name in names {
        let Ok(bytes) = std::fs::read(node_tests().join(&name).join("model.onnx")) else { continue };
        let Ok(model) = onnx::decode(&bytes, &name) else { continue };
        if model.graph.as_ref().is_none_or(|g| g.node.is_empty()) || !eligible(&model) {
            continue;
        }
        match run_test(backend, &Entry { name: name.clone(), outputs: None }) {
            Ok(()) => {
                pass += 1;
                passing_ops.extend(ops_of(&name).unwrap());
                println!("PASS {name}");
            }
            Err(e) => {
                fail += 1;
                println!("FAIL {name}: {}", e.lines().next().unwrap_or(""));
            }
        }
    }
    println!("ops of passing tests: {passing_ops:?}");
    println!("{} discovery: {pass} passed, {fail} failed", backend.name());
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
fn tract() {
    let covered = conformance(&TractBackend::new(), "tract", edgeqa::backend::tract::claimed_ops());
    let claimed: BTreeSet<String> = edgeqa::backend::tract::claimed_ops().iter().map(|s| s.to_string()).collect();
    assert_eq!(
        claimed, covered,
        "backend::tract::claimed_ops() must be exactly the ops of tests/onnx-conformance/tract/claimed.txt"
    );
}

#[test]
fn wgpu() {
    conformance(&gpu(), "wgpu", &edgeqa::backend::wgpu::kernels::claimed_ops());
}

#[test]
#[ignore = "discovery run for growing tests/onnx-conformance/tract/"]
fn discover_tract() {
    discover(&TractBackend::new(), &|m| edgeqa::backend::tract::unsupported_nodes(m).is_empty());
}

#[test]
#[ignore = "discovery run for growing tests/onnx-conformance/wgpu/"]
fn discover_wgpu() {
    let ops = edgeqa::backend::wgpu::kernels::claimed_ops();
    discover(&gpu(), &|m| {
        let uses: Vec<&str> = m.graph.iter().flat_map(|g| g.node.iter().map(|n| n.op_type.as_str())).collect();
        uses.iter().any(|o| ops.contains(o)) && uses.iter().all(|o| ops.contains(o) || FOLDED_AT_LOAD.contains(o))
    });
}
