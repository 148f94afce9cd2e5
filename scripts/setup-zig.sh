#!/usr/bin/env bash
# Sourced by scripts that build edgeqa for boards: puts zig and cargo-zigbuild on PATH, installing
# them into the ignored .cache/zig when missing (idempotent). edgeqa-board links through them the
# board builds that must run on an old glibc (a profile's `glibc` key) or that are static (musl).
# Both come from PyPI (the packages ziglang and cargo-zigbuild), pinned by version and sha256 in
# scripts/zig-requirements.txt; those wheels are for x86_64 Linux hosts. On another host, put zig
# 0.15 and cargo-zigbuild 0.24 on PATH yourself.
set -euo pipefail
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_zig_dir="$_root/.cache/zig"
if [ ! -x "$_zig_dir/ziglang/zig" ] || [ ! -x "$_zig_dir/bin/cargo-zigbuild" ]; then
  if [ "$(uname -m)" != x86_64 ]; then
    if command -v zig >/dev/null 2>&1 && command -v cargo-zigbuild >/dev/null 2>&1; then
      return 0 2>/dev/null || exit 0
    fi
    echo "setup-zig: the pinned zig and cargo-zigbuild wheels are for x86_64 hosts; on $(uname -m) put zig and cargo-zigbuild on PATH (e.g. \`pip install ziglang cargo-zigbuild\`)" >&2
    exit 1
  fi
  echo "setup-zig: installing zig and cargo-zigbuild (PyPI) into .cache/zig" >&2
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
export PATH="$_zig_dir/ziglang:$_zig_dir/bin:$PATH"
zig version >/dev/null
cargo-zigbuild --version >/dev/null
