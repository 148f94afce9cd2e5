#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, every test of the workspace, and the
# boards' cross-test (scripts/cross-test.sh), whose board builds run beside the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
bash scripts/fetch-test-data.sh   # real models + ONNX Runtime references for tests/real_models.rs
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"   # lavapipe wants one (0700)
export PROPTEST_CASES="${PROPTEST_CASES:-256}"
cargo fmt --all -- --check
# The board binaries build in target/cross/ (a cargo lock of its own) from here on, at the lowest
# CPU priority: they take the cycles that clippy, the test build and the tests leave idle. CI
# checks two boards (the aarch64 and 32-bit ARM bundles); `bash scripts/cross-test.sh` checks all
# four. Their log, target/cross/build.log, is printed if they fail.
bash scripts/cross-test.sh prepare
export CROSS_TEST_BOARDS="${CROSS_TEST_BOARDS:-generic-aarch64 rpi-zero-2w}"
mkdir -p target/cross
setsid nice -n 19 bash scripts/cross-test.sh build >target/cross/build.log 2>&1 &
cross_build=$!   # its own process group, stopped if anything below fails
trap 'kill -- "-$cross_build" 2>/dev/null || true' EXIT
cargo clippy --locked --workspace --all-targets -- -D warnings
bash scripts/check-layering.sh    # no CLI crates in the libraries, no wgpu in tract-only builds
cargo test --locked --workspace --all-targets
if ! wait "$cross_build"; then
  tail -n 60 target/cross/build.log >&2
  echo "test.sh: the boards' builds failed (target/cross/build.log)" >&2
  exit 1
fi
trap - EXIT
grep '^cross-test:' target/cross/build.log >&2 || true
# Fuzzing (scripts/fuzz.sh, docs/testing.md) is not part of this run: its instrumented build of
# tract and wgpu took 20 minutes beside the tests on two cores and put CI past 45 minutes.
bash scripts/cross-test.sh check  # the boards' binaries under qemu: the host build's answers
