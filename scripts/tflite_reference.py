#!/usr/bin/env python3
"""Writes LiteRT (TF Lite) reference outputs for the test models fetched by scripts/fetch-tflite.sh.

    tflite_reference.py MANIFEST OUT_DIR STAMP

MANIFEST is a TSV (name, file, sha256, package, version, member), one model a line, `file`
relative to the repository root (the working directory). For every model this runs the LiteRT
Python interpreter (ai_edge_litert 2.1.4) on deterministic inputs and writes

    OUT_DIR/<name>/in<k>.npy, out<k>.npy   in the interpreter's input / output detail order
    OUT_DIR/index.json                     what was written, per model (see below)

Inputs: numpy's PCG64 seeded with crc32(name); float inputs uniform in [-1, 1); 8/16-bit integer
inputs over their whole range; 32/64-bit integer inputs in [0, 256); bool inputs 0/1. A model
listed in RESIZE below gets its (dynamic) inputs resized first.

References come from TF Lite's own builtin kernels (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
one thread), not XNNPACK: XNNPACK rounds differently and even runs some MediaPipe custom ops
(Convolution2DTransposeBias). Each model's entry also has `xnnpack_max_abs_diff` (per output, the
largest |XNNPACK - builtin|, null where XNNPACK fails): a measured tolerance hint.

A model that cannot be allocated or run gets no .npy files; its entry has `error` (the
interpreter's message) and, for an unresolved custom op, `custom_op` (the op named in the message,
else the first custom op in the model) and `custom_ops` (all custom ops the model uses).

The whole OUT_DIR is written as OUT_DIR.tmp and renamed at the end, so a failed run leaves none
half-written; STAMP is stored in index.json for scripts/fetch-tflite.sh to tell whether to rerun.
"""
import csv
import json
import os
import re
import shutil
import sys
import zlib

import ai_edge_litert
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType

# Input shapes (by input index) for models whose inputs are dynamic: openWakeWord's melspectrogram
# takes [batch, samples]; 1760 samples (its 1280-sample frame + 480 of context) give 8 mel frames.
RESIZE = {"oww_melspectrogram": {0: [1, 1760]}}

BUILTIN = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
XNNPACK = OpResolverType.AUTO  # the Python default: builtin kernels + the XNNPACK delegate

BUILTIN_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def model_ops(path):
    """Sorted names of the operators a model uses: builtin names, or custom codes for CUSTOM."""
    with open(path, "rb") as f:
        model = schema.ModelT.InitFromPackedBuf(f.read(), 0)
    ops, custom = set(), []
    for code in model.operatorCodes or []:
        # builtinCode supersedes deprecatedBuiltinCode (an int8 kept for old models).
        op = max(code.builtinCode, code.deprecatedBuiltinCode)
        if op == schema.BuiltinOperator.CUSTOM:
            name = code.customCode.decode()
            custom.append(name)
            ops.add(name)
        else:
            ops.add(BUILTIN_NAMES.get(op, f"BUILTIN_{op}"))
    return sorted(ops), custom


def make_input(rng, shape, dtype):
    """Deterministic input of the given shape and numpy dtype, and the [lo, hi) range drawn from."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-1.0, 1.0, size=shape).astype(dtype), [-1.0, 1.0]
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype), [0, 2]
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = (int(info.min), int(info.max) + 1) if dtype.itemsize <= 2 else (0, 256)
        return rng.integers(lo, hi, size=shape, dtype=np.int64).astype(dtype), [lo, hi]
    raise ValueError(f"unsupported input dtype {dtype}")


def interpreter(path, resolver, resize):
    it = Interpreter(model_path=path, experimental_op_resolver_type=resolver, num_threads=1)
    for index, shape in resize.items():
        it.resize_tensor_input(it.get_input_details()[index]["index"], shape, strict=False)
    it.allocate_tensors()
    return it


def run(it, inputs):
    for detail, x in zip(it.get_input_details(), inputs):
        it.set_tensor(detail["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def custom_op_entry(message, custom):
    m = re.search(r"custom op:? '?([A-Za-z0-9_]+)", message)
    entry = {"custom_ops": custom}
    if m or custom:
        entry["custom_op"] = m.group(1) if m else custom[0]
    return entry


def reference(row, out_dir, tmp_dir):
    name, path = row["name"], row["file"]
    entry = {
        "model": name,
        "file": path,
        "sha256": row["sha256"],
        "source": {"package": row["package"], "version": row["version"], "path": row["member"]},
    }
    ops, custom = model_ops(path)
    entry["ops"] = ops
    resize = RESIZE.get(name, {})
    try:
        it = interpreter(path, BUILTIN, resize)
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        inputs, ranges = [], []
        for d in it.get_input_details():
            x, r = make_input(rng, tuple(int(n) for n in d["shape"]), d["dtype"])
            inputs.append(x)
            ranges.append(r)
        outputs = run(it, inputs)
    except Exception as e:  # allocate / invoke failed: record what the interpreter said
        entry["error"] = str(e).strip()
        if custom:
            entry.update(custom_op_entry(entry["error"], custom))
        print(f"tflite_reference: {name}: {entry['error'].splitlines()[0]}", file=sys.stderr)
        return entry

    os.makedirs(os.path.join(tmp_dir, name))

    def tensors(kind, details, arrays, extra=None):
        listed = []
        for k, (d, a) in enumerate(zip(details, arrays)):
            np.save(os.path.join(tmp_dir, name, f"{kind}{k}.npy"), a)
            listed.append({
                "name": d["name"],
                "shape": list(a.shape),
                "dtype": a.dtype.name,
                "file": os.path.join(out_dir, name, f"{kind}{k}.npy"),
                **({"range": extra[k]} if extra else {}),
            })
        return listed

    entry["inputs"] = tensors("in", it.get_input_details(), inputs, ranges)
    entry["outputs"] = tensors("out", it.get_output_details(), outputs)
    try:
        fast = run(interpreter(path, XNNPACK, resize), inputs)
        entry["xnnpack_max_abs_diff"] = [
            float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))
            for a, b in zip(fast, outputs)
        ]
    except Exception:
        entry["xnnpack_max_abs_diff"] = None
    return entry


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    manifest, out_dir, stamp = sys.argv[1:]
    out_dir = os.path.normpath(out_dir)
    tmp_dir = out_dir + ".tmp"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    os.makedirs(tmp_dir)
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    index = {
        "generator": "scripts/tflite_reference.py",
        "stamp": stamp,
        "ai_edge_litert": ai_edge_litert.__version__,
        "numpy": np.__version__,
        "op_resolver": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
        "num_threads": 1,
        "models": [reference(row, out_dir, tmp_dir) for row in rows],
    }
    text = json.dumps(index, indent=2)
    # One line for each list of numbers (shapes, ranges, diffs).
    text = re.sub(r"\[\s+([-+.\deE,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    with open(os.path.join(tmp_dir, "index.json"), "w") as f:
        f.write(text + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.rename(tmp_dir, out_dir)


if __name__ == "__main__":
    main()
