//! Quantized weights on the device. A constant weight matrix (MatMul/Gemm B, Conv W) whose values
//! are exactly `q · scale` with small integers `q` — what the converter's `w4`, `w8` and `int8`
//! schemes produce once the runtime folds their dequantizing sub-graphs — is stored packed (8 or 4
//! bits per value, one f32 scale per block of a row) and dequantized in the shader as it is read.
//! A matrix that is not such integers but whose every value is an f16 (the float tables a
//! quantized package stores as f16, or an f16 model) is stored as f16: half the bytes, widened
//! to f32 as it is read — natively where the adapter has `shader-f16`, with `unpack2x16float`
//! elsewhere. Nothing is approximated: a matrix is packed only when every value is reproduced
//! bit for bit, otherwise it stays f32.
//!
//! A kernel compiles its WGSL behind one of `weights_f32.wgsl`, `weights_packed.wgsl`,
//! `weights_f16.wgsl` and `weights_f16_words.wgsl` (each defines the weight binding 2 and
//! `fn weight(i, row, col)`; [`weight_shaders!`] makes the four), and [`bind`] says which.
//!
//! Buffer layout (u32 words): a header `[bits, padded cols, block, blocks per row, scale
//! offset, 0, 0, 0]`, the values row by row (rows padded to whole blocks; 8 int8 or 4 … 8 int4
//! per word, lowest bits first, two's complement; or 2 f16 per word), then the f32 scales,
//! `[rows, blocks]` (none for f16). For f16, header word 5 repeats the padded column count as two
//! f16 integers (`weights_f16.wgsl` cannot read a u32 from an f16 array).

use tract_onnx::prelude::DatumType;

use super::{Binding, Build, Shader};
use crate::graph::stored::StoredValues;
use crate::graph::{StoredForm, StoredWeight, Value, ValueId};

/// How [`bind`] stored a weight matrix, and so which WGSL header reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// The f32 value itself (`weights_f32.wgsl`).
    F32,
    /// int4 / int8 with scales (`weights_packed.wgsl`).
    Packed,
    /// f16 (`weights_f16.wgsl`, or `weights_f16_words.wgsl` without `shader-f16`).
    F16,
}

/// One kernel's WGSL behind each weight header.
pub(crate) struct WeightShaders {
    pub f32: Shader<'static>,
    pub packed: Shader<'static>,
    pub f16: Shader<'static>,
    pub f16_words: Shader<'static>,
}

impl WeightShaders {
    /// The build for weights stored as `form` on a device with or without `shader-f16`.
    pub fn pick(&self, form: Form, shader_f16: bool) -> &Shader<'static> {
        match form {
            Form::F32 => &self.f32,
            Form::Packed => &self.packed,
            Form::F16 if shader_f16 => &self.f16,
            Form::F16 => &self.f16_words,
        }
    }
}

/// [`WeightShaders`] of a kernel named `$name` whose WGSL is `$file` (beside this file; more
/// files are appended in order).
macro_rules! weight_shaders {
    ($name:literal, $($file:literal),+) => {
        $crate::backend::wgpu::kernels::weights::WeightShaders {
            f32: Shader {
                name: $name,
                source: concat!(include_str!("weights_f32.wgsl"), $(include_str!($file)),+),
            },
            packed: Shader {
                name: concat!($name, "_packed"),
                source: concat!(include_str!("weights_packed.wgsl"), $(include_str!($file)),+),
            },
            f16: Shader {
                name: concat!($name, "_f16"),
                source: concat!(include_str!("weights_f16.wgsl"), $(include_str!($file)),+),
            },
            f16_words: Shader {
                name: concat!($name, "_f16_words"),
                source: concat!(include_str!("weights_f16_words.wgsl"), $(include_str!($file)),+),
            },
        }
    };
}
pub(crate) use weight_shaders;

/// Header words before the values.
const HEADER: usize = 8;
/// Smallest matrix worth packing (smaller ones stay f32: the header and scales would dominate).
const MIN_VALUES: usize = 1024;

/// (bits, block) layouts tried, smallest first; a block of 0 means one block per row
/// (per-channel int8, the converter's `int8` scheme).
/// 16 bits is f16 (no scales), tried last.
const LAYOUTS: &[(u32, usize)] = &[(4, 32), (4, 64), (4, 128), (8, 32), (8, 64), (8, 128), (8, 0), (16, 0)];

/// A packed weight matrix.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Packed {
    pub bits: u32,
    pub block: usize,
    pub words: Vec<u32>,
}

/// The largest magnitude of a `bits`-bit symmetric value.
fn qmax(bits: u32) -> f32 {
    ((1 << (bits - 1)) - 1) as f32
}

/// The integers of `values` at `scale` when every value is exactly `q · scale` with
/// `|q| ≤ qmax`.
fn exact(values: &[f32], scale: f32, qmax: f32) -> Option<Vec<i32>> {
    values
        .iter()
        .map(|&w| {
            let q = (w / scale).round();
            (q.abs() <= qmax && q * scale == w).then_some(q as i32)
        })
        .collect()
}

/// Integers and scale of one block: the scale is the block's largest magnitude over `qmax`, or
/// a neighbouring float (a per-channel f32 scale times 127 may not divide back exactly).
fn block(values: &[f32], qmax: f32) -> Option<(Vec<i32>, f32)> {
    if values.iter().any(|w| !w.is_finite()) {
        return None;
    }
    let absmax = values.iter().fold(0f32, |m, &w| m.max(w.abs()));
    if absmax == 0.0 {
        return Some((vec![0; values.len()], 1.0));
    }
    let s = absmax / qmax;
    let mut candidates = [s, s, s, s, s];
    let (mut up, mut down) = (s, s);
    for k in 0..2 {
        up = f32::from_bits(up.to_bits() + 1);
        down = f32::from_bits(down.to_bits() - 1);
        candidates[1 + 2 * k] = up;
        candidates[2 + 2 * k] = down;
    }
    candidates.iter().find_map(|&s| Some((exact(values, s, qmax)?, s)))
}

/// Packs a `rows × cols` matrix read through `at(row, col)`, or `None` when no layout holds its
/// values exactly (or it is too small to be worth it).
pub(crate) fn pack(rows: usize, cols: usize, at: &dyn Fn(usize, usize) -> f32) -> Option<Packed> {
    pack_as(LAYOUTS, rows, cols, at)
}

/// [`pack`] with only the per-channel int8 layout, whose rows start on word boundaries: what
/// the int8×int8 product (`matmul_int8.wgsl`) reads four values at a time.
pub(crate) fn pack_int8(rows: usize, cols: usize, at: &dyn Fn(usize, usize) -> f32) -> Option<Packed> {
    pack_as(&[(8, 0)], rows, cols, at)
}

fn pack_as(layouts: &[(u32, usize)], rows: usize, cols: usize, at: &dyn Fn(usize, usize) -> f32) -> Option<Packed> {
    if rows * cols < MIN_VALUES || cols == 0 {
        return None;
    }
    let mut row = Vec::with_capacity(cols);
    'layout: for &(bits, block_len) in layouts {
        let Some(mut m) = Matrix::new(bits, block_len, rows, cols) else { continue };
        for r in 0..rows {
            // Rows are read as they are checked: f32 weights fail in their first block.
            row.clear();
            row.extend((0..cols).map(|c| at(r, c)));
            if bits == 16 {
                if !row.iter().all(|&w| w.is_finite() && half::f16::from_f32(w).to_f32().to_bits() == w.to_bits()) {
                    continue 'layout;
                }
                for (c, &w) in row.iter().enumerate() {
                    m.put(r, c, half::f16::from_f32(w).to_bits() as i32);
                }
                continue;
            }
            for (k, chunk) in row.chunks(m.block).enumerate() {
                let Some((ints, s)) = block(chunk, qmax(bits)) else { continue 'layout };
                for (j, q) in ints.into_iter().enumerate() {
                    m.put(r, k * m.block + j, q);
                }
                m.scale(r, k, s);
            }
        }
        return Some(m.into_packed());
    }
    None
}

/// The words of a packed matrix as they are filled in.
struct Matrix {
    bits: u32,
    block: usize,
    padded: usize,
    blocks: usize,
    scales_at: usize,
    words: Vec<u32>,
}

impl Matrix {
    /// An all-zero `rows × cols` matrix of `bits`-bit values in blocks of `block_len` (0: one
    /// block per row, padded to whole words so that every row starts on a word); `None` when
    /// the f16 header cannot hold the column count.
    fn new(bits: u32, block_len: usize, rows: usize, cols: usize) -> Option<Matrix> {
        let per_word = (32 / bits) as usize;
        let block = if block_len == 0 { cols.next_multiple_of(per_word) } else { block_len };
        let blocks = cols.div_ceil(block);
        let padded = blocks * block;
        let values = (rows * padded).div_ceil(per_word);
        let scales = if bits == 16 { 0 } else { rows * blocks };
        let mut words = vec![0u32; HEADER + values + scales];
        words[..5].copy_from_slice(&[bits, padded as u32, block as u32, blocks as u32, (HEADER + values) as u32]);
        if bits == 16 {
            // weights_f16.wgsl reads the column count as two f16 integers.
            let (lo, hi) = ((padded % 2048) as f32, (padded / 2048) as f32);
            if hi > 2047.0 {
                return None;
            }
            let h = |v: f32| half::f16::from_f32(v).to_bits() as u32;
            words[5] = h(lo) | h(hi) << 16;
        }
        Some(Matrix { bits, block, padded, blocks, scales_at: HEADER + values, words })
    }

    /// Sets (row, col) to the integer (or f16 bits) `v`, once.
    fn put(&mut self, row: usize, col: usize, v: i32) {
        let e = row * self.padded + col;
        let per_word = (32 / self.bits) as usize;
        let mask = ((1u64 << self.bits) - 1) as u32;
        self.words[HEADER + e / per_word] |= (v as u32 & mask) << (self.bits as usize * (e % per_word));
    }

    /// Sets the scale of block `k` of `row`.
    fn scale(&mut self, row: usize, k: usize, s: f32) {
        self.words[self.scales_at + row * self.blocks + k] = s.to_bits();
    }

    fn into_packed(self) -> Packed {
        Packed { bits: self.bits, block: self.block, words: self.words }
    }
}

/// A stored weight ([`StoredWeight`]) packed as the package stores it, for a kernel that reads
/// it as `rows × cols` with element (row, col) at flat index `index(row, col)`: its integers and
/// scales as they are, never an f32 value. `None` when the kernel's rows are not the weight's
/// channels and its columns not their values in order (the caller then dequantizes and packs
/// like any f32 constant), when it is too small to be worth packing, or, for `int8_rows` (the
/// int8×int8 product's per-channel layout), when it is not per-channel int8.
fn pack_stored(
    s: &StoredWeight,
    rows: usize,
    cols: usize,
    index: &dyn Fn(usize, usize) -> usize,
    int8_rows: bool,
) -> Option<Packed> {
    if rows != s.rows || cols != s.cols || rows * cols < MIN_VALUES {
        return None;
    }
    let (bits, block_len) = match s.form {
        StoredForm::Channel8 => (8, 0),
        StoredForm::Blocks { bits, block } if !int8_rows => (bits, block),
        StoredForm::F16 if !int8_rows => (16, 0),
        _ => return None,
    };
    let values = s.values()?;
    let mut m = Matrix::new(bits, block_len, rows, cols)?;
    for r in 0..rows {
        for c in 0..cols {
            let i = index(r, c);
            if s.locate(i) != (r, c) {
                return None;
            }
            let q = match &values {
                StoredValues::F16(v) => v[i].to_bits() as i32,
                v => s.int(v, r, c),
            };
            m.put(r, c, q);
        }
        if bits != 16 {
            for k in 0..m.blocks {
                m.scale(r, k, s.scale(r, k * m.block));
            }
        }
    }
    Some(m.into_packed())
}

impl Packed {
    /// The sum of each row's integers (per-channel int8: what the int8×int8 product needs to
    /// move an activation's zero point out of the inner loop).
    pub fn row_sums(&self) -> Vec<i32> {
        let w = &self.words;
        let (bits, padded) = (w[0], w[1] as usize);
        let per_word = (32 / bits) as usize;
        let rows = (w[4] as usize - HEADER) * per_word / padded;
        (0..rows)
            .map(|r| {
                (0..padded)
                    .map(|c| {
                        let e = r * padded + c;
                        let shift = 32 - bits - bits * (e % per_word) as u32;
                        ((w[HEADER + e / per_word] << shift) as i32) >> (32 - bits)
                    })
                    .sum()
            })
            .collect()
    }
}

/// The binding of weight value `id` seen as a `rows × cols` matrix whose element (row, col) is
/// at flat index `index(row, col)`: packed when it is a stored quantized weight (as stored) or an
/// f32 constant that [`pack`] takes (counted in the stage's weight bytes), else the value itself;
/// with the form it is in.
pub(crate) fn bind(
    b: &mut Build<'_>,
    id: ValueId,
    rows: usize,
    cols: usize,
    index: &dyn Fn(usize, usize) -> usize,
) -> (Binding, Form) {
    let value = &b.graph.values[id];
    let packed = value
        .stored
        .as_ref()
        .and_then(|s| pack_stored(s, rows, cols, index, false))
        .or_else(|| with_f32(value, |v| pack(rows, cols, &|r, c| v[index(r, c)])));
    match packed {
        Some(p) => {
            let form = if p.bits == 16 { Form::F16 } else { Form::Packed };
            log::debug!("{}: weights stored as {form:?} ({} bits, blocks of {})", b.node.label(), p.bits, p.block);
            *b.weight_bytes += (p.words.len() * 4) as u64;
            (b.upload(&format!("{} packed weights", b.node.name), &p.words), form)
        }
        None => (Binding::Value(id), Form::F32),
    }
}

/// Weight value `id` as a `rows × cols` matrix (element (row, col) at `index(row, col)`) packed
/// per channel as int8 for the int8×int8 product, when it is an f32 constant that holds such
/// values exactly.
pub(crate) fn int8_matrix(
    graph: &crate::graph::Graph,
    id: ValueId,
    rows: usize,
    cols: usize,
    index: &dyn Fn(usize, usize) -> usize,
) -> Option<Packed> {
    let value = &graph.values[id];
    value
        .stored
        .as_ref()
        .and_then(|s| pack_stored(s, rows, cols, index, true))
        .or_else(|| with_f32(value, |v| pack_int8(rows, cols, &|r, c| v[index(r, c)])))
}

/// `f` of a constant's f32 values: an f32 constant's own, or a stored weight's dequantized (when
/// [`pack_stored`] did not take it: small, or read in another order than by channel). `None` for
/// anything else.
fn with_f32<R>(value: &Value, f: impl FnOnce(&[f32]) -> Option<R>) -> Option<R> {
    if let Some(s) = &value.stored {
        log::debug!("weight `{}` not packed as stored: dequantized", value.name);
        let t = s.dequantize();
        return f(crate::graph::stored::slice::<f32>(&t)?);
    }
    let t = value.constant.as_ref().filter(|t| t.datum_type() == DatumType::F32)?;
    let view = t.to_plain_array_view::<f32>().ok()?;
    f(view.as_slice()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `weights_packed.wgsl` computes, on the host.
    fn unpack(p: &Packed, row: usize, col: usize) -> f32 {
        let w = &p.words;
        let (bits, padded, block, blocks, scales) = (w[0], w[1] as usize, w[2] as usize, w[3] as usize, w[4] as usize);
        let e = row * padded + col;
        let per_word = (32 / bits) as usize;
        let word = w[HEADER + e / per_word];
        if bits == 16 {
            // weights_f16_words.wgsl
            return half::f16::from_bits((word >> (16 * (e % 2))) as u16).to_f32();
        }
        let shift = 32 - bits - bits * (e % per_word) as u32;
        let q = ((word << shift) as i32) >> (32 - bits);
        q as f32 * f32::from_bits(w[scales + row * blocks + col / block])
    }

    fn roundtrip(rows: usize, cols: usize, m: &[f32]) -> Packed {
        let p = pack(rows, cols, &|r, c| m[r * cols + c]).expect("packable");
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(unpack(&p, r, c).to_bits(), m[r * cols + c].to_bits(), "({r}, {c}) of {p:?}");
            }
        }
        p
    }

    proptest! {
        /// The converter's w4 / w8 blocks (f16 scales) come back bit for bit, as int4 / int8.
        #[test]
        fn weight_only_blocks_pack_exactly(
            bits in prop_oneof![Just(4u32), Just(8u32)],
            rows in 1usize..40,
            cols in 30usize..100,
            seed in any::<u64>(),
        ) {
            let rows = rows.max(1024usize.div_ceil(cols));
            let mut state = crate::synthetic::Synthetic::new(seed);
            let mut next = move || state.next_u64();
            let qm = qmax(bits) as i64;
            let mut m = Vec::new();
            for r in 0..rows {
                for chunk in 0..cols.div_ceil(32) {
                    // An f16-precision scale (11 significant bits), as the converter stores them.
                    let scale = f32::from_bits(((next() % 1000 + 1) as f32 * 1e-4).to_bits() & !0x1fff);
                    let len = 32.min(cols - chunk * 32);
                    // Every block reaches ±qmax, as the converter's absmax / qmax scales make it.
                    for k in 0..len {
                        let q = if k == (r + chunk) % len { qm } else { (next() % (2 * qm as u64 + 1)) as i64 - qm };
                        m.push(q as f32 * scale);
                    }
                }
            }
            let p = roundtrip(rows, cols, &m);
            prop_assert_eq!(p.bits, bits);
        }

        /// Per-channel int8 with arbitrary f32 scales (the converter's int8 weights).
        #[test]
        fn per_channel_int8_packs_exactly(rows in 8usize..64, cols in 128usize..300, seed in any::<u64>()) {
            let mut state = crate::synthetic::Synthetic::new(seed);
            let mut next = move || state.next_u64();
            let mut m = Vec::new();
            for r in 0..rows {
                let scale = f32::from_bits(0x3a00_0000 + (next() % 0x0100_0000) as u32);
                for c in 0..cols {
                    let q = if c == r % cols { 127 } else { (next() % 255) as i64 - 127 };
                    m.push(q as f32 * scale);
                }
            }
            roundtrip(rows, cols, &m);
        }
    }

    #[test]
    fn float_weights_stay_f32() {
        let m: Vec<f32> = (0..4096).map(|i| ((i as f32) * 0.37).sin() * 0.1).collect();
        assert_eq!(pack(64, 64, &|r, c| m[r * 64 + c]), None);
        // All f16 but one value: f32.
        let mut h: Vec<f32> = (0..4096).map(|i| half::f16::from_f32(m[i]).to_f32()).collect();
        assert_eq!(pack(64, 64, &|r, c| h[r * 64 + c]).map(|p| p.bits), Some(16));
        h[4000] = 0.1;
        assert_eq!(pack(64, 64, &|r, c| h[r * 64 + c]), None);
        // Too small to pack, however exact.
        assert_eq!(pack(4, 4, &|_, _| 1.0), None);
        // A NaN never packs.
        assert_eq!(pack(32, 32, &|r, c| if r == c { f32::NAN } else { 0.0 }), None);
    }

    #[test]
    fn int8_rows_start_on_words_and_sum() {
        // 37 columns: rows padded to 40 values (10 words) with zeros.
        let (rows, cols) = (40, 37);
        let mut m: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919 % 255) as f32 - 127.0) * 0.5).collect();
        for r in 0..rows {
            m[r * cols + r % cols] = 63.5; // every row reaches 127 · 0.5
        }
        let p = pack_int8(rows, cols, &|r, c| m[r * cols + c]).expect("per-channel int8");
        assert_eq!((p.bits, p.words[1]), (8, 40));
        let sums: Vec<i32> = (0..rows).map(|r| (0..cols).map(|c| (m[r * cols + c] / 0.5) as i32).sum()).collect();
        assert_eq!(p.row_sums(), sums);
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(unpack(&p, r, c), m[r * cols + c]);
            }
        }
    }

    proptest! {
        /// Values that are f16 but no small integers times a scale are stored as f16.
        #[test]
        fn f16_tables_pack_exactly(rows in 1usize..40, cols in 30usize..100, seed in any::<u64>()) {
            let rows = rows.max(1024usize.div_ceil(cols));
            let mut state = crate::synthetic::Synthetic::new(seed);
            let mut next = move || state.next_u64();
            let m: Vec<f32> = (0..rows * cols)
                .map(|_| half::f16::from_bits((next() % 0x7bff) as u16 | ((next() & 1) << 15) as u16).to_f32())
                .collect();
            let p = roundtrip(rows, cols, &m);
            prop_assert_eq!(p.bits, 16);
        }
    }

    #[test]
    fn zero_blocks_get_scale_one() {
        let p = roundtrip(32, 64, &vec![0.0; 32 * 64]);
        assert_eq!(p.bits, 4);
    }
}
