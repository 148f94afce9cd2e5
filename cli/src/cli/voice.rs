//! Flags and helpers shared by the commands that hear spoken questions (`ask --question-audio`,
//! `live --voice`).

use std::path::PathBuf;

use edgeqa::voice::VadConfig;

/// How spoken questions are heard.
#[derive(Debug, Clone, clap::Args)]
pub struct VoiceArgs {
    /// Acoustic model directory of the recognizer (Debian's pocketsphinx-en-us).
    #[arg(long, value_name = "DIR", default_value = edgeqa::voice::sphinx::DEFAULT_ACOUSTIC_MODEL)]
    pub speech_model: PathBuf,
    /// Least recognizer confidence (0..1) to answer; below it edgeqa says it did not catch that.
    #[arg(long, default_value_t = edgeqa::voice::DEFAULT_MIN_CONFIDENCE)]
    pub min_confidence: f32,
    /// Speech probability at which voice activity starts (0.15..1).
    #[arg(long, default_value_t = 0.5)]
    pub vad_threshold: f32,
    /// Silence that ends a spoken question, in ms.
    #[arg(long, default_value_t = 500)]
    pub vad_min_silence_ms: u32,
    /// Shorter bursts of sound are not questions, in ms.
    #[arg(long, default_value_t = 250)]
    pub vad_min_speech_ms: u32,
    /// Audio kept around each spoken question, in ms.
    #[arg(long, default_value_t = 200)]
    pub vad_pad_ms: u32,
}

impl VoiceArgs {
    /// The voice activity controls.
    pub fn vad(&self) -> anyhow::Result<VadConfig> {
        if !(0.0..=1.0).contains(&self.min_confidence) {
            anyhow::bail!("--min-confidence {} must be between 0 and 1", self.min_confidence);
        }
        let cfg = VadConfig {
            threshold: self.vad_threshold,
            min_speech_ms: self.vad_min_speech_ms,
            min_silence_ms: self.vad_min_silence_ms,
            pad_ms: self.vad_pad_ms,
            ..VadConfig::default()
        };
        cfg.validate().map_err(|e| anyhow::anyhow!("{e} (--vad-* flags)"))?;
        Ok(cfg)
    }
}

/// One line about what was heard.
pub fn heard_line(h: &edgeqa::voice::Heard, min_confidence: f32) -> String {
    let t = &h.transcript;
    match (&t.text, t.accepted(min_confidence)) {
        (_, Some(text)) => format!("heard: \"{text}\" (confidence {:.0}%)", t.confidence * 100.0),
        (Some(text), None) => format!(
            "heard: nothing I can answer (best guess \"{text}\" at confidence {:.0}%): I did not catch that",
            t.confidence * 100.0
        ),
        (None, None) => "heard: speech that is none of the questions I know: I did not catch that".to_string(),
    }
}
