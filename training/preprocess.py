"""The student's input pipeline in NumPy, step for step as the edgeqa runtime does it.

The training recipe feeds the student exactly what the device will feed it, so this module
re-implements, from the same specification (``docs/student-contract.md``):

* Y4M decoding (BT.601, limited or full range, nearest-neighbour chroma) - ``runtime/src/capture/y4m.rs``
* frame sampling, bilinear resize (half-pixel, no antialias) and normalisation - ``runtime/src/preprocess/image.rs``
* WAV decoding and down-mixing - ``runtime/src/capture/wav.rs``
* the log-mel front end and its segments - ``runtime/src/preprocess/mel.rs``
* the word tokenizer - ``runtime/src/text/tokenizer.rs``

``tests/preprocessing.rs`` checks that the runtime's tensors equal these on the same clip.
Only NumPy and the standard library are used.
"""

from __future__ import annotations

import io
import re
import wave
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VideoSpec:
    width: int
    height: int
    frames: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class AudioSpec:
    sample_rate: int
    n_fft: int
    hop: int
    n_mels: int
    f_min: float
    f_max: float
    segment_frames: int
    segments: int
    log_offset: float


# ------------------------------------------------------------------------------------- video


def decode_y4m(data: bytes) -> tuple[np.ndarray, int, int]:
    """All frames as float32 ``[n, 3, H, W]`` RGB in [0, 1]; 4:2:0, 4:2:2, 4:4:4 and mono."""
    end = data.index(b"\n")
    tags = data[:end].decode("ascii").split()
    if tags[0] != "YUV4MPEG2":
        raise ValueError("not a YUV4MPEG2 stream")
    w = h = 0
    cs, full = "420jpeg", False
    for t in tags[1:]:
        if t[0] == "W":
            w = int(t[1:])
        elif t[0] == "H":
            h = int(t[1:])
        elif t[0] == "C":
            cs = t[1:]
        elif t == "XCOLORRANGE=FULL":
            full = True
    shift = {"420jpeg": (1, 1), "420paldv": (1, 1), "420mpeg2": (1, 1), "420": (1, 1), "422": (1, 0),
             "444": (0, 0), "mono": None}[cs]
    n = w * h
    if shift is None:
        cw = ch = 0
    else:
        cw, ch = -(-w // (1 << shift[0])), -(-h // (1 << shift[1]))
    frame_len = n + 2 * cw * ch
    pos = end + 1
    frames = []
    y_off, y_range, c_range = (0.0, 255.0, 255.0) if full else (16.0, 219.0, 224.0)
    y_lut = ((np.arange(256, dtype=np.float32) - np.float32(y_off)) / np.float32(y_range)).astype(np.float32)
    c_lut = ((np.arange(256, dtype=np.float32) - np.float32(128.0)) / np.float32(c_range)).astype(np.float32)
    while pos < len(data):
        nl = data.index(b"\n", pos)
        pos = nl + 1
        raw = np.frombuffer(data, dtype=np.uint8, count=frame_len, offset=pos)
        pos += frame_len
        y = y_lut[raw[:n].reshape(h, w)]
        if shift is None:
            v = np.clip(y, 0, 1)
            frames.append(np.stack([v, v, v]))
            continue
        cb = raw[n : n + cw * ch].reshape(ch, cw)
        cr = raw[n + cw * ch :].reshape(ch, cw)
        rows = np.arange(h) >> shift[1]
        cols = np.arange(w) >> shift[0]
        u = c_lut[cb[rows][:, cols]]
        v = c_lut[cr[rows][:, cols]]
        r = y + np.float32(1.402) * v
        g = y - np.float32(0.202008 / 0.587) * u - np.float32(0.419198 / 0.587) * v
        b = y + np.float32(1.772) * u
        frames.append(np.clip(np.stack([r, g, b]), 0, 1).astype(np.float32))
    return np.stack(frames), h, w


def sample_indices(n_available: int, n_wanted: int) -> list[int]:
    """Frame ``i`` of ``n_wanted`` is ``round(i (n-1) / (n_wanted-1))``, halves up; middle if one."""
    if n_available == 0 or n_wanted == 0:
        return []
    if n_wanted == 1:
        return [n_available // 2]
    span, steps = n_available - 1, n_wanted - 1
    return [(2 * i * span + steps) // (2 * steps) for i in range(n_wanted)]


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scale = np.float32(n_in) / np.float32(n_out)
    o = np.arange(n_out, dtype=np.float32)
    src = np.maximum(scale * (o + np.float32(0.5)) - np.float32(0.5), np.float32(0.0)).astype(np.float32)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    l1 = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
    return i0, i1, l1


def resize_bilinear(chw: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` in float32."""
    _, h, w = chw.shape
    if (h, w) == (out_h, out_w):
        return chw.copy()
    y0, y1, ly = _taps(h, out_h)
    x0, x1, lx = _taps(w, out_w)
    lx0, ly0 = (np.float32(1) - lx), (np.float32(1) - ly)
    r0, r1 = chw[:, y0, :], chw[:, y1, :]
    top = lx0 * r0[:, :, x0] + lx * r0[:, :, x1]
    bottom = lx0 * r1[:, :, x0] + lx * r1[:, :, x1]
    return (ly0[:, None] * top + ly[:, None] * bottom).astype(np.float32)


def frames_tensor(y4m: bytes, spec: VideoSpec) -> np.ndarray:
    """The ``frames`` input: float32 ``[F, 3, H, W]``."""
    video, _, _ = decode_y4m(y4m)
    mean = np.asarray(spec.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(spec.std, dtype=np.float32)[:, None, None]
    out = []
    for i in sample_indices(len(video), spec.frames):
        frame = resize_bilinear(video[i], spec.height, spec.width)
        out.append(((frame - mean) / std).astype(np.float32))
    return np.stack(out)


# ------------------------------------------------------------------------------------- audio


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Integer PCM WAV as float32 mono in [-1, 1) (scaled by 1/2^(bits-1)) and its rate."""
    with wave.open(io.BytesIO(data), "rb") as w:
        ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        raw = w.readframes(n)
    if width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128) / 128
    elif width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768
    elif width == 4:
        x = (np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2**31).astype(np.float32)
    else:
        raise ValueError(f"{8 * width}-bit WAV is not handled here")
    return x.reshape(-1, ch).mean(axis=1, dtype=np.float32), rate


def _mel_filterbank(spec: AudioSpec) -> np.ndarray:
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    f_pts = hz(np.linspace(mel(spec.f_min), mel(spec.f_max), spec.n_mels + 2))
    f = np.arange(spec.n_fft // 2 + 1) * spec.sample_rate / spec.n_fft
    down = (f[None, :] - f_pts[:-2, None]) / (f_pts[1:-1] - f_pts[:-2])[:, None]
    up = (f_pts[2:, None] - f[None, :]) / (f_pts[2:] - f_pts[1:-1])[:, None]
    return np.maximum(0, np.minimum(down, up))


def log_mel(samples: np.ndarray, spec: AudioSpec) -> np.ndarray:
    """float32 ``[n_mels, n_frames]``: periodic Hann, |rfft|^2, HTK mel, ln(mel + offset)."""
    x = samples.astype(np.float64)
    x = np.pad(x, (0, max(0, spec.n_fft - len(x))))
    n_frames = 1 + (len(x) - spec.n_fft) // spec.hop
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(spec.n_fft) / spec.n_fft)
    idx = np.arange(n_frames)[:, None] * spec.hop + np.arange(spec.n_fft)[None, :]
    power = np.abs(np.fft.rfft(x[idx] * w, axis=1)) ** 2
    return np.log(_mel_filterbank(spec) @ power.T + spec.log_offset).astype(np.float32)


def segments_tensor(samples: np.ndarray, spec: AudioSpec) -> np.ndarray:
    """The ``log_mel`` input: float32 ``[A, 1, n_mels, T]``."""
    mel = log_mel(samples, spec)
    t, a = spec.segment_frames, spec.segments
    n = mel.shape[1]
    if n < t:
        silence = np.float32(np.log(np.float64(spec.log_offset)))
        mel = np.concatenate([mel, np.full((mel.shape[0], t - n), silence, dtype=np.float32)], axis=1)
        n = t
    starts = [0] * a if a <= 1 else [(2 * i * (n - t) + (a - 1)) // (2 * (a - 1)) for i in range(a)]
    return np.stack([mel[None, :, s : s + t] for s in starts]).astype(np.float32)


# ------------------------------------------------------------------------------------- text

WORD = re.compile(r"(?:[^\W_]|')+")


def words(question: str, lowercase: bool = True) -> list[str]:
    return WORD.findall(question.lower() if lowercase else question)


def tokenize(question: str, vocab: list[str], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``question_ids`` and ``question_mask``, int64 ``[max_len]`` each (no bos, no unknown)."""
    index = {w: i for i, w in enumerate(vocab)}
    ws = words(question)
    unknown = [w for w in ws if w not in index]
    if unknown:
        raise ValueError(f"unknown words {unknown} in {question!r}")
    if len(ws) > max_len:
        raise ValueError(f"{question!r} has {len(ws)} words, more than {max_len}")
    ids = np.zeros(max_len, dtype=np.int64)
    mask = np.zeros(max_len, dtype=np.int64)
    ids[: len(ws)] = [index[w] for w in ws]
    mask[: len(ws)] = 1
    return ids, mask
