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


def _distillation(kd: dict) -> list[str]:
    """The ``distill.py`` comparison: one teacher, the students alone and distilled over seeds."""
    sm, t = kd["summary"], acc(kd["teacher"]["test"])
    alone, dist = sm["student_alone"]["test"], sm["student_distilled"]["test"]
    verdict = "beat" if dist["mean"] > alone["mean"] else "did not beat"
    v, secs = kd["versions"], kd["train_seconds"]
    splits = ", ".join(f"{k} seed {x['seed']}: {x['clips']} clips / {x['questions']} questions"
                       for k, x in kd["splits"].items())
    counts = " | ".join(f"{ty} ({kd['teacher']['test']['per_type'][ty]['total']})" for ty in TYPES)
    rows = [f"| model | all | {counts} |", "|---" * (len(TYPES) + 2) + "|",
            f"| teacher | {t:.1f} | " + " | ".join(f"{acc(kd['teacher']['test']['per_type'][ty]):.1f}" for ty in TYPES)
            + " |"]
    for name in ("student_alone", "student_distilled"):
        x = sm[name]["test"]
        rows.append(f"| {_name(name)} (mean ± std) | {x['mean']:.1f} ± {x['std']:.1f} | "
                    + " | ".join(f"{x['per_type_mean'][ty]:.1f}" for ty in TYPES) + " |")
    per_seed = "; ".join(
        f"seed {s}: alone {acc(kd['runs']['student_alone'][str(s)]['test']):.1f}, distilled "
        f"{acc(kd['runs']['student_distilled'][str(s)]['test']):.1f}" for s in kd["seeds"])
    return [
        "## Distillation against training alone",
        "",
        f"One teacher ({kd['parameters']['teacher']:,} parameters, {kd['epochs']['teacher']} epochs) at {t:.1f}% on "
        f"the test split. Each student ({kd['parameters']['student']:,} parameters) is trained twice from the same "
        f"initialisation, with the same batches and {kd['epochs']['student']} epochs: alone and distilled. Over "
        f"{len(kd['seeds'])} seeds, distillation **{verdict}** training alone: {dist['mean']:.1f} ± {dist['std']:.1f}% "
        f"against {alone['mean']:.1f} ± {alone['std']:.1f}% (mean ± sample std over seeds); the teacher is "
        f"{t - alone['mean']:+.1f} points from the student alone.",
        "",
        f"Command: `{kd['command']}` (torch {v['torch']}, numpy {v['numpy']}, {kd['threads']} CPU threads). Splits "
        f"(clip i of a split is `default_rng([seed, i])`): {splits}.",
        "",
        f"Accuracy (%) on the held-out **test** split ({kd['teacher']['test']['total']} questions); the students' "
        "per-type cells are means over the seeds:",
        "",
        *rows,
        "",
        f"Per seed (test, %): {per_seed}. Validation: student alone {sm['student_alone']['val']['mean']:.1f} ± "
        f"{sm['student_alone']['val']['std']:.1f}%, distilled {sm['student_distilled']['val']['mean']:.1f} ± "
        f"{sm['student_distilled']['val']['std']:.1f}%, teacher {acc(kd['teacher']['val']):.1f}%.",
        "",
        f"Distillation: T = {kd['distillation']['temperature']}, KL weight {kd['distillation']['kd_weight']}, "
        f"feature weight {kd['distillation']['feature_weight']}. Wall-clock seconds: teacher {secs['teacher']}, "
        f"students alone {', '.join(map(str, secs['student_alone']))}, distilled "
        f"{', '.join(map(str, secs['student_distilled']))}; whole run {secs['total']}.",
        "",
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
        lines += _distillation(kd)
    lines += ["## The exported student", ""]
    if kd is not None and kd["epochs"]["student"] != r["epochs"]["student"]:
        lines += [f"The exported stages are the {_name(r['exported'])} of its own run ({r['epochs']['student']} epochs), "
                  f"not a student of the comparison above ({kd['epochs']['student']} epochs).", ""]
    lines += [*_run(r), ""]
    if sel:
        v = sel["versions"]
        lines += [
            "## The selector",
            "",
            f"`selector_keys.onnx` and `selector.onnx`, {sel['parameters']:,} parameters together: the first makes "
            "each frame's key once, as the frame is encoded; the second scores the keys of R = "
            f"{sel['candidates']} candidate frames per question. Trained by `training/selector.py` on top of the "
            "exported student (whose four stages it does not change).",
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
