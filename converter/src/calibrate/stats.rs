//! Calibration statistics and range selection.
//!
//! The converter runs the fp32 model over the calibration samples twice: pass 1 feeds every
//! activation to a [`RangeStats`] (min / max), pass 2 to an [`AbsHistogram`] of `|x|` over
//! `[0, absmax of pass 1]`. [`select_range`] then turns both into the clipped range
//! `(lo, hi)` that the activation is quantized over, by one of the [`Method`]s.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Default number of histogram bins.
pub const DEFAULT_BINS: usize = 2048;

/// Percentile used when `percentile` is parsed without a value.
pub const DEFAULT_PERCENTILE: f64 = 99.99;

/// Number of quantized levels the entropy search targets (the magnitude levels of 8-bit).
pub const DEFAULT_QUANTIZED_BINS: usize = 128;

/// Smoothing mass given to empty bins in the KL-divergence search.
const SMOOTHING_EPS: f64 = 1e-4;

/// Why statistics could not be collected or a range not selected.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StatsError {
    /// Some observed values are NaN or infinite; nothing was recorded from that batch.
    #[error("{count} of {total} values are NaN or infinite")]
    NonFinite {
        /// Number of non-finite values.
        count: u64,
        /// Number of values in the batch.
        total: u64,
    },
    /// No value has been observed.
    #[error("no values were observed")]
    Empty,
    /// The histogram edge is negative, NaN or infinite.
    #[error("histogram edge {edge} must be finite and >= 0")]
    BadEdge {
        /// The edge given.
        edge: f32,
    },
    /// A histogram with zero bins was requested.
    #[error("a histogram needs at least one bin")]
    NoBins,
    /// Two histograms with different edges or bin counts were merged.
    #[error(
        "cannot merge a histogram over [0, {theirs_edge}] in {theirs_bins} bins into one over [0, {edge}] in {bins}"
    )]
    HistogramMismatch {
        /// Edge of the receiving histogram.
        edge: f32,
        /// Bin count of the receiving histogram.
        bins: usize,
        /// Edge of the merged histogram.
        theirs_edge: f32,
        /// Bin count of the merged histogram.
        theirs_bins: usize,
    },
    /// A quantile outside `[0, 1]` (or NaN) was asked for.
    #[error("quantile {q} is outside [0, 1]")]
    BadQuantile {
        /// The quantile.
        q: f64,
    },
    /// A percentile outside `(50, 100]` (or NaN).
    #[error("percentile {p} is outside (50, 100]")]
    BadPercentile {
        /// The percentile.
        p: f64,
    },
    /// An unknown method name.
    #[error("unknown calibration method `{0}`: expected minmax, percentile or entropy")]
    UnknownMethod(String),
    /// The method needs the pass-2 histogram and none was given.
    #[error("calibration method `{method}` needs a histogram of |x| (calibration pass 2), but none was given")]
    MissingHistogram {
        /// The method.
        method: Method,
    },
    /// The entropy search was asked for zero quantized bins.
    #[error("entropy calibration needs at least one quantized bin")]
    NoQuantizedBins,
}

/// Counts the non-finite values of a batch, as an error if there are any.
fn check_finite(values: &[f32]) -> Result<(), StatsError> {
    let count = values.iter().filter(|v| !v.is_finite()).count() as u64;
    if count == 0 { Ok(()) } else { Err(StatsError::NonFinite { count, total: values.len() as u64 }) }
}

/// Running min / max of a tensor over the calibration samples (pass 1).
///
/// `min` and `max` are meaningful only once `count > 0`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RangeStats {
    /// Smallest value seen.
    pub min: f32,
    /// Largest value seen.
    pub max: f32,
    /// Number of values seen.
    pub count: u64,
}

impl RangeStats {
    /// Records a batch of values. A batch holding NaN or infinities is refused as a whole,
    /// with the number of bad values, and leaves the statistics unchanged.
    pub fn observe(&mut self, values: &[f32]) -> Result<(), StatsError> {
        check_finite(values)?;
        let Some(&first) = values.first() else { return Ok(()) };
        let (min, max) = values.iter().fold((first, first), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        self.merge(&RangeStats { min, max, count: values.len() as u64 });
        Ok(())
    }

    /// Largest magnitude seen (`0.0` before any value).
    pub fn absmax(&self) -> f32 {
        if self.count == 0 { 0.0 } else { self.min.abs().max(self.max.abs()) }
    }

    /// Whether no value has been observed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Folds in statistics collected elsewhere (another sample or thread).
    pub fn merge(&mut self, other: &RangeStats) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count += other.count;
    }
}

/// Histogram of `|x|` over `[0, edge]` in equal bins (pass 2).
///
/// Bin `k` holds `|x|` in `[k * w, (k + 1) * w)` with `w = edge / nbins`; `|x| == edge` and
/// anything above `edge` land in the last bin (values above are also counted separately).
#[derive(Debug, Clone, PartialEq)]
pub struct AbsHistogram {
    edge: f32,
    bins: Vec<u64>,
    above_edge: u64,
}

impl AbsHistogram {
    /// An empty histogram over `[0, edge]` with `nbins` bins (usually [`DEFAULT_BINS`] and
    /// the pass-1 [`RangeStats::absmax`]).
    pub fn new(edge: f32, nbins: usize) -> Result<Self, StatsError> {
        if !edge.is_finite() || edge < 0.0 {
            return Err(StatsError::BadEdge { edge });
        }
        if nbins == 0 {
            return Err(StatsError::NoBins);
        }
        Ok(AbsHistogram { edge, bins: vec![0; nbins], above_edge: 0 })
    }

    /// Records `|x|` of a batch. A batch holding NaN or infinities is refused as a whole and
    /// leaves the histogram unchanged.
    pub fn observe(&mut self, values: &[f32]) -> Result<(), StatsError> {
        check_finite(values)?;
        let last = self.bins.len() - 1;
        let per_unit = if self.edge > 0.0 { self.bins.len() as f64 / f64::from(self.edge) } else { 0.0 };
        for &v in values {
            let a = v.abs();
            let k = if a > self.edge {
                self.above_edge += 1;
                last
            } else {
                // `as` saturates; the product is finite and >= 0.
                ((f64::from(a) * per_unit) as usize).min(last)
            };
            self.bins[k] += 1;
        }
        Ok(())
    }

    /// Folds in a histogram with the same edge and bin count.
    pub fn merge(&mut self, other: &AbsHistogram) -> Result<(), StatsError> {
        if other.edge != self.edge || other.bins.len() != self.bins.len() {
            return Err(StatsError::HistogramMismatch {
                edge: self.edge,
                bins: self.bins.len(),
                theirs_edge: other.edge,
                theirs_bins: other.bins.len(),
            });
        }
        for (a, b) in self.bins.iter_mut().zip(&other.bins) {
            *a += b;
        }
        self.above_edge += other.above_edge;
        Ok(())
    }

    /// Number of values recorded.
    pub fn total(&self) -> u64 {
        self.bins.iter().sum()
    }

    /// Upper end of the histogram range.
    pub fn edge(&self) -> f32 {
        self.edge
    }

    /// Bin counts.
    pub fn bins(&self) -> &[u64] {
        &self.bins
    }

    /// Width of one bin.
    pub fn bin_width(&self) -> f64 {
        f64::from(self.edge) / self.bins.len() as f64
    }

    /// Number of values recorded above `edge` (counted in the last bin). Non-zero means the
    /// histogram's edge did not come from the same data's pass 1.
    pub fn above_edge(&self) -> u64 {
        self.above_edge
    }

    /// The value below which a fraction `q` of the recorded `|x|` lies, interpolating
    /// linearly inside the bin: `q = 0` gives the lower edge of the first non-empty bin,
    /// `q = 1` the upper edge of the last non-empty one. Never above `edge`.
    pub fn quantile(&self, q: f64) -> Result<f32, StatsError> {
        if !(0.0..=1.0).contains(&q) {
            return Err(StatsError::BadQuantile { q });
        }
        let total = self.total();
        if total == 0 {
            return Err(StatsError::Empty);
        }
        let target = q * total as f64;
        let width = self.bin_width();
        let mut below = 0u64;
        for (k, &c) in self.bins.iter().enumerate() {
            if c == 0 {
                continue;
            }
            if (below + c) as f64 >= target {
                let frac = ((target - below as f64) / c as f64).clamp(0.0, 1.0);
                return Ok((((k as f64 + frac) * width) as f32).min(self.edge));
            }
            below += c;
        }
        Ok(self.edge)
    }
}

/// How an activation's range is chosen from its calibration statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// The observed `(min, max)`.
    MinMax,
    /// Clip `|x|` at the given percentile (in `(50, 100]`, e.g. 99.99) of the histogram.
    Percentile(f64),
    /// Clip `|x|` at the threshold minimising the KL divergence (TensorRT-style).
    Entropy,
}

impl Method {
    /// `Percentile(p)`, validated.
    pub fn percentile(p: f64) -> Result<Self, StatsError> {
        let m = Method::Percentile(p);
        m.validate()?;
        Ok(m)
    }

    /// Checks the method's parameter: a percentile must be in `(50, 100]`.
    pub fn validate(&self) -> Result<(), StatsError> {
        match *self {
            Method::Percentile(p) if !(p > 50.0 && p <= 100.0) => Err(StatsError::BadPercentile { p }),
            _ => Ok(()),
        }
    }

    /// Whether [`select_range`] needs the pass-2 histogram for this method.
    pub fn needs_histogram(&self) -> bool {
        !matches!(self, Method::MinMax)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::MinMax => f.write_str("minmax"),
            Method::Percentile(p) => write!(f, "percentile({p})"),
            Method::Entropy => f.write_str("entropy"),
        }
    }
}

impl FromStr for Method {
    type Err = StatsError;

    /// Parses `minmax`, `percentile` (as [`DEFAULT_PERCENTILE`]), `percentile(P)` (what
    /// `Display` writes) or `entropy`, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let method = match lower.as_str() {
            "minmax" => Method::MinMax,
            "percentile" => Method::Percentile(DEFAULT_PERCENTILE),
            "entropy" => Method::Entropy,
            other => match other.strip_prefix("percentile(").and_then(|r| r.strip_suffix(')')) {
                Some(p) => Method::Percentile(p.trim().parse().map_err(|_| StatsError::UnknownMethod(s.to_string()))?),
                None => return Err(StatsError::UnknownMethod(s.to_string())),
            },
        };
        method.validate()?;
        Ok(method)
    }
}

/// The range `(lo, hi)` an activation is quantized over.
///
/// `MinMax` gives `(min, max)`. `Percentile(p)` and `Entropy` pick a magnitude threshold `T`
/// from the histogram (`hist.quantile(p / 100)`, resp. [`entropy_threshold`] with
/// [`DEFAULT_QUANTIZED_BINS`]) and clip: `(max(min, -T), min(max, T))`. The result always lies
/// within `[min, max]` with `lo <= hi`: if all data lies on one side of zero beyond `T`, the
/// bound nearest zero is kept instead of crossing the other one. The result is not extended
/// to contain 0; the activation-parameter step does that.
pub fn select_range(range: &RangeStats, hist: Option<&AbsHistogram>, method: Method) -> Result<(f32, f32), StatsError> {
    method.validate()?;
    if range.is_empty() {
        return Err(StatsError::Empty);
    }
    let (min, max) = (range.min, range.max);
    if !min.is_finite() || !max.is_finite() {
        return Err(StatsError::NonFinite {
            count: u64::from(!min.is_finite()) + u64::from(!max.is_finite()),
            total: 2,
        });
    }
    let threshold = match method {
        Method::MinMax => return Ok((min, max)),
        Method::Percentile(p) => hist.ok_or(StatsError::MissingHistogram { method })?.quantile(p / 100.0)?,
        Method::Entropy => {
            entropy_threshold(hist.ok_or(StatsError::MissingHistogram { method })?, DEFAULT_QUANTIZED_BINS)?
        }
    };
    let lo = min.max(-threshold).min(max);
    let hi = max.min(threshold).max(min);
    Ok((lo, hi))
}

/// KL-divergence threshold search (TensorRT "entropy" calibration) on an `|x|` histogram.
///
/// For every candidate `i` in `num_quantized_bins..=nbins` (number of bins kept):
/// * reference `P` = `bins[0..i]`, with the clipped mass `bins[i..]` added to `P[i - 1]`;
/// * candidate `Q`: `bins[0..i]` (without the clipped mass) merged into `num_quantized_bins`
///   groups of near-equal size (group `g` covers `[g * i / n, (g + 1) * i / n)`), each group's
///   mass spread evenly over the bins where `P` is non-zero, zero where `P` is zero;
/// * both are smoothed (zero bins get 1e-4 counts, taken evenly from the non-zero ones, as in
///   the MXNet / onnxruntime reference), normalized, and `KL(P || Q)` is computed; a candidate
///   whose smoothing would make a bin non-positive (only when `Q` is all zero or nearly so)
///   counts as infinite divergence.
///
/// Before the search, bin 0 is given bin 1's count (as NVIDIA's pytorch-quantization does),
/// so that a spike of exact zeros does not decide the threshold; if nothing is left, `T = edge`.
/// The smallest `i` with the least divergence wins, and the threshold is the middle of the first
/// clipped bin, `T = (i + 0.5) * bin_width`, capped at `edge` (so `i = nbins` gives `edge`).
/// If the histogram has no more bins than `num_quantized_bins`, or every candidate is
/// infinite, `T = edge`. Cost: about `nbins² / 2` steps, one logarithm each.
pub fn entropy_threshold(hist: &AbsHistogram, num_quantized_bins: usize) -> Result<f32, StatsError> {
    if num_quantized_bins == 0 {
        return Err(StatsError::NoQuantizedBins);
    }
    if hist.total() == 0 {
        return Err(StatsError::Empty);
    }
    let n = hist.bins().len();
    if n <= num_quantized_bins {
        return Ok(hist.edge());
    }
    // Exact zeros (ReLU outputs, padding) pile up in bin 0 and quantize exactly anyway; left
    // as is, that spike makes every coarse candidate look bad and drags the threshold far down.
    let mut bins = hist.bins().to_vec();
    bins[0] = bins[1];
    let total: u64 = bins.iter().sum();
    if total == 0 {
        return Ok(hist.edge());
    }
    let bins = &bins[..];
    let mut mass = vec![0u64; n + 1];
    let mut nonzero = vec![0usize; n + 1];
    for (k, &c) in bins.iter().enumerate() {
        mass[k + 1] = mass[k] + c;
        nonzero[k + 1] = nonzero[k] + usize::from(c > 0);
    }
    let prefix = Prefix { mass: &mass, nonzero: &nonzero };
    let mut group_q = vec![0.0f64; num_quantized_bins];
    let mut best = (f64::INFINITY, n);
    for i in num_quantized_bins..=n {
        let kl = divergence(bins, &prefix, i, num_quantized_bins, total, &mut group_q);
        if kl < best.0 {
            best = (kl, i);
        }
    }
    let t = ((best.1 as f64 + 0.5) * hist.bin_width()) as f32;
    Ok(t.min(hist.edge()))
}

/// Prefix sums of a histogram: `mass[k]` = counts in `bins[0..k]`, `nonzero[k]` = non-empty
/// bins among them.
struct Prefix<'a> {
    mass: &'a [u64],
    nonzero: &'a [usize],
}

/// `KL(P || Q)` for candidate `i` of [`entropy_threshold`]; `f64::INFINITY` when undefined.
/// `group_q` is scratch space of `nq` entries.
fn divergence(bins: &[u64], prefix: &Prefix<'_>, i: usize, nq: usize, total: u64, group_q: &mut [f64]) -> f64 {
    let kept = prefix.mass[i];
    let last = bins[i - 1] + (total - kept); // P[i - 1] with the clipped mass
    // P is non-zero where bins are, plus at i - 1 if only the clipped mass lands there.
    let extra_nz = usize::from(bins[i - 1] == 0 && last > 0);
    let nnz_p = prefix.nonzero[i] + extra_nz;
    // Q per group: mass / non-zero bins of P in the group; count Q's non-zero bins.
    let mut nnz_q = 0usize;
    let mut min_q = f64::INFINITY;
    for (g, slot) in group_q.iter_mut().enumerate() {
        let (s, e) = (g * i / nq, (g + 1) * i / nq);
        let m = prefix.mass[e] - prefix.mass[s];
        let nz = prefix.nonzero[e] - prefix.nonzero[s] + if e == i { extra_nz } else { 0 };
        *slot = if m > 0 { m as f64 / nz as f64 } else { 0.0 };
        if m > 0 {
            nnz_q += nz;
            min_q = min_q.min(*slot);
        }
    }
    if nnz_q == 0 {
        return f64::INFINITY;
    }
    // Smoothing: each zero bin gets EPS, taken evenly from the non-zero ones (sums unchanged).
    let eps_p = SMOOTHING_EPS * (i - nnz_p) as f64 / nnz_p as f64;
    let eps_q = SMOOTHING_EPS * (i - nnz_q) as f64 / nnz_q as f64;
    // Non-zero P bins hold at least one count.
    if eps_p >= 1.0 || eps_q >= min_q {
        return f64::INFINITY;
    }
    // Σ p' ln(p' / q') over the bins where P is non-zero; where P is zero, Q is zero too and
    // both smoothed values are EPS, contributing nothing.
    let mut acc = 0.0f64;
    for (g, &qv) in group_q.iter().enumerate() {
        let (s, e) = (g * i / nq, (g + 1) * i / nq);
        let q = if qv > 0.0 { qv - eps_q } else { SMOOTHING_EPS };
        for (k, &c) in bins[s..e].iter().enumerate() {
            let c = if s + k == i - 1 { last } else { c };
            if c > 0 {
                let p = c as f64 - eps_p;
                acc += p * (p / q).ln();
            }
        }
    }
    // Normalize: Σ p' = total, Σ q' = kept.
    let sp = total as f64;
    acc / sp + (kept as f64 / sp).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `n` deterministic samples of `|x|` with density `2 (1 - x / top) / top` on `[0, top]`
    /// (a peaked, normal-like shape), by inverse CDF at evenly spaced probabilities.
    fn triangular(n: usize, top: f32) -> Vec<f32> {
        (0..n).map(|k| top * (1.0 - (1.0 - (k as f64 + 0.5) / n as f64).sqrt()) as f32).collect()
    }

    /// `n` evenly spaced samples in `[0, top]`.
    fn uniform(n: usize, top: f32) -> Vec<f32> {
        (0..n).map(|k| top * k as f32 / (n - 1) as f32).collect()
    }

    /// Both passes over `values`.
    fn collect(values: &[f32], nbins: usize) -> (RangeStats, AbsHistogram) {
        let mut r = RangeStats::default();
        r.observe(values).unwrap();
        let mut h = AbsHistogram::new(r.absmax(), nbins).unwrap();
        h.observe(values).unwrap();
        (r, h)
    }

    #[test]
    fn range_stats_observe_and_merge() {
        let mut r = RangeStats::default();
        assert_eq!(r.absmax(), 0.0);
        r.observe(&[]).unwrap();
        assert!(r.is_empty());
        r.observe(&[2.0, 3.0]).unwrap();
        assert_eq!((r.min, r.max, r.count), (2.0, 3.0, 2)); // not (0, 3): the default is not data
        let e = r.observe(&[1.0, f32::NAN, f32::INFINITY, -9.0]).unwrap_err();
        assert_eq!(e, StatsError::NonFinite { count: 2, total: 4 });
        assert_eq!(e.to_string(), "2 of 4 values are NaN or infinite");
        assert_eq!((r.min, r.max, r.count), (2.0, 3.0, 2));
        let mut other = RangeStats::default();
        other.observe(&[-5.0, 1.0]).unwrap();
        r.merge(&other);
        assert_eq!((r.min, r.max, r.count, r.absmax()), (-5.0, 3.0, 4, 5.0));
        let mut empty = RangeStats::default();
        empty.merge(&other);
        assert_eq!(empty, other);
        r.merge(&RangeStats::default());
        assert_eq!(r.count, 4);
    }

    #[test]
    fn histogram_binning() {
        let mut h = AbsHistogram::new(1.0, 4).unwrap();
        h.observe(&[0.0, 0.1, -0.3, 0.25, 0.5, 0.99, 1.0, -1.0]).unwrap();
        assert_eq!(h.bins(), &[2, 2, 1, 3]);
        assert_eq!(h.above_edge(), 0);
        h.observe(&[2.0]).unwrap();
        assert_eq!((h.bins()[3], h.above_edge(), h.total()), (4, 1, 9));
        assert_eq!(h.observe(&[f32::NAN]).unwrap_err(), StatsError::NonFinite { count: 1, total: 1 });
        assert_eq!(h.total(), 9);
        assert_eq!(AbsHistogram::new(-1.0, 4).unwrap_err(), StatsError::BadEdge { edge: -1.0 });
        assert!(matches!(AbsHistogram::new(f32::NAN, 4), Err(StatsError::BadEdge { .. })));
        assert_eq!(AbsHistogram::new(1.0, 0).unwrap_err(), StatsError::NoBins);
        let mut z = AbsHistogram::new(0.0, 8).unwrap();
        z.observe(&[0.0, -0.0]).unwrap();
        assert_eq!((z.bins()[0], z.quantile(1.0).unwrap()), (2, 0.0));
        let mut m = AbsHistogram::new(1.0, 4).unwrap();
        m.merge(&h).unwrap();
        assert_eq!(m, h);
        assert!(matches!(m.merge(&z), Err(StatsError::HistogramMismatch { .. })));
    }

    #[test]
    fn quantile_edges_and_errors() {
        let mut h = AbsHistogram::new(4.0, 4).unwrap();
        h.observe(&[1.5, 1.5, 2.5, 2.5]).unwrap(); // bins [0, 2, 2, 0]
        assert_eq!(h.quantile(0.0).unwrap(), 1.0);
        assert_eq!(h.quantile(0.25).unwrap(), 1.5);
        assert_eq!(h.quantile(0.5).unwrap(), 2.0);
        assert_eq!(h.quantile(1.0).unwrap(), 3.0);
        assert!(matches!(h.quantile(1.5), Err(StatsError::BadQuantile { .. })));
        assert!(matches!(h.quantile(f64::NAN), Err(StatsError::BadQuantile { .. })));
        assert_eq!(AbsHistogram::new(1.0, 4).unwrap().quantile(0.5).unwrap_err(), StatsError::Empty);
    }

    #[test]
    fn percentile_lands_on_known_quantiles() {
        let (_, h) = collect(&uniform(100_001, 1.0), DEFAULT_BINS);
        let w = h.bin_width() as f32;
        for q in [0.5, 0.9, 0.99, 0.9999] {
            let t = h.quantile(q).unwrap();
            assert!((t - q as f32).abs() <= w, "uniform q {q}: {t}");
        }
        let (_, h) = collect(&triangular(200_000, 3.0), DEFAULT_BINS);
        let w = h.bin_width() as f32;
        for q in [0.5f64, 0.9, 0.99, 0.999] {
            let want = 3.0 * (1.0 - (1.0 - q).sqrt()) as f32;
            let t = h.quantile(q).unwrap();
            assert!((t - want).abs() <= w, "triangular q {q}: {t} vs {want}");
        }
    }

    #[test]
    fn select_range_minmax_and_percentile() {
        let mut values = uniform(10_001, 1.0);
        values.iter_mut().step_by(2).for_each(|v| *v = -*v); // signed, |x| uniform on [0, 1]
        values.push(0.5); // the positive side tops out at 0.9999 < 1
        let (r, h) = collect(&values, DEFAULT_BINS);
        assert_eq!(select_range(&r, None, Method::MinMax).unwrap(), (r.min, r.max));
        assert_eq!(select_range(&r, Some(&h), Method::MinMax).unwrap(), (r.min, r.max));
        let (lo, hi) = select_range(&r, Some(&h), Method::percentile(90.0).unwrap()).unwrap();
        let w = h.bin_width() as f32;
        assert!((lo + 0.9).abs() <= w && (hi - 0.9).abs() <= w, "({lo}, {hi})");
        assert_eq!(select_range(&r, Some(&h), Method::percentile(100.0).unwrap()).unwrap(), (r.min, r.max));
        // One-sided data: the clipped side stays within the data.
        let (r, h) = collect(&uniform(1001, 10.0)[500..], DEFAULT_BINS); // [5, 10]
        let (lo, hi) = select_range(&r, Some(&h), Method::percentile(60.0).unwrap()).unwrap();
        assert!(lo == 5.0 && hi > 5.0 && hi < 10.0, "({lo}, {hi})");
        assert_eq!(
            select_range(&r, None, Method::Entropy).unwrap_err(),
            StatsError::MissingHistogram { method: Method::Entropy }
        );
        assert_eq!(select_range(&RangeStats::default(), Some(&h), Method::MinMax).unwrap_err(), StatsError::Empty);
        assert!(matches!(select_range(&r, Some(&h), Method::Percentile(40.0)), Err(StatsError::BadPercentile { .. })));
    }

    #[test]
    fn method_parsing() {
        assert_eq!("minmax".parse::<Method>().unwrap(), Method::MinMax);
        assert_eq!("Entropy".parse::<Method>().unwrap(), Method::Entropy);
        assert_eq!("percentile".parse::<Method>().unwrap(), Method::Percentile(DEFAULT_PERCENTILE));
        assert_eq!("percentile(99.9)".parse::<Method>().unwrap(), Method::Percentile(99.9));
        assert_eq!(Method::Percentile(99.9).to_string(), "percentile(99.9)");
        assert!("percentile(x)".parse::<Method>().is_err());
        assert!("percentile(20)".parse::<Method>().is_err());
        assert!(matches!("kl".parse::<Method>(), Err(StatsError::UnknownMethod(s)) if s == "kl"));
        for m in [Method::MinMax, Method::Percentile(99.9), Method::Entropy] {
            assert_eq!(m.to_string().parse::<Method>().unwrap().to_string(), m.to_string());
        }
        assert!(Method::percentile(50.0).is_err());
        assert!(Method::percentile(f64::NAN).is_err());
        assert!(Method::percentile(100.01).is_err());
        assert!(Method::percentile(99.999).is_ok());
        assert!(!Method::MinMax.needs_histogram() && Method::Entropy.needs_histogram());
    }

    #[test]
    fn entropy_clips_outliers() {
        // A peaked bulk in [0, 10] plus a handful of huge outliers.
        let mut values = triangular(100_000, 10.0);
        values.extend([100.0, -100.0, 95.0]);
        let (r, h) = collect(&values, DEFAULT_BINS);
        let t = entropy_threshold(&h, DEFAULT_QUANTIZED_BINS).unwrap();
        assert!(t < 15.0, "threshold {t} should sit well below the outliers");
        let (lo, hi) = select_range(&r, Some(&h), Method::Entropy).unwrap();
        assert_eq!((lo, hi), (-t, t));
        // Outliers closer in: still clipped, the bulk kept.
        let mut values = triangular(100_000, 10.0);
        values.extend([20.0; 3]);
        let (_, h) = collect(&values, DEFAULT_BINS);
        let t = entropy_threshold(&h, DEFAULT_QUANTIZED_BINS).unwrap();
        assert!(t > 4.0 && t < 12.0, "threshold {t}");
    }

    #[test]
    fn entropy_ignores_zero_spike() {
        // ReLU-like: half exact zeros, half a peaked bulk on [0, 10].
        let mut values = vec![0.0; 100_000];
        values.extend(triangular(100_000, 10.0));
        let (_, h) = collect(&values, DEFAULT_BINS);
        let t = entropy_threshold(&h, DEFAULT_QUANTIZED_BINS).unwrap();
        assert!(t > 8.0, "threshold {t}: the zero spike must not decide the threshold");
    }

    #[test]
    fn entropy_keeps_uniform_range() {
        let (_, h) = collect(&uniform(200_000, 1.0), DEFAULT_BINS);
        let t = entropy_threshold(&h, DEFAULT_QUANTIZED_BINS).unwrap();
        assert!(t >= 0.95, "threshold {t}");
        assert_eq!(entropy_threshold(&h, DEFAULT_QUANTIZED_BINS).unwrap(), t, "deterministic");
    }

    #[test]
    fn entropy_edge_cases() {
        let mut h = AbsHistogram::new(1.0, 64).unwrap();
        assert_eq!(entropy_threshold(&h, 128).unwrap_err(), StatsError::Empty);
        h.observe(&[0.5]).unwrap();
        assert_eq!(entropy_threshold(&h, 128).unwrap(), 1.0); // fewer bins than levels
        assert_eq!(entropy_threshold(&h, 0).unwrap_err(), StatsError::NoQuantizedBins);
        // All mass in bin 0: nothing to search, the whole range is kept.
        let mut h = AbsHistogram::new(1.0, DEFAULT_BINS).unwrap();
        h.observe(&[0.0; 100]).unwrap();
        h.observe(&[1e-5]).unwrap();
        assert_eq!(entropy_threshold(&h, DEFAULT_QUANTIZED_BINS).unwrap(), 1.0);
        // Data within the first `num_quantized_bins` bins: nothing is clipped.
        let mut h = AbsHistogram::new(100.0, DEFAULT_BINS).unwrap();
        h.observe(&uniform(1000, 1.0)).unwrap();
        let t = entropy_threshold(&h, DEFAULT_QUANTIZED_BINS).unwrap();
        assert!((1.0..=6.3).contains(&t), "threshold {t}");
        // Zero edge.
        let mut h = AbsHistogram::new(0.0, DEFAULT_BINS).unwrap();
        h.observe(&[0.0; 10]).unwrap();
        assert_eq!(entropy_threshold(&h, DEFAULT_QUANTIZED_BINS).unwrap(), 0.0);
    }

    /// Values spanning a few magnitudes, with zeros.
    fn values() -> impl Strategy<Value = Vec<f32>> {
        prop::collection::vec(
            prop_oneof![1 => Just(0.0f32), 4 => -1.0f32..1.0, 1 => -100.0f32..100.0, 1 => -1e-3f32..1e-3],
            1..400,
        )
    }

    proptest! {
        #[test]
        fn quantile_is_monotone(v in values(), nbins in 1usize..300, a in 0.0f64..=1.0, b in 0.0f64..=1.0) {
            let (_, h) = collect(&v, nbins);
            let (qa, qb) = (h.quantile(a.min(b)).unwrap(), h.quantile(a.max(b)).unwrap());
            prop_assert!(qa <= qb, "q({}) = {} > q({}) = {}", a.min(b), qa, a.max(b), qb);
            prop_assert!(qb <= h.edge() && qa >= 0.0);
        }

        #[test]
        fn selected_range_stays_within_data(v in values(), p in 50.001f64..=100.0, nbins in 1usize..600) {
            let (r, h) = collect(&v, nbins);
            for m in [Method::MinMax, Method::Percentile(p), Method::Entropy] {
                let (lo, hi) = select_range(&r, Some(&h), m).unwrap();
                prop_assert!(r.min <= lo && lo <= hi && hi <= r.max, "{}: ({}, {}) vs [{}, {}]", m, lo, hi, r.min, r.max);
            }
        }

        #[test]
        fn observe_rejects_non_finite(v in values(), at in prop::collection::vec(any::<prop::sample::Index>(), 1..5)) {
            let mut v = v;
            let mut bad = std::collections::BTreeSet::new();
            for (n, ix) in at.iter().enumerate() {
                let i = ix.index(v.len());
                v[i] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][n % 3];
                bad.insert(i);
            }
            let want = StatsError::NonFinite { count: bad.len() as u64, total: v.len() as u64 };
            let mut r = RangeStats::default();
            prop_assert_eq!(r.observe(&v).unwrap_err(), want.clone());
            prop_assert!(r.is_empty());
            let mut h = AbsHistogram::new(1.0, 16).unwrap();
            prop_assert_eq!(h.observe(&v).unwrap_err(), want);
            prop_assert_eq!(h.total(), 0);
        }
    }
}
