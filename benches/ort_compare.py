#!/usr/bin/env python3
"""edgeqa's CPU path (tract) next to ONNX Runtime: the same models, the same inputs, the same
thread counts, alternated over several rounds in one run.

    .cache/venv/bin/python benches/ort_compare.py [--threads 1,2] [--rounds 3] [--iterations 20]
        [--models cls,rec,det,minilm,vad,demo] [--forms fp32,int8] [--out DIR]
        [--edgeqa-bin target/release/edgeqa] [--convert-bin target/release/edgeqa-convert]

Models (``bash scripts/fetch-test-data.sh`` fetches them into ``.cache/testdata``): PP-OCR mobile
cls, PP-OCRv4 rec and det (a real rendered input from ``.cache/testdata/ocr/<key>/verify/000``),
MiniLM-L6 with int8 weights as published (16 token ids), Silero VAD's static 16 kHz export (one
576-sample chunk) and the demo student (``models/demo/student``, each of its four stages on fixed
pseudo-random inputs of its shapes).

Forms:

- ``fp32``: ONNX Runtime runs the ONNX file as published; edgeqa the package ``edgeqa-convert
  --scheme fp32`` makes of it.
- ``int8`` (cls, rec, det, demo): ONNX Runtime runs its own ``quantize_static`` output (QDQ,
  per-channel QInt8 weights, QUInt8 activations, Percentile 99.99 calibration, prepared as in
  ``benches/quant_compare.py``); edgeqa runs ``edgeqa-convert --scheme int8`` (same method and
  percentile) on the same calibration samples: OCR from ``.cache/testdata/ocr/<key>/calibration``,
  the student from the stage inputs the converter calibrated on for ``models/demo/eval``
  (``--dump-calibration``).

For every (model, form, thread count), each round runs one ``edgeqa bench --backend tract
--threads T --rounds 1`` process and one ONNX Runtime process (``intra_op_num_threads=T``,
sequential execution), in alternating order; each process loads the model (timed), runs it once
(timed), warms up (3 runs) and times ``--iterations`` runs. p50 is over every timed run of every
round; load and first-run times are the median over rounds; peak RSS is the largest over rounds
(ONNX Runtime's includes the Python interpreter with NumPy, about ``python_baseline_mib`` in
``results.json``). Agreement: each engine's outputs against ONNX Runtime's fp32 outputs of the
same input (cosine, lowest over outputs, and the largest absolute difference).

Writes ``OUT/table.md`` (the command on top) and ``OUT/results.json``; work files in ``OUT/work``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".cache" / "testdata"
sys.path.insert(0, str(Path(__file__).resolve().parent))

STAGES = ("frame_encoder", "audio_encoder", "question_encoder", "head")
WARMUP = 3


def log(msg: str) -> None:
    print(f"ort_compare: {msg}", file=sys.stderr, flush=True)


def rss_mib(field_name: str) -> float:
    """VmRSS or VmHWM of this process, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------------------------ the ORT worker


def file_name(output: str) -> str:
    """An output's file name as `edgeqa run --output-dir` writes it."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in output)


def worker(spec_file: str) -> int:
    """One ONNX Runtime process: spec {threads, iterations, stages: [{stage, onnx, inputs, outputs_dir}]}."""
    spec = json.loads(Path(spec_file).read_text())
    baseline = rss_mib("VmRSS")
    import onnxruntime as ort

    result = {"python_baseline_mib": baseline, "stages": {}}
    for st in spec["stages"]:
        feeds = {name: np.load(path) for name, path in st["inputs"].items()}
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = spec["threads"]
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        t = time.perf_counter()
        sess = ort.InferenceSession(st["onnx"], sess_options=opts, providers=["CPUExecutionProvider"])
        load_ms = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        outs = sess.run(None, feeds)
        first_ms = (time.perf_counter() - t) * 1e3
        for _ in range(WARMUP):
            sess.run(None, feeds)
        samples = []
        for _ in range(spec["iterations"]):
            t = time.perf_counter()
            sess.run(None, feeds)
            samples.append((time.perf_counter() - t) * 1e3)
        if st.get("outputs_dir"):
            d = Path(st["outputs_dir"])
            d.mkdir(parents=True, exist_ok=True)
            for o, v in zip(sess.get_outputs(), outs):
                np.save(d / f"{file_name(o.name)}.npy", v)
        result["stages"][st["stage"]] = {"load_ms": load_ms, "first_run_ms": first_ms, "samples_ms": samples}
    result["peak_rss_mib"] = rss_mib("VmHWM")
    print(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------------- the cases


@dataclass
class Stage:
    stage: str  # the package's stage name (`model` for a generic package)
    ort_onnx: Path  # what ONNX Runtime runs
    inputs: dict[str, Path]  # input name -> .npy
    reference_onnx: Path  # the fp32 graph whose ONNX Runtime outputs are the reference


@dataclass
class Case:
    key: str  # cls, rec, det, minilm, vad, demo
    model: str
    form: str
    package: Path
    stages: list[Stage]
    notes: list[str] = field(default_factory=list)


class Builder:
    def __init__(self, args: argparse.Namespace, work: Path):
        self.a, self.work = args, work
        self.notes: list[str] = []
        self.commands: list[str] = []

    def run(self, cmd: list) -> str:
        cmd = [str(c) for c in cmd]
        self.commands.append(shlex.join(cmd))
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"`{shlex.join(cmd)}` exited {p.returncode}:\n{p.stderr.strip()[-2000:]}")
        return p.stdout

    def convert(self, *args) -> None:
        self.run([self.a.convert_bin, *args])

    def save(self, path: Path, array: np.ndarray) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, array)
        return path

    def ort_int8(self, fp32: Path, out_dir: Path, samples: list[dict[str, np.ndarray]],
                 shapes: dict[str, tuple[int, ...]]) -> Path:
        import quant_compare as qc
        out = out_dir / "ort_int8.onnx"
        if out.exists():
            return out
        _, prepared = qc.ort_prepare(fp32, out_dir, shapes, self.notes)
        qc.ort_static(prepared, out, samples, "percentile", 99.99)
        return out

    def ocr(self, key: str, form: str) -> Case:
        import quant_compare as qc
        spec = qc.OCR[key]
        model = DATA / "models" / spec.file
        w = self.work / key
        x = DATA / "ocr" / key / "verify" / "000" / "x.npy"
        calib = DATA / "ocr" / key / "calibration"
        shape = ["--input-shape", spec.shape_arg]
        w.mkdir(parents=True, exist_ok=True)
        pkg = w / f"{form}.eqa"
        name = {"cls": "PP-OCR mobile cls", "rec": "PP-OCRv4 rec", "det": "PP-OCRv4 det"}[key]
        if form == "fp32":
            if not pkg.exists():
                self.convert("--model", model, *shape, "-o", pkg)
            return Case(key, name, form, pkg, [Stage("model", model, {"x": x}, model)])
        if not pkg.exists():
            self.convert("--model", model, *shape, "-o", pkg, "--scheme", "int8", "--calibration", calib)
        samples = [s for _, s in qc.npy_samples(calib)]
        ort_q = self.ort_int8(model, w / "ort", samples, {"x": spec.shape})
        return Case(key, name, form, pkg, [Stage("model", ort_q, {"x": x}, model)])

    def minilm(self) -> Case:
        model = DATA / "models" / "minilm-l6-int8.onnx"
        w = self.work / "minilm"
        rng = np.random.default_rng(7)
        inputs = {
            "input_ids": self.save(w / "input_ids.npy", rng.integers(1000, 8000, (1, 16), dtype=np.int64)),
            "attention_mask": self.save(w / "attention_mask.npy", np.ones((1, 16), np.int64)),
            "token_type_ids": self.save(w / "token_type_ids.npy", np.zeros((1, 16), np.int64)),
        }
        pkg = w / "fp32.eqa"
        if not pkg.exists():
            shapes = [a for n in inputs for a in ("--input-shape", f"{n}=1,16")]
            self.convert("--model", model, *shapes, "-o", pkg)
        return Case("minilm", "MiniLM-L6 (int8 weights as published)", "fp32", pkg, [Stage("model", model, inputs, model)])

    def vad(self) -> Case:
        model = DATA / "models" / "silero_vad_openvino_16k.onnx"
        w = self.work / "vad"
        rng = np.random.default_rng(8)
        inputs = {
            "input": self.save(w / "input.npy", (rng.standard_normal((1, 576)) * 0.1).astype(np.float32)),
            "state": self.save(w / "state.npy", np.zeros((2, 1, 128), np.float32)),
        }
        pkg = w / "fp32.eqa"
        if not pkg.exists():
            self.convert("--model", model, "-o", pkg)
        return Case("vad", "Silero VAD 16 kHz", "fp32", pkg, [Stage("model", model, inputs, model)])

    def demo(self, form: str) -> Case:
        import onnx
        sdir = ROOT / "models" / "demo" / "student"
        w = self.work / "demo"
        w.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(9)
        stages = []
        inputs_of = {}
        for st in STAGES:
            m = onnx.load(str(sdir / f"{st}.onnx"), load_external_data=False)
            inits = {i.name for i in m.graph.initializer}
            inputs = {}
            for i in m.graph.input:
                if i.name in inits:
                    continue
                shape = tuple(d.dim_value for d in i.type.tensor_type.shape.dim)
                path = w / "inputs" / st / f"{i.name}.npy"
                if i.type.tensor_type.elem_type == onnx.TensorProto.INT64:
                    v = np.ones(shape, np.int64) if "mask" in i.name else rng.integers(1, 50, shape, dtype=np.int64)
                else:
                    v = rng.standard_normal(shape).astype(np.float32)
                inputs[i.name] = self.save(path, v)
            inputs_of[st] = inputs
        pkg = w / f"{form}.eqa"
        if form == "fp32":
            if not pkg.exists():
                self.convert("--student", sdir, "-o", pkg)
            return Case("demo", "demo student", form, pkg,
                        [Stage(st, sdir / f"{st}.onnx", inputs_of[st], sdir / f"{st}.onnx") for st in STAGES])
        dump = w / "calib_npy"
        if not pkg.exists():
            self.convert("--student", sdir, "-o", pkg, "--scheme", "int8",
                         "--calibration", ROOT / "models" / "demo" / "eval" / "questions.jsonl",
                         "--dump-calibration", dump)
        import quant_compare as qc
        stages = []
        for st in STAGES:
            samples = [s for _, s in qc.npy_samples(dump / st)]
            shapes = {k: v.shape for k, v in samples[0].items()}
            ort_q = self.ort_int8(sdir / f"{st}.onnx", w / "ort" / st, samples, shapes)
            stages.append(Stage(st, ort_q, inputs_of[st], sdir / f"{st}.onnx"))
        return Case("demo", "demo student", form, pkg, stages,
                    ["calibrated on models/demo/eval/questions.jsonl (both quantizers, the same stage inputs)"])


# ------------------------------------------------------------------------------- measurement


def edgeqa_bench(a: argparse.Namespace, case: Case, threads: int) -> dict:
    many = len(case.stages) > 1
    cmd = [a.edgeqa_bin, "bench", "--package", str(case.package), "--backend", "tract", "--threads", str(threads),
           "--iterations", str(a.iterations), "--warmup", str(WARMUP), "--rounds", "1", "--format", "json"]
    for st in case.stages:
        for name, path in st.inputs.items():
            cmd += ["--input", f"{st.stage}:{name}={path}" if many else f"{name}={path}"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"`{shlex.join(cmd)}` exited {p.returncode}:\n{p.stderr.strip()[-2000:]}")
    out = json.loads(p.stdout)
    got = {}
    for r in out["results"]:
        if r["figure"].startswith("stage/"):
            got[r["figure"][len("stage/"):]] = {
                "load_ms": r["load_ms"], "first_run_ms": r["first_run_ms"], "samples_ms": r["samples_ms"],
                "peak_rss_mib": r["memory"]["peak_rss_mib"],
            }
    return {"stages": got, "peak_rss_mib": max(v["peak_rss_mib"] for v in got.values()), "command": shlex.join(cmd)}


def ort_run(a: argparse.Namespace, case: Case, threads: int, work: Path, outputs: bool = False,
            reference: bool = False) -> dict:
    stages = []
    for st in case.stages:
        onnx_path = st.reference_onnx if reference else st.ort_onnx
        tag = "reference" if reference else f"{case.form}"
        stages.append({"stage": st.stage, "onnx": str(onnx_path), "inputs": {k: str(v) for k, v in st.inputs.items()},
                       "outputs_dir": str(work / "ort_out" / tag / st.stage) if outputs else None})
    spec = work / f"worker_{case.form}_{threads}.json"
    spec.write_text(json.dumps({"threads": threads, "iterations": a.iterations if not outputs else 1,
                                "stages": stages}))
    p = subprocess.run([sys.executable, __file__, "--worker", str(spec)], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"ONNX Runtime worker failed on {case.model} {case.form}:\n{p.stderr.strip()[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def edgeqa_outputs(a: argparse.Namespace, case: Case, st: Stage, out: Path) -> dict[str, np.ndarray]:
    cmd = [a.edgeqa_bin, "run", "--package", str(case.package), "--stage", st.stage, "--backend", "tract",
           "--output-dir", str(out)]
    for name, path in st.inputs.items():
        cmd += ["--input", f"{name}={path}"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"`{shlex.join(cmd)}` exited {p.returncode}:\n{p.stderr.strip()[-2000:]}")
    return {f.stem: np.load(f) for f in out.glob("*.npy")}


def agreement(got: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> tuple[float, float]:
    cos, mx = 1.0, 0.0
    for name, r in ref.items():
        g = got.get(name)
        if g is None or g.shape != r.shape:
            return float("nan"), float("nan")
        g64, r64 = g.astype(np.float64).ravel(), r.astype(np.float64).ravel()
        na, nb = np.linalg.norm(g64), np.linalg.norm(r64)
        c = 1.0 if na == 0 and nb == 0 else float(g64 @ r64 / max(na * nb, 1e-300))
        cos, mx = min(cos, c), max(mx, float(np.abs(g64 - r64).max()))
    return cos, mx


def load_dir(d: Path) -> dict[str, np.ndarray]:
    return {f.stem: np.load(f) for f in d.glob("*.npy")}


def fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None or v != v else f"{v:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=20, help="timed runs per round and engine")
    ap.add_argument("--models", default="cls,rec,det,minilm,vad,demo")
    ap.add_argument("--forms", default="fp32,int8")
    ap.add_argument("--out", type=Path, default=ROOT / ".cache" / "ort-compare")
    ap.add_argument("--edgeqa-bin", default=str(ROOT / "target" / "release" / "edgeqa"))
    ap.add_argument("--convert-bin", default=str(ROOT / "target" / "release" / "edgeqa-convert"))
    a = ap.parse_args(argv)
    if a.worker:
        return worker(a.worker)
    for b in (a.edgeqa_bin, a.convert_bin):
        if not (Path(b).is_file() and os.access(b, os.X_OK)):
            ap.error(f"{b} is not an executable: build it with `cargo build --release --workspace`")
    if not (DATA / "models").is_dir():
        ap.error(f"{DATA / 'models'} is missing: run `bash scripts/fetch-test-data.sh`")
    if a.rounds < 1 or a.iterations < 1:
        ap.error("--rounds and --iterations must be at least 1")
    threads = [int(t) for t in a.threads.split(",")]
    models = a.models.split(",")
    forms = a.forms.split(",")
    for m in models:
        if m not in ("cls", "rec", "det", "minilm", "vad", "demo"):
            ap.error(f"unknown model `{m}` (cls, rec, det, minilm, vad, demo)")
    for f in forms:
        if f not in ("fp32", "int8"):
            ap.error(f"unknown form `{f}` (fp32, int8)")
    work = a.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    b = Builder(a, work)
    cases: list[Case] = []
    for m in models:
        for f in forms:
            if m in ("cls", "rec", "det"):
                cases.append(b.ocr(m, f))
            elif m == "demo":
                cases.append(b.demo(f))
            elif f == "fp32":
                cases.append(b.minilm() if m == "minilm" else b.vad())
            log(f"prepared {m} {f}")

    rows = []
    for case in cases:
        cw = work / case.key / case.form
        cw.mkdir(parents=True, exist_ok=True)
        # Agreement first: ONNX Runtime's fp32 reference, its own form, and edgeqa's outputs.
        ref = ort_run(a, case, 1, cw, outputs=True, reference=True)
        del ref
        ort_form = ort_run(a, case, 1, cw, outputs=True) if case.form != "fp32" else None
        del ort_form
        agree = {}
        for st in case.stages:
            r = load_dir(cw / "ort_out" / "reference" / st.stage)
            e = edgeqa_outputs(a, case, st, cw / "edgeqa_out" / st.stage)
            o = load_dir(cw / "ort_out" / case.form / st.stage) if case.form != "fp32" else r
            agree[st.stage] = {"edgeqa": agreement(e, r), "ort": agreement(o, r)}
        for t in threads:
            log(f"{case.model} {case.form}, {t} thread(s): {a.rounds} rounds")
            ours: list[dict] = []
            theirs: list[dict] = []
            for rnd in range(a.rounds):
                order = (lambda: ours.append(edgeqa_bench(a, case, t)), lambda: theirs.append(ort_run(a, case, t, cw)))
                for step in (order if rnd % 2 == 0 else order[::-1]):
                    step()
            for st in case.stages:
                e_samples = [s for r in ours for s in r["stages"][st.stage]["samples_ms"]]
                o_samples = [s for r in theirs for s in r["stages"][st.stage]["samples_ms"]]
                e50, o50 = statistics.median(e_samples), statistics.median(o_samples)
                rows.append({
                    "model": case.model, "stage": st.stage, "form": case.form, "threads": t,
                    "ort_p50_ms": o50, "edgeqa_p50_ms": e50, "ratio": e50 / o50,
                    "ort_load_ms": statistics.median(r["stages"][st.stage]["load_ms"] for r in theirs),
                    "edgeqa_load_ms": statistics.median(r["stages"][st.stage]["load_ms"] for r in ours),
                    "ort_first_ms": statistics.median(r["stages"][st.stage]["first_run_ms"] for r in theirs),
                    "edgeqa_first_ms": statistics.median(r["stages"][st.stage]["first_run_ms"] for r in ours),
                    "ort_peak_rss_mib": max(r["peak_rss_mib"] for r in theirs),
                    "edgeqa_peak_rss_mib": max(r["peak_rss_mib"] for r in ours),
                    "python_baseline_mib": statistics.median(r["python_baseline_mib"] for r in theirs),
                    "edgeqa_cos_vs_ort_fp32": agree[st.stage]["edgeqa"][0],
                    "edgeqa_max_abs_vs_ort_fp32": agree[st.stage]["edgeqa"][1],
                    "ort_cos_vs_ort_fp32": agree[st.stage]["ort"][0],
                    "ort_max_abs_vs_ort_fp32": agree[st.stage]["ort"][1],
                    "package_bytes": case.package.stat().st_size,
                    "ort_onnx_bytes": st.ort_onnx.stat().st_size,
                    "edgeqa_samples_ms": e_samples, "ort_samples_ms": o_samples,
                    "edgeqa_command": ours[0]["command"],
                })

    import onnxruntime
    command = shlex.join(["benches/ort_compare.py", *(argv if argv is not None else sys.argv[1:])])
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "unknown CPU")
    head = (f"`{command}` · {cpu} · {os.cpu_count()} cores · onnxruntime {onnxruntime.__version__} · "
            f"{a.rounds} rounds × {a.iterations} runs per engine\n\n")
    lines = ["| model | stage | form | threads | ORT p50 ms | edgeqa p50 ms | edgeqa / ORT | ORT load ms | "
             "edgeqa load ms | ORT peak RSS MiB | edgeqa peak RSS MiB | edgeqa cos vs ORT fp32 | edgeqa max abs | "
             "ORT cos vs ORT fp32 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['stage']} | {r['form']} | {r['threads']} | {fmt(r['ort_p50_ms'])} | "
            f"{fmt(r['edgeqa_p50_ms'])} | {fmt(r['ratio'], 2)} | {fmt(r['ort_load_ms'], 1)} | "
            f"{fmt(r['edgeqa_load_ms'], 1)} | {fmt(r['ort_peak_rss_mib'], 1)} | {fmt(r['edgeqa_peak_rss_mib'], 1)} | "
            f"{fmt(r['edgeqa_cos_vs_ort_fp32'], 6)} | {r['edgeqa_max_abs_vs_ort_fp32']:.2e} | "
            f"{fmt(r['ort_cos_vs_ort_fp32'], 6)} |")
    notes = sorted(set(b.notes + [n for c in cases for n in c.notes]))
    table = head + "\n".join(lines) + "\n" + "".join(f"\n- {n}" for n in notes) + ("\n" if notes else "")
    (a.out / "table.md").write_text(table)
    (a.out / "results.json").write_text(json.dumps(
        {"command": command, "cpu": cpu, "cores": os.cpu_count(), "onnxruntime": onnxruntime.__version__,
         "rounds": a.rounds, "iterations": a.iterations, "rows": rows, "notes": notes,
         "prepare_commands": b.commands}, indent=1))
    print(table)
    log(f"wrote {a.out / 'table.md'} and {a.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
