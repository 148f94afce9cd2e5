"""Writes ONNX Runtime reference outputs for tests/real_models.rs.

Usage: make_reference.py MODELS_DIR REFERENCE_DIR

For each model below: a deterministic float32 input (np.random.default_rng(0), uniform in [-1, 1])
of a fixed shape is run through ONNX Runtime (CPUExecutionProvider, 1 thread, default graph
optimisations); REFERENCE_DIR/<model>/input.npy and output.npy (the first output) are written.
Run by scripts/fetch-test-data.sh inside .cache/venv.
"""

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

# model file stem -> input shape (NCHW)
SHAPES = {
    "ch_PP-OCRv4_det_infer": (1, 3, 320, 320),
    "ch_ppocr_mobile_v2.0_cls_infer": (1, 3, 48, 192),
    "ch_PP-OCRv4_rec_infer": (1, 3, 48, 320),
}


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    models, reference = Path(sys.argv[1]), Path(sys.argv[2])
    for stem, shape in SHAPES.items():
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(
            str(models / f"{stem}.onnx"), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        inp = sess.get_inputs()[0]
        out = sess.get_outputs()[0]
        x = np.random.default_rng(0).uniform(-1.0, 1.0, size=shape).astype(np.float32)
        (y,) = sess.run([out.name], {inp.name: x})
        dest = reference / stem
        dest.mkdir(parents=True, exist_ok=True)
        np.save(dest / "input.npy", x)
        np.save(dest / "output.npy", np.ascontiguousarray(y, dtype=np.float32))
        print(f"{stem}: input {inp.name} {list(x.shape)} (declared {inp.shape}) -> output {out.name} {list(y.shape)}")
    print(f"onnxruntime {ort.__version__}, numpy {np.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
