//! V4L2 cameras through the `v4l` crate, and MJPEG decoding through `zune-jpeg`.
//!
//! # Opening a camera
//!
//! [`open`] takes a node path (`/dev/video0`) or an index (`0`) and negotiates the mode nearest
//! to the [`CameraRequest`] with [`choose_mode`], a pure function over the modes the driver
//! lists:
//!
//! * pixel format: one this runtime converts ([`PixelFormat`]), preferring `YUYV`, then `MJPG`,
//!   `NV12`, `GREY`. A format that cannot give the wanted size, or whose nearest frame rate
//!   falls more than 10 % short of the wanted one, gives way to a later format that can;
//! * size: the smallest offered size at least as large as wanted in both dimensions, else the
//!   largest offered;
//! * frame rate: the offered rate nearest the wanted one.
//!
//! The format the driver actually chose is read back after setting it; frames stream through
//! memory-mapped driver buffers and are copied (row padding removed) into the caller's
//! [`Frame`]. YCbCr range comes from the driver's reported quantization, or V4L2's defaults when
//! it reports none (limited for YUYV and NV12 unless the colorspace is JPEG; full for GREY).
//!
//! # Errors
//!
//! Every error names the device and what is available instead, for example
//!
//! * `camera `/dev/video7` does not exist; available: /dev/video0, /dev/video2`
//! * `/dev/null is not a video capture device (it does not answer V4L2 queries: ...); no
//!   cameras found on this machine`
//! * `/dev/video0: 640x480 in YUYV, MJPG, NV12 or GREY is not offered; the device offers:
//!   H264 1920x1080 at 30 fps (not supported)`
//!
//! A camera that goes away while streaming (unplugged: `ENODEV`, `EIO`, ...) or stops
//! delivering frames gives [`CaptureError::Lost`]; [`FrameSource::reopen`] opens the same node
//! with the same negotiated mode. Frames flagged as errors by the driver, short buffers and
//! MJPEG buffers without their start and end markers are skipped and counted as corrupt;
//! sequence gaps are counted as dropped.

use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use v4l::buffer::{Flags as BufferFlags, Metadata, Type};
use v4l::capability::Flags as CapabilityFlags;
use v4l::format::{Colorspace as V4lColorspace, Quantization};
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::{CaptureStream, Stream as _};
use v4l::video::Capture;
use v4l::video::capture::Parameters;
use v4l::{Device, Format, FourCC, Fraction};

pub use crate::capture::mjpeg::decode_mjpeg;
use crate::capture::{CaptureError, DeviceInfo, Frame, FrameSource, PixelFormat, SourceStats};

/// Pixel formats this runtime converts, most preferred first.
pub const PREFERRED_FORMATS: [[u8; 4]; 4] = [*b"YUYV", *b"MJPG", *b"NV12", *b"GREY"];

/// Driver buffers to stream through.
const BUFFERS: u32 = 4;
/// A nearest frame rate below this fraction of the wanted rate counts as falling short.
const FPS_SHORTFALL: f64 = 0.9;
/// Sequence jumps larger than this are driver resets, not dropped frames.
const MAX_SEQUENCE_GAP: u32 = 1 << 20;

/// What to open and the mode wanted.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraRequest {
    /// A node path such as `/dev/video0`, or an index such as `0`.
    pub device: String,
    pub width: usize,
    pub height: usize,
    pub fps: f64,
}

/// One pixel format and size a camera offers, with the frame intervals it lists for them.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferedMode {
    pub fourcc: [u8; 4],
    pub width: usize,
    pub height: usize,
    /// Frame intervals as `(numerator, denominator)` seconds; empty when the driver lists none.
    pub intervals: Vec<(u32, u32)>,
}

impl OfferedMode {
    /// `YUYV 640x480 at 30, 15 fps`, marked `(not supported)` for formats this runtime cannot
    /// convert.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {}x{}", fourcc_name(self.fourcc), self.width, self.height);
        let rates: Vec<String> = self.intervals.iter().filter_map(|&i| interval_fps(i)).map(fmt_fps).collect();
        if !rates.is_empty() {
            s.push_str(&format!(" at {} fps", rates.join(", ")));
        }
        if !PREFERRED_FORMATS.contains(&self.fourcc) {
            s.push_str(" (not supported)");
        }
        s
    }
}

/// The mode [`choose_mode`] picked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChosenMode {
    pub fourcc: [u8; 4],
    pub width: usize,
    pub height: usize,
    /// Frame interval to ask for; `None` when the driver lists none for this size.
    pub interval: Option<(u32, u32)>,
}

impl ChosenMode {
    /// Frame rate of [`ChosenMode::interval`].
    pub fn fps(&self) -> Option<f64> {
        self.interval.and_then(interval_fps)
    }
}

/// Picks the offered mode nearest to `width` x `height` at `fps` (see the module documentation
/// for the rules). `None` when no offered mode has a format this runtime converts.
pub fn choose_mode(offered: &[OfferedMode], width: usize, height: usize, fps: f64) -> Option<ChosenMode> {
    let mut best: Option<((bool, bool, usize), ChosenMode)> = None;
    for (rank, fourcc) in PREFERRED_FORMATS.iter().enumerate() {
        let modes: Vec<&OfferedMode> = offered.iter().filter(|m| m.fourcc == *fourcc).collect();
        let covering = modes
            .iter()
            .filter(|m| m.width >= width && m.height >= height)
            .min_by_key(|m| (m.width * m.height, m.width))
            .copied();
        let Some(sized) = covering.or_else(|| modes.iter().max_by_key(|m| (m.width * m.height, m.width)).copied())
        else {
            continue;
        };
        let (w, h) = (sized.width, sized.height);
        let interval = modes
            .iter()
            .filter(|m| m.width == w && m.height == h)
            .flat_map(|m| m.intervals.iter().copied())
            .filter_map(|i| interval_fps(i).map(|f| (i, f)))
            .min_by(|(_, a), (_, b)| (a - fps).abs().total_cmp(&(b - fps).abs()).then(b.total_cmp(a)))
            .map(|(i, _)| i);
        let reaches =
            interval.and_then(interval_fps).is_none_or(|f| fps.is_nan() || fps <= 0.0 || f >= FPS_SHORTFALL * fps);
        let key = (covering.is_none(), !reaches, rank);
        let chosen = ChosenMode { fourcc: *fourcc, width: w, height: h, interval };
        if best.as_ref().is_none_or(|(k, _)| key < *k) {
            best = Some((key, chosen));
        }
    }
    best.map(|(_, m)| m)
}

/// Frames per second of a `(numerator, denominator)` interval in seconds.
fn interval_fps((num, den): (u32, u32)) -> Option<f64> {
    (num > 0 && den > 0).then(|| f64::from(den) / f64::from(num))
}

fn fmt_fps(fps: f64) -> String {
    if (fps - fps.round()).abs() < 0.005 { format!("{}", fps.round()) } else { format!("{fps:.2}") }
}

fn fourcc_name(fourcc: [u8; 4]) -> String {
    fourcc.iter().map(|&b| if b.is_ascii_graphic() { char::from(b) } else { '?' }).collect::<String>()
}

/// Runs a call into the `v4l` crate, turning its panics (it unwraps on unexpected driver data)
/// into errors.
fn guarded<T>(what: &str, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(io::Error::other(format!("the driver returned data the V4L2 layer rejects ({what})"))))
}

/// `/dev/videoN` nodes, in index order.
fn video_nodes() -> Vec<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let index = name.to_str()?.strip_prefix("video")?.parse().ok()?;
            Some((index, e.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

/// An open node that is a single-planar video capture device, with its card name.
fn open_capture_node(path: &str) -> Result<(Device, String), CaptureError> {
    let not_a_camera = |reason: String| CaptureError::NotACamera { path: path.into(), reason, available: ids() };
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(CaptureError::NoSuchCamera { wanted: path.into(), available: ids() });
        }
        Err(e) => return Err(CaptureError::Device { device: path.into(), reason: format!("cannot inspect it: {e}") }),
        Ok(m) if m.is_dir() => return Err(not_a_camera("it is a directory".into())),
        Ok(m) if !m.file_type().is_char_device() => return Err(not_a_camera("it is not a device node".into())),
        Ok(_) => {}
    }
    let device = guarded("open", || Device::with_path(path)).map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::PermissionDenied {
            " (is the user in the `video` group?)"
        } else if e.raw_os_error() == Some(libc_errno::EBUSY) {
            " (another program is using it)"
        } else {
            ""
        };
        CaptureError::Device { device: path.into(), reason: format!("cannot open it: {e}{hint}") }
    })?;
    let caps = guarded("capabilities", || device.query_caps())
        .map_err(|e| not_a_camera(format!("it does not answer V4L2 queries: {e}")))?;
    if !caps.capabilities.contains(CapabilityFlags::VIDEO_CAPTURE) {
        let reason = if caps.capabilities.contains(CapabilityFlags::VIDEO_CAPTURE_MPLANE) {
            format!("{} captures through the multi-planar API only, which is not supported", caps.card)
        } else {
            format!("{} ({}) has no video capture, e.g. a metadata or output node", caps.card, caps.driver)
        };
        return Err(not_a_camera(reason));
    }
    if !caps.capabilities.contains(CapabilityFlags::STREAMING) {
        return Err(CaptureError::Device {
            device: path.into(),
            reason: format!("{} does not support streaming I/O", caps.card),
        });
    }
    Ok((device, caps.card))
}

/// The ids of the cameras present.
fn ids() -> Vec<String> {
    list().into_iter().map(|d| d.id).collect()
}

/// Modes `device` offers. Stepwise sizes and intervals contribute their extremes and, given
/// `want`, the wanted value fitted to their grid.
fn offered_modes(device: &Device, want: Option<(usize, usize, f64)>) -> io::Result<Vec<OfferedMode>> {
    let mut out: Vec<OfferedMode> = Vec::new();
    let formats = guarded("formats", || device.enum_formats())?;
    for desc in formats {
        let fourcc = desc.fourcc;
        let mut sizes: Vec<(u32, u32)> = Vec::new();
        match guarded("frame sizes", || device.enum_framesizes(fourcc)) {
            Ok(list) if !list.is_empty() => {
                for s in list {
                    match s.size {
                        FrameSizeEnum::Discrete(d) => sizes.push((d.width, d.height)),
                        FrameSizeEnum::Stepwise(s) => {
                            sizes.push((s.min_width, s.min_height));
                            sizes.push((s.max_width, s.max_height));
                            if let Some((w, h, _)) = want {
                                let fit = |v: usize, min: u32, max: u32, step: u32| {
                                    let (v, min, max) = (v as u64, u64::from(min), u64::from(max.max(min)));
                                    let step = u64::from(step.max(1));
                                    let v = (min + (v.clamp(min, max) - min).div_ceil(step) * step).min(max);
                                    u32::try_from(v).unwrap_or(u32::MAX)
                                };
                                sizes.push((
                                    fit(w, s.min_width, s.max_width, s.step_width),
                                    fit(h, s.min_height, s.max_height, s.step_height),
                                ));
                            }
                        }
                    }
                }
            }
            // Drivers that do not enumerate sizes: the current size is the one known.
            _ => {
                if let Ok(f) = guarded("format", || device.format()) {
                    sizes.push((f.width, f.height));
                }
            }
        }
        sizes.sort_unstable();
        sizes.dedup();
        for (w, h) in sizes {
            let mut intervals: Vec<(u32, u32)> = Vec::new();
            if let Ok(list) = guarded("frame intervals", || device.enum_frameintervals(fourcc, w, h)) {
                for i in list {
                    match i.interval {
                        FrameIntervalEnum::Discrete(f) => intervals.push((f.numerator, f.denominator)),
                        FrameIntervalEnum::Stepwise(s) => {
                            intervals.push((s.min.numerator, s.min.denominator));
                            intervals.push((s.max.numerator, s.max.denominator));
                            if let Some((_, _, fps)) = want
                                && fps > 0.0
                                && let (Some(fast), Some(slow)) = (
                                    interval_fps((s.min.numerator, s.min.denominator)),
                                    interval_fps((s.max.numerator, s.max.denominator)),
                                )
                                && fps < fast
                                && fps > slow
                            {
                                intervals.push((1000, (fps * 1000.0).round() as u32));
                            }
                        }
                    }
                }
            }
            intervals.dedup();
            out.push(OfferedMode { fourcc: fourcc.repr, width: w as usize, height: h as usize, intervals });
        }
    }
    Ok(out)
}

/// Groups modes for listing: one line per format and size.
fn describe_modes(modes: &[OfferedMode]) -> Vec<String> {
    modes.iter().map(OfferedMode::describe).collect()
}

/// Every V4L2 video capture node present, with its modes (`YUYV 640x480 at 30, 15 fps`).
/// Empty when there are none.
pub fn list() -> Vec<DeviceInfo> {
    let mut out = Vec::new();
    for path in video_nodes() {
        let id = path.display().to_string();
        let Ok(device) = guarded("open", || Device::with_path(&path)) else { continue };
        let Ok(caps) = guarded("capabilities", || device.query_caps()) else { continue };
        if !caps.capabilities.contains(CapabilityFlags::VIDEO_CAPTURE) {
            continue;
        }
        let modes = offered_modes(&device, None).map(|m| describe_modes(&m)).unwrap_or_default();
        close(device);
        out.push(DeviceInfo { kind: "camera", id, name: caps.card, modes });
    }
    out
}

/// Closes a device without letting a failing `close` panic out of the `v4l` crate.
fn close(device: Device) {
    let _ = catch_unwind(AssertUnwindSafe(move || drop(device)));
}

/// The node path a request names: `/dev/videoN` for an index.
fn resolve(device: &str) -> String {
    if !device.is_empty() && device.bytes().all(|b| b.is_ascii_digit()) {
        format!("/dev/video{device}")
    } else {
        device.to_string()
    }
}

/// Errno values this module tells apart.
mod libc_errno {
    pub const EINTR: i32 = 4;
    pub const EIO: i32 = 5;
    pub const ENXIO: i32 = 6;
    pub const EAGAIN: i32 = 11;
    pub const EBUSY: i32 = 16;
    pub const ENODEV: i32 = 19;
    pub const ESHUTDOWN: i32 = 108;
}

fn is_gone(e: &io::Error) -> bool {
    use libc_errno::*;
    matches!(e.raw_os_error(), Some(ENODEV | EIO | ENXIO | ESHUTDOWN))
}

fn is_transient(e: &io::Error) -> bool {
    use libc_errno::*;
    matches!(e.raw_os_error(), Some(EINTR | EAGAIN)) || e.kind() == io::ErrorKind::Interrupted
}

/// The streaming state of an open camera. Dropping it stops the stream and unmaps the buffers
/// without the panics the `v4l` crate raises when that fails (it panics on any error but
/// `ENODEV`): a stream that cannot be stopped is leaked instead.
struct Live {
    stream: Option<MmapStream<'static>>,
    device: Option<Device>,
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(mut stream) = self.stream.take() {
            match guarded("stop", || stream.stop()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc_errno::ENODEV) => {}
                Err(e) => {
                    log::warn!("camera stream cannot be stopped ({e}); leaving its buffers mapped");
                    std::mem::forget(stream);
                    if let Some(device) = self.device.take() {
                        std::mem::forget(device);
                    }
                    return;
                }
            }
            if catch_unwind(AssertUnwindSafe(move || drop(stream))).is_err() {
                log::warn!("camera buffers could not be released cleanly");
            }
        }
        if let Some(device) = self.device.take() {
            close(device);
        }
    }
}

/// Why a driver buffer holds no usable frame ([`Layout::copy`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum CorruptBuffer {
    #[error("the MJPEG buffer is empty")]
    Empty,
    #[error("the MJPEG buffer does not start with a JPEG SOI marker")]
    NoSoi,
    #[error("the MJPEG buffer has no JPEG EOI marker (truncated)")]
    NoEoi,
    #[error("the buffer holds {len} bytes but a {width}x{height} {fourcc} frame needs {need}")]
    Short { len: usize, width: usize, height: usize, fourcc: String, need: usize },
}

/// The format the driver delivers, as this module uses it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Layout {
    fourcc: [u8; 4],
    width: usize,
    height: usize,
    /// Bytes per row of the (first) plane in the driver's buffer.
    stride: usize,
    /// Bytes the driver says one frame may take.
    sizeimage: usize,
    format: PixelFormat,
}

impl Layout {
    fn from_format(f: &Format) -> Option<Layout> {
        let fourcc = f.fourcc.repr;
        let (width, height) = (f.width as usize, f.height as usize);
        let full = match f.quantization {
            Quantization::FullRange => Some(true),
            Quantization::LimitedRange => Some(false),
            Quantization::Default => None,
        };
        let jpeg_colorspace = matches!(f.colorspace, V4lColorspace::JPEG);
        let format = match &fourcc {
            b"YUYV" => PixelFormat::Yuyv { full_range: full.unwrap_or(jpeg_colorspace) },
            b"NV12" => PixelFormat::Nv12 { full_range: full.unwrap_or(jpeg_colorspace) },
            b"GREY" => PixelFormat::Grey { full_range: full.unwrap_or(true) },
            b"MJPG" => PixelFormat::Mjpeg,
            _ => return None,
        };
        let packed_row = match format {
            PixelFormat::Yuyv { .. } => 4 * width.div_ceil(2),
            _ => width,
        };
        let stride = (f.stride as usize).max(packed_row);
        Some(Layout { fourcc, width, height, stride, sizeimage: f.size as usize, format })
    }

    /// Bytes of one delivered frame (without row padding); `None` for MJPEG.
    fn frame_bytes(&self) -> Option<usize> {
        self.format.frame_bytes(self.width, self.height)
    }

    /// Copies one driver buffer into `out`, dropping row padding. `Err` says why the buffer
    /// is corrupt.
    fn copy(&self, buf: &[u8], out: &mut Vec<u8>) -> Result<(), CorruptBuffer> {
        out.clear();
        if self.format == PixelFormat::Mjpeg {
            if buf.is_empty() {
                return Err(CorruptBuffer::Empty);
            }
            if !buf.starts_with(&[0xFF, 0xD8]) {
                return Err(CorruptBuffer::NoSoi);
            }
            if !buf[2..].windows(2).rev().any(|w| w == [0xFF, 0xD9]) {
                return Err(CorruptBuffer::NoEoi);
            }
            out.extend_from_slice(buf);
            return Ok(());
        }
        let (w, h) = (self.width, self.height);
        // Planes as (rows, bytes per row) at consecutive offsets of `stride * rows`.
        let planes: &[(usize, usize)] = match self.format {
            PixelFormat::Yuyv { .. } => &[(h, 4 * w.div_ceil(2))],
            PixelFormat::Nv12 { .. } => &[(h, w), (h.div_ceil(2), 2 * w.div_ceil(2))],
            _ => &[(h, w)],
        };
        let need = planes.iter().map(|&(rows, _)| rows * self.stride).sum::<usize>();
        let packed = self.frame_bytes().unwrap_or(0);
        if planes.iter().all(|&(_, row_bytes)| row_bytes == self.stride) && buf.len() >= packed {
            out.extend_from_slice(&buf[..packed]);
            return Ok(());
        }
        // The last row of the last plane need not carry its padding.
        let last_pad = self.stride - planes[planes.len() - 1].1;
        if buf.len() + last_pad < need {
            return Err(CorruptBuffer::Short {
                len: buf.len(),
                width: w,
                height: h,
                fourcc: fourcc_name(self.fourcc),
                need: need - last_pad,
            });
        }
        let mut at = 0;
        for &(rows, row_bytes) in planes {
            for r in 0..rows {
                out.extend_from_slice(&buf[at + r * self.stride..at + r * self.stride + row_bytes]);
            }
            at += rows * self.stride;
        }
        Ok(())
    }
}

/// An open V4L2 camera streaming the negotiated mode (see the module documentation).
pub struct Camera {
    path: String,
    card: String,
    layout: Layout,
    interval: Option<(u32, u32)>,
    fps: f64,
    live: Option<Live>,
    stats: SourceStats,
    /// Driver sequence number of the last buffer seen.
    last_driver_seq: Option<u32>,
    /// Sequence number given to the next frame (counts dropped and corrupt frames too).
    next_sequence: u64,
    /// When the first frame arrived.
    start: Option<Instant>,
    /// Driver timestamp and our timestamp at the first frame since (re)opening.
    clock: Option<(Duration, Duration)>,
    /// Our timestamp of the last delivered frame.
    last_timestamp: Duration,
    timeout: Duration,
}

/// Opens and configures a camera (see the module documentation for the negotiation).
pub fn open(req: &CameraRequest) -> Result<Camera, CaptureError> {
    let path = resolve(&req.device);
    let (device, card) = open_capture_node(&path).map_err(|e| match e {
        CaptureError::NoSuchCamera { available, .. } => {
            CaptureError::NoSuchCamera { wanted: req.device.clone(), available }
        }
        e => e,
    })?;
    let dev_err = |reason: String| CaptureError::Device { device: path.clone(), reason };
    let offered = match offered_modes(&device, Some((req.width, req.height, req.fps))) {
        Ok(m) => m,
        Err(e) => {
            close(device);
            return Err(dev_err(format!("cannot list its formats: {e}")));
        }
    };
    let wanted = format!("{}x{} at {} fps in YUYV, MJPG, NV12 or GREY", req.width, req.height, fmt_fps(req.fps));
    let Some(choice) = choose_mode(&offered, req.width, req.height, req.fps) else {
        close(device);
        let available = if offered.is_empty() { vec!["no formats".into()] } else { describe_modes(&offered) };
        return Err(CaptureError::FormatUnsupported { device: path, wanted, available });
    };
    let (layout, interval) =
        match configure(&device, &path, choice.fourcc, choice.width, choice.height, choice.interval) {
            Ok(v) => v,
            Err(e) => {
                close(device);
                return Err(match e {
                    Configure::Io(reason) => dev_err(reason),
                    Configure::Refused(got) => CaptureError::FormatUnsupported {
                        device: path,
                        wanted: format!("{} (the driver switched to {got})", describe_choice(&choice)),
                        available: describe_modes(&offered),
                    },
                });
            }
        };
    let fps = interval.and_then(interval_fps).or(choice.fps()).unwrap_or(req.fps);
    let live = start_stream(device, &path, frame_timeout(fps))?;
    let camera = Camera {
        path,
        card,
        layout,
        interval,
        fps,
        live: Some(live),
        stats: SourceStats::default(),
        last_driver_seq: None,
        next_sequence: 0,
        start: None,
        clock: None,
        last_timestamp: Duration::ZERO,
        timeout: frame_timeout(fps),
    };
    log::info!("camera: {}", camera.describe());
    Ok(camera)
}

fn describe_choice(c: &ChosenMode) -> String {
    let mut s = format!("{} {}x{}", fourcc_name(c.fourcc), c.width, c.height);
    if let Some(f) = c.fps() {
        s.push_str(&format!(" at {} fps", fmt_fps(f)));
    }
    s
}

/// How long to wait for a frame before calling the camera lost.
fn frame_timeout(fps: f64) -> Duration {
    let frame = if fps > 0.0 { Duration::from_secs_f64((1.0 / fps).min(10.0)) } else { Duration::ZERO };
    (frame * 20).max(Duration::from_secs(5))
}

enum Configure {
    Io(String),
    /// The driver chose a different format or size.
    Refused(String),
}

/// Sets the format and frame interval, then reads back what the driver chose.
fn configure(
    device: &Device,
    path: &str,
    fourcc: [u8; 4],
    width: usize,
    height: usize,
    interval: Option<(u32, u32)>,
) -> Result<(Layout, Option<(u32, u32)>), Configure> {
    let to_u32 = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    let want = Format::new(to_u32(width), to_u32(height), FourCC::new(&fourcc));
    guarded("set format", || device.set_format(&want)).map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc_errno::EBUSY) { " (another program is using it)" } else { "" };
        Configure::Io(format!("cannot set the format: {e}{hint}"))
    })?;
    let actual = guarded("format", || device.format())
        .map_err(|e| Configure::Io(format!("cannot read back the format: {e}")))?;
    let layout = Layout::from_format(&actual)
        .filter(|l| l.fourcc == fourcc)
        .ok_or_else(|| Configure::Refused(format!("{} {}x{}", actual.fourcc, actual.width, actual.height)))?;
    if (layout.width, layout.height) != (width, height) {
        log::warn!("{path}: asked for {width}x{height}, the driver chose {}x{}", layout.width, layout.height);
    }
    let mut got = interval;
    if let Some((num, den)) = interval {
        match guarded("set frame rate", || device.set_params(&Parameters::new(Fraction::new(num, den)))) {
            Ok(p) if p.interval.numerator > 0 && p.interval.denominator > 0 => {
                got = Some((p.interval.numerator, p.interval.denominator));
            }
            Ok(_) => {}
            Err(e) => log::warn!("{path}: cannot set the frame rate ({e}); using the driver's"),
        }
    } else if let Ok(p) = guarded("frame rate", || device.params())
        && p.interval.numerator > 0
        && p.interval.denominator > 0
    {
        got = Some((p.interval.numerator, p.interval.denominator));
    }
    Ok((layout, got))
}

/// Maps the driver buffers; a dequeue waits at most `timeout` for a frame.
fn start_stream(device: Device, path: &str, timeout: Duration) -> Result<Live, CaptureError> {
    match guarded("buffers", || MmapStream::with_buffers(&device, Type::VideoCapture, BUFFERS)) {
        Ok(mut stream) => {
            stream.set_timeout(timeout);
            Ok(Live { stream: Some(stream), device: Some(device) })
        }
        Err(e) => {
            close(device);
            let hint = if e.raw_os_error() == Some(libc_errno::EBUSY) { " (another program is using it)" } else { "" };
            Err(CaptureError::Device { device: path.into(), reason: format!("cannot map capture buffers: {e}{hint}") })
        }
    }
}

/// What one dequeued buffer turned out to be.
enum Buffer {
    Good { sequence: u32, timestamp: Duration },
    Corrupt { sequence: u32, reason: String },
}

impl Camera {
    /// The node path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The driver's card name.
    pub fn card(&self) -> &str {
        &self.card
    }

    /// The pixel format delivered.
    pub fn format(&self) -> PixelFormat {
        self.layout.format
    }

    fn lost(&mut self, reason: String) -> CaptureError {
        // Closing the node now lets a reopen find it again.
        self.live = None;
        CaptureError::Lost { source_name: self.path.clone(), reason }
    }

    /// Dequeues one buffer into `data`.
    fn dequeue(&mut self, data: &mut Vec<u8>) -> io::Result<Buffer> {
        let layout = self.layout;
        let stream = self.live.as_mut().and_then(|l| l.stream.as_mut()).ok_or_else(|| io::Error::other("closed"))?;
        guarded("capture", || {
            let (buf, meta): (&[u8], &Metadata) = CaptureStream::next(stream)?;
            let used = (meta.bytesused as usize).min(buf.len());
            let sequence = meta.sequence;
            if meta.flags.contains(BufferFlags::ERROR) {
                return Ok(Buffer::Corrupt { sequence, reason: "the driver flagged it as damaged".into() });
            }
            let timestamp = Duration::from_secs(u64::try_from(meta.timestamp.sec).unwrap_or(0))
                + Duration::from_micros(u64::try_from(meta.timestamp.usec).unwrap_or(0));
            Ok(match layout.copy(&buf[..used], data) {
                Ok(()) => Buffer::Good { sequence, timestamp },
                Err(e) => Buffer::Corrupt { sequence, reason: e.to_string() },
            })
        })
    }

    /// After a transient error inside the `v4l` crate's queue-then-dequeue, takes a buffer out
    /// again so the next call can requeue it.
    fn recover(&mut self) -> io::Result<()> {
        let Some(stream) = self.live.as_mut().and_then(|l| l.stream.as_mut()) else { return Ok(()) };
        loop {
            match guarded("capture", || CaptureStream::dequeue(stream)) {
                Ok(_) => return Ok(()),
                Err(e) if is_transient(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Counts the frames the driver skipped before `sequence`; returns this frame's number.
    fn advance(&mut self, sequence: u32) -> u64 {
        if let Some(last) = self.last_driver_seq {
            let gap = sequence.wrapping_sub(last).wrapping_sub(1);
            if gap < MAX_SEQUENCE_GAP {
                self.stats.dropped += u64::from(gap);
                self.next_sequence += u64::from(gap);
            }
        }
        self.last_driver_seq = Some(sequence);
        let n = self.next_sequence;
        self.next_sequence += 1;
        n
    }

    fn timestamp(&mut self, driver: Duration) -> Duration {
        let start = *self.start.get_or_insert_with(Instant::now);
        let ours = if driver.is_zero() {
            start.elapsed()
        } else {
            let (driver0, ours0) = *self.clock.get_or_insert((driver, start.elapsed()));
            ours0 + driver.saturating_sub(driver0)
        };
        // Never go backwards (a driver clock jump, or a reopen).
        let ts = ours.max(self.last_timestamp);
        self.last_timestamp = ts;
        ts
    }
}

impl FrameSource for Camera {
    fn next_frame(&mut self, frame: &mut Frame) -> Result<bool, CaptureError> {
        if self.live.is_none() {
            return Err(CaptureError::Lost { source_name: self.path.clone(), reason: "it was lost earlier".into() });
        }
        loop {
            match self.dequeue(&mut frame.data) {
                Ok(Buffer::Good { sequence, timestamp }) => {
                    frame.sequence = self.advance(sequence);
                    frame.timestamp = self.timestamp(timestamp);
                    frame.width = self.layout.width;
                    frame.height = self.layout.height;
                    frame.format = self.layout.format;
                    self.stats.delivered += 1;
                    return Ok(true);
                }
                Ok(Buffer::Corrupt { sequence, reason }) => {
                    let n = self.advance(sequence);
                    self.stats.corrupt += 1;
                    log::debug!("{}: frame {n} skipped: {reason}", self.path);
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(self.lost(format!("no frame arrived within {:.0} s", self.timeout.as_secs_f64())));
                }
                Err(e) if is_gone(&e) => return Err(self.lost(e.to_string())),
                Err(e) if is_transient(&e) => {
                    if let Err(e) = self.recover() {
                        return Err(self.lost(e.to_string()));
                    }
                }
                Err(e) => return Err(self.lost(format!("capture failed: {e}"))),
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} ({}) {} {}x{} at {} fps",
            self.path,
            self.card,
            fourcc_name(self.layout.fourcc),
            self.layout.width,
            self.layout.height,
            fmt_fps(self.fps)
        )
    }

    fn fps(&self) -> f64 {
        self.fps
    }

    fn max_frame_bytes(&self) -> usize {
        self.layout.frame_bytes().unwrap_or(self.layout.sizeimage.max(2 * self.layout.width * self.layout.height))
    }

    fn size(&self) -> (usize, usize) {
        (self.layout.width, self.layout.height)
    }

    fn stats(&self) -> SourceStats {
        self.stats
    }

    fn reopen(&mut self) -> Result<(), CaptureError> {
        self.live = None;
        let (device, card) = open_capture_node(&self.path)?;
        let l = self.layout;
        let (layout, interval) = match configure(&device, &self.path, l.fourcc, l.width, l.height, self.interval) {
            Ok(v) => v,
            Err(e) => {
                close(device);
                return Err(match e {
                    Configure::Io(reason) => CaptureError::Device { device: self.path.clone(), reason },
                    Configure::Refused(got) => CaptureError::FormatUnsupported {
                        device: self.path.clone(),
                        wanted: format!("{} {}x{}", fourcc_name(l.fourcc), l.width, l.height),
                        available: vec![got],
                    },
                });
            }
        };
        if (layout.width, layout.height) != (l.width, l.height) {
            close(device);
            return Err(CaptureError::FormatUnsupported {
                device: self.path.clone(),
                wanted: format!("{} {}x{}", fourcc_name(l.fourcc), l.width, l.height),
                available: vec![format!("{} {}x{}", fourcc_name(layout.fourcc), layout.width, layout.height)],
            });
        }
        self.live = Some(start_stream(device, &self.path, self.timeout)?);
        self.card = card;
        self.layout = layout;
        self.interval = interval;
        self.last_driver_seq = None;
        self.clock = None;
        log::info!("camera reopened: {}", self.describe());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::mjpeg::*;
    use crate::capture::pixels::PixelError;

    fn mode(fourcc: &[u8; 4], w: usize, h: usize, fps: &[u32]) -> OfferedMode {
        OfferedMode { fourcc: *fourcc, width: w, height: h, intervals: fps.iter().map(|&f| (1, f)).collect() }
    }

    /// A typical UVC webcam: YUYV is slow at large sizes, MJPEG is not.
    fn webcam() -> Vec<OfferedMode> {
        vec![
            mode(b"YUYV", 640, 480, &[30, 15]),
            mode(b"YUYV", 320, 240, &[30, 15]),
            mode(b"YUYV", 1280, 720, &[10, 5]),
            mode(b"MJPG", 640, 480, &[30]),
            mode(b"MJPG", 1280, 720, &[30, 15]),
            mode(b"MJPG", 1920, 1080, &[30]),
            mode(b"H264", 1920, 1080, &[30]),
        ]
    }

    #[test]
    fn negotiation_prefers_yuyv_at_the_smallest_covering_size() {
        let m = choose_mode(&webcam(), 300, 200, 30.0).unwrap();
        assert_eq!(m, ChosenMode { fourcc: *b"YUYV", width: 320, height: 240, interval: Some((1, 30)) });
        let m = choose_mode(&webcam(), 640, 480, 15.0).unwrap();
        assert_eq!(m, ChosenMode { fourcc: *b"YUYV", width: 640, height: 480, interval: Some((1, 15)) });
        // 20 fps: 15 and 30 are 5 away; the faster wins the tie.
        assert_eq!(choose_mode(&webcam(), 640, 480, 20.0).unwrap().interval, Some((1, 30)));
    }

    #[test]
    fn negotiation_moves_to_mjpeg_when_yuyv_is_too_slow_or_too_small() {
        // YUYV 1280x720 only reaches 10 fps: MJPEG gives 30.
        let m = choose_mode(&webcam(), 1280, 720, 30.0).unwrap();
        assert_eq!(m, ChosenMode { fourcc: *b"MJPG", width: 1280, height: 720, interval: Some((1, 30)) });
        // At 10 fps YUYV is fine.
        assert_eq!(choose_mode(&webcam(), 1280, 720, 10.0).unwrap().fourcc, *b"YUYV");
        // Only MJPEG covers 1920x1080.
        let m = choose_mode(&webcam(), 1600, 900, 30.0).unwrap();
        assert_eq!((m.fourcc, m.width, m.height), (*b"MJPG", 1920, 1080));
    }

    #[test]
    fn negotiation_falls_back_to_the_largest_size_and_nearest_rate() {
        let offered =
            vec![mode(b"GREY", 320, 240, &[60]), mode(b"GREY", 640, 480, &[25, 5]), mode(b"RGB3", 4000, 3000, &[30])];
        let m = choose_mode(&offered, 1920, 1080, 30.0).unwrap();
        assert_eq!(m, ChosenMode { fourcc: *b"GREY", width: 640, height: 480, interval: Some((1, 25)) });
        // No listed intervals: no rate to ask for.
        let m = choose_mode(&[mode(b"NV12", 640, 480, &[])], 640, 480, 30.0).unwrap();
        assert_eq!((m.fourcc, m.interval, m.fps()), (*b"NV12", None, None));
    }

    #[test]
    fn negotiation_without_a_convertible_format_is_none() {
        assert_eq!(choose_mode(&[mode(b"H264", 1920, 1080, &[30])], 640, 480, 30.0), None);
        assert_eq!(choose_mode(&[], 640, 480, 30.0), None);
    }

    #[test]
    fn modes_describe_themselves() {
        assert_eq!(mode(b"YUYV", 640, 480, &[30, 15]).describe(), "YUYV 640x480 at 30, 15 fps");
        let m = OfferedMode { fourcc: *b"MJPG", width: 320, height: 240, intervals: vec![(1001, 30000)] };
        assert_eq!(m.describe(), "MJPG 320x240 at 29.97 fps");
        assert_eq!(mode(b"H264", 1920, 1080, &[]).describe(), "H264 1920x1080 (not supported)");
    }

    #[test]
    fn buffers_lose_their_row_padding_and_short_ones_are_corrupt() {
        let layout = Layout {
            fourcc: *b"NV12",
            width: 4,
            height: 2,
            stride: 6,
            sizeimage: 18,
            format: PixelFormat::Nv12 { full_range: false },
        };
        // Y rows then one UV row, each padded to 6 bytes; the last row unpadded.
        let buf = [1, 2, 3, 4, 0, 0, 5, 6, 7, 8, 0, 0, 9, 10, 11, 12];
        let mut out = Vec::new();
        layout.copy(&buf, &mut out).unwrap();
        assert_eq!(out, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let e = layout.copy(&buf[..15], &mut out).unwrap_err();
        assert_eq!(e.to_string(), "the buffer holds 15 bytes but a 4x2 NV12 frame needs 16");

        let mjpg = Layout { fourcc: *b"MJPG", stride: 4, format: PixelFormat::Mjpeg, ..layout };
        assert!(mjpg.copy(&[], &mut out).unwrap_err().to_string().contains("empty"));
        assert!(mjpg.copy(&[0, 0, 0xFF, 0xD9], &mut out).unwrap_err().to_string().contains("SOI"));
        assert!(mjpg.copy(&[0xFF, 0xD8, 0xFF, 0xDB, 0], &mut out).unwrap_err().to_string().contains("EOI"));
        mjpg.copy(&[0xFF, 0xD8, 1, 0xFF, 0xD9, 0, 0], &mut out).unwrap();
        assert_eq!(out.len(), 7);
    }

    fn test_image(w: usize, h: usize) -> Vec<u8> {
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                rgb.extend([(x * 255 / w) as u8, (y * 255 / h) as u8, (40 + x + 2 * y) as u8]);
            }
        }
        rgb
    }

    fn encode(rgb: &[u8], w: usize, h: usize) -> Vec<u8> {
        let mut jpeg = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut jpeg, 85);
        enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_1);
        enc.encode(rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb).unwrap();
        jpeg
    }

    /// The JPEG without its DHT segments, as many MJPEG cameras send it.
    fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut i = 2;
        loop {
            let marker = jpeg[i + 1];
            let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
            if marker == 0xDA {
                out.extend_from_slice(&jpeg[i..]);
                return out;
            }
            if marker != 0xC4 {
                out.extend_from_slice(&jpeg[i..i + 2 + len]);
            }
            i += 2 + len;
        }
    }

    #[test]
    fn standard_tables_are_well_formed() {
        // Each table's values number the sum of its code counts.
        let sum = |c: &[u8; 16]| c.iter().map(|&v| usize::from(v)).sum::<usize>();
        assert_eq!(sum(&DC_LUMA_COUNTS), DC_VALUES.len());
        assert_eq!(sum(&DC_CHROMA_COUNTS), DC_VALUES.len());
        assert_eq!(sum(&AC_LUMA_COUNTS), AC_LUMA_VALUES.len());
        assert_eq!(sum(&AC_CHROMA_COUNTS), AC_CHROMA_VALUES.len());
        assert_eq!(&STANDARD_DHT[..4], &[0xFF, 0xC4, 0x01, 0xA2]);
    }

    #[test]
    fn mjpeg_without_huffman_tables_decodes_like_with_them() {
        let (w, h) = (64, 48);
        let jpeg = encode(&test_image(w, h), w, h);
        let bare = strip_dht(&jpeg);
        assert!(bare.len() < jpeg.len());
        assert_eq!(first_scan(&jpeg).map(|s| s.1), Some(true));
        assert_eq!(first_scan(&bare).map(|s| s.1), Some(false));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        decode_mjpeg(&jpeg, w, h, &mut a).unwrap();
        decode_mjpeg(&bare, w, h, &mut b).unwrap();
        assert_eq!(a.len(), w * h * 3);
        assert_eq!(a, b);
        // The decoded image is close to what was encoded.
        let rgb = test_image(w, h);
        let mean_err = a.iter().zip(&rgb).map(|(&x, &y)| f64::from(x.abs_diff(y))).sum::<f64>() / a.len() as f64;
        assert!(mean_err < 4.0, "mean error {mean_err}");
        // The output buffer is reused.
        let cap = b.capacity();
        let ptr = b.as_ptr();
        decode_mjpeg(&bare, w, h, &mut b).unwrap();
        assert_eq!((b.capacity(), b.as_ptr()), (cap, ptr));
    }

    #[test]
    fn mjpeg_of_the_wrong_size_is_a_size_error() {
        let jpeg = encode(&test_image(32, 16), 32, 16);
        let e = decode_mjpeg(&jpeg, 64, 48, &mut Vec::new()).unwrap_err();
        assert_eq!(e.to_string(), "MJPEG frame is 32x16, expected 64x48");
    }

    #[test]
    fn garbage_and_truncated_mjpeg_are_errors_not_panics() {
        let (w, h) = (64, 48);
        let jpeg = encode(&test_image(w, h), w, h);
        let bare = strip_dht(&jpeg);
        let mut out = Vec::new();
        for data in [&jpeg, &bare] {
            // Cut before the scan data starts: an error.
            let (sos, _) = first_scan(data).unwrap();
            for n in (0..sos + 4).step_by(7) {
                let e = decode_mjpeg(&data[..n], w, h, &mut out);
                assert!(matches!(e, Err(PixelError::Jpeg { .. })), "{n} bytes: {e:?}");
            }
            // Truncated inside the scan: an error or a (damaged) image, never a panic.
            for n in (data.len() / 2..data.len()).step_by(97) {
                let _ = decode_mjpeg(&data[..n], w, h, &mut out);
            }
        }
        let e = decode_mjpeg(b"not a jpeg at all", w, h, &mut out).unwrap_err();
        assert!(e.to_string().starts_with("MJPEG frame cannot be decoded: "), "{e}");
        // Flipped bytes throughout.
        let mut state = 0x2545_f491_u32;
        for _ in 0..200 {
            let mut bad = bare.clone();
            for _ in 0..8 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let at = state as usize % bad.len();
                bad[at] ^= (state >> 24) as u8 | 1;
            }
            let _ = decode_mjpeg(&bad, w, h, &mut out);
        }
    }

    /// The `mjpeg` fuzz target's crash, minimised (416 bytes): 64x72, components sampled 2x1,
    /// 1x1 and 4x4, one scan of component 2.
    const ZUNE_IDCT_PANIC: &[&str] = &[
        "ffd8ffe100104a46494600010100000100010000ffdb004300281c1e28808c8aa0b4e6c3a0aada030202030202030303",
        "0700000004050805050404050a070700000001060c0a0c0c0b1610111314150f171816141812141514ffdb0043010304",
        "0405040509050509140d0000141414141414141414141414141414141414141414141414141414141414141414141414",
        "1414141414141474141414141414ffc00011080048004003012100021101034401ffc4001f0000010501010101010100",
        "000000000000000102030405060708010a0bffc400b5100002010303020403050504040000017d010205000411051221",
        "31410613516107227114328191a1082342b1c11552d17a2433627259208866bd29000025262728292a343536393a4344",
        "45464748494a535455565758595a636465666768696a73ffff6600000000000000ff0302040307227114318191a10823",
        "42b1c1d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5faffc4001f68696a00000304051ee2e3e4e5e6e7e8e9eaf17e",
        "f2f3f4f5f6f7f8f9faffda0008010200000002e7a28a28a28a0204080a100a10",
    ];

    #[test]
    fn mjpeg_with_chroma_sampled_finer_than_luma_is_refused_before_the_decoder() {
        // zune-jpeg 0.5.15 panics on it (an index past its IDCT buffer), and a deploy build
        // aborts on a panic, so such frames are refused before the decoder sees them.
        let hex = ZUNE_IDCT_PANIC.concat();
        let bad: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        let (w, h) = (64, 72);
        let e = decode_mjpeg(&bad, w, h, &mut Vec::new()).unwrap_err().to_string();
        assert_eq!(
            e,
            "MJPEG frame cannot be decoded: component 3 is sampled 4x4, more finely than the first (luma) \
             component's 2x1; cameras do not send such frames and the decoder cannot take them"
        );
        // The canary: zune-jpeg itself still panics on it (once it does not, the check can go).
        let zune = std::panic::catch_unwind(|| crate::capture::mjpeg::decode_jpeg(&bad, w, h, &mut Vec::new()));
        assert!(zune.is_err(), "zune-jpeg no longer panics here: {zune:?}");
        // Frames as cameras send them still decode: 4:4:4, 4:2:2, 4:2:0 and 4:4:0 luma.
        for luma in [
            jpeg_encoder::SamplingFactor::F_1_1,
            jpeg_encoder::SamplingFactor::F_2_1,
            jpeg_encoder::SamplingFactor::F_2_2,
            jpeg_encoder::SamplingFactor::F_1_2,
        ] {
            let mut jpeg = Vec::new();
            let mut enc = jpeg_encoder::Encoder::new(&mut jpeg, 85);
            enc.set_sampling_factor(luma);
            enc.encode(&test_image(64, 48), 64, 48, jpeg_encoder::ColorType::Rgb).unwrap();
            decode_mjpeg(&jpeg, 64, 48, &mut Vec::new()).unwrap();
        }
    }

    fn open_err(device: &str) -> String {
        let req = CameraRequest { device: device.into(), width: 640, height: 480, fps: 30.0 };
        match open(&req) {
            Ok(c) => panic!("{device} opened as {}", c.describe()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn opening_a_missing_camera_names_the_available_ones() {
        let e = open_err("/dev/video-none-such");
        assert!(e.starts_with("camera `/dev/video-none-such` does not exist; "), "{e}");
        let ids = ids();
        if ids.is_empty() {
            assert!(e.ends_with("no cameras found on this machine"), "{e}");
        } else {
            assert!(e.ends_with(&format!("available: {}", ids.join(", "))), "{e}");
        }
        // An index names /dev/videoN; the message keeps what was asked for.
        let e = open_err("97");
        assert!(e.starts_with("camera `97` does not exist; "), "{e}");
    }

    #[test]
    fn opening_something_that_is_not_a_camera_says_so() {
        let e = open_err("/dev/null");
        assert!(e.starts_with("/dev/null is not a video capture device (it does not answer V4L2 queries: "), "{e}");
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().display().to_string();
        let e = open_err(&path);
        assert!(e.starts_with(&format!("{path} is not a video capture device (it is not a device node)")), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = open_err(&dir.path().display().to_string());
        assert!(e.contains("is not a video capture device (it is a directory)"), "{e}");
    }

    #[test]
    fn listing_finds_no_camera_without_one() {
        // Every listed node is a capture device with an id under /dev.
        for d in list() {
            assert_eq!(d.kind, "camera");
            assert!(d.id.starts_with("/dev/video"), "{d:?}");
        }
    }

    #[test]
    #[ignore = "needs a real V4L2 camera: run with `cargo test --workspace -- --ignored camera microphone`"]
    fn camera_real_device_streams_and_converts() {
        use crate::capture::pixels::{Scratch, to_rgb};
        let req = CameraRequest { device: "/dev/video0".into(), width: 640, height: 480, fps: 30.0 };
        let mut cam = open(&req).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{}", cam.describe());
        let (w, h) = cam.size();
        let mut frame = Frame { data: Vec::with_capacity(cam.max_frame_bytes()), ..Frame::default() };
        let mut rgb = vec![0.0; 3 * w * h];
        let mut scratch = Scratch::default();
        let mut last = None;
        for _ in 0..30 {
            assert!(cam.next_frame(&mut frame).unwrap());
            assert_eq!((frame.width, frame.height), (w, h));
            to_rgb(frame.format, &frame.data, w, h, &mut rgb, &mut scratch).unwrap();
            if let Some((seq, ts)) = last {
                assert!(frame.sequence > seq && frame.timestamp >= ts);
            }
            last = Some((frame.sequence, frame.timestamp));
        }
        let stats = cam.stats();
        eprintln!("{stats:?}");
        assert_eq!(stats.delivered, 30);
        let mean = rgb.iter().sum::<f32>() / rgb.len() as f32;
        assert!(mean.is_finite() && (0.0..=1.0).contains(&mean));
    }
}
