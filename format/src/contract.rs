//! The student contract, spelled once: stage names, the tensor names each stage reads and writes,
//! and which stage produces each input of the head. Everything else (the manifest's validation,
//! the converter's shape fixing, the runtime's pipeline) refers to these names; a new stage is one
//! more entry in [`STAGES`]. `docs/student-contract.md` explains the contract in prose.

/// Version of the student contract this build reads and writes.
pub const CONTRACT_VERSION: u32 = 1;

/// Stage that turns sampled frames into per-frame features.
pub const FRAME_ENCODER: &str = "frame_encoder";
/// Stage that turns log-mel segments into per-segment features.
pub const AUDIO_ENCODER: &str = "audio_encoder";
/// Stage that turns a tokenized question into question features.
pub const QUESTION_ENCODER: &str = "question_encoder";
/// Optional stage, with [`SELECTOR`], that turns each frame's features into a small key as the
/// frame is encoded, so that scoring candidates for a question reads keys, not features.
pub const SELECTOR_KEYS: &str = "selector_keys";
/// Optional stage that scores candidate frames of a long stream for a question, from their keys.
pub const SELECTOR: &str = "selector";
/// Stage that turns question, frame and audio features into answer logits (required).
pub const HEAD: &str = "head";
/// Name of the single stage of a generic (non-student) model package.
pub const MODEL_STAGE: &str = "model";

/// `frame_encoder` input: f32 `[N,3,H,W]`, normalised per the manifest's video preprocessing.
pub const FRAMES: &str = "frames";
/// `audio_encoder` input: f32 `[N,1,M,T]` log-mel segments.
pub const LOG_MEL: &str = "log_mel";
/// `question_encoder` input: i64 `[1,L]` token ids.
pub const QUESTION_IDS: &str = "question_ids";
/// `question_encoder` input: i64 `[1,L]` attention mask (1 for tokens, 0 for padding).
pub const QUESTION_MASK: &str = "question_mask";
/// `frame_encoder` output and `head` input: f32 `[N,D]` per frame (`[1,F,D]` at the head).
pub const FRAME_FEATURES: &str = "frame_features";
/// `audio_encoder` output and `head` input: f32 `[N,D]` per segment (`[1,A,D]` at the head).
pub const AUDIO_FEATURES: &str = "audio_features";
/// `question_encoder` output and `head` input: f32 `[1,D]` or `[1,L,D]`.
pub const QUESTION_FEATURES: &str = "question_features";
/// `selector_keys` output: f32 `[N,K]`, one key per frame of the frame encoder's batch.
pub const FRAME_KEYS: &str = "frame_keys";
/// `selector` input: f32 `[1,R,K]`, the keys of R candidate frames in time order.
pub const CANDIDATE_KEYS: &str = "candidate_keys";
/// `selector` output: f32 `[1,R]`, one relevance logit per candidate frame.
pub const FRAME_SCORES: &str = "frame_scores";
/// `head` output: f32 `[1,K]`, one logit per answer label.
pub const ANSWER_LOGITS: &str = "answer_logits";

/// One stage of the student contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageSpec {
    /// The stage's name (`frame_encoder`); also the ONNX file stem in a student directory.
    pub name: &'static str,
    /// The inputs the runtime feeds, in no particular order: raw inputs, or outputs of stages
    /// that run before (`selector_keys` reads `frame_features`, the selector `question_features`). Empty for the head, whose
    /// inputs are the outputs of the stages present ([`StageSpec::feeds_head`]).
    pub inputs: &'static [&'static str],
    /// The stage's one output.
    pub output: &'static str,
    /// Whether every student has this stage.
    pub required: bool,
    /// Whether the output is an input of the head.
    pub feeds_head: bool,
}

/// The stages of the contract, in the order they run.
pub const STAGES: [StageSpec; 6] = [
    StageSpec { name: FRAME_ENCODER, inputs: &[FRAMES], output: FRAME_FEATURES, required: false, feeds_head: true },
    StageSpec { name: AUDIO_ENCODER, inputs: &[LOG_MEL], output: AUDIO_FEATURES, required: false, feeds_head: true },
    StageSpec {
        name: QUESTION_ENCODER,
        inputs: &[QUESTION_IDS, QUESTION_MASK],
        output: QUESTION_FEATURES,
        required: false,
        feeds_head: true,
    },
    StageSpec {
        name: SELECTOR_KEYS,
        inputs: &[FRAME_FEATURES],
        output: FRAME_KEYS,
        required: false,
        feeds_head: false,
    },
    StageSpec {
        name: SELECTOR,
        inputs: &[QUESTION_FEATURES, CANDIDATE_KEYS],
        output: FRAME_SCORES,
        required: false,
        feeds_head: false,
    },
    StageSpec { name: HEAD, inputs: &[], output: ANSWER_LOGITS, required: true, feeds_head: false },
];

/// Stage names of the contract, in the order they run.
pub const STUDENT_STAGES: [&str; 6] =
    [STAGES[0].name, STAGES[1].name, STAGES[2].name, STAGES[3].name, STAGES[4].name, STAGES[5].name];

/// The contract's stage of that name.
pub fn stage(name: &str) -> Option<&'static StageSpec> {
    STAGES.iter().find(|s| s.name == name)
}

/// The stage whose output is the head input `tensor` (`frame_features` → `frame_encoder`).
pub fn producer_of(tensor: &str) -> Option<&'static StageSpec> {
    STAGES.iter().find(|s| s.feeds_head && s.output == tensor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_each_head_input_has_one_producer() {
        for (i, s) in STAGES.iter().enumerate() {
            assert_eq!(STUDENT_STAGES[i], s.name);
            assert!(STAGES[..i].iter().all(|o| o.name != s.name && o.output != s.output), "{} repeats", s.name);
            assert!(
                s.inputs.iter().all(|t| STAGES[i..].iter().all(|o| o.output != *t)),
                "{} reads the output of a stage that runs after it",
                s.name
            );
            if s.feeds_head {
                assert_eq!(producer_of(s.output).map(|p| p.name), Some(s.name));
            }
        }
        assert_eq!(STAGES.iter().filter(|s| s.required).map(|s| s.name).collect::<Vec<_>>(), [HEAD]);
        assert_eq!(stage(QUESTION_ENCODER).map(|s| s.inputs), Some(&[QUESTION_IDS, QUESTION_MASK][..]));
        assert!(stage(MODEL_STAGE).is_none() && producer_of(ANSWER_LOGITS).is_none());
        assert!(producer_of(FRAME_SCORES).is_none(), "the selector's scores are not a head input");
        assert!(producer_of(FRAME_KEYS).is_none(), "the selector's keys are not a head input");
    }
}
