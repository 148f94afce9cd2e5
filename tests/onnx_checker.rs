//! The converter's ONNX check (`edgeqa_convert::check`) against ONNX's own
//! `onnx.checker.check_model` (from the test venv made by `bash scripts/fetch-test-data.sh`):
//! the committed schema table is what `scripts/gen_onnx_schemas.py` prints, and on crafted
//! invalid graphs, every fetched real model and the demo student's stages both give the same
//! verdict.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use edgeqa::onnx::pb;
use edgeqa::onnx::pb::tensor_proto::DataType as T;
use edgeqa::onnx_builder::{GraphBuilder, attr_float, attr_int, fixed, make_f32, node};
use edgeqa_convert::check;
use edgeqa_tests::{assert_clean_error, repo_root, run_bin, venv_python};
use prost::Message;

#[test]
fn committed_schema_table_is_what_the_generator_prints() {
    let out = std::process::Command::new(venv_python())
        .arg(repo_root().join("scripts/gen_onnx_schemas.py"))
        .output()
        .expect("cannot run scripts/gen_onnx_schemas.py");
    assert!(out.status.success(), "gen_onnx_schemas.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(
        printed == check::schemas::TABLE,
        "converter/src/check/onnx_schemas.txt is stale: run \
         `.cache/venv/bin/python scripts/gen_onnx_schemas.py > converter/src/check/onnx_schemas.txt`"
    );
}

/// `x` f32 [2, 3] → `nodes` → `y` f32 [2, 3] (types and shapes declared, as ONNX's checker
/// wants), opset `opset`, with an f32 scalar initializer `s`.
fn crafted(opset: i64, nodes: Vec<pb::NodeProto>, edit: impl FnOnce(&mut pb::ModelProto)) -> pb::ModelProto {
    let mut b = GraphBuilder::new("crafted", opset);
    b.input_f32("x", &fixed(&[2, 3]));
    b.initializer(make_f32("s", &[], &[0.5]));
    for n in nodes {
        b.push(n);
    }
    b.declare_output("y", T::Float, Some(&fixed(&[2, 3])));
    let mut m = b.into_model();
    edit(&mut m);
    m
}

/// Crafted models: name, model, and whether it is valid ONNX.
fn crafted_models() -> Vec<(&'static str, pb::ModelProto, bool)> {
    let n = |op: &str, inputs: &[&str], outputs: &[&str], attrs| node(op, op, inputs, outputs, attrs);
    let keep = |_: &mut pb::ModelProto| {};
    vec![
        ("valid_relu", crafted(13, vec![n("Relu", &["x"], &["y"], vec![])], keep), true),
        (
            "valid_dq_axis_13",
            crafted(13, vec![n("DequantizeLinear", &["x", "s"], &["y"], vec![attr_int("axis", 1)])], keep),
            true,
        ),
        (
            "dq_axis_at_11",
            crafted(11, vec![n("DequantizeLinear", &["x", "s"], &["y"], vec![attr_int("axis", 1)])], keep),
            false,
        ),
        (
            "unknown_attribute",
            crafted(13, vec![n("Relu", &["x"], &["y"], vec![attr_float("alpha", 1.0)])], keep),
            false,
        ),
        ("missing_required_attribute", crafted(13, vec![n("Concat", &["x"], &["y"], vec![])], keep), false),
        ("attribute_type", crafted(13, vec![n("Concat", &["x"], &["y"], vec![attr_float("axis", 0.0)])], keep), false),
        ("too_few_inputs", crafted(13, vec![n("Add", &["x"], &["y"], vec![])], keep), false),
        ("empty_required_input", crafted(13, vec![n("Add", &["x", ""], &["y"], vec![])], keep), false),
        ("undefined_input", crafted(13, vec![n("Relu", &["z"], &["y"], vec![])], keep), false),
        (
            "duplicate_output",
            crafted(13, vec![n("Relu", &["x"], &["y"], vec![]), node("Neg", "neg", &["x"], &["y"], vec![])], keep),
            false,
        ),
        ("unknown_op", crafted(13, vec![n("Frobnicate", &["x"], &["y"], vec![])], keep), false),
        ("deprecated_op", crafted(13, vec![n("Upsample", &["x", "s"], &["y"], vec![])], keep), false),
        (
            "domain_not_imported",
            crafted(13, vec![n("Relu", &["x"], &["y"], vec![])], |m| {
                m.graph.as_mut().unwrap().node[0].domain = "com.example".into()
            }),
            false,
        ),
        ("undefined_graph_output", crafted(13, vec![n("Relu", &["x"], &["r"], vec![])], keep), false),
        (
            "duplicate_initializer",
            crafted(13, vec![n("Relu", &["x"], &["y"], vec![])], |m| {
                m.graph.as_mut().unwrap().initializer.push(make_f32("s", &[], &[1.0]))
            }),
            false,
        ),
        ("no_opset_import", crafted(13, vec![n("Relu", &["x"], &["y"], vec![])], |m| m.opset_import.clear()), false),
    ]
}

/// ONNX's checker on each file: `None` when valid, else its message.
fn onnx_checker(paths: &[PathBuf]) -> Vec<Option<String>> {
    const SCRIPT: &str = "import sys, onnx\n\
        for p in sys.argv[1:]:\n\
        \x20   try:\n\
        \x20       onnx.checker.check_model(onnx.load(p))\n\
        \x20       print('ok')\n\
        \x20   except Exception as e:\n\
        \x20       print('error', ' '.join(str(e).split())[:300])\n";
    let out = std::process::Command::new(venv_python()).arg("-c").arg(SCRIPT).args(paths).output().expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let verdicts: Vec<Option<String>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| if l == "ok" { None } else { Some(l.to_string()) })
        .collect();
    assert_eq!(verdicts.len(), paths.len(), "one verdict per model");
    verdicts
}

fn onnx_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension() == Some(OsStr::new("onnx")))
        .collect();
    files.sort();
    files
}

#[test]
fn verdicts_agree_with_onnx_checker_on_crafted_real_and_demo_models() {
    let tmp = tempfile::tempdir().unwrap();
    let crafted = crafted_models();
    let mut paths = Vec::new();
    for (name, model, valid) in &crafted {
        // The crafted models are what they claim to be for our check too.
        let ours = check::problems(model);
        assert_eq!(ours.is_empty(), *valid, "{name}: {ours:?}");
        let path = tmp.path().join(format!("{name}.onnx"));
        std::fs::write(&path, model.encode_to_vec()).unwrap();
        paths.push(path);
    }
    let models = repo_root().join(".cache/testdata/models");
    assert!(models.is_dir(), "{} is missing: run `bash scripts/fetch-test-data.sh`", models.display());
    let real = onnx_files(&models);
    assert!(
        real.len() >= 6,
        "expected the fetched models in {}: run `bash scripts/fetch-test-data.sh`",
        models.display()
    );
    let demo = onnx_files(&repo_root().join("models/demo/student"));
    assert_eq!(demo.len(), 6, "the demo student's six stages");
    paths.extend(real.into_iter().chain(demo));

    let theirs = onnx_checker(&paths);
    let mut disagree = Vec::new();
    for (path, theirs) in paths.iter().zip(&theirs) {
        let bytes = std::fs::read(path).unwrap();
        let model = edgeqa::onnx::decode(&bytes, &path.display().to_string()).unwrap();
        let ours = check::problems(&model);
        let name = path.file_name().unwrap().to_string_lossy();
        eprintln!(
            "{name}: onnx {}, ours {}",
            theirs.as_deref().unwrap_or("ok"),
            if ours.is_empty() { "ok".into() } else { ours[0].to_string() }
        );
        if ours.is_empty() != theirs.is_none() {
            disagree.push(format!("{name}: onnx says {theirs:?}, we say {ours:?}"));
        }
    }
    assert!(disagree.is_empty(), "verdicts differ:\n{}", disagree.join("\n"));
}

#[test]
fn converting_an_invalid_graph_gives_one_clear_error_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let model =
        crafted(11, vec![node("DequantizeLinear", "dq", &["x", "s"], &["y"], vec![attr_int("axis", 1)])], |_| {});
    let (path, out) = (tmp.path().join("dq.onnx"), tmp.path().join("dq.eqa"));
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    let args = [OsStr::new("--model"), path.as_os_str(), OsStr::new("--output"), out.as_os_str()];
    let result = run_bin(env!("CARGO_BIN_EXE_edgeqa-convert"), &args, &[]);
    assert_clean_error(
        &result,
        &["dq.onnx", "node `dq` (DequantizeLinear)", "attribute `axis`", "opset 11", "from opset 13", "re-export"],
    );
    assert!(!out.exists(), "nothing may be written");
}
