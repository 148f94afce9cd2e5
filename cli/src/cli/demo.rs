//! `edgeqa demo`: the bundled student answering questions about the bundled clips.

use std::path::PathBuf;

use anyhow::{Context, Result};
use edgeqa::eval::{EvalItem, evaluate, load_set};

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
    #[arg(long, default_value_t = 6)]
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
    // A handful of questions on each of the first clips, as many question types as possible.
    let mut clips: Vec<(ClipKey, Vec<&EvalItem>)> = Vec::new();
    for item in &all {
        let key = (item.video.clone(), item.audio.clone());
        if let Some((_, list)) = clips.iter_mut().find(|(k, _)| *k == key) {
            list.push(item);
        } else if clips.len() < args.clips {
            clips.push((key, vec![item]));
        }
    }
    let items: Vec<EvalItem> = clips.iter().flat_map(|(_, list)| pick_varied(list, args.per_clip)).cloned().collect();
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
            println!("  {:<10} {:<62} {:<9} {:<9} {:>6} {:>7}", "type", "question", "answer", "truth", "conf", "ms");
            last_clip = clip;
        }
        let ms: f64 = answer.timings_ms.values().sum();
        let mark = if answer.answer == item.answer { ' ' } else { '✗' };
        println!(
            "  {:<10} {:<62} {:<9} {:<9} {:>5.1}% {:>7.2} {mark}",
            item.kind.as_deref().unwrap_or("-"),
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

/// Up to `n` of `items`, in their order, taking one question of each type before any second one.
fn pick_varied<'a>(items: &[&'a EvalItem], n: usize) -> Vec<&'a EvalItem> {
    let mut taken = vec![false; items.len()];
    let mut seen_types: Vec<Option<&str>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let t = item.kind.as_deref();
        if seen_types.len() < n && !seen_types.contains(&t) {
            seen_types.push(t);
            taken[i] = true;
        }
    }
    let mut extra = n.saturating_sub(seen_types.len());
    for t in taken.iter_mut() {
        if extra > 0 && !*t {
            *t = true;
            extra -= 1;
        }
    }
    items.iter().zip(taken).filter(|(_, t)| *t).map(|(item, _)| *item).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(question: &str, kind: &str) -> EvalItem {
        EvalItem {
            video: None,
            audio: None,
            question: question.into(),
            answer: String::new(),
            kind: Some(kind.into()),
            window: None,
            line: 0,
        }
    }

    fn questions(picked: &[&EvalItem]) -> Vec<String> {
        picked.iter().map(|i| i.question.clone()).collect()
    }

    #[test]
    fn picks_one_of_each_type_first_then_fills_in_order() {
        let items = [item("a1", "a"), item("a2", "a"), item("b1", "b"), item("c1", "c"), item("b2", "b")];
        let refs: Vec<&EvalItem> = items.iter().collect();
        assert_eq!(questions(&pick_varied(&refs, 2)), ["a1", "b1"]);
        assert_eq!(questions(&pick_varied(&refs, 3)), ["a1", "b1", "c1"]);
        assert_eq!(questions(&pick_varied(&refs, 4)), ["a1", "a2", "b1", "c1"]);
        assert_eq!(pick_varied(&refs, 9).len(), 5);
        assert!(pick_varied(&refs, 0).is_empty());
    }
}
