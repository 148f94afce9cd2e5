"""Renders text images and writes calibration / verification inputs for the PP-OCR det, rec and cls models.

Usage: make_ocr_data.py MODELS_DIR OUT_DIR

No image can be downloaded here, so the images are rendered: Pillow's built-in scalable font
(``ImageFont.load_default(size=...)``, Aileron Regular, shipped in Pillow >= 10.1), a fixed list of
English strings and one seeded ``numpy.random.default_rng``; the same versions write the same bytes.
Every character used is in PP-OCRv4's dictionary (the rec model's ``character`` metadata).

For each model M in det, rec, cls it writes

    OUT_DIR/M/calibration/<id>/x.npy     float32 model input (every model's input is named ``x``)
    OUT_DIR/M/verify/<id>/x.npy
    OUT_DIR/M/{calibration,verify}/<id>/image.png     the rendered image, for humans
    OUT_DIR/M/{calibration,verify}/<id>/expected.json  rec: {"text"}, cls: {"label": 0|180, "text"},
                                                        det: {"lines": [{"text", "box": [x0,y0,x1,y1]}]}
    OUT_DIR/summary.json                 what fp32 ONNX Runtime gets on the verify (and calibration) sets

(JSON rather than .npy for the expectations: edgeqa-convert reads every *.npy in a sample dir as a
model input.) 24 calibration and 16 verification samples per model; the 40 text lines are all
different strings, calibration and verification lines are disjoint.

Preprocessing is rapidocr-onnxruntime 1.4.4's (ch_ppocr_det/rec/cls, config.yaml). rapidocr loads
images as BGR (RGB from PIL -> cv2.COLOR_RGB2BGR), so channel 0 of every tensor is blue. Resizes are
cv2.resize(INTER_LINEAR), reimplemented below in NumPy with OpenCV's fixed-point arithmetic (checked
against opencv-python-headless on these images: 1/255 apart on about 0.002% of the values, else equal).
The text lines are rendered as tight crops with margins like a det box after rapidocr's unclip, i.e.
what det + crop would hand to cls and rec. image.png is the image before preprocessing (for cls,
after the rotation).

* rec ``[1,3,48,320]``: resize to height 48 keeping the aspect ratio, width ceil(48*w/h) capped at
  320; ``(x/255 - 0.5)/0.5``; CHW; zero padding on the right up to width 320 (rapidocr's batch width
  is 48*max(320/48, widest ratio): every line here is narrower than 320/48, so 320 is exact).
* cls ``[1,3,48,192]``: the same rec text lines, every odd-numbered one rotated by 180 degrees
  (label 180, else 0); height 48, width ceil(48*w/h) capped at 192 (wider lines are squeezed, as
  rapidocr does), same normalisation, zero padding to 192.
* det ``[1,3,320,320]``: 320x320 page images holding 2-4 text lines; ``(x/255 - mean)/std`` with
  config.yaml's mean = std = 0.5 for each channel; CHW. rapidocr's own det resize (limit_type min,
  limit_side_len 736) would upscale a 320x320 page to 736x736; here the page is fed at 320x320 (a
  multiple of 32, so rapidocr's rounding keeps it) to give the converter one fixed input shape.

Decoding conventions checked below (and needed by anything that reads the outputs):
* rec output ``[1,T,6625]`` softmax; greedy CTC: argmax per step, merge repeats, drop blanks.
  Class 0 is the blank, class i in 1..=6623 is dict[i-1] where dict = metadata ``character`` split
  into lines, and the last class 6624 is a space " ".
  Text is compared with the truth after str.strip(): the model often reads the blank margins of a
  line crop as a leading or trailing space (PaddleOCR's own metric ignores spaces altogether).
* cls output ``[1,2]`` softmax over the labels ['0', '180'].
* det output ``[1,1,320,320]`` text probability map; rapidocr binarises it at 0.3.

Run by scripts/fetch-test-data.sh inside .cache/venv (numpy, onnxruntime, pillow).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageDraw, ImageFont

SEED = 2026
DET_MODEL = "ch_PP-OCRv4_det_infer.onnx"
REC_MODEL = "ch_PP-OCRv4_rec_infer.onnx"
CLS_MODEL = "ch_ppocr_mobile_v2.0_cls_infer.onnx"
REC_SHAPE = (3, 48, 320)
CLS_SHAPE = (3, 48, 192)
DET_SIDE = 320
DET_MEAN = (0.5, 0.5, 0.5)  # rapidocr config.yaml Det.mean / Det.std
DET_STD = (0.5, 0.5, 0.5)
DET_THRESH = 0.3  # rapidocr config.yaml Det.thresh
MIN_REC_EXACT = 0.8  # fp32 must read at least this fraction of the verification lines exactly

CALIBRATION = [
    "EDGE QA 2026", "camera ready", "battery 87%", "Jetson Orin", "speed 42 km/h", "Total: 19.99",
    "OPEN 9-17", "Room 204", "exit left", "temp 23.5 C", "Model v4.2", "NO PARKING",
    "Gate B12", "hello world", "price $45", "May 14, 2025", "Track 7", "low power",
    "Line 3 north", "ZONE A-5", "call 555-0142", "frame 1024", "WiFi offline", "press start",
]
VERIFY = [
    "Platform 9", "EXIT ONLY", "voltage 12V", "memory 64 GB", "Coffee 3.50", "Level 2",
    "rain likely", "update done", "Bus 73 city", "error 404", "Mon-Fri 8-18", "ready to go",
    "cam 2 active", "Dock 6", "fan speed 70%", "Stop here",
]


# ----------------------------------------------------------------------------------- resizing


def _linear_taps(n_in: int, n_out: int, horizontal: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV INTER_LINEAR source indices and 11-bit fixed-point weights (sum 2048) for one axis.

    Outside the source, OpenCV resets the horizontal fraction to 0 but keeps the vertical one and
    clamps the row indices instead; the fixed-point sums differ slightly, so both are kept.
    """
    f = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    i0 = np.floor(f).astype(np.int64)
    frac = f - i0
    if horizontal:
        low = i0 < 0
        i0[low], frac[low] = 0, 0.0
        high = i0 >= n_in - 1
        i0[high], frac[high] = n_in - 1, 0.0
    i1 = np.clip(i0 + 1, 0, n_in - 1)
    i0 = np.clip(i0, 0, n_in - 1)
    # cv::saturate_cast<short>(w * INTER_RESIZE_COEF_SCALE), rounding to nearest
    w0 = np.rint((1.0 - frac) * 2048).astype(np.int64)
    w1 = np.rint(frac * 2048).astype(np.int64)
    return i0, i1, np.stack([w0, w1])


def cv2_resize_linear(img: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """``cv2.resize(img, (out_w, out_h))`` (INTER_LINEAR) for a uint8 HxWxC image.

    OpenCV's fixed-point path as its SIMD kernels compute it: horizontal sums with 11-bit weights,
    then per output row ``((S0 >> 4) * b0 >> 16) + ((S1 >> 4) * b1 >> 16) + 2 >> 2``. An exact 2x
    downscale is INTER_AREA in OpenCV (rounded 2x2 mean), done likewise. Checked against
    opencv-python-headless on these images: at most 1/255 apart, on well under 1% of the values.
    """
    h, w = img.shape[:2]
    if (h, w) == (out_h, out_w):
        return img.copy()
    src = img.astype(np.int64)
    if w == 2 * out_w and h == 2 * out_h:
        s = src[0::2, 0::2] + src[0::2, 1::2] + src[1::2, 0::2] + src[1::2, 1::2]
        return ((s + 2) >> 2).astype(np.uint8)
    x0, x1, wx = _linear_taps(w, out_w, horizontal=True)
    y0, y1, wy = _linear_taps(h, out_h, horizontal=False)
    rows = (src[:, x0] * wx[0][None, :, None] + src[:, x1] * wx[1][None, :, None]) >> 4
    out = ((rows[y0] * wy[0][:, None, None]) >> 16) + ((rows[y1] * wy[1][:, None, None]) >> 16)
    return np.clip((out + 2) >> 2, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- preprocessing


def rgb_to_bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[:, :, ::-1])


def resize_norm_line(bgr: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """rapidocr TextRecognizer/TextClassifier.resize_norm_img: [1,C,H,W] float32."""
    c, out_h, out_w = shape
    h, w = bgr.shape[:2]
    ratio = w / float(h)
    resized_w = out_w if math.ceil(out_h * ratio) > out_w else int(math.ceil(out_h * ratio))
    resized = cv2_resize_linear(bgr, resized_w, out_h).astype(np.float32)
    resized = resized.transpose((2, 0, 1)) / 255
    resized -= 0.5
    resized /= 0.5
    padded = np.zeros((c, out_h, out_w), dtype=np.float32)
    padded[:, :, :resized_w] = resized
    return padded[None]


def det_norm(bgr: np.ndarray) -> np.ndarray:
    """rapidocr DetPreProcess.normalize + permute (no resize: the page is already 320x320)."""
    mean, std = np.array(DET_MEAN), np.array(DET_STD)
    x = (bgr.astype("float32") * (1 / 255.0) - mean) / std
    return np.expand_dims(x.transpose((2, 0, 1)), axis=0).astype(np.float32)


# -------------------------------------------------------------------------------- rendering


def _ink(rng: np.random.Generator) -> tuple[int, int, int]:
    base = int(rng.integers(0, 60))
    return tuple(int(np.clip(base + rng.integers(-15, 16), 0, 255)) for _ in range(3))


def _paper(rng: np.random.Generator) -> tuple[int, int, int]:
    base = int(rng.integers(200, 250))
    return tuple(int(np.clip(base + rng.integers(-12, 13), 0, 255)) for _ in range(3))


def _noise(rgb: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    noisy = rgb.astype(np.float32) + rng.normal(0.0, sigma, size=rgb.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def render_line(text: str, rng: np.random.Generator) -> np.ndarray:
    """A tight text-line crop (as det + crop would give), RGB uint8."""
    size = int(rng.integers(26, 41))
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text)
    # margins like a det box after rapidocr's unclip (ratio 1.6): a good part of the text height
    text_h = bottom - top
    pad_x = int(round(text_h * rng.uniform(0.15, 0.4)))
    pad_top = int(round(text_h * rng.uniform(0.25, 0.5)))
    pad_bottom = int(round(text_h * rng.uniform(0.25, 0.5)))
    width, height = right - left + 2 * pad_x, bottom - top + pad_top + pad_bottom
    img = Image.new("RGB", (width, height), _paper(rng))
    ImageDraw.Draw(img).text((pad_x - left, pad_top - top), text, font=font, fill=_ink(rng))
    # a faint horizontal illumination gradient, then sensor noise
    rgb = np.asarray(img).astype(np.float32)
    gain = 1.0 - float(rng.uniform(0.0, 0.08)) * np.linspace(0.0, 1.0, width, dtype=np.float32)
    if rng.random() < 0.5:
        gain = gain[::-1]
    rgb = rgb * gain[None, :, None]
    return _noise(rgb, rng, float(rng.uniform(1.5, 5.0)))


def render_page(texts: list[str], rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """A 320x320 page with the given lines stacked at random offsets; RGB uint8 and line boxes."""
    side = DET_SIDE
    img = Image.new("RGB", (side, side), _paper(rng))
    draw = ImageDraw.Draw(img)
    ink = _ink(rng)
    slot = side // len(texts)
    lines = []
    for k, text in enumerate(texts):
        size = int(rng.integers(20, 35))
        while True:
            font = ImageFont.load_default(size=size)
            left, top, right, bottom = font.getbbox(text)
            if right - left <= side - 24 or size <= 12:
                break
            size -= 2
        w, h = right - left, bottom - top
        x = int(rng.integers(8, max(9, side - 8 - w)))
        y = k * slot + int(rng.integers(4, max(5, slot - h - 4)))
        draw.text((x - left, y - top), text, font=font, fill=ink)
        lines.append({"text": text, "box": [x, y, x + w, y + h]})
    rgb = np.asarray(img).astype(np.float32)
    gy = np.linspace(1.0, 1.0 - float(rng.uniform(0.0, 0.1)), side, dtype=np.float32)
    rgb = rgb * gy[:, None, None]
    return _noise(rgb, rng, float(rng.uniform(1.5, 5.0))), lines


# ---------------------------------------------------------------------------------- decoding


def load_charset(rec_model: Path) -> list[str]:
    """rapidocr CTCLabelDecode: ["blank"] + metadata `character` lines + [" "]."""
    sess = session(rec_model)
    dictionary = sess.get_modelmeta().custom_metadata_map["character"].splitlines()
    return ["blank", *dictionary, " "]


def ctc_greedy(probs: np.ndarray, charset: list[str]) -> str:
    """probs [T, C]: argmax per step, merge repeats, drop the blank (class 0)."""
    idx = probs.argmax(axis=-1)
    keep = np.ones(len(idx), dtype=bool)
    keep[1:] = idx[1:] != idx[:-1]
    keep &= idx != 0
    return "".join(charset[i] for i in idx[keep])


def session(model: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])


# ------------------------------------------------------------------------------------- main


def write_sample(dest: Path, x: np.ndarray, image: np.ndarray, expected: dict) -> None:
    dest.mkdir(parents=True)
    np.save(dest / "x.npy", np.ascontiguousarray(x, dtype=np.float32))
    Image.fromarray(image).save(dest / "image.png", optimize=False)
    (dest / "expected.json").write_text(json.dumps(expected, ensure_ascii=False) + "\n")


def build(out: Path, charset: list[str]) -> None:
    allowed = set(charset[1:-1]) | {" "}
    for s in CALIBRATION + VERIFY:
        missing = sorted(set(s) - allowed)
        if missing:
            raise SystemExit(f"{s!r}: characters {missing} are not in PP-OCRv4's dictionary")
    if len(set(CALIBRATION + VERIFY)) != len(CALIBRATION) + len(VERIFY):
        raise SystemExit("the text lines must all be different")

    rng = np.random.default_rng(SEED)
    for split, texts in (("calibration", CALIBRATION), ("verify", VERIFY)):
        for i, text in enumerate(texts):
            rgb = render_line(text, rng)
            h, w = rgb.shape[:2]
            if w / h > REC_SHAPE[2] / REC_SHAPE[1]:
                raise SystemExit(f"{text!r} renders {w}x{h}, wider than 320/48: rec would not be 320 wide")
            sid = f"{i:03d}"
            write_sample(out / "rec" / split / sid, resize_norm_line(rgb_to_bgr(rgb), REC_SHAPE), rgb, {"text": text})
            label = 180 if i % 2 else 0
            rot = np.ascontiguousarray(rgb[::-1, ::-1]) if label == 180 else rgb
            write_sample(
                out / "cls" / split / sid,
                resize_norm_line(rgb_to_bgr(rot), CLS_SHAPE),
                rot,
                {"label": label, "text": text},
            )
        for i in range(len(texts)):
            n = 2 + i % 3  # 2, 3 or 4 lines per page
            page_texts = [texts[(i + k * 5) % len(texts)] for k in range(n)]
            rgb, lines = render_page(page_texts, rng)
            write_sample(out / "det" / split / f"{i:03d}", det_norm(rgb_to_bgr(rgb)), rgb, {"lines": lines})


def check(models: Path, out: Path, charset: list[str]) -> dict:
    """fp32 ONNX Runtime on the written inputs: rec exact reads, cls accuracy, det line recall."""
    rec, cls, det = session(models / REC_MODEL), session(models / CLS_MODEL), session(models / DET_MODEL)
    summary: dict = {"onnxruntime": ort.__version__, "numpy": np.__version__}
    for split in ("calibration", "verify"):
        exact = strict = 0
        misreads = []
        for d in sorted((out / "rec" / split).iterdir()):
            text = json.loads((d / "expected.json").read_text())["text"]
            (probs,) = rec.run(None, {"x": np.load(d / "x.npy")})
            got = ctc_greedy(probs[0], charset)
            strict += got == text
            exact += got.strip() == text
            if got != text:
                misreads.append({"id": d.name, "text": text, "read": got})
        n = len(list((out / "rec" / split).iterdir()))
        correct = 0
        for d in sorted((out / "cls" / split).iterdir()):
            label = json.loads((d / "expected.json").read_text())["label"]
            (p,) = cls.run(None, {"x": np.load(d / "x.npy")})
            correct += (0, 180)[int(p[0].argmax())] == label
        hit = total = 0
        for d in sorted((out / "det" / split).iterdir()):
            (prob,) = det.run(None, {"x": np.load(d / "x.npy")})
            mask = prob[0, 0] > DET_THRESH
            for line in json.loads((d / "expected.json").read_text())["lines"]:
                x0, y0, x1, y1 = line["box"]
                total += 1
                hit += mask[y0:y1, x0:x1].mean() > 0.3  # a line counts as found if 30% of its box is text
        summary[split] = {
            "rec_exact": exact / n,
            "rec_exact_untrimmed": strict / n,
            "rec_misreads": misreads,
            "cls_accuracy": correct / n,
            "det_line_recall": hit / total,
            "samples": n,
        }
        print(
            f"{split}: fp32 rec reads {exact}/{n} lines exactly ({strict}/{n} before trimming the spaces "
            f"it reads in the margins), cls right on {correct}/{n}, "
            f"det finds {hit}/{total} lines (prob > {DET_THRESH} on >= 30% of the line box)"
        )
        for m in misreads:
            if m["read"].strip() != m["text"]:
                print(f"  rec {split}/{m['id']}: {m['text']!r} read as {m['read']!r}")
    return summary


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    models, out = Path(sys.argv[1]), Path(sys.argv[2])
    charset = load_charset(models / REC_MODEL)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    build(tmp, charset)
    summary = check(models, tmp, charset)
    (tmp / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    if summary["verify"]["rec_exact"] < MIN_REC_EXACT:
        print(f"error: fp32 rec reads fewer than {MIN_REC_EXACT:.0%} of the verification lines", file=sys.stderr)
        return 1
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
