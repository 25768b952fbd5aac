"""The bare work of `gate check`, with none of its safety: the baseline gate's overhead is measured against.

One process, no inspection, no isolation, no cache: for each of MODELS, load
it, convert it to float32 and full-int8 .tflite, evaluate both on the whole eval
set (batched, as gate does), and time 200 single-sample invokes of each (after 20
warm-up) with pytest-benchmark, as gate does. Prints the same headline figures.

    python bench/bare_work.py [MODEL ...]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
# The bundled models whose published candidate is plain int8, so that the bare work and gate produce the same
# figures (the others need the search, which a script without isolation cannot survive: the CRNN's int8
# conversion kills the process).
MODELS = ("breast_cancer_mlp", "digits_cnn", "digits_mobilenetv2")


def main() -> int:
    start = time.perf_counter()
    import keras
    import numpy as np
    import tensorflow as tf

    from gate import measure
    from gate.load import Dataset
    from gate.methods import full_integer
    from gate.results import DataInfo, FileDigest

    for model_name in sys.argv[1:] or MODELS:
        folder = REPO / "models" / model_name
        model = keras.saving.load_model(folder / "model.keras", compile=False)
        name = model.inputs[0].name.split(":")[0]
        with np.load(folder / "eval.npz") as npz:
            x, y = npz["x"].astype(model.inputs[0].dtype), npz["y"]
        with np.load(folder / "train.npz") as npz:
            calibration = {name: npz["x"][:200].astype(model.inputs[0].dtype)}
        data = Dataset({name: x}, y, DataInfo(FileDigest("eval.npz", 0, ""), len(x)), folder / "eval.npz")
        with tempfile.TemporaryDirectory() as scratch:
            export = Path(scratch) / "export"
            archive = keras.export.ExportArchive()
            archive.track(model)
            archive.add_endpoint(
                "serving_default",
                lambda t: model(t, training=False),
                input_signature=[tf.TensorSpec((None, *model.inputs[0].shape[1:]), model.inputs[0].dtype, name=name)],
            )
            archive.write_out(str(export), verbose=False)
            paths = {"float32": Path(scratch) / "f.tflite", "int8": Path(scratch) / "q.tflite"}
            paths["float32"].write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(export)).convert())
            paths["int8"].write_bytes(full_integer(export, calibration, input_dtype="int8", output_dtype="int8"))
            accuracy = {
                k: measure.evaluate_tflite(p, data, "classification", threads=os.cpu_count() or 1).value
                for k, p in paths.items()
            }
            cases = [
                measure.latency_case(k, p, data, threads=1, rounds=200, warmup_rounds=20) for k, p in paths.items()
            ]
            latency = measure.measure_latency(cases, json_path=Path(scratch) / "bench.json", work_dir=Path(scratch))
        print(
            f"{folder.name:<20} accuracy {accuracy['float32']:.2f}% -> {accuracy['int8']:.2f}%, "
            f"p50 {latency['float32'].p50_ms * 1000:.1f} µs -> {latency['int8'].p50_ms * 1000:.1f} µs",
            file=sys.stderr,
        )
    print(f"{time.perf_counter() - start:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
