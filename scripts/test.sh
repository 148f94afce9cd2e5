#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
bash scripts/fetch-test-data.sh   # real models + ONNX Runtime references for tests/real_models.rs
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"   # lavapipe wants one (0700)
export PROPTEST_CASES="${PROPTEST_CASES:-256}"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
bash scripts/check-layering.sh    # no CLI crates in the libraries, no wgpu in tract-only builds
cargo test --locked --workspace --all-targets
# Fuzzing (scripts/fuzz.sh, docs/testing.md) is not part of this run: its instrumented build of
# tract and wgpu took 20 minutes beside the tests on two cores and put CI past 45 minutes.
bash scripts/cross-test.sh        # edgeqa for aarch64 under qemu: same answers as the host build
