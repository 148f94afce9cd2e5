#!/usr/bin/env python3
"""Teacher -> student distillation on SynthAVQA, and export of the student as edgeqa stages.

    python training/train.py --out models/demo

1. Generates the train / validation / test splits with ``synth.py`` (clip ``i`` of a split with
   seed ``s`` is drawn from ``numpy.random.default_rng([s, i])``) and preprocesses them with
   ``preprocess.py``, exactly as the runtime will (cached under ``--cache``).
2. Trains the teacher (``models.FusionTeacher``) on the answers, or loads ``--teacher-checkpoint``.
3. Trains the student twice from the same initialisation: alone (cross-entropy on the answers)
   and distilled (cross-entropy + temperature-scaled KL to the teacher's answer distribution +
   MSE from the student's per-frame appearance and motion features, through linear adapters, to
   the teacher's fused per-frame features after its first and last fusion layer); with
   ``--no-distill`` only alone, with ``--no-alone`` only distilled. Every model also gets the
   auxiliary per-token loss (``scene_targets``).
4. Reports accuracy per question type on the validation and held-out test splits, exports the
   student that scores higher on validation to ``--out/student/`` (four ONNX stages and
   ``student.toml``), writes ``--out/training-report.json`` and renders ``--out/TRAINING.md``
   (``report.py``; it includes ``--out/distillation-report.json`` when that exists).

Everything is seeded and ``torch.use_deterministic_algorithms`` is on, so a rerun on the same
machine with the same versions should repeat the numbers (not checked bit for bit).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402
import preprocess as pre  # noqa: E402
import report as report_md  # noqa: E402
import synth  # noqa: E402

VIDEO = pre.VideoSpec(width=32, height=32, frames=models.FRAMES, mean=(0.45, 0.45, 0.45), std=(0.25, 0.25, 0.25))
AUDIO = pre.AudioSpec(sample_rate=synth.SAMPLE_RATE, n_fft=512, hop=256, n_mels=32, f_min=0.0, f_max=8000.0,
                      segment_frames=16, segments=models.FRAMES, log_offset=1e-6)
MAX_LEN = 14
VOCAB = ["[PAD]"] + synth.vocabulary()
LABELS = list(synth.LABELS)
TYPES = list(synth.QUESTION_TYPES)
SPLITS = {"train": 1, "val": 2, "test": 3}


# ------------------------------------------------------------------------------------------ data


def _clip_arrays(args):
    seed, i = args
    ex = synth.make_example(np.random.default_rng([seed, i]))
    frames = pre.frames_tensor(ex.y4m, VIDEO)
    samples, _ = pre.decode_wav(ex.wav)
    mels = pre.segments_tensor(samples, AUDIO)
    qs = []
    for q, a, t in ex.qa:
        ids, mask = pre.tokenize(q, VOCAB, MAX_LEN)
        qs.append((ids, mask, LABELS.index(a), TYPES.index(t)))
    return frames, mels, qs


def build_split(seed: int, n: int, cache: Path, workers: int) -> dict[str, np.ndarray]:
    key = hashlib.sha256(repr((seed, n, VIDEO, AUDIO, MAX_LEN, VOCAB, LABELS, TYPES)).encode()).hexdigest()[:16]
    path = cache / f"split-{seed}-{n}-{key}.npz"
    if path.exists():
        return dict(np.load(path))
    t0 = time.time()
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(_clip_arrays, [(seed, i) for i in range(n)], chunksize=32))
    frames = np.stack([r[0] for r in results])
    mels = np.stack([r[1] for r in results])
    rows = [(ci, *q) for ci, r in enumerate(results) for q in r[2]]
    data = {
        "frames": frames,
        "mels": mels,
        "clip": np.array([r[0] for r in rows], dtype=np.int64),
        "ids": np.stack([r[1] for r in rows]),
        "mask": np.stack([r[2] for r in rows]),
        "label": np.array([r[3] for r in rows], dtype=np.int64),
        "type": np.array([r[4] for r in rows], dtype=np.int64),
    }
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **data)
    print(f"data: split seed {seed}: {n} clips, {len(rows)} questions in {time.time() - t0:.0f} s", flush=True)
    return data


def scene_targets(seed: int, n: int) -> np.ndarray:
    """Per sampled frame and grid cell, the colour (1-6), shape (1-3) and motion direction (1-5)
    of the object whose centre lies in that cell, 0 for none: ``[n, F, 16, 3]``. Auxiliary training targets from the
    generator's ground truth (the scene is the first thing a clip draws from its generator)."""
    colours = list(synth.COLOURS)
    out = np.zeros((n, models.FRAMES, models.TOKENS, 3), dtype=np.int64)
    frames = pre.sample_indices(synth.FRAMES, models.FRAMES)
    cell = synth.WIDTH / models.GRID
    for i in range(n):
        clip = synth.sample_clip(np.random.default_rng([seed, i]))
        for j, f in enumerate(frames):
            for obj in clip.objects:
                if obj.visible(f):
                    x, y = obj.centre(f)
                    k = min(int(y // cell), models.GRID - 1) * models.GRID + min(int(x // cell), models.GRID - 1)
                    out[i, j, k] = (1 + colours.index(obj.colour), 1 + synth.SHAPES.index(obj.shape),
                                    1 + synth.DIRECTIONS.index(obj.direction))
    return out


class Split:
    """Tensors of one split, batched by clips (every question of a batch's clips rides along)."""

    def __init__(self, d: dict[str, np.ndarray]):
        self.frames = torch.from_numpy(d["frames"])
        self.mels = torch.from_numpy(d["mels"])
        self.clip = torch.from_numpy(d["clip"])
        self.ids = torch.from_numpy(d["ids"])
        self.mask = torch.from_numpy(d["mask"])
        self.label = torch.from_numpy(d["label"])
        self.type = torch.from_numpy(d["type"])
        self.n_clips = len(self.frames)
        bounds = np.searchsorted(d["clip"], np.arange(self.n_clips + 1))
        self.bounds = bounds

    def batches(self, size: int, gen: torch.Generator | None = None):
        order = torch.randperm(self.n_clips, generator=gen) if gen is not None else torch.arange(self.n_clips)
        for s in range(0, self.n_clips, size):
            clips = order[s : s + size]
            rows = torch.cat([torch.arange(self.bounds[c], self.bounds[c + 1]) for c in clips.tolist()])
            local = torch.empty(self.n_clips, dtype=torch.int64)
            local[clips] = torch.arange(len(clips))
            yield clips, rows, local[self.clip[rows]]


# --------------------------------------------------------------------------------------- training


def evaluate(model, split: Split) -> dict:
    model.eval()
    preds = []
    with torch.no_grad():
        for clips, rows, local in split.batches(64):
            out = model(split.frames[clips], split.mels[clips], local, split.ids[rows], split.mask[rows])[0]
            preds.append(out.argmax(1))
    pred = torch.cat(preds)
    correct = (pred == split.label).to(torch.float64)
    per_type = {}
    for i, t in enumerate(TYPES):
        sel = split.type == i
        per_type[t] = {"correct": int(correct[sel].sum()), "total": int(sel.sum())}
    return {"correct": int(correct.sum()), "total": len(correct), "per_type": per_type}


def acc(r: dict) -> float:
    return 100.0 * r["correct"] / max(r["total"], 1)


def train(model, split: Split, epochs: int, lr: float, seed: int, loss_fn, label: str, batch: int = 8,
          extra_params=()):
    params = list(model.parameters()) + list(extra_params)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(split.n_clips / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        total, n = 0.0, 0
        for clips, rows, local in split.batches(batch, gen):
            loss = loss_fn(model, clips, rows, local)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(rows)
            n += len(rows)
        print(f"{label}: epoch {epoch + 1}/{epochs} loss {total / n:.4f} ({time.time() - t0:.0f} s)", flush=True)
    return time.time() - t0


def make_ce_loss(tr: Split, aux_weight: float):
    """Cross-entropy on the answers plus the per-token auxiliary loss (``scene_targets``)."""

    def ce_loss(model, clips, rows, local):
        logits, _, _, aux = model(tr.frames[clips], tr.mels[clips], local, tr.ids[rows], tr.mask[rows])
        return F.cross_entropy(logits, tr.label[rows]) + aux_weight * aux_loss(tr, aux, clips)

    return ce_loss


def aux_loss(tr: Split, aux, clips):
    target = tr.scene[clips]
    return sum(F.cross_entropy(aux[..., lo:hi].reshape(-1, hi - lo), target[..., i].reshape(-1))
               for i, (lo, hi) in enumerate([(0, 7), (7, 11), (11, 17)]))


def teacher_targets(teacher, tr: Split):
    """The teacher's answer logits and its fused per-frame features (standardised per channel, so
    both feature terms weigh alike) for every question of ``tr``; no augmentation, so computed once."""
    teacher.eval()
    t_logits = torch.empty(len(tr.label), len(LABELS))
    t_f1 = torch.empty(len(tr.label), models.FRAMES, 2 * teacher.d)
    t_f2 = torch.empty_like(t_f1)
    with torch.no_grad():
        for clips, rows, local in tr.batches(64):
            out, f1, f2, _ = teacher(tr.frames[clips], tr.mels[clips], local, tr.ids[rows], tr.mask[rows])
            t_logits[rows], t_f1[rows], t_f2[rows] = out, f1, f2
    f1_mu, f1_sd = t_f1.mean((0, 1)), t_f1.std((0, 1)) + 1e-4
    f2_mu, f2_sd = t_f2.mean((0, 1)), t_f2.std((0, 1)) + 1e-4
    return t_logits, (t_f1 - f1_mu) / f1_sd, (t_f2 - f2_mu) / f2_sd


def train_distilled(kd, teacher_d: int, targets, tr: Split, epochs: int, lr: float, seed: int, temp: float,
                    alpha: float, beta: float, aux_weight: float) -> float:
    """Trains ``kd`` on cross-entropy + temperature-scaled KL to the teacher's answers + MSE from its
    per-frame appearance and motion features, through linear adapters, to the teacher's fused
    features (``teacher_targets``); returns the seconds taken."""
    t_logits, t_f1, t_f2 = targets
    d = kd.head.d
    adapt_app = nn.Linear(d, 2 * teacher_d)
    adapt_mot = nn.Linear(d, 2 * teacher_d)

    def kd_loss(model, clips, rows, local):
        logits, u, m, aux = model(tr.frames[clips], tr.mels[clips], local, tr.ids[rows], tr.mask[rows])
        hard = F.cross_entropy(logits, tr.label[rows])
        soft = F.kl_div(F.log_softmax(logits / temp, 1), F.softmax(t_logits[rows] / temp, 1),
                        reduction="batchmean") * temp * temp
        feat = F.mse_loss(adapt_app(u), t_f1[rows]) + F.mse_loss(adapt_mot(m), t_f2[rows])
        return (1 - alpha) * hard + alpha * soft + beta * feat + aux_weight * aux_loss(tr, aux, clips)

    return train(kd, tr, epochs, lr, seed, kd_loss, "student distilled",
                 extra_params=list(adapt_app.parameters()) + list(adapt_mot.parameters()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("models/demo"))
    ap.add_argument("--cache", type=Path, default=Path(".cache/training"))
    ap.add_argument("--train-clips", type=int, default=4000)
    ap.add_argument("--val-clips", type=int, default=500)
    ap.add_argument("--test-clips", type=int, default=1000)
    ap.add_argument("--teacher-epochs", type=int, default=8)
    ap.add_argument("--student-epochs", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (one-cycle schedule, AdamW)")
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--kd-weight", type=float, default=0.5, help="weight of the KL term (CE gets 1 - it)")
    ap.add_argument("--feature-weight", type=float, default=1.0)
    ap.add_argument("--aux-weight", type=float, default=0.5,
                    help="weight of the per-token colour/shape/direction auxiliary loss (0 turns it off)")
    ap.add_argument("--teacher-checkpoint", type=Path, help="load this teacher instead of training one")
    ap.add_argument("--no-distill", action="store_true", help="train only the student alone")
    ap.add_argument("--no-alone", action="store_true", help="train only the student distilled")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    if args.no_distill and args.no_alone:
        ap.error("--no-distill and --no-alone leave no student to train")

    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    started = time.time()
    sizes = {"train": args.train_clips, "val": args.val_clips, "test": args.test_clips}
    data = {k: Split(build_split(SPLITS[k], sizes[k], args.cache, args.workers)) for k in SPLITS}
    for k in SPLITS:
        data[k].scene = torch.from_numpy(scene_targets(SPLITS[k], sizes[k]))
    tr = data["train"]

    # -- teacher
    torch.manual_seed(args.seed)
    teacher = models.FusionTeacher(len(VOCAB), len(LABELS))

    ce_loss = make_ce_loss(tr, args.aux_weight)
    if args.teacher_checkpoint:
        teacher.load_state_dict(torch.load(args.teacher_checkpoint))
        t_teacher = 0.0
    else:
        t_teacher = train(teacher, tr, args.teacher_epochs, args.lr, args.seed, ce_loss, "teacher")
    teacher.eval()
    targets = None if args.no_distill else teacher_targets(teacher, tr)

    # -- students, same initialisation
    torch.manual_seed(args.seed + 1)
    init = models.Student(len(VOCAB), len(LABELS)).state_dict()
    trained = [("teacher", teacher)]
    t_alone = 0.0
    if not args.no_alone:
        alone = models.Student(len(VOCAB), len(LABELS))
        alone.load_state_dict(init)
        t_alone = train(alone, tr, args.student_epochs, args.lr, args.seed + 1, ce_loss, "student alone")
        trained.append(("student_alone", alone))
    t_kd = 0.0
    if targets is not None:
        kd = models.Student(len(VOCAB), len(LABELS))
        kd.load_state_dict(init)
        t_kd = train_distilled(kd, teacher.d, targets, tr, args.student_epochs, args.lr, args.seed + 1,
                               args.temperature, args.kd_weight, args.feature_weight, args.aux_weight)
        trained.append(("student_distilled", kd))

    args.cache.mkdir(parents=True, exist_ok=True)
    for name, model in trained:
        torch.save(model.state_dict(), args.cache / f"{name}.pt")

    # -- report
    results = {}
    for name, model in trained:
        results[name] = {split: evaluate(model, data[split]) for split in ("val", "test")}
        print(f"{name}: val {acc(results[name]['val']):.2f}%  test {acc(results[name]['test']):.2f}%", flush=True)
    chosen = "student_alone"
    if "student_distilled" in results and (
        "student_alone" not in results
        or acc(results["student_distilled"]["val"]) >= acc(results["student_alone"]["val"])
    ):
        chosen = "student_distilled"
    student = dict(trained)[chosen]

    def params(m):
        return sum(p.numel() for p in m.parameters())

    out = args.out
    sdir = out / "student"
    sdir.mkdir(parents=True, exist_ok=True)
    for stale in sdir.glob("*.onnx"):
        stale.unlink()
    models.export_stages(student, sdir, MAX_LEN)
    write_student_toml(sdir / "student.toml", chosen)
    report = {
        "command": "python training/train.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0]},
        "threads": torch.get_num_threads(),
        "splits": {k: {"seed": SPLITS[k], "clips": sizes[k], "questions": len(data[k].label)} for k in SPLITS},
        "epochs": {"teacher": args.teacher_epochs, "student": args.student_epochs},
        "distillation": {"temperature": args.temperature, "kd_weight": args.kd_weight,
                         "feature_weight": args.feature_weight},
        "parameters": {"teacher": params(teacher), "student": params(student),
                       **{f"student.{k}": params(getattr(student, k)) for k in
                          ("frame_encoder", "audio_encoder", "question_encoder", "head")}},
        "train_seconds": {"teacher": round(t_teacher), "student_alone": round(t_alone),
                          "student_distilled": round(t_kd), "total": round(time.time() - started)},
        "results": results,
        "exported": chosen,
    }
    (out / "training-report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    report_md.write_markdown(out)
    print(f"exported {chosen} to {sdir} ({time.time() - started:.0f} s in all)")
    return 0


def write_student_toml(path: Path, chosen: str) -> None:
    def arr(xs):
        return "[" + ", ".join(json.dumps(x) for x in xs) + "]"

    v, a = VIDEO, AUDIO
    path.write_text(
        f"""# The SynthAVQA demo student ({chosen.replace('_', ' ')}), made by training/train.py.
name = "synthavqa-student"
labels = {arr(LABELS)}

[video]
width = {v.width}
height = {v.height}
frames = {v.frames}
mean = {arr(list(v.mean))}
std = {arr(list(v.std))}

[audio]
sample_rate = {a.sample_rate}
n_fft = {a.n_fft}
hop = {a.hop}
n_mels = {a.n_mels}
f_min = {a.f_min}
f_max = {a.f_max}
segment_frames = {a.segment_frames}
segments = {a.segments}
log_offset = {a.log_offset}

[tokenizer]
vocab = {arr(VOCAB)}
lowercase = true
max_len = {MAX_LEN}

"""
        # The spoken questions' grammar (docs/voice.md): synth.py's templates, kept beside it.
        + (Path(__file__).parent / "voice.toml").read_text()
    )


if __name__ == "__main__":
    sys.exit(main())
