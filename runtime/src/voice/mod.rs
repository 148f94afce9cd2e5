//! Spoken questions: voice activity detection ([`vad`]) cuts utterances out of an audio stream,
//! and the recognizer ([`sphinx`], feature `voice`) turns one into the text of a question, searching
//! only the grammar the package carries (`manifest.voice`, built by the converter from the
//! student's question templates). `docs/voice.md` explains the thresholds.

#[cfg(feature = "voice")]
pub mod ear;
#[cfg(feature = "voice")]
pub mod sphinx;
pub mod vad;

use thiserror::Error;

pub use vad::{Detector, Segmenter, Utterance, VadConfig};

/// Sample rate the recognizer and the voice activity model listen at.
pub const VOICE_RATE: u32 = 16_000;

/// Why a spoken question could not be heard.
#[derive(Debug, Error)]
pub enum VoiceError {
    #[error("{origin}: the package carries no voice grammar: convert the student with a [voice] table in student.toml")]
    NoGrammar { origin: String },
    #[error(
        "acoustic model {path} not found ({reason}): install Debian's pocketsphinx-en-us, or give the model's directory"
    )]
    AcousticModel { path: String, reason: String },
    #[error("the package's pronunciations are for the acoustic model `{0}`; this build knows only `cmusphinx-en-us`")]
    UnknownAcousticModel(String),
    #[error("speech recognizer: {0}")]
    Recognizer(String),
    #[error("voice activity model: {0}")]
    Vad(#[from] crate::backend::BackendError),
    #[error("{origin}: voice activity model: {reason}")]
    VadModel { origin: String, reason: String },
    #[error("{origin}: {reason}")]
    Audio { origin: String, reason: String },
}

/// What the recognizer made of one utterance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Transcript {
    /// The question heard, or `None` when nothing in the grammar matched.
    pub text: Option<String>,
    /// Log-likelihood margin per 10 ms frame of the grammar's best path over a free phone loop:
    /// near 0 or above when the words fit the sound as well as any phones do.
    pub margin: f32,
    /// Phones of the transcript per second of the utterance: far below speaking rate when a
    /// short question was forced onto long speech or sound that is none of the questions.
    pub phone_rate: f32,
    /// `margin` and `phone_rate` mapped to 0..1 (see [`confidence`]); 0 when nothing matched.
    pub confidence: f32,
    /// Seconds of audio decoded.
    pub audio_s: f64,
    /// Time spent decoding, in milliseconds.
    pub decode_ms: f64,
}

impl Transcript {
    /// The text when it is at least `min_confidence`; `None` means "I did not catch that".
    pub fn accepted(&self, min_confidence: f32) -> Option<&str> {
        self.text.as_deref().filter(|_| self.confidence >= min_confidence)
    }
}

/// Margin at which [`confidence`] is one half.
pub const MARGIN_MIDPOINT: f32 = -18.0;
/// Margin change that moves [`confidence`] from one half to about 0.73.
pub const MARGIN_SCALE: f32 = 3.0;
/// Longest spoken question a recording may hold, in seconds.
pub const MAX_RECORDED_QUESTION_S: f64 = 30.0;

/// Default least confidence for a transcript to be answered.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.5;

/// Phones per second of utterance below which a transcript is doubted (speech runs at 10 to 15).
pub const MIN_PHONE_RATE: f32 = 6.0;

/// Maps a per-frame margin to 0..1 with a logistic curve centred on [`MARGIN_MIDPOINT`], scaled
/// down when the transcript is too short for the sound it was made of (`phone_rate` below
/// [`MIN_PHONE_RATE`]); `docs/voice.md` shows how both were set.
pub fn confidence(margin: f32, phone_rate: f32) -> f32 {
    let fit = 1.0 / (1.0 + (-(margin - MARGIN_MIDPOINT) / MARGIN_SCALE).exp());
    fit * (phone_rate / MIN_PHONE_RATE).clamp(0.0, 1.0).powi(4)
}

/// Resamples mono audio to [`VOICE_RATE`] with rubato's FFT resampler (feature `voice`).
#[cfg(feature = "voice")]
pub fn resample_to_voice_rate(samples: &[f32], rate: u32, origin: &str) -> Result<Vec<f32>, VoiceError> {
    if rate == VOICE_RATE {
        return Ok(samples.to_vec());
    }
    let fail = |reason: String| VoiceError::Audio { origin: origin.to_string(), reason };
    if !(4000..=384_000).contains(&rate) {
        return Err(fail(format!("{rate} Hz is not a sample rate this can resample (4 kHz to 384 kHz)")));
    }
    let chunk = 1024;
    let mut r = crate::capture::resample::StreamResampler::new(rate, VOICE_RATE, chunk)
        .map_err(|e| fail(format!("cannot {e}")))?;
    let wanted = (samples.len() as f64 * f64::from(VOICE_RATE) / f64::from(rate)).round() as usize;
    // Zeros after the end push the last samples through the resampler's delay.
    let mut input = samples.to_vec();
    input.resize(samples.len() + 4 * r.input_frames_max(), 0.0);
    let mut out = Vec::with_capacity(wanted + 4 * r.output_frames_max());
    r.process(&input, &mut out).map_err(|e| fail(e.to_string()))?;
    if out.len() < wanted {
        return Err(fail(format!("resampling gave {} samples of the {wanted} expected", out.len())));
    }
    out.truncate(wanted);
    Ok(out)
}

/// One utterance heard: where it was and what the recognizer made of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Heard {
    #[serde(flatten)]
    pub transcript: Transcript,
    /// Seconds since the stream started: start of the kept audio, end of speech.
    pub start_s: f64,
    pub speech_end_s: f64,
}

impl Heard {
    /// What the recognizer made of utterance `u`.
    pub fn new(u: &Utterance, transcript: Transcript) -> Heard {
        Heard { transcript, start_s: u.start_s, speech_end_s: u.speech_end_s }
    }
}

/// Utterances a live listener keeps waiting for the recognizer while it decodes another; one
/// more ending then is dropped (and counted), so reading the stream never waits for a decode.
pub const QUEUED_UTTERANCES: usize = 1;

/// Seconds of sound [`Listener::measure_cost`] times.
pub const COST_PROBE_S: f64 = 2.0;

/// What listening costs on this machine, per second of audio (see [`Listener::measure_cost`]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ListenCost {
    /// Seconds of sound timed.
    pub seconds: f64,
    /// Voice activity detection, milliseconds per second of audio (it runs on all of it).
    pub vad_ms_per_s: f64,
    /// Recognition with all three searches, milliseconds per second of utterance: the most a
    /// question waits for its transcript after its end is known.
    pub recognize_ms_per_s: f64,
}

/// Voice activity detection and recognition together, for one package.
#[cfg(feature = "voice")]
#[derive(Debug)]
pub struct Listener {
    segmenter: Segmenter,
    recognizer: sphinx::Recognizer,
}

#[cfg(feature = "voice")]
impl Listener {
    /// The package's grammar and voice activity model (or the energy detector), the acoustic
    /// model from `model_dir`.
    pub fn new(
        pkg: &edgeqa_format::package::Package,
        model_dir: &std::path::Path,
        vad: VadConfig,
    ) -> Result<Listener, VoiceError> {
        let voice =
            pkg.manifest().voice.as_ref().ok_or_else(|| VoiceError::NoGrammar { origin: pkg.origin().to_string() })?;
        let recognizer = sphinx::Recognizer::new(voice, model_dir)?;
        let segmenter = Segmenter::new(Detector::for_package(pkg)?, vad)?;
        Ok(Listener { segmenter, recognizer })
    }

    /// `silero` or `energy`.
    pub fn detector(&self) -> &'static str {
        self.segmenter.detector()
    }

    /// What listening takes, as lines of a memory plan: the recognizer (acoustic model and
    /// search), the voice activity model, and the buffers of the longest utterance: the one
    /// being cut, `queued` more waiting for the recognizer, the one being recognized and its
    /// 16-bit samples.
    pub fn memory(&self, queued: usize) -> Result<crate::budget::MemoryPlan, VoiceError> {
        let mut plan = crate::budget::MemoryPlan::default();
        let (vad, buffers) = self.segmenter.memory();
        plan.add("voice: recognizer (acoustic model + search)", sphinx::memory_estimate(self.recognizer.model())?);
        if vad > 0 {
            plan.add("voice: voice activity model", vad);
        }
        plan.add("voice: utterance buffers", buffers * (2 + queued as u64) + buffers / 2);
        Ok(plan)
    }

    /// Times listening on this machine, on [`COST_PROBE_S`] seconds of a synthetic voiced sound
    /// (harmonics gliding in pitch, in syllable-rate bursts): the voice activity detection, and
    /// the recognizer decoding all three of its searches, the most one utterance takes.
    pub fn measure_cost(&mut self) -> Result<ListenCost, VoiceError> {
        let n = (COST_PROBE_S * f64::from(VOICE_RATE)) as usize;
        let rate = VOICE_RATE as f32;
        let mut phase = 0.0f32;
        let probe: Vec<f32> = (0..n)
            .map(|i| {
                let t = i as f32 / rate;
                phase += 2.0 * std::f32::consts::PI * (120.0 + 40.0 * (1.3 * t).sin()) / rate;
                let envelope = 0.5 - 0.5 * (2.0 * std::f32::consts::PI * 4.0 * t).cos();
                envelope * (1..=12).map(|k| (k as f32 * phase).sin() / k as f32).sum::<f32>() * 0.1
            })
            .collect();
        self.segmenter.reset();
        let t0 = std::time::Instant::now();
        self.segmenter.push(&probe)?;
        let vad_ms = t0.elapsed().as_secs_f64() * 1e3;
        self.segmenter.reset();
        let recognize_ms = self.recognizer.time_all_searches(&probe)?;
        Ok(ListenCost {
            seconds: COST_PROBE_S,
            vad_ms_per_s: vad_ms / COST_PROBE_S,
            recognize_ms_per_s: recognize_ms / COST_PROBE_S,
        })
    }

    /// The two halves, for a stream: the segmenter (to feed an [`ear::Ear`] on the thread that
    /// reads the audio) and the recognizer (on a thread of its own).
    pub fn into_parts(self) -> (Segmenter, sphinx::Recognizer) {
        (self.segmenter, self.recognizer)
    }

    /// Whether speech is going on now.
    pub fn speaking(&self) -> bool {
        self.segmenter.speaking()
    }

    /// Feeds stream samples at [`VOICE_RATE`]; recognizes each utterance they complete.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<Heard>, VoiceError> {
        let mut out = Vec::new();
        for u in self.segmenter.push(samples)? {
            out.push(self.recognize(&u)?);
        }
        Ok(out)
    }

    /// The end of the stream: recognizes the utterance in progress, if any.
    pub fn finish(&mut self) -> Result<Option<Heard>, VoiceError> {
        match self.segmenter.finish() {
            Some(u) => Ok(Some(self.recognize(&u)?)),
            None => Ok(None),
        }
    }

    fn recognize(&mut self, u: &Utterance) -> Result<Heard, VoiceError> {
        Ok(Heard::new(u, self.recognizer.recognize(&u.samples)?))
    }

    /// A recording of one spoken question: the span from the first detected speech to the end
    /// of the last, recognized as one utterance (a pause inside a question does not split it).
    /// `None` when the recording holds no speech.
    /// `origin` names the recording in errors.
    pub fn hear_recording(&mut self, samples: &[f32], origin: &str) -> Result<Option<Heard>, VoiceError> {
        self.segmenter.reset();
        let mut spans = self.segmenter.push(samples)?;
        spans.extend(self.segmenter.finish());
        let (Some(first), Some(last)) = (spans.first(), spans.last()) else { return Ok(None) };
        let rate = f64::from(VOICE_RATE);
        let from = ((first.start_s * rate) as usize).min(samples.len());
        let to = (((last.start_s * rate) as usize) + last.samples.len()).min(samples.len()).max(from);
        if (to - from) as f64 > MAX_RECORDED_QUESTION_S * rate {
            return Err(VoiceError::Audio {
                origin: origin.to_string(),
                reason: format!(
                    "{:.0} s of speech: a spoken question must be under {MAX_RECORDED_QUESTION_S:.0} s",
                    (to - from) as f64 / rate
                ),
            });
        }
        let u =
            Utterance { samples: samples[from..to].to_vec(), start_s: first.start_s, speech_end_s: last.speech_end_s };
        self.recognize(&u).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_is_monotonic_and_centred() {
        assert!((confidence(MARGIN_MIDPOINT, 12.0) - 0.5).abs() < 1e-6);
        assert!(confidence(-35.0, 12.0) < 0.01 && confidence(0.0, 12.0) > 0.99);
        assert!(confidence(-10.0, 12.0) > confidence(-12.0, 12.0));
        assert!(confidence(0.0, 3.0) < 0.1, "a transcript far too short for its sound is doubted");
        let t = Transcript {
            text: Some("a".into()),
            margin: -20.0,
            phone_rate: 10.0,
            confidence: 0.1,
            audio_s: 1.0,
            decode_ms: 1.0,
        };
        assert_eq!(t.accepted(0.5), None);
        assert_eq!(t.accepted(0.05), Some("a"));
    }

    #[cfg(feature = "voice")]
    #[test]
    fn resampling_keeps_a_tone_and_the_length() {
        let rate = 44_100;
        let x: Vec<f32> =
            (0..rate).map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin() * 0.5).collect();
        let y = resample_to_voice_rate(&x, rate, "tone").unwrap();
        assert_eq!(y.len(), 16_000);
        // Compare with the ideal 440 Hz tone at 16 kHz away from the edges.
        let err = (2000..14000)
            .map(|i| ((2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16_000.0).sin() * 0.5 - y[i]).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 0.02, "largest error {err}");
        assert!(resample_to_voice_rate(&x, 1000, "slow").is_err());
    }
}
