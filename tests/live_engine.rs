//! The streaming engine (`edgeqa::stream`) on the committed demo student: the steady state
//! allocates nothing per frame or block, answers after a whole clip equal the per-clip
//! `Student`'s, frames converted from YUYV (as a camera delivers them) give the same answers,
//! a lost camera is reopened while answers go on, and the plan shortens the history to fit.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgeqa::backend::BackendChoice;
use edgeqa::budget::Budget;
use edgeqa::capture::files::{Pacing, WavSource, Y4mSource};
#[cfg(feature = "camera")]
use edgeqa::capture::y4m::read_y4m;
use edgeqa::capture::{AudioBlock, AudioSource, CaptureError, Frame, FrameSource, PixelFormat, SourceStats};
use edgeqa::package::Package;
use edgeqa::pipeline::Student;
use edgeqa::stream::{
    AudioPath, FeatureRing, Handoff, Live, LiveConfig, Overflow, Selection, SourceShape, VideoPath, audio_block,
    per_item,
};

/// Counts allocation calls made by a thread while it has counting switched on.
struct CountCalls;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = CALLS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: forwards every call unchanged to the system allocator; only a thread-local counter
// is touched.
unsafe impl GlobalAlloc for CountCalls {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: the caller guarantees `ptr`/`layout` are valid for this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountCalls = CountCalls;

/// Allocation calls `f` makes on this thread.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, u64) {
    CALLS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    (out, CALLS.with(|n| n.get()))
}

fn demo() -> PathBuf {
    edgeqa_tests::repo_root().join("models/demo")
}

fn clip(n: usize, ext: &str) -> PathBuf {
    demo().join(format!("eval/clip_{n:03}.{ext}"))
}

fn student() -> Arc<Student> {
    let pkg = Package::open(&demo().join("demo.eqa")).unwrap();
    Arc::new(Student::load(&pkg, BackendChoice::Tract, None).unwrap())
}

fn questions_for(n: usize) -> Vec<String> {
    let video = format!("clip_{n:03}.y4m");
    std::fs::read_to_string(demo().join("eval/questions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["video"] == video.as_str())
        .map(|v| v["question"].as_str().unwrap().to_string())
        .collect()
}

/// With keys, each frame entry is the frame's features followed by the key `selector_keys`
/// makes of them: the same key the per-clip path makes ([`Student::frame_keys`]).
#[test]
fn keyed_entries_hold_the_features_then_the_frames_key() {
    let student = student();
    let m = student.manifest().clone();
    let frame_stage = m.stage("frame_encoder").unwrap();
    let keys_stage = m.stage("selector_keys").expect("the demo student has a selector");
    let session = student.stage_session("frame_encoder").unwrap();
    let keys = student.stage_session("selector_keys").unwrap();
    let mut source = Y4mSource::open(&clip(2, "y4m"), Pacing::AsFastAsPossible, false).unwrap();
    let (w, h) = source.size();
    let mut path = VideoPath::new(m.video.as_ref().unwrap(), &frame_stage.inputs[0], 1000.0, w, h);
    let (d, k) = (per_item(&frame_stage.outputs[0]), student.key_len().unwrap());
    let ring = std::sync::Mutex::new(FeatureRing::new(16, d + k));
    let mut frame = Frame::default();
    while ring.lock().unwrap().len() < 16 && source.next_frame(&mut frame).unwrap() {
        if path.ingest(&frame).unwrap() {
            path.encode(session, Some((keys, &keys_stage.inputs[0])), &ring).unwrap();
        }
    }
    let ring = ring.lock().unwrap();
    assert_eq!(ring.len(), 16);
    let features: Vec<f32> = (0..16).flat_map(|i| ring.get(i)[..d].to_vec()).collect();
    let want = student.frame_keys(&edgeqa::tensor::Tensor::f32(vec![16, d], features).unwrap()).unwrap();
    let want = want.as_f32().unwrap();
    for i in 0..16 {
        let got = &ring.get(i)[d..];
        assert!(got.iter().any(|v| *v != 0.0), "entry {i} has a key: {got:?}");
        assert_eq!(got, &want[i * k..(i + 1) * k], "entry {i}");
    }
    // An entry too narrow for features and key is refused, not truncated.
    let narrow = std::sync::Mutex::new(FeatureRing::new(16, d));
    let mut source = Y4mSource::open(&clip(2, "y4m"), Pacing::AsFastAsPossible, false).unwrap();
    let mut path = VideoPath::new(m.video.as_ref().unwrap(), &frame_stage.inputs[0], 1000.0, w, h);
    assert!(source.next_frame(&mut frame).unwrap());
    assert!(!path.ingest(&frame).unwrap(), "one frame does not fill the batch");
    let e = path.encode(session, Some((keys, &keys_stage.inputs[0])), &narrow).unwrap_err().to_string();
    assert!(e.contains("key values"), "{e}");
}

#[test]
fn steady_state_allocates_nothing_per_frame_or_block() {
    let student = student();
    let m = student.manifest().clone();
    let frame_stage = m.stage("frame_encoder").unwrap();
    let session = student.stage_session("frame_encoder").unwrap();
    let mut source = Y4mSource::open(&clip(3, "y4m"), Pacing::AsFastAsPossible, true).unwrap();
    let (w, h) = source.size();
    let bytes = source.max_frame_bytes();
    let hand = Handoff::new(Overflow::Block, || Frame { data: Vec::with_capacity(bytes), ..Frame::default() });
    let mut path = VideoPath::new(m.video.as_ref().unwrap(), &frame_stage.inputs[0], 1000.0, w, h);
    let ring = std::sync::Mutex::new(FeatureRing::new(64, per_item(&frame_stage.outputs[0])));
    let (mut counted, mut frames) = (0, 0);
    for i in 0..200 {
        // Capture → hand-off → preprocessing into the batch: counted after a warm-up batch.
        let (full, calls) = allocations(|| {
            let mut buf = hand.acquire().unwrap();
            assert!(source.next_frame(&mut buf).unwrap());
            hand.publish(buf);
            let frame = hand.take().unwrap();
            let full = path.ingest(&frame).unwrap();
            hand.release(frame);
            full
        });
        if i >= 16 {
            counted += calls;
            frames += 1;
        }
        if full {
            path.encode(session, None, &ring).unwrap();
        }
    }
    assert_eq!(counted, 0, "{counted} allocations over {frames} frames");
    assert_eq!(ring.lock().unwrap().len(), 64);

    let audio_stage = m.stage("audio_encoder").unwrap();
    let session = student.stage_session("audio_encoder").unwrap();
    let rate = m.audio.as_ref().unwrap().sample_rate;
    let block = audio_block(rate);
    let mut source = WavSource::open(&clip(3, "wav"), rate, block, Pacing::AsFastAsPossible, true).unwrap();
    let hand =
        Handoff::new(Overflow::Block, || AudioBlock { samples: Vec::with_capacity(block), ..AudioBlock::default() });
    let mut path = AudioPath::new(m.audio.as_ref().unwrap(), &audio_stage.inputs[0], 1, block);
    let ring = std::sync::Mutex::new(FeatureRing::new(256, per_item(&audio_stage.outputs[0])));
    let batch = audio_stage.inputs[0].shape[0] as u64;
    let (mut counted, mut blocks) = (0, 0);
    for i in 0..2000 {
        let before = path.segments() / batch;
        let calls = allocations(|| {
            let mut buf = hand.acquire().unwrap();
            assert!(source.next_block(&mut buf).unwrap());
            hand.publish(buf);
            let b = hand.take().unwrap();
            path.ingest(&b.samples, b.timestamp.as_secs_f64(), session, &ring).unwrap();
            hand.release(b);
        })
        .1;
        // Blocks that completed a batch ran the encoder, which allocates inside the backend.
        if i >= 100 && path.segments() / batch == before {
            counted += calls;
            blocks += 1;
        }
    }
    assert!(blocks > 1000, "{blocks}");
    assert_eq!(counted, 0, "{counted} allocations over {blocks} blocks");
    assert_eq!(ring.lock().unwrap().len(), 256);
}

/// Starts the engine on a clip's files read as fast as possible, waits for every frame and
/// sample to be encoded.
fn live_on(student: &Arc<Student>, video: Box<dyn FrameSource>, n: usize) -> Live {
    let rate = student.manifest().audio.as_ref().unwrap().sample_rate;
    let audio = WavSource::open(&clip(n, "wav"), rate, audio_block(rate), Pacing::AsFastAsPossible, false).unwrap();
    let cfg = LiveConfig { overflow: Overflow::Block, ..LiveConfig::default() };
    let live = Live::start(Arc::clone(student), Some(video), Some(Box::new(audio)), cfg).unwrap();
    live.wait_until_drained();
    assert_eq!(live.status().failure, None);
    live
}

#[test]
fn answers_after_a_clip_equal_the_per_clip_student() {
    let student = student();
    for n in [0, 5, 11] {
        let video = Y4mSource::open(&clip(n, "y4m"), Pacing::AsFastAsPossible, false).unwrap();
        let live = live_on(&student, Box::new(video), n);
        let features = student.encode_files(Some(&clip(n, "y4m")), Some(&clip(n, "wav"))).unwrap();
        for q in questions_for(n) {
            let want = student.answer(&q, &features).unwrap();
            let got = live.ask(&q).unwrap();
            assert_eq!(got.answer.answer, want.answer, "clip {n}: {q}");
            assert_eq!(got.answer.confidence, want.confidence, "clip {n}: {q}");
        }
    }
}

/// A camera stand-in delivering a Y4M clip's frames as YUYV, the way V4L2 cameras commonly do
/// (4:2:0 chroma rows repeated to 4:2:2), so the engine runs the YUYV conversion.
struct YuyvFrames {
    inner: Y4mSource,
    planes: Frame,
}

impl FrameSource for YuyvFrames {
    fn next_frame(&mut self, frame: &mut Frame) -> Result<bool, CaptureError> {
        if !self.inner.next_frame(&mut self.planes)? {
            return Ok(false);
        }
        let (w, h) = (self.planes.width, self.planes.height);
        let (luma, chroma) = self.planes.data.split_at(w * h);
        let (cb, cr) = chroma.split_at(chroma.len() / 2);
        frame.data.clear();
        for row in 0..h {
            for pair in 0..w / 2 {
                let c = (row / 2) * (w / 2) + pair;
                frame.data.extend([luma[row * w + 2 * pair], cb[c], luma[row * w + 2 * pair + 1], cr[c]]);
            }
        }
        frame.width = w;
        frame.height = h;
        frame.format = PixelFormat::Yuyv { full_range: false };
        frame.timestamp = self.planes.timestamp;
        frame.sequence = self.planes.sequence;
        Ok(true)
    }
    fn describe(&self) -> String {
        format!("YUYV frames of {}", self.inner.describe())
    }
    fn fps(&self) -> f64 {
        self.inner.fps()
    }
    fn max_frame_bytes(&self) -> usize {
        let (w, h) = self.inner.size();
        2 * w * h
    }
    fn size(&self) -> (usize, usize) {
        self.inner.size()
    }
    fn stats(&self) -> SourceStats {
        self.inner.stats()
    }
}

#[test]
fn yuyv_frames_give_the_same_answers_as_the_y4m_clip() {
    let student = student();
    for n in [1, 7] {
        let inner = Y4mSource::open(&clip(n, "y4m"), Pacing::AsFastAsPossible, false).unwrap();
        let video = YuyvFrames { inner, planes: Frame::default() };
        let live = live_on(&student, Box::new(video), n);
        let features = student.encode_files(Some(&clip(n, "y4m")), Some(&clip(n, "wav"))).unwrap();
        for q in questions_for(n) {
            let want = student.answer(&q, &features).unwrap();
            let got = live.ask(&q).unwrap();
            assert_eq!((got.answer.answer, got.answer.confidence), (want.answer, want.confidence), "clip {n}: {q}");
        }
    }
}

/// A camera stand-in delivering a Y4M clip's frames as MJPEG (quality 90, 4:2:2), the other
/// format webcams deliver, so the engine runs the JPEG decoder.
#[cfg(feature = "camera")]
struct MjpegFrames {
    inner: Y4mSource,
    video: edgeqa::capture::y4m::Y4mVideo,
}

#[cfg(feature = "camera")]
impl FrameSource for MjpegFrames {
    fn next_frame(&mut self, frame: &mut Frame) -> Result<bool, CaptureError> {
        if !self.inner.next_frame(frame)? {
            return Ok(false);
        }
        let (w, h) = (self.video.width, self.video.height);
        let rgb = self.video.frame_rgb(frame.sequence as usize).unwrap();
        let n = w * h;
        let rgb8: Vec<u8> = (0..n).flat_map(|i| [0, 1, 2].map(|c| (rgb[c * n + i] * 255.0).round() as u8)).collect();
        frame.data.clear();
        let mut encoder = jpeg_encoder::Encoder::new(&mut frame.data, 90);
        encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_1);
        encoder.encode(&rgb8, w as u16, h as u16, jpeg_encoder::ColorType::Rgb).unwrap();
        frame.format = PixelFormat::Mjpeg;
        Ok(true)
    }
    fn describe(&self) -> String {
        format!("MJPEG frames of {}", self.inner.describe())
    }
    fn fps(&self) -> f64 {
        self.inner.fps()
    }
    fn max_frame_bytes(&self) -> usize {
        self.inner.max_frame_bytes() * 2
    }
    fn size(&self) -> (usize, usize) {
        self.inner.size()
    }
    fn stats(&self) -> SourceStats {
        self.inner.stats()
    }
}

/// MJPEG frames (within the PSNR `tests/camera_decode.rs` states) give the same answers as the
/// clip on these clips; confidences differ slightly.
#[cfg(feature = "camera")]
#[test]
fn mjpeg_frames_give_the_same_answers_as_the_y4m_clip() {
    let student = student();
    let (mut same, mut total) = (0, 0);
    for n in [2, 9] {
        let inner = Y4mSource::open(&clip(n, "y4m"), Pacing::AsFastAsPossible, false).unwrap();
        let video = MjpegFrames { inner, video: read_y4m(&clip(n, "y4m")).unwrap() };
        let live = live_on(&student, Box::new(video), n);
        let features = student.encode_files(Some(&clip(n, "y4m")), Some(&clip(n, "wav"))).unwrap();
        for q in questions_for(n) {
            let want = student.answer(&q, &features).unwrap();
            let got = live.ask(&q).unwrap();
            total += 1;
            same += usize::from(got.answer.answer == want.answer);
            eprintln!(
                "clip {n}: {q}: {} {:.4} vs {} {:.4}",
                got.answer.answer, got.answer.confidence, want.answer, want.confidence
            );
        }
    }
    assert_eq!(same, total, "{same} of {total} answers agree");
}

/// A camera that is unplugged after 20 frames and comes back on the second reopen.
struct Unplugged {
    inner: Y4mSource,
    delivered: u64,
    reopens: u32,
}

impl FrameSource for Unplugged {
    fn next_frame(&mut self, frame: &mut Frame) -> Result<bool, CaptureError> {
        if self.delivered == 20 && self.reopens < 2 {
            return Err(CaptureError::Lost { source_name: "test camera".into(), reason: "No such device".into() });
        }
        self.delivered += 1;
        self.inner.next_frame(frame)
    }
    fn describe(&self) -> String {
        "test camera".into()
    }
    fn fps(&self) -> f64 {
        self.inner.fps()
    }
    fn max_frame_bytes(&self) -> usize {
        self.inner.max_frame_bytes()
    }
    fn size(&self) -> (usize, usize) {
        self.inner.size()
    }
    fn stats(&self) -> SourceStats {
        SourceStats { delivered: self.delivered, ..SourceStats::default() }
    }
    fn reopen(&mut self) -> Result<(), CaptureError> {
        self.reopens += 1;
        if self.reopens < 2 { Err(CaptureError::NoDevice { what: "camera" }) } else { Ok(()) }
    }
}

#[test]
fn a_lost_camera_is_reopened_while_answers_go_on() {
    let student = student();
    let rate = student.manifest().audio.as_ref().unwrap().sample_rate;
    let inner = Y4mSource::open(&clip(2, "y4m"), Pacing::Realtime, true).unwrap();
    let video = Unplugged { inner, delivered: 0, reopens: 0 };
    let audio = WavSource::open(&clip(2, "wav"), rate, audio_block(rate), Pacing::Realtime, true).unwrap();
    let live =
        Live::start(Arc::clone(&student), Some(Box::new(video)), Some(Box::new(audio)), LiveConfig::default()).unwrap();
    let wait_for = |what: &str, cond: &dyn Fn(&edgeqa::stream::LiveStatus) -> bool| {
        let t = Instant::now();
        while !cond(&live.status()) {
            assert!(t.elapsed() < Duration::from_secs(20), "timed out waiting for {what}: {:?}", live.status());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("the loss", &|s| s.video_source.as_deref().is_some_and(|v| v.contains("lost")));
    assert!(live.status().line().contains("test camera lost, reopening"), "{}", live.status().line());
    // Still answering from what the rings hold.
    let a = live.ask("what colour is the square?").unwrap();
    assert!(a.frames_span_s.is_some());
    wait_for("the reopen", &|s| s.video_source.is_none() && s.frames_captured > 24);
    live.stop();
}

#[test]
fn the_plan_shortens_history_to_fit_a_budget_or_refuses() {
    let student = student();
    let shape = SourceShape { video: Some((640 * 480 * 2, 640, 480)), audio: Some(320) };
    let cfg = LiveConfig { history_s: 3600.0, ..LiveConfig::default() };
    let full = edgeqa::stream::plan(&student, shape, &cfg, None).unwrap();
    assert_eq!(full.frame_entries, 3600 * 8);
    let names: Vec<&str> = full.memory.items.iter().map(|i| i.name.as_str()).collect();
    for want in
        ["video hand-off", "frame conversion", "frame feature ring", "audio hand-off", "log-mel", "audio feature ring"]
    {
        assert!(names.iter().any(|n| n.starts_with(want)), "{want} missing from {names:?}");
    }
    // The question selection keeps each frame's key beside its features: K more values an entry.
    let keyed =
        edgeqa::stream::plan(&student, shape, &LiveConfig { selection: Selection::Question, ..cfg.clone() }, None)
            .unwrap();
    let ring = |p: &edgeqa::stream::LivePlan| {
        p.memory.items.iter().find(|i| i.name.starts_with("frame feature ring")).unwrap().clone()
    };
    let k = student.key_len().expect("the demo student has a selector");
    assert!(ring(&keyed).name.contains(&format!("+ {k} key")) && !ring(&full).name.contains("key"), "{keyed:?}");
    assert_eq!(ring(&keyed).bytes - ring(&full).bytes, (full.frame_entries * k * 4) as u64);
    // A budget 2 MiB short of the full plan: the history is shortened and the plan fits.
    let budget = Budget { bytes: full.memory.total() - 2 * 1024 * 1024, board: "small".into() };
    let fitted = edgeqa::stream::plan(&student, shape, &cfg, Some(&budget)).unwrap();
    assert_eq!(fitted.shortened_from, Some(3600.0));
    assert!(fitted.history_s < 3600.0 && fitted.memory.total() <= budget.bytes, "{fitted:?}");
    // Below the student's own plan: refused with the breakdown.
    let tiny = Budget { bytes: student.memory_plan().total() / 2, board: "tiny".into() };
    let e = edgeqa::stream::plan(&student, shape, &cfg, Some(&tiny)).unwrap_err().to_string();
    assert!(e.contains("tiny budget") && e.contains("frame feature ring"), "{e}");
}

#[test]
fn questions_before_anything_was_seen_are_refused_clearly() {
    let student = student();
    let never = Y4mSource::open(&clip(0, "y4m"), Pacing::Realtime, true).unwrap();
    struct Never(Y4mSource);
    impl FrameSource for Never {
        fn next_frame(&mut self, _: &mut Frame) -> Result<bool, CaptureError> {
            std::thread::sleep(Duration::from_millis(50));
            Err(CaptureError::Lost { source_name: "camera".into(), reason: "not ready".into() })
        }
        fn describe(&self) -> String {
            "camera".into()
        }
        fn fps(&self) -> f64 {
            self.0.fps()
        }
        fn max_frame_bytes(&self) -> usize {
            self.0.max_frame_bytes()
        }
        fn size(&self) -> (usize, usize) {
            self.0.size()
        }
        fn stats(&self) -> SourceStats {
            SourceStats::default()
        }
    }
    let rate = student.manifest().audio.as_ref().unwrap().sample_rate;
    let audio = WavSource::open(&clip(0, "wav"), rate, audio_block(rate), Pacing::Realtime, true).unwrap();
    let live =
        Live::start(Arc::clone(&student), Some(Box::new(Never(never))), Some(Box::new(audio)), LiveConfig::default())
            .unwrap();
    let e = live.ask("what colour is the square?").unwrap_err().to_string();
    assert!(e.contains("nothing seen yet"), "{e}");
}
