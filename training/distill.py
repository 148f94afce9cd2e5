#!/usr/bin/env python3
"""Does distillation beat training the student alone? One teacher, several student seeds.

    python training/distill.py --teacher-epochs 24 --student-epochs 8 --seeds 0 1 2 \\
        --report models/demo/distillation-report.json

1. Trains the teacher (``models.FusionTeacher``) once on the training split, or loads
   ``--teacher-checkpoint``; it is saved under ``--cache`` either way, so a rerun can reuse it.
2. For every seed ``s``: one student initialisation (``torch.manual_seed(s + 1)``), trained twice
   with the same batches and epochs: alone (``train.make_ce_loss``) and distilled from the teacher
   (``train.train_distilled``: soft labels + feature distillation + the same auxiliary loss).
3. Reports every model on the validation and held-out test splits, and the students' mean and
   (sample) standard deviation over the seeds; with ``--report``, writes them as JSON, which
   ``report.py`` renders into ``TRAINING.md``.

The splits are ``train.py``'s (same seeds and sizes, same cache). Nothing is exported: which
student ships is ``train.py``'s business.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402
import train as tr_mod  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path(".cache/training"))
    ap.add_argument("--train-clips", type=int, default=4000)
    ap.add_argument("--val-clips", type=int, default=500)
    ap.add_argument("--test-clips", type=int, default=1000)
    ap.add_argument("--teacher-epochs", type=int, default=24)
    ap.add_argument("--student-epochs", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (one-cycle schedule, AdamW)")
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--kd-weight", type=float, default=0.5, help="weight of the KL term (CE gets 1 - it)")
    ap.add_argument("--feature-weight", type=float, default=1.0)
    ap.add_argument("--aux-weight", type=float, default=0.5)
    ap.add_argument("--teacher-checkpoint", type=Path, help="load this teacher instead of training one")
    ap.add_argument("--report", type=Path, help="write the results here as JSON")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    if len(set(args.seeds)) < 2:
        ap.error("--seeds needs at least two different seeds for a standard deviation")

    torch.use_deterministic_algorithms(True)
    started = time.time()
    sizes = {"train": args.train_clips, "val": args.val_clips, "test": args.test_clips}
    data = {k: tr_mod.Split(tr_mod.build_split(tr_mod.SPLITS[k], sizes[k], args.cache, args.workers))
            for k in tr_mod.SPLITS}
    for k in tr_mod.SPLITS:
        data[k].scene = torch.from_numpy(tr_mod.scene_targets(tr_mod.SPLITS[k], sizes[k]))
    tr = data["train"]
    vocab, labels = len(tr_mod.VOCAB), len(tr_mod.LABELS)
    ce_loss = tr_mod.make_ce_loss(tr, args.aux_weight)

    def evaluate(model) -> dict:
        return {split: tr_mod.evaluate(model, data[split]) for split in ("val", "test")}

    # -- the teacher, once
    torch.manual_seed(0)
    teacher = models.FusionTeacher(vocab, labels)
    if args.teacher_checkpoint:
        teacher.load_state_dict(torch.load(args.teacher_checkpoint))
        t_teacher = 0.0
    else:
        t_teacher = tr_mod.train(teacher, tr, args.teacher_epochs, args.lr, 0, ce_loss, "teacher")
        args.cache.mkdir(parents=True, exist_ok=True)
        torch.save(teacher.state_dict(), args.cache / f"teacher-{args.teacher_epochs}ep.pt")
    results = {"teacher": evaluate(teacher)}
    print(f"teacher: test {tr_mod.acc(results['teacher']['test']):.2f}%", flush=True)
    targets = tr_mod.teacher_targets(teacher, tr)

    # -- the students, per seed
    seconds = {"teacher": round(t_teacher), "student_alone": [], "student_distilled": []}
    runs = {"student_alone": {}, "student_distilled": {}}
    for seed in args.seeds:
        torch.manual_seed(seed + 1)
        init = models.Student(vocab, labels).state_dict()
        alone = models.Student(vocab, labels)
        alone.load_state_dict(init)
        seconds["student_alone"].append(round(tr_mod.train(alone, tr, args.student_epochs, args.lr, seed + 1,
                                                           ce_loss, f"seed {seed}: student alone")))
        runs["student_alone"][str(seed)] = evaluate(alone)
        kd = models.Student(vocab, labels)
        kd.load_state_dict(init)
        seconds["student_distilled"].append(round(tr_mod.train_distilled(
            kd, teacher.d, targets, tr, args.student_epochs, args.lr, seed + 1, args.temperature, args.kd_weight,
            args.feature_weight, args.aux_weight)))
        runs["student_distilled"][str(seed)] = evaluate(kd)
        print(f"seed {seed}: alone test {tr_mod.acc(runs['student_alone'][str(seed)]['test']):.2f}%, "
              f"distilled {tr_mod.acc(runs['student_distilled'][str(seed)]['test']):.2f}%", flush=True)

    summary = {}
    for name, per_seed in runs.items():
        summary[name] = {}
        for split in ("val", "test"):
            accs = [tr_mod.acc(r[split]) for r in per_seed.values()]
            per_type = {t: statistics.mean(tr_mod.acc(r[split]["per_type"][t]) for r in per_seed.values())
                        for t in tr_mod.TYPES}
            summary[name][split] = {"mean": statistics.mean(accs), "std": statistics.stdev(accs),
                                    "per_type_mean": per_type}
        print(f"{name}: test {summary[name]['test']['mean']:.2f} ± {summary[name]['test']['std']:.2f}%", flush=True)

    def params(m):
        return sum(p.numel() for p in m.parameters())

    report = {
        "command": "python training/distill.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0]},
        "threads": torch.get_num_threads(),
        "splits": {k: {"seed": tr_mod.SPLITS[k], "clips": sizes[k], "questions": len(data[k].label)}
                   for k in tr_mod.SPLITS},
        "epochs": {"teacher": args.teacher_epochs, "student": args.student_epochs},
        "seeds": args.seeds,
        "distillation": {"temperature": args.temperature, "kd_weight": args.kd_weight,
                         "feature_weight": args.feature_weight},
        "parameters": {"teacher": params(teacher), "student": params(models.Student(vocab, labels))},
        "train_seconds": {**seconds, "total": round(time.time() - started)},
        "teacher": results["teacher"],
        "runs": runs,
        "summary": summary,
    }
    if args.report:
        args.report.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"done in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
