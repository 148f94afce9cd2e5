//! Regenerates the bundled demo: `cargo run -p edgeqa-tests --bin edgeqa-make-demo -- models/demo`.

use std::path::PathBuf;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "models/demo".into()));
    edgeqa_tests::write_demo_bundle(&dir, edgeqa_tests::DEMO_SEED, edgeqa_tests::DEMO_CLIPS)
        .with_context(|| format!("writing {}", dir.display()))?;
    println!("wrote the demo bundle to {}", dir.display());
    Ok(())
}
