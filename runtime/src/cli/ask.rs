//! `edgeqa ask`: one question about one clip.

use std::path::PathBuf;

use anyhow::Result;
use edgeqa::pipeline::Student;

use super::{BackendArg, open_package, print_json};

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
    /// The question, e.g. "what colour is the square?"
    question: String,
}

pub fn main(args: Args) -> Result<()> {
    let pkg = open_package(&args.package)?;
    let student = Student::load(&pkg, args.backend.backend)?;
    let clip = student.encode_files(args.video.as_deref(), args.audio.as_deref())?;
    let mut answer = student.answer(&args.question, &clip)?;
    answer.timings_ms.extend(clip.timings_ms.clone());
    if args.json {
        return print_json(&answer);
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
