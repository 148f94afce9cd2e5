#!/usr/bin/env python3
"""What taking quantized weights as stored (translate once, docs/wgpu-backend.md) saves at load:
each package side by side with a copy of itself whose manifest lacks the ``packed`` records (as
an older converter wrote it, so the wgpu loader folds every dequantizing sub-graph to f32), the
two taking turns over several rounds in one run. Reports the median peak resident memory
(``/usr/bin/time -f %M``) and wall time of ``edgeqa inspect`` (plans every stage for wgpu, no
GPU needed) and of ``edgeqa bench --backend wgpu`` (loads and runs every stage), and the ratio.

    python3 benches/translate_once.py --bin target/release/edgeqa --packages P.eqa[,Q.eqa...]
        [--rounds 3] [--iterations 3]
"""

import argparse
import hashlib
import json
import os
import statistics
import struct
import subprocess
import tempfile

HEADER, ENTRY, ALIGN = 64, 96, 64


def read_package(path: str) -> list[tuple[int, str, bytes]]:
    """The sections of a version-1 package: (kind, name, bytes), the manifest first."""
    data = open(path, "rb").read()
    magic, version, count, file_len = struct.unpack_from("<8sIIQ", data, 0)
    if magic != b"EDGEQAPK" or version != 1 or file_len != len(data):
        raise SystemExit(f"{path}: not a version-1 .eqa package")
    sections = []
    for i in range(count):
        kind, _flags, offset, length = struct.unpack_from("<IIQQ", data, HEADER + ENTRY * i)
        name = data[HEADER + ENTRY * i + 32 : HEADER + ENTRY * i + 64].rstrip(b"\0").decode()
        sections.append((kind, name, data[offset : offset + length]))
    return sections


def write_package(path: str, sections: list[tuple[int, str, bytes]]) -> None:
    """Writes sections as the runtime's package writer does (docs/package-format.md)."""
    pad = lambda n: (n + ALIGN - 1) // ALIGN * ALIGN
    offset = pad(HEADER + ENTRY * len(sections))
    table, body = b"", b""
    for kind, name, data in sections:
        table += struct.pack("<IIQQQ", kind, 0, offset, len(data), 0)
        table += name.encode().ljust(32, b"\0") + hashlib.sha256(data).digest()
        body += b"\0" * (offset - HEADER - ENTRY * len(sections) - len(body)) + data
        offset = pad(offset + len(data))
    file_len = pad(HEADER + ENTRY * len(sections) + len(body))
    head = struct.pack("<8sIIQQ", b"EDGEQAPK", 1, len(sections), file_len, 0)
    out = head + hashlib.sha256(head + table).digest() + table + body
    open(path, "wb").write(out + b"\0" * (file_len - len(out)))


def without_records(package: str, out: str) -> int:
    """Writes `package` without its `packed` records; returns how many there were."""
    sections = read_package(package)
    manifest = json.loads(sections[0][2])
    n = 0
    for t in manifest.get("quantization", {}).get("tensors", []):
        n += t.pop("packed", None) is not None
    sections[0] = (sections[0][0], sections[0][1], json.dumps(manifest).encode())
    write_package(out, sections)
    return n


def measure(cmd: list[str]) -> tuple[int, float]:
    """Peak resident KiB and wall seconds of one run of `cmd`."""
    r = subprocess.run(["/usr/bin/time", "-f", "%M %e", *cmd], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    kib, secs = r.stderr.strip().splitlines()[-1].split()
    return int(kib), float(secs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="the edgeqa binary")
    ap.add_argument("--packages", required=True, help=".eqa packages, comma-separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=3)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="translate-once-")
    for package in a.packages.split(","):
        plain = os.path.join(tmp, os.path.basename(package).replace(".eqa", "-no-records.eqa"))
        records = without_records(package, plain)
        runs: dict[tuple[str, str], list[tuple[int, float]]] = {}
        commands = {
            "inspect": lambda p: [a.bin, "inspect", p, "--json"],
            "bench wgpu": lambda p: [
                a.bin, "bench", "--package", p, "--backend", "wgpu", "--iterations", str(a.iterations),
                "--warmup", "0", "--rounds", "1", "--format", "json",
            ],
        }
        for _ in range(a.rounds):
            for what, cmd in commands.items():
                for variant, p in (("as stored", package), ("folded", plain)):
                    runs.setdefault((what, variant), []).append(measure(cmd(p)))
        print(f"{package}: {records} records")
        for what in commands:
            med = {v: (statistics.median(k for k, _ in runs[(what, v)]), statistics.median(s for _, s in runs[(what, v)]))
                   for v in ("as stored", "folded")}
            (ks, ss), (kf, sf) = med["as stored"], med["folded"]
            print(f"  {what}: peak RSS {ks / 1024:.1f} MiB as stored, {kf / 1024:.1f} MiB folded ({ks / kf:.2f}x); "
                  f"wall {ss:.2f} s as stored, {sf:.2f} s folded ({ss / sf:.2f}x); {a.rounds} rounds, medians")


if __name__ == "__main__":
    main()
