# Source this (after scripts/fetch-tflite.sh) to build and run edgeqa's TFLite backends against the
# fetched libraries: `source scripts/tflite-env.sh`, then e.g.
# `cargo build -p edgeqa-cli --features tflite,litert`. See docs/tflite.md.
#
# Build time: the tflitec crate takes the TF Lite C library and headers from these variables
# (it downloads nothing when both are set); litert-sys takes libLiteRt.so from LITERT_LIB_DIR and,
# with LITERT_NO_DOWNLOAD, never downloads. Run time: neither library is found by itself, hence
# LD_LIBRARY_PATH. Paths must be absolute (build scripts run in the crates' own directories).
_edgeqa_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_edgeqa_tfl="$_edgeqa_root/.cache/tflite"
_edgeqa_arch="$(uname -m)"
export TFLITEC_PREBUILT_PATH_X86_64_UNKNOWN_LINUX_GNU="$_edgeqa_tfl/tflitec/x86_64/libtensorflowlite_c.so"
export TFLITEC_HEADER_DIR_X86_64_UNKNOWN_LINUX_GNU="$_edgeqa_tfl/tflitec/include"
export LITERT_LIB_DIR="$_edgeqa_tfl/litert/$_edgeqa_arch"
export LITERT_NO_DOWNLOAD=1
export LD_LIBRARY_PATH="$LITERT_LIB_DIR:$_edgeqa_tfl/tflitec/$_edgeqa_arch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
unset _edgeqa_root _edgeqa_tfl _edgeqa_arch
