//! Pure quantization math: rounding, per-channel and block-wise weight quantization,
//! per-tensor activation parameters, int4 packing and the error metrics the verifier uses.
//!
//! Nothing here knows about graphs or files. Every function validates its input and reports
//! non-finite values, shape mismatches and impossible parameters as a [`QuantMathError`];
//! none of them panics on bad input.
//!
//! Conventions shared by every scale this module produces: a scale is always finite and at
//! least [`f32::MIN_POSITIVE`] (the smallest positive normal `f32`), so `x / scale` and
//! `1 / scale` never divide by zero; an all-zero channel, block or range gets scale `1.0`.

use half::f16;
use thiserror::Error;

/// Why a quantization computation was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum QuantMathError {
    /// An input value is NaN or infinite.
    #[error("{what}: element {index} is {value}, but quantization needs finite values")]
    NonFinite {
        /// Which input holds the value.
        what: &'static str,
        /// Flat index of the first offending element.
        index: usize,
        /// The offending value.
        value: f32,
    },
    /// A buffer's length does not match the shape it is described by.
    #[error("{what} has {actual} elements but {expected} are needed ({detail})")]
    ShapeMismatch {
        /// Which input has the wrong length.
        what: &'static str,
        /// Number of elements needed.
        expected: usize,
        /// Number of elements given.
        actual: usize,
        /// The shape or dimensions the expectation comes from.
        detail: String,
    },
    /// The shape's element count does not fit in `usize`.
    #[error("shape {shape:?} has more elements than fit in memory")]
    ShapeOverflow {
        /// The shape.
        shape: Vec<usize>,
    },
    /// The quantization axis is not a dimension of the shape.
    #[error("axis {axis} is out of range for shape {shape:?} (rank {})", shape.len())]
    BadAxis {
        /// The requested axis.
        axis: usize,
        /// The tensor shape.
        shape: Vec<usize>,
    },
    /// The block size cannot be used.
    #[error("block size {block} cannot be used: {reason}")]
    BadBlock {
        /// The requested block size.
        block: usize,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// The calibrated range is NaN or infinite at one end.
    #[error("activation range [{min}, {max}] is not finite")]
    NonFiniteRange {
        /// Lower end.
        min: f32,
        /// Upper end.
        max: f32,
    },
    /// The calibrated range is inverted (`min > max`).
    #[error("activation range [{min}, {max}] is empty: min is above max")]
    EmptyRange {
        /// Lower end.
        min: f32,
        /// Upper end.
        max: f32,
    },
    /// The range is so wide that its scale is not a finite `f32`.
    #[error("activation range [{min}, {max}] is too wide: its width overflows f32")]
    RangeTooWide {
        /// Lower end.
        min: f32,
        /// Upper end.
        max: f32,
    },
    /// A block's scale is larger than the largest finite `f16`.
    #[error(
        "row {row}, block {block}: absmax {absmax} needs scale {scale}, above the largest f16 (65504); use f32 scales"
    )]
    ScaleOverflowsF16 {
        /// Row of the block.
        row: usize,
        /// Index of the block within its row.
        block: usize,
        /// Largest magnitude in the block.
        absmax: f32,
        /// The f32 scale that does not fit.
        scale: f32,
    },
    /// A value to be packed as int4 is outside `[-8, 7]`.
    #[error("int4 value {value} at index {index} is outside [-8, 7]")]
    Int4OutOfRange {
        /// Index of the value.
        index: usize,
        /// The value.
        value: i8,
    },
    /// int4 packing needs pairs of values.
    #[error("int4 packing needs an even number of values, got {len}: pad with a zero")]
    OddLength {
        /// Number of values given.
        len: usize,
    },
    /// A metric was asked of two buffers of different lengths.
    #[error("cannot compare {a} values with {b} values")]
    LengthMismatch {
        /// Length of the first buffer.
        a: usize,
        /// Length of the second buffer.
        b: usize,
    },
    /// `argmax` of an empty row.
    #[error("argmax of an empty row")]
    EmptyRow,
}

/// Rounds to the nearest integer, ties to even: the rounding of ONNX `QuantizeLinear`.
pub fn round_half_even(x: f32) -> f32 {
    x.round_ties_even()
}

/// Returns the index and value of the first non-finite element, as an error.
fn check_finite(what: &'static str, values: &[f32]) -> Result<(), QuantMathError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(QuantMathError::NonFinite { what, index, value: values[index] }),
        None => Ok(()),
    }
}

/// Number of elements of `shape`, refusing overflow.
fn element_count(shape: &[usize]) -> Result<usize, QuantMathError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| QuantMathError::ShapeOverflow { shape: shape.to_vec() })
}

/// `scale` for a group whose largest magnitude is `absmax` and whose top level is `qmax`:
/// `1.0` for an all-zero group, otherwise `absmax / qmax` floored at the smallest normal f32.
fn symmetric_scale(absmax: f32, qmax: f32) -> f32 {
    if absmax == 0.0 { 1.0 } else { (absmax / qmax).max(f32::MIN_POSITIVE) }
}

/// Quantizes `x` symmetrically with `scale` into `[-qmax, qmax]`.
fn quantize_symmetric(x: f32, scale: f32, qmax: f32) -> i8 {
    // The clamp keeps the cast in range; `x` and `scale` are finite and `scale > 0`.
    round_half_even(x / scale).clamp(-qmax, qmax) as i8
}

/// Checks `len` against `shape` and `axis`; returns `(channels, inner)` where `inner` is the
/// number of elements after `axis` (the stride of the channel index).
fn channel_layout(
    what: &'static str,
    len: usize,
    shape: &[usize],
    axis: usize,
) -> Result<(usize, usize), QuantMathError> {
    if axis >= shape.len() {
        return Err(QuantMathError::BadAxis { axis, shape: shape.to_vec() });
    }
    let expected = element_count(shape)?;
    if len != expected {
        return Err(QuantMathError::ShapeMismatch { what, expected, actual: len, detail: format!("shape {shape:?}") });
    }
    let inner = element_count(&shape[axis + 1..])?;
    Ok((shape[axis], inner))
}

/// Symmetric int8 weights with one scale per index of the quantization axis.
#[derive(Debug, Clone, PartialEq)]
pub struct PerChannel {
    /// Quantized values in `[-127, 127]`, in the same layout as the weights.
    pub values: Vec<i8>,
    /// One scale per channel (index of the axis); always finite and positive.
    pub scales: Vec<f32>,
}

/// Quantizes `weights` (row-major, of `shape`) to symmetric int8 with one scale per index of
/// `axis`: `scale_c = max|w| / 127` over the channel, `q = clamp(round_half_even(w / scale_c),
/// -127, 127)`. An all-zero channel gets scale `1.0`, so it dequantizes to exact zeros.
pub fn quantize_per_channel_i8(weights: &[f32], shape: &[usize], axis: usize) -> Result<PerChannel, QuantMathError> {
    let (channels, inner) = channel_layout("weights", weights.len(), shape, axis)?;
    check_finite("weights", weights)?;
    let channel_of = |i: usize| (i / inner) % channels;
    let mut absmax = vec![0.0f32; channels];
    for (i, w) in weights.iter().enumerate() {
        let c = channel_of(i);
        absmax[c] = absmax[c].max(w.abs());
    }
    let scales: Vec<f32> = absmax.iter().map(|&a| symmetric_scale(a, 127.0)).collect();
    let values =
        weights.iter().enumerate().map(|(i, &w)| quantize_symmetric(w, scales[channel_of(i)], 127.0)).collect();
    Ok(PerChannel { values, scales })
}

/// Inverse of [`quantize_per_channel_i8`]: `w = q * scale_c`, in the layout of `values`.
pub fn dequantize_per_channel(
    values: &[i8],
    scales: &[f32],
    shape: &[usize],
    axis: usize,
) -> Result<Vec<f32>, QuantMathError> {
    let (channels, inner) = channel_layout("values", values.len(), shape, axis)?;
    if scales.len() != channels {
        return Err(QuantMathError::ShapeMismatch {
            what: "scales",
            expected: channels,
            actual: scales.len(),
            detail: format!("one per index of axis {axis} of shape {shape:?}"),
        });
    }
    check_finite("scales", scales)?;
    Ok(values.iter().enumerate().map(|(i, &q)| f32::from(q) * scales[(i / inner) % channels]).collect())
}

/// Element type of a quantized activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActType {
    /// `uint8`, asymmetric (zero point in `0..=255`).
    U8,
    /// `int8`, symmetric (zero point 0).
    I8,
}

impl ActType {
    /// Smallest value of the type.
    pub fn qmin(self) -> i32 {
        match self {
            ActType::U8 => 0,
            ActType::I8 => -128,
        }
    }

    /// Largest value of the type.
    pub fn qmax(self) -> i32 {
        match self {
            ActType::U8 => 255,
            ActType::I8 => 127,
        }
    }
}

/// Per-tensor quantization parameters of an activation (`QuantizeLinear` scale and zero point).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActParams {
    /// Scale; always finite and at least [`f32::MIN_POSITIVE`].
    pub scale: f32,
    /// Zero point, within the range of `ty`.
    pub zero_point: i32,
    /// Element type.
    pub ty: ActType,
}

/// Quantization parameters for an activation whose calibrated range is `[min, max]`.
///
/// The range is first extended to contain 0. `U8`: asymmetric, `scale = (max - min) / 255`,
/// `zero_point = clamp(round_half_even(-min / scale), 0, 255)`. `I8`: symmetric,
/// `scale = max(|min|, |max|) / 127`, `zero_point = 0`. A degenerate range (`[0, 0]` after
/// extension) gets scale `1.0`; a tiny non-zero one is floored at [`f32::MIN_POSITIVE`].
/// With these parameters 0.0 quantizes and dequantizes exactly.
pub fn activation_params(min: f32, max: f32, ty: ActType) -> Result<ActParams, QuantMathError> {
    if !min.is_finite() || !max.is_finite() {
        return Err(QuantMathError::NonFiniteRange { min, max });
    }
    if min > max {
        return Err(QuantMathError::EmptyRange { min, max });
    }
    let (lo, hi) = (min.min(0.0), max.max(0.0));
    let (width, levels) = match ty {
        ActType::U8 => (hi - lo, 255.0),
        ActType::I8 => (lo.abs().max(hi), 127.0),
    };
    if !width.is_finite() {
        return Err(QuantMathError::RangeTooWide { min, max });
    }
    let scale = symmetric_scale(width, levels);
    let zero_point = match ty {
        ActType::U8 => round_half_even(-lo / scale).clamp(0.0, 255.0) as i32,
        ActType::I8 => 0,
    };
    Ok(ActParams { scale, zero_point, ty })
}

/// ONNX `QuantizeLinear` of one value: `saturate(round_half_even(x / scale) + zero_point)`.
/// Infinities saturate; NaN maps to the zero point (use [`quantize_values`] to reject it).
pub fn quantize_value(x: f32, p: &ActParams) -> i32 {
    let q = round_half_even(x / p.scale) + p.zero_point as f32;
    // `as` saturates at the i32 bounds, so only NaN needs its own case.
    let q = if q.is_nan() { p.zero_point } else { q as i32 };
    q.clamp(p.ty.qmin(), p.ty.qmax())
}

/// [`quantize_value`] over a slice, refusing NaN and infinite inputs.
pub fn quantize_values(xs: &[f32], p: &ActParams) -> Result<Vec<i32>, QuantMathError> {
    check_finite("activation", xs)?;
    Ok(xs.iter().map(|&x| quantize_value(x, p)).collect())
}

/// ONNX `DequantizeLinear` of one value: `(q - zero_point) * scale`.
pub fn dequantize_value(q: i32, p: &ActParams) -> f32 {
    (i64::from(q) - i64::from(p.zero_point)) as f32 * p.scale
}

/// Bit width of block-wise weight-only quantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bits {
    /// 8-bit values in `[-127, 127]`.
    Eight,
    /// 4-bit values in `[-7, 7]`.
    Four,
}

impl Bits {
    /// Largest magnitude a quantized value takes (127 or 7).
    pub fn qmax(self) -> i8 {
        match self {
            Bits::Eight => 127,
            Bits::Four => 7,
        }
    }

    /// Number of bits (8 or 4).
    pub fn bits(self) -> u32 {
        match self {
            Bits::Eight => 8,
            Bits::Four => 4,
        }
    }
}

/// Precision in which block scales are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScaleType {
    /// `f32` scales.
    F32,
    /// `f16` scales; values are quantized with the rounded scale.
    F16,
}

/// Weights quantized block-wise along rows, symmetric, one scale per block.
#[derive(Debug, Clone, PartialEq)]
pub struct Blocked {
    /// Number of rows (output channels).
    pub rows: usize,
    /// Number of columns (reduction dimension) before padding.
    pub cols: usize,
    /// `cols` rounded up to a multiple of `block`.
    pub padded_cols: usize,
    /// Number of consecutive row elements sharing a scale.
    pub block: usize,
    /// Bit width.
    pub bits: Bits,
    /// `rows * padded_cols` values in `[-qmax, qmax]`, row-major; padding is 0.
    pub values: Vec<i8>,
    /// `rows * padded_cols / block` scales, row-major. For f16 scales these are the f16
    /// values widened exactly to f32, i.e. the numbers dequantization must use.
    pub scales: Vec<f32>,
    /// The f16 bit patterns of `scales` when quantized with [`ScaleType::F16`], else `None`.
    pub scales_f16: Option<Vec<u16>>,
}

impl Blocked {
    /// Number of blocks per row (0 if `block` is 0).
    pub fn blocks_per_row(&self) -> usize {
        self.padded_cols.checked_div(self.block).unwrap_or(0)
    }

    /// Checks that the public fields still describe one another (as [`quantize_blocks`] left
    /// them): block size, padding, and the lengths of `values`, `scales` and `scales_f16`.
    pub fn validate(&self) -> Result<(), QuantMathError> {
        let block = self.block;
        if block == 0 {
            return Err(QuantMathError::BadBlock { block, reason: "it must be at least 1" });
        }
        if !self.padded_cols.is_multiple_of(block)
            || self.padded_cols < self.cols
            || self.padded_cols - self.cols >= block
        {
            return Err(QuantMathError::ShapeMismatch {
                what: "padded columns",
                expected: self.cols.div_ceil(block).saturating_mul(block),
                actual: self.padded_cols,
                detail: format!("{} columns in blocks of {block}", self.cols),
            });
        }
        let detail = || format!("{} rows × {} padded columns, blocks of {block}", self.rows, self.padded_cols);
        let n_values = self
            .rows
            .checked_mul(self.padded_cols)
            .ok_or_else(|| QuantMathError::ShapeOverflow { shape: vec![self.rows, self.padded_cols] })?;
        let n_scales = n_values / block;
        let lens = [
            ("values", n_values, self.values.len()),
            ("scales", n_scales, self.scales.len()),
            ("f16 scales", n_scales, self.scales_f16.as_ref().map_or(n_scales, Vec::len)),
        ];
        for (what, expected, actual) in lens {
            if expected != actual {
                return Err(QuantMathError::ShapeMismatch { what, expected, actual, detail: detail() });
            }
        }
        check_finite("scales", &self.scales)
    }

    /// Dequantizes to `rows * cols` values (`q * scale`), padding dropped. Errors only if the
    /// public fields were edited into an inconsistent state (see [`Blocked::validate`]).
    pub fn dequantize(&self) -> Result<Vec<f32>, QuantMathError> {
        self.validate()?;
        let bpr = self.blocks_per_row();
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for r in 0..self.rows {
            let row = &self.values[r * self.padded_cols..r * self.padded_cols + self.cols];
            out.extend(row.iter().enumerate().map(|(c, &q)| f32::from(q) * self.scales[r * bpr + c / self.block]));
        }
        Ok(out)
    }
}

/// Quantizes a `rows × cols` row-major matrix block-wise with f32 scales: each row is split
/// into blocks of `block` consecutive elements (the last one zero-padded), and each block gets
/// `scale = absmax / qmax` (`1.0` for an all-zero block) and values
/// `clamp(round_half_even(w / scale), -qmax, qmax)`.
///
/// For [`Bits::Four`], `block` must be even so that every block packs into whole bytes.
pub fn quantize_blocks(
    weights: &[f32],
    rows: usize,
    cols: usize,
    block: usize,
    bits: Bits,
) -> Result<Blocked, QuantMathError> {
    quantize_blocks_with(weights, rows, cols, block, bits, ScaleType::F32)
}

/// As [`quantize_blocks`] but with f16 scales: each scale is rounded to the nearest f16,
/// moved up to the next f16 while the block's largest magnitude would otherwise quantize
/// beyond `qmax`, and the values are quantized with that f16 scale. Errors if a scale exceeds
/// the largest f16.
pub fn quantize_blocks_f16_scales(
    weights: &[f32],
    rows: usize,
    cols: usize,
    block: usize,
    bits: Bits,
) -> Result<Blocked, QuantMathError> {
    quantize_blocks_with(weights, rows, cols, block, bits, ScaleType::F16)
}

/// Rounds the f32 scale of a block to an f16 that keeps `round(absmax / scale) <= qmax`.
fn f16_scale(absmax: f32, scale: f32, qmax: f32, row: usize, block: usize) -> Result<f16, QuantMathError> {
    let overflow = || QuantMathError::ScaleOverflowsF16 { row, block, absmax, scale };
    let mut h = f16::from_f32(scale);
    if h.to_f32() == 0.0 {
        // Below half the smallest subnormal f16: use the smallest positive f16.
        h = f16::from_bits(1);
    }
    // Rounding down by at most half an f16 ulp leaves `absmax / h` within `qmax + 0.5` for normal
    // f16 scales, so this loop moves at most a step or two (only for subnormal f16 scales).
    while round_half_even(absmax / h.to_f32()) > qmax {
        h = f16::from_bits(h.to_bits() + 1);
        if !h.is_finite() {
            return Err(overflow());
        }
    }
    if !h.is_finite() {
        return Err(overflow());
    }
    Ok(h)
}

/// Block-wise quantization with the scale precision chosen by `scale_type`; see
/// [`quantize_blocks`] and [`quantize_blocks_f16_scales`].
pub fn quantize_blocks_with(
    weights: &[f32],
    rows: usize,
    cols: usize,
    block: usize,
    bits: Bits,
    scale_type: ScaleType,
) -> Result<Blocked, QuantMathError> {
    if block == 0 {
        return Err(QuantMathError::BadBlock { block, reason: "it must be at least 1" });
    }
    if bits == Bits::Four && !block.is_multiple_of(2) {
        return Err(QuantMathError::BadBlock { block, reason: "4-bit blocks must be even to pack into whole bytes" });
    }
    let expected = rows.checked_mul(cols).ok_or_else(|| QuantMathError::ShapeOverflow { shape: vec![rows, cols] })?;
    if weights.len() != expected {
        return Err(QuantMathError::ShapeMismatch {
            what: "weights",
            expected,
            actual: weights.len(),
            detail: format!("{rows} rows × {cols} columns"),
        });
    }
    check_finite("weights", weights)?;
    let padded_cols = cols
        .div_ceil(block)
        .checked_mul(block)
        .ok_or_else(|| QuantMathError::ShapeOverflow { shape: vec![rows, cols] })?;
    let bpr = padded_cols / block;
    let total =
        rows.checked_mul(padded_cols).ok_or_else(|| QuantMathError::ShapeOverflow { shape: vec![rows, cols] })?;
    let qmax = f32::from(bits.qmax());
    let mut values = vec![0i8; total];
    let mut scales = Vec::with_capacity(rows * bpr);
    let mut scales_f16 = (scale_type == ScaleType::F16).then(|| Vec::with_capacity(rows * bpr));
    for r in 0..rows {
        let row = &weights[r * cols..(r + 1) * cols];
        for b in 0..bpr {
            let chunk = &row[(b * block).min(cols)..((b + 1) * block).min(cols)];
            let absmax = chunk.iter().fold(0.0f32, |m, w| m.max(w.abs()));
            let mut scale = symmetric_scale(absmax, qmax);
            if let Some(bits16) = scales_f16.as_mut() {
                let h = f16_scale(absmax, scale, qmax, r, b)?;
                bits16.push(h.to_bits());
                scale = h.to_f32();
            }
            scales.push(scale);
            let out = &mut values[r * padded_cols + b * block..];
            for (o, &w) in out.iter_mut().zip(chunk) {
                *o = quantize_symmetric(w, scale, qmax);
            }
        }
    }
    Ok(Blocked { rows, cols, padded_cols, block, bits, values, scales, scales_f16 })
}

/// Packs int4 values two per byte: each `v` in `[-8, 7]` is stored as the nibble `v + 8`
/// (offset binary, not two's complement), element `2k` in the low nibble and `2k + 1` in the
/// high nibble of byte `k`. An odd number of values is refused; callers pad.
pub fn pack_int4(values: &[i8]) -> Result<Vec<u8>, QuantMathError> {
    if !values.len().is_multiple_of(2) {
        return Err(QuantMathError::OddLength { len: values.len() });
    }
    if let Some(index) = values.iter().position(|v| !(-8..=7).contains(v)) {
        return Err(QuantMathError::Int4OutOfRange { index, value: values[index] });
    }
    let nibble = |v: i8| (v + 8) as u8;
    Ok(values.chunks_exact(2).map(|p| nibble(p[0]) | (nibble(p[1]) << 4)).collect())
}

/// Inverse of [`pack_int4`]: two values per byte, low nibble first.
pub fn unpack_int4(packed: &[u8]) -> Vec<i8> {
    packed.iter().flat_map(|&b| [(b & 0x0f) as i8 - 8, (b >> 4) as i8 - 8]).collect()
}

/// Checks two metric inputs: same length, all finite.
fn check_pair(a: &[f32], b: &[f32]) -> Result<(), QuantMathError> {
    if a.len() != b.len() {
        return Err(QuantMathError::LengthMismatch { a: a.len(), b: b.len() });
    }
    check_finite("first operand", a)?;
    check_finite("second operand", b)
}

/// Cosine similarity computed in f64: `1.0` when both vectors are zero, `0.0` when exactly one
/// is. Errors on different lengths or non-finite values (a NaN would pass any `<` check).
pub fn cosine(a: &[f32], b: &[f32]) -> Result<f64, QuantMathError> {
    check_pair(a, b)?;
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    Ok(match (na == 0.0, nb == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        (false, false) => (dot / (na.sqrt() * nb.sqrt())).clamp(-1.0, 1.0),
    })
}

/// Largest `|a_i - b_i|`, in f64; `0.0` for empty inputs. Errors on different lengths or
/// non-finite values.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> Result<f64, QuantMathError> {
    check_pair(a, b)?;
    Ok(a.iter().zip(b).fold(0.0f64, |m, (&x, &y)| m.max((f64::from(x) - f64::from(y)).abs())))
}

/// Index of the largest value; the first one wins ties. Errors on an empty row or NaN.
pub fn argmax(row: &[f32]) -> Result<usize, QuantMathError> {
    if let Some(index) = row.iter().position(|v| v.is_nan()) {
        return Err(QuantMathError::NonFinite { what: "argmax row", index, value: row[index] });
    }
    let mut best = 0;
    for (i, &v) in row.iter().enumerate().skip(1) {
        if v > row[best] {
            best = i;
        }
    }
    if row.is_empty() { Err(QuantMathError::EmptyRow) } else { Ok(best) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Slack for f32 rounding in `w - q * scale` checks.
    fn eps(scale: f32, w: f32) -> f32 {
        4.0 * f32::EPSILON * (scale * 128.0 + w.abs())
    }

    #[test]
    fn rounding_is_half_to_even() {
        let cases =
            [(0.5, 0.0), (1.5, 2.0), (2.5, 2.0), (-0.5, -0.0), (-1.5, -2.0), (-2.5, -2.0), (2.4, 2.0), (2.6, 3.0)];
        for (x, want) in cases {
            assert_eq!(round_half_even(x), want, "round({x})");
        }
    }

    #[test]
    fn per_channel_known_values() {
        // shape [2, 3], axis 0: rows are channels.
        let w = [1.0, -0.5, 0.25, 0.0, 0.0, 0.0];
        let pc = quantize_per_channel_i8(&w, &[2, 3], 0).unwrap();
        assert_eq!(pc.scales, vec![1.0 / 127.0, 1.0]);
        assert_eq!(pc.values, vec![127, -64, 32, 0, 0, 0]); // -63.5 → -64, 31.75 → 32
        let back = dequantize_per_channel(&pc.values, &pc.scales, &[2, 3], 0).unwrap();
        assert_eq!(&back[3..], &[0.0, 0.0, 0.0]);
        // axis 1: columns are channels.
        let pc = quantize_per_channel_i8(&w, &[2, 3], 1).unwrap();
        assert_eq!(pc.scales, vec![1.0 / 127.0, 0.5 / 127.0, 0.25 / 127.0]);
        assert_eq!(pc.values, vec![127, -127, 127, 0, 0, 0]);
    }

    #[test]
    fn per_channel_rejects_bad_input() {
        let e = quantize_per_channel_i8(&[1.0, f32::NAN], &[2], 0).unwrap_err();
        assert!(matches!(e, QuantMathError::NonFinite { index: 1, .. }), "{e}");
        assert!(e.to_string().contains("element 1 is NaN"), "{e}");
        assert!(matches!(quantize_per_channel_i8(&[1.0; 3], &[2, 2], 0), Err(QuantMathError::ShapeMismatch { .. })));
        assert!(matches!(quantize_per_channel_i8(&[1.0; 4], &[2, 2], 2), Err(QuantMathError::BadAxis { .. })));
        assert!(matches!(quantize_per_channel_i8(&[], &[usize::MAX, 2], 0), Err(QuantMathError::ShapeOverflow { .. })));
        assert!(matches!(
            dequantize_per_channel(&[1; 4], &[1.0], &[2, 2], 0),
            Err(QuantMathError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn tiny_channel_scale_is_normal() {
        let pc = quantize_per_channel_i8(&[1e-44, -1e-45], &[1, 2], 0).unwrap();
        assert_eq!(pc.scales, vec![f32::MIN_POSITIVE]);
        assert_eq!(pc.values, vec![0, 0]);
    }

    #[test]
    fn activation_params_known_values() {
        let p = activation_params(-1.0, 3.0, ActType::U8).unwrap();
        assert_eq!(p.scale, 4.0 / 255.0);
        assert_eq!(p.zero_point, 64); // 63.75 → 64
        let p = activation_params(0.5, 2.0, ActType::U8).unwrap(); // extended to [0, 2]
        assert_eq!((p.scale, p.zero_point), (2.0 / 255.0, 0));
        let p = activation_params(-2.0, -1.0, ActType::U8).unwrap(); // extended to [-2, 0]
        assert_eq!(p.zero_point, 255);
        let p = activation_params(-3.0, 1.0, ActType::I8).unwrap();
        assert_eq!((p.scale, p.zero_point), (3.0 / 127.0, 0));
        let p = activation_params(0.0, 0.0, ActType::U8).unwrap();
        assert_eq!((p.scale, p.zero_point), (1.0, 0));
    }

    #[test]
    fn activation_params_rejects_bad_ranges() {
        assert!(matches!(activation_params(f32::NAN, 1.0, ActType::U8), Err(QuantMathError::NonFiniteRange { .. })));
        assert!(matches!(
            activation_params(0.0, f32::INFINITY, ActType::I8),
            Err(QuantMathError::NonFiniteRange { .. })
        ));
        assert!(matches!(activation_params(2.0, 1.0, ActType::U8), Err(QuantMathError::EmptyRange { .. })));
        assert!(matches!(
            activation_params(-f32::MAX, f32::MAX, ActType::U8),
            Err(QuantMathError::RangeTooWide { .. })
        ));
        assert!(activation_params(-f32::MAX, f32::MAX, ActType::I8).is_ok());
    }

    #[test]
    fn quantize_value_saturates_and_handles_specials() {
        let p = activation_params(-1.0, 1.0, ActType::I8).unwrap();
        assert_eq!(quantize_value(1e30, &p), 127);
        assert_eq!(quantize_value(-1e30, &p), -128);
        assert_eq!(quantize_value(f32::INFINITY, &p), 127);
        assert_eq!(quantize_value(f32::NEG_INFINITY, &p), -128);
        assert_eq!(quantize_value(f32::NAN, &p), 0);
        assert!(matches!(quantize_values(&[0.0, f32::NAN], &p), Err(QuantMathError::NonFinite { index: 1, .. })));
        let u = ActParams { scale: 1.0, zero_point: 10, ty: ActType::U8 };
        assert_eq!(quantize_value(-20.0, &u), 0);
        assert_eq!(quantize_value(2.5, &u), 12); // round(2.5) = 2, + 10
        assert_eq!(dequantize_value(12, &u), 2.0);
    }

    #[test]
    fn blocks_known_values_and_padding() {
        // 2 rows × 5 cols, block 2 → padded to 6, 3 blocks per row.
        let w = [2.5, -7.0, 0.0, 0.0, 3.5, /**/ 1.5, 7.0, -14.0, 5.0, 0.0];
        let b = quantize_blocks(&w, 2, 5, 2, Bits::Four).unwrap();
        assert_eq!((b.padded_cols, b.blocks_per_row()), (6, 3));
        assert_eq!(b.scales, vec![1.0, 1.0, 0.5, 1.0, 2.0, 1.0]);
        assert_eq!(b.values, vec![2, -7, 0, 0, 7, 0, 2, 7, -7, 2, 0, 0]); // ties go to even
        assert_eq!(b.scales_f16, None);
        assert_eq!(b.dequantize().unwrap(), vec![2.0, -7.0, 0.0, 0.0, 3.5, 2.0, 7.0, -14.0, 4.0, 0.0]);
        let b8 = quantize_blocks(&w, 2, 5, 5, Bits::Eight).unwrap();
        assert_eq!((b8.padded_cols, b8.scales.len()), (5, 2));
        assert_eq!(b8.scales, vec![7.0 / 127.0, 14.0 / 127.0]);
        // Hand-edited, inconsistent fields are reported, not indexed out of bounds.
        let mut bad = b8.clone();
        bad.scales.pop();
        assert!(matches!(bad.dequantize(), Err(QuantMathError::ShapeMismatch { what: "scales", .. })));
        let mut bad = b8.clone();
        bad.block = 0;
        assert_eq!(bad.blocks_per_row(), 0);
        assert!(matches!(bad.dequantize(), Err(QuantMathError::BadBlock { .. })));
        let mut bad = b8;
        bad.padded_cols = 10;
        assert!(matches!(bad.dequantize(), Err(QuantMathError::ShapeMismatch { what: "padded columns", .. })));
    }

    #[test]
    fn blocks_reject_bad_input() {
        let e = |r: Result<Blocked, QuantMathError>| r.unwrap_err();
        assert!(matches!(e(quantize_blocks(&[1.0; 4], 2, 2, 0, Bits::Eight)), QuantMathError::BadBlock { .. }));
        assert!(matches!(e(quantize_blocks(&[1.0; 4], 2, 2, 3, Bits::Four)), QuantMathError::BadBlock { .. }));
        assert!(matches!(e(quantize_blocks(&[1.0; 4], 2, 3, 2, Bits::Eight)), QuantMathError::ShapeMismatch { .. }));
        let err = e(quantize_blocks_f16_scales(&[1.0, f32::INFINITY], 1, 2, 2, Bits::Eight));
        assert!(err.to_string().contains("element 1 is inf"), "{err}");
        let err = e(quantize_blocks_f16_scales(&[1e8, 0.0], 1, 2, 2, Bits::Eight));
        assert!(matches!(err, QuantMathError::ScaleOverflowsF16 { row: 0, block: 0, .. }), "{err}");
        // Empty matrices are fine.
        assert_eq!(quantize_blocks(&[], 0, 7, 4, Bits::Four).unwrap().values.len(), 0);
    }

    #[test]
    fn f16_scales_are_consistent() {
        // 1/3 is not an f16; the stored scale is the f16 and values use it.
        let w = [1.0 / 3.0, -0.1, 0.2, 0.3];
        let b = quantize_blocks_f16_scales(&w, 1, 4, 4, Bits::Eight).unwrap();
        let bits = b.scales_f16.as_ref().unwrap();
        assert_eq!(f16::from_bits(bits[0]).to_f32(), b.scales[0]);
        for (q, x) in b.values.iter().zip(&w) {
            assert_eq!(*q, round_half_even(x / b.scales[0]).clamp(-127.0, 127.0) as i8);
        }
        // Scales deep in the f16 subnormal range still keep every value within qmax.
        let tiny = [3e-7f32, -1e-7];
        let b = quantize_blocks_f16_scales(&tiny, 1, 2, 2, Bits::Four).unwrap();
        assert!(b.values.iter().all(|v| v.abs() <= 7));
        let err = (tiny[0] - b.dequantize().unwrap()[0]).abs();
        assert!(err <= b.scales[0] / 2.0 * 1.0001, "err {err} scale {}", b.scales[0]);
    }

    #[test]
    fn int4_packing_layout() {
        assert_eq!(pack_int4(&[-8, 7]).unwrap(), vec![0xf0]);
        assert_eq!(pack_int4(&[0, 1, -1, -8]).unwrap(), vec![0x98, 0x07]);
        assert!(matches!(pack_int4(&[1, 2, 3]), Err(QuantMathError::OddLength { len: 3 })));
        assert!(matches!(pack_int4(&[1, 8]), Err(QuantMathError::Int4OutOfRange { index: 1, value: 8 })));
        assert_eq!(unpack_int4(&[0x98, 0x07]), vec![0, 1, -1, -8]);
    }

    #[test]
    fn metrics() {
        assert_eq!(cosine(&[0.0, 0.0], &[0.0, 0.0]).unwrap(), 1.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]).unwrap(), 0.0);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 0.0]).unwrap(), 0.0);
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((cosine(&[1.0, 0.0], &[-1.0, 0.0]).unwrap() + 1.0).abs() < 1e-12);
        assert!(matches!(cosine(&[1.0], &[1.0, 2.0]), Err(QuantMathError::LengthMismatch { a: 1, b: 2 })));
        assert!(matches!(cosine(&[1.0], &[f32::NAN]), Err(QuantMathError::NonFinite { index: 0, .. })));
        assert_eq!(max_abs_diff(&[1.0, -2.0], &[1.5, 2.0]).unwrap(), 4.0);
        assert_eq!(max_abs_diff(&[], &[]).unwrap(), 0.0);
        assert!(max_abs_diff(&[f32::INFINITY], &[0.0]).is_err());
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]).unwrap(), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, -1.0]).unwrap(), 1);
        assert!(matches!(argmax(&[]), Err(QuantMathError::EmptyRow)));
        assert!(matches!(argmax(&[1.0, f32::NAN]), Err(QuantMathError::NonFinite { index: 1, .. })));
    }

    /// Finite floats spanning many magnitudes, including exact zeros.
    fn weight() -> impl Strategy<Value = f32> {
        prop_oneof![
            1 => Just(0.0f32),
            4 => -1.0f32..1.0,
            2 => (-1.0f32..1.0, -30i32..30).prop_map(|(m, e)| m * 2f32.powi(e)),
        ]
    }

    /// A shape of rank 1..=4 with small dimensions, an axis and matching weights.
    fn shaped_weights() -> impl Strategy<Value = (Vec<usize>, usize, Vec<f32>)> {
        prop::collection::vec(1usize..5, 1..=4).prop_flat_map(|shape| {
            let n = shape.iter().product::<usize>();
            let rank = shape.len();
            (Just(shape), 0..rank, prop::collection::vec(weight(), n))
        })
    }

    /// `rows`, `cols`, `block` (even when `bits` is four), bits, weights.
    fn matrix() -> impl Strategy<Value = (usize, usize, usize, Bits, Vec<f32>)> {
        (0usize..5, 1usize..20, 1usize..9, prop_oneof![Just(Bits::Eight), Just(Bits::Four)]).prop_flat_map(
            |(rows, cols, block, bits)| {
                let block = if bits == Bits::Four { block * 2 } else { block };
                (Just(rows), Just(cols), Just(block), Just(bits), prop::collection::vec(weight(), rows * cols))
            },
        )
    }

    proptest! {
        #[test]
        fn per_channel_round_trip((shape, axis, w) in shaped_weights()) {
            let pc = quantize_per_channel_i8(&w, &shape, axis).unwrap();
            prop_assert_eq!(pc.scales.len(), shape[axis]);
            prop_assert!(pc.scales.iter().all(|s| s.is_finite() && *s > 0.0));
            prop_assert!(pc.values.iter().all(|v| (-127..=127).contains(v)));
            let back = dequantize_per_channel(&pc.values, &pc.scales, &shape, axis).unwrap();
            let inner: usize = shape[axis + 1..].iter().product();
            for (i, (x, y)) in w.iter().zip(&back).enumerate() {
                let s = pc.scales[(i / inner) % shape[axis]];
                prop_assert!((x - y).abs() <= s / 2.0 + eps(s, *x), "w {} → {} with scale {}", x, y, s);
                if *x == 0.0 { prop_assert_eq!(*y, 0.0); }
            }
        }

        #[test]
        fn activation_round_trip(a in weight(), b in weight(), x in -3.0f32..3.0, u8 in any::<bool>()) {
            let ty = if u8 { ActType::U8 } else { ActType::I8 };
            let (min, max) = (a.min(b), a.max(b));
            let p = activation_params(min, max, ty).unwrap();
            prop_assert!(p.scale.is_finite() && p.scale > 0.0);
            prop_assert!((ty.qmin()..=ty.qmax()).contains(&p.zero_point));
            prop_assert_eq!(dequantize_value(quantize_value(0.0, &p), &p), 0.0);
            let (lo, hi) = (min.min(0.0), max.max(0.0));
            // Inside the range (and the range ends themselves) the error is at most scale / 2.
            for v in [lo, hi, lo + (hi - lo) * (x.abs() / 3.0)] {
                let back = dequantize_value(quantize_value(v, &p), &p);
                prop_assert!((v - back).abs() <= p.scale / 2.0 + eps(p.scale, v), "{} → {} ({:?})", v, back, p);
            }
            // Outside it saturates.
            let q = quantize_value(hi + 300.0 * p.scale + 1.0, &p);
            prop_assert_eq!(q, ty.qmax());
            let q = quantize_value(lo - 300.0 * p.scale - 1.0, &p);
            prop_assert_eq!(q, ty.qmin());
        }

        #[test]
        fn block_round_trip((rows, cols, block, bits, w) in matrix(), f16s in any::<bool>()) {
            let st = if f16s { ScaleType::F16 } else { ScaleType::F32 };
            let b = match quantize_blocks_with(&w, rows, cols, block, bits, st) {
                Err(QuantMathError::ScaleOverflowsF16 { scale, .. }) if f16s => {
                    prop_assert!(scale > f16::MAX.to_f32(), "scale {} fits in f16", scale);
                    return Ok(());
                }
                r => r.unwrap(),
            };
            let qmax = bits.qmax();
            prop_assert_eq!(b.padded_cols % block, 0);
            prop_assert!(b.padded_cols >= cols && b.padded_cols < cols + block);
            prop_assert_eq!(b.values.len(), rows * b.padded_cols);
            prop_assert_eq!(b.scales.len(), rows * b.padded_cols / block);
            prop_assert!(b.values.iter().all(|v| (-qmax..=qmax).contains(v)));
            prop_assert!(b.scales.iter().all(|s| s.is_finite() && *s > 0.0));
            for r in 0..rows {
                prop_assert!(b.values[r * b.padded_cols + cols..(r + 1) * b.padded_cols].iter().all(|v| *v == 0));
            }
            if let Some(bits16) = &b.scales_f16 {
                for (h, s) in bits16.iter().zip(&b.scales) {
                    prop_assert_eq!(f16::from_bits(*h).to_f32(), *s);
                }
            }
            let back = b.dequantize().unwrap();
            prop_assert_eq!(back.len(), rows * cols);
            for (i, (x, y)) in w.iter().zip(&back).enumerate() {
                let s = b.scales[(i / cols) * b.blocks_per_row() + (i % cols) / block];
                prop_assert!((x - y).abs() <= s / 2.0 + eps(s, *x), "w {} → {} with scale {}", x, y, s);
            }
        }

        #[test]
        fn int4_round_trip(v in prop::collection::vec(-8i8..=7, 0..64)) {
            let mut v = v;
            if v.len() % 2 == 1 { v.push(0); }
            let packed = pack_int4(&v).unwrap();
            prop_assert_eq!(packed.len(), v.len() / 2);
            prop_assert_eq!(unpack_int4(&packed), v);
        }

        #[test]
        fn nan_anywhere_is_an_error((shape, axis, w) in shaped_weights(), at in any::<prop::sample::Index>()) {
            let mut w = w;
            let i = at.index(w.len());
            w[i] = f32::NAN;
            let is_nan_at_i = |e: QuantMathError| matches!(e, QuantMathError::NonFinite { index, .. } if index == i);
            prop_assert!(is_nan_at_i(quantize_per_channel_i8(&w, &shape, axis).unwrap_err()));
            let n = w.len();
            prop_assert!(is_nan_at_i(quantize_blocks(&w, 1, n, 2, Bits::Four).unwrap_err()));
            prop_assert!(is_nan_at_i(quantize_blocks_f16_scales(&w, n, 1, 1, Bits::Eight).unwrap_err()));
            prop_assert!(is_nan_at_i(cosine(&w, &w).unwrap_err()));
            prop_assert!(is_nan_at_i(argmax(&w).unwrap_err()));
            prop_assert!(activation_params(w[i], 1.0, ActType::U8).is_err());
        }
    }
}
