//! Clip files that behave like devices: a Y4M video as a [`FrameSource`], a WAV file as an
//! [`AudioSource`].
//!
//! [`Pacing::Realtime`] delivers each frame or block at its time since the start (the
//! capture thread sleeps), like a camera or microphone; [`Pacing::AsFastAsPossible`] delivers
//! as fast as the consumer takes them. With `looping` the file starts again at its end, the
//! timestamps carrying on; otherwise the source ends.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::capture::wav::read_wav;
use crate::capture::y4m::{Y4mVideo, open_y4m};
use crate::capture::{AudioBlock, AudioSource, CaptureError, Frame, FrameSource, PixelFormat, SourceStats};

/// How a file source delivers its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// At the file's own rate, like a device.
    Realtime,
    /// As fast as the consumer takes it.
    AsFastAsPossible,
}

/// Sleeps until `at` after `start` (realtime pacing).
fn pace(pacing: Pacing, start: &mut Option<Instant>, at: Duration) {
    if pacing != Pacing::Realtime {
        return;
    }
    let start = *start.get_or_insert_with(Instant::now);
    if let Some(wait) = (start + at).checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
}

/// A Y4M clip delivering its frames like a camera. Frames are read from the open file one at a
/// time into the caller's buffer (the whole file is never resident).
pub struct Y4mSource {
    video: Y4mVideo,
    pacing: Pacing,
    looping: bool,
    next: usize,
    loops: u64,
    start: Option<Instant>,
    stats: SourceStats,
}

impl Y4mSource {
    /// Opens a Y4M file (header and frame index only).
    pub fn open(path: &Path, pacing: Pacing, looping: bool) -> Result<Y4mSource, CaptureError> {
        Ok(Y4mSource::new(open_y4m(path)?, pacing, looping))
    }

    /// A source over an already opened clip.
    pub fn new(video: Y4mVideo, pacing: Pacing, looping: bool) -> Y4mSource {
        Y4mSource { video, pacing, looping, next: 0, loops: 0, start: None, stats: SourceStats::default() }
    }

    /// The clip.
    pub fn video(&self) -> &Y4mVideo {
        &self.video
    }

    fn frame_time(&self, index: usize) -> Duration {
        let (num, den) = (u64::from(self.video.fps.0), u64::from(self.video.fps.1));
        let n = self.loops * self.video.frame_count() as u64 + index as u64;
        Duration::from_nanos((u128::from(n) * u128::from(den) * 1_000_000_000 / u128::from(num)) as u64)
    }
}

impl FrameSource for Y4mSource {
    fn next_frame(&mut self, frame: &mut Frame) -> Result<bool, CaptureError> {
        if self.next == self.video.frame_count() {
            if !self.looping {
                return Ok(false);
            }
            self.next = 0;
            self.loops += 1;
        }
        let at = self.frame_time(self.next);
        pace(self.pacing, &mut self.start, at);
        self.video.frame_raw_into(self.next, &mut frame.data)?;
        frame.width = self.video.width;
        frame.height = self.video.height;
        frame.format = PixelFormat::Planar { colorspace: self.video.colorspace, full_range: self.video.full_range };
        frame.timestamp = at;
        frame.sequence = self.loops * self.video.frame_count() as u64 + self.next as u64;
        self.next += 1;
        self.stats.delivered += 1;
        Ok(true)
    }

    fn describe(&self) -> String {
        let v = &self.video;
        format!(
            "{} (Y4M {} {}x{} at {:.3} fps, {} frames{})",
            v.origin(),
            v.colorspace.name(),
            v.width,
            v.height,
            self.fps(),
            v.frame_count(),
            if self.looping { ", looping" } else { "" }
        )
    }

    fn fps(&self) -> f64 {
        f64::from(self.video.fps.0) / f64::from(self.video.fps.1)
    }

    fn max_frame_bytes(&self) -> usize {
        self.video.frame_len()
    }

    fn size(&self) -> (usize, usize) {
        (self.video.width, self.video.height)
    }

    fn stats(&self) -> SourceStats {
        self.stats
    }
}

/// A WAV file delivering blocks of samples like a microphone. The file's mono samples are
/// decoded once at open (see [`read_wav`]: its rate must be the student's).
pub struct WavSource {
    origin: String,
    samples: Vec<f32>,
    rate: u32,
    block: usize,
    pacing: Pacing,
    looping: bool,
    pos: usize,
    loops: u64,
    start: Option<Instant>,
    stats: SourceStats,
}

impl WavSource {
    /// Opens a WAV file at `rate` Hz, delivering blocks of `block` samples.
    pub fn open(
        path: &Path,
        rate: u32,
        block: usize,
        pacing: Pacing,
        looping: bool,
    ) -> Result<WavSource, CaptureError> {
        let samples = read_wav(path, rate)?;
        Ok(WavSource::new(path.display().to_string(), samples, rate, block, pacing, looping))
    }

    /// A source over samples already in memory; `origin` names it in messages.
    pub fn new(origin: String, samples: Vec<f32>, rate: u32, block: usize, pacing: Pacing, looping: bool) -> WavSource {
        WavSource {
            origin,
            samples,
            rate,
            block: block.max(1),
            pacing,
            looping,
            pos: 0,
            loops: 0,
            start: None,
            stats: SourceStats::default(),
        }
    }

    /// Bytes the decoded samples hold.
    pub fn resident_bytes(&self) -> usize {
        self.samples.len() * 4
    }
}

impl AudioSource for WavSource {
    fn next_block(&mut self, block: &mut AudioBlock) -> Result<bool, CaptureError> {
        if self.pos == self.samples.len() {
            if !self.looping || self.samples.is_empty() {
                return Ok(false);
            }
            self.pos = 0;
            self.loops += 1;
        }
        let n = self.block.min(self.samples.len() - self.pos);
        let sample_index = self.loops * self.samples.len() as u64 + self.pos as u64;
        let at = Duration::from_nanos((u128::from(sample_index) * 1_000_000_000 / u128::from(self.rate)) as u64);
        // A block is delivered when its last sample has been "recorded".
        let ready =
            Duration::from_nanos((u128::from(sample_index + n as u64) * 1_000_000_000 / u128::from(self.rate)) as u64);
        pace(self.pacing, &mut self.start, ready);
        block.samples.clear();
        block.samples.extend_from_slice(&self.samples[self.pos..self.pos + n]);
        block.timestamp = at;
        self.pos += n;
        self.stats.delivered += 1;
        Ok(true)
    }

    fn describe(&self) -> String {
        format!(
            "{} (WAV {} Hz, {:.2} s{})",
            self.origin,
            self.rate,
            self.samples.len() as f64 / f64::from(self.rate),
            if self.looping { ", looping" } else { "" }
        )
    }

    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn max_block_samples(&self) -> usize {
        self.block
    }

    fn stats(&self) -> SourceStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::y4m::parse_y4m;

    fn clip(frames: usize) -> Y4mVideo {
        let mut bytes = b"YUV4MPEG2 W4 H2 F10:1 Cmono\n".to_vec();
        for f in 0..frames {
            bytes.extend_from_slice(b"FRAME\n");
            bytes.extend(std::iter::repeat_n(f as u8, 8));
        }
        parse_y4m(&bytes, "clip.y4m").unwrap()
    }

    #[test]
    fn y4m_source_delivers_every_frame_then_ends_or_loops() {
        let mut src = Y4mSource::new(clip(3), Pacing::AsFastAsPossible, false);
        let mut frame = Frame::default();
        let mut seen = Vec::new();
        while src.next_frame(&mut frame).unwrap() {
            seen.push((frame.data[0], frame.timestamp.as_millis(), frame.sequence));
        }
        assert_eq!(seen, vec![(0, 0, 0), (1, 100, 1), (2, 200, 2)]);
        assert_eq!(src.stats().delivered, 3);

        let mut src = Y4mSource::new(clip(2), Pacing::AsFastAsPossible, true);
        let firsts: Vec<(u8, u128)> = (0..5)
            .map(|_| {
                assert!(src.next_frame(&mut frame).unwrap());
                (frame.data[0], frame.timestamp.as_millis())
            })
            .collect();
        assert_eq!(firsts, vec![(0, 0), (1, 100), (0, 200), (1, 300), (0, 400)]);
    }

    #[test]
    fn realtime_pacing_takes_the_clip_duration() {
        let mut src = Y4mSource::new(clip(3), Pacing::Realtime, false);
        let mut frame = Frame::default();
        let t = Instant::now();
        while src.next_frame(&mut frame).unwrap() {}
        // Frames at 0, 100 and 200 ms.
        assert!(t.elapsed() >= Duration::from_millis(200), "{:?}", t.elapsed());
    }

    #[test]
    fn wav_source_blocks_cover_the_samples() {
        let samples: Vec<f32> = (0..10).map(|i| i as f32).collect();
        let mut src = WavSource::new("a.wav".into(), samples.clone(), 10, 4, Pacing::AsFastAsPossible, false);
        let mut block = AudioBlock::default();
        let mut got = Vec::new();
        let mut stamps = Vec::new();
        while src.next_block(&mut block).unwrap() {
            got.extend_from_slice(&block.samples);
            stamps.push(block.timestamp.as_millis());
        }
        assert_eq!(got, samples);
        assert_eq!(stamps, vec![0, 400, 800]);
        let mut src = WavSource::new("a.wav".into(), samples, 10, 4, Pacing::AsFastAsPossible, true);
        for _ in 0..4 {
            assert!(src.next_block(&mut block).unwrap());
        }
        assert_eq!(block.samples, vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(block.timestamp.as_millis(), 1000);
    }
}
