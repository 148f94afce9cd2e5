//! Latency of the question-answering pipeline on the demo student, per backend:
//! clip encoding (decode + preprocess + encoders) and one question (tokenizer + question encoder + head).
//!
//! `cargo bench -p edgeqa-benches --bench pipeline`

use criterion::{Criterion, criterion_group, criterion_main};
use edgeqa::backend::BackendChoice;
use edgeqa::capture::{wav::read_wav, y4m::read_y4m};
use edgeqa::package::Package;
use edgeqa::pipeline::Student;
use edgeqa_benches::demo_dir;

/// Every backend this build can run; the same bench runs on each.
/// Every backend this build can run; the same bench runs on each (wgpu is skipped, with the
/// reason, where no adapter exists).
const BACKENDS: &[(&str, BackendChoice)] = &[("tract", BackendChoice::Tract), ("wgpu", BackendChoice::Wgpu)];

fn pipeline(c: &mut Criterion) {
    let dir = demo_dir();
    let pkg = Package::open(&dir.join("demo.eqa")).expect("demo package");
    let video = read_y4m(&dir.join("eval/clip_000.y4m")).expect("clip");
    let rate = pkg.manifest().audio.as_ref().map_or(16_000, |a| a.sample_rate);
    let audio = read_wav(&dir.join("eval/clip_000.wav"), rate).expect("audio");
    for &(name, choice) in BACKENDS {
        let student = match Student::load(&pkg, choice, None) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("demo/{name}: skipped: {e}");
                continue;
            }
        };
        let mut group = c.benchmark_group(format!("demo/{name}"));
        group.bench_function("encode_clip", |b| b.iter(|| student.encode(Some(&video), Some(&audio)).expect("encode")));
        let clip = student.encode(Some(&video), Some(&audio)).expect("encode");
        group.bench_function("question", |b| {
            b.iter(|| student.answer("what colour is the square?", &clip).expect("answer"))
        });
        group.finish();
    }
    c.bench_function("package/open_and_verify", |b| b.iter(|| Package::open(&dir.join("demo.eqa")).expect("open")));
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
