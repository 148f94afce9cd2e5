//! `edgeqa inspect`: what a package holds, with every checksum verified.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use edgeqa::manifest::{Manifest, TensorInfo};
use edgeqa::onnx;
use serde::Serialize;

use super::{open_package, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The package (.eqa).
    package: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also list the tokenizer vocabulary (the words a student understands).
    #[arg(long)]
    vocab: bool,
}

#[derive(Serialize)]
struct SectionReport {
    name: String,
    kind: String,
    offset: u64,
    bytes: u64,
    sha256: String,
    verified: bool,
}

#[derive(Serialize)]
struct StageReport {
    name: String,
    section: String,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    opset: Option<i64>,
    parameters: usize,
    nodes: usize,
    ops: BTreeMap<String, usize>,
}

#[derive(Serialize)]
struct Report<'a> {
    file: String,
    file_bytes: u64,
    sections: Vec<SectionReport>,
    stages: Vec<StageReport>,
    manifest: &'a Manifest,
}

fn shape(t: &TensorInfo) -> String {
    format!("{} {}[{}]", t.name, t.dtype.name(), t.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","))
}

pub fn main(args: Args) -> Result<()> {
    let pkg = open_package(&args.package)?;
    let m = pkg.manifest();
    let sections = pkg
        .sections()
        .iter()
        .map(|s| SectionReport {
            name: s.name.clone(),
            kind: format!("{:?}", s.kind).to_lowercase(),
            offset: s.offset,
            bytes: s.len,
            sha256: s.sha256_hex(),
            verified: true,
        })
        .collect();
    let mut stages = Vec::new();
    for st in &m.stages {
        let origin = format!("{} [{}]", pkg.origin(), st.name);
        let bytes = pkg.stage_graph(&st.name).with_context(|| format!("{origin}: no graph section"))?;
        let proto = onnx::decode(bytes, &origin)?;
        let ops = onnx::op_histogram(&proto);
        stages.push(StageReport {
            name: st.name.clone(),
            section: st.section.clone(),
            inputs: st.inputs.clone(),
            outputs: st.outputs.clone(),
            opset: onnx::opset(&proto),
            parameters: onnx::parameter_count(&proto),
            nodes: ops.values().sum(),
            ops,
        });
    }
    let report = Report { file: pkg.origin().to_string(), file_bytes: pkg.file_len(), sections, stages, manifest: m };
    if args.json {
        return print_json(&report);
    }
    println!("{}  ({} bytes, all checksums verified)", report.file, report.file_bytes);
    println!(
        "  {} `{}` · contract v{} · by {} · weights {}",
        format!("{:?}", m.kind).to_lowercase(),
        m.name,
        m.contract_version,
        m.producer,
        m.quantization.scheme
    );
    println!("sections:");
    for s in &report.sections {
        println!(
            "  {:<20} {:<9} offset {:>9}  {:>10} bytes  sha256 {}",
            s.name,
            s.kind,
            s.offset,
            s.bytes,
            &s.sha256[..16]
        );
    }
    println!("stages:");
    for s in &report.stages {
        println!(
            "  {} (opset {}, {} nodes, {} parameters)",
            s.name,
            s.opset.map_or("?".into(), |o| o.to_string()),
            s.nodes,
            s.parameters
        );
        println!("    in : {}", s.inputs.iter().map(shape).collect::<Vec<_>>().join(", "));
        println!("    out: {}", s.outputs.iter().map(shape).collect::<Vec<_>>().join(", "));
        println!("    ops: {}", s.ops.iter().map(|(k, v)| format!("{k}×{v}")).collect::<Vec<_>>().join(" "));
    }
    if let Some(v) = &m.video {
        println!("video: {} frames at {}x{}, mean {:?}, std {:?}", v.frames, v.width, v.height, v.mean, v.std);
    }
    if let Some(a) = &m.audio {
        println!(
            "audio: {} Hz, n_fft {}, hop {}, {} mels {}–{} Hz, {} segments of {} frames",
            a.sample_rate, a.n_fft, a.hop, a.n_mels, a.f_min, a.f_max, a.segments, a.segment_frames
        );
    }
    if let Some(t) = &m.tokenizer {
        println!("tokenizer: {} words, max {} tokens, lowercase {}", t.vocab.len(), t.max_len, t.lowercase);
        if args.vocab {
            println!("  {}", t.vocab.join(" "));
        }
    }
    if !m.labels.is_empty() {
        println!("answers ({}): {}", m.labels.len(), m.labels.join(", "));
    }
    Ok(())
}
