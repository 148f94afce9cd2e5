//! WAV clip reader (through `hound`) and a 16-bit mono writer for tests and fixtures.
//!
//! Accepted: integer PCM of 8, 16, 24 (3- or 4-byte containers) or 32 bits and 32-bit IEEE
//! float, any number of channels, at exactly the sample rate the model expects (no resampling
//! happens on the device). Integer samples of `b` bits are scaled by `1 / 2^(b-1)` (8-bit WAV is
//! unsigned; its midpoint 128 maps to 0), float samples are clamped to `[-1, 1]`. Multi-channel
//! audio is mixed down to mono by averaging the channels of each sample frame.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use hound::{SampleFormat, WavSpec, WavWriter};
use thiserror::Error;

const FORMAT_HINT: &str = "convert it, e.g. `sox in.wav -b 16 out.wav`";

/// Why a WAV clip could not be read or written. Each message names the file.
#[derive(Debug, Error)]
pub enum WavError {
    #[error("{path}: cannot read the audio file: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a readable WAV file ({reason})")]
    NotWav { path: String, reason: String },
    #[error(
        "{path}: unsupported WAV sample format ({format}); accepted are 8/16/24/32-bit integer PCM and 32-bit float; {FORMAT_HINT}"
    )]
    UnsupportedFormat { path: String, format: String },
    #[error(
        "{path}: sample rate is {found} Hz but the model expects {expected} Hz; resample it, e.g. `sox in.wav -r {expected} out.wav`"
    )]
    SampleRate { path: String, found: u32, expected: u32 },
    #[error("{path}: audio data is truncated: the header announces {expected} samples but only {read} could be read")]
    Truncated { path: String, read: usize, expected: usize },
    #[error("{path}: sample {index} is not a finite number (NaN or infinity)")]
    NonFinite { path: String, index: usize },
    #[error("{path}: the WAV file contains no audio samples")]
    Empty { path: String },
    #[error("{path}: cannot write the WAV file: {source}")]
    Write {
        path: String,
        #[source]
        source: hound::Error,
    },
}

/// Reads a WAV file as mono `f32` samples in `[-1, 1]`; its rate must equal `expected_rate`.
///
/// See the module documentation for the accepted formats and the mixdown.
pub fn read_wav(path: &Path, expected_rate: u32) -> Result<Vec<f32>, WavError> {
    let origin = path.display().to_string();
    let file = File::open(path).map_err(|source| WavError::Io { path: origin.clone(), source })?;
    decode_wav(BufReader::new(file), &origin, expected_rate)
}

/// [`read_wav`] on any byte stream; `origin` names it in error messages.
pub fn decode_wav<R: Read>(reader: R, origin: &str, expected_rate: u32) -> Result<Vec<f32>, WavError> {
    decode(reader, origin, Some(expected_rate)).map(|(samples, _)| samples)
}

/// Reads a WAV file at whatever rate it has: mono samples (channels averaged) and the rate.
pub fn read_wav_any_rate(path: &Path) -> Result<(Vec<f32>, u32), WavError> {
    let origin = path.display().to_string();
    let file = File::open(path).map_err(|source| WavError::Io { path: origin.clone(), source })?;
    decode(BufReader::new(file), &origin, None)
}

fn decode<R: Read>(reader: R, origin: &str, expected_rate: Option<u32>) -> Result<(Vec<f32>, u32), WavError> {
    let path = || origin.to_string();
    let mut reader = hound::WavReader::new(reader).map_err(|e| match e {
        // hound reports a short read as `Other` ("Failed to read enough bytes.").
        hound::Error::IoError(source)
            if matches!(source.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::Other) =>
        {
            WavError::NotWav { path: path(), reason: "the header is truncated".into() }
        }
        hound::Error::IoError(source) => WavError::Io { path: path(), source },
        hound::Error::FormatError(reason) => WavError::NotWav { path: path(), reason: reason.into() },
        hound::Error::Unsupported => WavError::UnsupportedFormat {
            path: path(),
            format: "compressed or unknown encoding, not PCM or IEEE float".into(),
        },
        other => WavError::UnsupportedFormat { path: path(), format: other.to_string() },
    })?;
    let spec = reader.spec();
    let format = || match spec.sample_format {
        SampleFormat::Int => format!("{}-bit integer", spec.bits_per_sample),
        SampleFormat::Float => format!("{}-bit float", spec.bits_per_sample),
    };
    let supported = match spec.sample_format {
        SampleFormat::Int => matches!(spec.bits_per_sample, 8 | 16 | 24 | 32),
        SampleFormat::Float => spec.bits_per_sample == 32,
    };
    if !supported {
        return Err(WavError::UnsupportedFormat { path: path(), format: format() });
    }
    if let Some(expected) = expected_rate
        && spec.sample_rate != expected
    {
        return Err(WavError::SampleRate { path: path(), found: spec.sample_rate, expected });
    }
    let channels = usize::from(spec.channels.max(1));
    let total = reader.len() as usize;
    if total == 0 {
        return Err(WavError::Empty { path: path() });
    }
    let sample_error = |e: hound::Error, read: usize| match e {
        hound::Error::IoError(_) => WavError::Truncated { path: path(), read, expected: total },
        _ => WavError::UnsupportedFormat { path: path(), format: format() },
    };

    // The header's length is not trusted for the allocation; the vector grows as data arrives.
    let mut mono = Vec::with_capacity((total / channels).min(1 << 22));
    let mut acc = 0.0f64;
    let mut in_frame = 0;
    let mut push = |value: f64| {
        acc += value;
        in_frame += 1;
        if in_frame == channels {
            mono.push((acc / channels as f64) as f32);
            acc = 0.0;
            in_frame = 0;
        }
    };
    match spec.sample_format {
        SampleFormat::Int => {
            let scale = 1.0 / f64::from(1u32 << (spec.bits_per_sample - 1));
            for (i, s) in reader.samples::<i32>().enumerate() {
                push(f64::from(s.map_err(|e| sample_error(e, i))?) * scale);
            }
        }
        SampleFormat::Float => {
            for (i, s) in reader.samples::<f32>().enumerate() {
                let s = s.map_err(|e| sample_error(e, i))?;
                if !s.is_finite() {
                    return Err(WavError::NonFinite { path: path(), index: i });
                }
                push(f64::from(s.clamp(-1.0, 1.0)));
            }
        }
    }
    if mono.is_empty() {
        return Err(WavError::Empty { path: path() });
    }
    Ok((mono, spec.sample_rate))
}

/// Writes `samples` as a 16-bit mono WAV at `rate` Hz. Samples are clamped to `[-1, 1]` and
/// stored as `round(s * 32767)`; NaN is stored as 0.
pub fn write_wav_mono_i16(path: &Path, rate: u32, samples: &[f32]) -> Result<(), WavError> {
    let err = |source| WavError::Write { path: path.display().to_string(), source };
    let spec = WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: SampleFormat::Int };
    let mut writer = WavWriter::create(path, spec).map_err(err)?;
    for &s in samples {
        // `as` saturates and maps NaN to 0.
        writer.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).map_err(err)?;
    }
    writer.finalize().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Cursor;

    fn write_with(path: &Path, spec: WavSpec, f: impl FnOnce(&mut WavWriter<io::BufWriter<File>>)) {
        let mut w = WavWriter::create(path, spec).unwrap();
        f(&mut w);
        w.finalize().unwrap();
    }

    fn spec(channels: u16, rate: u32, bits: u16, fmt: SampleFormat) -> WavSpec {
        WavSpec { channels, sample_rate: rate, bits_per_sample: bits, sample_format: fmt }
    }

    #[test]
    fn i16_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let samples: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.01).sin() * 0.9).collect();
        write_wav_mono_i16(&p, 16000, &samples).unwrap();
        let back = read_wav(&p, 16000).unwrap();
        assert_eq!(back.len(), samples.len());
        for (a, b) in samples.iter().zip(&back) {
            // Written as round(s * 32767), read back as n / 32768.
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn writer_clamps() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.wav");
        write_wav_mono_i16(&p, 8000, &[2.0, -2.0, f32::NAN]).unwrap();
        let back = read_wav(&p, 8000).unwrap();
        assert!((back[0] - 32767.0 / 32768.0).abs() < 1e-7);
        assert!((back[1] + 32767.0 / 32768.0).abs() < 1e-7);
        assert_eq!(back[2], 0.0);
    }

    #[test]
    fn bit_depths_and_float() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.wav");
        write_with(&p, spec(1, 8000, 8, SampleFormat::Int), |w| {
            for s in [-128i32, 0, 64, 127] {
                w.write_sample(s).unwrap();
            }
        });
        assert_eq!(read_wav(&p, 8000).unwrap(), vec![-1.0, 0.0, 0.5, 127.0 / 128.0]);
        write_with(&p, spec(1, 8000, 24, SampleFormat::Int), |w| {
            for s in [-(1i32 << 23), 1 << 22] {
                w.write_sample(s).unwrap();
            }
        });
        assert_eq!(read_wav(&p, 8000).unwrap(), vec![-1.0, 0.5]);
        write_with(&p, spec(1, 8000, 32, SampleFormat::Int), |w| {
            for s in [i32::MIN, 1 << 30] {
                w.write_sample(s).unwrap();
            }
        });
        assert_eq!(read_wav(&p, 8000).unwrap(), vec![-1.0, 0.5]);
        write_with(&p, spec(1, 8000, 32, SampleFormat::Float), |w| {
            for s in [0.25f32, -3.0, 1.5] {
                w.write_sample(s).unwrap();
            }
        });
        assert_eq!(read_wav(&p, 8000).unwrap(), vec![0.25, -1.0, 1.0]);
    }

    #[test]
    fn stereo_is_averaged() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.wav");
        write_with(&p, spec(2, 16000, 16, SampleFormat::Int), |w| {
            for s in [16384i16, 0, -16384, -16384] {
                w.write_sample(s).unwrap();
            }
        });
        assert_eq!(read_wav(&p, 16000).unwrap(), vec![0.25, -0.5]);
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("clip.wav");
        write_wav_mono_i16(&p, 44100, &[0.0; 10]).unwrap();
        let e = read_wav(&p, 16000).unwrap_err();
        assert!(matches!(e, WavError::SampleRate { found: 44100, expected: 16000, .. }));
        let msg = e.to_string();
        assert!(
            msg.contains("clip.wav") && msg.contains("44100 Hz") && msg.contains("sox in.wav -r 16000 out.wav"),
            "{msg}"
        );

        let mut bytes = std::fs::read(&p).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&p, &bytes).unwrap();
        let msg = read_wav(&p, 44100).unwrap_err().to_string();
        assert!(msg.contains("clip.wav") && msg.contains("truncated"), "{msg}");

        std::fs::write(&p, b"this is not audio").unwrap();
        let msg = read_wav(&p, 16000).unwrap_err().to_string();
        assert!(msg.contains("clip.wav") && msg.contains("not a readable WAV"), "{msg}");

        std::fs::write(&p, b"RIFF").unwrap();
        let msg = read_wav(&p, 16000).unwrap_err().to_string();
        assert!(msg.contains("header is truncated"), "{msg}");

        write_wav_mono_i16(&p, 16000, &[]).unwrap();
        assert!(matches!(read_wav(&p, 16000), Err(WavError::Empty { .. })));

        let missing = dir.path().join("nope.wav");
        let msg = read_wav(&missing, 16000).unwrap_err().to_string();
        assert!(msg.contains("nope.wav") && msg.contains("cannot read"), "{msg}");

        write_with(&p, spec(1, 16000, 32, SampleFormat::Float), |w| {
            w.write_sample(0.0f32).unwrap();
            w.write_sample(f32::NAN).unwrap();
        });
        assert!(matches!(read_wav(&p, 16000), Err(WavError::NonFinite { index: 1, .. })));

        let bad_dir = dir.path().join("no/such/dir/x.wav");
        let msg = write_wav_mono_i16(&bad_dir, 16000, &[0.0]).unwrap_err().to_string();
        assert!(msg.contains("x.wav") && msg.contains("cannot write"), "{msg}");
    }

    fn valid_bytes() -> Vec<u8> {
        let mut cur = Cursor::new(Vec::new());
        let mut w = WavWriter::new(&mut cur, spec(2, 16000, 16, SampleFormat::Int)).unwrap();
        for i in 0..32i16 {
            w.write_sample(i * 100).unwrap();
        }
        w.finalize().unwrap();
        cur.into_inner()
    }

    fn check(bytes: &[u8]) {
        if let Ok(s) = decode_wav(Cursor::new(bytes), "fuzz", 16000) {
            assert!(!s.is_empty());
            assert!(s.iter().all(|x| (-1.0..=1.0).contains(x)));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            check(&bytes);
        }

        #[test]
        fn mutated_valid_file_never_panics(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let mut bytes = valid_bytes();
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len()));
            }
            check(&bytes);
        }
    }
}
