"""Float fallback's tries: spliced (gate.quantization.splice.KeptFloat) against the quantizer's, try by try.

For each model and model I/O (int8, float32), builds the int8 model with the ranking's first 1 to 6 layers
float both ways, TensorFlow's MLIR quantizer with those layers denylisted and `KeptFloat.with_float`, runs
both on the first 64 calibration samples and prints how many are identical, how many differ, how many were
not spliced (left to the quantizer), and the last try's time each way. Models as bench/ranking_splice.py
takes them (the bundled ones by default; `resnet50_128` is issue 26's ResNet50, minutes).

    python bench/fallback_splice.py [MODEL ...]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

import numpy as np  # noqa: E402
from ranking_splice import BUNDLED, load  # noqa: E402

TRIES = 6


def main() -> None:
    from ai_edge_litert.interpreter import Interpreter

    from gate.quantization.convert import calibrated_model, mlir_quantize
    from gate.quantization.ranking import _run, every_op_float, rank_layers
    from gate.quantization.splice import KeptFloat

    print(f"{'model':<20} {'I/O':<8} {'same':>5} {'differ':>7} {'not spliced':>12} {'quantizer s':>12} {'splice s':>9}")
    for name in sys.argv[1:] or BUNDLED:
        with tempfile.TemporaryDirectory() as tmp:
            saved_model, calibration = load(name, Path(tmp))
            calibrated = calibrated_model(saved_model, calibration)
            ranked = rank_layers(saved_model, calibration)
            (input_name, x), *_ = calibration.items()
            for io in ("int8", "float32"):
                int8 = mlir_quantize(calibrated, denylist=[], input_dtype=io, output_dtype=io)
                tries = KeptFloat(int8, every_op_float(saved_model, calibration))
                probe = x[:64]
                if io == "int8":
                    scale, zero_point = Interpreter(model_content=int8).get_input_details()[0]["quantization"]
                    probe = np.clip(np.round(probe / scale + zero_point), -128, 127).astype(np.int8)
                same = differ = not_spliced = 0
                splice_seconds = quantizer_seconds = 0.0
                for count in range(1, min(TRIES, len(ranked)) + 1):
                    layers = [layer.tensor for layer in ranked[:count]]
                    start = time.perf_counter()
                    spliced = tries.with_float(layers)
                    splice_seconds = time.perf_counter() - start
                    start = time.perf_counter()
                    by_quantizer = mlir_quantize(calibrated, denylist=layers, input_dtype=io, output_dtype=io)
                    quantizer_seconds = time.perf_counter() - start
                    if spliced is None:
                        not_spliced += 1
                        continue
                    ours, theirs = _run(spliced, {input_name: probe})[0], _run(by_quantizer, {input_name: probe})[0]
                    identical = all(np.array_equal(ours[key], theirs[key]) for key in theirs)
                    same, differ = same + identical, differ + (not identical)
                print(
                    f"{name:<20} {io:<8} {same:>5} {differ:>7} {not_spliced:>12} {quantizer_seconds:>12.2f} "
                    f"{splice_seconds:>9.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
