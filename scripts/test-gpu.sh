#!/usr/bin/env bash
# The wgpu tests on a real GPU: the same tests CI runs on lavapipe, but refusing a software
# adapter (EDGEQA_REQUIRE_GPU=1), then the backend-against-backend bench.
#
#   bash scripts/test-gpu.sh            # needs a Vulkan driver for the GPU (and libvulkan1)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
bash scripts/fetch-test-data.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
export EDGEQA_REQUIRE_GPU=1
cargo test --locked -p edgeqa --test wgpu_backend --test onnx_conformance -- --nocapture
cargo bench --locked -p edgeqa-benches --bench backends -- --warm-up-time 1 --measurement-time 3
