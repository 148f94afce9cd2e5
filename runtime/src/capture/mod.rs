//! Sources of frames and audio: clip files (Y4M, WAV) and, behind cargo features, a V4L2
//! camera (`camera`) and a microphone through cpal (`mic`).
//!
//! Every source yields timestamped data into buffers the caller owns, so a capture thread can
//! cycle a fixed set of preallocated buffers ([`crate::stream`]) and never allocate per frame:
//! - a [`FrameSource`] fills a [`Frame`] (pixels in the source's own [`PixelFormat`], converted
//!   to RGB later by [`pixels::to_rgb`], off the capture thread);
//! - an [`AudioSource`] fills an [`AudioBlock`] with mono `f32` samples at the rate the student
//!   wants (devices resample).
//!
//! File sources ([`files`]) behave like devices: paced in real time or as fast as the consumer
//! takes them, optionally looping.

use std::time::Duration;

use thiserror::Error;

#[cfg(feature = "camera")]
pub mod camera;
pub mod files;
#[cfg(feature = "mic")]
pub mod mic;
#[cfg(feature = "jpeg")]
pub mod mjpeg;
pub mod pixels;
#[cfg(any(feature = "mic", feature = "voice"))]
pub mod resample;
pub mod wav;
pub mod y4m;

pub use pixels::PixelFormat;

/// One video frame as captured: `data` holds `format`'s bytes for a `width` x `height` image.
///
/// `data` is a buffer the caller owns and reuses; a source resizes it only when the frame size
/// changes (never in the steady state).
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    pub format: PixelFormat,
    pub data: Vec<u8>,
    /// Capture time since the source started.
    pub timestamp: Duration,
    /// Frame number given by the source (gaps mean frames the source or driver dropped).
    pub sequence: u64,
}

/// A block of mono `f32` samples in `[-1, 1]` at the source's [`AudioSource::sample_rate`].
#[derive(Debug, Clone, Default)]
pub struct AudioBlock {
    pub samples: Vec<f32>,
    /// Capture time of the first sample since the source started.
    pub timestamp: Duration,
}

/// Counters a source keeps while it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceStats {
    /// Frames or blocks delivered.
    pub delivered: u64,
    /// Frames the driver or device dropped (sequence gaps), or audio overruns.
    pub dropped: u64,
    /// Frames that arrived corrupt (undecodable MJPEG, short buffers) and were skipped.
    pub corrupt: u64,
}

/// A source of video frames: a camera or a clip file standing in for one.
pub trait FrameSource: Send {
    /// Fills `frame` with the next frame. `Ok(false)` at the end of a (non-looping) file;
    /// devices block until a frame arrives.
    fn next_frame(&mut self, frame: &mut Frame) -> Result<bool, CaptureError>;
    /// What the source is and the format it delivers, e.g. `/dev/video0 YUYV 640x480 at 30 fps`.
    fn describe(&self) -> String;
    /// Nominal frame rate in frames per second.
    fn fps(&self) -> f64;
    /// The largest frame the source delivers, in bytes (to preallocate buffers and plan memory).
    fn max_frame_bytes(&self) -> usize;
    /// Width and height of the frames delivered.
    fn size(&self) -> (usize, usize);
    /// Counters so far.
    fn stats(&self) -> SourceStats;
    /// Opens the device again after [`CaptureError::Lost`]; files cannot be lost.
    fn reopen(&mut self) -> Result<(), CaptureError> {
        Err(CaptureError::CannotReopen { source_name: self.describe() })
    }
}

/// A source of mono audio at the rate the student wants.
pub trait AudioSource: Send {
    /// Fills `block` with the next samples (replacing its contents). `Ok(false)` at the end of a
    /// (non-looping) file; devices block until samples arrive.
    fn next_block(&mut self, block: &mut AudioBlock) -> Result<bool, CaptureError>;
    /// What the source is, e.g. `hw:1,0 S16LE 48000 Hz 2 ch, resampled to 16000 Hz`.
    fn describe(&self) -> String;
    /// Rate of the delivered samples in Hz (the student's).
    fn sample_rate(&self) -> u32;
    /// The most samples one block holds (to preallocate buffers and plan memory).
    fn max_block_samples(&self) -> usize;
    /// Counters so far.
    fn stats(&self) -> SourceStats;
    /// Opens the device again after [`CaptureError::Lost`]; files cannot be lost.
    fn reopen(&mut self) -> Result<(), CaptureError> {
        Err(CaptureError::CannotReopen { source_name: self.describe() })
    }
}

/// Why a source could not be opened or read. Each message names the device or file and, where
/// it helps, lists what is available.
#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("camera `{wanted}` does not exist; {}", available_list("cameras", .available))]
    NoSuchCamera { wanted: String, available: Vec<String> },
    #[error("{path} is not a video capture device ({reason}); {}", available_list("cameras", .available))]
    NotACamera { path: String, reason: String, available: Vec<String> },
    #[error("{device}: {wanted} is not offered; the device offers: {}", .available.join(", "))]
    FormatUnsupported { device: String, wanted: String, available: Vec<String> },
    #[error("microphone `{wanted}` does not exist; {}", available_list("microphones", .available))]
    NoSuchMicrophone { wanted: String, available: Vec<String> },
    #[error("no {what} found on this machine")]
    NoDevice { what: &'static str },
    #[error("{device}: {reason}")]
    Device { device: String, reason: String },
    #[error("{source_name}: the source was lost ({reason})")]
    Lost { source_name: String, reason: String },
    #[error("{source_name}: cannot reopen this source")]
    CannotReopen { source_name: String },
    #[error("{source_name}: frame {sequence} is corrupt: {reason}")]
    Corrupt { source_name: String, sequence: u64, reason: String },
    #[error(transparent)]
    Y4m(#[from] y4m::Y4mError),
    #[error(transparent)]
    Wav(#[from] wav::WavError),
}

impl CaptureError {
    /// True when the device went away (unplugged) and reopening it may help.
    pub fn is_lost(&self) -> bool {
        matches!(self, CaptureError::Lost { .. })
    }
}

fn available_list(what: &str, available: &[String]) -> String {
    if available.is_empty() {
        format!("no {what} found on this machine")
    } else {
        format!("available: {}", available.join(", "))
    }
}

/// A capture device as listed by `edgeqa devices`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeviceInfo {
    /// `camera` or `microphone`.
    pub kind: &'static str,
    /// Path (`/dev/video0`) or device name, as `--camera` / `--mic` accept it.
    pub id: String,
    /// Human-readable name (card or driver).
    pub name: String,
    /// Capture modes: `YUYV 640x480 at 30, 15 fps`, `48000 Hz 2 ch S16`.
    pub modes: Vec<String>,
}

/// The cameras and microphones this build can open (empty lists when none are present or the
/// build lacks the `camera`/`mic` feature).
pub fn list_devices() -> Vec<DeviceInfo> {
    #[allow(unused_mut)]
    let mut out = Vec::new();
    #[cfg(feature = "camera")]
    out.extend(camera::list());
    #[cfg(feature = "mic")]
    out.extend(mic::list());
    out
}
