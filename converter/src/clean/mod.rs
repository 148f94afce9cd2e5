//! Graph cleaning before calibration and quantization.
//!
//! [`clean`] runs, in order: `Constant` nodes → initializers, Identity / inference Dropout
//! removal, constant folding (with tract), BatchNormalization folded into the Conv before it,
//! the opset upgrade (when asked), dead-node removal and a topological sort. Every pass keeps
//! the function the graph computes; afterwards every weight is an initializer, so the quantizer
//! finds Conv / MatMul / Gemm weights by name.

mod batchnorm;
mod constants;
mod edit;
mod eval;
mod fold;
mod identity;
mod opset;
mod rank;
#[cfg(test)]
pub(crate) mod testutil;

use std::fmt;

use edgeqa_format::onnx::{self, pb};

use crate::graph::{graph, graph_mut, remove_dead, topo_sort};
pub use fold::GROWTH_LIMIT_BYTES;
pub use opset::{REWRITTEN_FOR_13, UNCHANGED_11_TO_13, UPGRADE_FROM, UPGRADE_TARGET};

/// What [`clean`] should do beyond the always-on passes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanOptions {
    /// Upgrade the default-domain opset to this version when the model's is lower (`Some(13)`
    /// when quantizing: per-channel DequantizeLinear needs opset 13). Only 13 is supported, from
    /// 11 or 12; a model already at or above the target is left at its opset.
    pub target_opset: Option<i64>,
}

/// What [`clean`] did, pass by pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// `Constant` nodes turned into initializers.
    pub constants_converted: usize,
    /// Nodes evaluated and replaced by initializers (`shapes_folded` included).
    pub constants_folded: usize,
    /// `Shape` nodes of fixed-shape graph inputs, among `constants_folded`.
    pub shapes_folded: usize,
    /// Constant nodes left in place because folding would grow the model.
    pub folds_skipped_large: usize,
    /// Constant nodes tract could not evaluate (left in place).
    pub folds_failed: usize,
    /// BatchNormalization nodes folded into the Conv / ConvTranspose before them.
    pub batchnorms_folded: usize,
    /// Identity and inference-mode Dropout nodes removed.
    pub identities_removed: usize,
    /// Nodes rewritten by the opset upgrade.
    pub ops_upgraded: usize,
    /// Nodes nothing read any more, removed at the end.
    pub dead_removed: usize,
    /// Initializers nothing read any more (folded BN parameters, replaced weights), removed.
    pub dead_initializers_removed: usize,
    /// Default-domain opset before (0 when the model declares none).
    pub opset_from: i64,
    /// Default-domain opset after.
    pub opset_to: i64,
    /// Node count before cleaning.
    pub nodes_before: usize,
    /// Node count after cleaning.
    pub nodes_after: usize,
    /// Initializer count after cleaning.
    pub initializers_after: usize,
}

impl fmt::Display for CleanReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} → {} nodes, {} initializers; constants {} converted, {} folded ({} shapes, {} too large, {} failed); \
             {} batchnorms folded; {} identities removed; opset {} → {} ({} rewritten); {} dead nodes and {} dead \
             initializers removed",
            self.nodes_before,
            self.nodes_after,
            self.initializers_after,
            self.constants_converted,
            self.constants_folded,
            self.shapes_folded,
            self.folds_skipped_large,
            self.folds_failed,
            self.batchnorms_folded,
            self.identities_removed,
            self.opset_from,
            self.opset_to,
            self.ops_upgraded,
            self.dead_removed,
            self.dead_initializers_removed,
        )
    }
}

/// Why a model cannot be cleaned.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    #[error(
        "{origin}: the model declares no default-domain (ai.onnx) opset, so it cannot be upgraded; re-export it with opset 13 or later"
    )]
    NoOpset { origin: String },
    #[error(
        "{origin}: opset {found} cannot be upgraded to {to} (upgrades start from opset 11 or 12); re-export the model with opset ≥ 13"
    )]
    OpsetTooOld { origin: String, found: i64, to: i64 },
    #[error(
        "{origin}: upgrading opset {from} to {to} is not supported (only to {UPGRADE_TARGET}); re-export the model with opset ≥ {to}"
    )]
    UpgradeTarget { origin: String, from: i64, to: i64 },
    #[error(
        "{origin}: cannot upgrade opset {from} to {to}; {n} node(s) stand in the way: {list}. Re-export the model with opset ≥ {to}",
        n = nodes.len(),
        list = nodes.join("; ")
    )]
    Upgrade { origin: String, from: i64, to: i64, nodes: Vec<String> },
    #[error("{origin}: {reason}; the file is not a well-formed ONNX graph: re-export it")]
    Graph { origin: String, reason: String },
}

/// Cleans `model` in place (see the module docs for the passes); `origin` names the file in
/// errors and logs. On error the model may be partly cleaned, but it still computes the same
/// function.
pub fn clean(model: &mut pb::ModelProto, origin: &str, opts: &CleanOptions) -> Result<CleanReport, CleanError> {
    let opset_from = onnx::opset(model).unwrap_or(0);
    if let Some(target) = opts.target_opset {
        opset::check_upgradable(model, origin, target)?;
    }
    let sort = |g: &mut pb::GraphProto| {
        topo_sort(g).map_err(|e| CleanError::Graph { origin: origin.into(), reason: e.to_string() })
    };
    let mut r =
        CleanReport { opset_from, opset_to: opset_from, nodes_before: graph(model).node.len(), ..Default::default() };
    sort(graph_mut(model))?;
    r.constants_converted = constants::constants_to_initializers(graph_mut(model));
    r.identities_removed = identity::remove_identities(graph_mut(model));
    let folded = fold::fold_constants(model, origin);
    (r.constants_folded, r.shapes_folded) = (folded.folded, folded.shapes);
    (r.folds_skipped_large, r.folds_failed) = (folded.too_large, folded.failed);
    r.batchnorms_folded = batchnorm::fold_batchnorms(graph_mut(model));
    if let Some(target) = opts.target_opset {
        r.ops_upgraded = opset::upgrade(model, origin, target)?;
    }
    r.opset_to = onnx::opset(model).unwrap_or(0);
    let initializers = graph(model).initializer.len();
    r.dead_removed = remove_dead(graph_mut(model));
    r.dead_initializers_removed = initializers - graph(model).initializer.len();
    sort(graph_mut(model))?;
    r.nodes_after = graph(model).node.len();
    r.initializers_after = graph(model).initializer.len();
    log::debug!("{origin}: cleaned: {r}");
    Ok(r)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use tract_onnx::prelude::*;

    use super::testutil::{assert_same_function, model, ops, random_f32, run, to_tract};
    use super::*;
    use crate::graph::{
        attr_float, attr_int, attr_ints, attr_tensor, initializer, make_f32, make_i64, node, producers,
    };

    fn constant(name: &str, t: pb::TensorProto) -> pb::NodeProto {
        node("Constant", name, &[], &[name], vec![attr_tensor("value", t)])
    }

    fn data(shape: &[usize], seed: u64, lo: f32) -> pb::TensorProto {
        let t = random_f32(shape, seed);
        let v: Vec<f32> =
            t.to_plain_array_view::<f32>().unwrap().iter().map(|v| if lo > 0.0 { v.abs() + lo } else { *v }).collect();
        make_f32("", shape, &v)
    }

    /// An opset-11 graph in the paddle2onnx style: weights as Constant nodes, Conv + BN, a
    /// constant shape computation, Squeeze with attribute axes, Softmax on axis 1, an Identity
    /// at the end.
    fn paddle_like() -> pb::ModelProto {
        let bn = node(
            "BatchNormalization",
            "bn",
            &["conv", "g", "b", "m", "v"],
            &["bn_out"],
            vec![attr_float("epsilon", 1e-5)],
        );
        model(
            11,
            vec![
                constant("w", data(&[4, 3, 3, 3], 1, 0.0)),
                constant("g", data(&[4], 2, 0.5)),
                constant("b", data(&[4], 3, 0.0)),
                constant("m", data(&[4], 4, 0.0)),
                constant("v", data(&[4], 5, 0.1)),
                constant("two", make_i64("", &[1], &[2])),
                constant("minus1", make_i64("", &[1], &[-1])),
                node("Conv", "conv", &["x", "w"], &["conv"], vec![attr_ints("pads", &[1, 1, 1, 1])]),
                bn,
                node("Relu", "relu", &["bn_out"], &["r"], vec![]),
                node("Mul", "twice", &["two", "two"], &["four"], vec![]),
                node("Concat", "cat", &["four", "minus1"], &["shape"], vec![attr_int("axis", 0)]),
                node("Reshape", "flat", &["r", "shape"], &["f"], vec![]),
                node("Unsqueeze", "u", &["f"], &["f3"], vec![attr_ints("axes", &[0])]),
                node("Squeeze", "s", &["f3"], &["f2"], vec![attr_ints("axes", &[0])]),
                node("Softmax", "sm", &["f2"], &["p"], vec![attr_int("axis", 1)]),
                node("Identity", "out", &["p"], &["y"], vec![]),
            ],
            vec![],
            &[("x", &[1, 3, 6, 6])],
            &["y"],
        )
    }

    #[test]
    fn a_paddle_like_graph_cleans_to_the_same_function() {
        let before = paddle_like();
        let mut after = before.clone();
        let r = clean(&mut after, "paddle.onnx", &CleanOptions { target_opset: Some(13) }).unwrap();
        assert_eq!(
            (r.constants_converted, r.constants_folded, r.batchnorms_folded, r.identities_removed, r.ops_upgraded),
            (7, 2, 1, 1, 3),
            "{r}"
        );
        assert_eq!((r.opset_from, r.opset_to), (11, 13));
        assert_eq!(r.nodes_after, ops(&after).len());
        // Softmax on axis 1 of a rank-2 tensor is its last axis: no Flatten needed.
        assert_eq!(ops(&after), vec!["Conv", "Relu", "Reshape", "Unsqueeze", "Squeeze", "Softmax"]);
        let g = graph(&after);
        assert!(initializer(g, &g.node[0].input[1]).is_some(), "conv weight is an initializer");
        assert_eq!(g.node.last().unwrap().output, vec!["y"]);
        assert_eq!(after.ir_version, 7);
        assert_same_function(&before, &after, &[random_f32(&[1, 3, 6, 6], 9)], 1e-5);
    }

    #[test]
    fn without_a_target_the_opset_stays() {
        let mut m = paddle_like();
        let r = clean(&mut m, "paddle.onnx", &CleanOptions::default()).unwrap();
        assert_eq!((r.opset_from, r.opset_to, r.ops_upgraded), (11, 11, 0));
        assert!(!ops(&m).contains(&"Constant".to_string()));
    }

    #[test]
    fn an_old_opset_fails_before_any_change() {
        let mut m = paddle_like();
        m.opset_import[0].version = 9;
        let copy = m.clone();
        let err = clean(&mut m, "old.onnx", &CleanOptions { target_opset: Some(13) }).unwrap_err();
        assert!(err.to_string().starts_with("old.onnx: opset 9"), "{err}");
        assert_eq!(m, copy);
    }

    #[test]
    fn a_cycle_is_a_graph_error() {
        let mut m = model(
            13,
            vec![node("Add", "a", &["x", "b"], &["a"], vec![]), node("Relu", "b", &["a"], &["b"], vec![])],
            vec![],
            &[("x", &[1])],
            &["b"],
        );
        let err = clean(&mut m, "loop.onnx", &CleanOptions::default()).unwrap_err();
        assert!(matches!(err, CleanError::Graph { .. }) && err.to_string().contains("loop.onnx"), "{err}");
    }

    // ---- real models ----

    fn workspace() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// A fetched test model; missing data fails the test.
    fn find(name: &str) -> PathBuf {
        let path = workspace().join(".cache/testdata/models").join(name);
        assert!(path.is_file(), "{} is missing: run `bash scripts/fetch-test-data.sh`", path.display());
        path
    }

    fn load(path: &Path) -> pb::ModelProto {
        let bytes = std::fs::read(path).unwrap();
        onnx::decode(&bytes, &path.display().to_string()).unwrap()
    }

    /// Cleans a PP-OCR model for quantization and checks structure and numerics.
    fn check_ppocr(name: &str, shape: &[usize]) {
        let path = find(name);
        let before = load(&path);
        let mut after = before.clone();
        let r = clean(&mut after, name, &CleanOptions { target_opset: Some(13) }).unwrap();
        println!("{name}: {r}");
        println!("{name}: ops after: {:?}", onnx::op_histogram(&after));
        let g = graph(&after);
        assert_eq!(onnx::opset(&after), Some(13));
        assert!(!g.node.iter().any(|n| n.op_type == "Constant"), "a Constant node is left");
        let prod = producers(g);
        for n in &g.node {
            if n.op_type == "BatchNormalization" {
                let p = prod.get(&n.input[0]).map(|&p| g.node[p].op_type.as_str());
                assert!(!matches!(p, Some("Conv")), "BatchNormalization {} after a Conv is left", n.name);
            }
            if matches!(n.op_type.as_str(), "Conv" | "ConvTranspose") {
                assert!(
                    initializer(g, &n.input[1]).is_some(),
                    "{}: weight {} is not an initializer",
                    n.name,
                    n.input[1]
                );
            }
            if matches!(n.op_type.as_str(), "MatMul" | "Gemm") {
                // A weight is an initializer; an activation comes from a node that reads the input.
                for i in &n.input[..2] {
                    assert!(initializer(g, i).is_some() || prod.contains_key(i), "{}: {i} is neither", n.name);
                }
            }
        }
        assert_eq!(fold::fold_constants(&mut after.clone(), name).folded, 0, "something foldable is left");
        let x = random_f32(shape, 42);
        let (a, b) = (run(&before, std::slice::from_ref(&x)).unwrap(), run(&after, &[x]).unwrap());
        for (o1, o2) in a.iter().zip(&b) {
            let d = super::testutil::max_abs_diff(o1, o2);
            println!("{name}: max abs diff {d:e}");
            assert!(d <= 1e-4, "{name}: outputs differ by {d}");
        }
    }

    #[test]
    fn ppocr_cls_cleans_and_agrees() {
        check_ppocr("ch_ppocr_mobile_v2.0_cls_infer.onnx", &[1, 3, 48, 192]);
    }

    #[test]
    fn ppocr_rec_cleans_and_agrees() {
        check_ppocr("ch_PP-OCRv4_rec_infer.onnx", &[1, 3, 48, 320]);
    }

    #[test]
    fn ppocr_det_cleans_and_agrees() {
        check_ppocr("ch_PP-OCRv4_det_infer.onnx", &[1, 3, 320, 320]);
    }

    /// Synthetic inputs for a demo stage from its declared shapes (symbolic dims as 1).
    fn stage_inputs(m: &pb::ModelProto) -> Vec<Tensor> {
        let infos: Vec<edgeqa_format::manifest::TensorInfo> = onnx::graph_inputs(m)
            .iter()
            .map(|d| edgeqa_format::manifest::TensorInfo {
                name: d.name.clone(),
                dtype: d.dtype.expect("demo inputs have edgeqa dtypes"),
                shape: d
                    .dims
                    .as_ref()
                    .unwrap()
                    .iter()
                    .map(|x| if let onnx::Dim::Fixed(v) = x { *v } else { 1 })
                    .collect(),
            })
            .collect();
        edgeqa_format::synthetic::inputs(&infos, 100).iter().map(to_tract).collect()
    }

    #[test]
    fn demo_student_stages_clean_and_agree() {
        let dir = workspace().join("models/demo/student");
        for stage in edgeqa_format::manifest::STUDENT_STAGES {
            // The committed demo student has every stage.
            let path = dir.join(format!("{stage}.onnx"));
            assert!(path.is_file(), "{} is missing from the repository", path.display());
            let before = load(&path);
            let mut after = before.clone();
            let r = clean(&mut after, stage, &CleanOptions { target_opset: Some(13) }).unwrap();
            println!("{stage}: {r}");
            assert_eq!(r.opset_from, r.opset_to, "opset 17 needs no upgrade");
            assert!(!ops(&after).contains(&"Constant".to_string()));
            assert_same_function(&before, &after, &stage_inputs(&before), 1e-5);
        }
    }
}
