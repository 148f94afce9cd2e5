//! Listening to a stream as it arrives (feature `voice`): an [`Ear`] resamples the audio to
//! [`VOICE_RATE`] when it comes at another rate, cuts utterances out of it with a
//! [`Segmenter`], and, with a [`TalkGate`] (push-to-talk), lets through only the utterance that
//! ends after someone opened the gate. Recognition is left to the caller, on another thread, so
//! that the stream keeps being read while an utterance is decoded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{Segmenter, Utterance, VOICE_RATE, VoiceError};
use crate::capture::resample::StreamResampler;

/// Push-to-talk: closed until [`TalkGate::open`]; the next utterance to end passes and closes it.
#[derive(Debug, Default)]
pub struct TalkGate {
    open: AtomicBool,
    ignored: AtomicU64,
}

impl TalkGate {
    /// A closed gate.
    pub fn new() -> TalkGate {
        TalkGate::default()
    }

    /// Lets the next utterance to end through (one in progress counts).
    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// Whether the gate waits for an utterance.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    /// Utterances that ended while the gate was closed.
    pub fn ignored(&self) -> u64 {
        self.ignored.load(Ordering::Relaxed)
    }

    /// Whether an utterance that just ended passes; closes the gate behind it.
    fn pass(&self) -> bool {
        let passed = self.open.swap(false, Ordering::SeqCst);
        if !passed {
            self.ignored.fetch_add(1, Ordering::Relaxed);
        }
        passed
    }
}

/// The front of a listener on a live stream (see the module documentation).
#[derive(Debug)]
pub struct Ear {
    segmenter: Segmenter,
    resampler: Option<StreamResampler>,
    /// Samples at the stream's rate not yet resampled, and one push's resampled samples.
    pending: Vec<f32>,
    resampled: Vec<f32>,
    gate: Option<Arc<TalkGate>>,
}

impl Ear {
    /// An ear on a stream of mono samples at `rate` Hz delivered in pieces of at most
    /// `max_piece` samples.
    pub fn new(
        segmenter: Segmenter,
        rate: u32,
        max_piece: usize,
        gate: Option<Arc<TalkGate>>,
    ) -> Result<Ear, VoiceError> {
        let resampler = if rate == VOICE_RATE {
            None
        } else {
            let chunk = (rate as usize / 50).max(64);
            Some(StreamResampler::new(rate, VOICE_RATE, chunk).map_err(|e| VoiceError::Audio {
                origin: "the student's audio".into(),
                reason: format!("cannot listen to it: {e}"),
            })?)
        };
        let (pending, resampled) = match &resampler {
            Some(r) => {
                let pending = max_piece + r.input_frames_max();
                let out = (pending / r.input_frames_max() + 1) * r.output_frames_max();
                (Vec::with_capacity(pending), Vec::with_capacity(out))
            }
            None => (Vec::new(), Vec::new()),
        };
        Ok(Ear { segmenter, resampler, pending, resampled, gate })
    }

    /// `silero` or `energy`.
    pub fn detector(&self) -> &'static str {
        self.segmenter.detector()
    }

    /// Bytes of the resampling buffers (0 at [`VOICE_RATE`]).
    pub fn resampling_bytes(&self) -> u64 {
        4 * (self.pending.capacity() + self.resampled.capacity()) as u64
    }

    /// Feeds samples at the stream's rate; returns the utterances they complete that pass the
    /// gate.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<Utterance>, VoiceError> {
        let mut done = match self.resampler.as_mut() {
            None => self.segmenter.push(samples)?,
            Some(r) => {
                self.pending.extend_from_slice(samples);
                self.resampled.clear();
                let used = r
                    .process(&self.pending, &mut self.resampled)
                    .map_err(|e| VoiceError::Audio { origin: "the student's audio".into(), reason: e.to_string() })?;
                self.pending.drain(..used);
                self.segmenter.push(&self.resampled)?
            }
        };
        done.retain(|_| self.gate.as_ref().is_none_or(|g| g.pass()));
        Ok(done)
    }

    /// The end of the stream: the utterance in progress, if any, when it passes the gate.
    pub fn finish(&mut self) -> Option<Utterance> {
        self.segmenter.finish().filter(|_| self.gate.as_ref().is_none_or(|g| g.pass()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::{Detector, VadConfig};

    /// A loud burst in quiet noise, at `rate`: speech for the energy detector.
    fn bursts(rate: u32, at_s: &[f64]) -> Vec<f32> {
        let n = (rate as f64 * (at_s.last().unwrap() + 2.5)) as usize;
        let mut x: Vec<f32> = (0..n).map(|i| 0.001 * ((i * 7919 % 1000) as f32 / 500.0 - 1.0)).collect();
        for &t in at_s {
            let from = (t * rate as f64) as usize;
            for (i, v) in x[from..from + rate as usize].iter_mut().enumerate() {
                *v += 0.3 * (2.0 * std::f32::consts::PI * 220.0 * i as f32 / rate as f32).sin();
            }
        }
        x
    }

    fn ear(rate: u32, gate: Option<Arc<TalkGate>>) -> Ear {
        let seg = Segmenter::new(Detector::energy(), VadConfig::default()).unwrap();
        Ear::new(seg, rate, 1024, gate).unwrap()
    }

    fn hear(ear: &mut Ear, x: &[f32], piece: usize) -> Vec<Utterance> {
        let mut out = Vec::new();
        for p in x.chunks(piece) {
            out.extend(ear.push(p).unwrap());
        }
        out.extend(ear.finish());
        out
    }

    #[test]
    fn a_stream_at_another_rate_gives_the_same_utterances_at_16_khz() {
        let at = [1.0, 4.0];
        let native = hear(&mut ear(VOICE_RATE, None), &bursts(VOICE_RATE, &at), 320);
        let resampled = hear(&mut ear(44_100, None), &bursts(44_100, &at), 882);
        assert_eq!(native.len(), 2);
        assert_eq!(resampled.len(), 2);
        for (a, b) in native.iter().zip(&resampled) {
            assert!((a.start_s - b.start_s).abs() < 0.05, "{} vs {}", a.start_s, b.start_s);
            assert!((a.speech_end_s - b.speech_end_s).abs() < 0.05);
            assert!((a.samples.len() as i64 - b.samples.len() as i64).abs() < 1600);
        }
    }

    #[test]
    fn a_closed_gate_lets_nothing_through_and_an_open_one_one_utterance() {
        let x = bursts(VOICE_RATE, &[1.0, 4.0, 7.0]);
        let gate = Arc::new(TalkGate::new());
        let mut e = ear(VOICE_RATE, Some(Arc::clone(&gate)));
        let mut heard = Vec::new();
        for (i, p) in x.chunks(320).enumerate() {
            // Opened at 3 s, between the first burst's end and the second's start.
            if i * 320 == 3 * VOICE_RATE as usize {
                gate.open();
            }
            heard.extend(e.push(p).unwrap());
        }
        heard.extend(e.finish());
        assert_eq!(heard.len(), 1);
        assert!((heard[0].speech_end_s - 5.0).abs() < 0.1, "{}", heard[0].speech_end_s);
        assert_eq!(gate.ignored(), 2);
        assert!(!gate.is_open());
    }
}
