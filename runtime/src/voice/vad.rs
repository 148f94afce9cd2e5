//! Voice activity detection: a [`Detector`] gives each 32 ms window a speech probability (the
//! package's Silero-style model run on the CPU backend, or an energy detector when the package
//! has none) and a [`Segmenter`] turns those into whole utterances with the usual controls:
//! threshold, least speech and silence durations, padding and a longest utterance.

use edgeqa_format::manifest::VoiceSpec;
use edgeqa_format::package::Package;
use edgeqa_format::tensor::{Tensor, TensorData};

use super::{VOICE_RATE, VoiceError};
use crate::backend::StageSession;

/// Samples per detector window (32 ms at 16 kHz).
pub const WINDOW: usize = 512;

/// Gives windows of [`WINDOW`] samples at [`VOICE_RATE`] a speech probability.
pub enum Detector {
    /// The package's voice activity model, its recurrent state carried from window to window.
    Model { session: Box<dyn StageSession>, context: usize, state: Vec<f32>, state_shape: Vec<usize>, input: Vec<f32> },
    /// Speech is what stands well above a tracked noise floor.
    Energy { floor_db: Option<f32> },
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Level above the noise floor that counts as speech for the energy detector, in dB.
const ENERGY_MARGIN_DB: f32 = 12.0;
/// Windows quieter than this are never speech, in dB below full scale.
const ENERGY_SILENCE_DB: f32 = -50.0;
/// How fast the noise floor rises towards a louder background, in dB per window (0.6 dB/s).
const FLOOR_RISE_DB: f32 = 0.02;

impl Detector {
    /// The package's voice activity model when it carries one, else the energy detector.
    pub fn for_package(pkg: &Package) -> Result<Detector, VoiceError> {
        let voice: Option<&VoiceSpec> = pkg.manifest().voice.as_ref();
        let Some(vad) = voice.and_then(|v| v.vad.as_ref()) else { return Ok(Detector::energy()) };
        if vad.sample_rate != VOICE_RATE || vad.window != WINDOW {
            return Err(VoiceError::VadModel {
                origin: pkg.origin().to_string(),
                reason: format!(
                    "it reads {} samples at {} Hz; this runtime feeds {WINDOW} at {VOICE_RATE} Hz",
                    vad.window, vad.sample_rate
                ),
            });
        }
        let bytes = pkg.section(&vad.stage.section).ok_or_else(|| VoiceError::VadModel {
            origin: pkg.origin().to_string(),
            reason: format!("no section `{}`", vad.stage.section),
        })?;
        let origin = format!("{} (voice activity model)", pkg.origin());
        let session = load(&vad.stage, bytes, &origin)?;
        let state_shape = vad.stage.inputs[1].shape.clone();
        let state = vec![0.0; vad.stage.inputs[1].len()];
        Ok(Detector::Model {
            session,
            context: vad.context,
            state,
            state_shape,
            input: vec![0.0; vad.context + WINDOW],
        })
    }

    /// The energy detector.
    pub fn energy() -> Detector {
        Detector::Energy { floor_db: None }
    }

    /// `silero` or `energy`, for status lines.
    pub fn name(&self) -> &'static str {
        match self {
            Detector::Model { .. } => "silero",
            Detector::Energy { .. } => "energy",
        }
    }

    /// Bytes the detector holds: the model's weights and activations (nothing for energy).
    pub fn memory(&self) -> u64 {
        match self {
            Detector::Model { session, input, state, .. } => {
                let m = session.memory();
                m.weights + m.activations + 4 * (input.len() + state.len()) as u64
            }
            Detector::Energy { .. } => 0,
        }
    }

    /// Forgets the past (recurrent state, noise floor).
    pub fn reset(&mut self) {
        match self {
            Detector::Model { state, input, .. } => {
                state.iter_mut().for_each(|s| *s = 0.0);
                input.iter_mut().for_each(|s| *s = 0.0);
            }
            Detector::Energy { floor_db } => *floor_db = None,
        }
    }

    /// Speech probability of the next window of [`WINDOW`] samples.
    pub fn probability(&mut self, window: &[f32]) -> Result<f32, VoiceError> {
        debug_assert_eq!(window.len(), WINDOW);
        match self {
            Detector::Model { session, context, state, state_shape, input } => {
                // The model sees the last `context` samples of the previous window, then this one.
                input.copy_within(WINDOW.., 0);
                input[*context..].copy_from_slice(window);
                let x = Tensor::new(vec![1, *context + WINDOW], TensorData::F32(input.clone()))
                    .map_err(|e| VoiceError::VadModel { origin: "input".into(), reason: e.to_string() })?;
                let s = Tensor::new(state_shape.clone(), TensorData::F32(state.clone()))
                    .map_err(|e| VoiceError::VadModel { origin: "state".into(), reason: e.to_string() })?;
                let out = session.run(vec![x, s])?;
                let p = out[0].as_f32().and_then(|v| v.first().copied()).unwrap_or(0.0);
                if let Some(next) = out.get(1).and_then(|t| t.as_f32()) {
                    state.copy_from_slice(next);
                }
                Ok(if p.is_finite() { p.clamp(0.0, 1.0) } else { 0.0 })
            }
            Detector::Energy { floor_db } => {
                let power = window.iter().map(|s| s * s).sum::<f32>() / window.len() as f32;
                let db = 10.0 * (power + 1e-10).log10();
                let floor = floor_db.get_or_insert(db);
                let speech = db > *floor + ENERGY_MARGIN_DB && db > ENERGY_SILENCE_DB;
                *floor = if db < *floor { db } else { *floor + FLOOR_RISE_DB };
                Ok(if speech { 1.0 } else { 0.0 })
            }
        }
    }
}

#[cfg(feature = "tract")]
fn load(
    stage: &edgeqa_format::manifest::StageInfo,
    bytes: &[u8],
    origin: &str,
) -> Result<Box<dyn StageSession>, VoiceError> {
    use crate::backend::Backend;
    Ok(crate::backend::tract::TractBackend::new().load_stage(stage, bytes, origin)?)
}

#[cfg(not(feature = "tract"))]
fn load(
    stage: &edgeqa_format::manifest::StageInfo,
    bytes: &[u8],
    origin: &str,
) -> Result<Box<dyn StageSession>, VoiceError> {
    use crate::backend::Backend;
    let gpu = crate::backend::wgpu::WgpuBackend::new().map_err(|error| crate::backend::BackendError::Device {
        origin: origin.to_string(),
        backend: "wgpu",
        error,
    })?;
    Ok(gpu.load_stage(stage, bytes, origin)?)
}

/// When a run of windows is an utterance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// Speech probability at which speech starts; it ends below `threshold - 0.15`.
    pub threshold: f32,
    /// Shorter bursts are not utterances, in ms.
    pub min_speech_ms: u32,
    /// Silence that ends an utterance, in ms.
    pub min_silence_ms: u32,
    /// Audio kept before the start and after the end of speech, in ms.
    pub pad_ms: u32,
    /// An utterance is cut at this length, in seconds.
    pub max_speech_s: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig { threshold: 0.5, min_speech_ms: 250, min_silence_ms: 500, pad_ms: 200, max_speech_s: 10.0 }
    }
}

/// A [`VadConfig`] control out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VadConfigError {
    #[error("the speech threshold {0} must be in (0.15, 1)")]
    Threshold(f32),
    #[error("the longest utterance {0} s must be between 1 and 60 s")]
    MaxSpeech(f32),
    #[error("padding must be at most 2 s and the least speech and silence at most 5 s")]
    Durations,
}

impl VadConfig {
    /// Checks the controls are in range.
    pub fn validate(&self) -> Result<(), VadConfigError> {
        if !(self.threshold > 0.15 && self.threshold < 1.0) {
            return Err(VadConfigError::Threshold(self.threshold));
        }
        if !(self.max_speech_s.is_finite() && self.max_speech_s >= 1.0 && self.max_speech_s <= 60.0) {
            return Err(VadConfigError::MaxSpeech(self.max_speech_s));
        }
        if self.pad_ms > 2000 || self.min_silence_ms > 5000 || self.min_speech_ms > 5000 {
            return Err(VadConfigError::Durations);
        }
        Ok(())
    }
}

/// A stretch of speech cut out of the stream, padded, at [`VOICE_RATE`].
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    pub samples: Vec<f32>,
    /// Seconds since the stream started: start of the kept audio and end of speech.
    pub start_s: f64,
    pub speech_end_s: f64,
}

/// Cuts utterances out of a stream of samples at [`VOICE_RATE`]. Its buffers are allocated once,
/// for the longest utterance.
#[derive(Debug)]
pub struct Segmenter {
    cfg: VadConfig,
    detector: Detector,
    pending: Vec<f32>,
    /// While idle: the last `pad` samples; while in speech: everything since `start - pad`.
    buf: Vec<f32>,
    /// Samples consumed into windows so far.
    pos: u64,
    /// Absolute sample index of `buf[0]`.
    buf_start: u64,
    speaking: bool,
    /// Samples of speech and of the silence run since the start.
    silence: usize,
    speech_start: u64,
    pad: usize,
    max: usize,
}

impl Segmenter {
    /// A segmenter over `detector`.
    pub fn new(detector: Detector, cfg: VadConfig) -> Result<Segmenter, VoiceError> {
        cfg.validate()
            .map_err(|e| VoiceError::Audio { origin: "voice activity detection".into(), reason: e.to_string() })?;
        let ms = |v: u32| (v as usize * VOICE_RATE as usize) / 1000;
        let pad = ms(cfg.pad_ms);
        let max = (cfg.max_speech_s * VOICE_RATE as f32) as usize;
        let silence = ms(cfg.min_silence_ms);
        Ok(Segmenter {
            cfg,
            detector,
            pending: Vec::with_capacity(WINDOW),
            buf: Vec::with_capacity(pad + max + silence + 2 * WINDOW),
            pos: 0,
            buf_start: 0,
            speaking: false,
            silence: 0,
            speech_start: 0,
            pad,
            max,
        })
    }

    /// The detector's name (`silero`, `energy`).
    pub fn detector(&self) -> &'static str {
        self.detector.name()
    }

    /// Whether speech is going on now.
    pub fn speaking(&self) -> bool {
        self.speaking
    }

    /// Bytes of the detector (see [`Detector::memory`]) and of the utterance buffers.
    pub fn memory(&self) -> (u64, u64) {
        (self.detector.memory(), 4 * (self.buf.capacity() + self.pending.capacity()) as u64)
    }

    /// Feeds samples; returns the utterances they complete (usually none).
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<Utterance>, VoiceError> {
        let mut out = Vec::new();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (WINDOW - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == WINDOW {
                let mut window = std::mem::take(&mut self.pending);
                let r = self.window(&window);
                window.clear();
                self.pending = window;
                if let Some(u) = r? {
                    out.push(u);
                }
            }
        }
        Ok(out)
    }

    fn window(&mut self, w: &[f32]) -> Result<Option<Utterance>, VoiceError> {
        let p = self.detector.probability(w)?;
        let at = self.pos;
        self.pos += WINDOW as u64;
        self.buf.extend_from_slice(w);
        if !self.speaking {
            if p >= self.cfg.threshold {
                self.speaking = true;
                self.silence = 0;
                self.speech_start = at;
            } else {
                let excess = self.buf.len().saturating_sub(self.pad);
                self.buf.drain(..excess);
                self.buf_start += excess as u64;
            }
            return Ok(None);
        }
        if p < self.cfg.threshold - 0.15 {
            self.silence += WINDOW;
        } else {
            self.silence = 0;
        }
        let min_silence = self.cfg.min_silence_ms as usize * VOICE_RATE as usize / 1000;
        let speech_len = (self.pos - self.speech_start) as usize - self.silence;
        if self.silence >= min_silence.max(1) || speech_len >= self.max {
            return Ok(self.cut());
        }
        Ok(None)
    }

    /// Ends the utterance in progress: it is returned when it was long enough.
    fn cut(&mut self) -> Option<Utterance> {
        let speech_end = self.pos - self.silence as u64;
        let speech_len = (speech_end - self.speech_start) as usize;
        let keep_end = ((speech_end + self.pad as u64).min(self.pos) - self.buf_start) as usize;
        let min_speech = self.cfg.min_speech_ms as usize * VOICE_RATE as usize / 1000;
        let u = (speech_len >= min_speech).then(|| Utterance {
            samples: self.buf[..keep_end].to_vec(),
            start_s: self.buf_start as f64 / f64::from(VOICE_RATE),
            speech_end_s: speech_end as f64 / f64::from(VOICE_RATE),
        });
        self.speaking = false;
        self.silence = 0;
        let excess = self.buf.len().saturating_sub(self.pad);
        self.buf.drain(..excess);
        self.buf_start += excess as u64;
        u
    }

    /// Starts over, as for a new stream.
    pub fn reset(&mut self) {
        self.detector.reset();
        self.pending.clear();
        self.buf.clear();
        (self.pos, self.buf_start, self.speaking, self.silence) = (0, 0, false, 0);
    }

    /// The end of the stream: the utterance in progress, if long enough.
    pub fn finish(&mut self) -> Option<Utterance> {
        if self.speaking { self.cut() } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(seconds: f32, amp: f32) -> Vec<f32> {
        (0..(seconds * 16000.0) as usize).map(|i| amp * (i as f32 * 0.07).sin()).collect()
    }

    #[test]
    fn energy_segmenter_finds_a_burst_between_silences() {
        let mut s = Segmenter::new(Detector::energy(), VadConfig::default()).unwrap();
        let mut audio = vec![0.0005f32; 16000];
        audio.extend(tone(1.0, 0.3));
        audio.extend(vec![0.0005f32; 16000]);
        let mut got = s.push(&audio).unwrap();
        got.extend(s.finish());
        assert_eq!(got.len(), 1, "{got:?}");
        let u = &got[0];
        assert!((u.start_s - 0.8).abs() < 0.05, "start {}", u.start_s);
        assert!((u.speech_end_s - 2.0).abs() < 0.05, "end {}", u.speech_end_s);
        assert!((u.samples.len() as f64 / 16000.0 - 1.4).abs() < 0.06, "{}", u.samples.len());
    }

    #[test]
    fn short_bursts_and_silence_are_not_utterances() {
        let mut s = Segmenter::new(Detector::energy(), VadConfig::default()).unwrap();
        let mut audio = vec![0.0f32; 16000];
        audio.extend(tone(0.1, 0.3));
        audio.extend(vec![0.0f32; 16000]);
        assert!(s.push(&audio).unwrap().is_empty());
        assert!(s.finish().is_none());
    }

    #[test]
    fn long_speech_is_cut_at_the_longest_utterance() {
        let cfg = VadConfig { max_speech_s: 2.0, ..VadConfig::default() };
        let mut s = Segmenter::new(Detector::energy(), cfg).unwrap();
        let mut audio = vec![0.0005f32; 8000];
        audio.extend(tone(5.0, 0.3));
        let got = s.push(&audio).unwrap();
        assert_eq!(got.len(), 2, "two cuts of 2 s in 5 s of speech");
        assert!(got.iter().all(|u| u.samples.len() <= 2 * 16000 + 2 * 3200 + WINDOW));
    }

    #[test]
    fn bad_controls_are_refused() {
        for cfg in [
            VadConfig { threshold: 1.5, ..VadConfig::default() },
            VadConfig { max_speech_s: 0.1, ..VadConfig::default() },
            VadConfig { pad_ms: 10_000, ..VadConfig::default() },
        ] {
            assert!(Segmenter::new(Detector::energy(), cfg).is_err());
        }
    }
}
