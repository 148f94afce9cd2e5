//! `edgeqa live` end to end on the committed demo (`models/demo`): file sources standing in for
//! the camera and microphone reproduce `edgeqa eval`, bad sources give one clear error line, and
//! a bounded soak on looping sources keeps its resident memory flat and inside a board budget.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgeqa_tests::{assert_clean_error, run_bin};

const EDGEQA: &str = env!("CARGO_BIN_EXE_edgeqa");

fn demo() -> PathBuf {
    edgeqa_tests::repo_root().join("models/demo")
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Runs `edgeqa` with `stdin` piped in; (success, stdout, stderr).
fn run_with_stdin(args: &[String], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(EDGEQA)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start edgeqa");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `edgeqa live` on the demo package over a video and an audio file on tract, asking `questions`
/// (one per line) once both have been read, answers as JSON lines; (success, stdout, stderr).
fn ask_at_end(video: &str, audio: &str, extra: &[&str], questions: &str) -> (bool, String, String) {
    let package = s(&demo().join("demo.eqa"));
    let mut args = vec!["live", "--package", &package, "--video", video, "--audio", audio];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--ask-at-end", "--json", "--backend", "tract"]);
    run_with_stdin(&args.into_iter().map(String::from).collect::<Vec<_>>(), questions)
}

#[test]
fn live_on_the_eval_clips_answers_as_eval_does() {
    let set = demo().join("eval/questions.jsonl");
    let package = s(&demo().join("demo.eqa"));
    let (ok, out, err) = run_bin(
        EDGEQA,
        &["eval", "--package", &package, "--set", &s(&set), "--json", "--answers", "--backend", "tract"]
            .map(std::ffi::OsStr::new),
        &[],
    );
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let eval_answers = report["answers"].as_array().unwrap();

    // The set's questions grouped by clip, in file order.
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&set).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), eval_answers.len());
    let mut by_clip: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        let key = (l["video"].as_str().unwrap().to_string(), l["audio"].as_str().unwrap().to_string());
        by_clip.entry(key).or_default().push(i);
    }
    assert!(by_clip.len() >= 20, "the eval set has {} clips", by_clip.len());
    let mut correct = 0;
    for ((video, audio), idx) in &by_clip {
        let questions: String = idx.iter().map(|&i| format!("{}\n", lines[i]["question"].as_str().unwrap())).collect();
        let video = &s(&demo().join("eval").join(video));
        let (ok, out, err) = ask_at_end(video, &s(&demo().join("eval").join(audio)), &[], &questions);
        assert!(ok, "{video}: {err}");
        let answers: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(answers.len(), idx.len(), "{video}: {out}");
        for (a, &i) in answers.iter().zip(idx) {
            let e = &eval_answers[i];
            assert_eq!(a["question"], e["question"]);
            assert_eq!(a["answer"], e["answer"], "{video}: {}", a["question"]);
            let (ca, ce) = (a["confidence"].as_f64().unwrap(), e["confidence"].as_f64().unwrap());
            assert!((ca - ce).abs() < 1e-5, "{video}: {}: confidence {ca} vs {ce}", a["question"]);
            correct += usize::from(a["answer"] == lines[i]["answer"]);
            // Every frame of the clip and all of its audio were looked at.
            assert_eq!(a["frames_span_s"][0].as_f64(), Some(0.0), "{a}");
            assert_eq!(a["selection"], "uniform", "each answer names its selection: {a}");
        }
    }
    assert_eq!(correct as u64, report["correct"].as_u64().unwrap(), "same accuracy as eval");
}

/// Least share of the long-stream questions `live --selection question` must answer right.
const MIN_LIVE_QUESTION_ACCURACY: f64 = 0.85;

#[test]
fn live_question_selection_answers_from_the_episode() {
    let set = demo().join("eval-long/questions.jsonl");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&set).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut by_stream: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for l in &lines {
        by_stream.entry(l["video"].as_str().unwrap().to_string()).or_default().push(l);
    }
    let (mut correct, mut total) = (0, 0);
    for (video, items) in &by_stream {
        let video_path = demo().join("eval-long").join(video);
        let fps = edgeqa::capture::y4m::read_y4m(&video_path).unwrap().fps;
        let seconds = |frame: u64| frame as f64 * f64::from(fps.1) / f64::from(fps.0);
        let questions: String = items.iter().map(|l| format!("{}\n", l["question"].as_str().unwrap())).collect();
        let audio = s(&demo().join("eval-long").join(items[0]["audio"].as_str().unwrap()));
        let (ok, out, err) = ask_at_end(&s(&video_path), &audio, &["--selection", "question"], &questions);
        assert!(ok, "{video}: {err}");
        assert!(err.contains("selection question (256 candidates"), "the start-up line names it: {err}");
        let answers: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(answers.len(), items.len(), "{video}: {out}");
        for (a, l) in answers.iter().zip(items) {
            assert_eq!(a["selection"], "question", "{a}");
            assert!(a["timings_ms"]["selector"].as_f64().is_some(), "the selector is timed: {a}");
            // The frames looked at overlap the episode (its window in seconds).
            let (w0, w1) = (seconds(l["window"][0].as_u64().unwrap()), seconds(l["window"][1].as_u64().unwrap()));
            let (f0, f1) = (a["frames_span_s"][0].as_f64().unwrap(), a["frames_span_s"][1].as_f64().unwrap());
            assert!(f0 < w1 && f1 >= w0, "{video}: frames {f0:.2}..{f1:.2} s miss the window {w0:.2}..{w1:.2} s: {a}");
            correct += usize::from(a["answer"] == l["answer"]);
            total += 1;
        }
    }
    let accuracy = correct as f64 / total as f64;
    assert!(accuracy >= MIN_LIVE_QUESTION_ACCURACY, "live --selection question: {correct}/{total} right");
}

#[test]
fn bad_sources_are_one_clear_error_line() {
    let package = s(&demo().join("demo.eqa"));
    let clip = |ext: &str| s(&demo().join(format!("eval/clip_000.{ext}")));
    let run = |extra: &[&str]| {
        let mut args = vec!["live", "--package", package.as_str(), "--backend", "tract"];
        args.extend_from_slice(extra);
        run_bin(EDGEQA, &args.iter().map(std::ffi::OsStr::new).collect::<Vec<_>>(), &[])
    };
    let dir = tempfile::tempdir().unwrap();
    // A Y4M and a WAV that end early (cut in the middle of their data).
    let cut = |name: &str, src: &str, keep: f64| {
        let bytes = std::fs::read(src).unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes[..(bytes.len() as f64 * keep) as usize]).unwrap();
        s(&path)
    };
    let short_video = cut("short.y4m", &clip("y4m"), 0.6);
    let short_audio = cut("short.wav", &clip("wav"), 0.6);
    assert_clean_error(&run(&["--video", &short_video, "--audio", &clip("wav")]), &["short.y4m", "truncated"]);
    assert_clean_error(&run(&["--video", &clip("y4m"), "--audio", &short_audio]), &["short.wav", "truncated"]);
    assert_clean_error(&run(&["--audio", &clip("wav")]), &["needs a video", "--video"]);
    assert_clean_error(&run(&["--video", &clip("y4m"), "--audio", &clip("wav"), "--history", "0"]), &["history"]);
    let inspect = |history: &str| {
        let args = ["inspect", package.as_str(), "--board", "rpi-zero-2w", "--history", history, "--backend", "tract"];
        run_bin(EDGEQA, &args.map(std::ffi::OsStr::new), &[])
    };
    assert_clean_error(&inspect("0"), &["--history", "positive"]);
    let (ok, out, err) = inspect("60");
    assert!(ok && out.contains("frame feature ring") && out.contains("rpi-zero-2w"), "{out}{err}");
    #[cfg(feature = "camera")]
    {
        assert_clean_error(
            &run(&["--camera", "/dev/video97", "--audio", &clip("wav")]),
            &["/dev/video97", "does not exist"],
        );
        assert_clean_error(
            &run(&["--camera", "/dev/null", "--audio", &clip("wav")]),
            &["/dev/null", "not a video capture device"],
        );
    }
    #[cfg(feature = "mic")]
    assert_clean_error(&run(&["--video", &clip("y4m"), "--mic", "no such microphone"]), &["no such microphone"]);
}

/// Resident memory of a process, from `/proc/PID/status`.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().ok()
}

/// `live` on looping file sources paced in real time, a question every 2 s, RSS sampled every
/// second: flat after warm-up and inside the `rpi-zero-2w` budget. 60 s here;
/// `EDGEQA_SOAK_SECONDS=3600 cargo test --workspace --test live -- soak` for the hour.
#[test]
fn soak_on_looping_sources_keeps_memory_flat() {
    let seconds: u64 = std::env::var("EDGEQA_SOAK_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let board = "rpi-zero-2w";
    let budget_mib = 64.0;
    let clip = |ext: &str| s(&demo().join(format!("eval/clip_001.{ext}")));
    let mut child = Command::new(EDGEQA)
        .args(["live", "--package", &s(&demo().join("demo.eqa")), "--backend", "tract", "--board", board])
        .args(["--video", &clip("y4m"), "--audio", &clip("wav"), "--loop", "--realtime", "--json", "--history", "10"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let reader = std::thread::spawn(move || stdout.lines().map(|l| l.unwrap()).collect::<Vec<String>>());
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut asked = 0;
    let mut ended_early = false;
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        let Some(kib) = rss_kib(pid) else {
            ended_early = true;
            break;
        };
        samples.push((start.elapsed().as_secs_f64(), kib));
        if samples.len() % 2 == 0 {
            writeln!(stdin, "what colour is the square?").unwrap();
            asked += 1;
        }
    }
    drop(stdin);
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let answers = reader.join().unwrap();
    assert!(status.success(), "{err}");
    assert!(!ended_early && samples.len() >= 8, "the process ended early: {err}");
    let answered = answers.iter().filter(|l| l.contains("\"answer\"")).count();
    assert_eq!(answered, asked, "{answers:?}");
    // Flat: after the first quarter (warm-up, rings filling), RSS grows by less than 1 MiB.
    let warm = &samples[samples.len() / 4..];
    let (first, max) = (warm[0].1, warm.iter().map(|s| s.1).max().unwrap());
    let peak_mib = samples.iter().map(|s| s.1).max().unwrap() as f64 / 1024.0;
    eprintln!(
        "soak {seconds} s: {answered} answers, {} RSS samples, RSS after warm-up {:.2} MiB, max {:.2} MiB, \
         last {:.2} MiB, peak {peak_mib:.2} MiB; {}",
        samples.len(),
        first as f64 / 1024.0,
        max as f64 / 1024.0,
        samples[samples.len() - 1].1 as f64 / 1024.0,
        err.lines().rev().find(|l| l.contains(" s | ")).unwrap_or("")
    );
    assert!(max - first < 1024, "RSS grew from {first} KiB to {max} KiB: {samples:?}");
    assert!(peak_mib < budget_mib, "peak RSS {peak_mib:.1} MiB is over the {board} budget");
}
