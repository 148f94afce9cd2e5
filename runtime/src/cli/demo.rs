//! `edgeqa demo`: the bundled student answering questions about the bundled clips.

use std::path::PathBuf;

use anyhow::{Context, Result};
use edgeqa::eval::{evaluate, load_set};

use super::{BackendArg, BudgetArg, demo_dir, load_student};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Package to demo (default: the bundled `models/demo/demo.eqa`).
    #[arg(long)]
    package: Option<PathBuf>,
    /// Question set (default: the bundled `models/demo/eval/questions.jsonl`).
    #[arg(long)]
    set: Option<PathBuf>,
    /// Questions asked per clip.
    #[arg(long, default_value_t = 4)]
    per_clip: usize,
    /// Number of clips.
    #[arg(long, default_value_t = 6)]
    clips: usize,
    #[command(flatten)]
    backend: BackendArg,
    #[command(flatten)]
    budget: BudgetArg,
}

/// A clip: its video and audio files.
type ClipKey = (Option<PathBuf>, Option<PathBuf>);

pub fn main(args: Args) -> Result<()> {
    let dir = demo_dir();
    let package = args.package.unwrap_or_else(|| dir.join("demo.eqa"));
    let set = args.set.unwrap_or_else(|| dir.join("eval/questions.jsonl"));
    let student = load_student(&package, &args.backend, &args.budget)
        .with_context(|| "the demo needs its bundled package (set EDGEQA_DEMO_DIR or pass --package)")?;
    let all = load_set(&set)?;
    // A handful of questions on each of the first clips.
    let mut items = Vec::new();
    // (clip, questions taken from it), in the order clips first appear.
    let mut clips: Vec<(ClipKey, usize)> = Vec::new();
    for item in &all {
        let key = (item.video.clone(), item.audio.clone());
        let slot = match clips.iter().position(|(k, _)| *k == key) {
            Some(slot) => slot,
            None if clips.len() < args.clips => {
                clips.push((key, 0));
                clips.len() - 1
            }
            None => continue,
        };
        if clips[slot].1 < args.per_clip {
            clips[slot].1 += 1;
            items.push(item.clone());
        }
    }
    let m = student.manifest();
    println!(
        "edgeqa demo: student `{}` ({}) on {} backend, {} clips",
        m.name,
        m.quantization.scheme,
        student.backend().0,
        clips.len()
    );
    let mut last_clip = None;
    let report = evaluate(&student, &set, &items, |item, answer| {
        let clip = item
            .video
            .as_ref()
            .or(item.audio.as_ref())
            .and_then(|p| p.file_name())
            .map(|f| f.to_string_lossy().to_string());
        if clip != last_clip {
            println!("\n{}", clip.clone().unwrap_or_default());
            println!("  {:<48} {:<10} {:<10} {:>6} {:>8}", "question", "answer", "truth", "conf", "ms");
            last_clip = clip;
        }
        let ms: f64 = answer.timings_ms.values().sum();
        let mark = if answer.answer == item.answer { ' ' } else { '✗' };
        println!(
            "  {:<48} {:<10} {:<10} {:>5.1}% {:>8.2} {mark}",
            item.question,
            answer.answer,
            item.answer,
            answer.confidence * 100.0,
            ms
        );
    })?;
    println!(
        "\naccuracy {:.1}% ({}/{}); ms = question encoder + head per question (clips are encoded once)",
        report.accuracy * 100.0,
        report.correct,
        report.n
    );
    let memory = edgeqa::budget::MemoryReport::measure(student.memory_plan(), student.budget());
    println!("{}", super::eval::memory_line(&memory));
    Ok(())
}
