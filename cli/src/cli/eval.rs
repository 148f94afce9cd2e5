//! `edgeqa eval`: accuracy of a student on a question set.

use std::path::PathBuf;

use anyhow::Result;
use edgeqa::budget::MemoryReport;
use edgeqa::eval::{EvalSelection, evaluate_with, load_set};

/// `memory: peak RSS 12.3 MiB, heap 4.5 MiB, plan 10.0 MiB, budget 64 MiB (rpi-zero-2w)`.
pub fn memory_line(m: &MemoryReport) -> String {
    let rss = m.peak_rss_mib.map_or("n/a".to_string(), |r| format!("{r:.1} MiB"));
    let budget = match (&m.budget_mib, &m.board) {
        (Some(b), Some(board)) => format!(", budget {b:.0} MiB ({board})"),
        _ => String::new(),
    };
    format!("memory: peak RSS {rss}, peak heap {:.1} MiB, plan {:.1} MiB{budget}", m.peak_heap_mib, m.plan_mib)
}

use super::{BackendArg, BudgetArg, load_student, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The student package (.eqa).
    #[arg(long)]
    package: PathBuf,
    /// Question set: JSON lines {"video","audio","question","answer","type"}, paths relative to it.
    #[arg(long)]
    set: PathBuf,
    /// Print JSON: {"n", "accuracy", "per_type": {...}, "memory": {...}, ...}.
    #[arg(long)]
    json: bool,
    /// With --json, also list every question with its answer, truth and confidence.
    #[arg(long, requires = "json")]
    answers: bool,
    /// Which frames of each clip the student sees: `uniform` spreads them over the whole clip,
    /// `recent` takes the last ones, `question` lets the student's selector stage choose the
    /// part for each question (`uniform` when the student has none), `oracle` the frames of the
    /// question's "window" (sets made by `training/synth.py --long` have one; for evaluation
    /// only). Each takes the audio of the same time.
    #[arg(long, value_enum, default_value_t = Selection::Uniform)]
    selection: Selection,
    #[command(flatten)]
    backend: BackendArg,
    #[command(flatten)]
    budget: BudgetArg,
}

/// `--selection`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Selection {
    Uniform,
    Recent,
    Question,
    Oracle,
}

impl From<Selection> for EvalSelection {
    fn from(s: Selection) -> EvalSelection {
        match s {
            Selection::Uniform => EvalSelection::Uniform,
            Selection::Recent => EvalSelection::Recent,
            Selection::Question => EvalSelection::Question,
            Selection::Oracle => EvalSelection::Oracle,
        }
    }
}

pub fn main(args: Args) -> Result<()> {
    let student = load_student(&args.package, &args.backend, &args.budget)?;
    let items = load_set(&args.set)?;
    let mut answers = Vec::new();
    let report = evaluate_with(&student, &args.set, &items, args.selection.into(), |item, a| {
        if args.answers {
            answers.push(serde_json::json!({
                "line": item.line,
                "question": item.question,
                "answer": a.answer,
                "truth": item.answer,
                "confidence": a.confidence,
            }));
        }
    })?;
    let memory = MemoryReport::measure(student.memory_plan(), student.budget());
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["memory"] = serde_json::to_value(&memory)?;
        if args.answers {
            v["answers"] = serde_json::Value::Array(answers);
        }
        return print_json(&v);
    }
    println!(
        "{} questions, accuracy {:.1}% ({} correct) on {}, selection {}",
        report.n,
        report.accuracy * 100.0,
        report.correct,
        report.backend,
        report.selection.name()
    );
    for (kind, s) in &report.per_type {
        println!("  {kind:<16} {:>5.1}%  ({}/{})", s.accuracy * 100.0, s.correct, s.n);
    }
    println!("{}", memory_line(&memory));
    Ok(())
}
