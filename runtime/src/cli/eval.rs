//! `edgeqa eval`: accuracy of a student on a question set.

use std::path::PathBuf;

use anyhow::Result;
use edgeqa::eval::{evaluate, load_set};
use edgeqa::pipeline::Student;

use super::{BackendArg, open_package, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The student package (.eqa).
    #[arg(long)]
    package: PathBuf,
    /// Question set: JSON lines {"video","audio","question","answer","type"}, paths relative to it.
    #[arg(long)]
    set: PathBuf,
    /// Print JSON: {"n", "accuracy", "per_type": {...}, ...}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArg,
}

pub fn main(args: Args) -> Result<()> {
    let pkg = open_package(&args.package)?;
    let student = Student::load(&pkg, args.backend.backend)?;
    let items = load_set(&args.set)?;
    let report = evaluate(&student, &args.set, &items, |_, _| {})?;
    if args.json {
        return print_json(&report);
    }
    println!(
        "{} questions, accuracy {:.1}% ({} correct) on {}",
        report.n,
        report.accuracy * 100.0,
        report.correct,
        report.backend
    );
    for (kind, s) in &report.per_type {
        println!("  {kind:<16} {:>5.1}%  ({}/{})", s.accuracy * 100.0, s.correct, s.n);
    }
    Ok(())
}
