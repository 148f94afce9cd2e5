"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/) from real inputs.

Run by scripts/fuzz.sh with the test-data venv (numpy). Seeds (`seed-*`) are rewritten when they change
and never committed; libFuzzer adds the inputs it finds beside them.
"""

import glob
import hashlib
import io
import json
import os
import struct
import sys
import wave

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
NODE_TESTS = os.path.join(ROOT, ".cache", "testdata", "onnx-node")


WRITTEN = set()


def put(target, name, data):
    """Writes one seed, atomically and only when it changed: runs of several targets at once
    (one `scripts/fuzz.sh` per target) each rewrite the seeds while the others read them."""
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "seed-" + name)
    WRITTEN.add(path)
    try:
        if open(path, "rb").read() == data:
            return
    except FileNotFoundError:
        pass
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def sections(pkg):
    """(name, kind, bytes) of each section of an .eqa package (docs/package-format.md)."""
    count = struct.unpack_from("<I", pkg, 12)[0]
    out = []
    for i in range(count):
        e = pkg[64 + 96 * i : 64 + 96 * (i + 1)]
        kind, _, off, length = struct.unpack_from("<IIQQ", e, 0)
        name = e[32:64].rstrip(b"\0").decode()
        out.append((name, kind, pkg[off : off + length]))
    return out


def package(secs):
    """An .eqa package of (name, kind, bytes) sections, laid out as PackageWriter lays them out."""
    align = lambda n: (n + 63) // 64 * 64
    table, offsets = b"", []
    pos = align(64 + 96 * len(secs))
    for name, kind, data in secs:
        table += struct.pack("<IIQQQ", kind, 0, pos, len(data), 0) + name.encode().ljust(32, b"\0")
        table += hashlib.sha256(data).digest()
        offsets.append(pos)
        pos = align(pos + len(data))
    out = bytearray(pos)
    head = b"EDGEQAPK" + struct.pack("<IIQQ", 1, len(secs), pos, 0)
    out[0:32] = head
    out[32:64] = hashlib.sha256(head + table).digest()
    out[64 : 64 + len(table)] = table
    for at, (_, _, data) in zip(offsets, secs):
        out[at : at + len(data)] = data
    return bytes(out)


def y4m(w, h, cs, frames, extra=""):
    sx, sy = {"420jpeg": (1, 1), "420": (1, 1), "422": (1, 0), "444": (0, 0), "mono": None}.get(cs, (1, 1)) or (0, 0)
    chroma = 0 if cs == "mono" else 2 * ((w + (1 << sx) - 1) >> sx) * ((h + (1 << sy) - 1) >> sy)
    out = f"YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C{cs}{extra}\n".encode()
    for k in range(frames):
        out += b"FRAME\n" if k % 2 == 0 else b"FRAME Ixyz\n"
        out += bytes((i * 7 + k * 31) % 256 for i in range(w * h + chroma))
    return out


def wav(rate, channels, width, frames):
    b = io.BytesIO()
    with wave.open(b, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes((i * 37) % 256 for i in range(frames * channels * width)))
    return b.getvalue()


def wav_float(rate, samples):
    data = np.asarray(samples, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def npy(a):
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def tflite(root):
    """A .tflite model: the FlatBuffer (identifier TFL3) of `root`, a table given as {field index:
    value}, a value being ("i8" | "i32" | "u32", n), a str, ("ints" | "longs" | "floats", [...]), a table or
    a list of tables. Laid out front to back, children after their parents."""
    buf = bytearray(b"\0\0\0\0TFL3")

    def pad():
        buf.extend(b"\0" * (-len(buf) % 4))

    def table(t):
        pad()
        n = max(t, default=-1) + 1
        vt = len(buf)
        buf.extend(struct.pack("<HH", 4 + 2 * n, 0) + b"\0" * (2 * n))
        pad()
        pos = len(buf)
        buf.extend(struct.pack("<i", pos - vt))
        later = []
        for i, v in t.items():
            struct.pack_into("<H", buf, vt + 4 + 2 * i, len(buf) - pos)
            if isinstance(v, tuple) and v[0] in ("i8", "i32", "u32"):
                buf.extend(struct.pack({"i8": "<b", "i32": "<i", "u32": "<I"}[v[0]], v[1]))
            else:
                later.append((len(buf), v))
                buf.extend(b"\0" * 4)
        struct.pack_into("<H", buf, vt + 2, len(buf) - pos)
        for slot, v in later:
            struct.pack_into("<I", buf, slot, child(v) - slot)
        return pos

    def child(v):
        if isinstance(v, dict):
            return table(v)
        pad()
        at = len(buf)
        if isinstance(v, str):
            buf.extend(struct.pack("<I", len(v.encode())) + v.encode() + b"\0")
        elif isinstance(v, list):
            buf.extend(struct.pack("<I", len(v)))
            first = len(buf)
            buf.extend(b"\0" * (4 * len(v)))
            for k, t in enumerate(v):
                struct.pack_into("<I", buf, first + 4 * k, table(t) - (first + 4 * k))
        else:
            kind, xs = v
            buf.extend(struct.pack("<I%d%s" % (len(xs), {"ints": "i", "longs": "q", "floats": "f"}[kind]), len(xs), *xs))
        return at

    struct.pack_into("<I", buf, 0, table(root))
    return bytes(buf)


def tflite_seeds():
    """Small TFLite models (the schema's field numbers: tensorflow/compiler/mlir/lite/schema)."""

    def tensor(name, shape, dtype, buffer=0, extra=()):
        return {0: ("ints", shape), 1: ("i8", dtype), 2: ("u32", buffer), 3: name, **dict(extra)}

    def op(opcode, inputs, outputs):
        return {0: ("u32", opcode), 1: ("ints", inputs), 2: ("ints", outputs)}

    def builtin(code, version=1):
        return {0: ("i8", min(code, 127)), 2: ("i32", version), 3: ("i32", code)}

    quant = {2: ("floats", [0.05]), 3: ("longs", [0])}
    # An ADD and a custom operator, with a signature (the unit tests' model).
    yield "add-custom.tflite", tflite({
        0: ("u32", 3),
        1: [builtin(0), {0: ("i8", 32), 1: "MyOp", 2: ("i32", 3)}],
        2: [{0: [tensor("input", [1, 4], 0, 0, [(7, ("ints", [-1, 4]))]), tensor("output", [1, 4], 9, 1, [(4, quant)])],
             1: ("ints", [0]), 2: ("ints", [1]),
             3: [op(0, [0, 0], [1]), op(1, [1], [1])], 4: "main"}],
        3: "edgeqa fuzz seed",
        7: [{0: [{0: "x", 1: ("u32", 0)}], 1: [{0: "y", 1: ("u32", 1)}], 2: "serving_default", 4: ("u32", 0)}],
    })
    # Quantized CONV_2D → RESHAPE → SOFTMAX, and an extended code (GELU, 150) in a second subgraph.
    tensors = [tensor("image", [1, 8, 8, 3], 9, 0, [(4, quant)]), tensor("w", [4, 3, 3, 3], 9, 1, [(4, quant)]),
               tensor("b", [4], 2, 2), tensor("conv", [1, 8, 8, 4], 9, 0, [(4, quant)]),
               tensor("flat", [1, 256], 9), tensor("probs", [1, 256], 9)]
    yield "conv-softmax.tflite", tflite({
        0: ("u32", 3),
        1: [builtin(3, 3), builtin(22), builtin(25, 2), builtin(150)],
        2: [{0: tensors, 1: ("ints", [0]), 2: ("ints", [5]),
             3: [op(0, [0, 1, 2], [3]), op(1, [3], [4]), op(2, [4], [5])]},
            {0: [tensor("a", [2], 0), tensor("g", [2], 0)], 1: ("ints", [0]), 2: ("ints", [1]),
             3: [op(3, [0], [1])], 4: "gelu"}],
    })
    # Only a version: no operator codes, no subgraphs.
    yield "empty.tflite", tflite({0: ("u32", 3)})


def main():
    if not os.path.isdir(NODE_TESTS):
        sys.exit("fuzz seeds: .cache/testdata/onnx-node is missing: run `bash scripts/fetch-test-data.sh`")

    demo = open(os.path.join(ROOT, "models", "demo", "demo.eqa"), "rb").read()
    put("package", "demo.eqa", demo)
    secs = sections(demo)
    manifest = secs[0][2]
    put("manifest", "demo.json", manifest)
    doc = open(os.path.join(ROOT, "docs", "package-format.md")).read()
    start = doc.index("```json\n") + len("```json\n")
    put("manifest", "doc-student.json", doc[start : doc.index("```", start)].encode())
    # A small generic package around the smallest node test, so most runs are cheap.
    tiny = open(os.path.join(NODE_TESTS, "test_relu", "model.onnx"), "rb").read()
    m = {
        "contract_version": 1, "producer": "fuzz seeds", "kind": "model", "name": "tiny",
        "stages": [{"name": "model", "section": "model",
                    "inputs": [{"name": "x", "dtype": "f32", "shape": [3, 4, 5]}],
                    "outputs": [{"name": "y", "dtype": "f32", "shape": [3, 4, 5]}]}],
        "labels": [], "quantization": {"scheme": "fp32"},
    }
    put("package", "tiny.eqa", package([("manifest", 1, json.dumps(m).encode()), ("model", 2, tiny)]))
    put("manifest", "tiny.json", json.dumps(m).encode())

    graphs = [(n, d) for n, k, d in secs if k == 2]
    for path in sorted(glob.glob(os.path.join(NODE_TESTS, "*", "model.onnx"))):
        data = open(path, "rb").read()
        if len(data) <= 2048:
            graphs.append((os.path.basename(os.path.dirname(path)) + ".onnx", data))
    for name, data in graphs:
        put("graph_wgpu", name, data)
        put("graph_tract", name, data)

    for clip in sorted(glob.glob(os.path.join(ROOT, "models", "demo", "eval", "*.y4m")))[:1]:
        put("y4m", os.path.basename(clip), open(clip, "rb").read())
    for cs in ["420jpeg", "420", "422", "444", "mono"]:
        put("y4m", f"{cs}.y4m", y4m(5, 3, cs, 3))
    put("y4m", "full.y4m", y4m(4, 2, "420jpeg", 2, " XCOLORRANGE=FULL"))

    # MJPEG frames as webcams send them: a demo frame at several qualities and subsamplings,
    # grey, and one without its Huffman tables (DHT segments removed).
    from PIL import Image

    clip = open(os.path.join(ROOT, "models", "demo", "eval", "clip_000.y4m"), "rb").read()
    header, _, rest = clip.partition(b"\n")
    dims = dict((t[:1], t[1:]) for t in header.split(b" ")[1:])
    w, h = int(dims[b"W"]), int(dims[b"H"])
    luma = rest[len(b"FRAME\n") : len(b"FRAME\n") + w * h]
    grey = Image.frombytes("L", (w, h), luma)
    rgb = Image.merge("RGB", (grey, grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT), grey.rotate(90)))
    for quality, sub in ((90, 1), (50, 2), (20, 0)):
        b = io.BytesIO()
        rgb.save(b, "JPEG", quality=quality, subsampling=sub)
        put("mjpeg", f"q{quality}-s{sub}.jpg", b.getvalue())
    b = io.BytesIO()
    grey.save(b, "JPEG", quality=75)
    put("mjpeg", "grey.jpg", b.getvalue())
    jpg = io.BytesIO()
    rgb.save(jpg, "JPEG", quality=80)
    data, out, i = jpg.getvalue(), bytearray(jpg.getvalue()[:2]), 2
    while i + 4 <= len(data) and data[i] == 0xFF and data[i + 1] != 0xDA:
        n = 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
        if data[i + 1] != 0xC4:
            out += data[i : i + n]
        i += n
    put("mjpeg", "no-huffman-tables.jpg", bytes(out + data[i:]))

    for clip in sorted(glob.glob(os.path.join(ROOT, "models", "demo", "eval", "*.wav")))[:1]:
        put("wav", os.path.basename(clip), open(clip, "rb").read())
    for width in [1, 2, 3, 4]:
        for channels in [1, 2]:
            put("wav", f"pcm{8 * width}-{channels}ch.wav", wav(16000, channels, width, 40))
    put("wav", "float.wav", wav_float(16000, [0.0, 0.5, -0.5, 1.0, -1.0, 0.25]))

    for dtype in ["<f4", "<i8", "<i4", "|u1", "|i1", "|b1"]:
        put("npy", dtype.strip("<|") + ".npy", npy(np.arange(12).reshape(3, 4).astype(dtype)))
    put("npy", "scalar.npy", npy(np.float32(1.5)))
    put("npy", "fortran.npy", npy(np.asfortranarray(np.ones((2, 3), dtype="<f4"))))
    put("npy", "f8.npy", npy(np.ones(3)))

    for board in sorted(glob.glob(os.path.join(ROOT, "firmware-config", "boards", "*.toml"))):
        put("board", os.path.basename(board), open(board, "rb").read())

    for name, data in tflite_seeds():
        put("tflite", name, data)
    # Real models fetched by scripts/fetch-test-data.sh, when small enough to mutate quickly.
    for model in sorted(glob.glob(os.path.join(ROOT, ".cache", "testdata", "tflite", "models", "*.tflite"))):
        if os.path.getsize(model) <= 1 << 20:
            put("tflite", os.path.basename(model), open(model, "rb").read())

    # Seeds no longer written go; inputs that earlier runs added to the corpora stay.
    for old in glob.glob(os.path.join(CORPUS, "*", "seed-*")):
        if old not in WRITTEN and not old.endswith(".tmp"):
            try:
                os.remove(old)
            except FileNotFoundError:
                pass

    for t in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, t))
        seeds = sum(f.startswith("seed-") for f in files)
        print(f"fuzz seeds: {t}: {seeds} seeds, {len(files)} inputs in the corpus")


if __name__ == "__main__":
    main()
