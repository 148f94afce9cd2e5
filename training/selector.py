#!/usr/bin/env python3
"""Trains the optional ``selector`` stage of a student on long streams and exports it.

    python training/selector.py --student models/demo/student

The selector scores each of ``R`` candidate frames of a long stream for a question
(``models.Selector``); the runtime then answers from the part of the stream the best-scoring
frames span (``docs/live.md``, "Question-aware selection"). It is trained on top of a finished
student, whose stages stay as they are:

1. Long streams from ``synth.py`` (``sample_stream``/``render_stream``; stream ``i`` of a split with
   seed ``s`` is drawn from ``numpy.random.default_rng([s, i])``, lengths 128, 256 and 512 in turn)
   are decoded and preprocessed exactly as the runtime does (``preprocess.py``). ``R`` candidates
   are spread over each stream as the runtime spreads them (``sample_indices``), and the student's
   own ``frame_encoder.onnx`` and ``question_encoder.onnx`` (run with onnxruntime) give their
   features and those of the stream's questions.
2. The target of each candidate is whether its frame lies in the question's window, the
   generator's ground truth (binary cross-entropy, unweighted by default: the runtime takes the
   frames scoring above zero, so the loss's balance point is its threshold).
3. Reports, on a held-out split, how well the chosen span covers the window, and writes
   ``selector_keys.onnx`` and ``selector.onnx`` into the student directory (and
   ``selector-report.json`` beside it with ``--report``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402
import preprocess as pre  # noqa: E402
import synth  # noqa: E402
import train  # noqa: E402

LENGTHS = (128, 256, 512)


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def frame_features(enc: ort.InferenceSession, frames: np.ndarray) -> np.ndarray:
    """Runs the frame encoder in its fixed batch over ``frames [n,3,H,W]`` (the last batch padded)."""
    batch = enc.get_inputs()[0].shape[0]
    out = []
    for lo in range(0, len(frames), batch):
        chunk = frames[lo : lo + batch]
        pad = batch - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
        out.append(enc.run(None, {"frames": chunk})[0][: batch - pad])
    return np.concatenate(out)


def stream_example(seed: int, i: int, candidates: int, fenc, qenc) -> dict:
    rng = np.random.default_rng([seed, i])
    stream = synth.sample_stream(rng, LENGTHS[i % len(LENGTHS)])
    video, _, _ = pre.decode_y4m(synth.encode_y4m(synth.render_stream(stream), stream.fps))
    spec = train.VIDEO
    mean = np.asarray(spec.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(spec.std, dtype=np.float32)[:, None, None]
    frames = np.stack([(pre.resize_bilinear(f, spec.height, spec.width) - mean) / std for f in video]).astype(np.float32)
    feats = frame_features(fenc, frames)
    picks = pre.sample_indices(stream.length, candidates)
    start, end = stream.window
    qs = []
    for q, _a, _t in synth.questions(stream.episode, np.random.default_rng([seed, i, 1])):
        ids, mask = pre.tokenize(q, train.VOCAB, train.MAX_LEN)
        qs.append(qenc.run(None, {"question_ids": ids[None], "question_mask": mask[None]})[0][0])
    return {
        "candidates": feats[picks],
        "frames": np.asarray(picks),
        "target": np.asarray([start <= f < end for f in picks], dtype=np.float32),
        "questions": np.stack(qs),
        "length": stream.length,
        "window": (start, end),
    }


def chosen_span(scores: np.ndarray, frames: np.ndarray, length: int, wanted: int) -> tuple[int, int]:
    """The runtime's rule (``question_span`` in ``runtime/src/stream/select.rs``): the frames whose candidates score above
    zero (relevance over one half), or the ``wanted`` best-scoring frames when none does; the part
    of the stream from the first to the last of them, widened to ``wanted`` frames when shorter."""
    order = sorted(range(len(scores)), key=lambda c: (-scores[c], c))
    picked: list[int] = []
    for c in order:
        if scores[c] <= 0 and (len(picked) >= wanted or scores[order[0]] > 0):
            break
        if frames[c] not in picked:
            picked.append(int(frames[c]))
    lo, hi = min(picked), max(picked) + 1
    if hi - lo < wanted:
        lo = max(0, min(lo - (wanted - (hi - lo)) // 2, length - wanted))
        hi = min(length, lo + wanted)
    return lo, hi


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--student", type=Path, default=Path("models/demo/student"))
    ap.add_argument("--candidates", type=int, default=256, help="R, the candidate frames scored per question")
    ap.add_argument("--train-streams", type=int, default=240)
    ap.add_argument("--val-streams", type=int, default=60)
    ap.add_argument("--train-seed", type=int, default=11)
    ap.add_argument("--val-seed", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--pos-weight", type=float, default=1.0,
                    help="weight of the in-window candidates' loss (above 1 widens the chosen parts)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", type=Path, help="write the JSON report here")
    ap.add_argument("--cache", type=Path, default=Path(".cache/training"), help="preprocessed streams are kept here")
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()
    fenc = session(args.student / "frame_encoder.onnx")
    qenc = session(args.student / "question_encoder.onnx")
    wanted = train.VIDEO.frames
    data = {}
    for name, seed, n in [("train", args.train_seed, args.train_streams), ("val", args.val_seed, args.val_streams)]:
        t = time.time()
        student = b"".join((args.student / f).read_bytes() for f in ("frame_encoder.onnx", "question_encoder.onnx"))
        key = hashlib.sha256(repr((seed, n, args.candidates, LENGTHS)).encode() + student).hexdigest()[:16]
        path = args.cache / f"selector-{name}-{seed}-{n}-{key}.pkl"
        if path.exists():
            data[name] = pickle.loads(path.read_bytes())
        else:
            data[name] = [stream_example(seed, i, args.candidates, fenc, qenc) for i in range(n)]
            args.cache.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pickle.dumps(data[name]))
        print(f"data: {name} seed {seed}: {n} streams in {time.time() - t:.0f} s", flush=True)
    t_data = time.time() - t0

    def tensors(items):
        cand = torch.from_numpy(np.stack([x["candidates"] for x in items]))
        target = torch.from_numpy(np.stack([x["target"] for x in items]))
        q = [torch.from_numpy(x["questions"]) for x in items]
        return cand, target, q

    tr_c, tr_t, tr_q = tensors(data["train"])
    va_c, va_t, va_q = tensors(data["val"])
    weight = torch.tensor(args.pos_weight)
    sel = models.Selector(c=tr_c.shape[-1], dq=tr_q[0].shape[-1])
    opt = torch.optim.AdamW(sel.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * len(tr_c)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    gen = torch.Generator().manual_seed(args.seed)
    t = time.time()
    for epoch in range(args.epochs):
        sel.train()
        total = 0.0
        for i in torch.randperm(len(tr_c), generator=gen).tolist():
            # every question of the stream in one batch (the selector sees each with the same candidates)
            qs = tr_q[i]
            logits = sel.score(qs, sel.keys(tr_c[i : i + 1]).expand(len(qs), -1, -1))
            loss = F.binary_cross_entropy_with_logits(logits, tr_t[i : i + 1].expand(len(qs), -1), pos_weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        if epoch % 5 == 4 or epoch == args.epochs - 1:
            print(f"selector: epoch {epoch + 1}: loss {total / len(tr_c):.4f}", flush=True)
    t_train = time.time() - t

    sel.eval()
    ious, inside, exact = [], [], 0
    with torch.no_grad():
        for x, c, q in zip(data["val"], va_c, va_q):
            scores = sel.score(q, sel.keys(c[None]).expand(len(q), -1, -1)).numpy()
            for s in scores:
                lo, hi = chosen_span(s, x["frames"], x["length"], wanted)
                a, b = x["window"]
                inter = max(0, min(hi, b) - max(lo, a))
                ious.append(inter / (max(hi, b) - min(lo, a)))
                inside.append(inter / (b - a))
                exact += (lo, hi) == (a, b)
    n = len(ious)
    result = {
        "candidates": args.candidates,
        "parameters": sum(p.numel() for p in sel.parameters()),
        "splits": {"train": [args.train_seed, args.train_streams], "val": [args.val_seed, args.val_streams]},
        "lengths": list(LENGTHS),
        "epochs": args.epochs,
        "pos_weight": args.pos_weight,
        "val_questions": n,
        "val_mean_iou": float(np.mean(ious)),
        "val_mean_window_covered": float(np.mean(inside)),
        "val_exact_window": exact / n,
        "seconds": {"data": round(t_data), "train": round(t_train)},
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "onnxruntime": ort.__version__},
    }
    print(json.dumps(result, indent=1), flush=True)
    models.export_selector(sel, args.student, args.candidates, c=tr_c.shape[-1], dq=tr_q[0].shape[-1])
    if args.report:
        args.report.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
