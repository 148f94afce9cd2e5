//! The per-modality work of the encode threads, as plain structs the engine drives (and tests
//! drive directly): [`VideoPath`] samples captured frames at the student's rate, preprocesses
//! them into the frame encoder's batch and pushes the encoded features into a ring;
//! [`AudioPath`] turns sample blocks into log-mel frames as they arrive, cuts segments every
//! `stride` frames into the audio encoder's batch and pushes their features into a ring.
//!
//! Everything is allocated at creation; a frame or a block costs no heap allocation until a
//! batch is full and the encoder runs (the backends allocate per run, see `docs/live.md`).

use std::sync::Mutex;

use crate::backend::{BackendError, StageSession};
use crate::capture::Frame;
use crate::capture::pixels::PixelError;
use crate::manifest::{AudioPreprocess, TensorInfo, VideoPreprocess};
use crate::preprocess::image::FramePrep;
use crate::preprocess::mel::{LogMel, MelStream};
use crate::stream::ring::FeatureRing;
use crate::tensor::{Tensor, TensorData};

/// A stage run on the encoder's output batch whose per-item output is appended to each ring
/// entry (the frame keys of a student with a selector): the session and its input.
pub type KeyStage<'a> = (&'a dyn StageSession, &'a TensorInfo);

/// Runs an encoder on a full (or zero-padded) batch and pushes the first `valid` items'
/// features into `ring` with their stamps; with `keys`, each entry is the item's features
/// followed by its key.
fn encode_into(
    session: &dyn StageSession,
    keys: Option<KeyStage<'_>>,
    input: &TensorInfo,
    batch: &[f32],
    stamps: &[f64],
    ring: &Mutex<FeatureRing>,
) -> Result<(), BackendError> {
    let t = Tensor { shape: input.shape.clone(), data: TensorData::F32(batch.to_vec()) };
    let out = session.run(vec![t])?.swap_remove(0);
    let internal =
        |reason: String| BackendError::Internal { origin: "live encoder".into(), backend: session.backend(), reason };
    let values = out.as_f32().ok_or_else(|| internal("encoder output is not f32".into()))?;
    let items = input.shape[0].max(1);
    let per_item = values.len() / items;
    let keyed = match keys {
        Some((k, info)) => {
            let t = Tensor { shape: info.shape.clone(), data: TensorData::F32(values.to_vec()) };
            let out = k.run(vec![t])?.swap_remove(0);
            let v = out.as_f32().ok_or_else(|| internal("key output is not f32".into()))?.to_vec();
            Some(v)
        }
        None => None,
    };
    let per_key = keyed.as_ref().map_or(0, |k| k.len() / items);
    let mut ring = ring.lock().unwrap_or_else(|p| p.into_inner());
    if per_item + per_key != ring.dim() {
        return Err(internal(format!(
            "encoder gave {per_item} values per item and {per_key} key values, the ring holds {}",
            ring.dim()
        )));
    }
    let mut entry = Vec::with_capacity(ring.dim());
    for (i, (item, &stamp)) in values.chunks_exact(per_item).zip(stamps).enumerate() {
        match &keyed {
            Some(k) => {
                entry.clear();
                entry.extend_from_slice(item);
                entry.extend_from_slice(&k[i * per_key..(i + 1) * per_key]);
                ring.push(stamp, &entry);
            }
            None => ring.push(stamp, item),
        }
    }
    Ok(())
}

/// Values per item (frame or segment) of an encoder output `[B, ...]`: what one ring entry holds.
pub fn per_item(output: &TensorInfo) -> usize {
    output.len() / output.shape.first().copied().unwrap_or(1).max(1)
}

/// Frames → sampled at the student's rate → preprocessed into the encoder batch.
pub struct VideoPath {
    prep: FramePrep,
    input: TensorInfo,
    batch: Vec<f32>,
    stamps: Vec<f64>,
    filled: usize,
    period: f64,
    next_due: Option<f64>,
    /// Frames taken into a batch.
    pub sampled: u64,
    /// Frames that could not be converted (corrupt) and were skipped.
    pub corrupt: u64,
}

impl VideoPath {
    /// A path for `p` feeding an encoder whose input is `input` (`[B, 3, H, W]`), sampling
    /// frames at `rate` per second from sources of `width` x `height`.
    pub fn new(p: &VideoPreprocess, input: &TensorInfo, rate: f64, width: usize, height: usize) -> VideoPath {
        let batch_size = input.shape[0].max(1);
        VideoPath {
            prep: FramePrep::new(p, width, height),
            input: input.clone(),
            batch: vec![0.0; input.len()],
            stamps: Vec::with_capacity(batch_size),
            filled: 0,
            period: 1.0 / rate,
            next_due: None,
            sampled: 0,
            corrupt: 0,
        }
    }

    /// Bytes this holds (conversion buffers and the batch).
    pub fn bytes(p: &VideoPreprocess, input: &TensorInfo, width: usize, height: usize) -> u64 {
        (FramePrep::new(p, 1, 1).bytes(width, height) + input.len() * 4) as u64
    }

    fn batch_size(&self) -> usize {
        self.stamps.capacity()
    }

    /// Takes a frame into the batch if it is due at the sampling rate. `Ok(true)` when the
    /// batch is now full ([`VideoPath::encode`] must run). A frame that cannot be converted is
    /// counted as corrupt and skipped (`Err` says why).
    pub fn ingest(&mut self, frame: &Frame) -> Result<bool, PixelError> {
        let t = frame.timestamp.as_secs_f64();
        if let Some(due) = self.next_due
            && t + 1e-6 < due
        {
            return Ok(false);
        }
        let n = self.prep.len();
        let slot = &mut self.batch[self.filled * n..(self.filled + 1) * n];
        if let Err(e) = self.prep.run(frame.format, &frame.data, frame.width, frame.height, slot) {
            self.corrupt += 1;
            return Err(e);
        }
        self.next_due = Some(match self.next_due {
            Some(due) if t < due + self.period => due + self.period,
            _ => t + self.period,
        });
        self.stamps.push(t);
        self.filled += 1;
        self.sampled += 1;
        Ok(self.filled == self.batch_size())
    }

    /// Encodes the batch (zero-padding a partial one) and pushes its features into `ring`,
    /// each followed by its key when `keys` is given.
    pub fn encode(
        &mut self,
        session: &dyn StageSession,
        keys: Option<KeyStage<'_>>,
        ring: &Mutex<FeatureRing>,
    ) -> Result<(), BackendError> {
        if self.filled == 0 {
            return Ok(());
        }
        let n = self.prep.len();
        self.batch[self.filled * n..].fill(0.0);
        let result = encode_into(session, keys, &self.input, &self.batch, &self.stamps, ring);
        self.filled = 0;
        self.stamps.clear();
        result
    }
}

/// Blocks of samples → log-mel frames as they arrive → segments every `stride` frames.
pub struct AudioPath {
    mel: MelStream,
    seg: Segments,
}

/// The segment side of an [`AudioPath`]: held log-mel columns and the encoder batch.
struct Segments {
    /// The last `T` log-mel columns (`n_mels` values each).
    columns: FeatureRing,
    n_mels: usize,
    t_len: usize,
    input: TensorInfo,
    batch: Vec<f32>,
    stamps: Vec<f64>,
    filled: usize,
    stride: usize,
    seconds_per_frame: f64,
    start: Option<f64>,
    error: Option<BackendError>,
    taken: u64,
}

impl Segments {
    fn batch_size(&self) -> usize {
        self.stamps.capacity()
    }

    /// Copies the held columns, padded with `fill` up to `T`, into the next batch slot as
    /// `[n_mels, T]`.
    fn take(&mut self, stamp: f64, fill: f32) {
        let (n_mels, t_len) = (self.n_mels, self.t_len);
        let slot = &mut self.batch[self.filled * n_mels * t_len..(self.filled + 1) * n_mels * t_len];
        slot.fill(fill);
        for t in 0..self.columns.len() {
            for (m, &v) in self.columns.get(t).iter().enumerate() {
                slot[m * t_len + t] = v;
            }
        }
        self.stamps.push(stamp);
        self.filled += 1;
        self.taken += 1;
    }

    /// A new log-mel column `t` of the stream.
    fn column(&mut self, t: u64, column: &[f32], session: &dyn StageSession, ring: &Mutex<FeatureRing>) {
        self.columns.push(0.0, column);
        if self.error.is_some() || self.columns.len() < self.t_len {
            return;
        }
        let first = t + 1 - self.t_len as u64;
        if !first.is_multiple_of(self.stride as u64) {
            return;
        }
        self.take(self.start.unwrap_or(0.0) + first as f64 * self.seconds_per_frame, 0.0);
        if self.filled == self.batch_size()
            && let Err(e) = self.flush(session, ring)
        {
            self.error = Some(e);
        }
    }

    fn flush(&mut self, session: &dyn StageSession, ring: &Mutex<FeatureRing>) -> Result<(), BackendError> {
        if self.filled == 0 {
            return Ok(());
        }
        let seg = self.n_mels * self.t_len;
        self.batch[self.filled * seg..].fill(0.0);
        let result = encode_into(session, None, &self.input, &self.batch, &self.stamps, ring);
        self.filled = 0;
        self.stamps.clear();
        result
    }
}

impl AudioPath {
    /// A path for `p` feeding an encoder whose input is `input` (`[B, 1, n_mels, T]`), a segment
    /// starting every `stride` log-mel frames, for blocks of at most `max_block` samples.
    pub fn new(p: &AudioPreprocess, input: &TensorInfo, stride: usize, max_block: usize) -> AudioPath {
        let batch_size = input.shape[0].max(1);
        AudioPath {
            mel: MelStream::new(LogMel::new(p), max_block),
            seg: Segments {
                columns: FeatureRing::new(p.segment_frames, p.n_mels),
                n_mels: p.n_mels,
                t_len: p.segment_frames,
                input: input.clone(),
                batch: vec![0.0; input.len()],
                stamps: Vec::with_capacity(batch_size),
                filled: 0,
                stride: stride.max(1),
                seconds_per_frame: p.hop as f64 / f64::from(p.sample_rate),
                start: None,
                error: None,
                taken: 0,
            },
        }
    }

    /// Bytes this holds (samples pending, FFT buffers, log-mel columns, the batch).
    pub fn bytes(p: &AudioPreprocess, input: &TensorInfo, max_block: usize) -> u64 {
        ((p.n_fft + max_block) * 4 + p.n_fft * 40 + p.segment_frames * p.n_mels * 4 + input.len() * 4) as u64
    }

    /// Segments taken into a batch so far.
    pub fn segments(&self) -> u64 {
        self.seg.taken
    }

    /// Feeds a block (`start` is the capture time of its first sample, used for the first
    /// block), encoding every batch that fills up.
    pub fn ingest(
        &mut self,
        samples: &[f32],
        start: f64,
        session: &dyn StageSession,
        ring: &Mutex<FeatureRing>,
    ) -> Result<(), BackendError> {
        self.seg.start.get_or_insert(start);
        let seg = &mut self.seg;
        self.mel.push(samples, |t, column| seg.column(t, column, session, ring));
        match self.seg.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// At the end of the source: a stream too short for one whole segment gives one segment
    /// padded as `edgeqa ask` pads a short clip (samples with zeros up to `n_fft`, log-mel
    /// frames with the value of silence up to `T`); then the partial batch is encoded.
    pub fn finish(&mut self, session: &dyn StageSession, ring: &Mutex<FeatureRing>) -> Result<(), BackendError> {
        let p = self.mel.mel().params().clone();
        if self.seg.taken == 0 && self.mel.samples() > 0 {
            if self.mel.frames() == 0 {
                let zeros = vec![0.0f32; p.n_fft - self.mel.samples() as usize];
                let columns = &mut self.seg.columns;
                self.mel.push(&zeros, |_, column| columns.push(0.0, column));
            }
            let silence = f64::from(p.log_offset).ln() as f32;
            self.seg.take(self.seg.start.unwrap_or(0.0), silence);
        }
        self.seg.flush(session, ring)
    }
}
