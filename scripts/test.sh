#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, every test of the workspace, and the
# boards' cross-test (scripts/cross-test.sh), whose board builds run beside the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
bash scripts/fetch-test-data.sh   # real models + ONNX Runtime references for tests/real_models.rs
bash scripts/fetch-tflite.sh      # TF Lite libraries, TFLite models + references (tests/tflite.rs)
source scripts/tflite-env.sh      # build and run the TFLite backends against them (docs/tflite.md)
# Every crate is built and tested with the TFLite backends too (cargo features of edgeqa-cli).
HOST_FEATURES=edgeqa-cli/tflite,edgeqa-cli/litert
FEATURES=(--features "$HOST_FEATURES")
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"   # lavapipe wants one (0700)
export PROPTEST_CASES="${PROPTEST_CASES:-256}"
cargo fmt --all -- --check
# The board binaries build in target/cross/ (a cargo lock of its own) from here on, at the lowest
# CPU priority: they take the cycles that the test build and the tests leave idle. CI checks all
# five boards of scripts/cross-test.sh: the aarch64 bundles generic-aarch64 (glibc 2.27, every
# feature but wgpu) and generic-aarch64-litert (glibc 2.34, LiteRT too), which share their
# compiled dependencies; the 32-bit ARM bundle rpi-zero-2w; the static musl aarch64 binary; and
# the x86_64 glibc-2.27 binary. The `cross-test` profile is unoptimised: a board of a target of its
# own then costs about 2.5 minutes of both cores instead of 6-8 (docs/boards.md). The build's log,
# target/cross/build.log, is printed if it fails. CROSS_TEST_BOARDS="b1 b2" limits it to those.
# prepare builds edgeqa-board with the test build's features: one host build of the dependencies.
export CROSS_TEST_HOST_FEATURES="$HOST_FEATURES"
# Clippy lints the workspace's crates while they are compiled for the tests: clippy-driver is
# cargo's wrapper for the workspace's crates (how `cargo clippy` runs it), with `-D warnings`.
# The same lints as `cargo clippy --locked --workspace --all-targets "${FEATURES[@]}" -- -D warnings`,
# without its own pass over every dependency (7 minutes of a cold run on two cores).
CLIPPY_DRIVER="$(rustup which clippy-driver 2>/dev/null || echo "$(rustc --print sysroot)/bin/clippy-driver")"
[ -x "$CLIPPY_DRIVER" ] || { echo "test.sh: clippy-driver not found: rustup component add clippy" >&2; exit 1; }
export RUSTC_WORKSPACE_WRAPPER="$CLIPPY_DRIVER" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
phase() { echo "test.sh: $1 took $((SECONDS - phase_start)) s" >&2; phase_start=$SECONDS; }
phase_start=$SECONDS
bash scripts/cross-test.sh prepare
phase "cross-test prepare (after setup and fetching, $phase_start s)"
mkdir -p target/cross
# Job control gives the job a process group of its own (stopped if anything below fails) in this
# session: a new session (setsid) would get a scheduler autogroup of its own, where nice is void.
set -m
# The boards' builds are not linted (their crates would be, for another target).
nice -n 19 env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS bash scripts/cross-test.sh build >target/cross/build.log 2>&1 &
cross_build=$!
set +m
trap 'kill -- "-$cross_build" 2>/dev/null || true' EXIT
bash scripts/check-layering.sh    # no CLI crates in the libraries, no wgpu in tract-only builds
cargo test --locked --workspace --all-targets "${FEATURES[@]}"   # linted as it builds (above)
phase "the test build and the tests"
# Fuzzing (scripts/fuzz.sh, docs/testing.md) is not part of this run: its instrumented build of
# tract and wgpu took 20 minutes beside the tests on two cores and put CI past 45 minutes.
# The boards' binaries under qemu must give the host build's answers: each board is checked as
# soon as its build is done, beside the builds still running.
check=0
CROSS_TEST_WAIT_FOR_BUILD=1 bash scripts/cross-test.sh check || check=$?
phase "the boards' checks"
if ! wait "$cross_build"; then
  tail -n 60 target/cross/build.log >&2
  echo "test.sh: the boards' builds failed (target/cross/build.log)" >&2
  exit 1
fi
trap - EXIT
grep '^cross-test:' target/cross/build.log >&2 || true
echo "test.sh: done in $SECONDS s" >&2
exit "$check"
