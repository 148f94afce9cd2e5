//! Camera pixel formats convert like the Y4M clips they stand for: the first eval clips, turned
//! into the buffers a camera delivers, go through `pixels::to_rgb`.
//!
//! * YUYV (4:2:2, each 4:2:0 chroma row repeated) gives exactly the clip's RGB.
//! * MJPEG (the clip's RGB encoded at quality 90 with 4:2:2 chroma, then stripped of its Huffman
//!   tables as webcams send it) stays within [`MJPEG_MIN_PSNR_DB`] of the clip's RGB.

use edgeqa::capture::PixelFormat;
use edgeqa::capture::pixels::{Scratch, to_rgb};
use edgeqa::capture::y4m::{Colorspace, Y4mVideo, read_y4m};
use edgeqa_tests::repo_root;

/// Lowest PSNR accepted for the MJPEG path (RGB in [0, 1], over all frames of a clip). Measured
/// with jpeg-encoder 0.7.1 and zune-jpeg 0.5.15: 37.63, 34.28, 37.55 and 35.32 dB on clip_000 to
/// clip_003 (64x64, 16 frames each); the bound leaves about 3 dB for other encoder or decoder
/// versions.
const MJPEG_MIN_PSNR_DB: f64 = 31.0;

fn clips() -> Vec<Y4mVideo> {
    (0..4)
        .map(|i| {
            let path = repo_root().join(format!("models/demo/eval/clip_{i:03}.y4m"));
            read_y4m(&path).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

/// A 4:2:0 frame's planes as packed YUYV, each chroma row used for two luma rows.
fn yuyv_from_420(raw: &[u8], w: usize, h: usize) -> Vec<u8> {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (luma, chroma) = raw.split_at(w * h);
    let (cb, cr) = chroma.split_at(cw * ch);
    let mut out = Vec::with_capacity(4 * cw * h);
    for row in 0..h {
        for pair in 0..cw {
            let c = (row / 2) * cw + pair;
            let y0 = luma[row * w + 2 * pair];
            let y1 = luma[row * w + (2 * pair + 1).min(w - 1)];
            out.extend([y0, cb[c], y1, cr[c]]);
        }
    }
    out
}

/// Planar RGB in [0, 1] as interleaved RGB8.
fn interleaved_rgb8(planar: &[f32], n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (0..3).map(move |c| (planar[c * n + i] * 255.0).round().clamp(0.0, 255.0) as u8)).collect()
}

/// A JPEG without its DHT segments (the decoder must supply the standard tables).
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

fn mjpeg(rgb8: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut jpeg = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, 90);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_1);
    encoder.encode(rgb8, w as u16, h as u16, jpeg_encoder::ColorType::Rgb).unwrap();
    strip_dht(&jpeg)
}

#[test]
fn yuyv_from_eval_clips_matches_the_y4m_path_exactly() {
    for clip in clips() {
        assert!(matches!(clip.colorspace, Colorspace::C420Jpeg | Colorspace::C420), "{}", clip.origin());
        let (w, h) = (clip.width, clip.height);
        let mut out = vec![0.0; 3 * w * h];
        let mut scratch = Scratch::default();
        for i in 0..clip.frame_count() {
            let want = clip.frame_rgb(i).unwrap();
            let yuyv = yuyv_from_420(&clip.frame_raw(i).unwrap(), w, h);
            to_rgb(PixelFormat::Yuyv { full_range: clip.full_range }, &yuyv, w, h, &mut out, &mut scratch).unwrap();
            assert!(out == want, "{} frame {i}: YUYV differs from the Y4M path", clip.origin());
        }
    }
}

#[test]
fn mjpeg_from_eval_clips_is_close_to_the_y4m_path() {
    let mut results = Vec::new();
    for clip in clips() {
        let (w, h) = (clip.width, clip.height);
        let n = w * h;
        let mut out = vec![0.0; 3 * n];
        let mut scratch = Scratch::default();
        let (mut sq_err, mut count) = (0.0f64, 0usize);
        for i in 0..clip.frame_count() {
            let want = clip.frame_rgb(i).unwrap();
            let jpeg = mjpeg(&interleaved_rgb8(&want, n), w, h);
            to_rgb(PixelFormat::Mjpeg, &jpeg, w, h, &mut out, &mut scratch)
                .unwrap_or_else(|e| panic!("{} frame {i}: {e}", clip.origin()));
            sq_err += out.iter().zip(&want).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>();
            count += out.len();
        }
        let psnr = 10.0 * (1.0 / (sq_err / count as f64)).log10();
        println!("{}: MJPEG PSNR {psnr:.2} dB over {} frames", clip.origin(), clip.frame_count());
        results.push((clip.origin().to_string(), psnr));
    }
    for (clip, psnr) in results {
        assert!(psnr >= MJPEG_MIN_PSNR_DB, "{clip}: MJPEG PSNR {psnr:.2} dB < {MJPEG_MIN_PSNR_DB}");
    }
}
