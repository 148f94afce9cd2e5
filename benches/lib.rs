//! Shared set-up for the criterion benches: the bundled demo package and its first clip.

use std::path::PathBuf;

/// The committed demo bundle (`models/demo`).
pub fn demo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/demo")
}
