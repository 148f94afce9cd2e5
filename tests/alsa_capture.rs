//! A real capture through ALSA and cpal without a sound card: an ALSA `file` PCM whose `infile`
//! holds an evaluation clip, defined in a configuration of the test's own (`ALSA_CONFIG_PATH`).
//!
//! How the PCM is built, and why:
//! - `type file` with `slave.pcm "null"`: the null PCM captures zeros and accepts any format,
//!   rate and channel count; the file plugin overwrites each period it reads with the next bytes
//!   of `infile`. It is the PCM cpal opens directly (not under `plug`): under `plug` (alsa-lib
//!   1.2.8) the conversion plugins read the file plugin through mmap and whole periods of the
//!   infile are skipped (a period in every four here), so the capture would not be the file.
//!   Opened directly, cpal's `readi` reads the infile exactly, period after period.
//! - The infile is therefore in the format cpal negotiates for such a device, which
//!   `mic::open` takes as the device's default input configuration: F32, 48000 Hz, 2 channels.
//!   The test writes the clip (16 kHz) upsampled to 48 kHz, as two different channels whose mean
//!   is the clip, so the capture exercises conversion, mixdown and resampling back to 16 kHz.
//! - Pacing: the null PCM is always ready, so on its own the capture would run through the file
//!   in milliseconds. The file plugin also writes what it captures to `file`; that is a FIFO the
//!   test drains at real time, so the capture blocks on it and runs at 48 kHz like a device.
//! - A `hint` section makes ALSA's name hints, which cpal enumerates, list the PCM.
//!
//! This binary holds one test: `ALSA_CONFIG_PATH` must be set before ALSA reads its
//! configuration, once per process.
#![cfg(feature = "mic")]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgeqa::capture::mic;
use edgeqa::capture::wav::read_wav;
use edgeqa::capture::{AudioBlock, AudioSource};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

const CLIP_RATE: u32 = 16_000;
const DEVICE_RATE: usize = 48_000;
const CHANNELS: usize = 2;

fn clip_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/demo/eval/clip_000.wav")
}

/// Mono `samples` resampled as a whole (the resampler's delay trimmed).
fn resample(samples: &[f32], from: usize, to: usize, chunk: usize) -> Vec<f32> {
    let mut resampler = Fft::<f32>::new(from, to, chunk, 1, FixedSync::Input).unwrap();
    let input = InterleavedSlice::new(samples, 1, samples.len()).unwrap();
    resampler.process_all(&input, samples.len(), None).unwrap().take_data()
}

/// 48 kHz mono as interleaved F32 stereo: left 1.2x, right 0.8x (mean: the input).
fn device_bytes(at_48k: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(at_48k.len() * CHANNELS * 4);
    for v in at_48k {
        bytes.extend_from_slice(&(v * 1.2).clamp(-1.0, 1.0).to_ne_bytes());
        bytes.extend_from_slice(&(v * 0.8).clamp(-1.0, 1.0).to_ne_bytes());
    }
    bytes
}

/// Reads what the file PCM writes to `fifo` at real time for F32 stereo 48 kHz, until it closes.
fn drain_at_real_time(fifo: PathBuf) {
    std::thread::spawn(move || {
        // Blocks until the capture opens it (on its first period).
        let Ok(mut f) = std::fs::File::open(&fifo) else { return };
        let bytes_per_second = (DEVICE_RATE * CHANNELS * 4) as f64;
        let mut chunk = vec![0u8; DEVICE_RATE / 100 * CHANNELS * 4];
        let start = Instant::now();
        let mut total = 0usize;
        while let Ok(n @ 1..) = f.read(&mut chunk) {
            total += n;
            let due = start + Duration::from_secs_f64(total as f64 / bytes_per_second);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    });
}

/// Normalised correlation of `a` and `b` (same length).
fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += f64::from(x) * f64::from(y);
        aa += f64::from(x) * f64::from(x);
        bb += f64::from(y) * f64::from(y);
    }
    ab / (aa * bb).sqrt().max(1e-20)
}

fn rms(v: &[f32]) -> f64 {
    (v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

#[test]
fn a_file_pcm_records_the_clip_through_alsa() {
    // The second of the clip with the most signal, and what follows it (the clip opens quietly).
    let whole = read_wav(&clip_path(), CLIP_RATE).unwrap();
    let second = CLIP_RATE as usize;
    assert!(whole.len() >= second * 2, "clip_000 is shorter than 2 s");
    let start = (0..=whole.len() - second)
        .step_by(second / 10)
        .max_by(|&a, &b| rms(&whole[a..a + second]).total_cmp(&rms(&whole[b..b + second])))
        .unwrap()
        .min(whole.len() - second * 3 / 2);
    let clip = &whole[start..];
    let dir = tempfile::tempdir().unwrap();
    let infile = dir.path().join("clip_000.f32le-2ch-48k.raw");
    let at_48k = resample(clip, CLIP_RATE as usize, DEVICE_RATE, 1024);
    std::fs::write(&infile, device_bytes(&at_48k)).unwrap();
    // What an exact capture gives: the 48 kHz signal resampled back as `mic` does (rubato's FFT
    // resampler, 20 ms chunks). Both resamplers cut the band just below 8 kHz, where this clip
    // has much of its energy, so the raw clip itself only correlates at about 0.8.
    let expected = resample(&at_48k, DEVICE_RATE, CLIP_RATE as usize, DEVICE_RATE / 50);

    let fifo = dir.path().join("captured.fifo");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success(), "mkfifo {}", fifo.display());
    let system = Path::new("/usr/share/alsa/alsa.conf");
    assert!(system.exists(), "{} is missing: is alsa-lib installed?", system.display());
    let config = dir.path().join("asound.conf");
    std::fs::write(
        &config,
        format!(
            "<{system}>\n\
             pcm.edgeqa_test {{\n\
             \ttype file\n\
             \tslave.pcm \"null\"\n\
             \tfile \"{fifo}\"\n\
             \tinfile \"{infile}\"\n\
             \tformat \"raw\"\n\
             \thint {{\n\
             \t\tshow on\n\
             \t\tdescription \"edgeqa test capture from a raw recording\"\n\
             \t}}\n\
             }}\n",
            system = system.display(),
            fifo = fifo.display(),
            infile = infile.display(),
        ),
    )
    .unwrap();
    // SAFETY: the only test of this binary sets it before anything reads the environment or
    // starts another thread, and before ALSA first reads its configuration.
    unsafe { std::env::set_var("ALSA_CONFIG_PATH", &config) };

    let listed = mic::list();
    let entry = listed.iter().find(|d| d.id == "edgeqa_test").unwrap_or_else(|| panic!("not listed: {listed:?}"));
    assert_eq!(entry.name, "edgeqa test capture from a raw recording");
    assert!(entry.modes.iter().any(|m| m.starts_with("F32 8000–192000 Hz")), "{:?}", entry.modes);

    drain_at_real_time(fifo);
    let mut mic = mic::open(Some("edgeqa_test"), CLIP_RATE, 320).unwrap();
    assert_eq!(
        mic.device_config(),
        ("F32", DEVICE_RATE as u32, CHANNELS as u16),
        "the infile was written for F32 48 kHz stereo, the default configuration cpal gives a file PCM"
    );
    let described = mic.describe();
    assert!(
        described.starts_with("edgeqa_test (edgeqa test capture from a raw recording) F32 48000 Hz 2 ch")
            && described.ends_with("mixed to mono, resampled to 16000 Hz"),
        "{described}"
    );

    // One second in blocks of 20 ms, at real time.
    let started = Instant::now();
    let mut block = AudioBlock::default();
    let mut recorded = Vec::new();
    for i in 0..50u64 {
        assert!(mic.next_block(&mut block).unwrap());
        assert_eq!(block.samples.len(), 320);
        assert_eq!(block.timestamp, Duration::from_millis(20 * i));
        recorded.extend_from_slice(&block.samples);
    }
    let took = started.elapsed();
    assert_eq!(mic.stats().dropped, 0, "{:?}", mic.stats());
    assert_eq!(mic.stats().delivered, 50);
    // Paced like a device: the first ~170 ms come at once (the FIFO's buffer), the rest at 48 kHz.
    assert!(took > Duration::from_millis(600), "a second recorded in {took:?}");
    drop(mic);

    // The recording is the clip as captured: find the lag (expected 0: the resamplers' delays are
    // trimmed), then compare.
    let n = recorded.len() - 800;
    let window = |lag: i64| -> (&[f32], &[f32]) {
        let shift = lag.unsigned_abs() as usize;
        if lag >= 0 {
            (&recorded[..n], &expected[shift..shift + n])
        } else {
            (&recorded[shift..shift + n], &expected[..n])
        }
    };
    let (lag, best) = (-800..=800i64)
        .map(|lag| {
            let (r, c) = window(lag);
            (lag, correlation(r, c))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    let (r, c) = window(lag);
    let level = rms(c);
    assert!(level > 0.01, "the clip is silent from {start} on ({level})");
    let error: Vec<f32> = r.iter().zip(c).map(|(a, b)| a - b).collect();
    let relative = rms(&error) / level;
    let raw = correlation(r, &clip[lag.max(0) as usize..][..n]);
    eprintln!(
        "{described}: lag {lag}, correlation {best:.5} ({raw:.3} with the raw clip), relative error {relative:.4}, rms {:.4} vs {level:.4}, {took:?}",
        rms(r)
    );
    assert!(best > 0.99, "correlation with the clip {best:.4} at lag {lag}");
    assert!(lag.abs() <= 16, "the recording lags the clip by {lag} samples");
    assert!(raw > 0.7, "correlation with the raw clip {raw:.4}");
    assert!(relative < 0.01, "relative error {relative:.4} (lag {lag})");
}
