//! Spoken questions on the demo student, end to end: questions of the eval set spoken by
//! Debian's `espeak-ng` in several voices, rates and pitches (resampled from its 22.05 kHz),
//! clean and with white or babble noise at 10 dB SNR; voice activity detection (the packaged
//! Silero model, and the energy detector), PocketSphinx on the package's grammar, then the
//! student. A spoken question must get the answer the typed one gets; silence, noise, tones,
//! music and other languages must yield no question.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use edgeqa::backend::BackendChoice;
use edgeqa::package::Package;
use edgeqa::pipeline::{ClipFeatures, Student};
use edgeqa::voice::sphinx::DEFAULT_ACOUSTIC_MODEL;
use edgeqa::voice::{DEFAULT_MIN_CONFIDENCE, Listener, VOICE_RATE, VadConfig, resample_to_voice_rate};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// (espeak-ng voice, words per minute, pitch 0..99).
const VOICES: [(&str, u32, u32); 4] =
    [("en-us", 150, 50), ("en+f2", 165, 65), ("en-gb-scotland+f3", 175, 70), ("en-gb-x-rp+m3", 135, 40)];

/// Spoken questions per test: every voice speaks a quarter of them.
const QUESTIONS: usize = 120;

/// `text` spoken by espeak-ng, at 16 kHz, with 0.3 s of silence before and after.
fn speak(text: &str, (voice, wpm, pitch): (&str, u32, u32), dir: &Path) -> Vec<f32> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let wav = dir.join(format!("say-{}.wav", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let out = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &wpm.to_string(), "-p", &pitch.to_string(), "-w"])
        .arg(&wav)
        .arg(text)
        .output()
        .unwrap_or_else(|e| panic!("cannot run espeak-ng ({e}): scripts/setup.sh installs it"));
    assert!(out.status.success(), "espeak-ng -v {voice}: {}", String::from_utf8_lossy(&out.stderr));
    let (samples, rate) = edgeqa::capture::wav::read_wav_any_rate(&wav).unwrap();
    assert_eq!(rate, 22050, "espeak-ng speaks at 22.05 kHz");
    let speech = resample_to_voice_rate(&samples, rate, "espeak").unwrap();
    let pad = vec![0.0f32; VOICE_RATE as usize * 3 / 10];
    [pad.clone(), speech, pad].concat()
}

fn power(x: &[f32]) -> f64 {
    x.iter().map(|s| f64::from(*s) * f64::from(*s)).sum::<f64>() / x.len().max(1) as f64
}

/// Deterministic Gaussian-like white noise (sum of four uniforms).
fn white(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    (0..n).map(|_| (uniform() + uniform() + uniform() + uniform()) * 1.73).collect()
}

/// `speech` plus `noise` scaled to `snr_db` below the speech's power (over the speech itself,
/// not the silent padding).
fn mix(speech: &[f32], noise: &[f32], snr_db: f64) -> Vec<f32> {
    let pad = VOICE_RATE as usize * 3 / 10;
    let p_speech = power(&speech[pad..speech.len() - pad]);
    let p_noise = power(&noise[..speech.len()]).max(1e-12);
    let gain = (p_speech / p_noise / 10f64.powf(snr_db / 10.0)).sqrt() as f32;
    speech.iter().zip(noise).map(|(s, n)| (s + gain * n).clamp(-1.0, 1.0)).collect()
}

/// The demo student converted with the Silero VAD packaged (`[voice] vad`), into `dir`.
fn package_with_vad(dir: &Path) -> PathBuf {
    let vad = root().join(".cache/testdata/models/silero_vad_openvino_16k.onnx");
    assert!(vad.is_file(), "{} is missing: run `bash scripts/fetch-test-data.sh`", vad.display());
    let student = edgeqa_tests::demo_student_copy(dir, |toml| {
        toml.replace("[voice]\n", &format!("[voice]\nvad = {:?}\n", vad.display().to_string()))
    });
    let converted = edgeqa_convert::convert_student(&student).unwrap();
    assert!(converted.manifest.voice.as_ref().unwrap().vad.is_some());
    let out = dir.join("demo-vad.eqa");
    converted.write(&out).unwrap();
    out
}

struct Case {
    question: String,
    answer: String,
    video: PathBuf,
    audio: PathBuf,
}

fn eval_cases() -> Vec<Case> {
    let dir = root().join("models/demo/eval");
    let text = std::fs::read_to_string(dir.join("questions.jsonl")).unwrap();
    text.lines()
        .take(QUESTIONS)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            Case {
                question: s("question"),
                answer: s("answer"),
                video: dir.join(s("video")),
                audio: dir.join(s("audio")),
            }
        })
        .collect()
}

#[derive(Default, Debug)]
struct Tally {
    n: usize,
    same_answer: usize,
    exact_transcript: usize,
    rejected: usize,
    typed_correct: usize,
    spoken_correct: usize,
    real_time: Vec<f64>,
    /// Seconds decoding and seconds of audio, summed.
    decode_s: f64,
    audio_s: f64,
}

impl Tally {
    fn pct(&self, k: usize) -> f64 {
        100.0 * k as f64 / self.n as f64
    }
    fn row(&self, what: &str) -> String {
        let mut rt = self.real_time.clone();
        rt.sort_by(f64::total_cmp);
        format!(
            "| {what} | {} | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.3} / {:.3} / {:.3} |",
            self.n,
            self.pct(self.same_answer),
            self.pct(self.exact_transcript),
            self.pct(self.rejected),
            self.pct(self.typed_correct),
            self.pct(self.spoken_correct),
            rt[rt.len() / 2],
            rt[rt.len() - 1],
            self.decode_s / self.audio_s
        )
    }
}

fn normalise(q: &str) -> String {
    q.trim_end_matches(['?', '.']).to_lowercase().replace("colour", "color")
}

/// Speaks the eval questions (noise by `noisy`: none, or white and babble alternately at 10 dB)
/// and tallies the answers per voice and in all.
fn run_set(noisy: bool) -> (Tally, Vec<(String, Tally)>) {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = Package::open(&package_with_vad(tmp.path())).unwrap();
    let student = Student::load(&pkg, BackendChoice::Tract, None).unwrap();
    let mut listener = Listener::new(&pkg, Path::new(DEFAULT_ACOUSTIC_MODEL), VadConfig::default()).unwrap();
    assert_eq!(listener.detector(), "silero");
    let cases = eval_cases();
    let mut clips: HashMap<PathBuf, ClipFeatures> = HashMap::new();
    let mut total = Tally::default();
    let mut per_voice: Vec<(String, Tally)> = VOICES.iter().map(|v| (v.0.to_string(), Tally::default())).collect();
    for (i, c) in cases.iter().enumerate() {
        let voice = VOICES[i % VOICES.len()];
        let clean = speak(&c.question, voice, tmp.path());
        let audio = if !noisy {
            clean
        } else if i % 2 == 0 {
            mix(&clean, &white(clean.len(), i as u64 + 1), 10.0)
        } else {
            // Babble: three other questions in other voices, spoken at once.
            let mut babble = vec![0.0f32; clean.len()];
            for k in 1..=3 {
                let other = &cases[(i + 7 * k) % cases.len()];
                let talk = speak(&other.question, VOICES[(i + k) % VOICES.len()], tmp.path());
                for (b, t) in babble.iter_mut().zip(talk.iter().cycle().skip(k * 1000)) {
                    *b += t;
                }
            }
            mix(&clean, &babble, 10.0)
        };
        let clip = clips
            .entry(c.video.clone())
            .or_insert_with(|| student.encode_files(Some(&c.video), Some(&c.audio)).unwrap());
        let typed = student.answer(&c.question, clip).unwrap().answer;
        let heard = listener.hear_recording(&audio, "test").unwrap();
        let text = heard.as_ref().and_then(|h| h.transcript.accepted(DEFAULT_MIN_CONFIDENCE));
        let spoken = text.map(|q| student.answer(q, clip).unwrap().answer);
        let slot = &mut per_voice[i % VOICES.len()].1;
        for t in [&mut total, slot] {
            t.n += 1;
            t.same_answer += usize::from(spoken.as_deref() == Some(typed.as_str()));
            t.exact_transcript += usize::from(text.map(normalise) == Some(normalise(&c.question)));
            t.rejected += usize::from(text.is_none());
            t.typed_correct += usize::from(typed == c.answer);
            t.spoken_correct += usize::from(spoken.as_deref() == Some(c.answer.as_str()));
            if let Some(h) = &heard {
                let seconds = audio.len() as f64 / f64::from(VOICE_RATE);
                t.real_time.push(h.transcript.decode_ms / 1e3 / seconds);
                t.decode_s += h.transcript.decode_ms / 1e3;
                t.audio_s += seconds;
            }
        }
        if spoken.as_deref() != Some(typed.as_str()) {
            println!(
                "  {:?} ({}): heard {:?} at {:.2}",
                c.question,
                voice.0,
                heard.as_ref().and_then(|h| h.transcript.text.clone()),
                heard.as_ref().map_or(0.0, |h| h.transcript.confidence)
            );
        }
    }
    (total, per_voice)
}

fn report(what: &str, total: &Tally, per_voice: &[(String, Tally)]) {
    println!(
        "| {what} | questions | same answer as typed | exact transcript | not caught | typed accuracy | spoken accuracy | decode × real time p50 / max / all |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (v, t) in per_voice {
        println!("{}", t.row(v));
    }
    println!("{}", total.row("all"));
}

#[test]
fn clean_spoken_questions_get_the_typed_answers() {
    let (total, per_voice) = run_set(false);
    report("clean", &total, &per_voice);
    assert!(total.n >= 100);
    // The goals (docs/voice.md has the table): 95% the same answer as typed, and spoken answers
    // at most 5 points less accurate than typed ones.
    assert!(total.pct(total.same_answer) >= 95.0, "same answer {:.1}%", total.pct(total.same_answer));
    assert!(total.pct(total.typed_correct) - total.pct(total.spoken_correct) <= 5.0);
    // The decode × real time column is reported, not asserted: on a loaded machine it says
    // nothing. Its target lives in the `voice` benchmark (docs/voice.md).
}

#[test]
fn noisy_spoken_questions_get_the_typed_answers() {
    let (total, per_voice) = run_set(true);
    report("10 dB SNR (white, babble)", &total, &per_voice);
    assert!(total.n >= 100);
    // The goal (this set measures 85.8%).
    assert!(total.pct(total.same_answer) >= 85.0, "same answer {:.1}%", total.pct(total.same_answer));
}

/// Sounds that are not questions, at 16 kHz: silence, white noise, a steady tone, and "music"
/// (a melody of harmonic notes with a beat).
fn not_speech() -> Vec<(&'static str, Vec<f32>)> {
    let n = VOICE_RATE as usize * 3;
    let tone: Vec<f32> =
        (0..n).map(|i| 0.4 * (i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 16000.0).sin()).collect();
    let notes = [261.6f32, 329.6, 392.0, 523.3, 392.0, 329.6];
    let music: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f32 / 16000.0;
            let f = notes[(t * 4.0) as usize % notes.len()];
            let env = (-(t * 4.0).fract() * 3.0).exp();
            (1..=4).map(|h| 0.15 / h as f32 * (2.0 * std::f32::consts::PI * f * h as f32 * t).sin()).sum::<f32>() * env
        })
        .collect();
    let noise: Vec<f32> = white(n, 99).iter().map(|s| s * 0.1).collect();
    vec![("silence", vec![0.0; n]), ("white noise", noise), ("tone", tone), ("music", music)]
}

#[test]
fn silence_noise_tones_and_music_ask_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let with_vad = Package::open(&package_with_vad(tmp.path())).unwrap();
    let plain = Package::open(&root().join("models/demo/demo.eqa")).unwrap();
    for pkg in [&with_vad, &plain] {
        let mut listener = Listener::new(pkg, Path::new(DEFAULT_ACOUSTIC_MODEL), VadConfig::default()).unwrap();
        for (what, audio) in not_speech() {
            let heard = listener.hear_recording(&audio, "test").unwrap();
            let caught = heard.as_ref().and_then(|h| h.transcript.accepted(DEFAULT_MIN_CONFIDENCE));
            assert_eq!(
                caught,
                None,
                "{what} with the {} detector was heard as a question: {heard:?}",
                listener.detector()
            );
        }
    }
}

#[test]
fn other_languages_are_not_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = Package::open(&root().join("models/demo/demo.eqa")).unwrap();
    let mut listener = Listener::new(&pkg, Path::new(DEFAULT_ACOUSTIC_MODEL), VadConfig::default()).unwrap();
    assert_eq!(listener.detector(), "energy");
    for (voice, text) in [
        ("de", "Wie spät ist es heute Abend in Berlin"),
        ("fr", "Quelle heure est il maintenant à Paris"),
        ("es", "Cuántos objetos hay en la escena de hoy"),
        ("it", "Dove si trova la stazione dei treni"),
    ] {
        let audio = speak(text, (voice, 150, 50), tmp.path());
        let heard = listener.hear_recording(&audio, "test").unwrap().expect("speech is detected");
        assert_eq!(
            heard.transcript.accepted(DEFAULT_MIN_CONFIDENCE),
            None,
            "{voice} `{text}` was taken for a question: {heard:?}"
        );
    }
}

#[test]
fn the_energy_detector_finds_the_same_questions() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = Package::open(&root().join("models/demo/demo.eqa")).unwrap();
    let mut listener = Listener::new(&pkg, Path::new(DEFAULT_ACOUSTIC_MODEL), VadConfig::default()).unwrap();
    let cases = eval_cases();
    let mut exact = 0;
    for (i, c) in cases.iter().take(12).enumerate() {
        let audio = speak(&c.question, VOICES[i % 2], tmp.path());
        let heard = listener.hear_recording(&audio, "test").unwrap().expect("speech is detected");
        exact += usize::from(
            heard.transcript.accepted(DEFAULT_MIN_CONFIDENCE).map(normalise) == Some(normalise(&c.question)),
        );
    }
    assert!(exact >= 11, "{exact} of 12 transcripts exact");
}

#[test]
fn every_eval_question_is_in_the_grammar() {
    let toml: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("models/demo/student/student.toml")).unwrap()).unwrap();
    let v = &toml["voice"];
    let strings = |a: &toml::Value| a.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    let templates: Vec<String> = strings(&v["templates"]);
    let slots = v["slots"].as_table().unwrap().iter().map(|(k, a)| (k.clone(), strings(a))).collect();
    let grammar = edgeqa_convert::voice::Grammar::new(&templates, &slots).unwrap();
    let sentences = grammar.sentences(100_000).unwrap();
    let text = std::fs::read_to_string(root().join("models/demo/eval/questions.jsonl")).unwrap();
    for l in text.lines() {
        let q: serde_json::Value = serde_json::from_str(l).unwrap();
        let q = q["question"].as_str().unwrap().trim_end_matches(['?', '.']).to_lowercase();
        assert!(sentences.binary_search(&q).is_ok(), "`{q}` is not in the grammar");
    }
    let pkg = Package::open(&root().join("models/demo/demo.eqa")).unwrap();
    assert_eq!(pkg.manifest().voice.as_ref().unwrap().grammar, grammar.jsgf(), "demo.eqa carries this grammar");
}
