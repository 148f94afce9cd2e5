//! The package manifest: everything the device needs to feed a student and read its answer.
//!
//! The manifest is stored as JSON in the first section of a `.eqa` package (see
//! `docs/package-format.md`); `docs/student-contract.md` defines what each field means.
//! Field order is fixed by these structs and maps are ordered, so serialisation is deterministic.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::contract::{
    ANSWER_LOGITS, AUDIO_ENCODER, CANDIDATE_KEYS, FRAME_ENCODER, FRAME_FEATURES, FRAME_KEYS, FRAME_SCORES, FRAMES,
    HEAD, LOG_MEL, QUESTION_ENCODER, QUESTION_FEATURES, QUESTION_IDS, QUESTION_MASK, SELECTOR, SELECTOR_KEYS,
};
pub use crate::contract::{CONTRACT_VERSION, MODEL_STAGE, STUDENT_STAGES};

/// A manifest that is well-formed JSON but breaks the contract.
#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("manifest field `{field}`: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ManifestError {
    ManifestError::Invalid { field: field.into(), reason: reason.into() }
}

/// What a package holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageKind {
    /// A question-answering student: some encoders plus a head.
    Student,
    /// One generic ONNX model in a stage named `model`.
    Model,
}

/// Element type of a stage input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    I64,
    I32,
    U8,
    I8,
    Bool,
}

impl DType {
    /// Lower-case name as written in manifests and error messages.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::U8 => "u8",
            DType::I8 => "i8",
            DType::Bool => "bool",
        }
    }
}

/// Name, element type and fixed shape of one graph input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    /// Every dimension is fixed at conversion time.
    pub shape: Vec<usize>,
}

impl TensorInfo {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One stage graph of the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageInfo {
    /// Stage name (`frame_encoder`, `audio_encoder`, `question_encoder`, `head` or `model`).
    pub name: String,
    /// Name of the package section holding the graph.
    pub section: String,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    /// What the section holds: an ONNX graph (the default, not written) or a TFLite model.
    #[serde(default, skip_serializing_if = "StageFormat::is_onnx")]
    pub format: StageFormat,
}

/// The file format of a stage's graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageFormat {
    /// An ONNX `ModelProto` (tract, wgpu).
    #[default]
    Onnx,
    /// A TensorFlow Lite FlatBuffer (the `tflite` and `litert` backends).
    Tflite,
}

impl StageFormat {
    /// True for ONNX, the format a manifest leaves unsaid.
    pub fn is_onnx(&self) -> bool {
        *self == StageFormat::Onnx
    }

    /// Name as written in manifests and messages (`onnx`, `tflite`).
    pub fn name(self) -> &'static str {
        match self {
            StageFormat::Onnx => "onnx",
            StageFormat::Tflite => "tflite",
        }
    }
}

/// How clip frames become the `frames` input of the frame encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoPreprocess {
    /// Model input width and height in pixels (frames are resized bilinearly to this size).
    pub width: usize,
    pub height: usize,
    /// Number of frames F sampled uniformly over the clip (the head sees `[1,F,D]`).
    pub frames: usize,
    /// Per-channel (R,G,B) mean and standard deviation applied to pixels scaled to `[0,1]`.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// How clip audio becomes the `log_mel` input of the audio encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioPreprocess {
    /// Required sample rate of the mono input in Hz.
    pub sample_rate: u32,
    /// FFT size and hop in samples; a periodic Hann window of `n_fft` samples, no centring.
    pub n_fft: usize,
    pub hop: usize,
    /// Number of HTK mel bands M between `f_min` and `f_max` (Hz).
    pub n_mels: usize,
    pub f_min: f32,
    pub f_max: f32,
    /// Mel frames T per segment and number of segments A spread uniformly over the clip.
    pub segment_frames: usize,
    pub segments: usize,
    /// `log(mel_power + log_offset)`.
    pub log_offset: f32,
}

/// Word-level tokenizer of the question encoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerSpec {
    /// Vocabulary; a word's id is its index. Entry 0 is the padding token.
    pub vocab: Vec<String>,
    /// Lower-case the question before splitting.
    pub lowercase: bool,
    /// Sequence length L of `question_ids` / `question_mask`.
    pub max_len: usize,
    /// Optional token prepended to every question (for example `[CLS]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos: Option<String>,
    /// Optional token that unknown words map to; without it an unknown word is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
}

/// What the runtime needs to hear spoken questions (`docs/voice.md`): a grammar of every question
/// the student answers, the pronunciation of each of its words, and optionally a voice activity
/// model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceSpec {
    /// Acoustic model whose phones the pronunciations use (`cmusphinx-en-us`).
    pub acoustic_model: String,
    /// JSGF grammar whose public rule `<question>` covers every question the student answers.
    pub grammar: String,
    /// Pronunciation of every word of the grammar: word → phones separated by spaces.
    pub dictionary: std::collections::BTreeMap<String, String>,
    /// Voice activity model; without one the runtime detects speech by its energy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vad: Option<VadModel>,
}

/// A Silero-style voice activity model stored in the package: it reads `context + window`
/// samples and the recurrent state, and writes the speech probability and the next state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VadModel {
    /// The graph, its section and its fixed inputs `[1, context + window]` and `state`, and
    /// outputs `[1,1]` probability and next `state`.
    pub stage: StageInfo,
    /// Sample rate the model listens at, in Hz.
    pub sample_rate: u32,
    /// New samples per step.
    pub window: usize,
    /// Samples of the previous step repeated in front of each window.
    pub context: usize,
}

/// Name of the package section holding the voice activity model.
pub const VAD_SECTION: &str = "vad";

/// Quantization recorded by the converter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantizationInfo {
    /// `fp32` (pass-through), `int8`, `w8` or `w4`.
    pub scheme: String,
    /// Calibration method of the activation ranges (`int8` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Graph form of `int8`: `qlinear` (QLinearConv/QLinearMatMul) or `qdq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<String>,
    /// Every quantized tensor, stage by stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tensors: Vec<QuantizedTensor>,
    /// Nodes that keep float weights, with the reason (`stage/node: reason`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_float: Vec<String>,
}

/// One quantized tensor of a stage graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizedTensor {
    pub stage: String,
    /// Weight initializer or activation tensor name in the original graph.
    pub tensor: String,
    /// `int8/channel`, `int8/block32`, `int4/block32`, `f16` (weights) or `uint8/tensor`
    /// (activations).
    pub format: String,
    /// Where the weight's stored form is in the graph, so that a backend can take it as it is
    /// instead of folding its dequantizing sub-graph to f32 at load (`docs/quantization.md`,
    /// "Translate once"). Absent for activations and in packages of older converters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packed: Option<PackedWeight>,
}

/// The stored form of one quantized weight: its integers (or f16 values) and scales are
/// initializers of the stage graph, and `value` is the float tensor the graph computes from them
/// with the sub-graph [`QuantizedTensor::format`] implies (`docs/quantization.md`).
///
/// A row is one output channel: the weight with `axis` moved to the front, the other axes in
/// order, `cols` = the product of the other dimensions.
/// - `int8/channel`: `data` int8 in the weight's own shape, `scales` f32 `[rows]`, one
///   `DequantizeLinear(data, scales, zero points 0, axis)`; or `scales` f16 `[rows]` read through a
///   `Cast` to f32 (wide scale vectors, stored as f16 like other wide tables).
/// - `int8/blockB`, `int4/blockB`: `data` int8 `[rows · blocks, B]`, or uint8 `[rows · blocks,
///   B/2]` with column `j` of a block in the low nibble and `j + B/2` in the high one (value + 8);
///   `scales` f16 `[rows · blocks, 1]`; rows padded with zeros to whole blocks.
/// - `f16`: `data` f16 in the weight's own shape, one `Cast` to f32, no `scales`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackedWeight {
    /// The float value the quantized nodes read.
    pub value: String,
    /// Initializer holding the integers (or the f16 values).
    pub data: String,
    /// Initializer holding the scales (empty for `f16`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scales: String,
    /// Shape of the float weight.
    pub shape: Vec<usize>,
    /// Its output-channel axis.
    pub axis: usize,
}

impl Default for QuantizationInfo {
    fn default() -> Self {
        QuantizationInfo { scheme: "fp32".into(), method: None, form: None, tensors: vec![], kept_float: vec![] }
    }
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub contract_version: u32,
    /// Tool and version that wrote the package, e.g. `edgeqa-convert 0.1.0`.
    pub producer: String,
    pub kind: PackageKind,
    /// Free-form model name.
    pub name: String,
    pub stages: Vec<StageInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoPreprocess>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioPreprocess>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerSpec>,
    /// The K answer labels, index = logit position.
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub quantization: QuantizationInfo,
    /// Spoken questions: grammar, pronunciations and voice activity model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<VoiceSpec>,
}

impl Manifest {
    /// The format of the package's stages: TFLite when any stage is a TFLite model, else ONNX.
    pub fn format(&self) -> StageFormat {
        if self.stages.iter().any(|s| s.format == StageFormat::Tflite) {
            StageFormat::Tflite
        } else {
            StageFormat::Onnx
        }
    }

    /// The manifest of a generic model package: one stage named [`MODEL_STAGE`] with these inputs
    /// and outputs, its graph in the section of the same name, at this build's contract version.
    pub fn model(producer: &str, name: &str, inputs: Vec<TensorInfo>, outputs: Vec<TensorInfo>) -> Manifest {
        Manifest {
            contract_version: CONTRACT_VERSION,
            producer: producer.to_string(),
            kind: PackageKind::Model,
            name: name.to_string(),
            stages: vec![StageInfo {
                name: MODEL_STAGE.into(),
                section: MODEL_STAGE.into(),
                inputs,
                outputs,
                format: StageFormat::Onnx,
            }],
            video: None,
            audio: None,
            tokenizer: None,
            labels: vec![],
            quantization: QuantizationInfo::default(),
            voice: None,
        }
    }

    /// The quantized weights of stage `name` whose stored form the package records
    /// ([`PackedWeight`]): what a backend is given with the stage's graph.
    pub fn packed_weights(&self, name: &str) -> Vec<QuantizedTensor> {
        self.quantization.tensors.iter().filter(|t| t.stage == name && t.packed.is_some()).cloned().collect()
    }

    /// Stage by name.
    pub fn stage(&self, name: &str) -> Option<&StageInfo> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// Checks the manifest against the contract: stage names, tensor names, shapes and
    /// the preprocessing each present stage needs.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.contract_version != CONTRACT_VERSION {
            return Err(invalid(
                "contract_version",
                format!(
                    "{} is not supported (this runtime reads version {CONTRACT_VERSION}); rebuild the package with a matching edgeqa-convert",
                    self.contract_version
                ),
            ));
        }
        if self.stages.is_empty() {
            return Err(invalid("stages", "the package has no stage"));
        }
        for (i, s) in self.stages.iter().enumerate() {
            if self.stages[..i].iter().any(|o| o.name == s.name) {
                return Err(invalid("stages", format!("stage `{}` appears twice", s.name)));
            }
            for t in s.inputs.iter().chain(&s.outputs) {
                if t.shape.contains(&0) {
                    return Err(invalid(format!("stages.{}.{}", s.name, t.name), "a dimension is 0"));
                }
            }
        }
        match self.kind {
            PackageKind::Model => {
                if self.stages.len() != 1 || self.stages[0].name != MODEL_STAGE {
                    return Err(invalid("stages", "a model package holds exactly one stage named `model`"));
                }
                Ok(())
            }
            PackageKind::Student => self.validate_student(),
        }
    }

    fn validate_student(&self) -> Result<(), ManifestError> {
        for s in &self.stages {
            let spec = crate::contract::stage(&s.name).ok_or_else(|| {
                invalid(
                    "stages",
                    format!("`{}` is not a student stage (expected one of {})", s.name, STUDENT_STAGES.join(", ")),
                )
            })?;
            if spec.name != HEAD && s.inputs.len() != spec.inputs.len() {
                let why = match spec.inputs {
                    [_] => "an encoder takes exactly one input".to_string(),
                    names => format!("{} takes exactly the inputs {}", s.name, names.join(", ")),
                };
                return Err(invalid(format!("stages.{}", s.name), why));
            }
            if s.outputs.len() != 1 {
                return Err(invalid(format!("stages.{}", s.name), "a student stage has exactly one output"));
            }
        }
        for spec in crate::contract::STAGES.iter().filter(|spec| spec.required) {
            if self.stage(spec.name).is_none() {
                return Err(invalid("stages", format!("a student needs a `{}` stage", spec.name)));
            }
        }
        for spec in crate::contract::STAGES.iter().filter(|spec| spec.feeds_head) {
            if let (Some(stage), Some(head)) = (self.stage(spec.name), self.stage(HEAD)) {
                find(stage, spec.output, false)?;
                find(head, spec.output, true)?;
            }
        }
        let head = self.stage(HEAD).ok_or_else(|| invalid("stages", "a student needs a `head` stage"))?;
        let logits = find(head, ANSWER_LOGITS, false)?;
        if logits.shape.len() != 2 || logits.shape[0] != 1 {
            return Err(invalid("stages.head.answer_logits", format!("shape must be [1,K], got {:?}", logits.shape)));
        }
        if self.labels.len() != logits.shape[1] {
            return Err(invalid(
                "labels",
                format!("{} labels for {} answer logits", self.labels.len(), logits.shape[1]),
            ));
        }
        if let Some(fe) = self.stage(FRAME_ENCODER) {
            let v = self.video.as_ref().ok_or_else(|| invalid("video", "frame_encoder needs video preprocessing"))?;
            let frames = find(fe, FRAMES, true)?;
            let want = [frames.shape.first().copied().unwrap_or(0), 3, v.height, v.width];
            if frames.shape.as_slice() != want || frames.dtype != DType::F32 {
                return Err(invalid(
                    "stages.frame_encoder.frames",
                    format!(
                        "must be f32 [N,3,{},{}], got {} {:?}",
                        v.height,
                        v.width,
                        frames.dtype.name(),
                        frames.shape
                    ),
                ));
            }
            if v.frames == 0 || v.frames % want[0] != 0 {
                return Err(invalid(
                    "video.frames",
                    format!("{} frames is not a multiple of the encoder batch {}", v.frames, want[0]),
                ));
            }
            if v.std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
                return Err(invalid("video.std", "every std must be finite and non-zero"));
            }
        }
        if let Some(ae) = self.stage(AUDIO_ENCODER) {
            let a = self.audio.as_ref().ok_or_else(|| invalid("audio", "audio_encoder needs audio preprocessing"))?;
            let mel = find(ae, LOG_MEL, true)?;
            let n = mel.shape.first().copied().unwrap_or(0);
            if mel.shape.as_slice() != [n, 1, a.n_mels, a.segment_frames] || mel.dtype != DType::F32 {
                return Err(invalid(
                    "stages.audio_encoder.log_mel",
                    format!(
                        "must be f32 [N,1,{},{}], got {} {:?}",
                        a.n_mels,
                        a.segment_frames,
                        mel.dtype.name(),
                        mel.shape
                    ),
                ));
            }
            if a.segments == 0 || a.segments % n != 0 {
                return Err(invalid(
                    "audio.segments",
                    format!("{} segments is not a multiple of the encoder batch {n}", a.segments),
                ));
            }
            if a.n_fft < 2 || a.hop == 0 || a.n_mels == 0 || !(a.f_min >= 0.0 && a.f_max > a.f_min) {
                return Err(invalid("audio", "need n_fft >= 2, hop > 0, n_mels > 0 and 0 <= f_min < f_max"));
            }
            if !(a.log_offset > 0.0 && a.log_offset.is_finite()) {
                return Err(invalid("audio.log_offset", "must be positive and finite (silence would be log(0))"));
            }
            if a.f_max > a.sample_rate as f32 / 2.0 {
                return Err(invalid("audio.f_max", "must not exceed half the sample rate"));
            }
        }
        if let Some(qe) = self.stage(QUESTION_ENCODER) {
            let t =
                self.tokenizer.as_ref().ok_or_else(|| invalid("tokenizer", "question_encoder needs a tokenizer"))?;
            for name in [QUESTION_IDS, QUESTION_MASK] {
                let ids = find(qe, name, true)?;
                if ids.shape.as_slice() != [1, t.max_len] || ids.dtype != DType::I64 {
                    return Err(invalid(
                        format!("stages.question_encoder.{name}"),
                        format!("must be i64 [1,{}], got {} {:?}", t.max_len, ids.dtype.name(), ids.shape),
                    ));
                }
            }
            if t.vocab.is_empty() {
                return Err(invalid("tokenizer.vocab", "is empty"));
            }
        }
        match (self.stage(SELECTOR_KEYS), self.stage(SELECTOR)) {
            (Some(keys), Some(sel)) => self.validate_selector(keys, sel)?,
            (None, None) => {}
            (Some(_), None) => {
                return Err(invalid("stages", "selector_keys without a selector: the two stages come together"));
            }
            (None, Some(_)) => {
                return Err(invalid("stages", "a selector without selector_keys: the two stages come together"));
            }
        }
        if let Some(v) = &self.voice {
            self.validate_voice(v)?;
        }
        Ok(())
    }

    /// `selector_keys` reads the frame encoder's output batch and writes one f32 key `[N,K]` per
    /// frame; the selector reads the question encoder's output and R candidates' keys `[1,R,K]`,
    /// and writes one f32 score per candidate; R must be at least F.
    fn validate_selector(&self, keys: &StageInfo, sel: &StageInfo) -> Result<(), ManifestError> {
        let field = |stage: &str, name: &str| format!("stages.{stage}.{name}");
        let (Some(fe), Some(qe)) = (self.stage(FRAME_ENCODER), self.stage(QUESTION_ENCODER)) else {
            return Err(invalid("stages", "a selector needs a frame_encoder and a question_encoder"));
        };
        let fe_out = find(fe, FRAME_FEATURES, false)?;
        let kin = find(keys, FRAME_FEATURES, true)?;
        if kin.shape != fe_out.shape || kin.dtype != DType::F32 {
            return Err(invalid(
                field(SELECTOR_KEYS, FRAME_FEATURES),
                format!(
                    "must be f32 {:?} like the frame encoder's output, got {} {:?}",
                    fe_out.shape,
                    kin.dtype.name(),
                    kin.shape
                ),
            ));
        }
        let kout = find(keys, FRAME_KEYS, false)?;
        let batch = fe_out.shape.first().copied().unwrap_or(0);
        let k = kout.shape.get(1).copied().unwrap_or(0);
        if kout.shape.len() != 2 || kout.shape[0] != batch || k == 0 || kout.dtype != DType::F32 {
            return Err(invalid(
                field(SELECTOR_KEYS, FRAME_KEYS),
                format!(
                    "must be f32 [{batch},K] (one key per frame of the encoder's batch), got {} {:?}",
                    kout.dtype.name(),
                    kout.shape
                ),
            ));
        }
        let q = find(sel, QUESTION_FEATURES, true)?;
        let qe_out = find(qe, QUESTION_FEATURES, false)?;
        if q.shape != qe_out.shape || q.dtype != DType::F32 {
            return Err(invalid(
                field(SELECTOR, QUESTION_FEATURES),
                format!(
                    "must be f32 {:?} like the question encoder's output, got {} {:?}",
                    qe_out.shape,
                    q.dtype.name(),
                    q.shape
                ),
            ));
        }
        let cand = find(sel, CANDIDATE_KEYS, true)?;
        let r = cand.shape.get(1).copied().unwrap_or(0);
        let frames = self.video.as_ref().map_or(0, |v| v.frames);
        if cand.shape.len() != 3 || cand.shape[0] != 1 || cand.shape[2] != k || cand.dtype != DType::F32 {
            return Err(invalid(
                field(SELECTOR, CANDIDATE_KEYS),
                format!(
                    "must be f32 [1,R,{k}] (the keys of R candidates, as selector_keys writes them), got {} {:?}",
                    cand.dtype.name(),
                    cand.shape
                ),
            ));
        }
        if r < frames {
            return Err(invalid(
                field(SELECTOR, CANDIDATE_KEYS),
                format!("{r} candidates cannot give the head its {frames} frames"),
            ));
        }
        let scores = find(sel, FRAME_SCORES, false)?;
        if scores.shape != [1, r] || scores.dtype != DType::F32 {
            return Err(invalid(
                field(SELECTOR, FRAME_SCORES),
                format!("must be f32 [1,{r}], got {} {:?}", scores.dtype.name(), scores.shape),
            ));
        }
        Ok(())
    }

    fn validate_voice(&self, v: &VoiceSpec) -> Result<(), ManifestError> {
        let t = self.tokenizer.as_ref().ok_or_else(|| invalid("voice", "spoken questions need a tokenizer"))?;
        if !v.grammar.contains("public <question>") {
            return Err(invalid("voice.grammar", "has no public rule `<question>`"));
        }
        if v.dictionary.is_empty() {
            return Err(invalid("voice.dictionary", "is empty"));
        }
        for (key, phones) in &v.dictionary {
            // `word(2)` is the second pronunciation of `word`.
            let word = key.split('(').next().unwrap_or(key);
            let known = if t.lowercase {
                t.vocab.iter().any(|w| w.to_lowercase() == word)
            } else {
                t.vocab.iter().any(|w| w == word)
            };
            if !known {
                return Err(invalid(
                    "voice.dictionary",
                    format!("`{word}` is not in the tokenizer's vocabulary: the student could not read it"),
                ));
            }
            if phones.split_whitespace().next().is_none()
                || phones.chars().any(|c| !(c.is_ascii_alphanumeric() || c == ' '))
            {
                return Err(invalid(format!("voice.dictionary.{key}"), format!("`{phones}` is not a list of phones")));
            }
        }
        if let Some(vad) = &v.vad {
            let shapes: Vec<&[usize]> = vad.stage.inputs.iter().map(|t| t.shape.as_slice()).collect();
            let ok = vad.stage.inputs.len() == 2
                && vad.stage.outputs.len() == 2
                && shapes[0] == [1, vad.context + vad.window]
                && vad.stage.inputs.iter().all(|t| t.dtype == DType::F32)
                && vad.stage.outputs[0].shape == [1, 1]
                && vad.stage.outputs[1].shape == vad.stage.inputs[1].shape;
            if !ok || vad.window == 0 || vad.sample_rate == 0 {
                return Err(invalid(
                    "voice.vad",
                    "expected inputs f32 [1, context + window] and state, outputs [1,1] and the next state",
                ));
            }
        }
        Ok(())
    }
}

fn find<'a>(stage: &'a StageInfo, name: &str, input: bool) -> Result<&'a TensorInfo, ManifestError> {
    let (list, what) = if input { (&stage.inputs, "input") } else { (&stage.outputs, "output") };
    list.iter()
        .find(|t| t.name == name)
        .ok_or_else(|| invalid(format!("stages.{}", stage.name), format!("has no {what} named `{name}`")))
}
