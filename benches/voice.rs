//! From the end of a spoken question to its answer, on the demo student (tract): the time after
//! the voice activity detector has declared the end of speech (`--vad-min-silence-ms` later, a
//! setting, not work) — the recognizer's two decodes and the student's answer.
//!
//! - `voice/recognize_and_answer/N`: question N of three, spoken by espeak-ng (en-us), from its
//!   16 kHz samples to the answer;
//! - `voice/recognize_only/0`: the recognizer alone on the first.
//!
//! `cargo bench -p edgeqa-benches --bench voice` (needs espeak-ng and pocketsphinx-en-us;
//! `docs/voice.md` has the figures).

use std::path::Path;
use std::process::Command;

use criterion::{Criterion, criterion_group, criterion_main};
use edgeqa::backend::BackendChoice;
use edgeqa::package::Package;
use edgeqa::pipeline::Student;
use edgeqa::voice::sphinx::{DEFAULT_ACOUSTIC_MODEL, Recognizer};
use edgeqa::voice::{DEFAULT_MIN_CONFIDENCE, resample_to_voice_rate};
use edgeqa_benches::demo_dir;

const QUESTIONS: [&str; 3] =
    ["which colour does the square have", "how many objects are there", "in which direction does the red object move"];

fn voice(c: &mut Criterion) {
    let dir = demo_dir();
    let pkg = Package::open(&dir.join("demo.eqa")).expect("demo package");
    let student = Student::load(&pkg, BackendChoice::Tract, None).expect("load");
    let voice = pkg.manifest().voice.as_ref().expect("the demo package has a grammar");
    let mut recognizer = Recognizer::new(voice, Path::new(DEFAULT_ACOUSTIC_MODEL)).expect("acoustic model");
    let clip =
        student.encode_files(Some(&dir.join("eval/clip_000.y4m")), Some(&dir.join("eval/clip_000.wav"))).expect("clip");
    let tmp = std::env::temp_dir().join(format!("edgeqa-voice-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let spoken: Vec<Vec<f32>> = QUESTIONS
        .iter()
        .map(|q| {
            let wav = tmp.join("q.wav");
            let ok = Command::new("espeak-ng").args(["-v", "en-us", "-w"]).arg(&wav).arg(q).status();
            assert!(ok.is_ok_and(|s| s.success()), "espeak-ng failed");
            let (x, rate) = edgeqa::capture::wav::read_wav_any_rate(&wav).expect("wav");
            resample_to_voice_rate(&x, rate, "espeak").expect("resample")
        })
        .collect();
    let _ = std::fs::remove_dir_all(&tmp);
    for (i, x) in spoken.iter().enumerate() {
        let t = recognizer.recognize(x).expect("recognize");
        assert!(t.accepted(DEFAULT_MIN_CONFIDENCE).is_some(), "question {i} not caught: {t:?}");
        println!("question {i}: {:.2} s of audio heard as {:?}", t.audio_s, t.text);
        c.bench_function(&format!("voice/recognize_and_answer/{i}"), |b| {
            b.iter(|| {
                let t = recognizer.recognize(x).expect("recognize");
                student.answer(t.text.as_deref().expect("heard"), &clip).expect("answer")
            })
        });
    }
    c.bench_function("voice/recognize_only/0", |b| b.iter(|| recognizer.recognize(&spoken[0]).expect("recognize")));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = voice
}
criterion_main!(benches);
