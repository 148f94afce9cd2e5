//! `edgeqa boards`: the board profiles built into this binary.

use anyhow::Result;

use super::print_json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn main(args: Args) -> Result<()> {
    let boards = edgeqa_firmware_config::builtin();
    if args.json {
        return print_json(&boards);
    }
    println!("{:<18} {:<28} {:<7} {:>10} {:>7}  description", "board", "target", "backend", "budget", "threads");
    for b in &boards {
        println!(
            "{:<18} {:<28} {:<7} {:>6} MiB {:>7}  {}",
            b.name,
            b.target,
            format!("{:?}", b.backend).to_lowercase(),
            b.memory_budget_mib,
            b.threads,
            b.description
        );
    }
    Ok(())
}
