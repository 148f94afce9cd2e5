//! Resampling a stream of mono samples from one fixed rate to another as it arrives, with
//! rubato's FFT resampler (features `mic`, `voice`): a microphone's rate to the student's, and
//! the student's audio to the recognizer's 16 kHz. Buffers are allocated once.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use thiserror::Error;

/// Why a stream could not be resampled.
#[derive(Debug, Error)]
#[error("resampling {from} Hz to {to} Hz: {reason}")]
pub struct ResampleError {
    pub from: u32,
    pub to: u32,
    pub reason: String,
}

/// A fixed-ratio resampler fed in pieces of any length.
pub struct StreamResampler {
    resampler: Fft<f32>,
    /// One call's output.
    out: Vec<f32>,
    /// Output samples still to discard: the resampler's delay, so that timestamps hold.
    skip: usize,
    from: u32,
    to: u32,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler").field("from", &self.from).field("to", &self.to).finish()
    }
}

impl StreamResampler {
    /// Resamples `from` Hz to `to` Hz, taking input in chunks of `chunk` samples.
    pub fn new(from: u32, to: u32, chunk: usize) -> Result<StreamResampler, ResampleError> {
        let resampler = Fft::<f32>::new(from as usize, to as usize, chunk, 1, FixedSync::Input)
            .map_err(|e| ResampleError { from, to, reason: e.to_string() })?;
        let out = vec![0.0; resampler.output_frames_max()];
        let skip = resampler.output_delay();
        Ok(StreamResampler { resampler, out, skip, from, to })
    }

    /// The most input samples one chunk takes.
    pub fn input_frames_max(&self) -> usize {
        self.resampler.input_frames_max()
    }

    /// The most output samples one chunk gives.
    pub fn output_frames_max(&self) -> usize {
        self.out.len()
    }

    /// Resamples every whole chunk at the start of `input`, appending the output (less the
    /// resampler's delay at the start of the stream) to `out`; returns how many input samples
    /// were used. The caller keeps the rest for the next call.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<usize, ResampleError> {
        let (from, to) = (self.from, self.to);
        let fail = |e: &dyn std::fmt::Display| ResampleError { from, to, reason: e.to_string() };
        let mut used = 0;
        loop {
            let need = self.resampler.input_frames_next();
            if input.len() - used < need {
                return Ok(used);
            }
            let i = InterleavedSlice::new(&input[used..used + need], 1, need).map_err(|e| fail(&e))?;
            let n = self.out.len();
            let mut o = InterleavedSlice::new_mut(&mut self.out[..], 1, n).map_err(|e| fail(&e))?;
            let (consumed, produced) = self.resampler.process_into_buffer(&i, &mut o, None).map_err(|e| fail(&e))?;
            used += consumed;
            let skip = self.skip.min(produced);
            self.skip -= skip;
            out.extend_from_slice(&self.out[skip..produced]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces of odd lengths give the same samples as one piece, and a tone keeps its frequency.
    #[test]
    fn pieces_give_the_same_stream_as_one_piece() {
        let (from, to) = (22_050u32, 16_000u32);
        let x: Vec<f32> =
            (0..from).map(|i| (2.0 * std::f32::consts::PI * 300.0 * i as f32 / from as f32).sin() * 0.5).collect();
        let mut whole = Vec::new();
        let mut r = StreamResampler::new(from, to, 441).unwrap();
        let used = r.process(&x, &mut whole).unwrap();
        assert!(x.len() - used < r.input_frames_max());
        let mut pieces = Vec::new();
        let mut r = StreamResampler::new(from, to, 441).unwrap();
        let mut pending: Vec<f32> = Vec::new();
        for piece in x.chunks(137) {
            pending.extend_from_slice(piece);
            let used = r.process(&pending, &mut pieces).unwrap();
            pending.drain(..used);
        }
        assert_eq!(whole, pieces);
        assert!(whole.len() > 15_000, "{}", whole.len());
        // Away from the edges, the same 300 Hz sine at 16 kHz, up to a fraction of a sample's
        // delay: fit amplitude and phase, then compare.
        let part = 1000..whole.len() - 1000;
        let w = 2.0 * std::f64::consts::PI * 300.0 / f64::from(to);
        let (mut sn, mut cs) = (0.0f64, 0.0f64);
        for i in part.clone() {
            sn += f64::from(whole[i]) * (w * i as f64).sin();
            cs += f64::from(whole[i]) * (w * i as f64).cos();
        }
        let n = part.len() as f64;
        let (amplitude, phase) = (2.0 * (sn * sn + cs * cs).sqrt() / n, cs.atan2(sn));
        assert!((amplitude - 0.5).abs() < 0.01, "amplitude {amplitude}");
        assert!(phase.abs() < w, "more than a sample of delay: phase {phase}");
        let err =
            part.map(|i| (amplitude * (w * i as f64 + phase).sin() - f64::from(whole[i])).abs()).fold(0.0f64, f64::max);
        assert!(err < 0.01, "largest error {err}");
    }

    #[test]
    fn an_impossible_ratio_is_an_error() {
        let e = StreamResampler::new(0, 16_000, 64).unwrap_err();
        assert!(e.to_string().contains("0 Hz to 16000 Hz"), "{e}");
    }
}
