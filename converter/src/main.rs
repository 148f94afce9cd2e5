//! `edgeqa-convert`: the host tool that turns ONNX students into `.eqa` packages, quantizes them
//! and verifies the result against the fp32 model.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use edgeqa_convert::calibrate::Method;
use edgeqa_convert::quantize::{Int8Form, Scheme};
use edgeqa_convert::quantized::{self, Budget, OptionError, Options};
use edgeqa_convert::report::Report;
use edgeqa_convert::{ConvertError, convert_model_with, convert_student_with, parse_shape_args};
use edgeqa_format::package::Package;

/// Converts a student directory (stage ONNX files + student.toml) or one ONNX model into a
/// single verified .eqa package, optionally quantized. The same input always gives a
/// byte-identical package.
#[derive(Debug, Parser)]
#[command(
    name = "edgeqa-convert",
    version,
    about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    convert: ConvertArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compares two packages of one model (e.g. fp32 and a quantized one) on a verification set.
    Compare(CompareArgs),
}

#[derive(Debug, Args)]
struct ConvertArgs {
    /// Student directory: student.toml and <stage>.onnx for frame_encoder, audio_encoder,
    /// question_encoder (each optional) and head.
    #[arg(long, conflicts_with = "model", required_unless_present = "model")]
    student: Option<PathBuf>,
    /// A single ONNX or TFLite (.tflite) model, packaged as the generic stage `model`.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Fix a symbolic input shape of --model: NAME=D0,D1,... (repeatable).
    #[arg(long = "input-shape", value_name = "NAME=D0,D1,...", requires = "model")]
    input_shapes: Vec<String>,
    /// Where to write the package.
    #[arg(short, long, required = true)]
    output: Option<PathBuf>,
    /// fp32 (as exported), int8 (per-channel int8 weights, calibrated uint8 activations),
    /// w8 / w4 (weight-only int8 / int4 with block scales).
    #[arg(long, default_value = "fp32")]
    scheme: Scheme,
    /// Calibration set: a folder with one subfolder per sample holding <input>.npy, or for a
    /// student an `edgeqa eval` question set (.jsonl).
    #[arg(long, value_name = "DIR|SET.jsonl")]
    calibration: Option<PathBuf>,
    /// Held-out verification set (same forms). Without it the calibration set is used, and the
    /// report says so.
    #[arg(long, value_name = "DIR|SET.jsonl")]
    verify: Option<PathBuf>,
    /// Activation range method for int8: percentile (clips the rare outliers; the default),
    /// minmax or entropy (KL).
    #[arg(long, default_value = "percentile")]
    method: String,
    /// Graph form of int8: qdq (QuantizeLinear/DequantizeLinear around float operators) or
    /// qlinear (QLinearConv/QLinearMatMul operators).
    #[arg(long, default_value = "qdq", value_name = "qdq|qlinear")]
    int8_form: Int8Form,
    /// Percentile of |x| kept by `--method percentile`.
    #[arg(long, default_value_t = 99.99)]
    percentile: f64,
    /// Block length of the w8/w4 schemes.
    #[arg(long, default_value_t = 32)]
    block: usize,
    /// Error budget: keep the most sensitive layers in float until it holds on the calibration
    /// set: cosine=X (every output) or top1=X (top-1 / answer agreement).
    #[arg(long, value_name = "cosine=X|top1=X")]
    max_error: Option<Budget>,
    /// Write the verification report as JSON.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Write the final stage graphs as DIR/<stage>.onnx.
    #[arg(long, value_name = "DIR")]
    save_onnx: Option<PathBuf>,
    /// Write the stage inputs calibrated on as DIR/<stage>/<sample>/<input>.npy.
    #[arg(long, value_name = "DIR")]
    dump_calibration: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// The reference package (usually fp32).
    #[arg(long)]
    reference: PathBuf,
    /// The package to judge against it.
    #[arg(long)]
    candidate: PathBuf,
    /// Verification set: a folder of <input>.npy samples, or for students a question set.
    #[arg(long, value_name = "DIR|SET.jsonl")]
    verify: PathBuf,
    /// Write the report as JSON.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
}

fn method(args: &ConvertArgs) -> Result<Method> {
    Ok(match args.method.as_str() {
        "minmax" => Method::MinMax,
        "entropy" => Method::Entropy,
        "percentile" => {
            if !(args.percentile > 50.0 && args.percentile <= 100.0) {
                bail!("--percentile {} must be in (50, 100]", args.percentile);
            }
            Method::Percentile(args.percentile)
        }
        other => bail!("--method `{other}`: choose minmax, percentile or entropy"),
    })
}

fn write_report(report: &Report, path: Option<&PathBuf>) -> Result<()> {
    print!("{}", report.table());
    if let Some(p) = path {
        let json = serde_json::to_string_pretty(report)?;
        std::fs::write(p, json + "\n").with_context(|| format!("cannot write {}", p.display()))?;
        println!("report: {}", p.display());
    }
    Ok(())
}

fn convert(args: ConvertArgs) -> Result<()> {
    let Some(output) = args.output.clone() else { bail!("give --output FILE.eqa") };
    let opts = Options {
        scheme: args.scheme,
        method: method(&args)?,
        int8_form: args.int8_form,
        block: args.block,
        calibration: args.calibration.clone(),
        verify: args.verify.clone(),
        max_error: args.max_error,
        dump_calibration: args.dump_calibration.clone(),
        save_onnx: args.save_onnx.clone(),
    };
    if args.block == 0 {
        bail!("--block must be positive");
    }
    if args.report.is_some() && args.scheme == Scheme::Fp32 {
        bail!("--report needs a quantizing --scheme; use `edgeqa-convert compare` to compare two packages");
    }
    if let Some(model) = args.model.as_ref().filter(|m| edgeqa_convert::tflite::is_tflite(m)) {
        return convert_tflite(&args, model, &output);
    }
    let outcome = match (&args.student, &args.model) {
        (Some(dir), None) => convert_student_with(dir, &opts)?,
        (None, Some(model)) => convert_model_with(model, &parse_shape_args(&args.input_shapes)?, &opts)?,
        _ => bail!("give --student DIR or --model FILE.onnx"),
    };
    let converted = &outcome.converted;
    converted.write(&output).with_context(|| "cannot write the package")?;
    let m = &converted.manifest;
    println!(
        "wrote {} ({} bytes): {} `{}`, stages {}, scheme {}",
        output.display(),
        converted.bytes.len(),
        format!("{:?}", m.kind).to_lowercase(),
        m.name,
        m.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
        m.quantization.scheme
    );
    if let Some(r) = &outcome.report {
        write_report(r, args.report.as_ref())?;
    }
    Ok(())
}

/// `--model X.tflite`: packaged as exported; the quantizing and ONNX flags do not apply.
fn convert_tflite(args: &ConvertArgs, model: &std::path::Path, output: &std::path::Path) -> Result<()> {
    let ignored = [
        (args.scheme != Scheme::Fp32, "--scheme"),
        (!args.input_shapes.is_empty(), "--input-shape"),
        (args.calibration.is_some(), "--calibration"),
        (args.verify.is_some(), "--verify"),
        (args.max_error.is_some(), "--max-error"),
        (args.report.is_some(), "--report"),
        (args.save_onnx.is_some(), "--save-onnx"),
        (args.dump_calibration.is_some(), "--dump-calibration"),
    ];
    if let Some((_, flag)) = ignored.iter().find(|(given, _)| *given) {
        bail!(
            "{flag} does not apply to a TFLite model ({}): it is packaged as exported, with the shapes \
             in the file (quantize it with the TFLite converter)",
            model.display()
        );
    }
    let converted = edgeqa_convert::tflite::convert_tflite(model)?;
    converted.write(output).with_context(|| "cannot write the package")?;
    println!(
        "wrote {} ({} bytes): model `{}` (TFLite), stage model",
        output.display(),
        converted.bytes.len(),
        converted.manifest.name
    );
    Ok(())
}

fn compare(args: CompareArgs) -> Result<()> {
    let reference = Package::open(&args.reference)?;
    let candidate = Package::open(&args.candidate)?;
    let report = quantized::compare_packages(&reference, &candidate, &args.verify)?;
    write_report(&report, args.report.as_ref())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Compare(c)) => compare(c),
        None => convert(cli.convert),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = edgeqa::error_line(e.as_ref());
            match e.chain().find_map(|c| c.downcast_ref::<ConvertError>()).and_then(flag_advice) {
                Some(advice) => eprintln!("error: {line} ({advice})"),
                None => eprintln!("error: {line}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// Which flag to pass or change, for the library's errors about what it was given.
fn flag_advice(e: &ConvertError) -> Option<String> {
    Some(match e {
        ConvertError::NeedsShape { input, .. } => format!("pass --input-shape {input}=D0,D1,..."),
        ConvertError::BadShapeArg(_) => "--input-shape".into(),
        ConvertError::Option(OptionError::Top1WithoutClasses) => "use --max-error cosine=... instead".into(),
        ConvertError::Option(OptionError::NothingToCalibrate) => {
            "pass --scheme int8, w8 or w4, or leave out --calibration and --max-error".into()
        }
        ConvertError::Option(OptionError::NeedsSamples { verify_will_do, .. }) => {
            format!(
                "pass --calibration DIR|SET.jsonl{}",
                if *verify_will_do { " or --verify DIR|SET.jsonl" } else { "" }
            )
        }
        _ => return None,
    })
}
