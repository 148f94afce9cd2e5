//! `edgeqa-convert`: the host tool that turns ONNX students into `.eqa` packages.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use edgeqa_convert::{convert_model, convert_student, parse_shape_args};

/// Converts a student directory (stage ONNX files + student.toml) or one ONNX model into a
/// single verified .eqa package. The same input always gives a byte-identical package.
#[derive(Debug, Parser)]
#[command(name = "edgeqa-convert", version, about)]
struct Args {
    /// Student directory: student.toml and <stage>.onnx for frame_encoder, audio_encoder,
    /// question_encoder (each optional) and head.
    #[arg(long, conflicts_with = "model", required_unless_present = "model")]
    student: Option<PathBuf>,
    /// A single ONNX model, packaged as the generic stage `model`.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Fix a symbolic input shape of --model: NAME=D0,D1,... (repeatable).
    #[arg(long = "input-shape", value_name = "NAME=D0,D1,...", requires = "model")]
    input_shapes: Vec<String>,
    /// Where to write the package.
    #[arg(short, long)]
    output: PathBuf,
}

fn run(args: Args) -> Result<()> {
    let converted = match (&args.student, &args.model) {
        (Some(dir), None) => convert_student(dir)?,
        (None, Some(model)) => convert_model(model, &parse_shape_args(&args.input_shapes)?)?,
        _ => bail!("give --student DIR or --model FILE.onnx"),
    };
    converted.write(&args.output).with_context(|| "cannot write the package")?;
    let m = &converted.manifest;
    println!(
        "wrote {} ({} bytes): {} `{}`, stages {}",
        args.output.display(),
        converted.bytes.len(),
        format!("{:?}", m.kind).to_lowercase(),
        m.name,
        m.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", edgeqa::error_line(&e));
            ExitCode::FAILURE
        }
    }
}
