//! Manifest JSON → `Manifest` → `validate`; what a load then derives from a valid manifest is
//! computed too: every tensor's element count, the tokenizer and the log-mel extractor.
#![no_main]

use edgeqa::manifest::Manifest;
use edgeqa::preprocess::mel::LogMel;
use edgeqa::text::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = serde_json::from_slice::<Manifest>(data) else { return };
    if m.validate().is_err() {
        return;
    }
    for t in m.stages.iter().flat_map(|s| s.inputs.iter().chain(&s.outputs)) {
        assert!(!t.is_empty());
    }
    // As `Student::load` builds them: only for the stages that use them.
    if let Some(t) = m.tokenizer.as_ref().filter(|_| m.stage("question_encoder").is_some())
        && let Ok(tok) = Tokenizer::new(t)
    {
        let _ = tok.encode("what colour is the ball?");
    }
    if let Some(a) = m.audio.as_ref().filter(|_| m.stage("audio_encoder").is_some()) {
        let _ = LogMel::new(a);
    }
});
