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
# The instrumented fuzz build has its own target dir (fuzz/target): it runs beside the tests, which
# leave one of the two cores idle much of the time, and is waited for before the fuzz runs.
fuzz_log="$(mktemp)"
bash scripts/fuzz.sh --build >"$fuzz_log" 2>&1 &
fuzz_build=$!
cargo test --locked --workspace --all-targets
wait "$fuzz_build" || { cat "$fuzz_log" >&2; echo "test: the fuzz build failed" >&2; exit 1; }
cat "$fuzz_log" >&2
bash scripts/fuzz.sh --bounded 5   # every parser under libFuzzer, 5 s each (fuzz/, docs/testing.md)
bash scripts/cross-test.sh        # edgeqa for aarch64 under qemu: same answers as the host build
