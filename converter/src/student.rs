//! `student.toml`: what a student directory declares beside its stage ONNX files.
//!
//! ```toml
//! name = "my-student"
//! labels = ["red", "green", "yes", "no"]      # or labels_file = "labels.txt" (one per line)
//!
//! [video]            # needed with frame_encoder.onnx
//! width = 64
//! height = 64
//! frames = 16
//! mean = [0.5, 0.5, 0.5]
//! std = [0.25, 0.25, 0.25]
//!
//! [audio]            # needed with audio_encoder.onnx
//! sample_rate = 16000
//! n_fft = 512
//! hop = 256
//! n_mels = 32
//! f_min = 0.0
//! f_max = 8000.0
//! segment_frames = 16
//! segments = 4
//! log_offset = 1e-6
//!
//! [tokenizer]        # needed with question_encoder.onnx
//! vocab = ["[PAD]", "what", "colour"]          # or vocab_file = "vocab.txt" (one per line)
//! lowercase = true
//! max_len = 12
//!
//! [voice]            # optional: spoken questions (see `voice.rs` and docs/voice.md)
//! templates = ["what colour is the {shape}"]
//! slots = { shape = ["circle", "square"] }
//! ```

use std::path::{Path, PathBuf};

use edgeqa_format::manifest::{AudioPreprocess, TokenizerSpec, VideoPreprocess, VoiceSpec};
use serde::Deserialize;

use crate::ConvertError;

/// The parsed `student.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudentToml {
    pub name: String,
    #[serde(default)]
    pub labels: Vec<String>,
    pub labels_file: Option<PathBuf>,
    pub video: Option<VideoPreprocess>,
    pub audio: Option<AudioPreprocess>,
    pub tokenizer: Option<TokenizerToml>,
    pub voice: Option<crate::voice::VoiceToml>,
}

/// `[tokenizer]` of `student.toml`: a [`TokenizerSpec`] whose vocabulary may live in a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerToml {
    pub vocab: Option<Vec<String>>,
    pub vocab_file: Option<PathBuf>,
    #[serde(default = "yes")]
    pub lowercase: bool,
    pub max_len: usize,
    pub bos: Option<String>,
    pub unknown: Option<String>,
}

fn yes() -> bool {
    true
}

/// A `student.toml` with its label and vocabulary files resolved.
#[derive(Debug, Clone)]
pub struct StudentSpec {
    pub name: String,
    pub labels: Vec<String>,
    pub video: Option<VideoPreprocess>,
    pub audio: Option<AudioPreprocess>,
    pub tokenizer: Option<TokenizerSpec>,
    /// Grammar and pronunciations of spoken questions (without the voice activity model).
    pub voice: Option<VoiceSpec>,
    /// Voice activity model to package, resolved against the student directory.
    pub vad: Option<PathBuf>,
}

fn read_lines(dir: &Path, file: &Path, field: &str, toml: &Path) -> Result<Vec<String>, ConvertError> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| ConvertError::Student {
        file: toml.display().to_string(),
        reason: format!("`{field}` = {}: {e}", path.display()),
    })?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
}

/// Reads and checks `DIR/student.toml`.
pub fn load(dir: &Path) -> Result<StudentSpec, ConvertError> {
    let path = dir.join("student.toml");
    let shown = path.display().to_string();
    let bad = |reason: String| ConvertError::Student { file: shown.clone(), reason };
    let text =
        std::fs::read_to_string(&path).map_err(|e| bad(format!("{e} (a student directory needs a student.toml)")))?;
    let raw: StudentToml = toml::from_str(&text).map_err(|e| bad(e.to_string().trim().replace('\n', " ")))?;
    let labels = match (raw.labels.is_empty(), &raw.labels_file) {
        (false, None) => raw.labels.clone(),
        (true, Some(f)) => read_lines(dir, f, "labels_file", &path)?,
        (false, Some(_)) => return Err(bad("give `labels` or `labels_file`, not both".into())),
        (true, None) => return Err(bad("missing `labels` (the answer vocabulary, in logit order)".into())),
    };
    for (i, l) in labels.iter().enumerate() {
        if labels[..i].contains(l) {
            return Err(bad(format!("label `{l}` appears twice")));
        }
    }
    let tokenizer = match raw.tokenizer {
        None => None,
        Some(t) => {
            let vocab = match (t.vocab, &t.vocab_file) {
                (Some(v), None) => v,
                (None, Some(f)) => read_lines(dir, f, "tokenizer.vocab_file", &path)?,
                _ => return Err(bad("[tokenizer] needs exactly one of `vocab` and `vocab_file`".into())),
            };
            let spec =
                TokenizerSpec { vocab, lowercase: t.lowercase, max_len: t.max_len, bos: t.bos, unknown: t.unknown };
            edgeqa::text::Tokenizer::new(&spec).map_err(|e| bad(format!("[tokenizer]: {e}")))?;
            Some(spec)
        }
    };
    let (voice, vad) = match &raw.voice {
        None => (None, None),
        Some(v) => (
            Some(crate::voice::build(dir, v, tokenizer.as_ref()).map_err(|e| bad(e.to_string()))?),
            v.vad.as_ref().map(|p| dir.join(p)),
        ),
    };
    Ok(StudentSpec { name: raw.name, labels, video: raw.video, audio: raw.audio, tokenizer, voice, vad })
}
