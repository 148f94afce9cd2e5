//! Rewrites that make a stage faster on tract without changing a single output bit, applied to
//! the stage's ONNX before tract parses it (after [`super::tract_fixes`]). The wgpu backend
//! needs none of them: it folds and packs such weights at load itself.
//!
//! - [`gather_before_dequantize`]: an embedding table stored as integers with a `Cast` and a
//!   `Mul` by its scales in front of the `Gather` (weight-only int8 exports such as MiniLM-L6's)
//!   is dequantized whole on every run, 11.7 M values for the 16 rows a question reads: MiniLM
//!   spent two thirds of its time there. The rows are gathered first, then dequantized.

use std::collections::{HashMap, HashSet};

use super::tract_fixes::{attr_int, default_domain, node, node_label, splice};
use crate::onnx::pb;

/// ONNX's FLOAT element type.
const FLOAT: i32 = pb::tensor_proto::DataType::Float as i32;

/// Whether an ONNX element type is an integer one (the stored weights of a dequantizing chain).
fn is_integer(t: i32) -> bool {
    use pb::tensor_proto::DataType as D;
    [D::Int8, D::Uint8, D::Int16, D::Uint16, D::Int32, D::Uint32, D::Int64, D::Uint64].iter().any(|d| *d as i32 == t)
}

/// `Gather(Mul(Cast(Q), S), idx, axis = 0)` with `Q` an integer initializer of shape `[R, …]`,
/// `Cast` to float, and `S` a float initializer of one element or of shape `[R, 1, …, 1]` (one
/// scale per row), becomes `Mul(Cast(Gather(Q, idx)), Gather(S, idx))` (`S` itself when it has one
/// element). Every output element is the same `float(q) · s` product as before, so the result
/// is identical bit for bit; the `Cast` and `Mul` are dropped when nothing else reads them.
/// The rewritten Gathers read the same indices from the same tables' rows, so the index checks
/// of `backend::checked` see the same bounds. Returns the rewritten Gather nodes.
pub fn gather_before_dequantize(model: &mut pb::ModelProto) -> Vec<String> {
    let Some(g) = model.graph.as_mut() else { return vec![] };
    let inits: HashMap<&str, &pb::TensorProto> = g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let producer: HashMap<&str, usize> =
        g.node.iter().enumerate().flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i))).collect();
    let mut replace: HashMap<usize, Vec<pb::NodeProto>> = HashMap::new();
    let mut done = Vec::new();
    // The whole-table Mul and Cast of each rewrite, dropped below if nothing else reads them.
    let mut unread: Vec<String> = Vec::new();
    for (i, n) in g.node.iter().enumerate() {
        if n.op_type != "Gather" || !default_domain(n) || n.input.len() != 2 || n.output.len() != 1 {
            continue;
        }
        if n.attribute.iter().any(|a| a.name == "axis" && a.i != 0) {
            continue;
        }
        let Some(&m) = producer.get(n.input[0].as_str()) else { continue };
        let mul = &g.node[m];
        if mul.op_type != "Mul" || !default_domain(mul) || mul.input.len() != 2 {
            continue;
        }
        // One Mul input is the Cast of the integer table, the other the scales.
        let found = (0..2).find_map(|k| {
            let cast = &g.node[*producer.get(mul.input[k].as_str())?];
            let to = cast.attribute.iter().find(|a| a.name == "to").map(|a| a.i as i32);
            if cast.op_type != "Cast" || !default_domain(cast) || to != Some(FLOAT) || cast.input.len() != 1 {
                return None;
            }
            let q = inits.get(cast.input[0].as_str())?;
            let s = inits.get(mul.input[1 - k].as_str())?;
            Some((q, s))
        });
        let Some((q, s)) = found else { continue };
        if !is_integer(q.data_type) || q.dims.len() < 2 || s.data_type != FLOAT {
            continue;
        }
        let per_row = s.dims.len() == q.dims.len() && s.dims[0] == q.dims[0] && s.dims[1..].iter().all(|&d| d == 1);
        let one = s.dims.iter().product::<i64>() == 1;
        if !(per_row || one) {
            continue;
        }
        let label = node_label(n);
        let idx = n.input[1].as_str();
        let rows_q = format!("{label}.rows_q");
        let rows_f = format!("{label}.rows_f");
        let mut nodes = vec![
            node("Gather", format!("{label}.gather_q"), &[&q.name, idx], &rows_q, vec![attr_int("axis", 0)]),
            node("Cast", format!("{label}.cast"), &[&rows_q], &rows_f, vec![attr_int("to", FLOAT as i64)]),
        ];
        let scale = if per_row && !one {
            let rows_s = format!("{label}.rows_scale");
            nodes.push(node(
                "Gather",
                format!("{label}.gather_scale"),
                &[&s.name, idx],
                &rows_s,
                vec![attr_int("axis", 0)],
            ));
            rows_s
        } else {
            s.name.clone()
        };
        nodes.push(node("Mul", format!("{label}.dequantize"), &[&rows_f, &scale], &n.output[0], vec![]));
        replace.insert(i, nodes);
        done.push(label);
        let cast = (0..2).find_map(|k| producer.get(mul.input[k].as_str())).map(|&c| node_label(&g.node[c]));
        unread.extend([Some(node_label(mul)), cast].into_iter().flatten());
    }
    splice(g, replace);
    drop_unread(g, &unread);
    done
}

/// Every value name read in `g`: node inputs, graph outputs, and the same inside subgraphs
/// (an `If` branch may read a value of the graph around it).
fn names_read(g: &pb::GraphProto, out: &mut HashSet<String>) {
    out.extend(g.output.iter().map(|o| o.name.clone()));
    for n in &g.node {
        out.extend(n.input.iter().cloned());
        for a in &n.attribute {
            for sub in a.g.iter().chain(&a.graphs) {
                names_read(sub, out);
            }
        }
    }
}

/// Removes the `candidates` (node names) whose outputs nothing reads any more, in order, so a
/// `Cast` read only by a removed `Mul` goes too.
fn drop_unread(g: &mut pb::GraphProto, candidates: &[String]) {
    for name in candidates {
        let mut read = HashSet::new();
        names_read(g, &mut read);
        g.node.retain(|n| &node_label(n) != name || n.output.iter().any(|o| read.contains(o)));
    }
}

/// Applies every rewrite; logs what it changed.
pub fn apply(model: &mut pb::ModelProto, origin: &str) {
    let gathered = gather_before_dequantize(model);
    if !gathered.is_empty() {
        log::debug!("{origin}: rows gathered before dequantizing for tract: {}", gathered.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use crate::backend::tract::TractBackend;
    use crate::manifest::{DType, StageInfo, TensorInfo};
    use crate::onnx_builder as ob;
    use crate::tensor::Tensor;

    /// A weight-only int8 embedding as exporters write it: table [rows, 6] int8, scales, indices
    /// [1, 4] from the input; `scale_dims` `[rows, 1]` per row, `[]` one scale.
    fn embedding(rows: usize, scale_dims: &[usize], axis: i64) -> (pb::ModelProto, StageInfo) {
        use crate::onnx::Dim;
        let q: Vec<i8> = (0..rows * 6).map(|i| ((i * 37) % 255) as i8).collect();
        let scales: Vec<f32> = (0..scale_dims.iter().product()).map(|i| 0.01 + i as f32 * 0.003).collect();
        let mut b = ob::GraphBuilder::new("g", 17);
        b.input_i64("ids", &[Dim::Fixed(1), Dim::Fixed(4)]);
        b.initializer(ob::make_i8("q", &[rows, 6], &q));
        b.initializer(ob::make_f32("s", scale_dims, &scales));
        b.push(ob::node("Cast", "cast", &["q"], &["qf"], vec![ob::attr_int("to", 1)]));
        b.push(ob::node("Mul", "mul", &["qf", "s"], &["table"], vec![]));
        b.push(ob::node("Gather", "embed", &["table", "ids"], &["rows"], vec![ob::attr_int("axis", axis)]));
        let out_shape = if axis == 0 { vec![1, 4, 6] } else { vec![rows, 1, 4] };
        let dims: Vec<Dim> = out_shape.iter().map(|&d| Dim::Fixed(d)).collect();
        b.declare_output("rows", pb::tensor_proto::DataType::Float, Some(&dims));
        let stage = StageInfo {
            name: "model".into(),
            section: "model".into(),
            inputs: vec![TensorInfo { name: "ids".into(), dtype: DType::I64, shape: vec![1, 4] }],
            outputs: vec![TensorInfo { name: "rows".into(), dtype: DType::F32, shape: out_shape }],
            format: Default::default(),
        };
        (b.into_model(), stage)
    }

    fn run(model: &pb::ModelProto, stage: &StageInfo) -> Vec<f32> {
        use prost::Message;
        let ids = Tensor::i64(vec![1, 4], vec![0, 5, 2, 5]).unwrap();
        let s = TractBackend::new().load_stage(stage, &model.encode_to_vec(), "test").unwrap();
        s.run(vec![ids]).unwrap().remove(0).as_f32().unwrap().to_vec()
    }

    #[test]
    fn rows_are_gathered_first_and_the_result_is_bit_identical() {
        for scale_dims in [vec![8, 1], vec![], vec![1]] {
            let (model, stage) = embedding(8, &scale_dims, 0);
            let mut rewritten = model.clone();
            assert_eq!(gather_before_dequantize(&mut rewritten), ["embed"], "scales {scale_dims:?}");
            let ops: Vec<&str> = rewritten.graph.as_ref().unwrap().node.iter().map(|n| n.op_type.as_str()).collect();
            let want: &[&str] =
                if scale_dims == [8, 1] { &["Gather", "Cast", "Gather", "Mul"] } else { &["Gather", "Cast", "Mul"] };
            assert_eq!(ops, want, "the whole-table Cast and Mul are gone");
            // `load_stage` applies the rewrite itself, so the reference is computed here: the
            // f32 product float(q) · s of the rows asked for, which the graph defines.
            let (a, b) = (run(&model, &stage), run(&rewritten, &stage));
            let expect: Vec<f32> = {
                let g = model.graph.as_ref().unwrap();
                let q = &g.initializer[0];
                let s = &g.initializer[1];
                let qv: Vec<i8> = q.raw_data.iter().map(|&b| b as i8).collect();
                let sv: Vec<f32> = s.raw_data.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
                [0usize, 5, 2, 5]
                    .iter()
                    .flat_map(|&r| {
                        let sv = &sv;
                        qv[r * 6..r * 6 + 6].iter().map(move |&v| v as f32 * if sv.len() == 1 { sv[0] } else { sv[r] })
                    })
                    .collect()
            };
            assert_eq!(a, b);
            assert_eq!(a, expect, "float(q) · s, bit for bit");
        }
    }

    /// The rewritten Gathers still have their indices checked: a row past the table is an
    /// input error naming the index, not a panic or a wrong row.
    #[test]
    fn an_index_past_the_table_is_still_an_error() {
        use prost::Message;
        let (model, stage) = embedding(8, &[8, 1], 0);
        let s = TractBackend::new().load_stage(&stage, &model.encode_to_vec(), "test").unwrap();
        let ids = Tensor::i64(vec![1, 4], vec![0, 8, 2, 5]).unwrap();
        let e = s.run(vec![ids]).unwrap_err().to_string();
        assert!(e.contains('8') && e.contains("out of range"), "{e}");
    }

    /// A table also read elsewhere (tied input and output embeddings) keeps its whole-table
    /// `Cast` and `Mul` for that reader; the Gather is rewritten all the same.
    #[test]
    fn a_table_read_elsewhere_keeps_its_dequantization() {
        let (mut model, _) = embedding(8, &[8, 1], 0);
        let g = model.graph.as_mut().unwrap();
        g.node.push(ob::node("ReduceSum", "tied", &["table"], &["table_sum"], vec![]));
        g.output.push(ob::value_info("table_sum", pb::tensor_proto::DataType::Float, None));
        assert_eq!(gather_before_dequantize(&mut model), ["embed"]);
        let ops: Vec<&str> = model.graph.as_ref().unwrap().node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Cast", "Mul", "Gather", "Cast", "Gather", "Mul", "ReduceSum"]);
    }

    #[test]
    fn other_shapes_are_left_alone() {
        // Scales per column, not per row: not rewritten.
        let (mut model, _) = embedding(8, &[1, 6], 0);
        assert!(gather_before_dequantize(&mut model).is_empty());
        // A Gather along axis 1.
        let (mut model, _) = embedding(8, &[8, 1], 1);
        assert!(gather_before_dequantize(&mut model).is_empty());
        assert_eq!(model.graph.unwrap().node.len(), 3);
    }
}
