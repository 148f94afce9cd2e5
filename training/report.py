#!/usr/bin/env python3
"""Renders ``DIR/TRAINING.md`` from ``DIR/training-report.json`` (the run that made the exported
student) and, when present, ``DIR/distillation-report.json`` (the teacher / student alone /
student distilled comparison).

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


def render(r: dict, kd: dict | None) -> str:
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
    return "\n".join(lines)


def write_markdown(directory: Path) -> None:
    r = json.loads((directory / "training-report.json").read_text())
    kd_path = directory / "distillation-report.json"
    kd = json.loads(kd_path.read_text()) if kd_path.exists() else None
    (directory / "TRAINING.md").write_text(render(r, kd))


if __name__ == "__main__":
    write_markdown(Path(sys.argv[1] if len(sys.argv) > 1 else "models/demo"))
