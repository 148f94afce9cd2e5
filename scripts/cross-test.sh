#!/usr/bin/env bash
# Cross-test: builds edgeqa for a 64-bit ARM board with edgeqa-board, runs the bundled demo
# evaluation under qemu-aarch64 and checks that every answer matches the host build's.
#
# Idempotent: installs only what is missing (Debian packages gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross, qemu-user; the rustup target aarch64-unknown-linux-gnu).
# The board is generic-aarch64 (no -C target-cpu), so the build shares cargo's usual target dir.
set -euo pipefail
cd "$(dirname "$0")/.."

BOARD=generic-aarch64
TARGET=aarch64-unknown-linux-gnu
QEMU_CPU=cortex-a72        # a Raspberry Pi 4 core
SYSROOT=/usr/aarch64-linux-gnu
PACKAGE=models/demo/demo.eqa
SET=models/demo/eval/questions.jsonl

log() { echo "cross-test: $*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s; }
start=$(now)

# 1. Debian packages: the cross linker and libc, and qemu's user-mode emulator.
need_apt=()
if command -v dpkg >/dev/null 2>&1; then
  for pkg in gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
  done
else
  for tool in aarch64-linux-gnu-gcc qemu-aarch64; do
    command -v "$tool" >/dev/null 2>&1 ||
      die "$tool not found and this is not a Debian system: install an aarch64 cross gcc and qemu-user"
  done
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

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

# 3. The aarch64 binary (through edgeqa-board, as a user would build it) and the host binary.
t0=$(now)
cargo run -q --locked -p edgeqa-firmware-config --bin edgeqa-board -- \
  build --board "$BOARD" --json -- --locked >"$tmp/build.json"
arm_bin="$(json_field "$tmp/build.json" binary)"
stripped="$(json_field "$tmp/build.json" stripped)"
stripped_size="$(json_field "$tmp/build.json" stripped_size_bytes)"
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

# 4. The same evaluation on both, listing every answer.
args=(eval --package "$PACKAGE" --set "$SET" --json --answers)
"$host_bin" "${args[@]}" >"$tmp/host.json" || die "host edgeqa ${args[*]} failed"
# Under qemu-user /proc/cpuinfo is the host's, so tract warns that it cannot read the ARM features.
RUST_LOG="${RUST_LOG:-warn,tract_linalg::arm64=error}" \
  qemu-aarch64 -L "$SYSROOT" -cpu "$QEMU_CPU" "$arm_bin" "${args[@]}" >"$tmp/aarch64.json" ||
  die "qemu-aarch64 -cpu $QEMU_CPU $arm_bin ${args[*]} failed"
t3=$(now)
log "evaluations (host + qemu) $((t3 - t2)) s, total $((t3 - start)) s"

# 5. Compare every answer and its confidence.
python3 - "$tmp/host.json" "$tmp/aarch64.json" <<'EOF'
import json, sys

CONFIDENCE_TOLERANCE = 1e-3
host, arm = (json.load(open(p)) for p in sys.argv[1:3])

ha, aa = host["answers"], arm["answers"]
passed, failed, worst = 0, 0, 0.0
diff = []
for i in range(max(len(ha), len(aa))):
    h = ha[i] if i < len(ha) else None
    a = aa[i] if i < len(aa) else None
    same = h is not None and a is not None and h.get("question") == a.get("question") and h.get("answer") == a.get("answer")
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
        else:
            diff.append(
                f"{mark} {who} line {r.get('line', i + 1)}: {r.get('question')!r} -> {r.get('answer')!r}"
                f" (confidence {float(r.get('confidence', 0)):.6f}, truth {r.get('truth')!r})"
            )
print(f"cross-test: compared {len(ha)} answers; largest confidence difference {worst:.2e}", file=sys.stderr)

if failed:
    print("cross-test: answers differ between the host and the aarch64 build (- host, + aarch64):", file=sys.stderr)
    print("\n".join(diff), file=sys.stderr)
print(f"cross-test: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
EOF
