//! `edgeqa ask --question-audio`: a question spoken by espeak-ng (22.05 kHz, written as stereo)
//! gets the typed question's answer and the transcript in `--json`; empty, truncated and non-WAV
//! files, a package without a grammar and a missing acoustic model are one-line errors.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use edgeqa_tests::{assert_clean_error, repo_root, run_bin};

const BIN: &str = env!("CARGO_BIN_EXE_edgeqa");
const MONO_16K: hound::WavSpec =
    hound::WavSpec { channels: 1, sample_rate: 16000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };

fn demo() -> PathBuf {
    repo_root().join("models/demo")
}

/// `text` spoken by espeak-ng, rewritten as a 2-channel WAV at espeak's own 22.05 kHz.
fn spoken_stereo(text: &str, dir: &Path) -> PathBuf {
    let mono = dir.join("mono.wav");
    let ok = Command::new("espeak-ng").args(["-v", "en-us", "-w"]).arg(&mono).arg(text).status().unwrap().success();
    assert!(ok, "espeak-ng failed");
    let mut r = hound::WavReader::open(&mono).unwrap();
    let spec = r.spec();
    let samples: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
    let out = dir.join("question-stereo.wav");
    let mut w = hound::WavWriter::create(&out, hound::WavSpec { channels: 2, ..spec }).unwrap();
    for s in samples {
        w.write_sample(s).unwrap();
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    out
}

fn ask(extra: &[&OsStr]) -> (bool, String, String) {
    let clip = demo().join("eval");
    let mut args: Vec<&OsStr> = vec![
        "ask".as_ref(),
        "--package".as_ref(),
        OsStr::new(""),
        "--video".as_ref(),
        OsStr::new(""),
        "--audio".as_ref(),
        OsStr::new(""),
    ];
    let (pkg, video, audio) = (demo().join("demo.eqa"), clip.join("clip_000.y4m"), clip.join("clip_000.wav"));
    args[2] = pkg.as_os_str();
    args[4] = video.as_os_str();
    args[6] = audio.as_os_str();
    args.extend_from_slice(extra);
    run_bin(BIN, &args, &[])
}

#[test]
fn a_spoken_question_gets_the_typed_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let q = "what colour is the triangle";
    let wav = spoken_stereo(q, tmp.path());
    let (ok, out, err) = ask(&["--question-audio".as_ref(), wav.as_os_str(), "--json".as_ref()]);
    assert!(ok, "{err}");
    let spoken: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (ok, out, err) = ask(&[q.as_ref(), "--json".as_ref()]);
    assert!(ok, "{err}");
    let typed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(spoken["transcript"].as_str().map(|t| t.replace("color", "colour")), Some(q.to_string()), "{spoken}");
    assert_eq!(spoken["accepted"], true);
    assert_eq!(spoken["answer"], typed["answer"]);
    assert!(spoken["confidence"].as_f64().unwrap() >= 0.5);
    assert!(spoken["timings_ms"]["speech_end_to_answer"].as_f64().unwrap() > 0.0);
    // The text form says what it heard, then the answer.
    let (ok, out, _) = ask(&["--question-audio".as_ref(), wav.as_os_str()]);
    assert!(ok && out.starts_with("heard: \"what col") && out.contains(typed["answer"].as_str().unwrap()), "{out}");
}

#[test]
fn silence_is_no_question() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("silence.wav");
    let spec = MONO_16K;
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for _ in 0..32000 {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
    let (ok, out, err) = ask(&["--question-audio".as_ref(), wav.as_os_str(), "--json".as_ref()]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["speech"].as_bool(), v["accepted"].as_bool(), v["answer"].is_null()),
        (Some(false), Some(false), true)
    );
}

#[test]
fn bad_question_audio_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty.wav");
    let spec = MONO_16K;
    hound::WavWriter::create(&empty, spec).unwrap().finalize().unwrap();
    let good = spoken_stereo("how many objects are there", tmp.path());
    let bytes = std::fs::read(&good).unwrap();
    let truncated = tmp.path().join("truncated.wav");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let text = tmp.path().join("notes.wav");
    std::fs::write(&text, "what colour is the triangle?").unwrap();
    for (file, needle) in [(&empty, "no audio samples"), (&truncated, "truncated"), (&text, "not a readable WAV")] {
        let r = ask(&["--question-audio".as_ref(), file.as_os_str()]);
        assert_clean_error(&r, &[&file.display().to_string(), needle]);
    }
    // A "question" of 25 questions in a row is refused before it is decoded.
    let mut r = hound::WavReader::open(&good).unwrap();
    let (spec, one): (hound::WavSpec, Vec<i16>) = (r.spec(), r.samples::<i16>().map(Result::unwrap).collect());
    let long = tmp.path().join("long.wav");
    let mut w = hound::WavWriter::create(&long, spec).unwrap();
    for s in one.iter().cycle().take(one.len() * 25) {
        w.write_sample(*s).unwrap();
    }
    w.finalize().unwrap();
    let r = ask(&["--question-audio".as_ref(), long.as_os_str()]);
    assert_clean_error(&r, &[&long.display().to_string(), "must be under 30 s"]);
    let missing = tmp.path().join("no-such-model");
    let r = ask(&["--question-audio".as_ref(), good.as_os_str(), "--speech-model".as_ref(), missing.as_os_str()]);
    assert_clean_error(&r, &["acoustic model", "pocketsphinx-en-us"]);
    let r = ask(&["--question-audio".as_ref(), good.as_os_str(), "--min-confidence".as_ref(), "2".as_ref()]);
    assert_clean_error(&r, &["--min-confidence"]);
}

#[test]
fn a_package_without_a_grammar_says_how_to_get_one() {
    let tmp = tempfile::tempdir().unwrap();
    let student = edgeqa_tests::demo_student_copy(tmp.path(), edgeqa_tests::without_voice);
    let pkg = tmp.path().join("silent.eqa");
    edgeqa_convert::convert_student(&student).unwrap().write(&pkg).unwrap();
    let wav = spoken_stereo("how many objects are there", tmp.path());
    let clip = demo().join("eval/clip_000.y4m");
    let audio = demo().join("eval/clip_000.wav");
    let r = run_bin(
        BIN,
        &[
            "ask".as_ref(),
            "--package".as_ref(),
            pkg.as_os_str(),
            "--video".as_ref(),
            clip.as_os_str(),
            "--audio".as_ref(),
            audio.as_os_str(),
            "--question-audio".as_ref(),
            wav.as_os_str(),
        ],
        &[],
    );
    assert_clean_error(&r, &["no voice grammar", "[voice]"]);
}

/// `edgeqa live --voice` on files: a question spoken over the clip's own sound is heard in the
/// audio stream and answered as `edgeqa ask` answers it typed on the same files.
#[test]
fn live_hears_a_question_in_the_audio_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = demo().join("eval");
    let scene = edgeqa::capture::wav::read_wav(&clip.join("clip_000.wav"), 16000).unwrap();
    let q = "which colour does the square have";
    let said = tmp.path().join("said.wav");
    assert!(Command::new("espeak-ng").args(["-v", "en-us", "-w"]).arg(&said).arg(q).status().unwrap().success());
    let (speech, rate) = edgeqa::capture::wav::read_wav_any_rate(&said).unwrap();
    let speech = edgeqa::voice::resample_to_voice_rate(&speech, rate, "espeak").unwrap();
    // The scene quieter, the question from 0.5 s on, then a second of quiet scene for the end.
    let mut mixed = vec![0.0f32; (8000 + speech.len() + 16000).max(scene.len())];
    for (m, s) in mixed.iter_mut().zip(&scene) {
        *m += 0.3 * s;
    }
    for (m, s) in mixed[8000..].iter_mut().zip(&speech) {
        *m += s;
    }
    let audio = tmp.path().join("scene-and-question.wav");
    edgeqa::capture::wav::write_wav_mono_i16(&audio, 16000, &mixed).unwrap();
    let video = clip.join("clip_000.y4m");
    let pkg = demo().join("demo.eqa");
    let files: [&OsStr; 6] = [
        "--package".as_ref(),
        pkg.as_os_str(),
        "--video".as_ref(),
        video.as_os_str(),
        "--audio".as_ref(),
        audio.as_os_str(),
    ];
    let live: Vec<&OsStr> =
        [&["live".as_ref()], &files[..], &["--voice".as_ref(), "--ask-at-end".as_ref(), "--json".as_ref()]].concat();
    let (ok, out, err) = run_bin(BIN, &live, &[]);
    assert!(ok, "{err}");
    let heard: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let caught: Vec<&serde_json::Value> = heard.iter().filter(|h| h["accepted"] == true).collect();
    assert_eq!(caught.len(), 1, "{out}");
    assert_eq!(caught[0]["question"].as_str().map(|t| t.replace("color", "colour")), Some(q.to_string()));
    assert!(err.contains("answered 1 spoken questions"), "{err}");
    let ask: Vec<&OsStr> = [&["ask".as_ref()], &files[..], &[q.as_ref(), "--json".as_ref()]].concat();
    let (ok, out, err) = run_bin(BIN, &ask, &[]);
    assert!(ok, "{err}");
    let typed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(caught[0]["answer"], typed["answer"]);
    assert!(caught[0]["timings_ms"]["speech_end_to_answer"].as_f64().unwrap() > 500.0);
}

/// `text` spoken by espeak-ng (en-us), at 16 kHz.
fn spoken_16k(text: &str, dir: &Path) -> Vec<f32> {
    let wav = dir.join("said.wav");
    assert!(Command::new("espeak-ng").args(["-v", "en-us", "-w"]).arg(&wav).arg(text).status().unwrap().success());
    let (speech, rate) = edgeqa::capture::wav::read_wav_any_rate(&wav).unwrap();
    edgeqa::voice::resample_to_voice_rate(&speech, rate, "espeak").unwrap()
}

/// Each question spoken from its start second over the steady hiss of a quiet room (white
/// noise 50 dB below full scale), with `tail_s` of it after the last question.
fn room_with_questions(questions: &[(&str, f64)], tail_s: f64, dir: &Path) -> PathBuf {
    let spoken: Vec<(Vec<f32>, usize)> =
        questions.iter().map(|(q, at)| (spoken_16k(q, dir), (at * 16000.0) as usize)).collect();
    let end = spoken.iter().map(|(s, at)| at + s.len()).max().unwrap() + (tail_s * 16000.0) as usize;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut mixed: Vec<f32> = (0..end)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            0.0055 * ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
        })
        .collect();
    for (s, at) in &spoken {
        for (m, v) in mixed[*at..].iter_mut().zip(s) {
            *m += v;
        }
    }
    let audio = dir.join("room-and-questions.wav");
    edgeqa::capture::wav::write_wav_mono_i16(&audio, 16000, &mixed).unwrap();
    audio
}

/// `edgeqa live --voice --realtime` on the demo clip and `audio`, with `extra` flags; `stdin`
/// writes to the process once it is listening. Returns the spoken answers' JSON and stderr.
fn live_voice_realtime(
    audio: &Path,
    extra: &[&str],
    stdin: impl FnOnce(std::process::ChildStdin),
) -> (Vec<serde_json::Value>, String) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(BIN)
        .args(["live", "--package"])
        .arg(demo().join("demo.eqa"))
        .arg("--video")
        .arg(demo().join("eval/clip_000.y4m"))
        .arg("--audio")
        .arg(audio)
        .args(["--realtime", "--voice", "--json"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (input, stderr) = (child.stdin.take().unwrap(), child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("source: ") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // The sources have started once they are named.
    if rx.recv_timeout(std::time::Duration::from_secs(120)).is_ok() {
        stdin(input);
    }
    let out = child.wait_with_output().unwrap();
    let err = reader.join().unwrap();
    assert!(out.status.success(), "{err}");
    let spoken = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["spoken"] == true)
        .collect();
    (spoken, err)
}

fn question(v: &serde_json::Value) -> Option<String> {
    v["question"].as_str().map(|t| t.replace("color", "colour"))
}

/// Two questions a second apart in a stream paced like a microphone: the second is cut out of
/// the stream while the first is being recognized, and both are heard whole.
#[test]
fn live_hears_two_questions_in_quick_succession() {
    let tmp = tempfile::tempdir().unwrap();
    let (q1, q2) = ("which colour does the square have", "how many objects are there");
    let first = spoken_16k(q1, tmp.path()).len() as f64 / 16000.0;
    let audio = room_with_questions(&[(q1, 0.5), (q2, 0.5 + first + 1.0)], 1.5, tmp.path());
    let (spoken, err) = live_voice_realtime(&audio, &[], drop);
    let caught: Vec<Option<String>> = spoken.iter().filter(|h| h["accepted"] == true).map(question).collect();
    assert_eq!(caught, [Some(q1.to_string()), Some(q2.to_string())], "{spoken:?}\n{err}");
    assert!(spoken.iter().all(|h| h["answer"].is_string()), "{spoken:?}");
    assert!(err.contains("0 dropped (recognizer busy)"), "{err}");
}

/// With `--push-to-talk` a question spoken before Enter is ignored; the one after is answered.
#[test]
fn push_to_talk_hears_only_the_question_after_enter() {
    let tmp = tempfile::tempdir().unwrap();
    let (q1, q2) = ("which colour does the square have", "how many objects are there");
    // Enter is pressed about 4.5 s in: after the first question has ended (by about 3.5 s),
    // before the second starts at 6.5 s.
    let audio = room_with_questions(&[(q1, 1.0), (q2, 6.5)], 1.5, tmp.path());
    let (spoken, err) = live_voice_realtime(&audio, &["--push-to-talk"], |mut stdin| {
        std::thread::sleep(std::time::Duration::from_millis(4500));
        std::io::Write::write_all(&mut stdin, b"\n").unwrap();
    });
    assert!(err.contains("listening: say your question"), "{err}");
    assert_eq!(spoken.len(), 1, "{spoken:?}\n{err}");
    assert_eq!(question(&spoken[0]), Some(q2.to_string()), "{spoken:?}\n{err}");
    assert!(spoken[0]["answer"].is_string());
    assert!(err.contains("2 utterances heard") || err.contains("1 utterances heard"), "{err}");
    assert!(err.contains("1 ignored (push-to-talk closed)"), "{err}");
}

/// `edgeqa inspect --board` counts hearing spoken questions in the memory plan and times it on
/// this machine; with `--history` (the plan of `edgeqa live`) one more utterance can wait for
/// the recognizer.
#[test]
fn inspect_plans_and_times_listening() {
    let pkg = demo().join("demo.eqa");
    let plan = |extra: &[&str]| -> serde_json::Value {
        let mut args: Vec<&OsStr> =
            vec!["inspect".as_ref(), pkg.as_os_str(), "--board".as_ref(), "rpi-zero-2w".as_ref(), "--json".as_ref()];
        args.extend(extra.iter().map(OsStr::new));
        let (ok, out, err) = run_bin(BIN, &args, &[]);
        assert!(ok, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["plan"].clone()
    };
    let line = |p: &serde_json::Value, name: &str| {
        p["items"].as_array().unwrap().iter().find(|i| i["name"] == name).map(|i| i["bytes"].as_u64().unwrap())
    };
    let ask = plan(&[]);
    let live = plan(&["--history", "10"]);
    let recognizer = line(&ask, "voice: recognizer (acoustic model + search)").expect("recognizer line");
    assert!(recognizer > 6 << 20, "the acoustic model alone is 6.6 MB: {recognizer}");
    let (a, l) = (line(&ask, "voice: utterance buffers").unwrap(), line(&live, "voice: utterance buffers").unwrap());
    assert!(l > a, "a queued utterance: {l} vs {a}");
    for p in [&ask, &live] {
        let cost = &p["voice_cost"];
        assert!(cost["recognize_ms_per_s"].as_f64().unwrap() > 1.0, "{cost}");
        assert!(cost["vad_ms_per_s"].as_f64().unwrap() >= 0.0, "{cost}");
    }
    let (ok, out, err) =
        run_bin(BIN, &["inspect".as_ref(), pkg.as_os_str(), "--board".as_ref(), "rpi-zero-2w".as_ref()], &[]);
    assert!(ok, "{err}");
    assert!(out.contains("voice, timed here on 2 s of synthetic voiced sound"), "{out}");
}
