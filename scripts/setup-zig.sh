#!/usr/bin/env bash
# Sourced by scripts that build edgeqa for boards: puts zig and cargo-zigbuild on PATH, installing
# them into the ignored .cache/ when missing (idempotent). edgeqa-board links through them the
# board builds that must run on an old glibc (a profile's `glibc` key) or that are static (musl).
# zig comes from the PyPI package ziglang, pinned by version and sha256 (scripts/zig-requirements.txt);
# cargo-zigbuild from crates.io, pinned by version and built with its own lockfile.
set -euo pipefail
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_zig_dir="$_root/.cache/zig"
_zigbuild_dir="$_root/.cache/cargo-zigbuild"
ZIGBUILD_VERSION=0.24.1
if [ ! -x "$_zig_dir/ziglang/zig" ]; then
  echo "setup-zig: installing zig (PyPI ziglang) into .cache/zig" >&2
  # pip from a venv: Debian's own Python refuses pip installs (PEP 668).
  _venv="$_root/.cache/venv"   # scripts/fetch-test-data.sh's, when it is there
  if [ ! -x "$_venv/bin/python" ]; then
    _venv="$_root/.cache/zig-venv"
    [ -x "$_venv/bin/python" ] || python3 -m venv "$_venv" ||
      { echo "setup-zig: cannot make a Python venv: install python3 and python3-venv" >&2; exit 1; }
  fi
  rm -rf "$_zig_dir"
  "$_venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --require-hashes \
    --target "$_zig_dir" -r "$_root/scripts/zig-requirements.txt"
fi
if ! "$_zigbuild_dir/bin/cargo-zigbuild" --version 2>/dev/null | grep -q " $ZIGBUILD_VERSION\$"; then
  echo "setup-zig: installing cargo-zigbuild $ZIGBUILD_VERSION into .cache/cargo-zigbuild" >&2
  cargo install -q --locked --root "$_zigbuild_dir" --version "$ZIGBUILD_VERSION" cargo-zigbuild
fi
export PATH="$_zig_dir/ziglang:$_zigbuild_dir/bin:$PATH"
zig version >/dev/null
