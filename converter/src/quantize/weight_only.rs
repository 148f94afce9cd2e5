//! The weight-only schemes `w8` and `w4`: each weight is viewed as `rows` output channels ×
//! `cols` (everything else), quantized symmetrically in blocks of `block` along a row with one
//! f16 scale per block, and dequantized by a small constant sub-graph in front of its node.
//! Activations stay f32.
//!
//! The sub-graph uses only ops every ONNX runtime has had since opset 10 (Cast, Div, Floor, Mul,
//! Sub, Concat, Reshape, Slice, Transpose), so no opset upgrade is needed:
//!
//! ```text
//! w8: q:int8[rows*nb, b]                 → Cast(f32)                 → Mul(scale) → Reshape → Slice → Reshape → Transpose
//! w4: q:uint8[rows*nb, b/2]            → Cast(f32) → hi = Floor(x/16), lo = x - 16·hi → Concat(lo, hi) → Sub(8) → Mul(scale) → …
//! ```
//!
//! A w4 byte holds column `j` of its block in the low nibble and column `j + b/2` in the high
//! one (offset binary, value + 8), so unpacking is one Concat with no interleaving. Generated
//! tensors get short names (`wq<k>...`) and nodes none: the graph structure stays a small part
//! of the package.
//!
//! tract folds the sub-graph once at load; the wgpu backend takes the packed weights as stored
//! (the manifest's `packed` record, `runtime/src/graph/stored.rs`). The package stores only the
//! packed weights.

use std::collections::HashMap;

use edgeqa_format::manifest::PackedWeight;
use edgeqa_format::onnx::pb;

use super::math::{self, Bits};
use super::{QuantError, QuantSummary, QuantizedWeight, Target};
use crate::graph::{
    self, Names, attr_int, attr_ints, make_f16_bits, make_f32, make_i8, make_i64, make_u8, node, node_label,
};

/// Builds the dequantizing sub-graph for one weight and returns the name of its f32 output.
struct Builder<'a> {
    names: &'a mut Names,
    inits: Vec<pb::TensorProto>,
    nodes: Vec<pb::NodeProto>,
    prefix: String,
    opset: i64,
    /// Scalar constants shared by every weight of the graph.
    shared: &'a mut HashMap<String, String>,
}

impl Builder<'_> {
    fn init(&mut self, what: &str, t: impl FnOnce(&str) -> pb::TensorProto) -> String {
        let name = self.names.fresh(&format!("{}{what}", self.prefix));
        self.inits.push(t(&name));
        name
    }

    fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<pb::AttributeProto>) -> String {
        let out = self.names.fresh(&format!("{}.{}", self.prefix, self.nodes.len()));
        self.nodes.push(node(op, "", inputs, &[&out], attrs));
        out
    }

    fn reshape(&mut self, x: &str, shape: &[usize]) -> String {
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let s = self.init("s", |n| make_i64(n, &[dims.len()], &dims));
        self.op("Reshape", &[x, &s], vec![])
    }

    fn cast_f32(&mut self, x: &str) -> String {
        self.op("Cast", &[x], vec![attr_int("to", pb::tensor_proto::DataType::Float as i32 as i64)])
    }

    /// A scalar f32 constant shared by the whole graph.
    fn scalar(&mut self, v: f32) -> String {
        let key = format!("{v}");
        if let Some(n) = self.shared.get(&key) {
            return n.clone();
        }
        let name = self.names.fresh(&format!("wq.{key}"));
        self.inits.push(make_f32(&name, &[], &[v]));
        self.shared.insert(key, name.clone());
        name
    }

    /// Keeps the first `len` elements along `axis`.
    fn slice(&mut self, x: &str, axis: usize, len: usize) -> String {
        if self.opset < 10 {
            return self.op(
                "Slice",
                &[x],
                vec![attr_ints("starts", &[0]), attr_ints("ends", &[len as i64]), attr_ints("axes", &[axis as i64])],
            );
        }
        let starts = self.init("b", |n| make_i64(n, &[1], &[0]));
        let ends = self.init("e", |n| make_i64(n, &[1], &[len as i64]));
        let axes = self.init("a", |n| make_i64(n, &[1], &[axis as i64]));
        self.op("Slice", &[x, &starts, &ends, &axes], vec![])
    }
}

/// Packs a `[rows, b]` grid of int4 values into `[rows, b/2]` bytes: column `j` in the low
/// nibble, column `j + b/2` in the high one.
fn pack_halves(values: &[i8], b: usize) -> Result<Vec<u8>, math::QuantMathError> {
    let half = b / 2;
    let mut seq = Vec::with_capacity(values.len());
    for row in values.chunks(b) {
        for j in 0..half {
            seq.push(row[j]);
            seq.push(row[j + half]);
        }
    }
    math::pack_int4(&seq)
}

/// Moves `axis` to the front: the permuted data and its shape.
fn axis_first(data: &[f32], shape: &[usize], axis: usize) -> (Vec<f32>, Vec<usize>) {
    if axis == 0 {
        return (data.to_vec(), shape.to_vec());
    }
    let outer: usize = shape[..axis].iter().product();
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(data.len());
    for c in 0..n {
        for o in 0..outer {
            let base = (o * n + c) * inner;
            out.extend_from_slice(&data[base..base + inner]);
        }
    }
    let mut s = vec![n];
    s.extend(shape[..axis].iter().copied());
    s.extend(shape[axis + 1..].iter().copied());
    (out, s)
}

/// Rewrites `targets` with block-quantized weights of `bits`.
pub fn apply(
    model: &mut pb::ModelProto,
    origin: &str,
    targets: &[Target],
    bits: Bits,
    block: usize,
    summary: &mut QuantSummary,
) -> Result<(), QuantError> {
    let opset = edgeqa_format::onnx::opset(model).unwrap_or(13);
    let g = graph::graph_mut(model);
    let mut names = Names::of(g);
    let mut done: HashMap<String, String> = HashMap::new();
    let mut shared: HashMap<String, String> = HashMap::new();
    let mut new_inits = Vec::new();
    let mut new_nodes = Vec::new();
    for t in targets {
        let node_err = |reason: String| t.error(origin, reason);
        let pos = t.position(g, origin)?;
        if !done.contains_key(&t.weight) {
            let w = t.float_weight(g, origin)?;
            let (data, permuted) = axis_first(&w.data, &w.shape, t.channel_axis);
            let rows = permuted[0];
            let cols = data.len().checked_div(rows).unwrap_or(0);
            let mut b = block.min(cols).max(1);
            if bits == Bits::Four && b % 2 == 1 {
                // 4-bit blocks pack two values a byte: pad odd rows by one zero.
                b += 1;
            }
            let q = math::quantize_blocks_f16_scales(&data, rows, cols, b, bits)
                .map_err(|e| node_err(format!("weight `{}`: {e}", t.weight)))?;
            let nb = q.padded_cols / b;
            let mut bld = Builder {
                names: &mut names,
                inits: vec![],
                nodes: vec![],
                prefix: format!("wq{}", done.len()),
                opset,
                shared: &mut shared,
            };
            let (data, values) = match bits {
                Bits::Eight => {
                    let qv = bld.init("", |n| make_i8(n, &[rows * nb, b], &q.values));
                    let f = bld.cast_f32(&qv);
                    (qv, f)
                }
                Bits::Four => {
                    let packed = pack_halves(&q.values, b).map_err(|e| node_err(e.to_string()))?;
                    let pv = bld.init("", |name| make_u8(name, &[rows * nb, b / 2], &packed));
                    let f = bld.cast_f32(&pv);
                    let sixteenth = bld.scalar(0.0625);
                    let sixteen = bld.scalar(16.0);
                    let eight = bld.scalar(8.0);
                    let d = bld.op("Mul", &[&f, &sixteenth], vec![]);
                    let hi = bld.op("Floor", &[&d], vec![]);
                    let hi16 = bld.op("Mul", &[&hi, &sixteen], vec![]);
                    let lo = bld.op("Sub", &[&f, &hi16], vec![]);
                    let grid = bld.op("Concat", &[&lo, &hi], vec![attr_int("axis", 1)]);
                    (pv, bld.op("Sub", &[&grid, &eight], vec![]))
                }
            };
            let bits16 = q.scales_f16.clone().unwrap_or_default();
            let scales_f16 = bld.init("s16", |n| make_f16_bits(n, &[rows * nb, 1], &bits16));
            let scales = bld.cast_f32(&scales_f16);
            let deq = bld.op("Mul", &[&values, &scales], vec![]);
            let mut out = deq;
            if q.padded_cols != cols {
                out = bld.reshape(&out, &[rows, q.padded_cols]);
                out = bld.slice(&out, 1, cols);
            }
            out = bld.reshape(&out, &permuted);
            if t.channel_axis != 0 {
                // Inverse of moving the channel axis first.
                let rank = permuted.len();
                let perm: Vec<i64> = (0..rank)
                    .map(|i| {
                        if i < t.channel_axis {
                            i as i64 + 1
                        } else if i == t.channel_axis {
                            0
                        } else {
                            i as i64
                        }
                    })
                    .collect();
                out = bld.op("Transpose", &[&out], vec![attr_ints("perm", &perm)]);
            }
            new_inits.extend(bld.inits);
            new_nodes.extend(bld.nodes);
            summary.weights.push(QuantizedWeight {
                node: t.node.clone(),
                op: t.op.clone(),
                weight: t.weight.clone(),
                format: format!("{}/block{b}", if bits == Bits::Eight { "int8" } else { "int4" }),
                elements: w.len(),
                packed: Some(PackedWeight {
                    value: out.clone(),
                    data,
                    scales: scales_f16,
                    shape: w.shape.clone(),
                    axis: t.channel_axis,
                }),
            });
            done.insert(t.weight.clone(), out);
        }
        g.node[pos].input[t.weight_input] = done[&t.weight].clone();
    }
    g.initializer.extend(new_inits);
    g.node.extend(new_nodes);
    store_rest_as_f16(g, &mut names, summary);
    Ok(())
}

/// Other float weights of at least [`super::REPORT_MIN_ELEMENTS`] elements (positional tables,
/// wide biases) are stored as f16 and widened by a Cast at load: half the bytes, relative error
/// below 2^-11.
pub(super) fn store_rest_as_f16(g: &mut pb::GraphProto, names: &mut Names, summary: &mut QuantSummary) {
    let consumers = graph::consumers(g);
    let mut replaced: Vec<(String, String)> = Vec::new();
    let mut new_inits = Vec::new();
    let mut new_nodes = Vec::new();
    for t in &g.initializer {
        if t.data_type != pb::tensor_proto::DataType::Float as i32
            || graph::element_count(t) < super::REPORT_MIN_ELEMENTS
            || !consumers.contains_key(&t.name)
        {
            continue;
        }
        let Some(w) = graph::tensor_f32(t) else { continue };
        if w.data.iter().any(|v| !v.is_finite() || v.abs() > 65504.0) {
            continue;
        }
        let bits: Vec<u16> = w.data.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
        let h = names.fresh(&format!("{}.f16", t.name));
        let out = names.fresh(&format!("{}.f32", t.name));
        new_inits.push(make_f16_bits(&h, &w.shape, &bits));
        // Wide per-channel scales of int8 weights too: their records now name the f16 tensor.
        for p in summary.weights.iter_mut().filter_map(|w| w.packed.as_mut()) {
            if p.scales == t.name {
                p.scales = h.clone();
            }
        }
        new_nodes.push(node(
            "Cast",
            "",
            &[&h],
            &[&out],
            vec![attr_int("to", pb::tensor_proto::DataType::Float as i32 as i64)],
        ));
        summary.weights.push(QuantizedWeight {
            node: consumers[&t.name].iter().map(|&i| node_label(&g.node[i])).collect::<Vec<_>>().join(","),
            op: consumers[&t.name].first().map(|&i| g.node[i].op_type.clone()).unwrap_or_default(),
            weight: t.name.clone(),
            format: "f16".into(),
            elements: w.len(),
            packed: Some(PackedWeight {
                value: out.clone(),
                data: h.clone(),
                scales: String::new(),
                shape: w.shape.clone(),
                axis: 0,
            }),
        });
        replaced.push((t.name.clone(), out));
    }
    for (from, to) in &replaced {
        for n in g.node.iter_mut() {
            for i in n.input.iter_mut() {
                if i == from {
                    *i = to.clone();
                }
            }
        }
    }
    let stored: std::collections::HashSet<&String> = replaced.iter().map(|(f, _)| f).collect();
    summary
        .kept_float
        .retain(|k| !k.reason.contains("no quantized form") || !stored.iter().any(|s| k.reason.contains(s.as_str())));
    g.initializer.extend(new_inits);
    g.node.extend(new_nodes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_pack_column_j_with_column_j_plus_half() {
        // One row of 4: columns 0,1 low; 2,3 high.
        let packed = pack_halves(&[-8, 7, 0, 1], 4).unwrap();
        assert_eq!(packed, vec![8 << 4, 15 | (9 << 4)]);
    }

    #[test]
    fn axis_first_moves_the_channel_axis() {
        // [2, 3] with axis 1 → [3, 2] (a transpose).
        let (d, s) = axis_first(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], 1);
        assert_eq!(s, vec![3, 2]);
        assert_eq!(d, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        // [2, 2, 2] axis 1.
        let data: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let (d, s) = axis_first(&data, &[2, 2, 2], 1);
        assert_eq!(s, vec![2, 2, 2]);
        assert_eq!(d, vec![0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0]);
    }
}
