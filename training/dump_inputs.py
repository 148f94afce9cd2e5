#!/usr/bin/env python3
"""Writes the student's inputs for one clip and question, as the training recipe computes them.

    python training/dump_inputs.py --student models/demo/student/student.toml \
        --video clip.y4m --audio clip.wav --question "what colour is the square?" --out DIR

writes ``DIR/frames.npy`` ``[F,3,H,W]``, ``DIR/log_mel.npy`` ``[A,1,M,T]`` (float32) and
``DIR/question_ids.npy``, ``DIR/question_mask.npy`` ``[1,L]`` (int64). ``tests/preprocessing.rs``
compares them with the runtime's own preprocessing.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import preprocess as pre  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--student", type=Path, required=True, help="student.toml")
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--audio", type=Path, required=True)
    ap.add_argument("--question", required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    spec = tomllib.loads(args.student.read_text())
    v, a, t = spec["video"], spec["audio"], spec["tokenizer"]
    video = pre.VideoSpec(v["width"], v["height"], v["frames"], tuple(v["mean"]), tuple(v["std"]))
    audio = pre.AudioSpec(a["sample_rate"], a["n_fft"], a["hop"], a["n_mels"], a["f_min"], a["f_max"],
                          a["segment_frames"], a["segments"], a["log_offset"])
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "frames.npy", pre.frames_tensor(args.video.read_bytes(), video))
    samples, rate = pre.decode_wav(args.audio.read_bytes())
    if rate != audio.sample_rate:
        raise SystemExit(f"{args.audio}: {rate} Hz, the student expects {audio.sample_rate} Hz")
    np.save(args.out / "log_mel.npy", pre.segments_tensor(samples, audio))
    ids, mask = pre.tokenize(args.question, t["vocab"], t["max_len"])
    np.save(args.out / "question_ids.npy", ids[None])
    np.save(args.out / "question_mask.npy", mask[None])
    return 0


if __name__ == "__main__":
    sys.exit(main())
