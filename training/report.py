#!/usr/bin/env python3
"""Renders ``DIR/TRAINING.md`` from ``DIR/training-report.json`` (the run that made the exported
student) and, when present, ``DIR/distillation-report.json`` (the teacher / student alone /
student distilled comparison) and ``DIR/selector-report.json`` (``selector.py``).

    python training/report.py models/demo
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TYPES = ("appearance", "counting", "motion", "order", "audio", "av")


def acc(r: dict) -> float:
    return 100.0 * r["correct"] / max(r["total"], 1)


def _name(key: str) -> str:
    return key.replace("_", " ")


def _table(r: dict) -> list[str]:
    order = ("teacher", "student_alone", "student_distilled")
    test = {k: r["results"][k]["test"] for k in order if k in r["results"]}
    first = next(iter(test.values()))
    counts = " | ".join(f"{t} ({first['per_type'][t]['total']})" for t in TYPES)
    lines = [f"| model | all | {counts} |", "|---" * (len(TYPES) + 2) + "|"]
    for k, v in test.items():
        cells = [f"{acc(v):.1f}"] + [f"{acc(v['per_type'][t]):.1f}" for t in TYPES]
        lines.append(f"| {_name(k)} | " + " | ".join(cells) + " |")
    return lines


def _run(r: dict) -> list[str]:
    e, dist, secs = r["epochs"], r["distillation"], r["train_seconds"]
    timing = ", ".join(f"{_name(k)} {v}" for k, v in secs.items() if k != "total" and v)
    splits = ", ".join(f"{k} seed {v['seed']}: {v['clips']} clips / {v['questions']} questions"
                       for k, v in r["splits"].items())
    return [
        f"Command: `{r['command']}` (torch {r['versions']['torch']}, numpy {r['versions']['numpy']}, "
        f"{r['threads']} CPU threads). Splits (clip i of a split is `default_rng([seed, i])`): {splits}.",
        "",
        f"Accuracy (%) on the held-out **test** split ({next(iter(r['results'].values()))['test']['total']} "
        "questions):",
        "",
        *_table(r),
        "",
        "Validation accuracy: " + ", ".join(f"{_name(k)} {acc(r['results'][k]['val']):.1f}%"
                                            for k in ("teacher", "student_alone", "student_distilled")
                                            if k in r["results"]) + ".",
        "",
        f"Epochs: teacher {e['teacher']}, students {e['student']}; distillation T = {dist['temperature']}, "
        f"KL weight {dist['kd_weight']}, feature weight {dist['feature_weight']}. Training time (s): {timing}; "
        f"whole run {secs['total']}.",
    ]


def render(r: dict, kd: dict | None, sel: dict | None = None) -> str:
    p = r["parameters"]
    lines = [
        "# Demo student: training report",
        "",
        "Made by the recipe in `training/` (`training/README.md` has the commands).",
        "",
        f"Exported: **{_name(r['exported'])}**, {p['student']:,} parameters (frame encoder "
        f"{p['student.frame_encoder']:,}, audio encoder {p['student.audio_encoder']:,}, question encoder "
        f"{p['student.question_encoder']:,}, head {p['student.head']:,}); teacher {p['teacher']:,}.",
        "",
    ]
    if kd is not None:
        t = {k: acc(v["test"]) for k, v in kd["results"].items()}
        verdict = "beat" if t["student_distilled"] > t["student_alone"] else "did not beat"
        lines += [
            "## Distillation against training alone",
            "",
            f"Same initialisation, batches and epochs for both students. Distillation **{verdict}** training "
            f"the student alone here: {t['student_distilled']:.1f}% against {t['student_alone']:.1f}% on the "
            f"test split, with a teacher at {t['teacher']:.1f}%.",
            "",
            *_run(kd),
            "",
        ]
    lines += ["## The exported student", "", *_run(r), ""]
    if sel:
        v = sel["versions"]
        lines += [
            "## The selector",
            "",
            f"`selector.onnx`, {sel['parameters']:,} parameters, scores R = {sel['candidates']} candidate frames per "
            "question; trained by `training/selector.py` on top of the exported student (whose four stages it does "
            "not change).",
            "",
            f"Command: `python training/selector.py --student models/demo/student --report "
            f"models/demo/selector-report.json` (torch {v['torch']}, numpy {v['numpy']}, onnxruntime "
            f"{v['onnxruntime']}). Long streams of {', '.join(map(str, sel['lengths']))} frames in turn: train seed "
            f"{sel['splits']['train'][0]} ({sel['splits']['train'][1]} streams), validation seed "
            f"{sel['splits']['val'][0]} ({sel['splits']['val'][1]} streams); {sel['epochs']} epochs; data "
            f"{sel['seconds']['data']} s (0 when read from `--cache`), training {sel['seconds']['train']} s.",
            "",
            f"On the {sel['val_questions']} validation questions, the part the runtime's rule chooses from the "
            f"scores covers {100 * sel['val_mean_window_covered']:.1f}% of the question's window on average "
            f"(intersection over union {sel['val_mean_iou']:.3f}; exactly the window for "
            f"{100 * sel['val_exact_window']:.1f}%). Answer accuracy with it is measured by `edgeqa eval "
            "--selection question` (`training/README.md`).",
            "",
        ]
    return "\n".join(lines)


def write_markdown(directory: Path) -> None:
    r = json.loads((directory / "training-report.json").read_text())
    kd_path = directory / "distillation-report.json"
    kd = json.loads(kd_path.read_text()) if kd_path.exists() else None
    sel_path = directory / "selector-report.json"
    sel = json.loads(sel_path.read_text()) if sel_path.exists() else None
    (directory / "TRAINING.md").write_text(render(r, kd, sel))


if __name__ == "__main__":
    write_markdown(Path(sys.argv[1] if len(sys.argv) > 1 else "models/demo"))
