//! Translate once: quantized weights taken as the package stores them.
//!
//! The converter records in the manifest where each quantized weight's integers and scales are
//! ([`PackedWeight`]). When the graph computes the weight from them with exactly the sub-graph its
//! format implies, [`Graph::load`](super::Graph::load) keeps the stored integers as a
//! [`StoredWeight`] instead of folding the sub-graph to f32: no f32 copy of the weight is made at
//! load, and a kernel that packs weights (`backend::wgpu::kernels::weights`) takes the integers and
//! scales as they are instead of rediscovering them in f32 values. Any other reader of the weight
//! gets the f32 tensor, computed then by [`StoredWeight::dequantize`], bit for bit what the
//! sub-graph computes.
//!
//! A record the graph does not bear out (another sub-graph, other constants, an intermediate read
//! elsewhere, an unknown format) is not taken: its sub-graph is folded as in any other graph, and
//! the load says why at `debug` level. The graph is what the package means; the record is only
//! where to find it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use edgeqa_format::manifest::{PackedWeight, QuantizedTensor};
use tract_onnx::prelude::{Datum, DatumType, Tensor};

use crate::onnx::pb;

/// The elements of `t` when they are `D`s in plain memory.
pub(crate) fn slice<D: Datum>(t: &Tensor) -> Option<&[D]> {
    t.try_as_plain_ram().ok()?.as_slice::<D>().ok()
}

/// How a stored weight holds its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredForm {
    /// int8 in the weight's own shape, one f32 scale per channel (`int8/channel`).
    Channel8,
    /// `bits` (4 or 8) in rows of blocks of `block` values, one scale per block
    /// (`int8/blockB`, `int4/blockB`).
    Blocks { bits: u32, block: usize },
    /// f16 values in the weight's own shape (`f16`).
    F16,
}

impl StoredForm {
    /// The form a manifest `format` names.
    fn parse(format: &str) -> Option<StoredForm> {
        match format {
            "int8/channel" => Some(StoredForm::Channel8),
            "f16" => Some(StoredForm::F16),
            _ => {
                let (ty, block) = format.split_once("/block")?;
                let block = block.parse::<usize>().ok().filter(|&b| b > 0)?;
                let bits = match ty {
                    "int8" => 8,
                    "int4" if block % 2 == 0 => 4,
                    _ => return None,
                };
                Some(StoredForm::Blocks { bits, block })
            }
        }
    }
}

/// A quantized weight kept as stored. A row is one output channel: the weight with its channel
/// axis moved to the front, the other axes in order.
#[derive(Debug, Clone)]
pub struct StoredWeight {
    /// The float value the graph computes (the sub-graph's output).
    pub value_name: String,
    pub form: StoredForm,
    /// The initializer holding the integers (int8, uint8 nibbles) or f16 values.
    data: Arc<Tensor>,
    /// One scale per channel (`Channel8`) or per block, row by row (`Blocks`); none for `F16`.
    scales: Vec<f32>,
    /// Shape of the float weight.
    pub shape: Vec<usize>,
    /// Its channel axis.
    pub axis: usize,
    /// Channels.
    pub rows: usize,
    /// Values per channel.
    pub cols: usize,
}

/// The stored values, borrowed once per pass over them.
pub enum StoredValues<'a> {
    /// int8 values (`Channel8`, 8-bit `Blocks`).
    I8(&'a [i8]),
    /// Two int4 values per byte (4-bit `Blocks`).
    Nibbles(&'a [u8]),
    /// f16 values (`F16`).
    F16(&'a [half::f16]),
}

impl StoredWeight {
    /// Elements per channel after the channel axis (the stride of a channel step).
    fn inner(&self) -> usize {
        self.shape[self.axis + 1..].iter().product()
    }

    /// The (row, col) of flat index `i` of the float weight.
    pub fn locate(&self, i: usize) -> (usize, usize) {
        let inner = self.inner();
        let span = self.rows * inner;
        let (outer, rest) = (i / span, i % span);
        (rest / inner, outer * inner + rest % inner)
    }

    /// The flat index of (row, col).
    fn flat(&self, row: usize, col: usize) -> usize {
        let inner = self.inner();
        (col / inner * self.rows + row) * inner + col % inner
    }

    /// Blocks per row and the padded row length (`Blocks` only).
    fn blocks(&self, block: usize) -> (usize, usize) {
        let nb = self.cols.div_ceil(block);
        (nb, nb * block)
    }

    /// The stored values (`None` if the initializer is not of the type the form stores: a bug,
    /// [`claim`] checked it).
    pub fn values(&self) -> Option<StoredValues<'_>> {
        match self.form {
            StoredForm::Channel8 | StoredForm::Blocks { bits: 8, .. } => slice::<i8>(&self.data).map(StoredValues::I8),
            StoredForm::Blocks { .. } => slice::<u8>(&self.data).map(StoredValues::Nibbles),
            StoredForm::F16 => slice::<half::f16>(&self.data).map(StoredValues::F16),
        }
    }

    /// The integer at (row, col) (`Channel8`, `Blocks`); 0 for `F16`.
    pub fn int(&self, values: &StoredValues<'_>, row: usize, col: usize) -> i32 {
        match (self.form, values) {
            (StoredForm::Channel8, StoredValues::I8(v)) => v[self.flat(row, col)] as i32,
            (StoredForm::Blocks { block, .. }, StoredValues::I8(v)) => v[row * self.blocks(block).1 + col] as i32,
            (StoredForm::Blocks { block, .. }, StoredValues::Nibbles(v)) => {
                // Column j of a block in the low nibble, j + block/2 in the high one; value + 8.
                let (k, j) = (col / block, col % block);
                let half = block / 2;
                let byte = v[(row * self.blocks(block).0 + k) * half + j % half];
                let nibble = if j < half { byte & 0x0f } else { byte >> 4 };
                nibble as i32 - 8
            }
            _ => 0,
        }
    }

    /// The scale of (row, col) (`Channel8`, `Blocks`); 1 for `F16`.
    pub fn scale(&self, row: usize, col: usize) -> f32 {
        match self.form {
            StoredForm::Channel8 => self.scales[row],
            StoredForm::Blocks { block, .. } => self.scales[row * self.blocks(block).0 + col / block],
            StoredForm::F16 => 1.0,
        }
    }

    /// The scales, one per channel or per block row by row.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The f32 weight, exactly as the graph's dequantizing sub-graph computes it.
    pub fn dequantize(&self) -> Tensor {
        let len = self.rows * self.cols;
        let mut out = Vec::with_capacity(len);
        match self.values() {
            Some(StoredValues::F16(v)) => out.extend(v.iter().map(|h| h.to_f32())),
            Some(values) => out.extend((0..len).map(|i| {
                let (r, c) = self.locate(i);
                self.int(&values, r, c) as f32 * self.scale(r, c)
            })),
            None => out.resize(len, f32::NAN),
        }
        Tensor::from_shape(&self.shape, &out).unwrap_or_else(|_| Tensor::from(f32::NAN))
    }

    /// Bytes held: the stored values and the scales.
    pub fn bytes(&self) -> u64 {
        (self.data.len() * self.data.datum_type().size_of() + self.scales.len() * 4) as u64
    }
}

/// Whether input `slot` of an `op` node may be a [`StoredWeight`]: the weights the wgpu kernels
/// pack (MatMul/Gemm B, Conv W, a Gather table). Any other reader gets f32 values.
pub fn takes_stored(op: &str, slot: usize) -> bool {
    matches!((op, slot), ("MatMul" | "Gemm" | "Conv", 1) | ("Gather", 0))
}

/// A record the graph bears out: the nodes of its sub-graph, and the weight.
#[derive(Debug)]
pub(super) struct Claim {
    pub nodes: Vec<usize>,
    pub weight: StoredWeight,
}

/// The graph's nodes by the values they write and read.
pub(super) struct Wiring<'a> {
    g: &'a pb::GraphProto,
    producer: HashMap<&'a str, usize>,
    readers: HashMap<&'a str, Vec<usize>>,
    outputs: HashSet<&'a str>,
}

impl<'a> Wiring<'a> {
    pub fn new(g: &'a pb::GraphProto) -> Wiring<'a> {
        let mut producer = HashMap::new();
        let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (ix, n) in g.node.iter().enumerate() {
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                producer.insert(o.as_str(), ix);
            }
            for i in n.input.iter().filter(|i| !i.is_empty()) {
                readers.entry(i.as_str()).or_default().push(ix);
            }
        }
        Wiring { g, producer, readers, outputs: g.output.iter().map(|o| o.name.as_str()).collect() }
    }
}

/// Walks a sub-graph back from the weight, checking each node against the expected pattern.
struct Walk<'w, 'a> {
    wiring: &'w Wiring<'a>,
    constant: &'w dyn Fn(&str) -> Option<Arc<Tensor>>,
    nodes: Vec<usize>,
}

impl<'a> Walk<'_, 'a> {
    /// The node writing `value`: an `op` of the default domain with `inputs` inputs, one output
    /// and no attribute outside `attrs`.
    fn node(&mut self, value: &str, op: &str, inputs: &[usize], attrs: &[&str]) -> Result<&'a pb::NodeProto, String> {
        let ix = *self.wiring.producer.get(value).ok_or_else(|| format!("`{value}` is written by no node"))?;
        let n = &self.wiring.g.node[ix];
        if n.op_type != op || !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(format!("`{value}` is written by {}, not {op}", n.op_type));
        }
        if !inputs.contains(&n.input.len()) || n.input.iter().any(|i| i.is_empty()) || n.output.len() != 1 {
            return Err(format!("{op} writing `{value}` has other inputs or outputs"));
        }
        if let Some(a) = n.attribute.iter().find(|a| !attrs.contains(&a.name.as_str())) {
            return Err(format!("{op} writing `{value}` has attribute `{}`", a.name));
        }
        self.nodes.push(ix);
        Ok(n)
    }

    /// A `Cast` to f32 writing `value`, and its input.
    fn cast_f32(&mut self, value: &str) -> Result<&'a str, String> {
        let n = self.node(value, "Cast", &[1], &["to"])?;
        if int_attr(n, "to") != Some(pb::tensor_proto::DataType::Float as i64) {
            return Err(format!("Cast writing `{value}` is not to float"));
        }
        Ok(&n.input[0])
    }

    /// A `Reshape` of `value` to `dims`, and its input.
    fn reshape(&mut self, value: &str, dims: &[usize]) -> Result<&'a str, String> {
        let n = self.node(value, "Reshape", &[2], &[])?;
        self.ints(&n.input[1], dims)?;
        Ok(&n.input[0])
    }

    /// The initializer `name` of type `dt` and shape `shape`.
    fn init(&self, name: &str, dt: DatumType, shape: &[usize]) -> Result<Arc<Tensor>, String> {
        let t = (self.constant)(name).ok_or_else(|| format!("`{name}` is not an initializer"))?;
        if t.datum_type() != dt || t.shape() != shape {
            return Err(format!("`{name}` is {:?} {:?}, not {dt:?} {shape:?}", t.datum_type(), t.shape()));
        }
        Ok(t)
    }

    /// The constant `name` holds the integers `want`.
    fn ints(&self, name: &str, want: &[usize]) -> Result<(), String> {
        let t = (self.constant)(name).ok_or_else(|| format!("`{name}` is not an initializer"))?;
        let ok = t.datum_type() == DatumType::I64
            && t.rank() == 1
            && slice::<i64>(&t).is_some_and(|v| v.iter().copied().eq(want.iter().map(|&d| d as i64)));
        ok.then_some(()).ok_or_else(|| format!("`{name}` is not {want:?}"))
    }

    /// The constant `name` is the f32 scalar `v`.
    fn scalar(&self, name: &str, v: f32) -> Result<(), String> {
        let t = (self.constant)(name).ok_or_else(|| format!("`{name}` is not an initializer"))?;
        let ok = t.datum_type() == DatumType::F32 && t.len() == 1 && slice::<f32>(&t).is_some_and(|s| s[0] == v);
        ok.then_some(()).ok_or_else(|| format!("`{name}` is not {v}"))
    }
}

fn int_attr(n: &pb::NodeProto, name: &str) -> Option<i64> {
    n.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

fn ints_attr(n: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    n.attribute.iter().find(|a| a.name == name).map(|a| a.ints.clone())
}

/// Checks `record` against the graph and returns its sub-graph and weight, or why it is not taken.
/// `constant` gives an initializer by name.
pub(super) fn claim(
    wiring: &Wiring<'_>,
    opset: i64,
    record: &QuantizedTensor,
    constant: &dyn Fn(&str) -> Option<Arc<Tensor>>,
) -> Result<Claim, String> {
    let p: &PackedWeight = record.packed.as_ref().ok_or("no stored form is recorded")?;
    let form = StoredForm::parse(&record.format).ok_or_else(|| format!("format `{}` is not known", record.format))?;
    let rank = p.shape.len();
    if p.axis >= rank.max(1) || (rank == 0 && form != StoredForm::F16) {
        return Err(format!("axis {} does not fit shape {:?}", p.axis, p.shape));
    }
    let len = p.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("the shape overflows")?;
    let rows = p.shape.get(p.axis).copied().unwrap_or(1);
    if len == 0 {
        return Err("the weight is empty".into());
    }
    let cols = len / rows;
    let mut walk = Walk { wiring, constant, nodes: Vec::new() };
    let (data, scales) = match form {
        StoredForm::F16 => {
            let input = walk.cast_f32(&p.value)?;
            if input != p.data {
                return Err(format!("the Cast reads `{input}`, not `{}`", p.data));
            }
            (walk.init(&p.data, DatumType::F16, &p.shape)?, Vec::new())
        }
        StoredForm::Channel8 => {
            if opset < 13 {
                return Err(format!("a per-channel DequantizeLinear needs opset 13, the graph has {opset}"));
            }
            let n = walk.node(&p.value, "DequantizeLinear", &[2, 3], &["axis"])?;
            let axis = int_attr(n, "axis").unwrap_or(1);
            let axis = if axis < 0 { axis + rank as i64 } else { axis };
            if axis != p.axis as i64 || n.input[0] != p.data {
                return Err("the DequantizeLinear reads other integers or another axis".into());
            }
            let data = walk.init(&p.data, DatumType::I8, &p.shape)?;
            // The scales: f32, or f16 widened by a Cast.
            let scales = if n.input[1] == p.scales {
                let s = walk.init(&p.scales, DatumType::F32, &[rows])?;
                slice::<f32>(&s).ok_or("the scales are not plain f32")?.to_vec()
            } else {
                if walk.cast_f32(&n.input[1])? != p.scales {
                    return Err(format!("the DequantizeLinear's scales are not `{}`", p.scales));
                }
                let s = walk.init(&p.scales, DatumType::F16, &[rows])?;
                slice::<half::f16>(&s).ok_or("the scales are not plain f16")?.iter().map(|h| h.to_f32()).collect()
            };
            if let Some(zp) = n.input.get(2) {
                let t = (walk.constant)(zp).ok_or_else(|| format!("`{zp}` is not an initializer"))?;
                let zeros = t.datum_type() == DatumType::I8
                    && (t.shape() == [rows] || t.shape().is_empty())
                    && slice::<i8>(&t).is_some_and(|v| v.iter().all(|&z| z == 0));
                if !zeros {
                    return Err(format!("zero point `{zp}` is not int8 zeros"));
                }
            }
            (data, scales)
        }
        StoredForm::Blocks { bits, block } => {
            let nb = cols.div_ceil(block);
            let padded = nb * block;
            let mut x = p.value.as_str();
            let mut permuted = vec![rows];
            permuted.extend(p.shape[..p.axis].iter().chain(&p.shape[p.axis + 1..]));
            if p.axis != 0 {
                let n = walk.node(x, "Transpose", &[1], &["perm"])?;
                let perm: Vec<i64> = (0..rank as i64)
                    .map(|i| {
                        if i < p.axis as i64 {
                            i + 1
                        } else if i == p.axis as i64 {
                            0
                        } else {
                            i
                        }
                    })
                    .collect();
                if ints_attr(n, "perm").as_deref() != Some(&perm[..]) {
                    return Err("the Transpose does not move the channel axis back".into());
                }
                x = &n.input[0];
            }
            x = walk.reshape(x, &permuted)?;
            if padded != cols {
                let slice = if opset < 10 {
                    let n = walk.node(x, "Slice", &[1], &["starts", "ends", "axes"])?;
                    let ok = ints_attr(n, "starts") == Some(vec![0])
                        && ints_attr(n, "ends") == Some(vec![cols as i64])
                        && ints_attr(n, "axes") == Some(vec![1]);
                    ok.then_some(n).ok_or("the Slice does not cut the padding")?
                } else {
                    let n = walk.node(x, "Slice", &[4], &[])?;
                    walk.ints(&n.input[1], &[0])?;
                    walk.ints(&n.input[2], &[cols])?;
                    walk.ints(&n.input[3], &[1])?;
                    n
                };
                x = walk.reshape(&slice.input[0], &[rows, padded])?;
            }
            let mul = walk.node(x, "Mul", &[2], &[])?;
            let scales_in = walk.cast_f32(&mul.input[1])?;
            if scales_in != p.scales {
                return Err(format!("the scales are `{scales_in}`, not `{}`", p.scales));
            }
            let s = walk.init(&p.scales, DatumType::F16, &[rows * nb, 1])?;
            let scales: Vec<f32> =
                slice::<half::f16>(&s).ok_or("the scales are not plain f16")?.iter().map(|h| h.to_f32()).collect();
            let values = &mul.input[0];
            let data_in = if bits == 8 {
                walk.cast_f32(values)?
            } else {
                // Sub(Concat(lo, hi), 8); hi = Floor(f · 1/16); lo = f − 16·hi; f = Cast(bytes).
                let sub = walk.node(values, "Sub", &[2], &[])?;
                walk.scalar(&sub.input[1], 8.0)?;
                let concat = walk.node(&sub.input[0], "Concat", &[2], &["axis"])?;
                if int_attr(concat, "axis") != Some(1) {
                    return Err("the Concat is not along axis 1".into());
                }
                let lo = walk.node(&concat.input[0], "Sub", &[2], &[])?;
                let hi16 = walk.node(&lo.input[1], "Mul", &[2], &[])?;
                walk.scalar(&hi16.input[1], 16.0)?;
                if hi16.input[0] != concat.input[1] {
                    return Err("the high nibbles are not the Concat's".into());
                }
                let floor = walk.node(&concat.input[1], "Floor", &[1], &[])?;
                let d = walk.node(&floor.input[0], "Mul", &[2], &[])?;
                walk.scalar(&d.input[1], 0.0625)?;
                if d.input[0] != lo.input[0] {
                    return Err("the nibbles are not split from one byte tensor".into());
                }
                walk.cast_f32(&lo.input[0])?
            };
            if data_in != p.data {
                return Err(format!("the integers are `{data_in}`, not `{}`", p.data));
            }
            let data = if bits == 8 {
                walk.init(&p.data, DatumType::I8, &[rows * nb, block])?
            } else {
                walk.init(&p.data, DatumType::U8, &[rows * nb, block / 2])?
            };
            (data, scales)
        }
    };
    // Every value of the sub-graph but the weight is read inside it only.
    let inside: HashSet<usize> = walk.nodes.iter().copied().collect();
    for &ix in &walk.nodes {
        let out = wiring.g.node[ix].output[0].as_str();
        if out == p.value {
            continue;
        }
        let read_outside = wiring.readers.get(out).is_some_and(|r| r.iter().any(|i| !inside.contains(i)));
        if read_outside || wiring.outputs.contains(out) {
            return Err(format!("`{out}` is read outside the dequantizing sub-graph"));
        }
    }
    let mut nodes = walk.nodes;
    nodes.sort_unstable();
    nodes.dedup();
    let weight = StoredWeight {
        value_name: p.value.clone(),
        form,
        data,
        scales,
        shape: p.shape.clone(),
        axis: p.axis,
        rows,
        cols,
    };
    Ok(Claim { nodes, weight })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weight(form: StoredForm, data: Tensor, scales: Vec<f32>, shape: &[usize], axis: usize) -> StoredWeight {
        let rows = shape[axis];
        let cols = shape.iter().product::<usize>() / rows;
        let value_name = "w".to_string();
        StoredWeight { value_name, form, data: Arc::new(data), scales, shape: shape.to_vec(), axis, rows, cols }
    }

    #[test]
    fn rows_are_channels_with_the_other_axes_in_order() {
        // [2, 3, 2] with channel axis 1: row c holds (o, c, j) for o, j in order.
        let w = weight(
            StoredForm::Channel8,
            Tensor::from_shape(&[2, 3, 2], &[0i8; 12]).unwrap(),
            vec![1.0; 3],
            &[2, 3, 2],
            1,
        );
        for i in 0..12 {
            let (r, c) = w.locate(i);
            assert_eq!(r, i / 2 % 3, "index {i}");
            assert_eq!(w.flat(r, c), i, "index {i}");
        }
    }

    #[test]
    fn channel_int8_dequantizes_per_channel() {
        // [2, 3] weight, channel axis 1 (a MatMul's B): scales per column.
        let q: Vec<i8> = vec![1, -2, 3, 4, 5, -6];
        let w =
            weight(StoredForm::Channel8, Tensor::from_shape(&[2, 3], &q).unwrap(), vec![0.5, 2.0, 0.25], &[2, 3], 1);
        let t = w.dequantize();
        assert_eq!(slice::<f32>(&t).unwrap(), &[0.5, -4.0, 0.75, 2.0, 10.0, -1.5]);
    }

    #[test]
    fn int4_blocks_read_low_then_high_nibbles() {
        // One row of 5 values in one block of 6 (padded): bytes hold (j, j + 3) as value + 8.
        let q = [-8i32, -1, 0, 7, 3, 0];
        let bytes: Vec<u8> = (0..3).map(|j| ((q[j] + 8) | ((q[j + 3] + 8) << 4)) as u8).collect();
        let w = weight(
            StoredForm::Blocks { bits: 4, block: 6 },
            Tensor::from_shape(&[1, 3], &bytes).unwrap(),
            vec![0.5],
            &[1, 5],
            0,
        );
        let values = w.values().unwrap();
        let ints: Vec<i32> = (0..5).map(|c| w.int(&values, 0, c)).collect();
        assert_eq!(ints, &q[..5]);
        assert_eq!(slice::<f32>(&w.dequantize()).unwrap(), &[-4.0, -0.5, 0.0, 3.5, 1.5]);
    }

    /// `x · DequantizeLinear(q, s, zp, axis 1)` at `opset`, and the record of its weight.
    fn per_channel(opset: i64, zp: [i8; 3]) -> (pb::ModelProto, QuantizedTensor) {
        use crate::onnx_builder::{GraphBuilder, attr_int, make_f32, make_i8, node};
        let mut b = GraphBuilder::new("m", opset);
        let x = b.input_f32("x", &[crate::onnx::Dim::Fixed(1), crate::onnx::Dim::Fixed(2)]);
        b.initializer(make_i8("q", &[2, 3], &[1, -2, 3, 4, 5, -6]));
        b.initializer(make_f32("s", &[3], &[0.5, 2.0, 0.25]));
        b.initializer(make_i8("zp", &[3], &zp));
        b.push(node("DequantizeLinear", "dq", &["q", "s", "zp"], &["w"], vec![attr_int("axis", 1)]));
        b.push(node("MatMul", "mm", &[&x, "w"], &["y"], vec![]));
        b.output("y", "y");
        let packed =
            PackedWeight { value: "w".into(), data: "q".into(), scales: "s".into(), shape: vec![2, 3], axis: 1 };
        let record = QuantizedTensor {
            stage: "model".into(),
            tensor: "W".into(),
            format: "int8/channel".into(),
            packed: Some(packed),
        };
        (b.into_model(), record)
    }

    fn try_claim(model: &pb::ModelProto, record: &QuantizedTensor) -> Result<Claim, String> {
        let g = model.graph.as_ref().unwrap();
        let provider = tract_onnx::data_resolver::default();
        let inits: HashMap<String, Arc<Tensor>> = g
            .initializer
            .iter()
            .map(|t| (t.name.clone(), Arc::new(tract_onnx::tensor::load_tensor(&*provider, t, None).unwrap())))
            .collect();
        let opset = crate::onnx::opset(model).unwrap();
        claim(&Wiring::new(g), opset, record, &|n: &str| inits.get(n).cloned())
    }

    #[test]
    fn a_record_is_taken_only_where_the_graph_bears_it_out() {
        let (model, record) = per_channel(13, [0; 3]);
        let c = try_claim(&model, &record).expect("the record holds");
        assert_eq!(c.nodes, vec![0]);
        assert_eq!(slice::<f32>(&c.weight.dequantize()).unwrap(), &[0.5, -4.0, 0.75, 2.0, 10.0, -1.5]);
        // A zero point that is not zero, another axis, another scale tensor, an opset without
        // per-channel DequantizeLinear, another format: not taken.
        let (model_zp, _) = per_channel(13, [0, 1, 0]);
        assert!(try_claim(&model_zp, &record).unwrap_err().contains("zero point"));
        let mut axis0 = record.clone();
        axis0.packed.as_mut().unwrap().axis = 0;
        assert!(try_claim(&model, &axis0).is_err());
        let mut scales = record.clone();
        scales.packed.as_mut().unwrap().scales = "zp".into();
        assert!(try_claim(&model, &scales).is_err());
        let (model11, _) = per_channel(11, [0; 3]);
        assert!(try_claim(&model11, &record).unwrap_err().contains("opset 13"));
        let mut w4 = record.clone();
        w4.format = "int4/block32".into();
        assert!(try_claim(&model, &w4).is_err());
    }

    #[test]
    fn formats_parse_or_are_refused() {
        assert_eq!(StoredForm::parse("int4/block32"), Some(StoredForm::Blocks { bits: 4, block: 32 }));
        assert_eq!(StoredForm::parse("int8/block7"), Some(StoredForm::Blocks { bits: 8, block: 7 }));
        for bad in ["int4/block7", "int4/block0", "int2/block32", "uint8/tensor", "int8/blockx"] {
            assert_eq!(StoredForm::parse(bad), None, "{bad}");
        }
    }
}
