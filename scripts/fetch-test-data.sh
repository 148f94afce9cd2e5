#!/usr/bin/env bash
# Fetches the real models used by tests/real_models.rs and writes their ONNX Runtime references.
#
#   .cache/testdata/wheels/      the rapidocr-onnxruntime wheel (Apache-2.0) that ships the models
#   .cache/testdata/models/      ONNX models extracted from it, checked against pinned sha256s
#   .cache/testdata/reference/   <model>/input.npy and output.npy, made by scripts/make_reference.py
#   .cache/venv/                 Python venv with pinned numpy + onnxruntime (reference only)
#
# Idempotent and quick once done: it downloads and installs only what is missing or wrong.
# Nothing here is committed: .cache/ is ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

RAPIDOCR_VERSION="1.4.4"
NUMPY_VERSION="2.3.5"
ONNXRUNTIME_VERSION="1.23.2"
# model file in the wheel (rapidocr_onnxruntime/models/) -> sha256
declare -A MODEL_SHA256=(
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

# 1. A venv with pinned numpy and onnxruntime. Its pip also downloads the wheel below, so the
#    system Python needs only the venv module (Debian: python3-venv).
venv_ok() {
  [ -x "$PY" ] && "$PY" - "$NUMPY_VERSION" "$ONNXRUNTIME_VERSION" >/dev/null 2>&1 <<'EOF'
import sys, numpy, onnxruntime
sys.exit(0 if (numpy.__version__, onnxruntime.__version__) == (sys.argv[1], sys.argv[2]) else 1)
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
  log "installing numpy==$NUMPY_VERSION onnxruntime==$ONNXRUNTIME_VERSION into $VENV"
  "$PY" -m pip install -q --only-binary=:all: "numpy==$NUMPY_VERSION" "onnxruntime==$ONNXRUNTIME_VERSION" ||
    die "pip could not install numpy==$NUMPY_VERSION onnxruntime==$ONNXRUNTIME_VERSION for $("$PY" -V 2>&1)"
  venv_ok || die "$VENV still lacks numpy==$NUMPY_VERSION / onnxruntime==$ONNXRUNTIME_VERSION after install"
fi

# 2. The rapidocr-onnxruntime wheel that ships the models.
WHEEL="$DATA/wheels/rapidocr_onnxruntime-$RAPIDOCR_VERSION-py3-none-any.whl"
if [ ! -f "$WHEEL" ]; then
  log "downloading rapidocr-onnxruntime==$RAPIDOCR_VERSION"
  "$PY" -m pip download -q --no-deps --only-binary=:all: "rapidocr-onnxruntime==$RAPIDOCR_VERSION" -d "$DATA/wheels"
  [ -f "$WHEEL" ] || die "pip did not produce $WHEEL"
fi

# 3. Extract the models and check their checksums; an existing model with the right sha256 is kept.
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
for model in "${!MODEL_SHA256[@]}"; do
  want="${MODEL_SHA256[$model]}"
  dest="$DATA/models/$model"
  if [ -f "$dest" ] && [ "$(sha_of "$dest")" = "$want" ]; then
    continue
  fi
  log "extracting $model"
  "$PY" - "$WHEEL" "rapidocr_onnxruntime/models/$model" "$dest.tmp" <<'EOF' || die "cannot extract $model from $WHEEL"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
  got="$(sha_of "$dest.tmp")"
  if [ "$got" != "$want" ]; then
    rm -f "$dest.tmp"
    die "$model from $WHEEL has sha256 $got, expected $want (corrupt download? delete $DATA/wheels and re-run)"
  fi
  mv "$dest.tmp" "$dest"
done

# 4. ONNX Runtime references, remade when a model or the onnxruntime version changes.
stamp="$DATA/reference/stamp"
want_stamp="onnxruntime=$ONNXRUNTIME_VERSION numpy=$NUMPY_VERSION"
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
log "ready: $(ls "$DATA/models" | tr '\n' ' ')"
