//! YUV4MPEG2 (`.y4m`) clip reader, plus a small 4:2:0 encoder for tests and fixtures.
//!
//! # Accepted files
//!
//! A header line `YUV4MPEG2 W<w> H<h> F<num>:<den> [I<i>] [A<a>] [C<cs>] [X<..>]...\n`
//! (at most [`MAX_HEADER_BYTES`] bytes), then frames, each `FRAME[ <params>]\n` followed by the
//! planes Y, Cb, Cr (8 bits per sample, row-major, no padding).
//!
//! * `W`, `H`: 1 to [`MAX_DIMENSION`]; `F`: both parts non-zero. All three are required.
//! * `I`: `p` (progressive) or `?` (unknown, read as progressive); interlaced or mixed video is
//!   refused. `A` (pixel aspect) is ignored, as are unknown tags and unknown `X` extensions.
//! * `C`: `420jpeg`, `420paldv`, `420mpeg2`, `420` (4:2:0), `422`, `444`, `mono` (luma plane
//!   only); absent means `420jpeg`. High bit depth (`420p10`, `mono16`, ...) and other layouts
//!   are refused. Chroma planes are `ceil(W/sx) x ceil(H/sy)` for subsampling factors `sx, sy`.
//! * `XCOLORRANGE=FULL` selects full range; `XCOLORRANGE=LIMITED` or no tag means limited
//!   (studio) range.
//!
//! # Conversion to RGB
//!
//! Chroma is upsampled by nearest neighbour: pixel `(x, y)` uses chroma sample
//! `(x / sx, y / sy)` (integer division), whatever the chroma siting of the 4:2:0 variant.
//! With `Y, Cb, Cr` the 8-bit samples:
//!
//! * limited range: `y = (Y - 16) / 219`, `u = (Cb - 128) / 224`, `v = (Cr - 128) / 224`;
//! * full range: `y = Y / 255`, `u = (Cb - 128) / 255`, `v = (Cr - 128) / 255`;
//!
//! then BT.601 (`Kr = 0.299`, `Kb = 0.114`, `Kg = 0.587`):
//!
//! * `R = y + 1.402 v`
//! * `G = y - (0.202008 / 0.587) u - (0.419198 / 0.587) v` (≈ `0.344136 u`, `0.714136 v`)
//! * `B = y + 1.772 u`
//!
//! each clamped to `[0, 1]`. Monochrome frames give `R = G = B = clamp(y)`.

use std::borrow::Cow;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use thiserror::Error;

// BT.601 YCbCr -> RGB coefficients (see the module documentation).
use crate::capture::pixels::{B_U, R_V};

/// Longest accepted header line, newline included.
pub const MAX_HEADER_BYTES: usize = 4096;
/// Largest accepted width or height in pixels.
pub const MAX_DIMENSION: usize = 16384;

const MAGIC: &[u8] = b"YUV4MPEG2 ";
const FRAME_MAGIC: &[u8] = b"FRAME";
const MAX_FRAME_HEADER_BYTES: usize = 4096;
const CONVERT_HINT: &str = "convert it with `ffmpeg -i in.mp4 -pix_fmt yuv420p -f yuv4mpegpipe out.y4m`";

/// Why a Y4M clip could not be read. Each message names the file.
#[derive(Debug, Error)]
pub enum Y4mError {
    #[error("{path}: cannot read the video file: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: the video file is empty")]
    Empty { path: String },
    #[error("{path}: not a YUV4MPEG2 video (it does not start with `YUV4MPEG2 `); {CONVERT_HINT}")]
    NotY4m { path: String },
    #[error("{path}: the YUV4MPEG2 header line has no terminating newline (truncated file?)")]
    HeaderUnterminated { path: String },
    #[error("{path}: the YUV4MPEG2 header line is longer than {MAX_HEADER_BYTES} bytes")]
    HeaderTooLong { path: String },
    #[error("{path}: the YUV4MPEG2 header has no `{tag}` tag (W, H and F are required)")]
    MissingTag { path: String, tag: char },
    #[error("{path}: header tag `{token}` is invalid: {reason}")]
    InvalidTag { path: String, token: String, reason: &'static str },
    #[error("{path}: {what} {value} is out of range (1 to {MAX_DIMENSION} pixels)")]
    DimensionOutOfRange { path: String, what: &'static str, value: usize },
    #[error("{path}: a {width}x{height} frame is too large for this machine")]
    FrameTooLarge { path: String, width: usize, height: usize },
    #[error(
        "{path}: colour space `C{found}` is not supported (supported: 8-bit C420jpeg, C420paldv, C420mpeg2, C420, C422, C444, Cmono); {CONVERT_HINT}"
    )]
    UnsupportedColorspace { path: String, found: String },
    #[error(
        "{path}: interlaced video (`I{mode}`) is not supported, only progressive; deinterlace it, e.g. `ffmpeg -i in.y4m -vf yadif out.y4m`"
    )]
    Interlaced { path: String, mode: String },
    #[error(
        "{path}: expected the `FRAME` marker of frame {index} at byte {offset} but found other data (header W/H/C do not match the data, or the file is corrupt)"
    )]
    MissingFrameMarker { path: String, index: usize, offset: usize },
    #[error(
        "{path}: the `FRAME` line of frame {index} at byte {offset} is malformed or truncated (expected `FRAME` then optional parameters and a newline)"
    )]
    BadFrameHeader { path: String, index: usize, offset: usize },
    #[error(
        "{path}: frame {index} is truncated: it needs {need} bytes of pixels but only {have} remain (incomplete copy?)"
    )]
    TruncatedFrame { path: String, index: usize, need: usize, have: usize },
    #[error("{path}: the video has no frames")]
    NoFrames { path: String },
    #[error("{path}: frame {index} does not exist: the clip has {frames} frames")]
    FrameOutOfRange { path: String, index: usize, frames: usize },
    #[error(
        "{path}: cannot read frame {index} ({len} bytes at byte {offset}): {source}; the file shrank or changed after it was opened (do not modify a clip while it is in use)"
    )]
    FrameRead {
        path: String,
        index: usize,
        offset: usize,
        len: usize,
        #[source]
        source: io::Error,
    },
}

/// Pixel layout of a clip (the `C` header tag). All are 8 bits per sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colorspace {
    /// 4:2:0, JPEG/MPEG-1 chroma siting (the default).
    C420Jpeg,
    /// 4:2:0, PAL DV chroma siting.
    C420Paldv,
    /// 4:2:0, MPEG-2 chroma siting.
    C420Mpeg2,
    /// 4:2:0, siting unspecified.
    C420,
    /// 4:2:2: chroma halved horizontally.
    C422,
    /// 4:4:4: full-resolution chroma.
    C444,
    /// Luma plane only.
    Mono,
}

impl Colorspace {
    /// The value of the `C` tag, e.g. `420jpeg`.
    pub fn name(self) -> &'static str {
        match self {
            Colorspace::C420Jpeg => "420jpeg",
            Colorspace::C420Paldv => "420paldv",
            Colorspace::C420Mpeg2 => "420mpeg2",
            Colorspace::C420 => "420",
            Colorspace::C422 => "422",
            Colorspace::C444 => "444",
            Colorspace::Mono => "mono",
        }
    }

    fn parse(value: &str) -> Option<Colorspace> {
        Some(match value {
            "420jpeg" => Colorspace::C420Jpeg,
            "420paldv" => Colorspace::C420Paldv,
            "420mpeg2" => Colorspace::C420Mpeg2,
            "420" => Colorspace::C420,
            "422" => Colorspace::C422,
            "444" => Colorspace::C444,
            "mono" => Colorspace::Mono,
            _ => return None,
        })
    }

    /// log2 of the horizontal and vertical chroma subsampling; `None` without chroma planes.
    pub(crate) fn chroma_shift(self) -> Option<(u32, u32)> {
        match self {
            Colorspace::C420Jpeg | Colorspace::C420Paldv | Colorspace::C420Mpeg2 | Colorspace::C420 => Some((1, 1)),
            Colorspace::C422 => Some((1, 0)),
            Colorspace::C444 => Some((0, 0)),
            Colorspace::Mono => None,
        }
    }
}

impl fmt::Display for Colorspace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "C{}", self.name())
    }
}

/// A decoded Y4M clip. Frames stay in their planar YUV form until asked for.
#[derive(Clone)]
pub struct Y4mVideo {
    pub width: usize,
    pub height: usize,
    /// Frame rate as `(numerator, denominator)` frames per second; both non-zero.
    pub fps: (u32, u32),
    pub colorspace: Colorspace,
    /// True for `XCOLORRANGE=FULL`, false for limited (studio) range.
    pub full_range: bool,
    /// The file or name the clip was read from, for messages.
    origin: String,
    /// The whole file, or the open file; frames are located by `frame_offsets`.
    data: ClipBytes,
    /// Byte offset in `data` of each frame's first luma sample.
    frame_offsets: Vec<usize>,
    /// Bytes of one frame's planes.
    frame_len: usize,
}

/// Where a clip's bytes live: read into memory, or left in the open file and read frame by
/// frame with positioned reads, so that only the frames actually used are ever in memory.
///
/// The file is read, not memory-mapped: a mapped file that shrinks under us (another process
/// truncating it) kills the process with `SIGBUS`, where a read gives an error to report.
#[derive(Clone)]
enum ClipBytes {
    Owned(Vec<u8>),
    File(Arc<fs::File>),
}

/// Bytes of a clip being parsed, read piecewise.
trait Bytes {
    /// Length in bytes.
    fn size(&self) -> usize;
    /// The bytes from `pos` up to `n` of them (fewer at the end); `pos <= size()`.
    fn window(&self, pos: usize, n: usize) -> io::Result<Cow<'_, [u8]>>;
}

impl Bytes for [u8] {
    fn size(&self) -> usize {
        self.len()
    }
    fn window(&self, pos: usize, n: usize) -> io::Result<Cow<'_, [u8]>> {
        Ok(Cow::Borrowed(&self[pos..pos.saturating_add(n).min(self.len())]))
    }
}

/// A file of `len` bytes (its length when opened).
struct FileBytes<'a> {
    file: &'a fs::File,
    len: usize,
}

impl Bytes for FileBytes<'_> {
    fn size(&self) -> usize {
        self.len
    }
    fn window(&self, pos: usize, n: usize) -> io::Result<Cow<'_, [u8]>> {
        let mut buf = vec![0; n.min(self.len - pos)];
        read_exact_at(self.file, &mut buf, pos as u64)?;
        Ok(Cow::Owned(buf))
    }
}

/// Fills `buf` from byte `offset` of `file` without moving its cursor (shared handles read
/// concurrently); a file shorter than that is an `UnexpectedEof` error.
#[cfg(unix)]
fn read_exact_at(file: &fs::File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &fs::File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "failed to fill whole buffer")),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl fmt::Debug for Y4mVideo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Y4mVideo")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("fps", &self.fps)
            .field("colorspace", &self.colorspace)
            .field("full_range", &self.full_range)
            .field("frames", &self.frame_offsets.len())
            .finish()
    }
}

impl Y4mVideo {
    /// Number of frames (at least 1).
    pub fn frame_count(&self) -> usize {
        self.frame_offsets.len()
    }

    /// Clip duration in seconds: `frame_count * den / num`.
    pub fn duration_s(&self) -> f64 {
        self.frame_count() as f64 * f64::from(self.fps.1) / f64::from(self.fps.0)
    }

    /// Bytes of one frame's planes.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Raw planes (Y, then Cb and Cr unless mono) of frame `i`: borrowed from memory, or read
    /// from the file for a clip opened with [`open_y4m`]. Errors past the last frame, and when
    /// the file no longer holds the frame (it shrank after it was opened).
    pub fn frame_raw(&self, i: usize) -> Result<Cow<'_, [u8]>, Y4mError> {
        match &self.data {
            // Parsing checked that every frame lies inside the data.
            ClipBytes::Owned(v) => {
                let start = self.frame_offset(i)?;
                Ok(Cow::Borrowed(&v[start..start + self.frame_len]))
            }
            ClipBytes::File(_) => {
                let mut buf = Vec::new();
                self.frame_raw_into(i, &mut buf)?;
                Ok(Cow::Owned(buf))
            }
        }
    }

    /// Byte offset of frame `i`'s planes.
    fn frame_offset(&self, i: usize) -> Result<usize, Y4mError> {
        self.frame_offsets.get(i).copied().ok_or_else(|| Y4mError::FrameOutOfRange {
            path: self.origin.clone(),
            index: i,
            frames: self.frame_count(),
        })
    }

    /// Frame `i` as planar CHW RGB in `[0, 1]` (length `3 * height * width`), converted as the
    /// module documentation describes. Errors as [`Y4mVideo::frame_raw`] does.
    pub fn frame_rgb(&self, i: usize) -> Result<Vec<f32>, Y4mError> {
        let mut out = vec![0.0f32; 3 * self.width * self.height];
        self.frame_rgb_into(i, &mut out)?;
        Ok(out)
    }

    /// [`Y4mVideo::frame_rgb`] into `out` (length `3 * height * width`).
    pub fn frame_rgb_into(&self, i: usize, out: &mut [f32]) -> Result<(), Y4mError> {
        let raw = self.frame_raw(i)?;
        crate::capture::pixels::planar_to_rgb(&raw, self.width, self.height, self.colorspace, self.full_range, out);
        Ok(())
    }

    /// Copies frame `i`'s raw planes into `out` (resized to [`Y4mVideo::frame_len`]), without
    /// allocating once `out` has that capacity.
    pub fn frame_raw_into(&self, i: usize, out: &mut Vec<u8>) -> Result<(), Y4mError> {
        let start = self.frame_offset(i)?;
        out.resize(self.frame_len, 0);
        match &self.data {
            ClipBytes::Owned(v) => out.copy_from_slice(&v[start..start + self.frame_len]),
            ClipBytes::File(file) => read_exact_at(file, out, start as u64).map_err(|source| Y4mError::FrameRead {
                path: self.origin.clone(),
                index: i,
                offset: start,
                len: self.frame_len,
                source,
            })?,
        }
        Ok(())
    }

    /// The file or name the clip was read from.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

pub(crate) fn chroma_dim(n: usize, shift: u32) -> usize {
    (n + (1 << shift) - 1) >> shift
}

/// Reads and parses a Y4M file; see the module documentation for what is accepted.
pub fn read_y4m(path: &Path) -> Result<Y4mVideo, Y4mError> {
    let origin = path.display().to_string();
    let data = fs::read(path).map_err(|source| Y4mError::Io { path: origin.clone(), source })?;
    let layout = parse_layout(data.as_slice(), &origin)?;
    Ok(layout.into_video(origin, ClipBytes::Owned(data)))
}

/// Like [`read_y4m`], but keeps the file open instead of reading it: parsing reads only the
/// header and the frame markers, and each frame is read when it is asked for. The low-memory
/// way to open a long clip. A file that shrinks afterwards gives [`Y4mError::FrameRead`] for
/// the frames it lost.
pub fn open_y4m(path: &Path) -> Result<Y4mVideo, Y4mError> {
    let origin = path.display().to_string();
    let io = |source| Y4mError::Io { path: origin.clone(), source };
    let file = fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let len = usize::try_from(len).map_err(|_| io(io::Error::other("the file is too large for this machine")))?;
    let layout = parse_layout(&FileBytes { file: &file, len }, &origin)?;
    Ok(layout.into_video(origin, ClipBytes::File(Arc::new(file))))
}

/// Parses a Y4M clip held in memory; `origin` names it in error messages.
pub fn parse_y4m(bytes: &[u8], origin: &str) -> Result<Y4mVideo, Y4mError> {
    let layout = parse_layout(bytes, origin)?;
    Ok(layout.into_video(origin.to_string(), ClipBytes::Owned(bytes.to_vec())))
}

struct Layout {
    width: usize,
    height: usize,
    fps: (u32, u32),
    colorspace: Colorspace,
    full_range: bool,
    frame_offsets: Vec<usize>,
    frame_len: usize,
}

impl Layout {
    fn into_video(self, origin: String, data: ClipBytes) -> Y4mVideo {
        Y4mVideo {
            width: self.width,
            height: self.height,
            fps: self.fps,
            colorspace: self.colorspace,
            full_range: self.full_range,
            origin,
            data,
            frame_offsets: self.frame_offsets,
            frame_len: self.frame_len,
        }
    }
}

fn parse_layout(src: &(impl Bytes + ?Sized), origin: &str) -> Result<Layout, Y4mError> {
    let path = || origin.to_string();
    let io = |source| Y4mError::Io { path: path(), source };
    let len = src.size();
    if len == 0 {
        return Err(Y4mError::Empty { path: path() });
    }
    let bytes = src.window(0, MAX_HEADER_BYTES).map_err(io)?;
    if !bytes.starts_with(MAGIC) {
        return Err(Y4mError::NotY4m { path: path() });
    }
    let Some(newline) = bytes.iter().position(|&b| b == b'\n') else {
        return Err(if len >= MAX_HEADER_BYTES {
            Y4mError::HeaderTooLong { path: path() }
        } else {
            Y4mError::HeaderUnterminated { path: path() }
        });
    };
    let header = String::from_utf8_lossy(bytes.get(MAGIC.len()..newline).unwrap_or_default());

    let (mut width, mut height, mut fps) = (None, None, None);
    let mut colorspace = Colorspace::C420Jpeg;
    let mut full_range = false;
    for token in header.split(' ').filter(|t| !t.is_empty()) {
        let mut chars = token.chars();
        let Some(tag) = chars.next() else { continue };
        let value = chars.as_str();
        let invalid = |reason| Y4mError::InvalidTag { path: path(), token: token.to_string(), reason };
        match tag {
            'W' | 'H' => {
                let what = if tag == 'W' { "width" } else { "height" };
                let n: usize = value.parse().map_err(|_| invalid("not a whole number"))?;
                if n == 0 || n > MAX_DIMENSION {
                    return Err(Y4mError::DimensionOutOfRange { path: path(), what, value: n });
                }
                if tag == 'W' {
                    width = Some(n);
                } else {
                    height = Some(n);
                }
            }
            'F' => {
                let (num, den) =
                    value.split_once(':').ok_or_else(|| invalid("the frame rate must be `F<num>:<den>`"))?;
                let num: u32 =
                    num.parse().map_err(|_| invalid("the frame rate must be `F<num>:<den>` with whole numbers"))?;
                let den: u32 =
                    den.parse().map_err(|_| invalid("the frame rate must be `F<num>:<den>` with whole numbers"))?;
                if num == 0 || den == 0 {
                    return Err(invalid("the frame rate numerator and denominator must be non-zero"));
                }
                fps = Some((num, den));
            }
            // `Ip` (progressive) and `I?` (unknown, read as progressive) fall through below.
            'I' if value != "p" && value != "?" => {
                return Err(Y4mError::Interlaced { path: path(), mode: value.to_string() });
            }
            'C' => {
                colorspace = Colorspace::parse(value)
                    .ok_or_else(|| Y4mError::UnsupportedColorspace { path: path(), found: value.to_string() })?;
            }
            'X' => {
                if let Some(range) = value.strip_prefix("COLORRANGE=") {
                    full_range = match range {
                        "FULL" => true,
                        "LIMITED" => false,
                        _ => return Err(invalid("XCOLORRANGE must be FULL or LIMITED")),
                    };
                }
            }
            // Progressive `I`, pixel aspect ratio and unknown tags do not affect decoding.
            _ => {}
        }
    }
    let width = width.ok_or(Y4mError::MissingTag { path: path(), tag: 'W' })?;
    let height = height.ok_or(Y4mError::MissingTag { path: path(), tag: 'H' })?;
    let fps = fps.ok_or(Y4mError::MissingTag { path: path(), tag: 'F' })?;

    let too_large = || Y4mError::FrameTooLarge { path: path(), width, height };
    let luma_len = width.checked_mul(height).ok_or_else(too_large)?;
    let chroma_len = match colorspace.chroma_shift() {
        Some((sx, sy)) => chroma_dim(width, sx).checked_mul(chroma_dim(height, sy)).and_then(|c| c.checked_mul(2)),
        None => Some(0),
    };
    let frame_len = chroma_len.and_then(|c| c.checked_add(luma_len)).ok_or_else(too_large)?;
    // `frame_rgb` allocates 3 f32 per pixel.
    luma_len.checked_mul(3 * std::mem::size_of::<f32>()).ok_or_else(too_large)?;

    let mut frame_offsets = Vec::new();
    let mut pos = newline + 1;
    while pos < len {
        let index = frame_offsets.len();
        let bad_header = || Y4mError::BadFrameHeader { path: path(), index, offset: pos };
        // Most frame lines are `FRAME\n`: look at a few bytes first, at the longest line only
        // when it has parameters.
        let mut rest = src.window(pos, 64).map_err(io)?;
        if rest.starts_with(b"FRAME ") && !rest.contains(&b'\n') {
            rest = src.window(pos, FRAME_MAGIC.len() + MAX_FRAME_HEADER_BYTES).map_err(io)?;
        }
        let Some(after) = rest.strip_prefix(FRAME_MAGIC) else {
            return Err(if FRAME_MAGIC.starts_with(&rest) {
                bad_header()
            } else {
                Y4mError::MissingFrameMarker { path: path(), index, offset: pos }
            });
        };
        let line_len = match after.first() {
            Some(b'\n') => 1,
            Some(b' ') => {
                after.iter().take(MAX_FRAME_HEADER_BYTES).position(|&b| b == b'\n').ok_or_else(bad_header)? + 1
            }
            _ => return Err(bad_header()),
        };
        let start = pos + FRAME_MAGIC.len() + line_len;
        let have = len - start;
        if have < frame_len {
            return Err(Y4mError::TruncatedFrame { path: path(), index, need: frame_len, have });
        }
        frame_offsets.push(start);
        pos = start + frame_len;
    }
    if frame_offsets.is_empty() {
        return Err(Y4mError::NoFrames { path: path() });
    }
    Ok(Layout { width, height, fps, colorspace, full_range, frame_offsets, frame_len })
}

/// Encodes interleaved RGB8 (HWC) frames as a limited-range BT.601 `C420jpeg` Y4M stream.
///
/// Per pixel (`r, g, b` in 0..=255): `Y' = 0.299 r + 0.587 g + 0.114 b`,
/// `Pb = (b - Y') / 1.772`, `Pr = (r - Y') / 1.402`; then `Y = round(16 + 219 Y'/255)` and
/// `Cb = round(128 + 224 mean(Pb)/255)`, `Cr = round(128 + 224 mean(Pr)/255)` with the means
/// over each 2x2 block. `width` and `height` must be even and at most [`MAX_DIMENSION`], both
/// parts of `fps` non-zero, and every frame `3 * width * height` bytes long; otherwise the
/// error kind is `InvalidInput`.
pub fn write_y4m_420<W: Write>(
    mut out: W,
    width: usize,
    height: usize,
    fps: (u32, u32),
    frames_rgb: &[Vec<u8>],
) -> io::Result<()> {
    let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
    if width == 0
        || height == 0
        || !width.is_multiple_of(2)
        || !height.is_multiple_of(2)
        || width > MAX_DIMENSION
        || height > MAX_DIMENSION
    {
        return Err(invalid(format!("y4m encoder: {width}x{height} must be even and between 2 and {MAX_DIMENSION}")));
    }
    if fps.0 == 0 || fps.1 == 0 {
        return Err(invalid(format!("y4m encoder: frame rate {}:{} must have non-zero parts", fps.0, fps.1)));
    }
    let n = width * height;
    if let Some((i, f)) = frames_rgb.iter().enumerate().find(|(_, f)| f.len() != 3 * n) {
        return Err(invalid(format!(
            "y4m encoder: frame {i} has {} bytes, expected {} ({width}x{height} RGB8)",
            f.len(),
            3 * n
        )));
    }
    writeln!(out, "YUV4MPEG2 W{width} H{height} F{}:{} Ip A1:1 C420jpeg XCOLORRANGE=LIMITED", fps.0, fps.1)?;
    let (cw, ch) = (width / 2, height / 2);
    let mut buf = vec![0u8; n + 2 * cw * ch];
    let mut pb = vec![0.0f32; n];
    let mut pr = vec![0.0f32; n];
    for frame in frames_rgb {
        let (luma, chroma) = buf.split_at_mut(n);
        for (i, px) in frame.chunks_exact(3).enumerate() {
            let (r, g, b) = (f32::from(px[0]), f32::from(px[1]), f32::from(px[2]));
            let y = 0.299 * r + 0.587 * g + 0.114 * b;
            luma[i] = quantize(16.0 + 219.0 * y / 255.0);
            pb[i] = (b - y) / B_U;
            pr[i] = (r - y) / R_V;
        }
        let (cb, cr) = chroma.split_at_mut(cw * ch);
        for cy in 0..ch {
            for cx in 0..cw {
                let i = 2 * cy * width + 2 * cx;
                let quad = [i, i + 1, i + width, i + width + 1];
                let mean = |p: &[f32]| quad.iter().map(|&k| p[k]).sum::<f32>() / 4.0;
                cb[cy * cw + cx] = quantize(128.0 + 224.0 * mean(&pb) / 255.0);
                cr[cy * cw + cx] = quantize(128.0 + 224.0 * mean(&pr) / 255.0);
            }
        }
        out.write_all(b"FRAME\n")?;
        out.write_all(&buf)?;
    }
    out.flush()
}

/// [`write_y4m_420`] into a new file at `path`.
pub fn write_y4m_420_file(
    path: &Path,
    width: usize,
    height: usize,
    fps: (u32, u32),
    frames_rgb: &[Vec<u8>],
) -> io::Result<()> {
    let file = fs::File::create(path)?;
    write_y4m_420(io::BufWriter::new(file), width, height, fps, frames_rgb)
}

fn quantize(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn solid(w: usize, h: usize, rgb: [u8; 3]) -> Vec<u8> {
        rgb.iter().copied().cycle().take(3 * w * h).collect()
    }

    fn encode(w: usize, h: usize, frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        write_y4m_420(&mut out, w, h, (25, 1), frames).unwrap();
        out
    }

    fn header_with(fields: &str, frame: &[u8]) -> Vec<u8> {
        let mut v = format!("YUV4MPEG2 {fields}\nFRAME\n").into_bytes();
        v.extend_from_slice(frame);
        v
    }

    #[test]
    fn solid_colours_round_trip() {
        for rgb in [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [12, 200, 99], [128, 128, 128]] {
            let bytes = encode(6, 4, &[solid(6, 4, rgb), solid(6, 4, rgb)]);
            let v = parse_y4m(&bytes, "mem").unwrap();
            assert_eq!((v.width, v.height, v.frame_count(), v.fps), (6, 4, 2, (25, 1)));
            assert_eq!(v.colorspace, Colorspace::C420Jpeg);
            assert!(!v.full_range);
            let f = v.frame_rgb(1).unwrap();
            assert_eq!(f.len(), 3 * 24);
            for c in 0..3 {
                let want = f32::from(rgb[c]) / 255.0;
                for &got in &f[c * 24..(c + 1) * 24] {
                    assert!((got - want).abs() <= 2.0 / 255.0, "{rgb:?} channel {c}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn duration_and_debug() {
        let bytes = encode(2, 2, &vec![solid(2, 2, [1, 2, 3]); 5]);
        let v = parse_y4m(&bytes, "mem").unwrap();
        assert!((v.duration_s() - 0.2).abs() < 1e-12);
        assert!(format!("{v:?}").contains("frames: 5"));
        assert_eq!(v.frame_raw(4).unwrap().len(), 6);
        assert_eq!(v.frame_len(), 6);
    }

    #[test]
    fn limited_and_full_range_extremes() {
        // Limited: Y=16 is black, Y=235 white; full: 0 and 255.
        let v = parse_y4m(&header_with("W2 H1 F1:1 C444", &[16, 235, 128, 128, 128, 128]), "m").unwrap();
        assert_eq!(v.frame_rgb(0).unwrap(), vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        let v =
            parse_y4m(&header_with("W2 H1 F1:1 C444 XCOLORRANGE=FULL", &[0, 255, 128, 128, 128, 128]), "m").unwrap();
        assert!(v.full_range);
        assert_eq!(v.frame_rgb(0).unwrap(), vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        // Out-of-range values are clamped.
        let v = parse_y4m(&header_with("W1 H1 F1:1 C444", &[255, 255, 0]), "m").unwrap();
        assert!(v.frame_rgb(0).unwrap().iter().all(|x| (0.0..=1.0).contains(x)));
    }

    #[test]
    fn bt601_red() {
        // Limited-range BT.601 red is Y=81, Cb=90, Cr=240.
        let v = parse_y4m(&header_with("W1 H1 F1:1 C444", &[81, 90, 240]), "m").unwrap();
        let f = v.frame_rgb(0).unwrap();
        assert!((f[0] - 1.0).abs() < 2.0 / 255.0 && f[1] < 2.0 / 255.0 && f[2] < 2.0 / 255.0, "{f:?}");
    }

    #[test]
    fn mono_422_and_odd_sizes() {
        let v = parse_y4m(&header_with("W3 H1 F30000:1001 Cmono", &[16, 126, 235]), "m").unwrap();
        let f = v.frame_rgb(0).unwrap();
        assert_eq!(&f[0..3], &f[3..6]);
        assert_eq!(&f[0..3], &f[6..9]);
        assert!((f[1] - 110.0 / 219.0).abs() < 1e-6);
        // 4:2:2, W=3: chroma planes are 2x1; the third pixel uses chroma sample 1.
        let v = parse_y4m(&header_with("W3 H1 F1:1 C422", &[128, 128, 128, 128, 255, 128, 128]), "m").unwrap();
        let f = v.frame_rgb(0).unwrap();
        assert!(f[8] > f[6] + 0.4, "blue of pixel 2 follows chroma sample 1: {f:?}");
        // 4:2:0, 3x3: chroma planes are 2x2.
        let mut frame = vec![128u8; 9 + 8];
        frame[9 + 3] = 255; // Cb at chroma (1,1) -> pixel (2,2)
        let v = parse_y4m(&header_with("W3 H3 F1:1 C420mpeg2", &frame), "m").unwrap();
        let f = v.frame_rgb(0).unwrap();
        assert!(f[18 + 8] > f[18] + 0.4);
    }

    #[test]
    fn header_defaults_and_ignored_tags() {
        let v = parse_y4m(&header_with("W2  H2 F25:1 I? A0:0 XYSCSS=420JPEG Zfoo XCOLORRANGE=LIMITED", &[0; 6]), "m")
            .unwrap();
        assert_eq!(v.colorspace, Colorspace::C420Jpeg);
        assert!(!v.full_range);
        let mut two = header_with("W2 H2 F25:1 C420paldv", &[0; 6]);
        two.extend_from_slice(b"FRAME Ixyz\n");
        two.extend_from_slice(&[0; 6]);
        assert_eq!(parse_y4m(&two, "m").unwrap().frame_count(), 2);
    }

    fn err(bytes: &[u8]) -> String {
        parse_y4m(bytes, "clip.y4m").unwrap_err().to_string()
    }

    #[test]
    fn header_errors() {
        assert!(err(b"").contains("empty"));
        assert!(err(b"RIFF....WAVE").contains("not a YUV4MPEG2"));
        assert!(err(b"YUV4MPEG2 W2 H2").contains("no terminating newline"));
        let mut long = b"YUV4MPEG2 ".to_vec();
        long.resize(5000, b'X');
        assert!(err(&long).contains("longer than 4096"));
        assert!(err(&header_with("H2 F1:1", &[0; 6])).contains("no `W` tag"));
        assert!(err(&header_with("W2 F1:1", &[0; 6])).contains("no `H` tag"));
        assert!(err(&header_with("W2 H2", &[0; 6])).contains("no `F` tag"));
        assert!(err(&header_with("W0 H2 F1:1", &[0; 6])).contains("width 0 is out of range"));
        assert!(err(&header_with("W2 H16385 F1:1", &[0; 6])).contains("height 16385"));
        assert!(err(&header_with("W2x H2 F1:1", &[0; 6])).contains("`W2x` is invalid"));
        assert!(err(&header_with("W2 H2 F25", &[0; 6])).contains("`F25`"));
        assert!(err(&header_with("W2 H2 F25:0", &[0; 6])).contains("non-zero"));
        assert!(err(&header_with("W2 H2 F1:1 XCOLORRANGE=WIDE", &[0; 6])).contains("FULL or LIMITED"));
        let e = err(&header_with("W2 H2 F1:1 C420p10", &[0; 12]));
        assert!(
            e.contains("`C420p10` is not supported") && e.contains("C420jpeg") && e.starts_with("clip.y4m: "),
            "{e}"
        );
        assert!(err(&header_with("W2 H2 F1:1 It", &[0; 6])).contains("only progressive"));
        assert!(err(b"YUV4MPEG2 W2 H2 F1:1\n").contains("no frames"));
    }

    #[test]
    fn frame_errors() {
        let good = encode(2, 2, &[solid(2, 2, [9, 9, 9])]);
        let mut trunc = good.clone();
        trunc.pop();
        let e = err(&trunc);
        assert!(e.contains("frame 0 is truncated") && e.contains("needs 6") && e.contains("only 5"), "{e}");
        let mut extra = good.clone();
        extra.extend_from_slice(b"garbage!");
        assert!(err(&extra).contains("`FRAME` marker of frame 1"));
        let mut partial = good.clone();
        partial.extend_from_slice(b"FRA");
        assert!(err(&partial).contains("frame 1"));
        let mut no_newline = good.clone();
        no_newline.extend_from_slice(b"FRAME params");
        assert!(err(&no_newline).contains("`FRAME` line of frame 1"));
        let mut glued = good;
        glued.extend_from_slice(b"FRAMEX\n");
        assert!(err(&glued).contains("malformed"));
    }

    #[test]
    fn every_error_is_one_line() {
        let cases: Vec<Vec<u8>> = vec![b"".to_vec(), b"x".to_vec(), header_with("W2 H2 F1:1 C411", &[])];
        for c in cases {
            assert!(!err(&c).contains('\n'));
        }
    }

    #[test]
    fn read_from_file_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.y4m");
        write_y4m_420_file(&p, 4, 2, (30, 1), &[solid(4, 2, [200, 10, 10])]).unwrap();
        assert_eq!(read_y4m(&p).unwrap().frame_count(), 1);
        let missing = dir.path().join("missing.y4m");
        let e = read_y4m(&missing).unwrap_err().to_string();
        assert!(e.contains("missing.y4m") && e.contains("cannot read"), "{e}");
    }

    #[test]
    fn encoder_rejects_bad_input() {
        let mut sink = Vec::new();
        assert!(write_y4m_420(&mut sink, 3, 2, (1, 1), &[]).is_err());
        assert!(write_y4m_420(&mut sink, 2, 2, (0, 1), &[]).is_err());
        assert!(write_y4m_420(&mut sink, 2, 2, (1, 1), &[vec![0; 11]]).is_err());
    }

    #[test]
    fn frame_out_of_range_is_an_error() {
        let v = parse_y4m(&encode(2, 2, &[solid(2, 2, [0, 0, 0])]), "m.y4m").unwrap();
        let e = v.frame_rgb(1).unwrap_err();
        assert!(matches!(e, Y4mError::FrameOutOfRange { index: 1, frames: 1, .. }), "{e}");
        assert_eq!(e.to_string(), "m.y4m: frame 1 does not exist: the clip has 1 frames");
        assert!(v.frame_raw(usize::MAX).is_err());
    }

    #[test]
    fn opened_file_reads_frames_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("clip.y4m");
        let frames: Vec<Vec<u8>> = (0..4).map(|k| solid(6, 4, [k * 60, 255 - k * 60, 30])).collect();
        write_y4m_420_file(&p, 6, 4, (25, 1), &frames).unwrap();
        let read = read_y4m(&p).unwrap();
        let opened = open_y4m(&p).unwrap();
        assert_eq!(opened.frame_count(), 4);
        for i in 0..4 {
            assert_eq!(opened.frame_raw(i).unwrap(), read.frame_raw(i).unwrap());
            assert_eq!(opened.frame_rgb(i).unwrap(), read.frame_rgb(i).unwrap());
        }
        // A clone shares the file.
        assert_eq!(opened.clone().frame_rgb(3).unwrap(), read.frame_rgb(3).unwrap());
        // Frame lines with parameters, longer than the first look.
        let mut bytes = std::fs::read(&p).unwrap();
        let at = bytes.windows(6).position(|w| w == b"FRAME\n").unwrap();
        let params = format!("FRAME X{}\n", "y".repeat(100));
        bytes.splice(at..at + 6, params.bytes());
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(open_y4m(&p).unwrap().frame_rgb(0).unwrap(), read.frame_rgb(0).unwrap());
        // Every error parsing a file gives is the one parsing the same bytes in memory gives.
        for cut in [0, 5, 60, at + 3, at + 50, bytes.len() - 1] {
            std::fs::write(&p, &bytes[..cut]).unwrap();
            let (a, b) = (open_y4m(&p).unwrap_err().to_string(), err(&bytes[..cut]));
            assert_eq!(a.replace(&p.display().to_string(), "clip.y4m"), b, "cut at {cut}");
        }
    }

    #[test]
    fn file_truncated_after_opening_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("shrinks.y4m");
        let frames: Vec<Vec<u8>> = (0..3).map(|k| solid(4, 2, [k * 80, 20, 200])).collect();
        write_y4m_420_file(&p, 4, 2, (25, 1), &frames).unwrap();
        let video = open_y4m(&p).unwrap();
        let len = std::fs::metadata(&p).unwrap().len();
        // Cut into the last frame (12 bytes each, `FRAME\n` before each).
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len - 5).unwrap();
        video.frame_rgb(0).unwrap();
        video.frame_rgb(1).unwrap();
        let e = video.frame_rgb(2).unwrap_err();
        assert!(matches!(e, Y4mError::FrameRead { index: 2, len: 12, .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("{}: cannot read frame 2 (12 bytes at byte ", p.display()))
                && msg.contains("the file shrank or changed after it was opened")
                && !msg.contains('\n'),
            "{msg}"
        );
        // Emptied: every frame is an error, none a crash.
        std::fs::File::create(&p).unwrap();
        for i in 0..3 {
            assert!(matches!(video.frame_raw(i), Err(Y4mError::FrameRead { .. })));
        }
    }

    fn check(bytes: &[u8]) {
        if let Ok(v) = parse_y4m(bytes, "fuzz") {
            assert!(v.frame_count() >= 1);
            for i in 0..v.frame_count() {
                let f = v.frame_rgb(i).unwrap();
                assert_eq!(f.len(), 3 * v.width * v.height);
                assert!(f.iter().all(|x| (0.0..=1.0).contains(x)));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            check(&bytes);
        }

        #[test]
        fn arbitrary_headers_never_panic(
            header in "YUV4MPEG2( [WHFICAX][0-9a-zA-Z:=?]{0,6}){0,8}\n",
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut bytes = header.into_bytes();
            bytes.extend_from_slice(b"FRAME\n");
            bytes.extend_from_slice(&body);
            check(&bytes);
        }

        #[test]
        fn every_layout_decodes(
            w in 1usize..7,
            h in 1usize..7,
            cs in 0usize..7,
            full in any::<bool>(),
            n in 1usize..4,
            seed in any::<u8>(),
        ) {
            let name = ["420jpeg", "420paldv", "420mpeg2", "420", "422", "444", "mono"][cs];
            let c = Colorspace::parse(name).unwrap();
            let chroma = c.chroma_shift().map_or(0, |(sx, sy)| 2 * chroma_dim(w, sx) * chroma_dim(h, sy));
            let range = if full { " XCOLORRANGE=FULL" } else { "" };
            let mut bytes = format!("YUV4MPEG2 W{w} H{h} F25:2 C{name}{range}\n").into_bytes();
            for k in 0..n {
                bytes.extend_from_slice(if k == 1 { b"FRAME Ip\n".as_slice() } else { b"FRAME\n" });
                bytes.extend((0..w * h + chroma).map(|i| (i as u8).wrapping_mul(seed).wrapping_add(k as u8)));
            }
            let v = parse_y4m(&bytes, "gen").unwrap();
            prop_assert_eq!((v.width, v.height, v.colorspace, v.full_range, v.frame_count()), (w, h, c, full, n));
            prop_assert!((v.duration_s() - n as f64 * 2.0 / 25.0).abs() < 1e-12);
            check(&bytes);
        }

        #[test]
        fn mutated_valid_file_never_panics(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let frames: Vec<Vec<u8>> = (0..3).map(|k| solid(4, 2, [k * 80, 255 - k * 80, 7])).collect();
            let mut bytes = encode(4, 2, &frames);
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
