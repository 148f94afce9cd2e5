#!/usr/bin/env bash
# Fuzzes every edgeqa parser with cargo-fuzz (libFuzzer); the targets are in fuzz/fuzz_targets/.
#
#   bash scripts/fuzz.sh --bounded [SECONDS] [TARGET]...  each target (or those named) for SECONDS
#                                                   (default 20); scripts/test.sh runs the same
#                                                   targets without libFuzzer (tests/fuzz_replay.rs)
#   bash scripts/fuzz.sh --long [RUNS] [TARGET]...  each target (or those named) for RUNS
#                                                   executions (default 10000000)
#   bash scripts/fuzz.sh --build                    only install cargo-fuzz and build the targets
#
# Installs cargo-fuzz if it is missing, writes the seed corpora (fuzz/corpus/<target>/, from the
# demo package, clips, boards and ONNX node tests: scripts/fuzz_seeds.py), builds the targets
# (stable toolchain with RUSTC_BOOTSTRAP=1; no sanitizer, the code under test is safe Rust; debug
# assertions on, so overflows are found too), runs them and prints each target's execution
# count. A crash keeps its input in fuzz/artifacts/<target>/ and prints the command that replays
# it; the script then exits 1 after the remaining targets ran.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(package manifest graph_wgpu graph_tract y4m wav npy board mjpeg tflite)
CARGO_FUZZ_VERSION=0.13.2
PY=.cache/venv/bin/python

mode=${1:---bounded}
[ $# -gt 0 ] && shift
case "$mode" in
  --bounded)
    limit=(-max_total_time="${1:-20}")
    [ $# -gt 0 ] && shift
    [ $# -gt 0 ] && TARGETS=("$@")
    ;;
  --long)
    limit=(-runs="${1:-10000000}")
    [ $# -gt 0 ] && shift
    [ $# -gt 0 ] && TARGETS=("$@")
    ;;
  --build) limit=() ;;
  *) echo "usage: $0 --bounded [SECONDS] [TARGET]... | --long [RUNS] [TARGET]... | --build" >&2; exit 2 ;;
esac

log() { echo "fuzz: $*" >&2; }

if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

# cargo-fuzz passes nightly-only flags (-Zsanitizer=..., sancov passes); stable accepts them so.
export RUSTC_BOOTSTRAP=1
# 16 codegen units and opt-level 1 (fuzz/Cargo.toml): the instrumented build of tract and wgpu
# takes minutes instead of most of an hour on two cores.
FLAGS=(--sanitizer none --release --debug-assertions --codegen-units 16)
t0=$SECONDS
cargo fuzz build "${FLAGS[@]}"
log "built ${#TARGETS[@]} targets in $((SECONDS - t0)) s"
[ "$mode" = --build ] && exit 0

[ -x "$PY" ] || { log "error: $PY is missing: run \`bash scripts/fetch-test-data.sh\`"; exit 1; }
"$PY" scripts/fuzz_seeds.py

failed=()
stopped=()
summary=()
for t in "${TARGETS[@]}"; do
  mkdir -p "fuzz/artifacts/$t"
  out=$(mktemp)
  t1=$SECONDS
  # -rss_limit_mb: a crafted input must not make a parser take more than 2 GiB; -timeout: nor
  # more than 10 s for one input. Both count as crashes.
  if cargo fuzz run "${FLAGS[@]}" "$t" -- "${limit[@]}" -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 -close_fd_mask=1 >"$out" 2>&1; then
    status=ok
  elif grep -q "libFuzzer: run interrupted" "$out"; then
    # SIGINT to the fuzzer alone (kill -INT): the count so far, not a crash.
    status=stopped
    stopped+=("$t")
  else
    status=CRASH
    failed+=("$t")
    # The last panic before libFuzzer's report is the one that aborted (earlier ones were caught).
    grep -E "panicked at" "$out" | tail -n 1 >&2 || true
    grep -E "ERROR: libFuzzer|SUMMARY|Test unit written|Base64" "$out" | head -n 8 >&2 || true
    log "full output of $t: $out"
  fi
  runs=$(grep -oE "stat::number_of_executed_units: [0-9]+" "$out" | grep -oE "[0-9]+$" | tail -n 1)
  if [ -z "$runs" ]; then
    runs=$(grep -oE "#[0-9]+" "$out" | tail -n 1 | tr -d '#')
  fi
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  summary+=("$(printf '%-12s %-6s %12s runs %6s s  corpus %s' "$t" "$status" "${runs:-?}" "$((SECONDS - t1))" "$corpus")")
  [ "$status" = CRASH ] || rm -f "$out"
done
log "per target (executions, wall time, corpus size):"
printf '  %s\n' "${summary[@]}" >&2
log "total $((SECONDS - t0)) s"
[ ${#stopped[@]} -eq 0 ] || log "stopped before their count (SIGINT): ${stopped[*]}"
if [ ${#failed[@]} -gt 0 ]; then
  log "error: crashes in: ${failed[*]} (inputs in fuzz/artifacts/<target>/; replay: cargo fuzz run <target> <file>)"
  exit 1
fi
