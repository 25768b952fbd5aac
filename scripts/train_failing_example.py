"""Build models/digits_outlier_mlp: a model that full-int8 PTQ honestly fails and selective or 16x8 recovers.

The cause is an outlier channel, as real networks have them (a few channels of
a layer's output with ranges far beyond the rest; cf. LLM.int8(), and the
per-channel range spread that cross-layer equalisation exists to remove).
Small models trained on scikit-learn data do not grow one, so it is made:

1. Train a plain 64-128-32-10 ReLU MLP on the digits (pixels scaled 0..1:
   every input feature has the same range, so this is not an input-scaling
   problem).
2. Pick the most active channel of the 32-wide "features" layer and multiply
   its incoming weights and bias by OUTLIER_FACTOR and its outgoing weights
   (the classifier's row) by 1 / OUTLIER_FACTOR. ReLU is positively
   homogeneous (relu(a x) = a relu(x) for a > 0), so the float model computes
   the same function (checked below), but that channel's activations are now
   about OUTLIER_FACTOR times those of the others.

int8 PTQ gives the "features" tensor one scale for all 32 channels; the
outlier channel sets it, and the other 31 channels, whose values are a small
fraction of one step, round to zero. Keeping the two ops on either side of
that tensor in float (or giving activations 16 bits) recovers the accuracy.
More calibration data does not help: the range is measured right, it is one
scale for channels that need different ones.

The optimizer state in model.keras is the one training left, for the weights
before the rescaling; it matters only to someone who resumes training.

Usage, from the repository root (under a minute on two cores):

    python scripts/train_failing_example.py [--out DIR]

It writes DIR/digits_outlier_mlp/ (DIR defaults to models/) and prints every
figure of the example: float, int8 PTQ, the ranking, 1-3 layers kept float, 16x8.
With method = "int8" the folder fails `gate check`, which is its point; its
gate.toml says method = "auto", under which the search recovers it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import keras  # noqa: E402 - after the log level, which TensorFlow reads on import
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from train_examples import MODELS_DIR, OUTPUT_FILES, SEED, Split, split, write_folder  # noqa: E402

NAME = "digits_outlier_mlp"
OUTLIER_FACTOR = 300.0
EPOCHS = 40
CALIBRATION_SAMPLES = 200  # what gate.toml asks for: the first 200 training samples


def digits_flat() -> Split:
    """The 8x8 digits as 64 features scaled from 0..16 to 0..1."""
    digits = load_digits()
    return split((digits.data / 16.0).astype(np.float32), digits.target)


def build() -> keras.Model:
    inputs = keras.Input((64,), name="pixels")
    x = keras.layers.Dense(128, activation="relu", name="hidden")(inputs)
    x = keras.layers.Dense(32, activation="relu", name="features")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=NAME)


def train(data: Split) -> tuple[keras.Model, float]:
    keras.utils.set_random_seed(SEED)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(data.x_train, data.y_train, epochs=EPOCHS, batch_size=32, verbose=0)
    return model, time.perf_counter() - start


def features_of(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return keras.Model(model.inputs, model.get_layer("features").output).predict(x, batch_size=256, verbose=0)


def make_outlier_channel(model: keras.Model, x_train: np.ndarray) -> int:
    """Scale one "features" channel up and the classifier's weights from it down; return the channel."""
    channel = int(np.argmax(features_of(model, x_train).mean(axis=0)))
    features, classifier = model.get_layer("features"), model.get_layer("classifier")
    kernel, bias = features.get_weights()
    kernel[:, channel] *= OUTLIER_FACTOR
    bias[channel] *= OUTLIER_FACTOR
    features.set_weights([kernel, bias])
    kernel, bias = classifier.get_weights()
    kernel[channel, :] /= OUTLIER_FACTOR
    classifier.set_weights([kernel, bias])
    return channel


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(model.predict(x, batch_size=256, verbose=0), axis=1) == y) * 100)


def tflite_accuracy(model: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of a .tflite over the whole eval set, inputs quantized as gate does (rounded, clipped)."""
    from ai_edge_litert.interpreter import Interpreter

    from gate.targets.litert import from_model_output, to_model_input
    from gate.tasks.classification import CLASSIFICATION

    runner = Interpreter(model_content=model, num_threads=1).get_signature_runner("serving_default")
    ((name, input_detail),) = runner.get_input_details().items()
    ((output, output_detail),) = runner.get_output_details().items()
    outputs = runner(**{name: to_model_input(x, input_detail)})[output]
    return CLASSIFICATION.score(from_model_output(outputs, output_detail), y)[0]


def io_of(model: bytes) -> str:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=model).get_signature_runner("serving_default")
    ((_, i),), ((_, o),) = runner.get_input_details().items(), runner.get_output_details().items()
    return f"{np.dtype(i['dtype']).name}/{np.dtype(o['dtype']).name}"


def report_ranges(model: keras.Model, x_train: np.ndarray, channel: int) -> None:
    """Why int8 fails: the per-channel ranges of the "features" tensor against one int8 step."""
    activations = features_of(model, x_train[:CALIBRATION_SAMPLES])
    highs = activations.max(axis=0)
    others = np.delete(activations, channel, axis=1)
    other_highs = np.delete(highs, channel)
    step = (highs.max() - 0.0) / 255  # ReLU output: min 0, so int8 covers [0, max] in 255 steps
    live = others[others > 0]
    print("\n  why: the 'features' tensor (32 channels, ReLU) on the calibration samples")
    print(f"    outlier channel {channel}: max {highs[channel]:.1f}")
    print(
        f"    other 31 channels: max of each from {other_highs[other_highs > 0].min():.2f} "
        f"to {other_highs.max():.2f} (median {np.median(other_highs):.2f}); "
        f"{int(np.sum(other_highs == 0))} never fire"
    )
    print(f"    one int8 step for the whole tensor: {step:.2f} (= max / 255)")
    print(
        f"    non-zero activations of the other channels that round to 0: "
        f"{np.mean(live < step / 2) * 100:.1f}% (median value {np.median(live):.2f})"
    )


def report_quantized(folder: Path, data: Split) -> None:
    """Every figure of the example, measured as gate measures: int8 PTQ, selective, 16x8."""
    from gate.frontends.keras import _load_keras3
    from gate.quantization.convert import convert, full_integer
    from gate.quantization.fallback import convert_selective
    from gate.quantization.int16x8 import convert_int16x8
    from gate.quantization.ranking import rank_layers

    keras_bytes = (folder / "model.keras").stat().st_size
    calibration = {"pixels": data.x_train[:CALIBRATION_SAMPLES]}
    with tempfile.TemporaryDirectory() as tmp:
        # Exported exactly as gate's worker exports a Keras 3 model.
        saved_model = _load_keras3(folder / "model.keras", Path(tmp) / "saved_model", fixed_batch=False).saved_model_dir
        float_tflite = convert(saved_model, method="float32").tflite
        rows = [("float32 .tflite", float_tflite)]

        def int8(samples: dict) -> bytes:
            return full_integer(saved_model, samples, input_dtype="int8", output_dtype="int8")

        rows.append(("int8 PTQ (200 calibration samples)", int8(calibration)))
        everything = {"pixels": data.x_train}
        rows.append((f"int8 PTQ ({len(data.x_train)} calibration samples)", int8(everything)))
        ranking = rank_layers(saved_model, calibration)
        for k in (1, 2, 3):
            kept = [layer.name for layer in ranking[:k]]
            rows.append(
                (
                    f"selective, {k} float: {', '.join(kept)}",
                    convert_selective(
                        saved_model, calibration, keep_float=kept, input_dtype="int8", output_dtype="int8"
                    ),
                )
            )
        for io_dtype in ("int8", "int16"):
            rows.append(
                (
                    f"16x8, {io_dtype} I/O",
                    convert_int16x8(saved_model, float_tflite, calibration, io_dtype=io_dtype),
                )
            )

    print("\n  ranking (rank_layers: each op alone in int8, model output noise/signal)")
    for layer in ranking:
        print(
            f"    {layer.name:<22} {layer.op:<16} error {layer.error:9.3g}  scale {layer.scale:8.4f}  "
            f"channel range ratio {layer.channel_range_ratio:6.1f}"
        )
    float_accuracy = tflite_accuracy(float_tflite, data.x_eval, data.y_eval)
    print(f"\n  {'candidate':<52} {'accuracy':>8} {'drop':>6} {'I/O':>13} {'bytes':>7} {'vs .keras':>9}")
    for label, model in rows:
        value = tflite_accuracy(model, data.x_eval, data.y_eval)
        print(
            f"  {label:<52} {value:8.2f} {float_accuracy - value:6.2f} {io_of(model):>13} {len(model):7d} "
            f"{keras_bytes / len(model):8.2f}x"
        )


def build_example(out_dir: Path) -> tuple[Path, Split, dict]:
    """Train, plant the outlier channel, write out_dir/NAME; return the folder, the data and build facts."""
    data = digits_flat()
    model, seconds = train(data)
    trained_accuracy = accuracy(model, data.x_eval, data.y_eval)
    before = model.predict(data.x_eval, batch_size=256, verbose=0)
    channel = make_outlier_channel(model, data.x_train)
    after = model.predict(data.x_eval, batch_size=256, verbose=0)
    folder = out_dir / NAME
    write_folder(folder, model, data, "default")
    facts = {
        "model": model,
        "seconds": seconds,
        "trained_accuracy": trained_accuracy,
        "channel": channel,
        "output_change": float(np.abs(after - before).max()),
        "changed_predictions": int(np.sum(after.argmax(1) != before.argmax(1))),
    }
    return folder, data, facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODELS_DIR, help="folder to write digits_outlier_mlp/ into")
    folder, data, facts = build_example(parser.parse_args().out)
    model, seconds, channel = facts["model"], facts["seconds"], facts["channel"]
    trained_accuracy = facts["trained_accuracy"]

    print(f"{NAME}")
    print(f"  parameters:       {model.count_params():,}; training {seconds:.1f} s ({EPOCHS} epochs)")
    print(
        f"  eval accuracy:    {trained_accuracy:.2f} as trained, {accuracy(model, data.x_eval, data.y_eval):.2f} "
        f"with the outlier channel ({len(data.y_eval)} samples)"
    )
    print(
        f"  same function:    max |output change| {facts['output_change']:.2e}, "
        f"predictions changed: {facts['changed_predictions']}"
    )
    report_ranges(model, data.x_train, channel)
    report_quantized(folder, data)
    total = 0
    print()
    for name in OUTPUT_FILES:
        if (folder / name).exists():
            size = (folder / name).stat().st_size
            total += size
            print(f"  {name:<12} {size / 1024:7.1f} KiB")
    print(f"  {'total':<12} {total / 1024:7.1f} KiB")


if __name__ == "__main__":
    main()
