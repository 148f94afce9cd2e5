//! The runtime's preprocessing equals the training recipe's (`training/preprocess.py`) on the same
//! clips: frames, log-mel segments and token ids, for the committed demo student's settings.
//!
//! The recipe runs in the Python venv that `bash scripts/fetch-test-data.sh` creates (NumPy only).
//! Tolerances: frames within 1e-5 (both compute in f32 with the same formulas; only the order of
//! a few float operations may differ), log-mel within 1e-4 absolute (both compute in f64 and cast
//! to f32; the FFTs differ in rounding), token ids and masks exactly.

use std::process::Command;

use edgeqa::capture::wav::read_wav;
use edgeqa::capture::y4m::read_y4m;
use edgeqa::package::Package;
use edgeqa::preprocess::image::frames_tensor;
use edgeqa::preprocess::mel::LogMel;
use edgeqa::tensor::{Tensor, TensorData};
use edgeqa::text::tokenizer::Tokenizer;

const FRAME_TOLERANCE: f32 = 1e-5;
const MEL_TOLERANCE: f32 = 1e-4;

use edgeqa_tests::{repo_root as root, venv_python as python};

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn i64_data(t: &Tensor) -> &[i64] {
    match &t.data {
        TensorData::I64(v) => v,
        other => panic!("expected int64, got {other:?}"),
    }
}

#[test]
fn runtime_preprocessing_matches_the_training_recipe() {
    let demo = root().join("models/demo");
    let package = Package::open(&demo.join("demo.eqa")).unwrap();
    let manifest = package.manifest();
    let (video_spec, audio_spec, token_spec) = (
        manifest.video.as_ref().expect("the demo student reads video"),
        manifest.audio.as_ref().expect("the demo student reads audio"),
        manifest.tokenizer.as_ref().expect("the demo student reads questions"),
    );
    let mel = LogMel::new(audio_spec);
    let tokenizer = Tokenizer::new(token_spec).unwrap();
    let cases = [
        ("clip_000", "what colour is the object that appears when the sound starts?"),
        ("clip_003", "which way is the red square moving?"),
        ("clip_007", "is the tone high or low pitched?"),
        ("clip_012", "how many objects are there?"),
    ];
    for (clip, question) in cases {
        let (video, audio) = (demo.join(format!("eval/{clip}.y4m")), demo.join(format!("eval/{clip}.wav")));
        let out = tempfile::tempdir().unwrap();
        let status = Command::new(python())
            .arg(root().join("training/dump_inputs.py"))
            .arg("--student")
            .arg(demo.join("student/student.toml"))
            .arg("--video")
            .arg(&video)
            .arg("--audio")
            .arg(&audio)
            .args(["--question", question, "--out"])
            .arg(out.path())
            .status()
            .unwrap();
        assert!(status.success(), "training/dump_inputs.py failed on {clip}");
        let read = |name: &str| Tensor::read_npy(&out.path().join(name)).unwrap();

        let frames = frames_tensor(&read_y4m(&video).unwrap(), video_spec).unwrap();
        let want = read("frames.npy");
        assert_eq!(want.shape, [video_spec.frames, 3, video_spec.height, video_spec.width]);
        let d = max_abs_diff(&frames, want.as_f32().unwrap());
        assert!(d <= FRAME_TOLERANCE, "{clip}: frames differ by up to {d}");
        eprintln!("{clip}: frames max abs difference {d:e}");

        let segments = mel.segments(&read_wav(&audio, audio_spec.sample_rate).unwrap());
        let want = read("log_mel.npy");
        assert_eq!(want.shape, [audio_spec.segments, 1, audio_spec.n_mels, audio_spec.segment_frames]);
        let d = max_abs_diff(&segments, want.as_f32().unwrap());
        assert!(d <= MEL_TOLERANCE, "{clip}: log-mel differs by up to {d}");
        eprintln!("{clip}: log-mel max abs difference {d:e}");

        let tokens = tokenizer.encode(question).unwrap();
        assert_eq!(tokens.ids, i64_data(&read("question_ids.npy")), "{question}");
        assert_eq!(tokens.mask, i64_data(&read("question_mask.npy")), "{question}");
    }
}
