//! Command-line interface of `edgeqa`: one module per subcommand.

mod ask;
mod bench;
mod boards;
mod demo;
mod devices;
mod eval;
mod inspect;
mod live;
mod run;
#[cfg(feature = "voice")]
mod voice;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use edgeqa::backend::BackendChoice;
use edgeqa::budget::Budget;
use edgeqa::package::Package;
use edgeqa::pipeline::Student;

/// Answers questions about what a device sees and hears, offline, with a distilled student.
#[derive(Debug, Parser)]
#[command(name = "edgeqa", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show a package: stages, shapes, sizes, verified checksums, op histogram.
    Inspect(inspect::Args),
    /// Run a generic package (or one stage of a student) on .npy inputs, write .npy outputs.
    Run(run::Args),
    /// Answer one question about a clip (Y4M video and/or WAV audio).
    Ask(ask::Args),
    /// Accuracy of a student on a question set (JSON lines).
    Eval(eval::Args),
    /// Watch and listen continuously (camera and microphone, or files standing in for them) and
    /// answer the questions typed on stdin.
    Live(live::Args),
    /// List the cameras and microphones this build can open.
    Devices(devices::Args),
    /// The bundled demo student answering questions on the bundled clips.
    Demo(demo::Args),
    /// List the board profiles built into this binary (memory budget, backend, target).
    Boards(boards::Args),
    /// Latency of a package on this device: every stage, and a student's question path, on
    /// one backend or several side by side.
    Bench(bench::Args),
}

/// Backend selection shared by the subcommands that run a model.
#[derive(Debug, clap::Args)]
struct BackendArg {
    /// Backend: `auto` picks the GPU (wgpu) when a hardware adapter can run a stage, else tract,
    /// and logs why; `wgpu` forces our GPU kernels (lavapipe counts); `tract` runs on the CPU.
    /// TFLite packages run on `litert` (LiteRT) or `tflite` (the TF Lite C library); `auto`
    /// takes litert for them when the build has it (cargo features `litert`, `tflite`).
    #[arg(long, default_value = "auto", value_parser = parse_backend)]
    backend: BackendChoice,
    /// Threads for tract's matrix products (convolutions, MatMul, Gemm); the rest of a stage
    /// runs on one thread. Default: the `--board` profile's `threads`, else 1. A board has as
    /// many cores as it has, no more: `edgeqa bench --threads 1,2,4` shows what pays.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

impl BackendArg {
    /// The thread count: `--threads`, else the board profile's, else 1. A build without tract's
    /// thread pool (the `threads` feature) takes 1 for the board's count and says so in the log.
    #[cfg(feature = "tract")]
    fn threads(&self, board: Option<&str>) -> Result<usize> {
        Ok(match (self.threads, board) {
            (Some(n), _) => n,
            (None, Some(name)) => board_threads(&edgeqa_firmware_config::find(name)?),
            (None, None) => 1,
        })
    }

    /// Applies the thread count ([`BackendArg::threads`]) for the whole process. A build
    /// without tract has no CPU threads to set: it refuses `--threads N` above 1 and ignores a
    /// board's count.
    fn apply_threads(&self, board: Option<&str>) -> Result<usize> {
        #[cfg(feature = "tract")]
        {
            let threads = self.threads(board)?;
            edgeqa::backend::tract::set_threads(threads).context("--threads")?;
            Ok(threads)
        }
        #[cfg(not(feature = "tract"))]
        {
            let _ = board;
            if self.threads.is_some_and(|n| n != 1) {
                anyhow::bail!("--threads: this build has no tract backend, so there are no CPU threads to set");
            }
            Ok(1)
        }
    }
}

/// Memory budget selection shared by the subcommands that load a student.
#[derive(Debug, clap::Args)]
struct BudgetArg {
    /// Enforce the memory budget of this board profile (see `edgeqa boards`).
    #[arg(long, value_name = "NAME")]
    board: Option<String>,
    /// Enforce this memory budget in MiB (overrides the board's).
    #[arg(long, value_name = "MIB")]
    memory_budget_mib: Option<u32>,
}

impl BudgetArg {
    /// The budget in force, if any.
    fn resolve(&self) -> Result<Option<Budget>> {
        let board = self.board.as_deref().map(edgeqa_firmware_config::find).transpose()?;
        Ok(match (self.memory_budget_mib, board) {
            (Some(mib), b) => Some(Budget {
                bytes: u64::from(mib) * 1024 * 1024,
                board: b.map_or_else(|| "--memory-budget-mib".to_string(), |b| b.name),
            }),
            (None, Some(b)) => Some(Budget { bytes: b.memory_budget_bytes(), board: b.name }),
            (None, None) => None,
        })
    }
}

/// tract's thread count for a board: its profile's `threads`, or 1 (logged) in a build without
/// tract's thread pool (the `threads` feature).
#[cfg(feature = "tract")]
fn board_threads(board: &edgeqa_firmware_config::Board) -> usize {
    let n = board.threads as usize;
    if n > 1 && !edgeqa::backend::tract::THREAD_POOL {
        log::info!("board {}: {n} threads, but this build has no thread pool: tract runs on 1", board.name);
        return 1;
    }
    n
}

/// Opens a student package and loads it, then releases the package mapping (the backend holds
/// what it needs).
fn load_student(path: &Path, backend: &BackendArg, budget: &BudgetArg) -> Result<Student> {
    backend.apply_threads(budget.board.as_deref())?;
    let budget = budget.resolve()?;
    let pkg = open_package(path)?;
    Ok(Student::load(&pkg, backend.backend, budget)?)
}

fn parse_backend(s: &str) -> Result<BackendChoice, String> {
    s.parse()
}

/// What to do about a library error, in this binary's flags: the library says what is wrong, the
/// binary says which flag or command helps.
pub fn advice(e: &anyhow::Error) -> Option<&'static str> {
    use edgeqa::backend::BackendError;
    use edgeqa::pipeline::PipelineError;
    use edgeqa::text::TokenizerError;
    fn backend(b: &BackendError) -> Option<&'static str> {
        match b {
            BackendError::NotBuilt { .. } => Some("choose another --backend, or rebuild edgeqa with that feature"),
            BackendError::WrongFormat { format: edgeqa::manifest::StageFormat::Tflite, .. } => {
                Some("--backend litert or --backend tflite runs it (edgeqa built with those features)")
            }
            BackendError::WrongFormat { .. } => Some("--backend tract or --backend wgpu runs it"),
            BackendError::Unsupported { backend: "wgpu", .. } | BackendError::Load { backend: "wgpu", .. } => {
                Some("--backend tract runs it on the CPU")
            }
            #[cfg(feature = "wgpu")]
            BackendError::Device { .. } => Some("--backend tract runs it on the CPU"),
            _ => None,
        }
    }
    e.chain().find_map(|cause| {
        if let Some(edgeqa::stream::LiveError::Pipeline(p)) = cause.downcast_ref::<edgeqa::stream::LiveError>() {
            return match p {
                PipelineError::NeedsVideo => Some("pass --camera PATH or --video CLIP.y4m"),
                PipelineError::NeedsAudio => Some("pass --mic NAME or --audio CLIP.wav"),
                PipelineError::Question(TokenizerError::UnknownWords(_)) => {
                    Some("`edgeqa inspect PACKAGE --vocab` lists the words it knows")
                }
                PipelineError::Backend(b) => backend(b),
                _ => None,
            };
        }
        if let Some(p) = cause.downcast_ref::<PipelineError>() {
            return match p {
                PipelineError::NeedsVideo => Some("pass --video CLIP.y4m"),
                PipelineError::NeedsAudio => Some("pass --audio CLIP.wav"),
                PipelineError::Question(TokenizerError::UnknownWords(_)) => {
                    Some("`edgeqa inspect PACKAGE --vocab` lists the words it knows")
                }
                PipelineError::Backend(b) => backend(b),
                _ => None,
            };
        }
        #[cfg(feature = "voice")]
        if let Some(edgeqa::voice::VoiceError::AcousticModel { .. }) = cause.downcast_ref::<edgeqa::voice::VoiceError>()
        {
            return Some("--speech-model DIR points at another acoustic model directory");
        }
        if let Some(TokenizerError::UnknownWords(_)) = cause.downcast_ref::<TokenizerError>() {
            return Some("`edgeqa inspect PACKAGE --vocab` lists the words it knows");
        }
        backend(cause.downcast_ref::<BackendError>()?)
    })
}

/// Dispatches a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect(a) => inspect::main(a),
        Command::Run(a) => run::main(a),
        Command::Ask(a) => ask::main(a),
        Command::Eval(a) => eval::main(a),
        Command::Live(a) => live::main(a),
        Command::Devices(a) => devices::main(a),
        Command::Demo(a) => demo::main(a),
        Command::Boards(a) => boards::main(a),
        Command::Bench(a) => bench::main(a),
    }
}

/// Opens and fully verifies a package.
fn open_package(path: &Path) -> Result<Package> {
    Package::open(path).context("cannot use the package")
}

/// Prints a value as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Where the bundled demo lives: `$EDGEQA_DEMO_DIR`, else `models/demo` under the current
/// directory, else the copy in the source tree this binary was built from.
fn demo_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("EDGEQA_DEMO_DIR") {
        return PathBuf::from(d);
    }
    let local = PathBuf::from("models/demo");
    if local.join("demo.eqa").exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/demo")
}
