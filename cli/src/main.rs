//! `edgeqa`: the device binary. Answers questions about clips with a student package.

mod cli;

/// Counts heap bytes so `eval`/`ask` can report the measured peak.
#[global_allocator]
static ALLOC: edgeqa::budget::CountingAlloc = edgeqa::budget::CountingAlloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    quiet_broken_pipe();
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

/// A reader that closes the pipe early (`edgeqa inspect P | head`) ends the process quietly, as
/// it does any Unix tool: Rust ignores SIGPIPE, and `println!` then panics on the EPIPE error.
fn quiet_broken_pipe() {
    // SAFETY: restoring a signal's default disposition at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
