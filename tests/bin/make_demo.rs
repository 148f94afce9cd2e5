//! Regenerates the bundled demo: `cargo run -p edgeqa-tests --bin edgeqa-make-demo -- models/demo`.

use std::path::PathBuf;

use anyhow::Context;

/// Seed of the committed demo evaluation set.
const DEMO_SEED: u64 = 2026;
/// Clips in the committed demo evaluation set.
const DEMO_CLIPS: usize = 12;

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "models/demo".into()));
    edgeqa_tests::write_demo_bundle(&dir, DEMO_SEED, DEMO_CLIPS).with_context(|| format!("writing {}", dir.display()))?;
    println!("wrote the demo bundle to {}", dir.display());
    Ok(())
}
