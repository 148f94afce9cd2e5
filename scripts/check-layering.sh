#!/usr/bin/env bash
# Checks the crate layering that docs/architecture.md describes, from cargo's dependency graph:
# - the runtime library (`edgeqa`) carries no CLI crates (clap, env_logger) and does not use
#   anyhow itself (tract, which it links, does);
# - a runtime without the wgpu feature (`--no-default-features --features tract[,camera,mic]`,
#   what the tract boards build) carries no wgpu, nor tract's thread pool without `threads`;
# - the converter reaches the runtime without its GPU backend;
# - the default builds carry neither TFLite library (features `tflite`, `litert`).
# Such builds are compiled by scripts/cross-test.sh: rpi-zero-2w (tract, camera, mic), generic-aarch64
# (tract, camera, mic, voice).
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "check-layering: $*" >&2; exit 1; }
tree() { cargo tree --locked -e normal --prefix none "$@" | sed 's/ .*//' | sort -u; }

lib=$(tree -p edgeqa)
for crate in clap env_logger; do
  ! grep -qx "$crate" <<<"$lib" || fail "the edgeqa library depends on $crate: only the binary (cli/) may"
done
! grep -qx anyhow <<<"$(tree -p edgeqa --depth 1)" || fail "the edgeqa library uses anyhow directly: use thiserror"
! cargo tree --locked -e normal,features -p edgeqa --no-default-features --features tract -i tract-linalg |
  grep -qF 'tract-linalg feature "multithread-mm"' ||
  fail "edgeqa with features tract (no threads) still builds tract's thread pool (multithread-mm)"
for features in tract tract,camera,mic tract,camera,mic,voice; do
  ! grep -qx wgpu <<<"$(tree -p edgeqa --no-default-features --features "$features")" ||
    fail "edgeqa with features $features (no wgpu) still pulls in wgpu"
done
! grep -qx wgpu <<<"$(tree -p edgeqa-convert)" || fail "the converter pulls in the wgpu backend"
for crate in tflitec litert; do
  ! grep -qx "$crate" <<<"$(tree -p edgeqa-cli)$(tree -p edgeqa-convert)" ||
    fail "a build without the tflite/litert features pulls in $crate"
done
! grep -qx clap <<<"$(tree -p edgeqa-firmware-config --no-default-features)" ||
  fail "the board-profile library pulls in clap without its cli feature"
echo "check-layering: ok (no CLI crates in the libraries, no wgpu in builds without it or in the converter, no TFLite library by default)"
