#!/usr/bin/env bash
# Cross-test: builds edgeqa for a 64-bit ARM board with edgeqa-board (features tract, camera, mic,
# voice) and packs it into a board bundle with the demo student; from the unpacked bundle it runs
# the demo evaluation, `edgeqa live` on a demo clip and a spoken question
# under qemu-aarch64 and checks that every answer (and the transcript) matches the host build's;
# checks that `edgeqa devices` runs there.
#
# Idempotent: installs only what is missing (Debian packages gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross, qemu-user, libclang-dev for v4l's bindgen; arm64 multiarch with
# libasound2-dev:arm64 for the microphone and libpocketsphinx-dev:arm64 for spoken questions, with
# pocketsphinx-en-us and espeak-ng; the rustup target aarch64-unknown-linux-gnu).
# edgeqa-board points pkg-config and bindgen at the aarch64 files (docs/boards.md).
# The board is generic-aarch64 (no -C target-cpu), so the build shares cargo's usual target dir.
set -euo pipefail
cd "$(dirname "$0")/.."

BOARD=generic-aarch64
TARGET=aarch64-unknown-linux-gnu
DPKG_ARCH=arm64
MULTIARCH=aarch64-linux-gnu
QEMU_CPU=cortex-a72        # a Raspberry Pi 4 core
SYSROOT=/usr/aarch64-linux-gnu
PACKAGE=models/demo/demo.eqa
SET=models/demo/eval/questions.jsonl
CLIP=clip_000               # the clip `edgeqa live` watches and listens to

log() { echo "cross-test: $*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s; }
start=$(now)

# 1. Debian packages: the cross linker and libc (with the Linux headers v4l's bindgen reads),
#    qemu's user-mode emulator, libclang for bindgen, and ALSA (host and arm64 multiarch) for cpal.
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_install() {
  log "installing $*"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if command -v dpkg >/dev/null 2>&1; then
  need_apt=()
  for pkg in gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libclang-dev libasound2-dev pkg-config \
    libpocketsphinx-dev pocketsphinx-en-us espeak-ng; do
    # `pkg:arch` too: plain `dpkg -s` calls a package installed for two architectures ambiguous.
    dpkg -s "$pkg" >/dev/null 2>&1 || dpkg -s "$pkg:$(dpkg --print-architecture)" >/dev/null 2>&1 ||
      need_apt+=("$pkg")
  done
  for pkg in libasound2-dev libpocketsphinx-dev; do
    if ! dpkg -s "$pkg:$DPKG_ARCH" >/dev/null 2>&1; then
      if ! dpkg --print-foreign-architectures | grep -qx "$DPKG_ARCH"; then
        log "dpkg --add-architecture $DPKG_ARCH"
        $SUDO dpkg --add-architecture "$DPKG_ARCH"
      fi
      need_apt+=("$pkg:$DPKG_ARCH")
    fi
  done
  [ ${#need_apt[@]} -eq 0 ] || apt_install "${need_apt[@]}"
else
  for tool in aarch64-linux-gnu-gcc qemu-aarch64; do
    command -v "$tool" >/dev/null 2>&1 ||
      die "$tool not found and this is not a Debian system: install an aarch64 cross gcc and qemu-user"
  done
fi
[ -f "$SYSROOT/include/linux/videodev2.h" ] ||
  log "warning: $SYSROOT/include/linux/videodev2.h not found: the camera feature needs the aarch64 Linux headers"
[ -f "/usr/lib/$MULTIARCH/pkgconfig/alsa.pc" ] ||
  log "warning: /usr/lib/$MULTIARCH/pkgconfig/alsa.pc not found: the mic feature needs ALSA for aarch64"

# 2. The Rust standard library for the target.
if ! command -v rustup >/dev/null 2>&1; then
  sysroot="$(rustc --print sysroot)"
  [ -d "$sysroot/lib/rustlib/$TARGET/lib" ] ||
    die "rustup not found, and $sysroot has no standard library for $TARGET: install Rust with rustup (https://rustup.rs)"
elif ! rustup target list --installed | grep -qx "$TARGET"; then
  log "rustup target add $TARGET"
  rustup target add "$TARGET"
fi
command -v python3 >/dev/null 2>&1 || die "python3 not found (it compares the JSON reports): install python3"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
json_field() { python3 -c 'import json, sys; v = json.load(open(sys.argv[1]))[sys.argv[2]]; print("" if v is None else v)' "$@"; }

# 3. The aarch64 binary (through edgeqa-board, as a user would build it), packed with the demo
#    student into a board bundle (`edgeqa-board bundle`, the same build), and the host binary.
#    Everything below runs the binary unpacked from the bundle.
t0=$(now)
board=(cargo run -q --locked -p edgeqa-firmware-config --bin edgeqa-board --)
# The release profile, not the boards' default `deploy`: its whole-program LTO would add minutes
# to every CI run; the answers are the same.
"${board[@]}" build --board "$BOARD" --profile release --json -- --locked >"$tmp/build.json"
stripped="$(json_field "$tmp/build.json" stripped)"
stripped_size="$(json_field "$tmp/build.json" stripped_size_bytes)"
"${board[@]}" bundle --board "$BOARD" --package "$PACKAGE" --profile release -o "$tmp/bundle.tar.gz" -- --locked >&2
tar -xzf "$tmp/bundle.tar.gz" -C "$tmp"
arm_bin="$tmp/edgeqa/edgeqa"
[ -x "$arm_bin" ] || die "the bundle holds no executable edgeqa/edgeqa"
cmp -s "$tmp/edgeqa/$(basename "$PACKAGE")" "$PACKAGE" || die "the bundle's $(basename "$PACKAGE") differs from $PACKAGE"
grep -q "^ExecStart=.*/opt/edgeqa/edgeqa live --package /opt/edgeqa/$(basename "$PACKAGE") --board $BOARD" \
  "$tmp/edgeqa/edgeqa.service" || die "the bundle's edgeqa.service does not run edgeqa live"
[ -s "$tmp/edgeqa/README.md" ] || die "the bundle has no README.md"
t1=$(now)
# The host reference is the dev build of `edgeqa` that the test suite has just built for its
# end-to-end tests (dependencies optimised, see the root Cargo.toml): the same answers as a release
# build without a second optimised build. The same `cargo test` selection keeps its feature set,
# so after `cargo test` this is a no-op (a plain `cargo build` would rebuild tract).
cargo test -q --locked --workspace --all-targets --no-run
cargo metadata -q --no-deps --format-version 1 >"$tmp/metadata.json"
host_bin="$(json_field "$tmp/metadata.json" target_directory)/debug/edgeqa"
[ -x "$host_bin" ] || die "cargo test --workspace --no-run produced no $host_bin"
t2=$(now)
log "aarch64 build $((t1 - t0)) s, host build $((t2 - t1)) s"
if [ -n "$stripped" ]; then
  log "stripped $TARGET binary: $stripped, $stripped_size bytes ($((stripped_size / 1024)) KiB)"
else
  log "no stripped binary (aarch64-linux-gnu-strip not found; it comes with binutils-aarch64-linux-gnu)"
fi

# 4. The same evaluation on both, listing every answer; then `edgeqa live` on one clip (its files
#    standing in for the camera and microphone) with that clip's questions on stdin.
# Under qemu-user /proc/cpuinfo is the host's, so tract warns that it cannot read the ARM features.
export RUST_LOG="${RUST_LOG:-warn,tract_linalg::arm64=error}"
# LD_LIBRARY_PATH keeps glibc the cross toolchain's, the one matching the dynamic loader under -L:
# with arm64 multiarch installed, /etc/ld.so.cache lists /lib/aarch64-linux-gnu/libc.so.6 (another
# build), and a program linking both hangs in its first pthread_create. ALSA still comes from there.
# The timeout turns any other hang into a failure.
on_qemu() { timeout 900 qemu-aarch64 -L "$SYSROOT" -E LD_LIBRARY_PATH="$SYSROOT/lib" -cpu "$QEMU_CPU" "$arm_bin" "$@"; }
args=(eval --package "$PACKAGE" --set "$SET" --json --answers)
"$host_bin" "${args[@]}" >"$tmp/host.json" || die "host edgeqa ${args[*]} failed"
on_qemu "${args[@]}" >"$tmp/aarch64.json" || die "qemu-aarch64 -cpu $QEMU_CPU $arm_bin ${args[*]} failed"
t3=$(now)

python3 -c '
import json, sys
for line in open(sys.argv[1]):
    q = json.loads(line) if line.strip() else {}
    if q.get("video") == sys.argv[2]:
        print(q["question"])
' "$SET" "$CLIP.y4m" >"$tmp/questions.txt"
[ -s "$tmp/questions.txt" ] || die "$SET has no question about $CLIP.y4m"
clips="$(dirname "$SET")"
live=(live --package "$PACKAGE" --video "$clips/$CLIP.y4m" --audio "$clips/$CLIP.wav" --ask-at-end --json)
"$host_bin" "${live[@]}" <"$tmp/questions.txt" >"$tmp/host-live.jsonl" 2>"$tmp/host-live.err" ||
  die "host edgeqa ${live[*]} failed: $(tail -n 3 "$tmp/host-live.err")"
on_qemu "${live[@]}" <"$tmp/questions.txt" >"$tmp/aarch64-live.jsonl" 2>"$tmp/aarch64-live.err" ||
  die "qemu-aarch64 -cpu $QEMU_CPU $arm_bin ${live[*]} failed: $(tail -n 3 "$tmp/aarch64-live.err")"
# A spoken question: the clip's first question said by espeak-ng; the same transcript and answer.
espeak-ng -v en-us -w "$tmp/question.wav" "$(head -n 1 "$tmp/questions.txt")"
spoken=(ask --package "$PACKAGE" --video "$clips/$CLIP.y4m" --audio "$clips/$CLIP.wav"
  --question-audio "$tmp/question.wav" --json)
"$host_bin" "${spoken[@]}" >"$tmp/host-spoken.json" || die "host edgeqa ${spoken[*]} failed"
on_qemu "${spoken[@]}" >"$tmp/aarch64-spoken.json" ||
  die "qemu-aarch64 -cpu $QEMU_CPU $arm_bin ${spoken[*]} failed"
python3 - "$tmp/host-spoken.json" "$tmp/aarch64-spoken.json" <<'EOF2' || die "the spoken question differs"
import json, sys
h, a = (json.load(open(p)) for p in sys.argv[1:3])
keys = ("transcript", "accepted", "answer")
same = all(h[k] == a[k] for k in keys) and abs(h["confidence"] - a["confidence"]) <= 1e-3
print(f"cross-test: spoken question: host heard {h['transcript']!r} -> {h['answer']!r}; "
      f"aarch64 heard {a['transcript']!r} -> {a['answer']!r}", file=sys.stderr)
sys.exit(0 if same and h["accepted"] else 1)
EOF2
t4=$(now)

# No camera or sound card under qemu: `devices` must find none and succeed (ALSA may complain on
# stderr). ALSA's `null` PCM (a discard device in alsa-lib's default configuration, listed on any
# machine) is the only microphone allowed.
on_qemu devices >"$tmp/devices.txt" 2>"$tmp/devices.err" ||
  die "qemu-aarch64 $arm_bin devices failed: $(cat "$tmp/devices.txt") $(tail -n 3 "$tmp/devices.err")"
grep -qx "cameras: none found" "$tmp/devices.txt" ||
  die "edgeqa devices under qemu did not say \"cameras: none found\": $(cat "$tmp/devices.txt")"
if grep -qx "microphones: none found" "$tmp/devices.txt"; then
  log "edgeqa devices under qemu: no camera, no microphone"
elif grep -q "^microphone null " "$tmp/devices.txt" && ! grep "^microphone " "$tmp/devices.txt" | grep -vq "^microphone null "; then
  log "edgeqa devices under qemu: no camera; no microphone but ALSA's null device"
else
  die "edgeqa devices under qemu found a device: $(cat "$tmp/devices.txt")"
fi
if [ -s "$tmp/devices.err" ]; then
  log "edgeqa devices under qemu said on stderr: $(head -c 300 "$tmp/devices.err" | tr '\n' ' ')"
fi
t5=$(now)
log "evaluations (host + qemu) $((t3 - t2)) s, live and spoken (host + qemu) $((t4 - t3)) s, devices $((t5 - t4)) s, total $((t5 - start)) s"

# 5. Compare every answer and its confidence: the evaluation's, then live's.
python3 - "$tmp/host.json" "$tmp/aarch64.json" "$tmp/host-live.jsonl" "$tmp/aarch64-live.jsonl" <<'EOF'
import json, sys

CONFIDENCE_TOLERANCE = 1e-3


def compare(name, ha, aa):
    """Prints how two lists of answers differ; returns (passed, failed)."""
    passed, failed, worst = 0, 0, 0.0
    diff = []
    for i in range(max(len(ha), len(aa))):
        h = ha[i] if i < len(ha) else None
        a = aa[i] if i < len(aa) else None
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
        for mark, who, r in (("-", "host   ", h), ("+", "aarch64", a)):
            if r is None:
                diff.append(f"{mark} {who} (no answer #{i + 1})")
            elif "error" in r:
                diff.append(f"{mark} {who} #{i + 1}: {r.get('question')!r} -> error {r['error']!r}")
            else:
                diff.append(
                    f"{mark} {who} line {r.get('line', i + 1)}: {r.get('question')!r} -> {r.get('answer')!r}"
                    f" (confidence {float(r.get('confidence', 0)):.6f}, truth {r.get('truth')!r})"
                )
    print(f"cross-test: {name}: compared {len(ha)} answers; largest confidence difference {worst:.2e}", file=sys.stderr)
    if failed:
        print(f"cross-test: {name}: answers differ between the host and the aarch64 build (- host, + aarch64):",
              file=sys.stderr)
        print("\n".join(diff), file=sys.stderr)
    print(f"cross-test: {name}: {passed} passed, {failed} failed", file=sys.stderr)
    return passed, failed


def lines(path):
    return [json.loads(l) for l in open(path) if l.strip()]


host, arm = (json.load(open(p)) for p in sys.argv[1:3])
results = [compare("eval", host["answers"], arm["answers"]), compare("live", lines(sys.argv[3]), lines(sys.argv[4]))]
if not results[1][0] + results[1][1]:
    print("cross-test: live: no answers at all", file=sys.stderr)
    results.append((0, 1))
passed, failed = (sum(r[i] for r in results) for i in (0, 1))
print(f"cross-test: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
EOF
