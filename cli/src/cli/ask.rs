//! `edgeqa ask`: one question about one clip.

use std::path::PathBuf;

use anyhow::Result;
use edgeqa::budget::MemoryReport;

use super::{BackendArg, BudgetArg, load_student, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The student package (.eqa).
    #[arg(long)]
    package: PathBuf,
    /// The clip's video (YUV4MPEG2, .y4m).
    #[arg(long)]
    video: Option<PathBuf>,
    /// The clip's audio (WAV at the student's sample rate).
    #[arg(long)]
    audio: Option<PathBuf>,
    /// Print JSON: question, answer, confidence, top_k, backend, timings_ms.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArg,
    #[command(flatten)]
    budget: BudgetArg,
    /// The question, e.g. "what colour is the square?"
    question: String,
}

pub fn main(args: Args) -> Result<()> {
    let student = load_student(&args.package, &args.backend, &args.budget)?;
    let clip = student.encode_files(args.video.as_deref(), args.audio.as_deref())?;
    let mut answer = student.answer(&args.question, &clip)?;
    answer.timings_ms.extend(clip.timings_ms.clone());
    if args.json {
        let memory = MemoryReport::measure(student.memory_plan(), student.budget());
        return print_json(&serde_json::json!({
            "question": answer.question,
            "answer": answer.answer,
            "confidence": answer.confidence,
            "top_k": answer.top_k,
            "backend": answer.backend,
            "timings_ms": answer.timings_ms,
            "memory": memory,
        }));
    }
    println!("{} ({:.1}%)", answer.answer, answer.confidence * 100.0);
    let rest: Vec<String> =
        answer.top_k.iter().skip(1).map(|s| format!("{} {:.1}%", s.answer, s.confidence * 100.0)).collect();
    if !rest.is_empty() {
        println!("  then: {}", rest.join(", "));
    }
    let timings: Vec<String> = answer.timings_ms.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
    println!("  {} ms: {}", answer.backend, timings.join(", "));
    Ok(())
}
