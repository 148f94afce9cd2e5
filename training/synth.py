#!/usr/bin/env python3
"""SynthAVQA: a procedural, reproducible audio-visual question-answering set.

Each clip is 16 frames of 64x64 video (2 to 3.2 s) with 16 kHz mono audio. One to three objects
(circle, square, triangle; six colours; shapes and colours distinct within a clip) sit on a plain
or textured background, each moving left, right, up or down, or standing still, and each
appearing and possibly disappearing at its own time (appearances are at least four frames apart,
so "which appears first" always has one answer). The audio is silence, noise, or a low or high
tone; a noise or tone starts when one object appears and stops when it disappears.

Questions come from templates with varied wording. Their types are ``appearance``, ``counting``,
``motion``, ``order``, ``audio`` and ``av`` (audio-visual correspondence); see ``questions``.

    python training/synth.py --seed 7 --n 40 --out /tmp/set

writes ``clip_000.y4m``, ``clip_000.wav``, ... and ``questions.jsonl`` in the format of
``edgeqa eval`` (``{"video","audio","question","answer","type"}``, paths relative to the file).

Long streams (``--long 128,256`` gives streams of 128 and 256 frames, taken in turn) hide one
such clip, the *episode*, somewhere inside a stream many times longer than its 16 frames, at 8
or 5 fps. The rest of the stream is distractor activity on the episode's background:
diamonds and crosses in white, black or brown (shapes and colours no question asks about), some
with a rising chirp, never within four frames of the episode. Every question is about the
episode; its line adds ``"window": [start, end]`` (frames, end exclusive), the ground truth that
``edgeqa eval --selection oracle`` encodes. Files are ``stream_000.y4m``, ``stream_000.wav``, ...;
stream ``i`` is drawn from ``numpy.random.default_rng([seed, i])``.

    python training/synth.py --seed 2027 --n 4 --long 128 --out models/demo/eval-long

Only the standard library and NumPy are needed; the same seed gives the same bytes. Everything
random is drawn from ``numpy.random.default_rng(seed)``; transcendental functions go through
Python's ``math`` (not NumPy's SIMD kernels), so the bytes do not depend on the CPU.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WIDTH = HEIGHT = 64
FRAMES = 16
SAMPLE_RATE = 16000
FPS_CHOICES = (8, 7, 6, 5)  # 16 frames: 2.0, 2.29, 2.67 or 3.2 s

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 80, 235),
    "yellow": (235, 220, 40),
    "cyan": (40, 210, 225),
    "magenta": (215, 50, 210),
}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = ("left", "right", "up", "down", "still")
COUNTS = ("one", "two", "three")
SOUNDS = ("silence", "noise", "tone")
# The answer vocabulary, in the order of the student's logits.
LABELS = (
    list(COLOURS) + list(SHAPES) + list(DIRECTIONS) + list(COUNTS) + ["yes", "no", "high", "low"] + list(SOUNDS)
)
QUESTION_TYPES = ("appearance", "counting", "motion", "order", "audio", "av")

# Long streams: frame rates (a whole number of samples per frame), the distractors' gap to the
# episode, and the distractors' shapes and colours (none of them an answer).
LONG_FPS = (8, 5)
MARGIN = 4
DISTRACTOR_SHAPES = ("diamond", "cross")
DISTRACTOR_COLOURS = {"white": (235, 235, 235), "black": (20, 20, 20), "brown": (130, 80, 35)}

# Unit vectors of the motion directions (image coordinates: y grows downwards).
VELOCITY = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1), "still": (0, 0)}


@dataclass
class Obj:
    shape: str
    colour: str
    rgb: tuple[int, int, int]
    radius: float
    x0: float
    y0: float
    direction: str
    speed: float
    appear: int  # first visible frame
    disappear: int  # first frame no longer visible (FRAMES if it stays)

    def centre(self, f: int) -> tuple[float, float]:
        dx, dy = VELOCITY[self.direction]
        t = f - self.appear
        return self.x0 + dx * self.speed * t, self.y0 + dy * self.speed * t

    def visible(self, f: int) -> bool:
        return self.appear <= f < self.disappear


@dataclass
class Sound:
    kind: str  # silence | noise | tone
    pitch: str | None  # high | low for tones
    owner: int | None  # index of the object whose appearance starts the sound
    start: int  # frames
    stop: int


@dataclass
class Clip:
    fps: int
    objects: list[Obj]
    sound: Sound
    background: np.ndarray  # HxWx3 float64 in 0..255


# ---------------------------------------------------------------------------------------------
# Scene sampling


def _sample_times(rng: np.random.Generator, n: int) -> list[tuple[int, int]]:
    """Appear/disappear frames: appearances at least 4 frames apart, each visible >= 7 frames."""
    while True:
        appears = sorted(int(a) for a in rng.choice(np.arange(0, 10), size=n, replace=False))
        if rng.random() < 0.5:
            appears[0] = 0
        if all(b - a >= 4 for a, b in zip(appears, appears[1:])):
            break
    times = []
    for a in appears:
        d = FRAMES
        if rng.random() < 0.3 and FRAMES - a > 8:
            d = int(rng.integers(a + 7, FRAMES))
        times.append((a, d))
    return times


def _sample_path(rng: np.random.Generator, radius: float, direction: str, span: int) -> tuple[float, float, float]:
    """Start point and speed so that the whole path stays inside the frame."""
    speed = 0.0 if direction == "still" else float(rng.uniform(1.6, 2.6))
    travel = speed * (span - 1)
    dx, dy = VELOCITY[direction]
    lo, hi = radius + 1.0, WIDTH - radius - 1.0
    if travel > hi - lo:
        speed = (hi - lo) / max(span - 1, 1)
        travel = speed * (span - 1)

    def axis(d: int) -> float:
        # max/min: with the speed clamped above, rounding may put hi - travel a hair below lo.
        if d > 0:
            return float(rng.uniform(lo, max(lo, hi - travel)))
        if d < 0:
            return float(rng.uniform(min(hi, lo + travel), hi))
        return float(rng.uniform(lo, hi))

    return axis(dx), axis(dy), speed


def _overlaps(a: Obj, b: Obj) -> bool:
    for f in range(FRAMES):
        if a.visible(f) and b.visible(f):
            (ax, ay), (bx, by) = a.centre(f), b.centre(f)
            if math.hypot(ax - bx, ay - by) < a.radius + b.radius + 2.0:
                return True
    return False


def _background(rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(45, 120)
    tint = rng.uniform(-12, 12, size=3)
    colour = np.clip(base + tint, 0, 255)
    img = np.broadcast_to(colour, (HEIGHT, WIDTH, 3)).astype(np.float64)
    kind = rng.integers(0, 3)  # plain, stripes, checker
    if kind == 0:
        return img.copy()
    amp = rng.uniform(8, 20)
    period = int(rng.integers(4, 12))
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    if kind == 1:
        pattern = ((xx + yy) // period) % 2 if rng.random() < 0.5 else (yy // period) % 2
    else:
        pattern = ((xx // period) + (yy // period)) % 2
    return img + (pattern[..., None] * 2 - 1) * amp


def sample_clip(rng: np.random.Generator) -> Clip:
    """Draws one scene: objects, their motion and timing, the background and the sound."""
    fps = int(rng.choice(FPS_CHOICES))
    n = int(rng.choice([1, 2, 3], p=[0.25, 0.4, 0.35]))
    for _attempt in range(50):
        shapes = [SHAPES[i] for i in rng.permutation(len(SHAPES))[:n]]
        colours = [list(COLOURS)[i] for i in rng.permutation(len(COLOURS))[:n]]
        times = _sample_times(rng, n)
        objects: list[Obj] = []
        for shape, colour, (a, d) in zip(shapes, colours, times):
            radius = float(rng.uniform(7.5, 10.5))
            direction = DIRECTIONS[int(rng.integers(0, len(DIRECTIONS)))]
            x0, y0, speed = _sample_path(rng, radius, direction, d - a)
            jitter = rng.integers(-12, 13, size=3)
            rgb = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[colour], jitter))
            objects.append(Obj(shape, colour, rgb, radius, x0, y0, direction, speed, a, d))
        if not any(_overlaps(a, b) for i, a in enumerate(objects) for b in objects[i + 1 :]):
            break
    else:  # crowded: keep one object
        objects = objects[:1]
    kind = SOUNDS[int(rng.choice(3, p=[0.25, 0.25, 0.5]))]
    if kind == "silence":
        sound = Sound(kind, None, None, 0, 0)
    else:
        owner = int(rng.integers(0, len(objects)))
        pitch = ("high", "low")[int(rng.integers(0, 2))] if kind == "tone" else None
        sound = Sound(kind, pitch, owner, objects[owner].appear, objects[owner].disappear)
    return Clip(fps, objects, sound, _background(rng))


# ---------------------------------------------------------------------------------------------
# Rendering

SS = 4  # supersampling factor per axis for anti-aliased edges


def _mask(obj: Obj, f: int) -> np.ndarray:
    cx, cy = obj.centre(f)
    r = obj.radius
    grid = (np.arange(WIDTH * SS) + 0.5) / SS
    x = grid[None, :]
    y = grid[:, None]
    if obj.shape == "circle":
        inside = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
    elif obj.shape == "square":
        h = r * 0.85
        inside = (np.abs(x - cx) <= h) & (np.abs(y - cy) <= h)
    elif obj.shape == "diamond":
        inside = np.abs(x - cx) + np.abs(y - cy) <= r * 1.15
    elif obj.shape == "cross":
        arm, half = r, r * 0.35
        inside = ((np.abs(x - cx) <= arm) & (np.abs(y - cy) <= half)) | (
            (np.abs(x - cx) <= half) & (np.abs(y - cy) <= arm)
        )
    else:  # upward triangle with circumradius 1.15 r
        R = r * 1.15
        top, base = cy - R, cy + R / 2
        half = R * math.sqrt(3) / 2
        # width grows linearly from the apex to the base
        frac = (y - top) / (base - top)
        inside = (y >= top) & (y <= base) & (np.abs(x - cx) <= frac * half)
    return inside.reshape(HEIGHT, SS, WIDTH, SS).mean(axis=(1, 3))


def _compose(background: np.ndarray, objects: list[Obj], f: int) -> np.ndarray:
    """Frame ``f``: the objects visible then over the background, as HxWx3 uint8 RGB."""
    img = background.copy()
    for obj in objects:
        if obj.visible(f):
            m = _mask(obj, f)[..., None]
            img = img * (1 - m) + np.asarray(obj.rgb, dtype=np.float64) * m
    return np.clip(np.floor(img + 0.5), 0, 255).astype(np.uint8)


def render_frames(clip: Clip) -> list[np.ndarray]:
    """The 16 frames as HxWx3 uint8 RGB."""
    return [_compose(clip.background, clip.objects, f) for f in range(FRAMES)]


def encode_y4m(frames: list[np.ndarray], fps: int) -> bytes:
    """Limited-range BT.601 4:2:0 (C420jpeg) YUV4MPEG2, as the runtime's test encoder writes it."""
    out = io.BytesIO()
    out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{fps}:1 Ip A1:1 C420jpeg XCOLORRANGE=LIMITED\n".encode())
    for rgb in frames:
        r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
        yp = 0.299 * r + 0.587 * g + 0.114 * b
        pb = (b - yp) / 1.772
        pr = (r - yp) / 1.402
        luma = np.clip(np.floor(16 + 219 * yp / 255 + 0.5), 0, 255).astype(np.uint8)

        def sub(p: np.ndarray) -> np.ndarray:
            m = p.reshape(HEIGHT // 2, 2, WIDTH // 2, 2).mean(axis=(1, 3))
            return np.clip(np.floor(128 + 224 * m / 255 + 0.5), 0, 255).astype(np.uint8)

        out.write(b"FRAME\n")
        out.write(luma.tobytes())
        out.write(sub(pb).tobytes())
        out.write(sub(pr).tobytes())
    return out.getvalue()


def synth_audio(clip: Clip, rng: np.random.Generator) -> np.ndarray:
    """Mono float64 samples in [-1, 1]."""
    n = round(FRAMES * SAMPLE_RATE / clip.fps)
    x = rng.normal(0.0, 0.0008, size=n)  # a quiet floor even in "silence"
    s = clip.sound
    if s.kind == "silence":
        return x
    start = round(s.start * SAMPLE_RATE / clip.fps)
    stop = round(s.stop * SAMPLE_RATE / clip.fps)
    length = stop - start
    ramp = min(160, length // 2)  # 10 ms fades
    env = np.ones(length)
    env[:ramp] = np.arange(ramp) / ramp
    env[length - ramp :] = np.arange(ramp)[::-1] / ramp
    if s.kind == "noise":
        amp = rng.uniform(0.08, 0.25)
        sig = rng.normal(0.0, amp, size=length)
    else:
        freq = rng.uniform(1300, 2800) if s.pitch == "high" else rng.uniform(180, 450)
        amp = rng.uniform(0.15, 0.4)
        w = 2 * math.pi * freq / SAMPLE_RATE
        phase0 = rng.uniform(0, 2 * math.pi)
        sig = np.array([amp * math.sin(w * i + phase0) for i in range(length)])
    x[start:stop] += sig * env
    return np.clip(x, -1.0, 1.0)


def encode_wav(samples: np.ndarray) -> bytes:
    pcm = np.clip(np.floor(samples * 32767 + 0.5), -32768, 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Questions


def _ref(rng: np.random.Generator, obj: Obj) -> str:
    """A way to name an object that is unique within its clip (shapes and colours are distinct)."""
    k = int(rng.integers(0, 3))
    return [obj.shape, f"{obj.colour} object", f"{obj.colour} {obj.shape}"][k]


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(0, len(options)))]


def questions(clip: Clip, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """(question, answer, type) for every template that applies to the clip."""
    qs: list[tuple[str, str, str]] = []
    objs = clip.objects
    for obj in [objs[i] for i in rng.permutation(len(objs))[:2]]:
        q = _pick(rng, [f"what colour is the {obj.shape}?", f"what is the colour of the {obj.shape}?",
                        f"which colour does the {obj.shape} have?", f"what color is the {obj.shape}?"])
        qs.append((q, obj.colour, "appearance"))
        q = _pick(rng, [f"what shape is the {obj.colour} object?", f"which shape is {obj.colour}?",
                        f"what is the shape of the {obj.colour} thing?"])
        qs.append((q, obj.shape, "appearance"))
    q = _pick(rng, ["how many objects are there?", "how many shapes are in the clip?",
                    "how many objects do you see?", "count the objects.", "how many things appear?"])
    qs.append((q, COUNTS[len(objs) - 1], "counting"))
    for obj in [objs[i] for i in rng.permutation(len(objs))[:2]]:
        ref = _ref(rng, obj)
        q = _pick(rng, [f"which way is the {ref} moving?", f"where is the {ref} going?",
                        f"in which direction does the {ref} move?", f"how does the {ref} move?"])
        qs.append((q, obj.direction, "motion"))
    if len(objs) >= 2:
        first = min(objs, key=lambda o: o.appear)
        last = max(objs, key=lambda o: o.appear)
        q = _pick(rng, ["which object appears first?", "which shape shows up first?",
                        "what shape is the first to appear?"])
        qs.append((q, first.shape, "order"))
        q = _pick(rng, ["which object appears last?", "which shape shows up last?",
                        "what shape is the last to appear?"])
        qs.append((q, last.shape, "order"))
        q = _pick(rng, ["what colour is the object that appears first?", "which colour shows up first?"])
        qs.append((q, first.colour, "order"))
    s = clip.sound
    q = _pick(rng, ["is there a sound?", "can you hear anything?", "is there any sound in the clip?",
                    "does the clip make a sound?"])
    qs.append((q, "no" if s.kind == "silence" else "yes", "audio"))
    q = _pick(rng, ["what kind of sound is it?", "what do you hear?", "what sort of sound is there?"])
    qs.append((q, s.kind, "audio"))
    if s.kind == "tone":
        q = _pick(rng, ["is the sound high or low?", "is the tone high or low pitched?",
                        "is the pitch high or low?"])
        qs.append((q, s.pitch, "audio"))
    if s.owner is not None:
        obj = objs[s.owner]
        word = _pick(rng, ["sound", s.kind])
        q = _pick(rng, [f"what colour is the object that appears when the {word} starts?",
                        f"which colour appears when the {word} begins?"])
        qs.append((q, obj.colour, "av"))
        q = _pick(rng, [f"what shape appears when the {word} starts?",
                        f"which shape shows up when the {word} begins?"])
        qs.append((q, obj.shape, "av"))
    return qs


# ---------------------------------------------------------------------------------------------
# Whole clips and sets


@dataclass
class Example:
    y4m: bytes
    wav: bytes
    qa: list[tuple[str, str, str]]
    clip: Clip


def make_example(rng: np.random.Generator) -> Example:
    """One clip: its Y4M and WAV bytes and its questions. Consumes ``rng`` deterministically."""
    clip = sample_clip(rng)
    y4m = encode_y4m(render_frames(clip), clip.fps)
    wav = encode_wav(synth_audio(clip, rng))
    return Example(y4m, wav, questions(clip, rng), clip)


def write_set(seed: int, n: int, out: Path) -> int:
    """Writes ``n`` clips and ``questions.jsonl`` into ``out``; returns the number of questions."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        ex = make_example(rng)
        video, audio = f"clip_{i:03d}.y4m", f"clip_{i:03d}.wav"
        (out / video).write_bytes(ex.y4m)
        (out / audio).write_bytes(ex.wav)
        for q, a, t in ex.qa:
            lines.append(json.dumps({"video": video, "audio": audio, "question": q, "answer": a, "type": t},
                                    sort_keys=True))
    (out / "questions.jsonl").write_text("\n".join(lines) + "\n")
    return len(lines)


# ---------------------------------------------------------------------------------------------
# Long streams


@dataclass
class Stream:
    fps: int
    length: int  # frames
    start: int  # the episode's first frame
    episode: Clip
    distractors: list[Obj]  # frames counted from the stream's start
    chirps: list[int]  # indices of the distractors that chirp

    @property
    def window(self) -> tuple[int, int]:
        return self.start, self.start + FRAMES


def _distractors(rng: np.random.Generator, lo: int, hi: int) -> list[Obj]:
    """Distractor objects one after another in frames ``lo..hi``: 6 to 16 frames each, 2 to 8 apart."""
    out: list[Obj] = []
    t = lo + int(rng.integers(0, 6))
    while hi - t >= 6:
        span = int(rng.integers(6, min(16, hi - t) + 1))
        shape = DISTRACTOR_SHAPES[int(rng.integers(0, len(DISTRACTOR_SHAPES)))]
        colour = list(DISTRACTOR_COLOURS)[int(rng.integers(0, len(DISTRACTOR_COLOURS)))]
        radius = float(rng.uniform(7.5, 10.5))
        direction = DIRECTIONS[int(rng.integers(0, len(DIRECTIONS)))]
        x0, y0, speed = _sample_path(rng, radius, direction, span)
        out.append(Obj(shape, colour, DISTRACTOR_COLOURS[colour], radius, x0, y0, direction, speed, t, t + span))
        t += span + int(rng.integers(2, 9))
    return out


def sample_stream(rng: np.random.Generator, length: int) -> Stream:
    """A stream of ``length`` frames with one episode (a short clip) and distractors around it."""
    if length < FRAMES + 2 * MARGIN:
        raise ValueError(f"a long stream needs at least {FRAMES + 2 * MARGIN} frames, not {length}")
    fps = int(rng.choice(LONG_FPS))
    episode = sample_clip(rng)
    episode.fps = fps
    start = int(rng.integers(MARGIN, length - FRAMES - MARGIN + 1))
    distractors = _distractors(rng, 0, start - MARGIN) + _distractors(rng, start + FRAMES + MARGIN, length)
    chirps = [i for i in range(len(distractors)) if rng.random() < 0.5]
    return Stream(fps, length, start, episode, distractors, chirps)


def render_stream(stream: Stream) -> list[np.ndarray]:
    """Every frame of the stream as HxWx3 uint8 RGB: the episode's frames inside its window."""
    episode = render_frames(stream.episode)
    return [
        episode[f - stream.start]
        if stream.start <= f < stream.start + FRAMES
        else _compose(stream.episode.background, stream.distractors, f)
        for f in range(stream.length)
    ]


def stream_audio(stream: Stream, rng: np.random.Generator) -> np.ndarray:
    """The quiet floor, the episode's audio in its window and a rising chirp for chirping distractors."""
    per_frame = SAMPLE_RATE // stream.fps  # LONG_FPS divide the sample rate
    x = rng.normal(0.0, 0.0008, size=stream.length * per_frame)
    begin = stream.start * per_frame
    episode = synth_audio(stream.episode, rng)
    x[begin : begin + len(episode)] = episode
    for i in stream.chirps:
        obj = stream.distractors[i]
        a, b = obj.appear * per_frame, obj.disappear * per_frame
        n = b - a
        f0, f1 = float(rng.uniform(500, 900)), float(rng.uniform(1100, 2000))
        amp = float(rng.uniform(0.05, 0.15))
        phase = 0.0
        sig = np.empty(n)
        for k in range(n):
            sig[k] = amp * math.sin(phase)
            phase += 2 * math.pi * (f0 + (f1 - f0) * k / n) / SAMPLE_RATE
        ramp = min(160, n // 2)
        sig[:ramp] *= np.arange(ramp) / ramp
        sig[n - ramp :] *= np.arange(ramp)[::-1] / ramp
        x[a:b] += sig
    return np.clip(x, -1.0, 1.0)


def write_long_set(seed: int, n: int, out: Path, lengths: list[int]) -> int:
    """Writes ``n`` long streams (lengths taken in turn) and ``questions.jsonl`` with each
    question's window into ``out``; returns the number of questions."""
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        stream = sample_stream(rng, lengths[i % len(lengths)])
        video, audio = f"stream_{i:03d}.y4m", f"stream_{i:03d}.wav"
        (out / video).write_bytes(encode_y4m(render_stream(stream), stream.fps))
        (out / audio).write_bytes(encode_wav(stream_audio(stream, rng)))
        start, end = stream.window
        for q, a, t in questions(stream.episode, rng):
            item = {"video": video, "audio": audio, "question": q, "answer": a, "type": t, "window": [start, end]}
            lines.append(json.dumps(item, sort_keys=True))
    (out / "questions.jsonl").write_text("\n".join(lines) + "\n")
    return len(lines)


def vocabulary() -> list[str]:
    """Every word any template can produce, sorted (for the student's tokenizer)."""
    rng = np.random.default_rng(0)
    words: set[str] = set()
    import re

    for _ in range(3000):
        clip = sample_clip(rng)
        for q, _a, _t in questions(clip, rng):
            words.update(re.findall(r"(?:[^\W_]|')+", q.lower()))
    return sorted(words)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, required=True, help="random seed (same seed, same bytes)")
    ap.add_argument("--n", type=int, required=True, help="number of clips")
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    ap.add_argument("--long", metavar="FRAMES[,FRAMES...]",
                    help=f"write long streams of these lengths (taken in turn; each >= {FRAMES + 2 * MARGIN})")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error("--n must be at least 1")
    if args.long is None:
        count = write_set(args.seed, args.n, args.out)
        print(f"synth: wrote {args.n} clips and {count} questions to {args.out}", file=sys.stderr)
        return 0
    try:
        lengths = [int(v) for v in args.long.split(",")]
    except ValueError:
        ap.error(f"--long {args.long}: give frame counts separated by commas, e.g. --long 128,256")
    if any(v < FRAMES + 2 * MARGIN for v in lengths):
        ap.error(f"--long {args.long}: every stream needs at least {FRAMES + 2 * MARGIN} frames")
    count = write_long_set(args.seed, args.n, args.out, lengths)
    print(f"synth: wrote {args.n} streams and {count} questions to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
