#!/usr/bin/env bash
# The main job: builds edgeqa and runs the bundled student on the bundled clips.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release --locked -p edgeqa-cli
exec ./target/release/edgeqa demo "$@"
