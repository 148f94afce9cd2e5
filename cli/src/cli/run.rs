//! `edgeqa run`: run a generic package (or one student stage) on NumPy inputs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use edgeqa::backend::{self, NodeProfile, NodeTime};
use edgeqa::tensor::Tensor;
use serde::Serialize;

use super::{BackendArg, open_package, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The package (.eqa).
    #[arg(long)]
    package: PathBuf,
    /// An input as NAME=FILE.npy; repeat for every graph input.
    #[arg(long = "input", value_name = "NAME=FILE.npy", required = true)]
    inputs: Vec<String>,
    /// Stage to run (`model` for generic packages; any stage of a student).
    #[arg(long, default_value = "model")]
    stage: String,
    /// Folder for the outputs, one `<output name>.npy` each (created if missing).
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Print a JSON summary (with `--profile`: `{"outputs": [...], "profile": {...}}`).
    #[arg(long)]
    json: bool,
    /// Time every node over RUNS runs (after one untimed run) and print them slowest first, with
    /// totals per op: on wgpu GPU timestamps where the adapter has them, on tract the wall clock
    /// of each node of tract's optimised plan.
    #[arg(long, value_name = "RUNS", value_parser = clap::value_parser!(u32).range(1..))]
    profile: Option<u32>,
    #[command(flatten)]
    backend: BackendArg,
}

#[derive(Serialize)]
struct OutputSummary {
    name: String,
    dtype: &'static str,
    shape: Vec<usize>,
    min: f64,
    max: f64,
    mean: f64,
    file: Option<String>,
}

fn stats(t: &Tensor) -> (f64, f64, f64) {
    let vals = t.to_f64();
    if vals.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let max = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max, vals.iter().sum::<f64>() / vals.len() as f64)
}

/// A file name for an output: characters other than letters, digits, `-`, `_` and `.` become `_`.
fn file_name(output: &str) -> String {
    output.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

pub fn main(args: Args) -> Result<()> {
    let pkg = open_package(&args.package)?;
    let m = pkg.manifest();
    let Some(stage) = m.stage(&args.stage) else {
        bail!(
            "{}: no stage `{}` (stages: {})",
            pkg.origin(),
            args.stage,
            m.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    };
    let mut given: Vec<(String, PathBuf)> = Vec::new();
    for spec in &args.inputs {
        let (name, file) = spec.split_once('=').with_context(|| format!("--input `{spec}`: expected NAME=FILE.npy"))?;
        if given.iter().any(|(n, _)| n == name) {
            bail!("--input `{name}` is given twice");
        }
        given.push((name.to_string(), PathBuf::from(file)));
    }
    for (name, _) in &given {
        if !stage.inputs.iter().any(|i| i.name == *name) {
            bail!(
                "--input `{name}`: the stage has no such input (inputs: {})",
                stage.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let mut inputs = Vec::new();
    for info in &stage.inputs {
        let Some((_, file)) = given.iter().find(|(n, _)| *n == info.name) else {
            bail!("missing --input {}=FILE.npy ({} {:?})", info.name, info.dtype.name(), info.shape);
        };
        let t = Tensor::read_npy(file)?;
        t.check(info, &format!("{} (input `{}`)", file.display(), info.name))?;
        inputs.push(t);
    }
    args.backend.apply_threads(None)?;
    let (backend, reason) = backend::select_for(args.backend.backend, pkg.manifest().format(), None)?;
    log::info!("backend {} ({reason})", backend.name());
    let graph = pkg.stage_graph(&stage.name).with_context(|| format!("stage `{}` has no graph", stage.name))?;
    let stored = pkg.manifest().packed_weights(&stage.name);
    let session = backend.load_stage_stored(stage, graph, &stored, &format!("{} [{}]", pkg.origin(), stage.name))?;
    let profile = match args.profile {
        Some(runs) => Some(
            session
                .profile(inputs.clone(), runs as usize)?
                .with_context(|| format!("--profile: the {} backend cannot time single nodes", session.backend()))?,
        ),
        None => None,
    };
    let outputs = session.run(inputs)?;
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut summary = Vec::new();
    for (info, t) in stage.outputs.iter().zip(&outputs) {
        let file = match &args.output_dir {
            Some(dir) => {
                let p: PathBuf = Path::new(dir).join(format!("{}.npy", file_name(&info.name)));
                t.write_npy(&p)?;
                Some(p.display().to_string())
            }
            None => None,
        };
        let (min, max, mean) = stats(t);
        summary.push(OutputSummary {
            name: info.name.clone(),
            dtype: t.dtype().name(),
            shape: t.shape.clone(),
            min,
            max,
            mean,
            file,
        });
    }
    if args.json {
        return match &profile {
            Some(p) => print_json(&serde_json::json!({ "outputs": summary, "profile": p })),
            None => print_json(&summary),
        };
    }
    for s in &summary {
        println!(
            "{} {}{:?} min {:.6} max {:.6} mean {:.6}{}",
            s.name,
            s.dtype,
            s.shape,
            s.min,
            s.max,
            s.mean,
            s.file.as_ref().map(|f| format!(" -> {f}")).unwrap_or_default()
        );
    }
    if let Some(p) = &profile {
        print!("{}", profile_text(p, TOP_NODES));
    }
    Ok(())
}

/// Nodes shown by the text form of `--profile` (the JSON has all).
const TOP_NODES: usize = 25;

/// The profile as text: totals, the `top` slowest nodes, then time per op.
pub(super) fn profile_text(p: &NodeProfile, top: usize) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let total: f64 = p.nodes.iter().map(|n| n.median_us).sum();
    let share = |us: f64| if total > 0.0 { 100.0 * us / total } else { 0.0 };
    let _ = writeln!(
        s,
        "\nprofile: {} nodes, {} dispatches, {:.1} us in nodes ({}, median of {} runs)",
        p.nodes.len(),
        p.nodes.iter().map(|n| n.dispatches).sum::<usize>(),
        total,
        p.clock,
        p.runs
    );
    let mut slowest: Vec<&NodeTime> = p.nodes.iter().collect();
    slowest.sort_by(|a, b| b.median_us.total_cmp(&a.median_us));
    let _ = writeln!(s, "slowest nodes:");
    for n in slowest.iter().take(top) {
        let _ = writeln!(s, "  {:>10.1} us {:>5.1}%  {} ({})", n.median_us, share(n.median_us), n.op, n.name);
    }
    let mut ops: Vec<(&str, usize, f64)> = Vec::new();
    for n in &p.nodes {
        match ops.iter_mut().find(|(op, _, _)| *op == n.op) {
            Some(o) => {
                o.1 += 1;
                o.2 += n.median_us;
            }
            None => ops.push((&n.op, 1, n.median_us)),
        }
    }
    ops.sort_by(|a, b| b.2.total_cmp(&a.2));
    let _ = writeln!(s, "per op:");
    for (op, count, us) in ops {
        let _ = writeln!(s, "  {:>10.1} us {:>5.1}%  {op} ×{count}", us, share(us));
    }
    s
}
