//! A bounded fuzz run of every fuzz target, in the test command: each target's body (the
//! function its libFuzzer binary calls, `fuzz/src/lib.rs`, included here) runs over its seed
//! corpus (`scripts/fuzz_seeds.py`) and then over random mutations of the seeds — bit flips,
//! interesting bytes and integers, insertions, deletions, duplications, truncations, splices of
//! two seeds — for `EDGEQA_FUZZ_SECONDS` (default 3) per target, from a fixed random seed
//! (`EDGEQA_FUZZ_SEED` picks another).
//!
//! Unlike `scripts/fuzz.sh` this run is not coverage-guided: it is built with the rest of the
//! tests, without libFuzzer's instrumentation, whose build alone takes over 8 minutes of CI's two
//! cores. It fails on what libFuzzer would call a crash: a panic that escapes the target (an
//! assertion of the target included) or one input running longer than 10 s. The failing input is
//! written to `target/fuzz-replay/<target>/` with the command that replays it under libFuzzer.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

/// Longest time one input may take (libFuzzer's `-timeout` in `scripts/fuzz.sh`).
const TIMEOUT: Duration = Duration::from_secs(10);

fn root() -> PathBuf {
    edgeqa_tests::repo_root()
}

/// Writes the seed corpora once (`fuzz/corpus/<target>/`, from the demo package, clips, boards
/// and the fetched ONNX node tests).
fn corpus(target: &str) -> Vec<Vec<u8>> {
    static SEEDS: Once = Once::new();
    SEEDS.call_once(|| {
        let out = std::process::Command::new(edgeqa_tests::venv_python())
            .arg(root().join("scripts/fuzz_seeds.py"))
            .output()
            .expect("run scripts/fuzz_seeds.py");
        assert!(
            out.status.success(),
            "scripts/fuzz_seeds.py failed (run `bash scripts/fetch-test-data.sh` first): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let dir = root().join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(!seeds.is_empty(), "{}: no seeds", dir.display());
    seeds
}

/// xorshift64*: a fixed sequence from a fixed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const INTERESTING: &[u64] =
    &[0, 1, 2, 7, 8, 16, 32, 64, 127, 128, 255, 256, 1024, 0x7fff, 0xffff, 0x7fff_ffff, u64::MAX];

/// One to four random edits of `input`, `other` a second seed to splice from.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        if v.is_empty() {
            v.push(rng.next() as u8);
            continue;
        }
        let at = rng.below(v.len());
        match rng.below(9) {
            0 => v[at] ^= 1 << rng.below(8),
            1 => v[at] = rng.next() as u8,
            2 => v[at] = INTERESTING[rng.below(INTERESTING.len())] as u8,
            3 => {
                // An interesting integer, little-endian, 2, 4 or 8 bytes wide.
                let x = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                let width = [2, 4, 8][rng.below(3)].min(v.len() - at);
                v[at..at + width].copy_from_slice(&x[..width]);
            }
            4 => {
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(at..at, bytes);
            }
            5 => {
                let end = (at + 1 + rng.below(64)).min(v.len());
                v.drain(at..end);
            }
            6 => {
                let end = (at + 1 + rng.below(64)).min(v.len());
                let copy = v[at..end].to_vec();
                let to = rng.below(v.len());
                v.splice(to..to, copy);
            }
            7 => v.truncate(at),
            _ => {
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let end = (from + 1 + rng.below(256)).min(other.len());
                    v.splice(at.., other[from..end].iter().copied());
                }
            }
        }
    }
    v
}

/// What the run found, if anything: the input and why.
struct Crash {
    input: Vec<u8>,
    why: String,
}

thread_local! {
    /// Whether this thread runs fuzz inputs, and the last panic message it saw.
    static WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static LAST_PANIC: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Panics on the fuzzing threads print nothing (edgeqa catches tract's at its boundaries, and
/// the harness reports the ones that escape, with the last message kept here); others print as
/// usual.
fn quiet_worker_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !WORKER.with(|w| w.get()) {
                return default(info);
            }
            LAST_PANIC.with(|l| *l.borrow_mut() = targets::panic_line(info));
        }))
    });
}

/// Fuzzes `target` over its seeds for `EDGEQA_FUZZ_SECONDS`; fails with the input saved on a
/// panic or an input over [`TIMEOUT`].
fn fuzz(target: &str) {
    let (name, body) = *targets::TARGETS.iter().find(|(n, _)| *n == target).expect("a target of fuzz/src/lib.rs");
    let seeds = corpus(target);
    let seconds: u64 = std::env::var("EDGEQA_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let seed: u64 = std::env::var("EDGEQA_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    let started = Instant::now();
    let limits = Limits { time: Duration::from_secs(seconds), per_input: TIMEOUT, seed };
    match run(name, body, seeds.clone(), limits) {
        Ok(runs) => eprintln!(
            "{target}: {runs} inputs ({} seeds) in {:.1} s, no crash",
            seeds.len(),
            started.elapsed().as_secs_f64()
        ),
        Err(crash) => fail(target, &crash.input, &crash.why),
    }
}

/// The input running now and since when.
type Running = (Instant, Vec<u8>);

/// How long to run, how long one input may take, and the random seed.
struct Limits {
    time: Duration,
    per_input: Duration,
    seed: u64,
}

/// Runs `body` on every seed, then on mutations until `limits.time` is up: the number of inputs
/// run, or the first input that panicked or ran longer than `limits.per_input`.
fn run(name: &'static str, body: targets::Body, seeds: Vec<Vec<u8>>, limits: Limits) -> Result<u64, Crash> {
    quiet_worker_panics();
    // The input running now and since when, for the watchdog.
    let running: Arc<Mutex<Option<Running>>> = Arc::new(Mutex::new(None));
    let (done_tx, done_rx) = mpsc::channel::<(u64, Option<Crash>)>();
    let worker_running = running.clone();
    std::thread::spawn(move || {
        WORKER.with(|w| w.set(true));
        let deadline = Instant::now() + limits.time;
        let mut rng = Rng((limits.seed ^ fnv(name.as_bytes())) | 1);
        let mut runs = 0u64;
        let mut k = 0usize;
        loop {
            let input = if k < seeds.len() {
                seeds[k].clone()
            } else if Instant::now() < deadline {
                let a = &seeds[rng.below(seeds.len())];
                let b = &seeds[rng.below(seeds.len())];
                mutate(&mut rng, a, b)
            } else {
                break;
            };
            k += 1;
            *worker_running.lock().unwrap() = Some((Instant::now(), input.clone()));
            let result = catch_unwind(AssertUnwindSafe(|| body(&input)));
            *worker_running.lock().unwrap() = None;
            runs += 1;
            if result.is_err() {
                let why = LAST_PANIC.with(|l| l.borrow().clone());
                let why = format!("after {runs} inputs: {why}");
                let _ = done_tx.send((runs, Some(Crash { input, why })));
                return;
            }
        }
        let _ = done_tx.send((runs, None));
    });
    loop {
        match done_rx.recv_timeout(Duration::from_millis(50)) {
            Ok((runs, None)) => return Ok(runs),
            Ok((_, Some(crash))) => return Err(crash),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let slow = running.lock().unwrap().as_ref().filter(|(t, _)| t.elapsed() > limits.per_input).cloned();
                if let Some((_, input)) = slow {
                    // The worker is left to finish (or not) on its own; the run is over.
                    let why = format!("one input ran for more than {:?}", limits.per_input);
                    return Err(Crash { input, why });
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Crash { input: vec![], why: "the fuzzing thread ended without a word".into() });
            }
        }
    }
}

/// Saves `input` and fails naming it and how to replay it.
fn fail(target: &str, input: &[u8], why: &str) -> ! {
    let dir = root().join("target/fuzz-replay").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("crash-{:016x}", fnv(input)));
    std::fs::write(&file, input).unwrap();
    panic!(
        "fuzz target `{target}` crashed {why}\n  input: {}\n  replay under libFuzzer: RUSTC_BOOTSTRAP=1 cargo fuzz run {target} {}",
        file.display(),
        file.strip_prefix(root()).unwrap_or(&file).display()
    );
}

/// FNV-1a, to name a crash input by its bytes.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

#[test]
fn fuzz_package() {
    fuzz("package");
}

#[test]
fn fuzz_manifest() {
    fuzz("manifest");
}

#[test]
fn fuzz_graph_wgpu() {
    fuzz("graph_wgpu");
}

#[test]
fn fuzz_graph_tract() {
    fuzz("graph_tract");
}

#[test]
fn fuzz_y4m() {
    fuzz("y4m");
}

#[test]
fn fuzz_wav() {
    fuzz("wav");
}

#[test]
fn fuzz_npy() {
    fuzz("npy");
}

#[test]
fn fuzz_board() {
    fuzz("board");
}

#[test]
fn fuzz_mjpeg() {
    fuzz("mjpeg");
}

#[test]
fn fuzz_tflite() {
    fuzz("tflite");
}

/// The harness finds what it is there to find: a panic behind a byte the seeds lack, and an
/// input that never ends, each with the input.
#[test]
fn the_harness_catches_panics_and_hangs() {
    fn panics_on_a_zero_byte(data: &[u8]) {
        assert!(!data.contains(&0), "a zero byte");
    }
    fn hangs_on_a_zero_byte(data: &[u8]) {
        if data.contains(&0) {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let limits = || Limits { time: Duration::from_secs(20), per_input: Duration::from_millis(300), seed: 1 };
    let seeds = vec![b"edgeqa".to_vec(), vec![1, 2, 3]];
    let crash = run("panics", panics_on_a_zero_byte, seeds.clone(), limits()).expect_err("the panic is found");
    assert!(crash.input.contains(&0) && crash.why.contains("a zero byte"), "{}", crash.why);
    let crash = run("hangs", hangs_on_a_zero_byte, seeds.clone(), limits()).expect_err("the hang is found");
    assert!(crash.input.contains(&0) && crash.why.contains("more than 300ms"), "{}", crash.why);
    let quiet = Limits { time: Duration::from_millis(200), ..limits() };
    assert!(run("fine", |_| {}, seeds, quiet).is_ok_and(|runs| runs > 2));
}

/// Every target of `fuzz/src/lib.rs` has a test here.
#[test]
fn every_target_is_run() {
    let src = std::fs::read_to_string(root().join("tests/fuzz_replay.rs")).unwrap();
    for (name, _) in targets::TARGETS {
        assert!(src.contains(&format!("fn fuzz_{name}()")), "no test runs fuzz target `{name}`");
        assert!(
            root().join(format!("fuzz/fuzz_targets/{name}.rs")).is_file(),
            "fuzz/fuzz_targets/{name}.rs is missing"
        );
    }
}
