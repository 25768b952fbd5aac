"""The bare work of `gate check`, with none of its safety: the baseline gate's overhead is measured against.

One process, no inspection, no isolation, no cache, no report: for each of
MODELS, load it, convert it to float32 and full-int8 .tflite, evaluate the Keras
model and both files on the whole eval set (batched, as gate does), and time 200
single-sample invokes of each file (after 20 warm-up) with pytest-benchmark, as
gate does. Unless `--convert-only`, it also computes the other figures gate's
report shows for these models: the 95 % interval of the int8 change (seeded
paired bootstrap) and, when int8 lost accuracy, the layer ranking. Prints the
figures, then the wall time in seconds.

    python bench/bare_work.py [--convert-only] [MODEL or MODEL_FOLDER ...]

A MODEL is a folder of models/, or a path to a model folder elsewhere (bench/realistic.py builds its own).

`--convert-only` is the list issue 11 started from (convert, evaluate the two
files, time them), before the report gained the interval and the ranking.
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

    from gate.frontends.base import Dataset
    from gate.measurement.stats import change_interval
    from gate.quantization.convert import full_integer
    from gate.quantization.ranking import rank_layers
    from gate.results import DataInfo, FileDigest
    from gate.targets.latency import measure_latency
    from gate.targets.litert import evaluate_float, evaluate_tflite, latency_case
    from gate.tasks.classification import CLASSIFICATION

    convert_only = "--convert-only" in sys.argv[1:]
    for model_name in [arg for arg in sys.argv[1:] if arg != "--convert-only"] or MODELS:
        folder = Path(model_name) if Path(model_name).is_dir() else REPO / "models" / model_name
        model = keras.saving.load_model(folder / "model.keras", compile=False)
        name = model.inputs[0].name.split(":")[0]
        with np.load(folder / "eval.npz") as npz:
            x, y = npz["x"].astype(model.inputs[0].dtype), npz["y"]
        with np.load(folder / ("calib.npz" if (folder / "calib.npz").exists() else "train.npz")) as npz:  # as gate
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
            evaluation = {
                k: evaluate_tflite(p, data, "classification", threads=os.cpu_count() or 1) for k, p in paths.items()
            }
            cases = [latency_case(k, p, data, threads=1, rounds=200, warmup_rounds=20) for k, p in paths.items()]
            latency = measure_latency(cases, json_path=Path(scratch) / "bench.json", work_dir=Path(scratch))
            figures = ""
            if not convert_only:
                keras_model = evaluate_float(
                    lambda inputs: np.asarray(model(inputs[name], training=False)), data, "classification"
                )
                interval = change_interval(keras_model.per_sample, evaluation["int8"].per_sample, CLASSIFICATION)
                figures = f", Keras {keras_model.value:.2f}%, int8 change [{interval.low:.2f}, {interval.high:.2f}]"
                if evaluation["int8"].value < keras_model.value:
                    worst = rank_layers(export, calibration)[0]
                    figures += f", worst layer {worst.name} ({worst.error:.3g})"
        print(
            f"{folder.name:<20} accuracy {evaluation['float32'].value:.2f}% -> {evaluation['int8'].value:.2f}%, "
            f"p50 {latency['float32'].p50_ms * 1000:.1f} µs -> {latency['int8'].p50_ms * 1000:.1f} µs{figures}",
            file=sys.stderr,
        )
    print(f"{time.perf_counter() - start:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
