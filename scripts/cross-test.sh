#!/usr/bin/env bash
# Cross-test: edgeqa built for boards with edgeqa-board, run under qemu-user, must give the host
# build's answers. Five builds, each made as a user would make it:
#
#   generic-aarch64         aarch64, glibc 2.27+ (tract, camera, mic, voice), bundled with the demo
#                           student; from the unpacked bundle under qemu-aarch64: the demo
#                           evaluation, `edgeqa live` on a clip, a spoken question, `edgeqa devices`
#   rpi-zero-2w             32-bit armv7 (NEON), glibc 2.27+ (tract, camera, mic: `voice` left
#                           out, see below), bundled; from the unpacked bundle under qemu-arm: the
#                           demo evaluation and `edgeqa live` on a clip
#   generic-aarch64-litert  aarch64, glibc 2.34+ (tract, litert, camera, mic, voice), bundled with
#                           the demo student and libLiteRt.so; from the unpacked bundle under
#                           qemu-aarch64: the demo evaluation, and the registry's TFLite models on
#                           LiteRT against the Python reference (relative error <= 1e-4)
#   generic-aarch64-static  aarch64, static musl (tract): the demo evaluation under qemu-aarch64
#                           with no sysroot at all
#   generic-x86_64          x86_64, glibc 2.27+ (tract, camera, mic, voice): the demo evaluation,
#                           run natively
#
# Every glibc build must need no `GLIBC_` symbol version above 2.27 (edgeqa-board checks it with
# readelf, and so does this script), the LiteRT one none above 2.34 (what libLiteRt.so needs); the
# static one must need no shared library.
#
# Usage: cross-test.sh [prepare|build|check|all]   (default: all)
#   CROSS_TEST_BOARDS="generic-aarch64 rpi-zero-2w" limits the builds and checks to those boards;
#   by default all five, as in scripts/test.sh (CI).
#   CROSS_TEST_HOST_FEATURES: cargo features the host's test build uses (scripts/test.sh), for
#   the build of edgeqa-board in `prepare` and the host reference in `check` to be that build's.
#   prepare  installs what is missing (Debian packages, rustup targets) and builds edgeqa-board;
#            needs cargo's lock on target/
#   build    installs zig and cargo-zigbuild into .cache/ if missing (scripts/setup-zig.sh) and
#            builds the binaries (profile cross-test) into target/cross/, which has a cargo lock of
#            its own, so this can run beside `cargo test` (scripts/test.sh does that)
#   check    runs the checks, two boards at a time; needs the host's dev build of edgeqa
#            (`cargo test --no-run` makes it). With CROSS_TEST_WAIT_FOR_BUILD=1 it checks each board
#            as soon as a `build` running beside it has built that board (scripts/test.sh)
#
# Idempotent: installs only what the selected boards need and is missing (Debian packages
# libc6-dev-arm64-cross, libc6-dev-armhf-cross, binutils-aarch64-linux-gnu,
# binutils-arm-linux-gnueabihf, qemu-user,
# libclang-dev for v4l's bindgen; arm64 and armhf multiarch with libasound2-dev for the microphone,
# libpocketsphinx-dev:arm64 for spoken questions, with pocketsphinx-en-us and espeak-ng).
# armv7 leaves `voice` out: libpocketsphinx-dev:armhf drags in armhf builds of GLib and more, whose
# versions apt often cannot reconcile with the host's (docs/boards.md).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE=models/demo/demo.eqa
SET=models/demo/eval/questions.jsonl
CLIP=clip_000               # the clip `edgeqa live` watches and listens to
CROSS_DIR=target/cross      # the boards' cargo target dir and the bundles
GLIBC_MAX=2.27
GLIBC_MAX_LITERT=2.34       # the aarch64 libLiteRt.so's own need
LITERT_AARCH64=.cache/tflite/litert/aarch64   # scripts/fetch-tflite.sh puts it there
TFLITE_INDEX=.cache/testdata/tflite/reference/index.json
# Unoptimised `release` (root Cargo.toml): the static board built in 144 s against 402 s at
# opt-level 1, for five boards beside the tests on CI's two cores; the answers are checked against
# the host build all the same.
PROFILE=cross-test
# In the order `build` builds them and `check` takes them; each has a check_<board> below.
ALL_BOARDS="generic-aarch64 generic-aarch64-litert rpi-zero-2w generic-aarch64-static generic-x86_64"
BOARDS="${CROSS_TEST_BOARDS:-$ALL_BOARDS}"
for b in $BOARDS; do
  [[ " $ALL_BOARDS " == *" $b "* ]] ||
    { echo "cross-test: error: CROSS_TEST_BOARDS: no check for board \`$b\`" >&2; exit 1; }
done
selected() { [[ " $BOARDS " == *" $1 "* ]]; }
ARMV7_FEATURES=tract,camera,mic

log() { echo "cross-test: $*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s; }
json_field() { python3 -c 'import json, sys; v = json.load(open(sys.argv[1]))[sys.argv[2]]; print("" if v is None else v)' "$@"; }

prepare() {
  # Debian packages: the targets' libc (loaders for qemu, headers for v4l's bindgen), their
  # binutils (strip), qemu's user-mode emulators, libclang, and ALSA and PocketSphinx as multiarch.
  local SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # Only what the selected boards need: armhf multiarch is the least reliable part.
  local host_pkgs=(qemu-user libclang-dev libasound2-dev pkg-config libpocketsphinx-dev
    pocketsphinx-en-us espeak-ng python3-venv binutils)
  local multiarch_pkgs=() targets=()
  if selected generic-aarch64 || selected generic-aarch64-litert || selected generic-aarch64-static; then
    host_pkgs+=(libc6-dev-arm64-cross binutils-aarch64-linux-gnu)
  fi
  if selected generic-aarch64 || selected generic-aarch64-litert; then
    multiarch_pkgs+=(libasound2-dev:arm64 libpocketsphinx-dev:arm64)
    targets+=(aarch64-unknown-linux-gnu)
  fi
  # LiteRT is C++: the cross libc has no C++ runtime, arm64 multiarch's libstdc++ serves qemu.
  if selected generic-aarch64-litert; then multiarch_pkgs+=(libstdc++6:arm64); fi
  if selected rpi-zero-2w; then
    host_pkgs+=(libc6-dev-armhf-cross binutils-arm-linux-gnueabihf)
    multiarch_pkgs+=(libasound2-dev:armhf)
    targets+=(armv7-unknown-linux-gnueabihf)
  fi
  if selected generic-aarch64-static; then targets+=(aarch64-unknown-linux-musl); fi
  if command -v dpkg >/dev/null 2>&1; then
    local need_apt=() pkg arch
    for pkg in "${host_pkgs[@]}"; do
      # `pkg:arch` too: plain `dpkg -s` calls a package installed for two architectures ambiguous.
      dpkg -s "$pkg" >/dev/null 2>&1 || dpkg -s "$pkg:$(dpkg --print-architecture)" >/dev/null 2>&1 ||
        need_apt+=("$pkg")
    done
    for pkg in "${multiarch_pkgs[@]}"; do
      arch="${pkg#*:}"
      if ! dpkg -s "$pkg" >/dev/null 2>&1; then
        if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
          log "dpkg --add-architecture $arch"
          $SUDO dpkg --add-architecture "$arch"
        fi
        need_apt+=("$pkg")
      fi
    done
    if [ ${#need_apt[@]} -gt 0 ]; then
      log "installing ${need_apt[*]}"
      # An index that fails to download (a mirror mid-sync) is not fatal if the packages resolve.
      # Three tries: a foreign architecture's index or package sometimes fails to download.
      local try
      for try in 1 2 3; do
        $SUDO apt-get update -qq || log "warning: apt-get update reported errors; trying the install anyway"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null && break
        [ "$try" -lt 3 ] || die "apt-get install ${need_apt[*]} failed three times"
        log "apt-get install failed (try $try of 3); again in 20 s"
        sleep 20
      done
    fi
  else
    local tool
    for tool in qemu-aarch64 qemu-arm readelf; do
      command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found and this is not a Debian system: install qemu-user and binutils"
    done
  fi

  # The Rust standard libraries of the targets.
  local target
  for target in "${targets[@]}"; do
    if ! command -v rustup >/dev/null 2>&1; then
      [ -d "$(rustc --print sysroot)/lib/rustlib/$target/lib" ] ||
        die "rustup not found, and there is no standard library for $target: install Rust with rustup (https://rustup.rs)"
    elif ! rustup target list --installed | grep -qx "$target"; then
      log "rustup target add $target"
      rustup target add "$target"
    fi
  done
  command -v python3 >/dev/null 2>&1 || die "python3 not found (it compares the JSON reports): install python3"
  # LiteRT's aarch64 library, the TFLite models and their references (idempotent).
  if selected generic-aarch64-litert; then bash scripts/fetch-tflite.sh; fi
  # Built with the features `cargo test --workspace --all-targets` resolves (the whole workspace,
  # dev-dependencies, which a test target brings in, and CROSS_TEST_HOST_FEATURES), so that the
  # test build reuses the dependencies built here: built for edgeqa-firmware-config alone, tract
  # and the crates below it came out with other features, and a cold run compiled them twice
  # (8 minutes of CI's two cores).
  cargo build -q --locked --workspace --bin edgeqa-board --test edgeqa_board \
    ${CROSS_TEST_HOST_FEATURES:+--features "$CROSS_TEST_HOST_FEATURES"}
}

# cargo's target dir (target/ unless CARGO_TARGET_DIR or a config says otherwise).
target_dir() { cargo metadata -q --no-deps --format-version 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'; }

# One board: `edgeqa-board build --json` (the build summary), then, for bundles, `bundle` from the
# same build. $1 board, $2 "bundle" or "build", rest: extra edgeqa-board arguments.
build_board() {
  local board="$1" kind="$2"; shift 2
  local t0; t0=$(now)
  "$board_tool" build --board "$board" --profile "$PROFILE" --json "$@" -- --locked >"$CROSS_DIR/$board.json"
  if [ "$kind" = bundle ]; then
    "$board_tool" bundle --board "$board" --package "$PACKAGE" --profile "$PROFILE" "$@" \
      -o "$CROSS_DIR/$board.tar.gz" -- --locked >&2
  fi
  log "$board: built in $(($(now) - t0)) s"
  touch "$CROSS_DIR/$board.built"
}

# In a subshell: CARGO_TARGET_DIR stays here.
build_all() (
  # `check` with CROSS_TEST_WAIT_FOR_BUILD=1 waits for these markers; first of all, so that no
  # failure below leaves an earlier run's markers behind.
  mkdir -p "$CROSS_DIR"
  rm -f "$CROSS_DIR"/*.built "$CROSS_DIR/build.finished"
  trap 'touch "$CROSS_DIR/build.finished"' EXIT
  source scripts/setup-zig.sh
  board_tool="$(target_dir)/debug/edgeqa-board"
  [ -x "$board_tool" ] || die "$board_tool is missing: run \`$0 prepare\` first"
  # The boards' own target dir: cargo locks it apart from target/, where the tests run.
  export CARGO_TARGET_DIR="$PWD/$CROSS_DIR"
  if selected generic-aarch64; then build_board generic-aarch64 bundle; fi
  # edgeqa-board links and bundles the libLiteRt.so in LITERT_LIB_DIR (for aarch64 here, whatever
  # scripts/tflite-env.sh set for the host). It shares generic-aarch64's dependencies: both link
  # against glibc 2.27's symbols (edgeqa-board's LINK_GLIBC), so cargo sees one linker for both,
  # and edgeqa-cli's build-dependencies give both builds the same host crates (cli/Cargo.toml).
  if selected generic-aarch64-litert; then
    LITERT_LIB_DIR="$PWD/$LITERT_AARCH64" build_board generic-aarch64-litert bundle
  fi
  if selected rpi-zero-2w; then build_board rpi-zero-2w bundle --features "$ARMV7_FEATURES"; fi
  if selected generic-aarch64-static; then build_board generic-aarch64-static build; fi
  # Last: its check is the shortest (natively), so the checks end soon after the builds.
  if selected generic-x86_64; then build_board generic-x86_64 build; fi
)

# With CROSS_TEST_WAIT_FOR_BUILD=1 (scripts/test.sh, where `build` runs in the background), waits
# until the board is built; fails if the builds ended without it.
wait_for_build() {
  [ "${CROSS_TEST_WAIT_FOR_BUILD:-0}" = 1 ] || return 0
  until [ -e "$CROSS_DIR/$1.built" ]; do
    if [ -e "$CROSS_DIR/build.finished" ]; then
      log "$1: the builds ended without it ($CROSS_DIR/build.log)"
      return 1
    fi
    sleep 2
  done
}

# The binary edgeqa-board reported for a board: its stripped copy when there is one.
built_binary() {
  local s; s="$(json_field "$CROSS_DIR/$1.json" stripped)"
  [ -n "$s" ] && { echo "$s"; return; }
  json_field "$CROSS_DIR/$1.json" binary
}

# Fails unless the board's build summary and readelf agree that the binary links as it must.
check_linkage() {
  local board="$1" bin="$2" want="$3" max="${4:-$GLIBC_MAX}" needed
  if [ "$want" = static ]; then
    [ "$(json_field "$CROSS_DIR/$board.json" static)" = True ] || die "$board: edgeqa-board does not report a static binary"
    ! readelf -W --program-headers --dynamic "$bin" | grep -Eq 'INTERP|\(NEEDED\)' ||
      die "$board: $bin has a program interpreter or needs shared libraries"
    log "$board: static, $(stat -c %s "$bin") bytes"
    return
  fi
  needed="$(readelf -W --version-info "$bin" | grep -o 'GLIBC_2\.[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)"
  [ -n "$needed" ] || die "$board: readelf found no GLIBC_ version in $bin"
  [ "$(printf '%s\n%s\n' "$needed" "$max" | sort -V | tail -n 1)" = "$max" ] ||
    die "$board: $bin needs glibc $needed, above $max"
  [ "$(json_field "$CROSS_DIR/$board.json" glibc_required)" = "$needed" ] ||
    die "$board: edgeqa-board reported glibc $(json_field "$CROSS_DIR/$board.json" glibc_required), readelf $needed"
  log "$board: needs glibc $needed (at most $max), $(stat -c %s "$bin") bytes"
}

# Unpacks a board's bundle into $tmp/<board>/ and checks its files; prints the binary's path.
unpack() {
  local board="$1" dir="$tmp/$1"
  mkdir -p "$dir"
  tar -xzf "$CROSS_DIR/$board.tar.gz" -C "$dir"
  [ -x "$dir/edgeqa/edgeqa" ] || die "$board: the bundle holds no executable edgeqa/edgeqa"
  cmp -s "$dir/edgeqa/$(basename "$PACKAGE")" "$PACKAGE" || die "$board: the bundle's $(basename "$PACKAGE") differs from $PACKAGE"
  grep -q "^ExecStart=.*/opt/edgeqa/edgeqa live --package /opt/edgeqa/$(basename "$PACKAGE") --board $board" \
    "$dir/edgeqa/edgeqa.service" || die "$board: the bundle's edgeqa.service does not run edgeqa live"
  [ -s "$dir/edgeqa/README.md" ] || die "$board: the bundle has no README.md"
  cmp -s "$dir/edgeqa/edgeqa" "$(built_binary "$board")" || die "$board: the bundle's binary is not the one built"
  echo "$dir/edgeqa/edgeqa"
}

# Compares lists of answers (JSON lines or an eval report's "answers"); prints "N M" (passed, failed).
compare() {
  python3 - "$@" <<'EOF'
import json, sys

CONFIDENCE_TOLERANCE = 1e-3
name, kind, host_path, other_path, who = sys.argv[1:6]


def answers(path):
    if kind == "eval":
        return json.load(open(path))["answers"]
    return [json.loads(l) for l in open(path) if l.strip()]


ha, oa = answers(host_path), answers(other_path)
passed, failed, worst, diff = 0, 0, 0.0, []
for i in range(max(len(ha), len(oa))):
    h = ha[i] if i < len(ha) else None
    a = oa[i] if i < len(oa) else None
    same = (
        h is not None and a is not None and "error" not in h and "error" not in a
        and h.get("question") == a.get("question") and h.get("answer") == a.get("answer")
    )
    if same:
        d = abs(float(h.get("confidence", 0)) - float(a.get("confidence", 0)))
        worst = max(worst, d)
        same = d <= CONFIDENCE_TOLERANCE
    if same:
        passed += 1
        continue
    failed += 1
    for mark, label, r in (("-", "host", h), ("+", who, a)):
        if r is None:
            diff.append(f"{mark} {label} (no answer #{i + 1})")
        elif "error" in r:
            diff.append(f"{mark} {label} #{i + 1}: {r.get('question')!r} -> error {r['error']!r}")
        else:
            diff.append(
                f"{mark} {label} line {r.get('line', i + 1)}: {r.get('question')!r} -> {r.get('answer')!r}"
                f" (confidence {float(r.get('confidence', 0)):.6f}, truth {r.get('truth')!r})"
            )
if not ha:
    failed += 1
    diff.append("no answers at all")
log = sys.stderr
print(f"cross-test: {name}: compared {len(ha)} answers; largest confidence difference {worst:.2e}", file=log)
if failed:
    print(f"cross-test: {name}: the answers differ (- host, + {who}):", file=log)
    print("\n".join(diff), file=log)
print(f"cross-test: {name}: {passed} passed, {failed} failed", file=log)
print(passed, failed)
EOF
}

total_passed=0
total_failed=0
tally() { local p f; read -r p f <<<"$1"; total_passed=$((total_passed + p)); total_failed=$((total_failed + f)); }

check_all() {
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  # The host reference is the dev build of `edgeqa` that the test suite has just built for its
  # end-to-end tests (dependencies optimised, see the root Cargo.toml). The same `cargo test`
  # selection, with the same features (CROSS_TEST_HOST_FEATURES), so after scripts/test.sh's
  # `cargo test` this is a no-op: with other features it rebuilt the workspace (10 minutes).
  cargo test -q --locked --workspace --all-targets --no-run \
    ${CROSS_TEST_HOST_FEATURES:+--features "$CROSS_TEST_HOST_FEATURES"}
  local host_bin
  host_bin="$(target_dir)/debug/edgeqa"
  [ -x "$host_bin" ] || die "cargo test --workspace --no-run produced no $host_bin"

  # Under qemu-user /proc/cpuinfo is the host's, so tract warns that it cannot read the ARM features.
  export RUST_LOG="${RUST_LOG:-warn,tract_linalg::arm64=error,tract_linalg::arm32=error}"
  local eval_args=(eval --package "$PACKAGE" --set "$SET" --json --answers)
  "$host_bin" "${eval_args[@]}" >"$tmp/host.json" || die "host edgeqa ${eval_args[*]} failed"
  python3 -c '
import json, sys
for line in open(sys.argv[1]):
    q = json.loads(line) if line.strip() else {}
    if q.get("video") == sys.argv[2]:
        print(q["question"])
' "$SET" "$CLIP.y4m" >"$tmp/questions.txt"
  [ -s "$tmp/questions.txt" ] || die "$SET has no question about $CLIP.y4m"
  local clips; clips="$(dirname "$SET")"
  local live_args=(live --package "$PACKAGE" --video "$clips/$CLIP.y4m" --audio "$clips/$CLIP.wav" --ask-at-end --json)
  "$host_bin" "${live_args[@]}" <"$tmp/questions.txt" >"$tmp/host-live.jsonl" 2>"$tmp/host-live.err" ||
    die "host edgeqa ${live_args[*]} failed: $(tail -n 3 "$tmp/host-live.err")"

  # Two boards at a time, in the order they are built, each in a subshell of its own with its
  # output kept apart: qemu-user runs a board's questions on one core. The outputs are printed in
  # this order afterwards.
  local b
  for b in $ALL_BOARDS; do
    selected "$b" || continue
    while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n || true; done
    wait_for_build "$b" || continue
    log "$b: checking"
    (
      total_passed=0 total_failed=0
      "check_${b//-/_}"
      echo "$total_passed $total_failed" >"$tmp/$b.tally"
    ) >"$tmp/$b.out" 2>&1 &
  done
  wait
  for b in $ALL_BOARDS; do
    selected "$b" || continue
    if [ -e "$tmp/$b.out" ]; then cat "$tmp/$b.out" >&2; fi
    if [ -s "$tmp/$b.tally" ]; then
      tally "$(cat "$tmp/$b.tally")"
    else
      log "$b: not checked in full (above)"
      total_failed=$((total_failed + 1))
    fi
  done

  echo "cross-test: $total_passed passed, $total_failed failed"
  [ "$total_failed" -eq 0 ]
}

# Runs an aarch64 glibc binary ($1) under qemu with the rest as its arguments.
# LD_LIBRARY_PATH keeps glibc the cross toolchain's, the one matching the dynamic loader under
# -L: with arm64 multiarch installed, /etc/ld.so.cache lists /lib/aarch64-linux-gnu/libc.so.6
# (another build), and a program linking both hangs in its first pthread_create. ALSA,
# PocketSphinx and libstdc++ still come from there. The timeout turns any other hang into a failure.
qemu_aarch64_glibc() {
  local bin="$1"; shift
  timeout 900 qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib -cpu cortex-a72 "$bin" "$@"
}

check_generic_aarch64() {
  # --- generic-aarch64: glibc 2.27, every feature but wgpu, from its bundle.
  local t0 arm_bin; t0=$(now)
  arm_bin="$(unpack generic-aarch64)"
  check_linkage generic-aarch64 "$arm_bin" glibc
  on_aarch64() { qemu_aarch64_glibc "$arm_bin" "$@"; }
  on_aarch64 "${eval_args[@]}" >"$tmp/aarch64.json" || die "generic-aarch64: edgeqa ${eval_args[*]} failed under qemu"
  tally "$(compare "generic-aarch64 eval" eval "$tmp/host.json" "$tmp/aarch64.json" aarch64)"
  on_aarch64 "${live_args[@]}" <"$tmp/questions.txt" >"$tmp/aarch64-live.jsonl" 2>"$tmp/aarch64-live.err" ||
    die "generic-aarch64: edgeqa ${live_args[*]} failed under qemu: $(tail -n 3 "$tmp/aarch64-live.err")"
  tally "$(compare "generic-aarch64 live" lines "$tmp/host-live.jsonl" "$tmp/aarch64-live.jsonl" aarch64)"
  # Built without `threads` (the board runs one thread): a board's count of 2 runs on one thread,
  # and --threads 2 is refused in one line.
  on_aarch64 inspect "$PACKAGE" --board rpi4 --backend tract >/dev/null 2>"$tmp/aarch64-threads.err" ||
    die "generic-aarch64: edgeqa inspect --board rpi4 failed without a thread pool: $(tail -n 3 "$tmp/aarch64-threads.err")"
  if on_aarch64 inspect "$PACKAGE" --board rpi4 --backend tract --threads 2 >/dev/null 2>"$tmp/aarch64-threads.err" ||
    ! grep -q "this build has no thread pool" "$tmp/aarch64-threads.err"; then
    die "generic-aarch64: --threads 2 without a thread pool was not refused: $(tail -n 3 "$tmp/aarch64-threads.err")"
  fi
  echo "cross-test: generic-aarch64 threads: a board's 2 run on 1; --threads 2 refused: $(tail -n 1 "$tmp/aarch64-threads.err")" >&2
  # A spoken question: the clip's first question said by espeak-ng; the same transcript and answer.
  espeak-ng -v en-us -w "$tmp/question.wav" "$(head -n 1 "$tmp/questions.txt")"
  local spoken=(ask --package "$PACKAGE" --video "$clips/$CLIP.y4m" --audio "$clips/$CLIP.wav"
    --question-audio "$tmp/question.wav" --json)
  "$host_bin" "${spoken[@]}" >"$tmp/host-spoken.json" || die "host edgeqa ${spoken[*]} failed"
  on_aarch64 "${spoken[@]}" >"$tmp/aarch64-spoken.json" || die "generic-aarch64: edgeqa ${spoken[*]} failed under qemu"
  python3 - "$tmp/host-spoken.json" "$tmp/aarch64-spoken.json" <<'EOF' || die "generic-aarch64: the spoken question differs"
import json, sys
h, a = (json.load(open(p)) for p in sys.argv[1:3])
keys = ("transcript", "accepted", "answer")
same = all(h[k] == a[k] for k in keys) and abs(h["confidence"] - a["confidence"]) <= 1e-3
print(f"cross-test: generic-aarch64 spoken: host heard {h['transcript']!r} -> {h['answer']!r}; "
      f"aarch64 heard {a['transcript']!r} -> {a['answer']!r}", file=sys.stderr)
sys.exit(0 if same and h["accepted"] else 1)
EOF
  tally "1 0"
  # No camera or sound card under qemu: `devices` must find none and succeed (ALSA may complain on
  # stderr). ALSA's `null` PCM (a discard device in alsa-lib's default configuration, listed on any
  # machine) is the only microphone allowed.
  on_aarch64 devices >"$tmp/devices.txt" 2>"$tmp/devices.err" ||
    die "generic-aarch64: edgeqa devices failed under qemu: $(cat "$tmp/devices.txt") $(tail -n 3 "$tmp/devices.err")"
  grep -qx "cameras: none found" "$tmp/devices.txt" ||
    die "edgeqa devices under qemu did not say \"cameras: none found\": $(cat "$tmp/devices.txt")"
  if grep -qx "microphones: none found" "$tmp/devices.txt"; then
    log "generic-aarch64 devices: no camera, no microphone"
  elif grep -q "^microphone null " "$tmp/devices.txt" && ! grep "^microphone " "$tmp/devices.txt" | grep -vq "^microphone null "; then
    log "generic-aarch64 devices: no camera; no microphone but ALSA's null device"
  else
    die "edgeqa devices under qemu found a device: $(cat "$tmp/devices.txt")"
  fi
  [ ! -s "$tmp/devices.err" ] || log "generic-aarch64 devices said on stderr: $(head -c 300 "$tmp/devices.err" | tr '\n' ' ')"
  log "generic-aarch64: checks took $(($(now) - t0)) s"
}

check_generic_aarch64_litert() {
  # --- generic-aarch64-litert: glibc 2.34, LiteRT beside tract, from its bundle. The binary finds
  # libLiteRt.so beside itself (its RUNPATH is $ORIGIN): nothing on LD_LIBRARY_PATH points there.
  local t0 bin dir; t0=$(now)
  bin="$(unpack generic-aarch64-litert)"
  dir="$(dirname "$bin")"
  cmp -s "$dir/libLiteRt.so" "$LITERT_AARCH64/libLiteRt.so" ||
    die "generic-aarch64-litert: the bundle's libLiteRt.so is missing or not $LITERT_AARCH64/libLiteRt.so"
  readelf -W --dynamic "$bin" | grep -E '\((RUNPATH|RPATH)\)' | grep -qF '[$ORIGIN]' ||
    die "generic-aarch64-litert: $bin does not look for libraries beside itself (no \$ORIGIN RUNPATH)"
  check_linkage generic-aarch64-litert "$bin" glibc "$GLIBC_MAX_LITERT"
  on_litert() { qemu_aarch64_glibc "$bin" "$@"; }
  on_litert "${eval_args[@]}" >"$tmp/litert.json" || die "generic-aarch64-litert: edgeqa ${eval_args[*]} failed under qemu"
  tally "$(compare "generic-aarch64-litert eval" eval "$tmp/host.json" "$tmp/litert.json" aarch64-litert)"
  # The registry's TFLite models (scripts/fetch-tflite.sh), packaged by the host's converter, on
  # LiteRT under qemu against the Python reference, as tests/tflite.rs does on the host.
  local convert; convert="$(dirname "$host_bin")/edgeqa-convert"
  [ -x "$convert" ] || die "$convert is missing: cargo test --workspace --no-run makes it"
  local models; models="$(python3 -c '
import json, sys
for m in json.load(open(sys.argv[1]))["models"]:
    if "error" not in m:
        print(m["model"], m["file"], " ".join(t["name"] + "=" + t["file"] for t in m["inputs"]))
' "$TFLITE_INDEX")" || die "cannot read $TFLITE_INDEX: run scripts/fetch-tflite.sh"
  local name file inputs ran=0 input_args i
  while read -r name file inputs <&3; do
    # The converter refuses what the engines cannot run (a dynamic dimension), as on the host.
    if ! "$convert" --model "$file" -o "$tmp/$name.eqa" >/dev/null 2>"$tmp/$name.err"; then
      log "generic-aarch64-litert tflite: $name not packaged: $(tail -n 1 "$tmp/$name.err")"
      continue
    fi
    input_args=()
    for i in $inputs; do input_args+=(--input "$i"); done
    on_litert run --package "$tmp/$name.eqa" "${input_args[@]}" --backend litert --output-dir "$tmp/$name" \
      --json >"$tmp/$name.json" 2>"$tmp/$name.err" ||
      die "generic-aarch64-litert: edgeqa run --backend litert on $name failed under qemu: $(tail -n 3 "$tmp/$name.err")"
    tally "$(.cache/tflite/venv/bin/python - "$TFLITE_INDEX" "$name" "$tmp/$name.json" <<'EOF'
import json, sys
import numpy as np
index, name, summary = sys.argv[1:4]
model = next(m for m in json.load(open(index))["models"] if m["model"] == name)
got = json.load(open(summary))
worst, ok = 0.0, len(got) == len(model["outputs"])
for g, want in zip(got, model["outputs"]):
    a, b = np.load(g["file"]).astype(np.float64), np.load(want["file"]).astype(np.float64)
    if a.shape != b.shape:
        ok = False
        continue
    scale = float(np.abs(b).max())
    worst = max(worst, float(np.abs(a - b).max()) / scale if scale > 0 else float(np.abs(a - b).max()))
ok = ok and worst <= 1e-4
print(f"cross-test: generic-aarch64-litert tflite: {name}: largest relative error {worst:.2e} "
      f"against the Python reference ({'ok' if ok else 'above 1e-4 or wrong outputs'})", file=sys.stderr)
print(1 if ok else 0, 0 if ok else 1)
EOF
)"
    ran=$((ran + 1))
  done 3<<<"$models"
  [ "$ran" -ge 4 ] || die "generic-aarch64-litert: only $ran TFLite models ran under qemu; the check needs at least 4"
  log "generic-aarch64-litert: checks took $(($(now) - t0)) s"
}

check_rpi_zero_2w() {
  # --- rpi-zero-2w: 32-bit ARM, glibc 2.27, from its bundle. `-cpu max`: the build is tuned for
  # the Cortex-A53 (ARMv8 in 32-bit mode), which qemu-arm has no model of.
  local armv7_bin; t0=$(now)
  armv7_bin="$(unpack rpi-zero-2w)"
  check_linkage rpi-zero-2w "$armv7_bin" glibc
  on_armv7() { timeout 900 qemu-arm -L /usr/arm-linux-gnueabihf -E LD_LIBRARY_PATH=/usr/arm-linux-gnueabihf/lib -cpu max "$armv7_bin" "$@"; }
  on_armv7 "${eval_args[@]}" >"$tmp/armv7.json" || die "rpi-zero-2w: edgeqa ${eval_args[*]} failed under qemu-arm"
  tally "$(compare "rpi-zero-2w eval" eval "$tmp/host.json" "$tmp/armv7.json" armv7)"
  on_armv7 "${live_args[@]}" <"$tmp/questions.txt" >"$tmp/armv7-live.jsonl" 2>"$tmp/armv7-live.err" ||
    die "rpi-zero-2w: edgeqa ${live_args[*]} failed under qemu-arm: $(tail -n 3 "$tmp/armv7-live.err")"
  tally "$(compare "rpi-zero-2w live" lines "$tmp/host-live.jsonl" "$tmp/armv7-live.jsonl" armv7)"
  log "rpi-zero-2w: checks took $(($(now) - t0)) s"
}

check_generic_aarch64_static() {
  # --- generic-aarch64-static: no sysroot, no loader, no library.
  local static_bin; t0=$(now)
  static_bin="$(built_binary generic-aarch64-static)"
  check_linkage generic-aarch64-static "$static_bin" static
  timeout 900 qemu-aarch64 -cpu cortex-a72 "$static_bin" "${eval_args[@]}" >"$tmp/static.json" ||
    die "generic-aarch64-static: edgeqa ${eval_args[*]} failed under qemu"
  tally "$(compare "generic-aarch64-static eval" eval "$tmp/host.json" "$tmp/static.json" musl)"
  log "generic-aarch64-static: checks took $(($(now) - t0)) s"
}

check_generic_x86_64() {
  # --- generic-x86_64: glibc 2.27, natively.
  local x86_bin; t0=$(now)
  x86_bin="$(built_binary generic-x86_64)"
  check_linkage generic-x86_64 "$x86_bin" glibc
  "$x86_bin" "${eval_args[@]}" >"$tmp/x86_64.json" || die "generic-x86_64: edgeqa ${eval_args[*]} failed"
  tally "$(compare "generic-x86_64 eval" eval "$tmp/host.json" "$tmp/x86_64.json" x86_64-glibc2.27)"
  log "generic-x86_64: checks took $(($(now) - t0)) s"
}

start=$(now)
case "${1:-all}" in
  prepare) prepare ;;
  build) build_all ;;
  check) check_all ;;
  all) prepare; build_all; check_all ;;
  *) die "unknown step \`$1\`: use prepare, build, check or all" ;;
esac
log "${1:-all} took $(($(now) - start)) s"
