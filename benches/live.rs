//! Question latency from the live engine's rings against re-encoding the frames per question,
//! side by side in one run, on the demo student (tract): R = 256 cached frames.
//!
//! - `live/question_from_rings`: [`Live::ask`] once 256 frames (and their audio) are encoded:
//!   a snapshot of the rings, the question encoder and the head;
//! - `live/reencode_256_frames_per_question`: what answering costs without the rings: the 256
//!   frames preprocessed and run through the frame encoder, then the same question.
//!
//! `cargo bench -p edgeqa-benches --bench live` (`docs/live.md` has the figures).

use std::sync::{Arc, Mutex};

use criterion::{Criterion, criterion_group, criterion_main};
use edgeqa::backend::BackendChoice;
use edgeqa::capture::files::{Pacing, WavSource, Y4mSource};
use edgeqa::capture::y4m::read_y4m;
use edgeqa::capture::{Frame, FrameSource};
use edgeqa::package::Package;
use edgeqa::pipeline::{ClipFeatures, Student};
use edgeqa::stream::{FeatureRing, Live, LiveConfig, Overflow, Selection, Selector, VideoPath, audio_block, per_item};
use edgeqa_benches::demo_dir;

const R: usize = 256;
const QUESTION: &str = "what colour is the square?";

fn live(c: &mut Criterion) {
    let dir = demo_dir();
    let pkg = Package::open(&dir.join("demo.eqa")).expect("demo package");
    let student = Arc::new(Student::load(&pkg, BackendChoice::Tract, None).expect("load"));
    let m = student.manifest().clone();

    // A 256-frame clip: the eval clips' frames one after another.
    let tmp = std::env::temp_dir().join(format!("edgeqa-live-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let long = tmp.join("long.y4m");
    let mut planes = Vec::new();
    let (mut w, mut h) = (0, 0);
    for n in 0.. {
        let Ok(v) = read_y4m(&dir.join(format!("eval/clip_{n:03}.y4m"))) else { break };
        (w, h) = (v.width, v.height);
        for i in 0..v.frame_count() {
            if planes.len() < R {
                planes.push(v.frame_raw(i).expect("frame").into_owned());
            }
        }
    }
    assert_eq!(planes.len(), R, "the eval clips have fewer than {R} frames");
    let mut bytes = format!("YUV4MPEG2 W{w} H{h} F8:1 Ip C420jpeg\n").into_bytes();
    for p in &planes {
        bytes.extend_from_slice(b"FRAME\n");
        bytes.extend_from_slice(p);
    }
    std::fs::write(&long, bytes).expect("write");

    let rate = m.audio.as_ref().expect("audio").sample_rate;
    let video = Y4mSource::open(&long, Pacing::AsFastAsPossible, false).expect("video");
    let audio =
        WavSource::open(&dir.join("eval/clip_000.wav"), rate, audio_block(rate), Pacing::AsFastAsPossible, true)
            .expect("audio");
    let cfg = LiveConfig { history_s: R as f64 / 8.0, overflow: Overflow::Block, ..LiveConfig::default() };
    // The looping audio never ends: wait until the video is fully encoded.
    let live = Live::start(Arc::clone(&student), Some(Box::new(video)), Some(Box::new(audio)), cfg).expect("live");
    while live.status().frames_encoded < R as u64 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(live.status().frame_ring.0, R);

    let stage = m.stage("frame_encoder").expect("frame encoder");
    let session = student.stage_session("frame_encoder").expect("session");
    let p = m.video.clone().expect("video");
    let mut group = c.benchmark_group("live");
    group.sample_size(20);
    group.bench_function("question_from_rings", |b| b.iter(|| live.ask(QUESTION).expect("answer")));
    let mut source = Y4mSource::open(&long, Pacing::AsFastAsPossible, true).expect("video");
    let mut frame = Frame::default();
    let audio_stage = m.stage("audio_encoder").expect("audio encoder");
    let audio_shape = vec![m.audio.as_ref().expect("audio").segments, per_item(&audio_stage.outputs[0])];
    group.bench_function("reencode_256_frames_per_question", |b| {
        b.iter(|| {
            let ring = Mutex::new(FeatureRing::new(R, per_item(&stage.outputs[0])));
            let mut path = VideoPath::new(&p, &stage.inputs[0], 1000.0, w, h);
            for _ in 0..R {
                source.next_frame(&mut frame).expect("frame");
                if path.ingest(&frame).expect("ingest") {
                    path.encode(session, None, &ring).expect("encode");
                }
            }
            path.encode(session, None, &ring).expect("encode");
            let ring = ring.lock().expect("ring");
            let mut chosen = Vec::new();
            Selection::Uniform { window: None }.select(&ring, p.frames, &mut chosen);
            let data: Vec<f32> = chosen.iter().flat_map(|&i| ring.get(i).to_vec()).collect();
            let frames = edgeqa::tensor::Tensor::f32(vec![p.frames, ring.dim()], data).expect("tensor");
            let n = audio_shape.iter().product();
            let audio = edgeqa::tensor::Tensor::f32(audio_shape.clone(), vec![0.0; n]).expect("tensor");
            student.answer(QUESTION, &ClipFeatures::from_features(Some(frames), Some(audio))).expect("answer")
        })
    });
    group.finish();
    drop(live);
    let _ = std::fs::remove_dir_all(&tmp);
}

criterion_group!(benches, live);
criterion_main!(benches);
