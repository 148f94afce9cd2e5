#!/usr/bin/env python3
"""edgeqa-convert's int8 quantizer next to ONNX Runtime's, on the same models and the same data.

    .cache/venv/bin/python benches/quant_compare.py --student-calibration SET.jsonl [--out DIR]
        [--models det,rec,cls,student] [--methods minmax,entropy] [--schemes w8,w4]
        [--convert-bin target/release/edgeqa-convert] [--edgeqa-bin target/release/edgeqa]
        [--percentile 99.99] [--max-error rec=top1=0.995] [--ort-only]

Models: PP-OCRv4 det and rec and PP-OCR mobile cls (``.cache/testdata/models``; data from
``scripts/make_ocr_data.py`` in ``.cache/testdata/ocr``; both made by ``scripts/fetch-test-data.sh``)
and the demo student (``models/demo/student``; verified on ``models/demo/eval/questions.jsonl``,
calibrated on the SynthAVQA set given with ``--student-calibration``, e.g. one written by
``training/synth.py --seed 1 --n 40 --out DIR``).

For every model and every calibration method:

1. ours: ``edgeqa-convert --scheme int8 --method M --calibration C --verify V --save-onnx ours/
   --dump-calibration calib_npy/`` (plus ``--scheme fp32``, the reference package, and the
   weight-only ``--schemes`` rows);
2. ONNX Runtime: ``quantize_static`` (QDQ, per-channel, QUInt8 activations, QInt8 weights, the
   matching CalibrationMethod) over the same samples (a student's stages over ``calib_npy/<stage>/``,
   the exact stage inputs the converter calibrated on), after fixing the input shape, upgrading
   opset < 13 with ``onnx.version_converter`` (per-channel QuantizeLinear/DequantizeLinear need
   opset 13's ``axis``) and ``quant_pre_process``; plus ``quantize_dynamic`` (MatMul) for rec and
   the student's head;
3. ONNX Runtime's graphs packaged with ``edgeqa-convert --scheme fp32`` and judged with
   ``edgeqa-convert compare`` against the fp32 package: both quantizers on tract, the device engine;
4. both quantizers' graphs (``ours/<stage>.onnx`` and ONNX Runtime's) run in ONNX Runtime against
   the fp32 graphs: cosine, max abs, top-1 agreement and per-model metrics (rec: CTC text equal to
   fp32's and to the truth; det: IoU of prob > 0.3 with fp32's; cls: label agreement; student:
   answer agreement and accuracy).

Writes ``OUT/table.md`` (the command line on top) and ``OUT/results.json``; work files go to
``OUT/work/``. ``--ort-only`` skips every edgeqa-convert step (ONNX Runtime's quantization and its
ONNX Runtime evaluation only; a student's calibration stage inputs are then computed here with
``training/preprocess.py`` and the fp32 encoders instead of taken from the converter's dump).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import onnxruntime as ort
from onnx import version_converter
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "training"))
import preprocess as pre  # noqa: E402  (NumPy only: the runtime's student input pipeline)

METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}
DET_THRESH = 0.3  # rapidocr's Det.thresh


@dataclass
class OcrModel:
    key: str
    file: str
    shape: tuple[int, ...]
    dynamic: bool  # also a quantize_dynamic row

    @property
    def shape_arg(self) -> str:
        return "x=" + ",".join(map(str, self.shape))


OCR = {
    "det": OcrModel("det", "ch_PP-OCRv4_det_infer.onnx", (1, 3, 320, 320), False),
    "rec": OcrModel("rec", "ch_PP-OCRv4_rec_infer.onnx", (1, 3, 48, 320), True),
    "cls": OcrModel("cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx", (1, 3, 48, 192), False),
}
STAGES = ("frame_encoder", "audio_encoder", "question_encoder", "head")


class StepError(Exception):
    pass


@dataclass
class Row:
    model: str
    quantizer: str  # fp32 | edgeqa-convert | onnxruntime static | onnxruntime dynamic
    scheme: str
    method: str
    engine: str  # tract | onnxruntime
    size: int | None = None
    ratio: float | None = None
    cosine_min: float | None = None
    cosine_mean: float | None = None
    max_abs: float | None = None
    top1: float | None = None
    metric: str = ""
    details: dict = field(default_factory=dict)
    error: str | None = None


# ------------------------------------------------------------------------------------ helpers


def log(msg: str) -> None:
    print(f"quant_compare: {msg}", file=sys.stderr, flush=True)


class Runner:
    """Runs edgeqa-convert / edgeqa, logging every command line."""

    def __init__(self, convert_bin: str | None, edgeqa_bin: str | None, logfile: Path):
        self.convert_bin, self.edgeqa_bin, self.logfile = convert_bin, edgeqa_bin, logfile

    def _run(self, cmd: list[str]) -> str:
        with self.logfile.open("a") as f:
            f.write(shlex.join(cmd) + "\n")
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            tail = (p.stderr.strip() or p.stdout.strip()).splitlines()[-6:]
            raise StepError(f"`{shlex.join(cmd)}` exited {p.returncode}: " + " | ".join(tail))
        return p.stdout

    def convert(self, *args: str | Path) -> str:
        if not self.convert_bin:
            raise StepError("edgeqa-convert is not available (--ort-only or not built)")
        return self._run([self.convert_bin, *map(str, args)])

    def edgeqa(self, *args: str | Path) -> str:
        if not self.edgeqa_bin:
            raise StepError("edgeqa is not available")
        return self._run([self.edgeqa_bin, *map(str, args)])


def find_bin(path: str) -> str | None:
    p = Path(path)
    if p.is_file() and os.access(p, os.X_OK):
        return str(p.resolve())
    return shutil.which(path) if os.sep not in path else None


def session(path: Path, threads: int, optimize: bool = True) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not optimize:  # no QDQ fusion: every DequantizeLinear -> float op -> QuantizeLinear as written
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def npy_samples(directory: Path) -> list[tuple[str, dict[str, np.ndarray]]]:
    """A calibration/verification folder: one subfolder per sample holding <input>.npy."""
    out = []
    for d in sorted(p for p in directory.iterdir() if p.is_dir()):
        inputs = {f.stem: np.load(f) for f in sorted(d.glob("*.npy"))}
        if inputs:
            out.append((d.name, inputs))
    if not out:
        raise StepError(f"{directory}: no sample folders with .npy inputs")
    return out


class SampleReader(CalibrationDataReader):
    def __init__(self, samples: list[dict[str, np.ndarray]], model: Path):
        names = {i.name for i in onnx.load(str(model), load_external_data=False).graph.input}
        for s in samples:
            if set(s) != names:
                raise StepError(f"calibration sample inputs {sorted(s)} != {model.name}'s inputs {sorted(names)}")
        self._it = iter(samples)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def with_fallback(row: Row, fn: Callable[[bool], Any]) -> Any:
    """fn(optimize=True); if ONNX Runtime rejects the graph with its optimisations (QDQ fusions), again
    without them, noted in the row: the numbers then come from the unfused DQ -> float op -> Q graph."""
    try:
        return fn(True)
    except Exception as e:
        if not isinstance(e, (ort.capi.onnxruntime_pybind11_state.Fail,
                              ort.capi.onnxruntime_pybind11_state.RuntimeException,
                              ort.capi.onnxruntime_pybind11_state.InvalidGraph,
                              ort.capi.onnxruntime_pybind11_state.NotImplemented)):
            raise
        row.details["fallback"] = f"with graph optimisations: {str(e)[:400]}"
        row.details["fallback_note"] = " [ORT optimisations off: the optimised graph failed, see results.json]"
        return fn(False)


def fidelity(ref: list[np.ndarray], cand: list[np.ndarray]) -> dict:
    """Cosine per sample (min, mean), max abs difference, arg-max agreement along the last axis."""
    cos, max_abs, agree, rows = [], 0.0, 0, 0
    for a, b in zip(ref, cand):
        if a.shape != b.shape:
            raise StepError(f"output shape {list(b.shape)} != reference {list(a.shape)}")
        x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
        na, nb = np.linalg.norm(x), np.linalg.norm(y)
        cos.append(1.0 if na == 0 and nb == 0 else float(x @ y / (na * nb)) if na and nb else 0.0)
        max_abs = max(max_abs, float(np.abs(x - y).max()) if x.size else 0.0)
        if a.shape[-1] > 1:
            ia, ib = a.reshape(-1, a.shape[-1]).argmax(-1), b.reshape(-1, b.shape[-1]).argmax(-1)
            agree += int((ia == ib).sum())
            rows += ia.size
    return {"samples": len(cos), "cosine_min": min(cos), "cosine_mean": float(np.mean(cos)),
            "max_abs": max_abs, "top1_agreement": agree / rows if rows else None}


def fmt(v: float | None, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


# -------------------------------------------------------------------- ONNX Runtime quantization


def tidy_opsets(path: Path) -> None:
    """Drops opset imports no node uses (ORT's optimizer adds com.microsoft.nchwc etc.)."""
    m = onnx.load(str(path))
    used = {n.domain or "" for n in m.graph.node}
    keep = [o for o in m.opset_import if (o.domain or "") in used or o.domain in ("", "ai.onnx")]
    if len(keep) != len(m.opset_import):
        del m.opset_import[:]
        m.opset_import.extend(keep)
        onnx.save(m, str(path))


def constants_to_initializers(m: onnx.ModelProto) -> onnx.ModelProto:
    """Paddle exports keep weights in Constant nodes; ORT's dynamic quantizer wants initializers."""
    nodes = []
    for n in m.graph.node:
        value = next((a for a in n.attribute if a.name == "value"), None)
        if n.op_type == "Constant" and value is not None and len(n.attribute) == 1:
            t = onnx.TensorProto()
            t.CopyFrom(value.t)
            t.name = n.output[0]
            m.graph.initializer.append(t)
        else:
            nodes.append(n)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    return m


def ort_prepare(src: Path, work: Path, shapes: dict[str, tuple[int, ...]] | None, notes: list[str]) -> tuple[Path, Path]:
    """Fixed input shapes, opset >= 13, then quant_pre_process. Returns (opset13 model, preprocessed)."""
    work.mkdir(parents=True, exist_ok=True)
    m = onnx.load(str(src))
    for inp in m.graph.input:
        if shapes and inp.name in shapes:
            dims = inp.type.tensor_type.shape.dim
            for d, v in zip(dims, shapes[inp.name]):
                d.Clear()
                d.dim_value = v
    opset = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:
        m = version_converter.convert_version(m, 13)
        note = f"{src.name}: opset {opset} upgraded to 13 (onnx.version_converter) for per-channel QDQ"
        if note not in notes:
            notes.append(note)
    upgraded = work / "fp32_opset13.onnx"
    onnx.save(m, str(upgraded))
    prepared = work / "fp32_pre.onnx"
    try:
        quant_pre_process(str(upgraded), str(prepared))
    except Exception as e:  # ORT's symbolic shape inference asserts on some Paddle graphs
        note = f"{src.name}: quant_pre_process without symbolic shape inference ({type(e).__name__} in it)"
        if note not in notes:
            notes.append(note)
        quant_pre_process(str(upgraded), str(prepared), skip_symbolic_shape=True)
    return upgraded, prepared


def ort_static(prepared: Path, out: Path, samples: list[dict[str, np.ndarray]], method: str, percentile: float,
               num_bins: int | None = None) -> float:
    """quantize_static, QDQ, per-channel, QUInt8 activations / QInt8 weights.

    `num_bins` sets the histogram size of the Entropy calibrator. quantize_static cannot pass it
    (it forwards only CalibPercentile & co.), and its default, 128 bins for 128 quantized bins,
    leaves the KL search a single candidate, the full range: ORT's Entropy is then MinMax. So the
    calibrator factory quantize_static calls is wrapped for that one call.
    """
    extra: dict[str, Any] = {}
    if method == "percentile":
        extra["CalibPercentile"] = percentile
    t = time.perf_counter()
    qmod = sys.modules[quantize_static.__module__]
    original = qmod.create_calibrator
    if num_bins:
        def create_calibrator(*args, extra_options=None, **kwargs):
            return original(*args, extra_options={**(extra_options or {}), "num_bins": num_bins}, **kwargs)
        qmod.create_calibrator = create_calibrator
    try:
        quantize_static(
            str(prepared), str(out), SampleReader(samples, prepared),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=METHODS[method], extra_options=extra,
        )
    finally:
        qmod.create_calibrator = original
    tidy_opsets(out)
    return time.perf_counter() - t


def ort_dynamic(upgraded: Path, out: Path) -> float:
    t = time.perf_counter()
    m = constants_to_initializers(onnx.load(str(upgraded)))
    tmp = out.with_suffix(".in.onnx")
    onnx.save(m, str(tmp))
    quantize_dynamic(str(tmp), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    tmp.unlink()
    tidy_opsets(out)
    return time.perf_counter() - t


# --------------------------------------------------------------------------- OCR evaluation


def ctc_charset(rec_model: Path) -> list[str]:
    """rapidocr 1.4.4 CTCLabelDecode: class 0 blank, 1..=N the `character` metadata lines, N+1 ' '."""
    m = onnx.load(str(rec_model), load_external_data=False)
    chars = next(p.value for p in m.metadata_props if p.key == "character").splitlines()
    return ["<blank>", *chars, " "]


def ctc_greedy(probs: np.ndarray, charset: list[str]) -> str:
    idx = probs.argmax(-1)
    keep = np.ones(len(idx), dtype=bool)
    keep[1:] = idx[1:] != idx[:-1]
    keep &= idx != 0
    return "".join(charset[i] for i in idx[keep])


class OcrEval:
    def __init__(self, spec: OcrModel, data: Path, threads: int):
        self.spec, self.threads = spec, threads
        self.model = data / "models" / spec.file
        self.calib_dir = data / "ocr" / spec.key / "calibration"
        self.verify_dir = data / "ocr" / spec.key / "verify"
        for p in (self.model, self.calib_dir, self.verify_dir):
            if not p.exists():
                raise StepError(f"{p} is missing: run `bash scripts/fetch-test-data.sh`")
        self.verify = npy_samples(self.verify_dir)
        self.truth = [json.loads((self.verify_dir / sid / "expected.json").read_text()) for sid, _ in self.verify]
        self.charset = ctc_charset(self.model) if spec.key == "rec" else None
        self.reference = self.run_onnx(self.model)

    def run_onnx(self, model: Path, optimize: bool = True) -> list[np.ndarray]:
        s = session(model, self.threads, optimize)
        name = s.get_outputs()[0].name
        return [s.run([name], inputs)[0] for _, inputs in self.verify]

    def specific(self, outs: list[np.ndarray], ref: list[np.ndarray] | None) -> tuple[dict, str]:
        """Model-specific metrics of `outs` (vs the truth, and vs `ref` when given)."""
        n = len(outs)
        k = self.spec.key
        if k == "rec":
            texts = [ctc_greedy(o[0], self.charset) for o in outs]
            truth = sum(t.strip() == e["text"] for t, e in zip(texts, self.truth))
            d = {"texts": texts, "text_eq_truth": truth / n}
            s = f"text = truth {truth}/{n}"
            if ref is not None:  # trimmed too: the margins read as a leading/trailing space or not
                ref_texts = [ctc_greedy(r[0], self.charset) for r in ref]
                same = sum(t.strip() == r.strip() for t, r in zip(texts, ref_texts))
                d["text_eq_fp32"] = same / n
                d["text_eq_fp32_untrimmed"] = sum(t == r for t, r in zip(texts, ref_texts)) / n
                s = f"text = fp32 {same}/{n}, " + s
            return d, s
        if k == "cls":
            labels = [(0, 180)[int(o.reshape(-1).argmax())] for o in outs]
            truth = sum(lab == e["label"] for lab, e in zip(labels, self.truth))
            d = {"labels": labels, "label_eq_truth": truth / n}
            s = f"label = truth {truth}/{n}"
            if ref is not None:
                same = sum(lab == (0, 180)[int(r.reshape(-1).argmax())] for lab, r in zip(labels, ref))
                d["label_eq_fp32"] = same / n
                s = f"label = fp32 {same}/{n}, " + s
            return d, s
        # det: IoU of the binarised maps
        if ref is None:
            found = total = 0
            for o, e in zip(outs, self.truth):
                mask = o[0, 0] > DET_THRESH
                for line in e["lines"]:
                    x0, y0, x1, y1 = line["box"]
                    total += 1
                    found += mask[y0:y1, x0:x1].mean() > 0.3
            return {"lines_found": found / total}, f"lines found {found}/{total}"
        ious = []
        for o, r in zip(outs, ref):
            a, b = o[0, 0] > DET_THRESH, r[0, 0] > DET_THRESH
            union = np.logical_or(a, b).sum()
            ious.append(1.0 if union == 0 else float(np.logical_and(a, b).sum() / union))
        return {"iou_min": min(ious), "iou_mean": float(np.mean(ious)), "iou": ious}, \
            f"mask IoU min {min(ious):.3f} / mean {np.mean(ious):.3f}"

    def tract_outputs(self, runner: Runner, package: Path, work: Path) -> list[np.ndarray]:
        """Runs every verification sample through `edgeqa run` (tract)."""
        outs = []
        for sid, inputs in self.verify:
            d = work / sid
            args = ["run", "--package", package, "--output-dir", d, "--json"]
            for name in inputs:
                args += ["--input", f"{name}={self.verify_dir / sid / (name + '.npy')}"]
            summary = json.loads(runner.edgeqa(*args))
            outs.append(np.load(summary[0]["file"]))
        return outs


# ----------------------------------------------------------------------- student evaluation


class StudentData:
    """Stage inputs for a question set, computed as the runtime does (training/preprocess.py)."""

    def __init__(self, student_dir: Path, jsonl: Path):
        spec = tomllib.loads((student_dir / "student.toml").read_text())
        v, a, t = spec["video"], spec["audio"], spec["tokenizer"]
        self.labels = spec["labels"]
        video = pre.VideoSpec(v["width"], v["height"], v["frames"], tuple(v["mean"]), tuple(v["std"]))
        audio = pre.AudioSpec(a["sample_rate"], a["n_fft"], a["hop"], a["n_mels"], a["f_min"], a["f_max"],
                              a["segment_frames"], a["segments"], a["log_offset"])
        self.clips: dict[str, dict[str, np.ndarray]] = {}
        self.questions: list[dict] = []
        for line in jsonl.read_text().splitlines():
            if not line.strip():
                continue
            q = json.loads(line)
            clip = f"{q['video']}|{q['audio']}"
            if clip not in self.clips:
                samples, rate = pre.decode_wav((jsonl.parent / q["audio"]).read_bytes())
                if rate != audio.sample_rate:
                    raise StepError(f"{q['audio']}: {rate} Hz, the student expects {audio.sample_rate}")
                self.clips[clip] = {
                    "frames": pre.frames_tensor((jsonl.parent / q["video"]).read_bytes(), video),
                    "log_mel": pre.segments_tensor(samples, audio),
                }
            ids, mask = pre.tokenize(q["question"], t["vocab"], t["max_len"])
            self.questions.append({"clip": clip, "question_ids": ids[None], "question_mask": mask[None],
                                   "answer": q.get("answer")})


class StudentChain:
    """Runs the four stages in ONNX Runtime the way the runtime chains them."""

    def __init__(self, stages: dict[str, Path], threads: int, optimize: bool = True):
        self.sess = {s: session(p, threads, optimize) for s, p in stages.items()}
        self.head_inputs = {i.name: i.shape for i in self.sess["head"].get_inputs()}

    def _one(self, stage: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.sess[stage].run(None, feeds)[0]

    def encode(self, clip: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Encoder outputs, concatenated over batches of the graph's N, with a leading 1."""
        out = {}
        for stage, inp, feat in (("frame_encoder", "frames", "frame_features"),
                                 ("audio_encoder", "log_mel", "audio_features")):
            if stage not in self.sess or feat not in self.head_inputs:
                continue
            x = clip[inp]
            n = self.sess[stage].get_inputs()[0].shape[0]
            n = n if isinstance(n, int) and n > 0 else x.shape[0]
            parts = [self._one(stage, {inp: x[i:i + n]}) for i in range(0, x.shape[0], n)]
            out[feat] = np.concatenate(parts)[None]
        return out

    def run(self, data: StudentData, isolated: bool = False, fp32: "StudentChain | None" = None):
        """answer_logits per question; with `fp32`, the stage inputs come from that chain instead
        (each stage judged alone). Also returns every stage's outputs, by stage."""
        per_stage: dict[str, list[np.ndarray]] = {s: [] for s in self.sess}
        feats = {}
        src = fp32 if fp32 is not None else self
        for clip_id, clip in data.clips.items():
            f = src.encode(clip)
            if fp32 is not None:  # this chain's encoders on the same inputs, judged alone
                mine = self.encode(clip)
                for stage, feat in (("frame_encoder", "frame_features"), ("audio_encoder", "audio_features")):
                    if feat in mine:
                        per_stage[stage].append(mine[feat])
            else:
                for stage, feat in (("frame_encoder", "frame_features"), ("audio_encoder", "audio_features")):
                    if feat in f:
                        per_stage[stage].append(f[feat])
            feats[clip_id] = f
        logits = []
        for q in data.questions:
            qf = src._one("question_encoder", {"question_ids": q["question_ids"], "question_mask": q["question_mask"]})
            qm = self._one("question_encoder", {"question_ids": q["question_ids"], "question_mask": q["question_mask"]}) \
                if fp32 is not None else qf
            per_stage["question_encoder"].append(qm)
            feeds = {"question_features": qf, **feats[q["clip"]]}
            feeds = {k: v.reshape(self.head_inputs[k]) for k, v in feeds.items() if k in self.head_inputs}
            y = self._one("head", feeds)
            per_stage["head"].append(y)
            logits.append(y)
        return logits, per_stage


def student_specific(data: StudentData, logits: list[np.ndarray], ref: list[np.ndarray] | None) -> tuple[dict, str]:
    answers = [data.labels[int(y.reshape(-1).argmax())] for y in logits]
    truth = [q["answer"] for q in data.questions]
    acc = sum(a == t for a, t in zip(answers, truth)) / len(truth)
    d = {"accuracy": acc}
    s = f"accuracy {acc:.3f}"
    if ref is not None:
        ra = [data.labels[int(y.reshape(-1).argmax())] for y in ref]
        agree = sum(a == b for a, b in zip(answers, ra)) / len(ra)
        d["answer_agreement"] = agree
        s = f"answers = fp32 {agree:.3f}, " + s
    return d, s


def student_calibration_inputs(chain: StudentChain, data: StudentData, out: Path) -> None:
    """calib_npy/<stage>/<sample>/<input>.npy from Python preprocessing and the fp32 encoders
    (the --ort-only stand-in for edgeqa-convert's --dump-calibration)."""
    for ci, clip in enumerate(data.clips.values()):
        for stage, name in (("frame_encoder", "frames"), ("audio_encoder", "log_mel")):
            d = out / stage / f"{ci:04d}"
            d.mkdir(parents=True, exist_ok=True)
            np.save(d / f"{name}.npy", clip[name])
    feats = {k: chain.encode(c) for k, c in data.clips.items()}
    for qi, q in enumerate(data.questions):
        d = out / "question_encoder" / f"{qi:04d}"
        d.mkdir(parents=True, exist_ok=True)
        feeds = {"question_ids": q["question_ids"], "question_mask": q["question_mask"]}
        for k, v in feeds.items():
            np.save(d / f"{k}.npy", v)
        qf = chain._one("question_encoder", feeds)
        d = out / "head" / f"{qi:04d}"
        d.mkdir(parents=True, exist_ok=True)
        for k, v in {"question_features": qf, **feats[q["clip"]]}.items():
            if k in chain.head_inputs:
                np.save(d / f"{k}.npy", v.reshape(chain.head_inputs[k]))


def compare_dumps(ours: Path, theirs: Path) -> dict:
    """Per stage input: samples compared and the largest |difference| (None when the sets differ)."""
    out = {}
    for stage_dir in sorted(p for p in theirs.iterdir() if p.is_dir()):
        mine = ours / stage_dir.name
        a = npy_samples(mine) if mine.is_dir() else []
        b = npy_samples(stage_dir)
        if len(a) != len(b):
            out[stage_dir.name] = {"samples": [len(a), len(b)], "max_abs": None}
            continue
        worst: dict[str, float] = {}
        for (_, x), (_, y) in zip(a, b):
            for k in y:
                if k not in x or x[k].shape != y[k].shape:
                    worst[k] = float("inf")
                else:
                    d = np.abs(x[k].astype(np.float64) - y[k].astype(np.float64)).max() if y[k].size else 0.0
                    worst[k] = max(worst.get(k, 0.0), float(d))
        for k, v in worst.items():
            out[f"{stage_dir.name}/{k}"] = {"samples": len(b), "max_abs": v}
    return out


# ------------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out: Path = args.out
        self.work = self.out / "work"
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.dump_check: dict = {}
        self.runner = Runner(args.convert_bin_resolved, args.edgeqa_bin_resolved, self.out / "commands.log")

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        m = row.error or f"cos {fmt(row.cosine_min)}/{fmt(row.cosine_mean)} top1 {fmt(row.top1)} {row.metric}"
        log(f"  {row.model} {row.quantizer} {row.scheme} {row.method} [{row.engine}]: {m}")
        return row

    def attempt(self, row: Row, fn: Callable[[Row], None]) -> Row:
        try:
            fn(row)
        except StepError as e:
            row.error = str(e)
        except Exception as e:  # keep going: one failed row must not hide the others
            row.error = f"{type(e).__name__}: {e}"
        return self.add(row)

    # ------------------------------------------------------------------ tract (edgeqa) side

    def tract_row(self, row: Row, fp32_pkg: Path, pkg: Path, verify: Path, report: Path,
                  specific: Callable[[Path], tuple[dict, str]] | None) -> None:
        if not fp32_pkg.exists():
            raise StepError(f"no fp32 reference package ({fp32_pkg}): see the fp32 tract row")
        self.runner.convert("compare", "--reference", fp32_pkg, "--candidate", pkg, "--verify", verify,
                            "--report", report)
        r = json.loads(report.read_text())
        row.size = pkg.stat().st_size
        row.ratio = row.size / fp32_pkg.stat().st_size
        outs = [o for s in r["stages"] for o in s["outputs"]]
        final = r["stages"][-1]["outputs"][0]  # the head / the model's first output
        row.cosine_min = final["cosine_min"]
        row.cosine_mean = final["cosine_mean"]
        row.max_abs = final["max_abs"]
        row.top1 = final.get("top1_agreement")
        row.details["report"] = r
        row.details["all_outputs_cosine_min"] = min(o["cosine_min"] for o in outs)
        if r.get("answers"):
            a = r["answers"]
            row.metric = (f"answers = fp32 {a['agreement']:.3f}, accuracy {a['candidate_accuracy']:.3f} "
                          f"(fp32 {a['reference_accuracy']:.3f})")
        elif specific is not None:
            d, s = specific(pkg)
            row.details["specific"] = d
            row.metric = s

    # --------------------------------------------------------------------------- OCR models

    def ocr(self, spec: OcrModel) -> None:
        a = self.args
        log(f"{spec.key}: {spec.file}")
        work = self.work / spec.key
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        ev = OcrEval(spec, a.data, a.threads)
        name = f"PP-OCR {spec.key}"
        calib = [s for _, s in npy_samples(ev.calib_dir)]
        shape = ["--input-shape", spec.shape_arg]

        # fp32 baselines
        fp32_onnx = ev.model.stat().st_size
        d, s = ev.specific(ev.reference, None)
        self.add(Row(name, "fp32", "fp32", "—", "onnxruntime", fp32_onnx, 1.0, metric=s, details={"specific": d}))
        fp32_pkg = work / "fp32.eqa"
        tract_ref: list[np.ndarray] | None = None

        def tract_specific(pkg: Path) -> tuple[dict, str]:
            if tract_ref is None or not self.runner.edgeqa_bin or a.no_tract_metrics:
                raise StepError("no tract outputs")
            outs = ev.tract_outputs(self.runner, pkg, work / "tract_out" / pkg.stem)
            return ev.specific(outs, tract_ref)

        def specific_or_none(pkg: Path) -> tuple[dict, str]:
            try:
                return tract_specific(pkg)
            except StepError as e:
                return {"error": str(e)}, "—"

        def fp32_tract(row: Row) -> None:
            nonlocal tract_ref
            self.runner.convert("--model", ev.model, *shape, "-o", fp32_pkg, "--scheme", "fp32")
            row.size, row.ratio = fp32_pkg.stat().st_size, 1.0
            if self.runner.edgeqa_bin and not a.no_tract_metrics:
                tract_ref = ev.tract_outputs(self.runner, fp32_pkg, work / "tract_out" / "fp32")
                f = fidelity(ev.reference, tract_ref)
                row.details["tract_fp32_vs_ort_fp32"] = f
                d, s = ev.specific(tract_ref, None)
                row.metric = s + f" (vs ORT fp32: cos min {f['cosine_min']:.6f})"

        if not a.ort_only:
            self.attempt(Row(name, "fp32", "fp32", "—", "tract"), fp32_tract)

        # ours
        dump = work / "calib_npy"
        for method in a.methods:
            def ours(row: Row, method=method) -> None:
                pkg = work / f"ours_int8_{method}.eqa"
                extra = ["--percentile", str(a.percentile)] if method == "percentile" else []
                self.runner.convert("--model", ev.model, *shape, "-o", pkg, "--scheme", "int8", "--method", method,
                                    *extra, "--calibration", ev.calib_dir, "--verify", ev.verify_dir,
                                    "--report", work / f"ours_int8_{method}.convert.json",
                                    "--save-onnx", work / f"ours_int8_{method}",
                                    *(["--dump-calibration", dump] if not dump.exists() else []))
                self.tract_row(row, fp32_pkg, pkg, ev.verify_dir, work / f"ours_int8_{method}.compare.json",
                               specific_or_none)
            if not a.ort_only:
                self.attempt(Row(name, "edgeqa-convert", "int8", method, "tract"), ours)
            budget = a.max_error.get(spec.key)
            if budget and not a.ort_only:
                def ours_budget(row: Row, method=method, budget=budget) -> None:
                    tag = f"ours_int8_{method}_budget"
                    pkg = work / f"{tag}.eqa"
                    extra = ["--percentile", str(a.percentile)] if method == "percentile" else []
                    self.runner.convert("--model", ev.model, *shape, "-o", pkg, "--scheme", "int8", "--method",
                                        method, *extra, "--max-error", budget, "--calibration", ev.calib_dir,
                                        "--verify", ev.verify_dir, "--report", work / f"{tag}.convert.json",
                                        "--save-onnx", work / tag)
                    self.tract_row(row, fp32_pkg, pkg, ev.verify_dir, work / f"{tag}.compare.json",
                                   specific_or_none)
                self.attempt(Row(name, "edgeqa-convert", f"int8, {budget}", method, "tract"), ours_budget)
        for scheme in a.schemes:
            def ours_w(row: Row, scheme=scheme) -> None:
                pkg = work / f"ours_{scheme}.eqa"
                self.runner.convert("--model", ev.model, *shape, "-o", pkg, "--scheme", scheme,
                                    "--verify", ev.verify_dir, "--report", work / f"ours_{scheme}.convert.json",
                                    "--save-onnx", work / f"ours_{scheme}")
                self.tract_row(row, fp32_pkg, pkg, ev.verify_dir, work / f"ours_{scheme}.compare.json",
                               specific_or_none)
            if not a.ort_only:
                self.attempt(Row(name, "edgeqa-convert", scheme, "—", "tract"), ours_w)
        if dump.exists():  # the converter's calibration inputs should be exactly our calibration set
            try:
                dumped = npy_samples(dump / "model")
                same = len(dumped) == len(calib) and all(
                    set(x) == set(y) and all(np.array_equal(x[k], y[k]) for k in x)
                    for (_, x), y in zip(dumped, calib))
            except StepError:
                same = False
            if not same:
                self.notes.append(f"{spec.key}: edgeqa-convert's --dump-calibration differs from {ev.calib_dir}")

        # ONNX Runtime
        upgraded, prepared = ort_prepare(ev.model, work / "ort", {"x": spec.shape}, self.notes)
        variants: list[tuple[str, str, str, Path]] = []  # quantizer, scheme, method, onnx
        for label, method, bins in self.ort_methods():
            q = work / "ort" / f"static_{label.replace(' ', '').replace(',', '_')}.onnx"
            try:
                secs = ort_static(prepared, q, calib, method, a.percentile, bins)
                log(f"  onnxruntime quantize_static {label}: {secs:.1f} s")
                variants.append(("onnxruntime static", "int8 QDQ", label, q))
            except Exception as e:
                self.add(Row(name, "onnxruntime static", "int8 QDQ", label, "onnxruntime",
                             error=f"quantize_static: {type(e).__name__}: {e}"))
        if spec.dynamic and not a.no_dynamic:
            q = work / "ort" / "dynamic.onnx"
            try:
                ort_dynamic(upgraded, q)
                variants.append(("onnxruntime dynamic", "int8 MatMul", "dynamic", q))
            except Exception as e:
                self.add(Row(name, "onnxruntime dynamic", "int8 MatMul", "dynamic", "onnxruntime",
                             error=f"quantize_dynamic: {type(e).__name__}: {e}"))
        for method in a.methods:
            variants.append(("edgeqa-convert", "int8", method, work / f"ours_int8_{method}" / "model.onnx"))
        for scheme in a.schemes:
            variants.append(("edgeqa-convert", scheme, "—", work / f"ours_{scheme}" / "model.onnx"))

        for quantizer, scheme, method, q in variants:
            ours = quantizer == "edgeqa-convert"
            if ours and a.ort_only:
                continue
            if not ours and not a.ort_only:
                def ort_tract(row: Row, q=q) -> None:
                    pkg = q.with_suffix(".eqa")
                    self.runner.convert("--model", q, *shape, "-o", pkg, "--scheme", "fp32")
                    self.tract_row(row, fp32_pkg, pkg, ev.verify_dir, q.with_suffix(".compare.json"),
                                   specific_or_none)
                self.attempt(Row(name, quantizer, scheme, method, "tract"), ort_tract)

            def ort_eval(row: Row, q=q) -> None:
                if not q.exists():
                    raise StepError(f"{q} was not written")
                outs = with_fallback(row, lambda optimize: ev.run_onnx(q, optimize))
                f = fidelity(ev.reference, outs)
                row.size, row.ratio = q.stat().st_size, q.stat().st_size / fp32_onnx
                row.cosine_min, row.cosine_mean, row.max_abs, row.top1 = (
                    f["cosine_min"], f["cosine_mean"], f["max_abs"], f["top1_agreement"])
                d, s = ev.specific(outs, ev.reference)
                row.details["specific"] = d
                row.metric = s + row.details.get("fallback_note", "")
            self.attempt(Row(name, quantizer, scheme, method, "onnxruntime"), ort_eval)

    # ------------------------------------------------------------------------------- student

    def student(self) -> None:
        a = self.args
        sdir: Path = a.student_dir
        log(f"student: {sdir}")
        work = self.work / "student"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        name = "demo student"
        fp32_stages = {s: sdir / f"{s}.onnx" for s in STAGES}
        fp32_bytes = sum(p.stat().st_size for p in fp32_stages.values())
        log("  preparing the verification inputs (training/preprocess.py)")
        verify = StudentData(sdir, a.student_eval)
        fp32 = StudentChain(fp32_stages, a.threads)
        ref_logits, ref_stages = fp32.run(verify)
        d, s = student_specific(verify, ref_logits, None)
        self.add(Row(name, "fp32", "fp32", "—", "onnxruntime", fp32_bytes, 1.0, metric=s, details={"specific": d}))
        fp32_pkg = work / "fp32.eqa"
        fp32_tract_row = None
        if not a.ort_only:
            def fp32_tract(row: Row) -> None:
                self.runner.convert("--student", sdir, "-o", fp32_pkg, "--scheme", "fp32")
                row.size, row.ratio = fp32_pkg.stat().st_size, 1.0
            fp32_tract_row = self.attempt(Row(name, "fp32", "fp32", "—", "tract"), fp32_tract)

        dump = work / "calib_npy"
        for method in a.methods:
            def ours(row: Row, method=method) -> None:
                pkg = work / f"ours_int8_{method}.eqa"
                extra = ["--percentile", str(a.percentile)] if method == "percentile" else []
                self.runner.convert("--student", sdir, "-o", pkg, "--scheme", "int8", "--method", method, *extra,
                                    "--calibration", a.student_calibration, "--verify", a.student_eval,
                                    "--report", work / f"ours_int8_{method}.convert.json",
                                    "--save-onnx", work / f"ours_int8_{method}",
                                    *(["--dump-calibration", dump] if not dump.exists() else []))
                self.tract_row(row, fp32_pkg, pkg, a.student_eval, work / f"ours_int8_{method}.compare.json", None)
            if not a.ort_only:
                self.attempt(Row(name, "edgeqa-convert", "int8", method, "tract"), ours)
        for scheme in a.schemes:
            def ours_w(row: Row, scheme=scheme) -> None:
                pkg = work / f"ours_{scheme}.eqa"
                self.runner.convert("--student", sdir, "-o", pkg, "--scheme", scheme, "--verify", a.student_eval,
                                    "--report", work / f"ours_{scheme}.convert.json",
                                    "--save-onnx", work / f"ours_{scheme}")
                self.tract_row(row, fp32_pkg, pkg, a.student_eval, work / f"ours_{scheme}.compare.json", None)
            if not a.ort_only:
                self.attempt(Row(name, "edgeqa-convert", scheme, "—", "tract"), ours_w)

        py_dump = work / "calib_npy_python"
        log("  preparing the calibration inputs (training/preprocess.py + fp32 encoders)")
        student_calibration_inputs(fp32, StudentData(sdir, a.student_calibration), py_dump)
        if a.ort_only:
            dump = py_dump
            self.notes.append("student: ONNX Runtime calibrated on stage inputs made by training/preprocess.py "
                              "and the fp32 encoders (--ort-only), not on edgeqa-convert's dump")
        elif dump.is_dir():  # the converter's stage inputs against the NumPy pipeline's
            self.dump_check = compare_dumps(dump, py_dump)
            worst = max((v["max_abs"] for v in self.dump_check.values() if v.get("max_abs") is not None),
                        default=None)
            self.notes.append(f"student: edgeqa-convert's --dump-calibration vs training/preprocess.py + fp32 "
                              f"encoders in ONNX Runtime: largest |difference| {fmt(worst, 6)} "
                              "(per input in results.json `dump_check`)")

        # ONNX Runtime, stage by stage
        variants: list[tuple[str, str, str, dict[str, Path], Path]] = []  # ..., stage graphs, work dir
        prepared = {}
        for stage in STAGES:
            upgraded, prepared[stage] = ort_prepare(fp32_stages[stage], work / "ort" / stage, None, self.notes)
            prepared[stage + ".upgraded"] = upgraded
        for label, method, bins in self.ort_methods():
            qdir = work / "ort" / f"static_{label.replace(' ', '').replace(',', '_')}"
            qdir.mkdir(parents=True, exist_ok=True)
            try:
                t = time.perf_counter()
                for stage in STAGES:
                    sd = dump / stage
                    if not sd.is_dir():
                        raise StepError(f"{sd} is missing (edgeqa-convert --dump-calibration did not run or failed)")
                    ort_static(prepared[stage], qdir / f"{stage}.onnx", [x for _, x in npy_samples(sd)],
                               method, a.percentile, bins)
                log(f"  onnxruntime quantize_static {label}: {time.perf_counter() - t:.1f} s")
                variants.append(("onnxruntime static", "int8 QDQ", label, {s: qdir / f"{s}.onnx" for s in STAGES},
                                 qdir))
            except Exception as e:
                self.add(Row(name, "onnxruntime static", "int8 QDQ", label, "onnxruntime",
                             error=f"quantize_static: {type(e).__name__}: {e}"))
        if not a.no_dynamic:
            qdir = work / "ort" / "dynamic_head"
            qdir.mkdir(parents=True, exist_ok=True)
            try:
                ort_dynamic(prepared["head.upgraded"], qdir / "head.onnx")
                stages = dict(fp32_stages, head=qdir / "head.onnx")
                variants.append(("onnxruntime dynamic", "int8 MatMul (head only)", "dynamic", stages, qdir))
            except Exception as e:
                self.add(Row(name, "onnxruntime dynamic", "int8 MatMul (head only)", "dynamic", "onnxruntime",
                             error=f"quantize_dynamic: {type(e).__name__}: {e}"))
        if not a.ort_only:
            for method in a.methods:
                d = work / f"ours_int8_{method}"
                variants.append(("edgeqa-convert", "int8", method, {s: d / f"{s}.onnx" for s in STAGES}, d))
            for scheme in a.schemes:
                d = work / f"ours_{scheme}"
                variants.append(("edgeqa-convert", scheme, "—", {s: d / f"{s}.onnx" for s in STAGES}, d))

        for quantizer, scheme, method, stages, vdir in variants:
            if quantizer != "edgeqa-convert" and not a.ort_only:
                def ort_tract(row: Row, stages=stages, vdir=vdir) -> None:
                    sd = vdir / "student"  # student.toml + the four quantized stages
                    assert work in sd.parents
                    shutil.rmtree(sd, ignore_errors=True)
                    sd.mkdir()
                    shutil.copy(sdir / "student.toml", sd / "student.toml")
                    for s, p in stages.items():
                        shutil.copy(p, sd / f"{s}.onnx")
                    pkg = vdir / "package.eqa"
                    self.runner.convert("--student", sd, "-o", pkg, "--scheme", "fp32")
                    self.tract_row(row, fp32_pkg, pkg, a.student_eval, vdir / "compare.json", None)
                self.attempt(Row(name, quantizer, scheme, method, "tract"), ort_tract)

            def ort_eval(row: Row, stages=stages) -> None:
                missing = [str(p) for p in stages.values() if not p.exists()]
                if missing:
                    raise StepError(f"not written: {', '.join(missing)}")
                def run_chain(optimize: bool) -> tuple[StudentChain, list[np.ndarray]]:
                    chain = StudentChain(stages, a.threads, optimize)
                    return chain, chain.run(verify)[0]
                chain, logits = with_fallback(row, run_chain)
                f = fidelity(ref_logits, logits)
                size = sum(p.stat().st_size for p in stages.values())
                row.size, row.ratio = size, size / fp32_bytes
                row.cosine_min, row.cosine_mean, row.max_abs, row.top1 = (
                    f["cosine_min"], f["cosine_mean"], f["max_abs"], f["top1_agreement"])
                d, s = student_specific(verify, logits, ref_logits)
                _, alone = chain.run(verify, fp32=fp32)  # each stage on the fp32 stage inputs
                d["stages_alone"] = {st: fidelity(ref_stages[st], alone[st]) for st in STAGES}
                row.details["specific"] = d
                row.metric = s + row.details.get("fallback_note", "")
            self.attempt(Row(name, quantizer, scheme, method, "onnxruntime"), ort_eval)

        if fp32_tract_row is not None and not fp32_tract_row.error:  # fp32's accuracy, as compare saw it
            for r in self.rows:
                answers = r.details.get("report", {}).get("answers") if r.model == name else None
                if answers:
                    fp32_tract_row.metric = f"accuracy {answers['reference_accuracy']:.3f}"
                    break

    # --------------------------------------------------------------------------------- report

    def ort_methods(self) -> list[tuple[str, str, int | None]]:
        """(label, method, Entropy num_bins) of ONNX Runtime's quantize_static rows."""
        out: list[tuple[str, str, int | None]] = []
        for m in self.args.methods:
            out.append((m, m, None))
            if m == "entropy" and self.args.ort_entropy_bins:
                out.append((f"entropy, {self.args.ort_entropy_bins} bins", m, self.args.ort_entropy_bins))
        return out

    def sorted_rows(self) -> list[Row]:
        models = {m: i for i, m in enumerate(dict.fromkeys(r.model for r in self.rows))}
        engines = {"tract": 0, "onnxruntime": 1}
        quantizers = {"fp32": 0, "edgeqa-convert": 1, "onnxruntime static": 2, "onnxruntime dynamic": 3}
        schemes = {"fp32": 0, "int8": 1, "int8 QDQ": 1, "w8": 2, "w4": 3}
        methods = {m: i for i, (m, _, _) in enumerate(self.ort_methods())}
        return sorted(self.rows, key=lambda r: (models[r.model], engines.get(r.engine, 9),
                                                quantizers.get(r.quantizer, 9), schemes.get(r.scheme, 8),
                                                methods.get(r.method, 99)))

    def table(self, command: str) -> str:
        lines = [
            "# Quantization: edgeqa-convert vs ONNX Runtime",
            "",
            "```",
            command,
            "```",
            "",
            f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}; "
            f"methods {', '.join(self.args.methods)}"
            + (f" (percentile {self.args.percentile})" if "percentile" in self.args.methods else "") + ".",
            "",
            "| model | quantizer | scheme | method | size bytes | size ratio vs fp32 | cosine min / mean "
            "| top-1 agreement | model-specific | engine |",
            "| --- | --- | --- | --- | ---: | ---: | --- | ---: | --- | --- |",
        ]
        for r in self.sorted_rows():
            if r.error:
                lines.append(f"| {r.model} | {r.quantizer} | {r.scheme} | {r.method} | — | — | — | — "
                             f"| error: {r.error.replace('|', '/')[:300]} | {r.engine} |")
                continue
            cos = "—" if r.cosine_min is None else f"{r.cosine_min:.4f} / {r.cosine_mean:.4f}"
            lines.append(
                f"| {r.model} | {r.quantizer} | {r.scheme} | {r.method} | {r.size if r.size is not None else '—'} "
                f"| {fmt(r.ratio, 3)} | {cos} | {fmt(r.top1, 3)} | {r.metric or '—'} | {r.engine} |"
            )
        lines += [
            "",
            "- size: the `.eqa` package for tract rows, the ONNX file(s) for onnxruntime rows; the ratio is "
            "against the fp32 of the same kind.",
            "- cosine and top-1 (arg-max along the last axis, over all rows) compare each output with the fp32 "
            "model's on the same engine, per verification sample; for a student, `answer_logits` of the whole "
            "chain (each quantized stage feeding the next).",
            "- tract rows: `edgeqa-convert compare --reference fp32.eqa`; onnxruntime rows: the fp32 ONNX in "
            "ONNX Runtime as reference.",
            "- rec: greedy CTC text equal to fp32's and to the rendered string, both after trimming the "
            "leading/trailing space the model may read in a line's margins; det: IoU of prob > 0.3 with "
            "fp32's; cls: the 0/180 label; student: answer agreement and accuracy on the evaluation set.",
        ]
        models = {r.model for r in self.rows}
        if "PP-OCR det" in models:
            lines.append("- det's top-1 is the arg-max along image rows of the probability map: read its IoU instead.")
        if "demo student" in models:
            lines.append(
                "- student, tract rows: cosine and top-1 of the head's `answer_logits` as `edgeqa-convert compare` "
                "reports them, answers from its run of the question set; onnxruntime rows: the four stages "
                "chained in ONNX Runtime on inputs made by `training/preprocess.py` (the runtime's pipeline in "
                "NumPy).")
        if "entropy" in self.args.methods:
            lines.append(
                "- ONNX Runtime's `entropy` row is quantize_static's Entropy as shipped: its histogram has 128 "
                "bins for 128 quantized bins, so the KL search has one candidate, the full range (the same "
                "ranges as minmax). The `entropy, N bins` row gives its calibrator N histogram bins.")
        if self.notes:
            lines += [""] + [f"- note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--convert-bin", default="target/release/edgeqa-convert")
    ap.add_argument("--edgeqa-bin", default="target/release/edgeqa",
                    help="runs the OCR packages on tract for the model-specific metrics of tract rows")
    ap.add_argument("--data", type=Path, default=ROOT / ".cache/testdata")
    ap.add_argument("--models", default="det,rec,cls,student")
    ap.add_argument("--methods", default="minmax,entropy", help="comma-separated: minmax, entropy, percentile")
    ap.add_argument("--percentile", type=float, default=99.99, help="for --methods percentile (both quantizers)")
    ap.add_argument("--schemes", default="w8,w4", help="edgeqa-convert weight-only rows; '' for none")
    ap.add_argument("--student-dir", type=Path, default=ROOT / "models/demo/student")
    ap.add_argument("--student-eval", type=Path, default=ROOT / "models/demo/eval/questions.jsonl")
    ap.add_argument("--student-calibration", type=Path, help="SynthAVQA questions.jsonl to calibrate the student on")
    ap.add_argument("--max-error", action="append", default=[], metavar="MODEL=BUDGET",
                    help="extra edgeqa-convert int8 row with --max-error BUDGET for an OCR model, "
                         "e.g. rec=top1=0.995 (repeatable)")
    ap.add_argument("--out", type=Path, default=ROOT / ".cache/quant-compare")
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads for evaluation")
    ap.add_argument("--ort-only", action="store_true", help="skip edgeqa-convert (ONNX Runtime rows only)")
    ap.add_argument("--no-dynamic", action="store_true", help="skip the quantize_dynamic rows")
    ap.add_argument("--ort-entropy-bins", type=int, default=2048,
                    help="extra ONNX Runtime entropy row with this many histogram bins (0: none); ORT's KL "
                         "search is pure Python: 2048 bins take minutes per model")
    ap.add_argument("--no-tract-metrics", action="store_true",
                    help="do not run `edgeqa run` per sample for the OCR tract rows' model-specific metric")
    a = ap.parse_args(argv)
    a.models = [m for m in a.models.split(",") if m]
    a.methods = [m for m in a.methods.split(",") if m]
    a.schemes = [s for s in a.schemes.split(",") if s]
    for m in a.models:
        if m not in (*OCR, "student"):
            ap.error(f"--models: unknown `{m}` (det, rec, cls, student)")
    for m in a.methods:
        if m not in METHODS:
            ap.error(f"--methods: unknown `{m}` (minmax, entropy, percentile)")
    for s in a.schemes:
        if s not in ("w8", "w4", "int8"):
            ap.error(f"--schemes: unknown `{s}` (w8, w4)")
    a.schemes = [s for s in a.schemes if s != "int8"]
    budgets = {}
    for spec in a.max_error:
        key, _, budget = spec.partition("=")
        if key not in OCR or not budget:
            ap.error(f"--max-error `{spec}`: give MODEL=BUDGET with MODEL one of {', '.join(OCR)}")
        budgets[key] = budget
    a.max_error = budgets
    if "student" in a.models and a.student_calibration is None:
        log("student skipped: give --student-calibration SET.jsonl (e.g. training/synth.py --seed 1 --n 40 --out DIR)")
        a.models.remove("student")
    a.convert_bin_resolved = None if a.ort_only else find_bin(a.convert_bin)
    if not a.ort_only and a.convert_bin_resolved is None:
        print(f"error: edgeqa-convert not found at `{a.convert_bin}`: build it with "
              "`cargo build --release -p edgeqa-convert` (and `-p edgeqa` for the tract metrics), pass "
              "--convert-bin PATH, or run with --ort-only for ONNX Runtime's rows alone", file=sys.stderr)
        return 2
    a.edgeqa_bin_resolved = None if a.ort_only else find_bin(a.edgeqa_bin)
    if not a.ort_only and a.edgeqa_bin_resolved is None and not a.no_tract_metrics:
        log(f"edgeqa not found at `{a.edgeqa_bin}`: tract rows of the OCR models get no model-specific metric")

    logging.getLogger().setLevel(logging.ERROR)  # ORT's quantizer warns per tensor
    ort.set_default_logger_severity(3)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "commands.log").write_text("")
    command = "python benches/quant_compare.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    bench = Bench(a)
    t0 = time.perf_counter()
    for m in a.models:
        try:
            bench.student() if m == "student" else bench.ocr(OCR[m])
        except StepError as e:
            bench.add(Row(m, "—", "—", "—", "—", error=str(e)))
    table = bench.table(command)
    (a.out / "table.md").write_text(table)
    results = {
        "command": command,
        "versions": {"onnxruntime": ort.__version__, "onnx": onnx.__version__, "numpy": np.__version__},
        "convert_bin": a.convert_bin_resolved,
        "seconds": time.perf_counter() - t0,
        "notes": bench.notes,
        "dump_check": bench.dump_check,
        "rows": [r.__dict__ for r in bench.sorted_rows()],
    }
    (a.out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(table)
    log(f"wrote {a.out / 'table.md'} and {a.out / 'results.json'}")
    return 1 if any(r.error for r in bench.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
