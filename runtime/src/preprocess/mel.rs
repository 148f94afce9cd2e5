//! Log-mel front end of the audio encoder.
//!
//! The exact algorithm (all arithmetic in `f64`, the result cast to `f32`), for mono samples `x`
//! and the [`AudioPreprocess`] fields `sample_rate` (`sr`), `n_fft`, `hop`, `n_mels`, `f_min`,
//! `f_max`, `log_offset`:
//!
//! 1. If `len(x) < n_fft`, `x` is zero-padded on the right to `n_fft` samples. There is no
//!    centring or other padding: `n_frames = 1 + (len(x) - n_fft) // hop`, frame `t` is
//!    `x[t*hop : t*hop + n_fft]` (a tail shorter than a frame is dropped).
//! 2. Periodic Hann window `w[n] = 0.5 - 0.5 * cos(2*pi*n / n_fft)` for `n = 0..n_fft-1`
//!    (`torch.hann_window(n_fft, periodic=True)`).
//! 3. Power spectrum `P[k, t] = |rfft(frame_t * w)[k]|^2` for `k = 0..n_fft//2` (no scaling).
//! 4. HTK mel scale `mel(f) = 2595 * log10(1 + f/700)`, inverse `hz(m) = 700 * (10^(m/2595) - 1)`.
//!    `m_pts = numpy.linspace(mel(f_min), mel(f_max), n_mels + 2)` (that is
//!    `mel(f_min) + i * step` with `step = (mel(f_max) - mel(f_min)) / (n_mels + 1)`, the last
//!    point set to `mel(f_max)` exactly), `f_pts = hz(m_pts)`, bin frequencies `f[k] = k*sr/n_fft`.
//!    Filter `m` is `fb[m, k] = max(0, min((f[k] - f_pts[m]) / (f_pts[m+1] - f_pts[m]),
//!    (f_pts[m+2] - f[k]) / (f_pts[m+2] - f_pts[m+1])))`: the slopes of torchaudio
//!    `melscale_fbanks(norm=None, mel_scale="htk")`, computed on frequencies, not bins
//!    (torchaudio uses `linspace(0, sr//2, n_fft//2+1)` for `f`, identical for even `sr` and `n_fft`).
//! 5. `log_mel[m, t] = ln(sum_k fb[m, k] * P[k, t] + log_offset)` (natural logarithm).
//!
//! In NumPy:
//!
//! ```text
//! x = np.pad(x, (0, max(0, n_fft - len(x)))).astype(np.float64)
//! n_frames = 1 + (len(x) - n_fft) // hop
//! w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
//! frames = np.stack([x[t * hop : t * hop + n_fft] for t in range(n_frames)]) * w
//! power = np.abs(np.fft.rfft(frames, axis=1)) ** 2            # [n_frames, n_freqs]
//! mel = lambda f: 2595 * np.log10(1 + f / 700); hz = lambda m: 700 * (10 ** (m / 2595) - 1)
//! f_pts = hz(np.linspace(mel(f_min), mel(f_max), n_mels + 2))
//! f = np.arange(n_fft // 2 + 1) * sr / n_fft
//! down = (f[None, :] - f_pts[:-2, None]) / (f_pts[1:-1] - f_pts[:-2])[:, None]
//! up = (f_pts[2:, None] - f[None, :]) / (f_pts[2:] - f_pts[1:-1])[:, None]
//! fb = np.maximum(0, np.minimum(down, up))                       # [n_mels, n_freqs]
//! log_mel = np.log(fb @ power.T + log_offset).astype(np.float32)  # [n_mels, n_frames]
//! ```
//!
//! [`LogMel::segments`] then cuts `A = segments` windows of `T = segment_frames` frames: if
//! `n_frames < T` the log-mel is padded on the right with `ln(log_offset)` (the value of
//! silence) up to `T` frames; with `N` the (padded) frame count, segment `a` starts at frame
//! `round(a * (N - T) / (A - 1))`, halves rounded up (integer formula
//! `(2 a (N - T) + (A - 1)) div (2 (A - 1))`), and at frame 0 when `A == 1`.

use std::fmt;
use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use crate::manifest::AudioPreprocess;

/// HTK mel of a frequency in Hz.
fn hz_to_mel(f: f64) -> f64 {
    2595.0 * (1.0 + f / 700.0).log10()
}

/// Frequency in Hz of an HTK mel value.
fn mel_to_hz(m: f64) -> f64 {
    700.0 * (10f64.powf(m / 2595.0) - 1.0)
}

/// A log-mel extractor with its window, filterbank and FFT plan computed once.
#[derive(Clone)]
pub struct LogMel {
    params: AudioPreprocess,
    window: Vec<f64>,
    /// `[n_mels, n_freqs]` row-major.
    filterbank: Vec<f64>,
    /// Non-zero bin range `start..end` of each filter.
    support: Vec<(usize, usize)>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl fmt::Debug for LogMel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogMel").field("params", &self.params).finish_non_exhaustive()
    }
}

impl LogMel {
    /// Precomputes the window, the filterbank and the FFT plan for `p`.
    ///
    /// # Panics
    ///
    /// If `p.n_fft < 2` or `p.hop == 0`; `Manifest::validate` rejects such manifests.
    pub fn new(p: &AudioPreprocess) -> LogMel {
        assert!(p.n_fft >= 2 && p.hop > 0, "LogMel: n_fft must be >= 2 and hop > 0 (got {} and {})", p.n_fft, p.hop);
        let n_fft = p.n_fft;
        let window =
            (0..n_fft).map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / n_fft as f64).cos()).collect();

        let n_freqs = n_fft / 2 + 1;
        let (m_min, m_max) = (hz_to_mel(f64::from(p.f_min)), hz_to_mel(f64::from(p.f_max)));
        let n_points = p.n_mels + 2;
        let step = (m_max - m_min) / (n_points - 1) as f64;
        let f_pts: Vec<f64> =
            (0..n_points).map(|i| mel_to_hz(if i == n_points - 1 { m_max } else { m_min + i as f64 * step })).collect();
        let sr = f64::from(p.sample_rate);
        let mut filterbank = vec![0.0; p.n_mels * n_freqs];
        let mut support = Vec::with_capacity(p.n_mels);
        for (row, pts) in filterbank.chunks_exact_mut(n_freqs).zip(f_pts.windows(3)) {
            let (lo, centre, hi) = (pts[0], pts[1], pts[2]);
            for (k, weight) in row.iter_mut().enumerate() {
                let f = k as f64 * sr / n_fft as f64;
                let down = (f - lo) / (centre - lo);
                let up = (hi - f) / (hi - centre);
                *weight = down.min(up).max(0.0);
            }
            let start = row.iter().position(|&w| w > 0.0).unwrap_or(0);
            let end = row.iter().rposition(|&w| w > 0.0).map_or(start, |e| e + 1);
            support.push((start, end));
        }
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
        LogMel { params: p.clone(), window, filterbank, support, fft }
    }

    /// The parameters this extractor was built for.
    pub fn params(&self) -> &AudioPreprocess {
        &self.params
    }

    /// The mel filterbank, `[n_mels, n_fft/2 + 1]` row-major.
    pub fn filterbank(&self) -> &[f64] {
        &self.filterbank
    }

    /// Log-mel of `samples` as `[n_mels, n_frames]` row-major, and `n_frames` (at least 1).
    pub fn compute(&self, samples: &[f32]) -> (Vec<f32>, usize) {
        let p = &self.params;
        let (n_fft, hop, n_mels) = (p.n_fft, p.hop, p.n_mels);
        let padded;
        let x = if samples.len() < n_fft {
            let mut v = samples.to_vec();
            v.resize(n_fft, 0.0);
            padded = v;
            &padded[..]
        } else {
            samples
        };
        let n_frames = 1 + (x.len() - n_fft) / hop;
        let mut out = vec![0.0f32; n_mels * n_frames];
        let mut bufs = self.buffers();
        let mut column = vec![0.0f32; n_mels];
        for (t, frame) in x.windows(n_fft).step_by(hop).enumerate() {
            self.frame(frame, &mut bufs, &mut column);
            for (m, &v) in column.iter().enumerate() {
                out[m * n_frames + t] = v;
            }
        }
        (out, n_frames)
    }

    /// Working buffers for [`LogMel::frame`].
    pub fn buffers(&self) -> MelBuffers {
        MelBuffers {
            input: self.fft.make_input_vec(),
            spectrum: self.fft.make_output_vec(),
            scratch: self.fft.make_scratch_vec(),
            power: vec![0.0f64; self.params.n_fft / 2 + 1],
        }
    }

    /// The log-mel column (`n_mels` values) of one frame of `n_fft` samples, as
    /// [`LogMel::compute`] computes each of its columns. Allocates nothing.
    pub fn frame(&self, frame: &[f32], bufs: &mut MelBuffers, out: &mut [f32]) {
        let offset = f64::from(self.params.log_offset);
        for (dst, (&s, &w)) in bufs.input.iter_mut().zip(frame.iter().zip(&self.window)) {
            *dst = f64::from(s) * w;
        }
        self.fft
            .process_with_scratch(&mut bufs.input, &mut bufs.spectrum, &mut bufs.scratch)
            .expect("FFT buffers are sized by the plan");
        for (pw, c) in bufs.power.iter_mut().zip(&bufs.spectrum) {
            *pw = power_of(c);
        }
        let n_freqs = bufs.power.len();
        for (m, (row, &(start, end))) in self.filterbank.chunks_exact(n_freqs).zip(&self.support).enumerate() {
            let energy: f64 = row[start..end].iter().zip(&bufs.power[start..end]).map(|(w, p)| w * p).sum();
            out[m] = (energy + offset).ln() as f32;
        }
    }

    /// `A` segments of `T` log-mel frames as `[A, 1, n_mels, T]` row-major (`A = segments`,
    /// `T = segment_frames`), placed as the module documentation describes.
    pub fn segments(&self, samples: &[f32]) -> Vec<f32> {
        let p = &self.params;
        let (n_mels, seg_len, n_seg) = (p.n_mels, p.segment_frames, p.segments);
        let (mel, n_frames) = self.compute(samples);
        let silence = f64::from(p.log_offset).ln() as f32;
        let total = n_frames.max(seg_len);
        let starts: Vec<usize> = if n_seg <= 1 {
            vec![0; n_seg]
        } else {
            let (span, steps) = ((total - seg_len) as u128, (n_seg - 1) as u128);
            (0..n_seg).map(|a| ((2 * a as u128 * span + steps) / (2 * steps)) as usize).collect()
        };
        let mut out = Vec::with_capacity(n_seg * n_mels * seg_len);
        for start in starts {
            for row in mel.chunks_exact(n_frames) {
                let available = row.get(start..).unwrap_or_default();
                let taken = available.len().min(seg_len);
                out.extend_from_slice(&available[..taken]);
                out.resize(out.len() + seg_len - taken, silence);
            }
        }
        out
    }
}

/// FFT input, output, scratch and power buffers of one [`LogMel`], reused frame after frame.
pub struct MelBuffers {
    input: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
    power: Vec<f64>,
}

/// Log-mel frames of a stream of samples, computed as the samples arrive: frame `t` covers
/// samples `t * hop .. t * hop + n_fft` of the stream, exactly as [`LogMel::compute`] frames a
/// whole clip (same values). Holds `n_fft + max_push` samples; allocates nothing after creation.
pub struct MelStream {
    mel: LogMel,
    bufs: MelBuffers,
    pending: Vec<f32>,
    column: Vec<f32>,
    frames: u64,
    samples: u64,
}

impl MelStream {
    /// A stream for `mel`; `max_push` is the most samples one [`MelStream::push`] receives.
    pub fn new(mel: LogMel, max_push: usize) -> MelStream {
        let n_fft = mel.params.n_fft;
        MelStream {
            bufs: mel.buffers(),
            pending: Vec::with_capacity(n_fft + max_push),
            column: vec![0.0; mel.params.n_mels],
            mel,
            frames: 0,
            samples: 0,
        }
    }

    /// The extractor.
    pub fn mel(&self) -> &LogMel {
        &self.mel
    }

    /// Frames emitted so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Samples received so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Appends samples and calls `emit(t, column)` for every frame they complete (`t` counts
    /// frames from the start of the stream; `column` holds `n_mels` values).
    pub fn push(&mut self, mut samples: &[f32], mut emit: impl FnMut(u64, &[f32])) {
        let (n_fft, hop) = (self.mel.params.n_fft, self.mel.params.hop);
        self.samples += samples.len() as u64;
        while !samples.is_empty() {
            let room = self.pending.capacity() - self.pending.len();
            let take = room.min(samples.len());
            self.pending.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            let mut start = 0;
            while self.pending.len() - start >= n_fft {
                self.mel.frame(&self.pending[start..start + n_fft], &mut self.bufs, &mut self.column);
                emit(self.frames, &self.column);
                self.frames += 1;
                start += hop;
            }
            let keep = start.min(self.pending.len());
            self.pending.drain(..keep);
        }
    }
}

fn power_of(c: &Complex<f64>) -> f64 {
    c.re * c.re + c.im * c.im
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> AudioPreprocess {
        AudioPreprocess {
            sample_rate: 16000,
            n_fft: 400,
            hop: 160,
            n_mels: 64,
            f_min: 0.0,
            f_max: 8000.0,
            segment_frames: 96,
            segments: 2,
            log_offset: 1e-6,
        }
    }

    fn sine(freq: f64, n: usize) -> Vec<f32> {
        (0..n).map(|i| (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / 16000.0).sin()) as f32).collect()
    }

    #[test]
    fn hand_computed_filterbank() {
        let p = AudioPreprocess { n_fft: 16, n_mels: 2, ..params() };
        let fb = LogMel::new(&p).filterbank().to_vec();
        #[rustfmt::skip]
        let want = [
            0.0, 0.963_201_287_5, 0.494_691_759_4, 0.026_182_231_4, 0.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 0.036_798_712_5, 0.505_308_240_6, 0.973_817_768_6, 0.809_042_522_0, 0.606_781_891_5,
            0.404_521_261_0, 0.202_260_630_5, 0.0,
        ];
        assert_eq!(fb.len(), want.len());
        for (got, want) in fb.iter().zip(want) {
            assert!((got - want).abs() < 1e-9, "{fb:?}");
        }
    }

    #[test]
    fn filterbank_rows_are_triangles() {
        let mel = LogMel::new(&params());
        for row in mel.filterbank().chunks_exact(201) {
            assert!(row.iter().all(|&w| (0.0..=1.0 + 1e-12).contains(&w)));
            let peak = row.iter().copied().fold(0.0, f64::max);
            assert!(peak > 0.0, "every filter covers at least one bin");
        }
        let wide = LogMel::new(&AudioPreprocess { n_fft: 4096, n_mels: 8, ..params() });
        for row in wide.filterbank().chunks_exact(2049) {
            let peak = row.iter().copied().fold(0.0, f64::max);
            assert!(peak > 0.99 && peak <= 1.0 + 1e-12, "{peak}");
        }
    }

    #[test]
    fn window_is_periodic_hann() {
        let mel = LogMel::new(&params());
        assert_eq!(mel.window[0], 0.0);
        assert!((mel.window[200] - 1.0).abs() < 1e-15);
        assert!((mel.window[100] - 0.5).abs() < 1e-12);
        assert!((mel.window[1] - mel.window[399]).abs() < 1e-15);
    }

    #[test]
    fn sine_peaks_in_its_band() {
        let p = params();
        let mel = LogMel::new(&p);
        let (out, n_frames) = mel.compute(&sine(1000.0, 16000));
        assert_eq!(n_frames, 1 + (16000 - 400) / 160);
        assert_eq!(out.len(), 64 * n_frames);
        // Band m spans f_pts[m]..f_pts[m+2].
        let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(8000.0));
        let f_pt = |i: usize| mel_to_hz(lo + i as f64 * (hi - lo) / 65.0);
        for t in 0..n_frames {
            let best = (0..64).max_by(|&a, &b| out[a * n_frames + t].total_cmp(&out[b * n_frames + t])).unwrap();
            assert!(f_pt(best) < 1000.0 && 1000.0 < f_pt(best + 2), "frame {t}: band {best}");
        }
    }

    #[test]
    fn silence_and_short_input() {
        let p = params();
        let mel = LogMel::new(&p);
        let silence = (1e-6f64).ln() as f32;
        let (out, n) = mel.compute(&vec![0.0; 1000]);
        assert_eq!(n, 1 + 600 / 160);
        assert!(out.iter().all(|&v| v == silence));
        let (out, n) = mel.compute(&[]);
        assert_eq!((n, out.len()), (1, 64));
        assert!(out.iter().all(|&v| v == silence));
        // A short clip is zero-padded to one frame.
        let short = sine(1000.0, 100);
        let mut padded = short.clone();
        padded.resize(400, 0.0);
        assert_eq!(mel.compute(&short), mel.compute(&padded));
    }

    #[test]
    fn matches_direct_dft() {
        let p = AudioPreprocess { n_fft: 30, hop: 7, n_mels: 5, f_min: 100.0, f_max: 7000.0, ..params() };
        let mel = LogMel::new(&p);
        let x: Vec<f32> = (0..100).map(|i| ((i * 37 % 23) as f32 - 11.0) / 11.0).collect();
        let (out, n_frames) = mel.compute(&x);
        assert_eq!(n_frames, 1 + 70 / 7);
        for t in 0..n_frames {
            let power: Vec<f64> = (0..16)
                .map(|k| {
                    let (mut re, mut im) = (0.0, 0.0);
                    for n in 0..30 {
                        let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / 30.0).cos();
                        let v = f64::from(x[t * 7 + n]) * w;
                        let ang = -2.0 * std::f64::consts::PI * (k * n) as f64 / 30.0;
                        re += v * ang.cos();
                        im += v * ang.sin();
                    }
                    re * re + im * im
                })
                .collect();
            for m in 0..5 {
                let e: f64 = (0..16).map(|k| mel.filterbank()[m * 16 + k] * power[k]).sum();
                let want = (e + 1e-6).ln() as f32;
                assert!((out[m * n_frames + t] - want).abs() < 1e-5, "m {m} t {t}");
            }
        }
    }

    #[test]
    fn segments_shape_and_placement() {
        let p = AudioPreprocess { segments: 3, segment_frames: 10, ..params() };
        let mel = LogMel::new(&p);
        let x = sine(440.0, 400 + 160 * 30); // 31 frames
        let (full, n) = mel.compute(&x);
        assert_eq!(n, 31);
        let seg = mel.segments(&x);
        assert_eq!(seg.len(), 3 * 64 * 10);
        // Starts: round(a * 21 / 2) = 0, 11 (10.5 rounds up), 21.
        for (a, start) in [0usize, 11, 21].into_iter().enumerate() {
            for m in 0..64 {
                let got = &seg[(a * 64 + m) * 10..(a * 64 + m + 1) * 10];
                assert_eq!(got, &full[m * n + start..m * n + start + 10], "segment {a} band {m}");
            }
        }
        // Too short: right-padded with silence; a single segment starts at 0.
        let p1 = AudioPreprocess { segments: 1, segment_frames: 10, ..params() };
        let mel1 = LogMel::new(&p1);
        let (short, n) = mel1.compute(&x[..400 + 160 * 3]);
        assert_eq!(n, 4);
        let seg = mel1.segments(&x[..400 + 160 * 3]);
        assert_eq!(seg.len(), 64 * 10);
        let silence = (1e-6f64).ln() as f32;
        for m in 0..64 {
            assert_eq!(&seg[m * 10..m * 10 + 4], &short[m * 4..m * 4 + 4]);
            assert!(seg[m * 10 + 4..m * 10 + 10].iter().all(|&v| v == silence));
        }
        let two_short = LogMel::new(&AudioPreprocess { segments: 2, segment_frames: 10, ..params() }).segments(&[]);
        assert_eq!(two_short.len(), 2 * 64 * 10);
        assert!(two_short.iter().all(|&v| v == silence));
    }

    #[test]
    fn streaming_frames_equal_the_whole_clip() {
        let mel = LogMel::new(&params());
        let x = sine(440.0, 16000);
        let (whole, n_frames) = mel.compute(&x);
        let mut stream = MelStream::new(mel.clone(), 333);
        let mut got = vec![0.0f32; whole.len()];
        let mut count = 0;
        for chunk in x.chunks(333) {
            stream.push(chunk, |t, column| {
                for (m, &v) in column.iter().enumerate() {
                    got[m * n_frames + t as usize] = v;
                }
                count += 1;
            });
        }
        assert_eq!(count, n_frames);
        assert_eq!(got, whole);
    }
}
