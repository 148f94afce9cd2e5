#!/usr/bin/env bash
# Installs what building and testing edgeqa needs on Debian/Ubuntu. Idempotent: it installs only
# what is missing. Sourced by scripts/demo.sh and scripts/test.sh.
# libclang-dev: bindgen for v4l (feature `camera`); libasound2-dev: ALSA for cpal (feature `mic`);
# mesa-vulkan-drivers + libvulkan1: lavapipe, a Vulkan device on the CPU for the wgpu tests;
# libpocketsphinx-dev + pocketsphinx-en-us: the speech recognizer and its English acoustic model
# (feature `voice`); espeak-ng: spoken questions for the voice tests; libssl-dev and
# libcurl4-openssl-dev: the tflitec crate's build script links curl (feature `tflite`,
# docs/tflite.md; with the system's libcurl, curl-sys does not compile curl from source);
# curl: scripts/fetch-tflite.sh fetches the tflitec crate with it when cargo has not.
set -euo pipefail

need_apt=()
for pkg in gcc pkg-config libclang-dev libasound2-dev mesa-vulkan-drivers libvulkan1 \
  libpocketsphinx-dev pocketsphinx-en-us espeak-ng libssl-dev libcurl4-openssl-dev curl; do
  # `pkg:arch` too: plain `dpkg -s` calls a package installed for two architectures ambiguous.
  dpkg -s "$pkg" >/dev/null 2>&1 || dpkg -s "$pkg:$(dpkg --print-architecture)" >/dev/null 2>&1 ||
    need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# edgeqa needs Rust 1.91 or newer (edition 2024, tract's MSRV).
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found. Install Rust 1.91+ with rustup (https://rustup.rs), then re-run." >&2
  exit 1
fi
rust_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "${rust_minor:-0}" -lt 91 ]; then
  if command -v rustup >/dev/null 2>&1; then
    rustup update stable
  else
    echo "setup: $(rustc --version) is too old; edgeqa needs Rust 1.91+ (install it with rustup)." >&2
    exit 1
  fi
fi
