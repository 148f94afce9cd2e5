//! A damaged package is always rejected by the `edgeqa` binary with one clear error line.
//! (The package unit tests flip every byte of a small package exhaustively; this checks the
//! real demo package through the binary, at positions spread over every region of the file.)

use std::ffi::OsStr;
use std::path::Path;

use edgeqa_tests::{assert_clean_error, run_bin};

const EDGEQA: &str = env!("CARGO_BIN_EXE_edgeqa");

fn inspect(path: &Path) -> (bool, String, String) {
    run_bin(EDGEQA, &[OsStr::new("inspect"), path.as_os_str()], &[])
}

#[test]
fn flipped_truncated_and_extended_packages_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    edgeqa_tests::write_probe_bundle(dir.path(), 1, 1).unwrap();
    let good = std::fs::read(dir.path().join("demo.eqa")).unwrap();
    assert!(inspect(&dir.path().join("demo.eqa")).0, "the intact package must load");
    let bad = dir.path().join("bad.eqa");

    // Every byte of the header and section table, then positions spread over the sections.
    let mut positions: Vec<usize> = (0..64 + 96 * 5).collect();
    positions.extend((0..97).map(|i| 544 + i * (good.len() - 545) / 96));
    for &pos in &positions {
        let mut bytes = good.clone();
        bytes[pos] ^= 0x10;
        std::fs::write(&bad, &bytes).unwrap();
        let r = inspect(&bad);
        assert_clean_error(&r, &["bad.eqa"]);
    }
    for len in [0, 7, 63, 64, 200, good.len() / 2, good.len() - 1] {
        std::fs::write(&bad, &good[..len]).unwrap();
        assert_clean_error(&inspect(&bad), &["bad.eqa"]);
    }
    let mut longer = good.clone();
    longer.push(0);
    std::fs::write(&bad, &longer).unwrap();
    assert_clean_error(&inspect(&bad), &["bad.eqa"]);
}

/// A generic package whose graph is `y = x + c` with `c` from a Constant node that names no
/// output (hand-edited after export): (package, x.npy).
fn package_with_outputless_constant(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use edgeqa::manifest::{DType, Manifest, TensorInfo};
    use edgeqa::onnx::Dim;
    use edgeqa::onnx_builder::{Attr, GraphBuilder};
    use prost::Message;

    let mut g = GraphBuilder::new("crafted", 13);
    let x = g.input_f32("x", &[Dim::Fixed(1), Dim::Fixed(4)]);
    let c = g.node("Constant", &[], vec![("value_float", Attr::Float(1.0))]);
    let y = g.node("Add", &[&x, &c], vec![]);
    g.output(&y, "y");
    let mut model = edgeqa::onnx::pb::ModelProto::decode(&g.build()[..]).unwrap();
    let graph = model.graph.as_mut().unwrap();
    let constant = graph.node.iter_mut().find(|n| n.op_type == "Constant").unwrap();
    assert_eq!(constant.output, [c]);
    constant.output.clear();

    let t = |name: &str| TensorInfo { name: name.into(), dtype: DType::F32, shape: vec![1, 4] };
    let manifest = Manifest::model("crafted", "crafted", vec![t("x")], vec![t("y")]);
    let mut w = edgeqa::package::PackageWriter::new(manifest);
    w.add_onnx("model", model.encode_to_vec()).unwrap();
    let pkg = dir.join("crafted.eqa");
    w.write(&pkg).unwrap();
    let input = dir.join("x.npy");
    edgeqa::tensor::Tensor::f32(vec![1, 4], vec![0.0; 4]).unwrap().write_npy(&input).unwrap();
    (pkg, input)
}

#[test]
fn constant_node_without_outputs_is_one_clear_error_on_every_backend() {
    use edgeqa::backend::Backend;

    let dir = tempfile::tempdir().unwrap();
    let (pkg, input) = package_with_outputless_constant(dir.path());
    let why = "Constant (n1_Constant): the node names no output; the graph is malformed, re-export the model";

    // `inspect` plans every stage for wgpu (no device needed), and with `--board` loads it.
    let r = inspect(&pkg);
    assert!(r.0, "inspect reports an unplannable stage and succeeds: {}", r.2);
    assert!(r.1.contains(why), "{}", r.1);
    let xdg = dir.path().join("xdg");
    std::fs::create_dir(&xdg).unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&xdg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    for backend in ["tract", "wgpu"] {
        let args = ["inspect", pkg.to_str().unwrap(), "--board", "generic-x86_64", "--backend", backend];
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let r = run_bin(EDGEQA, &args, &[("XDG_RUNTIME_DIR", &xdg)]);
        assert_clean_error(&r, &["crafted.eqa [model]", &format!("{backend} cannot load the graph"), why]);
        let x = format!("x={}", input.display());
        let args = ["run", "--package", pkg.to_str().unwrap(), "--input", &x, "--backend", backend];
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let r = run_bin(EDGEQA, &args, &[("XDG_RUNTIME_DIR", &xdg)]);
        assert_clean_error(&r, &["crafted.eqa [model]", &format!("{backend} cannot load the graph"), why]);
    }

    // The same through the library, for the tract backend and the wgpu planner.
    let p = edgeqa::package::Package::open(&pkg).unwrap();
    let stage = &p.manifest().stages[0];
    let graph = p.stage_graph("model").unwrap();
    let e = edgeqa::backend::tract::TractBackend::new().load_stage(stage, graph, "crafted").err().unwrap();
    assert_eq!(e.to_string(), format!("crafted: tract cannot load the graph: {why}"));
    let e = edgeqa::backend::wgpu::plan_stage(stage, graph, &[], "crafted").unwrap_err();
    assert_eq!(e.to_string(), format!("crafted: wgpu cannot load the graph: {why}"));
}
