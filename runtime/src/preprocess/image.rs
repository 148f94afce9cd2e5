//! Frame preprocessing: uniform frame sampling, bilinear resize and per-channel normalisation.
//!
//! [`frames_tensor`] chains them: sample `F` frame indices with [`sample_indices`], convert each
//! frame to RGB in `[0, 1]` ([`Y4mVideo::frame_rgb`]), resize with [`resize_bilinear`], then
//! [`normalize`].

use crate::capture::pixels::{PixelError, PixelFormat, Scratch, to_rgb};
use crate::capture::y4m::{Y4mError, Y4mVideo};
use crate::manifest::VideoPreprocess;

/// Source index pair and weight of the second one, for one output position along an axis.
#[derive(Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    l1: f32,
}

/// Half-pixel taps exactly as PyTorch computes them for `align_corners=False`, in `f32`.
fn taps(n_in: usize, n_out: usize) -> Vec<Tap> {
    let scale = n_in as f32 / n_out as f32;
    (0..n_out)
        .map(|o| {
            let src = (scale * (o as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(n_in - 1);
            let i1 = (i0 + 1).min(n_in - 1);
            let l1 = (src - i0 as f32).clamp(0.0, 1.0);
            Tap { i0, i1, l1 }
        })
        .collect()
}

/// Resizes a planar `[channels, h, w]` image to `[channels, out_h, out_w]` by bilinear
/// interpolation with half-pixel centres and no antialiasing.
///
/// Output pixel `o` along an axis reads source position `s = max(0, (o + 0.5) * in / out - 0.5)`,
/// interpolating between `floor(s)` and the next sample (clamped to the edge). This equals
/// PyTorch `interpolate(mode="bilinear", align_corners=False, antialias=False)` and ONNX
/// `Resize(mode="linear", coordinate_transformation_mode="half_pixel")`. Equal sizes return
/// a copy of `src`; an empty output size returns an empty vector.
///
/// # Panics
///
/// If `src.len() != channels * h * w`, or if the input is empty but the output is not.
pub fn resize_bilinear(src: &[f32], channels: usize, h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    assert_eq!(src.len(), channels * h * w, "resize_bilinear: input length does not match {channels}x{h}x{w}");
    if h == out_h && w == out_w {
        return src.to_vec();
    }
    if channels == 0 || out_h == 0 || out_w == 0 {
        return Vec::new();
    }
    assert!(h > 0 && w > 0, "resize_bilinear: cannot resize an empty {h}x{w} image to {out_h}x{out_w}");
    let mut out = vec![0.0; channels * out_h * out_w];
    resize_with_taps(src, h, w, &taps(h, out_h), &taps(w, out_w), &mut out);
    out
}

/// [`resize_bilinear`] with precomputed taps into `out` (`channels * ty.len() * tx.len()`).
fn resize_with_taps(src: &[f32], h: usize, w: usize, ty: &[Tap], tx: &[Tap], out: &mut [f32]) {
    let mut o = 0;
    for plane in src.chunks_exact(h * w) {
        for y in ty {
            let (r0, r1) = (&plane[y.i0 * w..(y.i0 + 1) * w], &plane[y.i1 * w..(y.i1 + 1) * w]);
            let l0y = 1.0 - y.l1;
            for x in tx {
                let l0x = 1.0 - x.l1;
                let top = l0x * r0[x.i0] + x.l1 * r0[x.i1];
                let bottom = l0x * r1[x.i0] + x.l1 * r1[x.i1];
                out[o] = l0y * top + y.l1 * bottom;
                o += 1;
            }
        }
    }
}

/// One frame to the frame encoder's input, with every buffer kept between frames: pixels to
/// RGB ([`to_rgb`]), [`resize_bilinear`], [`normalize`] — the same numbers as
/// [`frames_tensor`] gives for the same frame. Allocates only when the frame size changes.
pub struct FramePrep {
    p: VideoPreprocess,
    size: (usize, usize),
    ty: Vec<Tap>,
    tx: Vec<Tap>,
    rgb: Vec<f32>,
    scratch: Scratch,
}

impl FramePrep {
    /// Buffers for frames of `width` x `height` (they are resized if frames differ).
    pub fn new(p: &VideoPreprocess, width: usize, height: usize) -> FramePrep {
        let mut prep = FramePrep {
            p: p.clone(),
            size: (0, 0),
            ty: Vec::new(),
            tx: Vec::new(),
            rgb: Vec::new(),
            scratch: Scratch::default(),
        };
        prep.resize_for(width, height);
        prep
    }

    fn resize_for(&mut self, width: usize, height: usize) {
        if self.size != (width, height) {
            self.size = (width, height);
            self.ty = taps(height.max(1), self.p.height);
            self.tx = taps(width.max(1), self.p.width);
            self.rgb = vec![0.0; 3 * width * height];
        }
    }

    /// Values of one preprocessed frame: `3 * height * width` of the model input.
    pub fn len(&self) -> usize {
        3 * self.p.height * self.p.width
    }

    /// Always false: a frame has pixels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes this holds (the RGB frame and, for MJPEG, the decoded image).
    pub fn bytes(&self, width: usize, height: usize) -> usize {
        3 * width * height * 4 + 3 * width * height
    }

    /// Converts one captured frame into `out` (length [`FramePrep::len`]).
    pub fn run(
        &mut self,
        format: PixelFormat,
        data: &[u8],
        width: usize,
        height: usize,
        out: &mut [f32],
    ) -> Result<(), PixelError> {
        self.resize_for(width, height);
        to_rgb(format, data, width, height, &mut self.rgb, &mut self.scratch)?;
        if (height, width) == (self.p.height, self.p.width) {
            out.copy_from_slice(&self.rgb);
        } else {
            resize_with_taps(&self.rgb, height, width, &self.ty, &self.tx, out);
        }
        normalize(out, self.p.mean, self.p.std);
        Ok(())
    }
}

/// Normalises a planar 3-channel image in place: `x = (x - mean[c]) / std[c]` per channel `c`.
///
/// # Panics
///
/// If `chw.len()` is not a multiple of 3.
pub fn normalize(chw: &mut [f32], mean: [f32; 3], std: [f32; 3]) {
    assert!(chw.len().is_multiple_of(3), "normalize: length {} is not 3 planes", chw.len());
    let plane = chw.len() / 3;
    if plane == 0 {
        return;
    }
    for (c, values) in chw.chunks_exact_mut(plane).enumerate() {
        for v in values {
            *v = (*v - mean[c]) / std[c];
        }
    }
}

/// Picks `n_wanted` frame indices spread uniformly over `n_available` frames.
///
/// Index `i` is `round(i * (n_available - 1) / (n_wanted - 1))` with halves rounded up,
/// computed exactly in integers as `(2 i (n_available - 1) + (n_wanted - 1)) div (2 (n_wanted - 1))`;
/// so the first and last frames are always used, and frames repeat when the clip is shorter than
/// `n_wanted`. For `n_wanted == 1` the middle frame `n_available / 2` is used. Either count
/// being 0 gives an empty list.
pub fn sample_indices(n_available: usize, n_wanted: usize) -> Vec<usize> {
    if n_available == 0 || n_wanted == 0 {
        return Vec::new();
    }
    if n_wanted == 1 {
        return vec![n_available / 2];
    }
    let span = (n_available - 1) as u128;
    let steps = (n_wanted - 1) as u128;
    // The result is at most n_available - 1, so the cast back cannot truncate.
    (0..n_wanted).map(|i| ((2 * i as u128 * span + steps) / (2 * steps)) as usize).collect()
}

/// The `frames` input of the frame encoder: `[F, 3, H, W]` row-major `f32` with
/// `F = p.frames`, `H = p.height`, `W = p.width`.
///
/// Frames are chosen by [`sample_indices`], converted to RGB in `[0, 1]`, resized with
/// [`resize_bilinear`] and normalised with `p.mean` and `p.std`. Fails only when a frame cannot be read (see [`Y4mVideo::frame_raw`]).
pub fn frames_tensor(video: &Y4mVideo, p: &VideoPreprocess) -> Result<Vec<f32>, Y4mError> {
    frames_tensor_at(video, p, &sample_indices(video.frame_count(), p.frames))
}

/// [`frames_tensor`] of the given frames, in the given order (`p.frames` of them for the frame
/// encoder); a repeated index is converted once.
pub fn frames_tensor_at(video: &Y4mVideo, p: &VideoPreprocess, indices: &[usize]) -> Result<Vec<f32>, Y4mError> {
    let frame_len = 3 * p.height * p.width;
    let mut out: Vec<f32> = Vec::with_capacity(indices.len() * frame_len);
    let mut previous = None;
    for &index in indices {
        if previous == Some(index) {
            // A short clip repeats frames: copy the one just computed.
            let start = out.len() - frame_len;
            out.extend_from_within(start..);
            continue;
        }
        let rgb = video.frame_rgb(index)?;
        let mut frame = resize_bilinear(&rgb, 3, video.height, video.width, p.height, p.width);
        normalize(&mut frame, p.mean, p.std);
        out.extend_from_slice(&frame);
        previous = Some(index);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::y4m::{parse_y4m, write_y4m_420};
    use proptest::prelude::*;

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn identity() {
        let src: Vec<f32> = (0..24).map(|v| v as f32).collect();
        assert_eq!(resize_bilinear(&src, 2, 3, 4, 3, 4), src);
    }

    #[test]
    fn upsample_matches_pytorch() {
        // torch.nn.functional.interpolate(t, size=(4, 4), mode="bilinear", align_corners=False)
        let out = resize_bilinear(&[1.0, 2.0, 3.0, 4.0], 1, 2, 2, 4, 4);
        #[rustfmt::skip]
        let want = [
            1.0, 1.25, 1.75, 2.0,
            1.5, 1.75, 2.25, 2.5,
            2.5, 2.75, 3.25, 3.5,
            3.0, 3.25, 3.75, 4.0,
        ];
        close(&out, &want);
    }

    #[test]
    fn downsample_half_pixel() {
        let src: Vec<f32> = (0..16).map(|v| v as f32).collect();
        close(&resize_bilinear(&src, 1, 4, 4, 2, 2), &[2.5, 4.5, 10.5, 12.5]);
        // 3 -> 2 columns: source positions 0.25 and 1.75.
        close(&resize_bilinear(&[0.0, 1.0, 2.0], 1, 1, 3, 1, 2), &[0.25, 1.75]);
        // Channels are resized independently.
        close(&resize_bilinear(&[1.0, 1.0, 5.0, 5.0], 2, 1, 2, 1, 1), &[1.0, 5.0]);
        assert!(resize_bilinear(&src, 1, 4, 4, 0, 3).is_empty());
    }

    #[test]
    fn normalize_per_channel() {
        let mut v = vec![0.5, 1.0, 0.0, 0.2, 1.0, 0.6];
        normalize(&mut v, [0.5, 0.1, 0.0], [0.5, 0.1, 2.0]);
        close(&v, &[0.0, 1.0, -1.0, 1.0, 0.5, 0.3]);
        normalize(&mut [], [0.0; 3], [1.0; 3]);
    }

    #[test]
    fn sampling() {
        assert_eq!(sample_indices(10, 4), vec![0, 3, 6, 9]);
        assert_eq!(sample_indices(3, 5), vec![0, 1, 1, 2, 2]);
        assert_eq!(sample_indices(1, 3), vec![0, 0, 0]);
        assert_eq!(sample_indices(10, 1), vec![5]);
        assert_eq!(sample_indices(100, 2), vec![0, 99]);
        assert!(sample_indices(0, 3).is_empty());
        assert!(sample_indices(5, 0).is_empty());
    }

    #[test]
    fn tensor_from_clip() {
        let colours = [[255u8, 0, 0], [0, 255, 0], [0, 0, 255]];
        let frames: Vec<Vec<u8>> =
            colours.iter().map(|c| c.iter().copied().cycle().take(3 * 8 * 6).collect()).collect();
        let mut bytes = Vec::new();
        write_y4m_420(&mut bytes, 8, 6, (10, 1), &frames).unwrap();
        let video = parse_y4m(&bytes, "mem").unwrap();
        let p = VideoPreprocess { width: 4, height: 2, frames: 5, mean: [0.5; 3], std: [0.25; 3] };
        let t = frames_tensor(&video, &p).unwrap();
        assert_eq!(t.len(), 5 * 3 * 2 * 4);
        // Frames 0, 1, 1, 2, 2: each plane is constant (±2/255 before normalisation).
        for (f, &k) in [0usize, 1, 1, 2, 2].iter().enumerate() {
            for c in 0..3 {
                let want = (f32::from(colours[k][c]) / 255.0 - 0.5) / 0.25;
                let plane = &t[(f * 3 + c) * 8..(f * 3 + c + 1) * 8];
                assert!(plane.iter().all(|v| (v - want).abs() < 0.04), "frame {f} channel {c}: {plane:?}");
            }
        }
    }

    #[test]
    fn tensor_of_chosen_frames() {
        let frames: Vec<Vec<u8>> = (0..4u8).map(|k| vec![k * 60; 3 * 8 * 6]).collect();
        let mut bytes = Vec::new();
        write_y4m_420(&mut bytes, 8, 6, (10, 1), &frames).unwrap();
        let video = parse_y4m(&bytes, "mem").unwrap();
        let p = VideoPreprocess { width: 4, height: 2, frames: 3, mean: [0.0; 3], std: [1.0; 3] };
        let plane = 3 * 2 * 4;
        // The uniform choice is frames_tensor exactly.
        let uniform = frames_tensor_at(&video, &p, &sample_indices(4, 3)).unwrap();
        assert_eq!(uniform, frames_tensor(&video, &p).unwrap());
        // Frames 3, 1, 1 in that order: each block is its own frame.
        let t = frames_tensor_at(&video, &p, &[3, 1, 1]).unwrap();
        assert_eq!(t.len(), 3 * plane);
        let single = |k: usize| frames_tensor_at(&video, &p, &[k]).unwrap();
        assert_eq!(&t[..plane], single(3).as_slice());
        assert_eq!(&t[plane..2 * plane], single(1).as_slice());
        assert_eq!(&t[2 * plane..], single(1).as_slice());
        assert_ne!(single(3), single(1));
        assert!(frames_tensor_at(&video, &p, &[4]).is_err(), "frame 4 is past the clip's end");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn constant_images_stay_constant(h in 1usize..9, w in 1usize..9, oh in 1usize..9, ow in 1usize..9, v in -2.0f32..2.0) {
            let out = resize_bilinear(&vec![v; 2 * h * w], 2, h, w, oh, ow);
            prop_assert_eq!(out.len(), 2 * oh * ow);
            prop_assert!(out.iter().all(|x| (x - v).abs() < 1e-5));
        }

        #[test]
        fn indices_in_range_and_sorted(n in 1usize..500, k in 1usize..64) {
            let idx = sample_indices(n, k);
            prop_assert_eq!(idx.len(), k);
            prop_assert!(idx.windows(2).all(|p| p[0] <= p[1]));
            prop_assert!(idx.iter().all(|&i| i < n));
        }
    }
}
