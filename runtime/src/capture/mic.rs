//! Microphones through cpal (ALSA on Linux), delivered as mono `f32` blocks at the student's rate.
//!
//! Three threads touch a [`Microphone`]:
//! - cpal's stream thread runs the data callback: it converts the device's samples (any integer
//!   or float format) to `f32` and copies the interleaved frames into a ring allocated once at
//!   open (half a second of audio). The callback never allocates, resamples or waits for the
//!   consumer: when the ring is full the new frames are dropped and counted as an overrun
//!   ([`SourceStats::dropped`]).
//! - the capture thread calls [`AudioSource::next_block`]: it waits on the ring's condition
//!   variable, takes what has arrived, mixes it down to mono (the average of the channels),
//!   resamples it to the student's rate with a fixed-ratio `rubato` FFT resampler when the
//!   device runs at another rate, and hands out blocks. Its buffers are sized at open, so the
//!   steady state allocates nothing.
//! - stream errors (the device unplugged) arrive on cpal's thread through the error callback;
//!   they are parked in the ring and turn the next `next_block` into [`CaptureError::Lost`], after
//!   which [`AudioSource::reopen`] opens the same device again.
//!
//! The device runs at its own rate and format (its default input configuration): nothing forces
//! 16 kHz on a `hw:` device. Sample rates that ALSA plugins report (4000–4294967295 Hz) are
//! validated and clamped to [`MIN_RATE`]..=[`MAX_RATE`].

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::resample::StreamResampler;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SampleFormat, SupportedStreamConfig, SupportedStreamConfigRange};

use crate::capture::{AudioBlock, AudioSource, CaptureError, DeviceInfo, SourceStats};

/// The lowest device rate accepted, in Hz.
pub const MIN_RATE: u32 = 8_000;
/// The highest device rate accepted, in Hz.
pub const MAX_RATE: u32 = 192_000;
/// Device rates preferred, in order, when the device offers a range.
const PREFERRED_RATES: [u32; 3] = [48_000, 44_100, 16_000];
/// Audio the ring between the callback and the capture thread holds.
const RING_SECONDS: f64 = 0.5;
/// Without a single sample for this long the device counts as lost.
const STALL: Duration = Duration::from_secs(5);

/// The input devices present with the modes they offer (`kind` `microphone`, `id` as `--mic`
/// accepts it). Devices whose configurations cannot be read, and ALSA's `null` device (it
/// discards playback and records zeros), are left out; no device, or no
/// audio system at all, gives an empty list.
pub fn list() -> Vec<DeviceInfo> {
    let host = cpal::default_host();
    let Ok(devices) = host.input_devices() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for device in devices {
        let Ok(ranges) = device.supported_input_configs() else {
            continue;
        };
        let modes = describe_modes(&ranges.collect::<Vec<_>>());
        if modes.is_empty() {
            continue;
        }
        let (id, name) = device_names(&device);
        // ALSA's `null` device discards playback and "records" zeros: not a microphone.
        if id == "null" {
            continue;
        }
        out.push(DeviceInfo { kind: "microphone", id, name, modes });
    }
    out
}

/// The name `--mic` accepts (the host's device id, e.g. `hw:CARD=1,DEV=0` on ALSA) and the
/// human-readable name.
fn device_names(device: &cpal::Device) -> (String, String) {
    let name = device.description().map(|d| d.name().to_string()).unwrap_or_default();
    let id = device.id().map(|id| id.id().to_string()).unwrap_or_else(|_| name.clone());
    let name = if name.is_empty() { id.clone() } else { name };
    (id, name)
}

/// Modes as `F32 8000–192000 Hz 1–2 ch`, one per format and rate range, channel counts merged.
fn describe_modes(ranges: &[SupportedStreamConfigRange]) -> Vec<String> {
    // (format, min rate, max rate) -> channel counts, in the order the device lists them.
    let mut groups: Vec<((SampleFormat, u32, u32), Vec<u16>)> = Vec::new();
    for r in ranges {
        if format_name(r.sample_format()).is_none() {
            continue;
        }
        let Some((lo, hi)) = sane_range(r.min_sample_rate(), r.max_sample_rate()) else {
            continue;
        };
        let key = (r.sample_format(), lo, hi);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, channels)) => channels.push(r.channels()),
            None => groups.push((key, vec![r.channels()])),
        }
    }
    groups
        .into_iter()
        .map(|((format, lo, hi), mut channels)| {
            channels.sort_unstable();
            channels.dedup();
            let rates = if lo == hi { format!("{lo} Hz") } else { format!("{lo}–{hi} Hz") };
            let (first, last) = (channels[0], channels[channels.len() - 1]);
            let contiguous = usize::from(last - first) + 1 == channels.len();
            let ch = if first == last {
                format!("{first} ch")
            } else if contiguous {
                format!("{first}–{last} ch")
            } else {
                format!("{} ch", channels.iter().map(u16::to_string).collect::<Vec<_>>().join(", "))
            };
            format!("{} {rates} {ch}", format_name(format).unwrap_or("?"))
        })
        .collect()
}

/// The part of a reported rate range that is usable, or `None` when it lies outside
/// [`MIN_RATE`]..=[`MAX_RATE`] or is inverted.
fn sane_range(min: u32, max: u32) -> Option<(u32, u32)> {
    if min > max || max < MIN_RATE || min > MAX_RATE {
        return None;
    }
    Some((min.max(MIN_RATE), max.min(MAX_RATE)))
}

/// The device rate to use within a reported range: the default when sane and in range, else
/// 48000, 44100 or 16000 Hz when offered, else the sane rate nearest 48000 Hz.
fn pick_rate(default: Option<u32>, min: u32, max: u32) -> Option<u32> {
    let (lo, hi) = sane_range(min, max)?;
    if let Some(rate) = default.filter(|r| (lo..=hi).contains(r)) {
        return Some(rate);
    }
    PREFERRED_RATES.iter().copied().find(|r| (lo..=hi).contains(r)).or(Some(48_000u32.clamp(lo, hi)))
}

/// Short name of a sample format this module converts; `None` for those it cannot (DSD).
fn format_name(format: SampleFormat) -> Option<&'static str> {
    Some(match format {
        SampleFormat::I8 => "S8",
        SampleFormat::I16 => "S16",
        SampleFormat::I24 => "S24",
        SampleFormat::I32 => "S32",
        SampleFormat::I64 => "S64",
        SampleFormat::U8 => "U8",
        SampleFormat::U16 => "U16",
        SampleFormat::U24 => "U24",
        SampleFormat::U32 => "U32",
        SampleFormat::U64 => "U64",
        SampleFormat::F32 => "F32",
        SampleFormat::F64 => "F64",
        _ => return None,
    })
}

/// The stream configuration chosen for a device: format, rate and channel count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chosen {
    format: SampleFormat,
    rate: u32,
    channels: u16,
}

/// Chooses the capture configuration: the device's default input configuration when its format
/// is convertible and its rate sane, else the best convertible range (cpal's own ordering) at a
/// validated rate.
fn choose_config(
    default: Option<&SupportedStreamConfig>,
    ranges: &[SupportedStreamConfigRange],
) -> Result<Chosen, NoConfig> {
    if let Some(d) = default.filter(|d| format_name(d.sample_format()).is_some() && d.channels() > 0) {
        let (format, channels) = (d.sample_format(), d.channels());
        if (MIN_RATE..=MAX_RATE).contains(&d.sample_rate()) {
            return Ok(Chosen { format, rate: d.sample_rate(), channels });
        }
        // An absurd default rate: take a sane one from a range with the same format and channels.
        let rate = ranges
            .iter()
            .filter(|r| r.sample_format() == format && r.channels() == channels)
            .find_map(|r| pick_rate(None, r.min_sample_rate(), r.max_sample_rate()));
        if let Some(rate) = rate {
            return Ok(Chosen { format, rate, channels });
        }
    }
    ranges
        .iter()
        .filter(|r| {
            format_name(r.sample_format()).is_some()
                && r.channels() > 0
                && sane_range(r.min_sample_rate(), r.max_sample_rate()).is_some()
        })
        .max_by(|a, b| a.cmp_default_heuristics(b))
        .and_then(|r| {
            let rate = pick_rate(None, r.min_sample_rate(), r.max_sample_rate())?;
            Some(Chosen { format: r.sample_format(), rate, channels: r.channels() })
        })
        .ok_or_else(|| NoConfig { offered: describe_modes(ranges) })
}

/// No input configuration of a device can be captured ([`choose_config`]): what it offers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", if offered.is_empty() {
    "offers no input format this build converts at 8–192 kHz".to_string()
} else {
    format!("no usable input configuration among {}", offered.join(", "))
})]
struct NoConfig {
    offered: Vec<String>,
}

/// Converts interleaved samples in `format` (native byte order, as cpal delivers them) from
/// `bytes` into `out`, returning how many samples were written (`min` of both lengths).
/// Integers map to `[-1, 1)`; 24-bit samples are the low three bytes of four.
fn convert_samples(format: SampleFormat, bytes: &[u8], out: &mut [f32]) -> usize {
    macro_rules! each {
        ($n:literal, |$b:ident| $e:expr) => {{
            let mut count = 0;
            for (o, chunk) in out.iter_mut().zip(bytes.chunks_exact($n)) {
                let $b: [u8; $n] = [0; $n];
                let mut $b = $b;
                $b.copy_from_slice(chunk);
                *o = $e;
                count += 1;
            }
            count
        }};
    }
    match format {
        SampleFormat::I8 => each!(1, |b| f32::from(i8::from_ne_bytes(b)) / 128.0),
        SampleFormat::U8 => each!(1, |b| (f32::from(b[0]) - 128.0) / 128.0),
        SampleFormat::I16 => each!(2, |b| f32::from(i16::from_ne_bytes(b)) / 32_768.0),
        SampleFormat::U16 => each!(2, |b| (f32::from(u16::from_ne_bytes(b)) - 32_768.0) / 32_768.0),
        SampleFormat::I24 => each!(4, |b| ((i32::from_ne_bytes(b) << 8) >> 8) as f32 / 8_388_608.0),
        SampleFormat::U24 => {
            each!(4, |b| ((u32::from_ne_bytes(b) & 0x00ff_ffff) as f32 - 8_388_608.0) / 8_388_608.0)
        }
        SampleFormat::I32 => each!(4, |b| (f64::from(i32::from_ne_bytes(b)) / 2_147_483_648.0) as f32),
        SampleFormat::U32 => {
            each!(4, |b| ((f64::from(u32::from_ne_bytes(b)) - 2_147_483_648.0) / 2_147_483_648.0) as f32)
        }
        SampleFormat::I64 => each!(8, |b| (i64::from_ne_bytes(b) as f64 / 9_223_372_036_854_775_808.0) as f32),
        SampleFormat::U64 => {
            each!(8, |b| ((u64::from_ne_bytes(b) as f64 - 9_223_372_036_854_775_808.0) / 9_223_372_036_854_775_808.0)
                as f32)
        }
        SampleFormat::F32 => each!(4, |b| f32::from_ne_bytes(b).clamp(-1.0, 1.0)),
        SampleFormat::F64 => each!(8, |b| (f64::from_ne_bytes(b) as f32).clamp(-1.0, 1.0)),
        _ => 0,
    }
}

/// Appends the mono mixdown (average of the channels) of interleaved `frames` to `mono`.
fn mix_down(frames: &[f32], channels: usize, mono: &mut Vec<f32>) {
    if channels <= 1 {
        mono.extend_from_slice(frames);
        return;
    }
    let scale = 1.0 / channels as f32;
    mono.extend(frames.chunks_exact(channels).map(|f| f.iter().sum::<f32>() * scale));
}

/// The ring between the data callback and the capture thread, allocated once at open.
struct Ring {
    /// Interleaved samples; its length is a multiple of the channel count.
    buf: Box<[f32]>,
    /// Index of the oldest sample.
    read: usize,
    /// Samples held.
    len: usize,
    /// Callbacks whose frames did not all fit (overruns and device xruns).
    overruns: u64,
    /// Frames dropped by those overruns.
    dropped_frames: u64,
    /// Why the stream ended (device unplugged), once it has.
    lost: Option<String>,
    /// The last non-fatal stream error, reported if the device then stalls.
    last_error: Option<String>,
}

struct Shared {
    ring: Mutex<Ring>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The data callback's work: converts `bytes` (whole frames of `format`) into the ring, dropping
/// the frames that do not fit.
fn push_frames(shared: &Shared, format: SampleFormat, channels: usize, bytes: &[u8]) {
    let size = format.sample_size();
    let frames_in = bytes.len() / (size * channels);
    let mut ring = shared.lock();
    let cap = ring.buf.len();
    let fit = frames_in.min((cap - ring.len) / channels);
    let mut samples = fit * channels;
    let mut src = &bytes[..samples * size];
    let mut at = (ring.read + ring.len) % cap;
    while samples > 0 {
        let n = samples.min(cap - at);
        convert_samples(format, &src[..n * size], &mut ring.buf[at..at + n]);
        src = &src[n * size..];
        ring.len += n;
        samples -= n;
        at = (at + n) % cap;
    }
    if fit < frames_in {
        ring.overruns += 1;
        ring.dropped_frames += (frames_in - fit) as u64;
    }
    drop(ring);
    shared.ready.notify_one();
}

/// What the stream's error callback does with an error.
fn stream_error(shared: &Shared, error: cpal::Error) {
    let mut ring = shared.lock();
    match error.kind() {
        cpal::ErrorKind::Xrun => ring.overruns += 1,
        cpal::ErrorKind::DeviceNotAvailable | cpal::ErrorKind::StreamInvalidated => {
            ring.lost.get_or_insert_with(|| error.to_string());
        }
        _ => ring.last_error = Some(error.to_string()),
    }
    drop(ring);
    shared.ready.notify_all();
}

/// A microphone open and streaming (see the module documentation for its threads).
pub struct Microphone {
    /// The name it was opened with, for [`AudioSource::reopen`].
    wanted: Option<String>,
    id: String,
    name: String,
    config: Chosen,
    rate: u32,
    block: usize,
    shared: Arc<Shared>,
    stream: Option<cpal::Stream>,
    /// Interleaved frames taken from the ring.
    interleaved: Vec<f32>,
    /// Mono samples at the device rate not yet resampled.
    mono: Vec<f32>,
    resampling: Option<StreamResampler>,
    /// Mono samples at the student's rate not yet delivered.
    ready: Vec<f32>,
    /// Samples delivered so far, plus those overruns dropped (at the student's rate).
    position: u64,
    /// Dropped device frames already accounted for in `position`.
    dropped_seen: u64,
    /// Overruns of the streams closed by [`AudioSource::reopen`].
    overruns_before: u64,
    delivered: u64,
}

/// Opens a microphone: by `name` (the exact id or name [`list`] gives, else a unique
/// case-insensitive part of one), or the default input device when `None`. The device runs at
/// its own format, rate and channel count; [`AudioSource::next_block`] delivers mono blocks of
/// `block` samples at `rate` Hz. The stream is started before this returns.
pub fn open(name: Option<&str>, rate: u32, block: usize) -> Result<Microphone, CaptureError> {
    if !(1_000..=MAX_RATE).contains(&rate) {
        return Err(CaptureError::Device {
            device: name.unwrap_or("default").to_string(),
            reason: format!("cannot deliver {rate} Hz (1000–{MAX_RATE} Hz)"),
        });
    }
    let host = cpal::default_host();
    let device = find_device(&host, name)?;
    let (id, device_name) = device_names(&device);
    let fail = |reason: String| CaptureError::Device { device: id.clone(), reason };
    let ranges: Vec<_> = device
        .supported_input_configs()
        .map_err(|e| fail(format!("cannot read its input configurations: {e}")))?
        .collect();
    let default = device.default_input_config().ok();
    let config = choose_config(default.as_ref(), &ranges).map_err(|e| fail(e.to_string()))?;

    let mut mic = Microphone::new(id.clone(), device_name, config, rate, block)?;
    mic.wanted = name.map(str::to_string);

    let stream_config = cpal::StreamConfig {
        channels: config.channels,
        sample_rate: config.rate,
        buffer_size: cpal::BufferSize::Default,
    };
    let (data_shared, error_shared) = (mic.shared.clone(), mic.shared.clone());
    let (format, channels) = (config.format, usize::from(config.channels));
    let stream = device
        .build_input_stream_raw(
            stream_config,
            format,
            move |data: &cpal::Data, _: &cpal::InputCallbackInfo| {
                push_frames(&data_shared, format, channels, data.bytes())
            },
            move |error| stream_error(&error_shared, error),
            Some(Duration::from_secs(5)),
        )
        .map_err(|e| fail(format!("cannot open a {} stream: {e}", mode_name(config))))?;
    stream.play().map_err(|e| fail(format!("cannot start the stream: {e}")))?;
    mic.stream = Some(stream);
    Ok(mic)
}

fn mode_name(c: Chosen) -> String {
    format!("{} {} Hz {} ch", format_name(c.format).unwrap_or("?"), c.rate, c.channels)
}

/// The input device `name` designates (see [`open`]).
fn find_device(host: &cpal::Host, name: Option<&str>) -> Result<cpal::Device, CaptureError> {
    let no_device = || CaptureError::NoDevice { what: "microphone" };
    let Some(wanted) = name else {
        return host.default_input_device().ok_or_else(no_device);
    };
    let devices: Vec<(cpal::Device, String, String)> = host
        .input_devices()
        .map(|d| {
            d.map(|d| {
                let (id, name) = device_names(&d);
                (d, id, name)
            })
            .collect()
        })
        .unwrap_or_default();
    let names: Vec<(&str, &str)> = devices.iter().map(|(_, id, name)| (id.as_str(), name.as_str())).collect();
    match match_device(wanted, &names) {
        Ok(index) => devices.into_iter().nth(index).map(|(d, _, _)| d).ok_or_else(no_device),
        Err(MatchError::Unknown) if wanted == "default" => host.default_input_device().ok_or_else(no_device),
        Err(MatchError::Unknown) => Err(CaptureError::NoSuchMicrophone {
            wanted: wanted.to_string(),
            available: devices.into_iter().map(|(_, id, _)| id).collect(),
        }),
        Err(MatchError::Ambiguous(matches)) => Err(CaptureError::Device {
            device: wanted.to_string(),
            reason: format!("matches several microphones ({}); give the whole name", matches.join(", ")),
        }),
    }
}

#[derive(Debug, PartialEq)]
enum MatchError {
    Unknown,
    Ambiguous(Vec<String>),
}

/// Which of the `(id, name)` pairs `wanted` designates: an exact id or name, else the only one
/// containing it (ignoring case).
fn match_device(wanted: &str, devices: &[(&str, &str)]) -> Result<usize, MatchError> {
    if let Some(i) = devices.iter().position(|(id, name)| *id == wanted || *name == wanted) {
        return Ok(i);
    }
    let lower = wanted.to_lowercase();
    let hits: Vec<usize> = devices
        .iter()
        .enumerate()
        .filter(|(_, (id, name))| id.to_lowercase().contains(&lower) || name.to_lowercase().contains(&lower))
        .map(|(i, _)| i)
        .collect();
    match hits.as_slice() {
        [] => Err(MatchError::Unknown),
        [one] => Ok(*one),
        many => Err(MatchError::Ambiguous(many.iter().map(|&i| devices[i].0.to_string()).collect())),
    }
}

impl Microphone {
    /// A microphone without its stream yet: the ring, resampler and buffers for `config`.
    fn new(id: String, name: String, config: Chosen, rate: u32, block: usize) -> Result<Microphone, CaptureError> {
        let fail = |reason: String| CaptureError::Device { device: id.clone(), reason };
        let channels = usize::from(config.channels);
        let block = block.max(1);
        let ring_frames = ((f64::from(config.rate) * RING_SECONDS) as usize).max(1024);
        let shared = Arc::new(Shared {
            ring: Mutex::new(Ring {
                buf: vec![0.0; ring_frames * channels].into_boxed_slice(),
                read: 0,
                len: 0,
                overruns: 0,
                dropped_frames: 0,
                lost: None,
                last_error: None,
            }),
            ready: Condvar::new(),
        });
        let resampling = if config.rate == rate {
            None
        } else {
            let chunk = (config.rate as usize / 50).max(64);
            Some(StreamResampler::new(config.rate, rate, chunk).map_err(|e| fail(format!("cannot {e}")))?)
        };
        let chunk_in = resampling.as_ref().map_or(0, |r| r.input_frames_max());
        let chunk_out = resampling.as_ref().map_or(0, |r| r.output_frames_max());
        let ratio = f64::from(rate) / f64::from(config.rate);
        Ok(Microphone {
            wanted: None,
            id,
            name,
            config,
            rate,
            block,
            shared,
            stream: None,
            interleaved: Vec::with_capacity(ring_frames * channels),
            mono: Vec::with_capacity(ring_frames + chunk_in),
            resampling,
            ready: Vec::with_capacity(block + (ring_frames as f64 * ratio) as usize + 2 * chunk_out + 16),
            position: 0,
            dropped_seen: 0,
            overruns_before: 0,
            delivered: 0,
        })
    }

    /// The device's id (as `--mic` accepts it).
    pub fn device_id(&self) -> &str {
        &self.id
    }

    /// What the device captures: sample format (`S16`, `F32`, …), rate in Hz and channels.
    pub fn device_config(&self) -> (&'static str, u32, u16) {
        (format_name(self.config.format).unwrap_or("?"), self.config.rate, self.config.channels)
    }

    fn lost(&self, reason: String) -> CaptureError {
        CaptureError::Lost { source_name: self.id.clone(), reason }
    }

    /// Moves what the ring holds into `self.mono` (mixed down), waiting for it when the ring is
    /// empty.
    fn pull(&mut self) -> Result<(), CaptureError> {
        let channels = usize::from(self.config.channels);
        let mut ring = self.shared.lock();
        while ring.len == 0 && ring.lost.is_none() {
            let (guard, timeout) = self.shared.ready.wait_timeout(ring, STALL).unwrap_or_else(|e| e.into_inner());
            ring = guard;
            if timeout.timed_out() && ring.len == 0 && ring.lost.is_none() {
                let why = ring.last_error.clone().unwrap_or_else(|| "the device stopped delivering".into());
                return Err(self.lost(format!("no samples for {} s: {why}", STALL.as_secs())));
            }
        }
        if ring.len == 0 {
            let reason = ring.lost.clone().unwrap_or_default();
            return Err(self.lost(reason));
        }
        let room = (self.mono.capacity() - self.mono.len()).min(self.interleaved.capacity() / channels);
        let take = (ring.len / channels).min(room) * channels;
        let cap = ring.buf.len();
        self.interleaved.clear();
        let first = take.min(cap - ring.read);
        self.interleaved.extend_from_slice(&ring.buf[ring.read..ring.read + first]);
        self.interleaved.extend_from_slice(&ring.buf[..take - first]);
        ring.read = (ring.read + take) % cap;
        ring.len -= take;
        let dropped = ring.dropped_frames;
        drop(ring);

        if dropped > self.dropped_seen {
            let frames = dropped - self.dropped_seen;
            self.position += frames * u64::from(self.rate) / u64::from(self.config.rate);
            self.dropped_seen = dropped;
        }
        mix_down(&self.interleaved, channels, &mut self.mono);
        Ok(())
    }

    /// Resamples (or passes on) the mono samples gathered so far into `self.ready`.
    fn convert(&mut self) -> Result<(), CaptureError> {
        let Some(r) = self.resampling.as_mut() else {
            self.ready.extend_from_slice(&self.mono);
            self.mono.clear();
            return Ok(());
        };
        let used = r
            .process(&self.mono, &mut self.ready)
            .map_err(|e| CaptureError::Device { device: self.id.clone(), reason: e.to_string() })?;
        self.mono.drain(..used);
        Ok(())
    }
}

impl AudioSource for Microphone {
    fn next_block(&mut self, block: &mut AudioBlock) -> Result<bool, CaptureError> {
        while self.ready.len() < self.block {
            self.pull()?;
            self.convert()?;
        }
        block.samples.clear();
        block.samples.extend_from_slice(&self.ready[..self.block]);
        self.ready.drain(..self.block);
        block.timestamp =
            Duration::from_nanos((u128::from(self.position) * 1_000_000_000 / u128::from(self.rate)) as u64);
        self.position += self.block as u64;
        self.delivered += 1;
        Ok(true)
    }

    fn describe(&self) -> String {
        let resampling = if self.resampling.is_some() {
            format!("resampled to {} Hz", self.rate)
        } else {
            "not resampled".to_string()
        };
        let mono = if self.config.channels > 1 { ", mixed to mono" } else { "" };
        let name = if self.name == self.id { String::new() } else { format!(" ({})", self.name) };
        format!("{}{name} {}{mono}, {resampling}", self.id, mode_name(self.config))
    }

    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn max_block_samples(&self) -> usize {
        self.block
    }

    fn stats(&self) -> SourceStats {
        SourceStats {
            delivered: self.delivered,
            dropped: self.overruns_before + self.shared.lock().overruns,
            corrupt: 0,
        }
    }

    fn reopen(&mut self) -> Result<(), CaptureError> {
        // Close the old stream first: some devices open only once.
        self.stream = None;
        let overruns = self.overruns_before + self.shared.lock().overruns;
        // By id: exact, even when the device was found by part of its name.
        let mut fresh = open(Some(self.id.as_str()), self.rate, self.block)?;
        fresh.position = self.position;
        fresh.delivered = self.delivered;
        fresh.overruns_before = overruns;
        fresh.wanted = self.wanted.take();
        *self = fresh;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(format: SampleFormat, channels: u16, min: u32, max: u32) -> SupportedStreamConfigRange {
        SupportedStreamConfigRange::new(channels, min, max, cpal::SupportedBufferSize::Unknown, format)
    }

    #[test]
    fn unknown_name_lists_the_available_microphones() {
        let devices = [("hw:CARD=0,DEV=0", "HDA Intel PCH"), ("plughw:CARD=1,DEV=0", "USB Audio")];
        assert_eq!(match_device("usb", &devices), Ok(1));
        assert_eq!(match_device("HDA Intel PCH", &devices), Ok(0));
        assert_eq!(
            match_device("card", &devices),
            Err(MatchError::Ambiguous(vec!["hw:CARD=0,DEV=0".into(), "plughw:CARD=1,DEV=0".into()]))
        );
        assert_eq!(match_device("webcam", &devices), Err(MatchError::Unknown));

        let err = CaptureError::NoSuchMicrophone {
            wanted: "webcam".into(),
            available: devices.iter().map(|(id, _)| id.to_string()).collect(),
        };
        assert_eq!(
            err.to_string(),
            "microphone `webcam` does not exist; available: hw:CARD=0,DEV=0, plughw:CARD=1,DEV=0"
        );
        // Through the host: a name no device has.
        match open(Some("no such microphone 7f3a"), 16_000, 320) {
            Err(e @ CaptureError::NoSuchMicrophone { .. }) => {
                assert!(e.to_string().starts_with("microphone `no such microphone 7f3a` does not exist; "), "{e}")
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("opened a microphone that does not exist"),
        }
    }

    #[test]
    fn every_sample_format_converts_to_unit_floats() {
        fn conv(format: SampleFormat, bytes: &[u8]) -> Vec<f32> {
            let mut out = vec![9.0; bytes.len()];
            let n = convert_samples(format, bytes, &mut out);
            out.truncate(n);
            out
        }
        let cat = |parts: &[&[u8]]| parts.concat();
        assert_eq!(conv(SampleFormat::I8, &cat(&[&(-128i8).to_ne_bytes(), &64i8.to_ne_bytes()])), [-1.0, 0.5]);
        assert_eq!(conv(SampleFormat::U8, &[0, 128, 192]), [-1.0, 0.0, 0.5]);
        assert_eq!(
            conv(SampleFormat::I16, &cat(&[&i16::MIN.to_ne_bytes(), &16_384i16.to_ne_bytes(), &0i16.to_ne_bytes()])),
            [-1.0, 0.5, 0.0]
        );
        assert_eq!(conv(SampleFormat::U16, &cat(&[&0u16.to_ne_bytes(), &49_152u16.to_ne_bytes()])), [-1.0, 0.5]);
        // 24 bits in the low three bytes; whatever the top byte holds is ignored.
        let s24 = |v: i32| ((v & 0x00ff_ffff) as u32 | 0xab00_0000).to_ne_bytes();
        assert_eq!(
            conv(SampleFormat::I24, &cat(&[&s24(-8_388_608), &s24(4_194_304), &s24(-1)])),
            [-1.0, 0.5, -1.0 / 8_388_608.0]
        );
        assert_eq!(conv(SampleFormat::U24, &cat(&[&0u32.to_ne_bytes(), &12_582_912u32.to_ne_bytes()])), [-1.0, 0.5]);
        assert_eq!(conv(SampleFormat::I32, &cat(&[&i32::MIN.to_ne_bytes(), &(1i32 << 30).to_ne_bytes()])), [-1.0, 0.5]);
        assert_eq!(conv(SampleFormat::U32, &cat(&[&0u32.to_ne_bytes(), &(3u32 << 30).to_ne_bytes()])), [-1.0, 0.5]);
        assert_eq!(conv(SampleFormat::I64, &cat(&[&i64::MIN.to_ne_bytes(), &(1i64 << 62).to_ne_bytes()])), [-1.0, 0.5]);
        assert_eq!(conv(SampleFormat::U64, &cat(&[&0u64.to_ne_bytes(), &(3u64 << 62).to_ne_bytes()])), [-1.0, 0.5]);
        assert_eq!(conv(SampleFormat::F32, &cat(&[&0.25f32.to_ne_bytes(), &(-3.0f32).to_ne_bytes()])), [0.25, -1.0]);
        assert_eq!(conv(SampleFormat::F64, &cat(&[&(-0.75f64).to_ne_bytes(), &2.0f64.to_ne_bytes()])), [-0.75, 1.0]);
        // A partial trailing sample is not converted; DSD is not either.
        assert_eq!(conv(SampleFormat::I16, &[0, 0, 1]), [0.0]);
        assert!(conv(SampleFormat::DsdU8, &[0x69; 4]).is_empty());
    }

    #[test]
    fn mixdown_averages_the_channels() {
        let mut mono = vec![7.0];
        mix_down(&[1.0, 0.0, 0.5, -0.5, -1.0, -1.0], 2, &mut mono);
        assert_eq!(mono, [7.0, 0.5, 0.0, -1.0]);
        let mut mono = Vec::new();
        mix_down(&[0.3, 0.6, 0.9, 0.0, 0.0, 0.3], 3, &mut mono);
        assert!((mono[0] - 0.6).abs() < 1e-6 && (mono[1] - 0.1).abs() < 1e-6, "{mono:?}");
        let mut mono = Vec::new();
        mix_down(&[0.1, 0.2], 1, &mut mono);
        assert_eq!(mono, [0.1, 0.2]);
    }

    #[test]
    fn rates_are_validated_and_the_default_config_preferred() {
        // ALSA plugins report 4000–4294967295 Hz.
        assert_eq!(sane_range(4_000, u32::MAX), Some((MIN_RATE, MAX_RATE)));
        assert_eq!(sane_range(1, 2_000), None);
        assert_eq!(sane_range(400_000, 800_000), None);
        assert_eq!(pick_rate(None, 4_000, u32::MAX), Some(48_000));
        assert_eq!(pick_rate(None, 8_000, 22_050), Some(16_000));
        assert_eq!(pick_rate(None, 96_000, 96_000), Some(96_000));
        assert_eq!(pick_rate(None, 8_000, 11_025), Some(11_025));

        let plug = [range(SampleFormat::I16, 2, 4_000, u32::MAX), range(SampleFormat::F32, 2, 4_000, u32::MAX)];
        // The default, when sane, wins.
        let default = plug[0].with_sample_rate(44_100);
        assert_eq!(
            choose_config(Some(&default), &plug),
            Ok(Chosen { format: SampleFormat::I16, rate: 44_100, channels: 2 })
        );
        // An absurd default rate is replaced by a sane one from the same range.
        let absurd = plug[1].with_max_sample_rate();
        assert_eq!(
            choose_config(Some(&absurd), &plug),
            Ok(Chosen { format: SampleFormat::F32, rate: 48_000, channels: 2 })
        );
        // No default: the best convertible range, DSD and insane ranges skipped.
        let odd = [
            range(SampleFormat::DsdU32, 2, 44_100, 44_100),
            range(SampleFormat::I32, 1, 1, 100),
            range(SampleFormat::U8, 1, 8_000, 8_000),
        ];
        assert_eq!(choose_config(None, &odd), Ok(Chosen { format: SampleFormat::U8, rate: 8_000, channels: 1 }));
        let err = choose_config(None, &odd[..2]).unwrap_err().to_string();
        assert!(err.contains("no input format"), "{err}");

        assert_eq!(
            describe_modes(&[
                range(SampleFormat::I16, 1, 4_000, u32::MAX),
                range(SampleFormat::I16, 2, 4_000, u32::MAX),
                range(SampleFormat::F32, 2, 48_000, 48_000),
                range(SampleFormat::F32, 6, 48_000, 48_000),
                range(SampleFormat::DsdU8, 2, 48_000, 48_000),
            ]),
            ["S16 8000–192000 Hz 1–2 ch", "F32 48000 Hz 2, 6 ch"]
        );
    }

    /// A 1 kHz sine resampled from 48 kHz to 16 kHz, as `next_block` resamples.
    #[test]
    fn resampling_keeps_a_sine_frequency_and_amplitude() {
        let mut r = StreamResampler::new(48_000, 16_000, 960).unwrap();
        let input: Vec<f32> =
            (0..48_000).map(|i| 0.5 * (2.0 * std::f32::consts::PI * 1_000.0 * i as f32 / 48_000.0).sin()).collect();
        let mut resampled = Vec::new();
        r.process(&input, &mut resampled).unwrap();
        assert!(resampled.len() > 15_000, "{}", resampled.len());
        // Away from the edges, the output is the same sine at 16 kHz: its projection on a 1 kHz
        // sine/cosine pair has the amplitude of the input (a fraction of a sample's delay is left).
        let part = &resampled[1_000..15_000];
        let w = 2.0 * std::f64::consts::PI * 1_000.0 / 16_000.0;
        let (mut s, mut c) = (0.0f64, 0.0f64);
        for (i, &v) in part.iter().enumerate() {
            s += f64::from(v) * (w * (i + 1_000) as f64).sin();
            c += f64::from(v) * (w * (i + 1_000) as f64).cos();
        }
        let amplitude = 2.0 * (s * s + c * c).sqrt() / part.len() as f64;
        assert!((amplitude - 0.5).abs() < 0.01, "amplitude {amplitude}");
        let rms = (part.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / part.len() as f64).sqrt();
        assert!((rms - 0.5 / 2f64.sqrt()).abs() < 0.01, "rms {rms}");
    }

    #[test]
    fn the_ring_drops_what_does_not_fit_and_counts_overruns() {
        let shared = Shared {
            ring: Mutex::new(Ring {
                buf: vec![0.0; 8].into_boxed_slice(),
                read: 6,
                len: 0,
                overruns: 0,
                dropped_frames: 0,
                lost: None,
                last_error: None,
            }),
            ready: Condvar::new(),
        };
        let bytes: Vec<u8> = [1i16, 2, 3, 4, 5, 6].iter().flat_map(|v| (v * 4_096).to_ne_bytes()).collect();
        push_frames(&shared, SampleFormat::I16, 2, &bytes);
        push_frames(&shared, SampleFormat::I16, 2, &bytes);
        let ring = shared.lock();
        assert_eq!((ring.len, ring.overruns, ring.dropped_frames), (8, 1, 2));
        // Wrapped around: samples 6, 7 then 0.. hold the frames in order.
        assert_eq!(&ring.buf[6..], &[0.125, 0.25]);
        assert_eq!(&ring.buf[..6], &[0.375, 0.5, 0.625, 0.75, 0.125, 0.25]);
    }

    /// The capture thread's side, fed as a device's callback would be: stereo S16 at 48 kHz in
    /// 10 ms periods, then the device unplugged.
    #[test]
    fn blocks_are_mixed_resampled_and_timestamped_until_the_device_is_lost() {
        let config = Chosen { format: SampleFormat::I16, rate: 48_000, channels: 2 };
        let mut mic = Microphone::new("hw:9".into(), "Test".into(), config, 16_000, 320).unwrap();
        assert_eq!(mic.describe(), "hw:9 (Test) S16 48000 Hz 2 ch, mixed to mono, resampled to 16000 Hz");
        let shared = mic.shared.clone();
        let sine = |t: f64| 0.5 * (2.0 * std::f64::consts::PI * 1_000.0 * t).sin();
        let feeder = std::thread::spawn(move || {
            for period in 0..100 {
                let bytes: Vec<u8> = (0..480)
                    .flat_map(|i| {
                        let v = sine(f64::from(period * 480 + i) / 48_000.0);
                        [(v * 1.2 * 32_767.0) as i16, (v * 0.8 * 32_767.0) as i16]
                    })
                    .flat_map(i16::to_ne_bytes)
                    .collect();
                push_frames(&shared, SampleFormat::I16, 2, &bytes);
                std::thread::sleep(Duration::from_millis(10));
            }
            stream_error(&shared, cpal::Error::new(cpal::ErrorKind::DeviceNotAvailable));
        });
        let mut block = AudioBlock::default();
        let mut blocks = 0u64;
        let error = loop {
            match mic.next_block(&mut block) {
                Ok(more) => assert!(more),
                Err(e) => break e,
            }
            assert_eq!(block.samples.len(), 320);
            assert_eq!(block.timestamp, Duration::from_millis(20 * blocks));
            if blocks >= 5 {
                // Past the resampler's start: the sine at 16 kHz, in phase with its timestamps
                // within a fraction of a sample.
                let t0 = block.timestamp.as_secs_f64();
                let worst = block
                    .samples
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| (f64::from(v) - sine(t0 + i as f64 / 16_000.0)).abs())
                    .fold(0.0, f64::max);
                assert!(worst < 0.1, "block {blocks} differs from the sine by {worst}");
            }
            blocks += 1;
        };
        feeder.join().unwrap();
        assert!(error.is_lost(), "{error}");
        assert!(error.to_string().starts_with("hw:9: the source was lost"), "{error}");
        assert!((45..=50).contains(&blocks), "{blocks} blocks");
        assert_eq!(mic.stats(), SourceStats { delivered: blocks, dropped: 0, corrupt: 0 });
    }

    #[test]
    #[ignore = "needs a real microphone: run with `cargo test --workspace -- --ignored camera microphone`"]
    fn records_a_second_from_the_default_microphone() {
        let mut mic = open(None, 16_000, 320).unwrap();
        let mut block = AudioBlock::default();
        let mut samples = 0;
        let mut last = None;
        for _ in 0..50 {
            assert!(mic.next_block(&mut block).unwrap());
            assert_eq!(block.samples.len(), 320);
            assert!(last.is_none_or(|t| block.timestamp > t), "{:?} after {last:?}", block.timestamp);
            last = Some(block.timestamp);
            samples += block.samples.len();
        }
        assert_eq!(samples, 16_000);
        eprintln!("{}: {:?}", mic.describe(), mic.stats());
    }
}
