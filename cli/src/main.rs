//! `edgeqa`: the device binary. Answers questions about clips with a student package.

mod cli;

/// Counts heap bytes so `eval`/`ask` can report the measured peak.
#[global_allocator]
static ALLOC: edgeqa::budget::CountingAlloc = edgeqa::budget::CountingAlloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut line = format!("error: {}", edgeqa::error_line(e.as_ref()));
            if let Some(hint) = cli::advice(&e) {
                line.push_str(&format!(" ({hint})"));
            }
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}
