#!/usr/bin/env python3
"""Several builds of the ``edgeqa`` binary side by side on tract: the same packages, the binaries
taking turns over several rounds in one run, the median of each binary's per-run p50 for every
figure, and its ratio to the first binary. Used to price a cargo profile (``deploy`` against
``release``, opt-level 3 against "s"; docs/boards.md).

    python3 benches/binary_compare.py --bins A,B[,C...] --packages P.eqa[,Q.eqa...]
        [--rounds 3] [--iterations 20] [--threads 1]

Each run is ``edgeqa bench --package P --backend tract --iterations N --threads T --format json``.
"""

import argparse
import json
import statistics
import subprocess


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bins", required=True, help="edgeqa binaries, comma-separated; ratios are to the first")
    ap.add_argument("--packages", required=True, help=".eqa packages, comma-separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    bins, packages = a.bins.split(","), a.packages.split(",")
    p50s: dict[tuple[str, str], dict[str, list[float]]] = {}
    for _ in range(a.rounds):
        for package in packages:
            for binary in bins:
                cmd = [binary, "bench", "--package", package, "--backend", "tract", "--iterations",
                       str(a.iterations), "--threads", str(a.threads), "--format", "json"]
                run = subprocess.run(cmd, capture_output=True, text=True)
                if run.returncode != 0:
                    raise SystemExit(f"{' '.join(cmd)} failed: {run.stderr.strip()}")
                for r in json.loads(run.stdout)["results"]:
                    p50s.setdefault((package, r["figure"]), {}).setdefault(binary, []).append(r["stats"]["p50"])
    print("| package | figure | " + " | ".join(bins) + " |")
    print("|---|---|" + "---|" * len(bins))
    for (package, figure), by in p50s.items():
        med = {b: statistics.median(v) for b, v in by.items()}
        cells = [f"{med[b]:.3f} ({med[b] / med[bins[0]]:.2f})" for b in bins]
        print(f"| {package.split('/')[-1]} | {figure} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
