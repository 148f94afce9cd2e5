//! Pixel formats that sources deliver, and their conversion to planar RGB in `[0, 1]`.
//!
//! Every YCbCr format converts exactly as Y4M clips do (see [`crate::capture::y4m`]): BT.601,
//! limited or full range, chroma upsampled by nearest neighbour (pixel `(x, y)` takes chroma
//! sample `(x / sx, y / sy)`). So a YUYV (4:2:2) frame made from a 4:2:0 clip by repeating
//! each chroma row gives exactly the RGB of the clip; NV12 is 4:2:0 with interleaved chroma.
//! MJPEG frames are decoded to full-range RGB by `zune-jpeg` (the `jpeg` feature, part of `camera`).

use thiserror::Error;

use crate::capture::y4m::{Colorspace, chroma_dim};

/// BT.601 YCbCr -> RGB coefficients.
pub(crate) const R_V: f32 = 1.402;
pub(crate) const G_U: f32 = (0.202_008_f64 / 0.587) as f32;
pub(crate) const G_V: f32 = (0.419_198_f64 / 0.587) as f32;
pub(crate) const B_U: f32 = 1.772;

/// How a frame's bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// Y4M planes: Y, then Cb and Cr subsampled as `colorspace` says (or Y only for mono).
    Planar { colorspace: Colorspace, full_range: bool },
    /// Packed 4:2:2 `Y0 Cb Y1 Cr` (V4L2 `YUYV`), `4 * ceil(width / 2)` bytes per row.
    Yuyv { full_range: bool },
    /// 4:2:0 with a Y plane then one interleaved `Cb Cr` plane (V4L2 `NV12`).
    Nv12 { full_range: bool },
    /// Luma only, 8 bits (V4L2 `GREY`).
    Grey { full_range: bool },
    /// Motion JPEG: one JPEG image per frame (V4L2 `MJPG`).
    Mjpeg,
}

impl Default for PixelFormat {
    fn default() -> Self {
        PixelFormat::Planar { colorspace: Colorspace::C420Jpeg, full_range: false }
    }
}

impl PixelFormat {
    /// Short name: `YUYV`, `MJPG`, `NV12`, `GREY`, or `Y4M C420jpeg`.
    pub fn name(&self) -> String {
        match self {
            PixelFormat::Planar { colorspace, .. } => format!("Y4M {colorspace}"),
            PixelFormat::Yuyv { .. } => "YUYV".into(),
            PixelFormat::Nv12 { .. } => "NV12".into(),
            PixelFormat::Grey { .. } => "GREY".into(),
            PixelFormat::Mjpeg => "MJPG".into(),
        }
    }

    /// Bytes of one uncompressed `width` x `height` frame; `None` for MJPEG (variable).
    pub fn frame_bytes(&self, width: usize, height: usize) -> Option<usize> {
        Some(match self {
            PixelFormat::Planar { colorspace, .. } => {
                let chroma =
                    colorspace.chroma_shift().map_or(0, |(sx, sy)| 2 * chroma_dim(width, sx) * chroma_dim(height, sy));
                width * height + chroma
            }
            PixelFormat::Yuyv { .. } => 4 * width.div_ceil(2) * height,
            PixelFormat::Nv12 { .. } => width * height + 2 * width.div_ceil(2) * height.div_ceil(2),
            PixelFormat::Grey { .. } => width * height,
            PixelFormat::Mjpeg => return None,
        })
    }
}

/// Why a frame could not be converted.
#[derive(Debug, Error)]
pub enum PixelError {
    #[error("a {format} frame of {width}x{height} needs {need} bytes but has {have}")]
    Short { format: String, width: usize, height: usize, need: usize, have: usize },
    #[error("MJPEG frame cannot be decoded: {reason}")]
    Jpeg { reason: String },
    #[error("MJPEG frame is {found_w}x{found_h}, expected {width}x{height}")]
    JpegSize { width: usize, height: usize, found_w: usize, found_h: usize },
    #[error("MJPEG frames need the `jpeg` feature (part of `camera`), which this build lacks")]
    NoJpeg,
}

/// Per-code lookup tables: `y = (Y - offset) / y_range`, `c = (C - 128) / c_range`.
fn luts(full_range: bool) -> ([f32; 256], [f32; 256]) {
    let (y_off, y_range, c_range) = if full_range { (0.0, 255.0, 255.0) } else { (16.0, 219.0, 224.0) };
    (std::array::from_fn(|k| (k as f32 - y_off) / y_range), std::array::from_fn(|k| (k as f32 - 128.0) / c_range))
}

#[inline]
fn put(out: &mut [f32], n: usize, i: usize, y: f32, u: f32, v: f32) {
    out[i] = (y + R_V * v).clamp(0.0, 1.0);
    out[n + i] = (y - G_U * u - G_V * v).clamp(0.0, 1.0);
    out[2 * n + i] = (y + B_U * u).clamp(0.0, 1.0);
}

/// Converts Y4M planes (`raw`, as [`PixelFormat::Planar`]) to planar RGB in `out`
/// (length `3 * w * h`).
pub fn planar_to_rgb(raw: &[u8], w: usize, h: usize, colorspace: Colorspace, full_range: bool, out: &mut [f32]) {
    let n = w * h;
    let (y_lut, c_lut) = luts(full_range);
    let (luma, chroma) = raw.split_at(n);
    let Some((sx, sy)) = colorspace.chroma_shift() else {
        return grey(luma, n, &y_lut, out);
    };
    let cw = chroma_dim(w, sx);
    let (cb, cr) = chroma.split_at(chroma.len() / 2);
    for row in 0..h {
        let crow = (row >> sy) * cw;
        for col in 0..w {
            let i = row * w + col;
            let c = crow + (col >> sx);
            put(out, n, i, y_lut[usize::from(luma[i])], c_lut[usize::from(cb[c])], c_lut[usize::from(cr[c])]);
        }
    }
}

fn grey(luma: &[u8], n: usize, y_lut: &[f32; 256], out: &mut [f32]) {
    for (i, &yv) in luma[..n].iter().enumerate() {
        let v = y_lut[usize::from(yv)].clamp(0.0, 1.0);
        out[i] = v;
        out[n + i] = v;
        out[2 * n + i] = v;
    }
}

/// Reusable state for [`to_rgb`]: the decoded MJPEG image.
#[derive(Debug, Default)]
pub struct Scratch {
    rgb8: Vec<u8>,
}

/// Converts `data`, a `width` x `height` frame in `format`, to planar RGB in `[0, 1]` in `out`
/// (length `3 * width * height`). Short buffers and undecodable JPEG are errors, never a panic.
pub fn to_rgb(
    format: PixelFormat,
    data: &[u8],
    width: usize,
    height: usize,
    out: &mut [f32],
    scratch: &mut Scratch,
) -> Result<(), PixelError> {
    let n = width * height;
    assert_eq!(out.len(), 3 * n, "to_rgb: output is not 3 x {width} x {height}");
    if let Some(need) = format.frame_bytes(width, height)
        && data.len() < need
    {
        return Err(PixelError::Short { format: format.name(), width, height, need, have: data.len() });
    }
    match format {
        PixelFormat::Planar { colorspace, full_range } => {
            planar_to_rgb(data, width, height, colorspace, full_range, out)
        }
        PixelFormat::Grey { full_range } => grey(data, n, &luts(full_range).0, out),
        PixelFormat::Yuyv { full_range } => {
            let (y_lut, c_lut) = luts(full_range);
            let stride = 4 * width.div_ceil(2);
            for row in 0..height {
                let line = &data[row * stride..(row + 1) * stride];
                for col in 0..width {
                    let pair = &line[(col / 2) * 4..(col / 2) * 4 + 4];
                    let y = y_lut[usize::from(line[col * 2])];
                    put(out, n, row * width + col, y, c_lut[usize::from(pair[1])], c_lut[usize::from(pair[3])]);
                }
            }
        }
        PixelFormat::Nv12 { full_range } => {
            let (y_lut, c_lut) = luts(full_range);
            let (luma, chroma) = data.split_at(n);
            let cw = 2 * width.div_ceil(2);
            for row in 0..height {
                let crow = &chroma[(row / 2) * cw..(row / 2 + 1) * cw];
                for col in 0..width {
                    let i = row * width + col;
                    let c = (col / 2) * 2;
                    put(
                        out,
                        n,
                        i,
                        y_lut[usize::from(luma[i])],
                        c_lut[usize::from(crow[c])],
                        c_lut[usize::from(crow[c + 1])],
                    );
                }
            }
        }
        PixelFormat::Mjpeg => {
            decode_jpeg(data, width, height, &mut scratch.rgb8)?;
            for (i, px) in scratch.rgb8.chunks_exact(3).enumerate() {
                out[i] = f32::from(px[0]) / 255.0;
                out[n + i] = f32::from(px[1]) / 255.0;
                out[2 * n + i] = f32::from(px[2]) / 255.0;
            }
        }
    }
    Ok(())
}

#[cfg(feature = "jpeg")]
fn decode_jpeg(data: &[u8], width: usize, height: usize, rgb8: &mut Vec<u8>) -> Result<(), PixelError> {
    crate::capture::mjpeg::decode_mjpeg(data, width, height, rgb8)
}

#[cfg(not(feature = "jpeg"))]
fn decode_jpeg(_: &[u8], _: usize, _: usize, _: &mut Vec<u8>) -> Result<(), PixelError> {
    Err(PixelError::NoJpeg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4:2:0 frame with distinct values everywhere, as Y4M planes.
    fn i420(w: usize, h: usize) -> Vec<u8> {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut v: Vec<u8> = (0..w * h).map(|i| (16 + (i * 7) % 220) as u8).collect();
        v.extend((0..cw * ch).map(|i| (20 + (i * 13) % 200) as u8));
        v.extend((0..cw * ch).map(|i| (30 + (i * 29) % 190) as u8));
        v
    }

    fn rgb(format: PixelFormat, data: &[u8], w: usize, h: usize) -> Vec<f32> {
        let mut out = vec![0.0; 3 * w * h];
        to_rgb(format, data, w, h, &mut out, &mut Scratch::default()).unwrap();
        out
    }

    #[test]
    fn yuyv_and_nv12_match_the_planar_path_exactly() {
        let (w, h) = (6, 4);
        let planes = i420(w, h);
        let (luma, chroma) = planes.split_at(w * h);
        let (cb, cr) = chroma.split_at(chroma.len() / 2);
        let cw = w / 2;
        let mut yuyv = Vec::new();
        let mut nv12 = luma.to_vec();
        for row in 0..h {
            for pair in 0..cw {
                let c = (row / 2) * cw + pair;
                yuyv.extend([luma[row * w + 2 * pair], cb[c], luma[row * w + 2 * pair + 1], cr[c]]);
            }
        }
        for c in 0..cb.len() {
            nv12.extend([cb[c], cr[c]]);
        }
        let want = rgb(PixelFormat::Planar { colorspace: Colorspace::C420Jpeg, full_range: false }, &planes, w, h);
        assert_eq!(rgb(PixelFormat::Yuyv { full_range: false }, &yuyv, w, h), want);
        assert_eq!(rgb(PixelFormat::Nv12 { full_range: false }, &nv12, w, h), want);
        let mono = rgb(PixelFormat::Planar { colorspace: Colorspace::Mono, full_range: true }, luma, w, h);
        assert_eq!(rgb(PixelFormat::Grey { full_range: true }, luma, w, h), mono);
    }

    #[test]
    fn short_buffers_are_errors() {
        let mut out = vec![0.0; 3 * 16];
        let e = to_rgb(PixelFormat::Yuyv { full_range: false }, &[0; 10], 4, 4, &mut out, &mut Scratch::default());
        assert!(e.unwrap_err().to_string().contains("needs 32 bytes but has 10"));
    }
}
