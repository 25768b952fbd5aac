"""Selective and 16x8 quantization: litert-quantizer, QuantizationDebugger and TFLiteConverter, measured.

One run prints every figure behind gate.quantization's choice of tools, on
the failing example (scripts/train_failing_example.py, built in a temporary
folder) and, for robustness, on a small model with less common ops and on the
bundled digits_mobilenetv2:

  (a) per-layer ranking: the order each method gives, its cost, and how many
      layers kept float (in that order) bring int8 within 2 points;
  (b) keeping layers float with int8 model I/O: accuracy, I/O dtypes, the
      ops that touch float, size, time, determinism, per tool;
  (c) 16x8 and its I/O types, per tool;
  (d) accuracy per number of layers kept float;
  (e) wall time of each step; (f) byte-identical output on a second run;
  (g) what breaks: unsupported ops, uint8 I/O, an output op kept float.

Every accuracy is over the whole eval set, inputs quantized as gate does
(rounded and clipped). About two minutes on two cores:

    python bench/selective_quantization.py [--skip-mobilenet]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")  # tf.lite.Interpreter's deprecation notice, inside the QuantizationDebugger

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from gate.frontends.keras import _load_keras3  # noqa: E402
from gate.quantization.convert import (  # noqa: E402
    _CALIBRATED,
    calibrated_model,
    convert,
    mlir_quantize,
    representative_dataset,
)
from gate.quantization.fallback import convert_selective  # noqa: E402
from gate.quantization.int16x8 import _litert_ranges, convert_int16x8  # noqa: E402
from gate.quantization.ranking import _run, rank_layers  # noqa: E402
from gate.targets.litert import from_model_output, to_model_input  # noqa: E402
from gate.tasks.classification import CLASSIFICATION  # noqa: E402

MAX_DROP = 2.0  # the default policy's accuracy.max_drop


# ---------------------------------------------------------------- measuring a .tflite


def accuracy(model: bytes, x: Mapping[str, np.ndarray], y: np.ndarray) -> float:
    runner = Interpreter(model_content=bytes(model), num_threads=1).get_signature_runner("serving_default")
    ((output, output_detail),) = runner.get_output_details().items()
    inputs = {name: to_model_input(x[name], detail) for name, detail in runner.get_input_details().items()}
    return CLASSIFICATION.score(from_model_output(runner(**inputs)[output], output_detail), y)[0]


def io_dtypes(model: bytes) -> str:
    runner = Interpreter(model_content=bytes(model)).get_signature_runner("serving_default")
    dtypes = [
        np.dtype(d["dtype"]).name for d in (*runner.get_input_details().values(), *runner.get_output_details().values())
    ]
    return f"{dtypes[0]}/{dtypes[-1]}"


def float_ops(model: bytes) -> str:
    """The ops that read or write a float tensor, as gate's report lists them."""
    interpreter = Interpreter(model_content=bytes(model))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    counts: dict[str, int] = {}
    for op in interpreter._get_ops_details():
        if any(i >= 0 and np.dtype(tensors[i]["dtype"]).kind == "f" for i in (*op["inputs"], *op["outputs"])):
            counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return ", ".join(f"{name} x{n}" for name, n in sorted(counts.items())) or "none"


def timed(make: Callable[[], bytes]) -> tuple[bytes, float, bool]:
    """The model, the seconds to make it, and whether a second run gives the same bytes."""
    start = time.perf_counter()
    first = make()
    seconds = time.perf_counter() - start
    return bytes(first), seconds, bytes(make()) == bytes(first)


def quiet() -> contextlib.AbstractContextManager:
    """litert-quantizer draws tqdm bars on stderr; the converter prints its flags on stdout."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


# ---------------------------------------------------------------- the tools


def tf_converter(saved_model: Path, calibration: Mapping[str, np.ndarray], ops, io_dtype=tf.int8, **flags):
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["serving_default"])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: representative_dataset(calibration)
    converter.target_spec.supported_ops = [ops]
    converter.inference_input_type = io_dtype
    converter.inference_output_type = io_dtype
    for key, value in flags.items():
        setattr(converter, key, value)
    return converter


def debugger(saved_model: Path, calibration: Mapping[str, np.ndarray], **options):
    """A QuantizationDebugger on gate's int8 converter; it feeds inputs by position, so one input only."""
    (array,) = calibration.values()
    converter = tf_converter(saved_model, calibration, tf.lite.OpsSet.TFLITE_BUILTINS_INT8)
    return tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=lambda: ([array[i : i + 1]] for i in range(len(array))),
        debug_options=tf.lite.experimental.QuantizationDebugOptions(**options),
    )


def litert(float_tflite: bytes, calibration: Mapping[str, np.ndarray], rules, *, per_sample: bool = False) -> bytes:
    """litert-quantizer with recipe `rules` (RecipeManager calls), calibrated on min/max of all samples."""
    from litert_quantizer import Quantizer
    from litert_quantizer.recipe_manager import RecipeManager

    recipe = RecipeManager()
    rules(recipe)
    with quiet():
        quantizer = Quantizer(float_tflite, recipe.get_quantization_recipe())
        if per_sample:  # litert-quantizer's own way: a moving average of each sample's min/max
            (name,) = calibration
            steps = [{name: calibration[name][i : i + 1]} for i in range(len(calibration[name]))]
            ranges = quantizer.calibrate({"serving_default": steps}, num_threads=1)
        else:
            ranges = _litert_ranges(quantizer, float_tflite, calibration)
        return bytes(quantizer.quantize(ranges, enable_progress_report=False).quantized_model)


def lq_static(bits: int, keep_float=(), keep16=(), io_bits: int | None = None, op_specific: bool = True):
    """A recipe: static `bits`-bit activations everywhere, some ops float or 16-bit, optionally 8-bit I/O."""
    from litert_quantizer import qtyping

    names = qtyping.TFLOperationName

    def rules(recipe) -> None:
        recipe.add_static_config(".*", names.ALL_SUPPORTED, bits, 8)
        if io_bits:
            recipe.add_static_config(".*", names.INPUT, io_bits, 8)
            recipe.add_static_config(".*", names.OUTPUT, io_bits, 8)
        for op, tensor in keep_float:
            # A rule for every op (ALL_SUPPORTED) also matches the virtual OUTPUT op that reads the
            # tensor when it is a model output, and the model output turns float32; name the op's type.
            operation = getattr(names, op) if op_specific else names.ALL_SUPPORTED
            recipe.add_quantization_config(f"^{re.escape(tensor)};$", operation, None, "no_quantize")
        for op, tensor in keep16:
            recipe.add_static_config(f"^{re.escape(tensor)};$", getattr(names, op), 16, 8)

    return rules


# ---------------------------------------------------------------- rankings


def rank_debugger(saved_model: Path, calibration) -> list[str]:
    """The TF guide's metric: sqrt(mean_squared_error) / scale, highest first."""
    with quiet():
        run = debugger(saved_model, calibration)
        run.run()
    dump = io.StringIO()
    run.layer_statistics_dump(dump)
    rows = list(csv.DictReader(io.StringIO(dump.getvalue())))
    rows.sort(key=lambda r: -np.sqrt(float(r["mean_squared_error"])) / float(r["scale"]))
    return [r["tensor_name"] for r in rows]


def rank_litert_snr(float_tflite: bytes, int8: bytes, calibration) -> list[str]:
    """litert-quantizer's validate(): per-tensor SNR of the full-int8 model against the float one, lowest first."""
    from litert_quantizer import Quantizer
    from litert_quantizer.utils.validation_utils import ValidationErrorMetric

    with quiet():
        quantizer = Quantizer(float_tflite, previous_quantized_model=int8)
        result = quantizer.validate(
            {"serving_default": [dict(calibration)]}, [ValidationErrorMetric.SNR], num_threads=1
        )
    tensors = result.get_signature_comparison_result("serving_default").intermediate_tensors
    tensors |= result.get_signature_comparison_result("serving_default").output_tensors
    return sorted(tensors, key=lambda name: tensors[name]["snr"])


def rank_revert_one(saved_model: Path, calibration, candidates: list[str]) -> list[str]:
    """NNCF / Neural Compressor style: full int8 with one op float; the op whose revert leaves the least error first."""
    calibrated = calibrated_model(saved_model, calibration)
    reference = mlir_quantize(calibrated, denylist=candidates, input_dtype="float32", output_dtype="float32")
    expected = np.concatenate(list(_run(reference, calibration)[0].values()), axis=1)
    errors = {}
    for tensor in candidates:
        model = mlir_quantize(calibrated, denylist=[tensor], input_dtype="float32", output_dtype="float32")
        outputs = np.concatenate(list(_run(model, calibration)[0].values()), axis=1)
        errors[tensor] = float(np.sum((outputs - expected) ** 2))
    return sorted(candidates, key=lambda t: errors[t])


# ---------------------------------------------------------------- the report


def say(*parts: object) -> None:
    print(*parts, flush=True)


def mute_native_output() -> None:
    """TensorFlow's quantizer prints its flags from C++ for every call: send file descriptors 1 and 2
    to /dev/null, and Python's sys.stdout and sys.stderr (figures, tracebacks) to copies of them."""
    sys.stdout.flush()
    sys.stderr.flush()
    sys.stdout = os.fdopen(os.dup(1), "w")
    sys.stderr = os.fdopen(os.dup(2), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def table(title: str, header: tuple[str, ...], rows: list[tuple]) -> None:
    say(f"\n{title}")
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        say("  " + "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())


def fmt(value: float) -> str:
    return f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-mobilenet", action="store_true", help="skip the ranking cost on digits_mobilenetv2")
    args = parser.parse_args()
    mute_native_output()
    started = time.perf_counter()
    import train_failing_example as example

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with contextlib.redirect_stdout(io.StringIO()):
            folder, data, _facts = example.build_example(tmp)
        saved_model = _load_keras3(folder / "model.keras", tmp / "saved_model", fixed_batch=False).saved_model_dir
        calibration = {"pixels": data.x_train[: example.CALIBRATION_SAMPLES]}
        x_eval, y_eval = {"pixels": data.x_eval}, data.y_eval
        float_tflite = convert(saved_model, method="float32")
        int8 = convert(saved_model, method="int8", calibration=calibration)
        keras_bytes = (folder / "model.keras").stat().st_size
        float_accuracy = accuracy(float_tflite, x_eval, y_eval)
        say(
            f"{example.NAME}: float .tflite {fmt(float_accuracy)} %, int8 PTQ {fmt(accuracy(int8, x_eval, y_eval))} % "
            f"on {len(y_eval)} eval samples; {example.CALIBRATION_SAMPLES} calibration samples"
        )

        layers = rank_layers(saved_model, calibration)
        short = {layer.tensor: layer.name for layer in layers}
        op_of = {layer.tensor: layer.op for layer in layers}

        def name(tensor: str) -> str:
            return short.get(tensor, tensor)

        def known(tensor: str) -> str:
            # layer_statistics_dump drops a trailing digit of every tensor name ("StatefulPartitionedCall:")
            return tensor if tensor in short else next((t for t in short if t[:-1] == tensor), tensor)

        def selective_accuracy(tensors: list[str]) -> float:
            model = convert_selective(
                saved_model, calibration, keep_float=tensors, input_dtype="int8", output_dtype="int8"
            )
            return accuracy(model, x_eval, y_eval)

        # (a) + (d): rankings, their cost, accuracy with the top k kept float (TF's quantizer, int8 I/O)
        rankings: list[tuple[str, Callable[[], list[str]]]] = [
            ("QuantizationDebugger RMSE/scale (TF guide)", lambda: rank_debugger(saved_model, calibration)),
            (
                "litert-quantizer validate() SNR, lowest first",
                lambda: rank_litert_snr(float_tflite, litert(float_tflite, calibration, lq_static(8)), calibration),
            ),
            (
                "revert one (NNCF/INC): int8 + this op float",
                lambda: rank_revert_one(saved_model, calibration, list(short)),
            ),
            (
                "quantize alone (gate.quantization.ranking.rank_layers)",
                lambda: [layer.tensor for layer in rank_layers(saved_model, calibration)],
            ),
        ]
        uncached = {2, 3}  # time the calibration the last two make, as the debugger's time includes its own
        rows = []
        for index, (label, rank) in enumerate(rankings):
            if index in uncached:
                _CALIBRATED.clear()
            start = time.perf_counter()
            order = [known(t) for t in rank() if known(t) in short]  # ranked ops only (not the input tensor)
            seconds = time.perf_counter() - start
            per_k = [selective_accuracy(order[:k]) for k in (1, 2, 3)]
            needed = next(
                (k for k in range(len(order) + 1) if float_accuracy - selective_accuracy(order[:k]) <= MAX_DROP), None
            )
            kept = convert_selective(
                saved_model, calibration, keep_float=order[:needed], input_dtype="int8", output_dtype="int8"
            )
            ratio = f"{keras_bytes / len(kept):.1f}x"  # the default policy asks >= 4x
            rows.append((label, " > ".join(name(t) for t in order), f"{seconds:.2f}", *map(fmt, per_k), needed, ratio))
        table(
            "(a, d) ranking: order, seconds (calibration included), accuracy with the first k ops float "
            "(int8 I/O), k needed for <= 2 pts",
            ("method", "order", "s", "k=1", "k=2", "k=3", "k needed", "its size vs .keras"),
            rows,
        )

        # (b) keeping {features, classifier} float, per tool
        pair = [layers[0].tensor, layers[1].tensor]
        pair_ops = [(op_of[t], t) for t in pair]
        softmax = next(layer for layer in layers if layer.op == "SOFTMAX")
        calibrated = calibrated_model(saved_model, calibration)
        cases: list[tuple[str, Callable[[], bytes]]] = [
            (
                "TF MLIR quantizer + denylisted_nodes (gate.quantization.fallback), int8 I/O",
                lambda: convert_selective(
                    saved_model, calibration, keep_float=pair, input_dtype="int8", output_dtype="int8"
                ),
            ),
            (
                "  same, uint8 I/O",
                lambda: convert_selective(
                    saved_model, calibration, keep_float=pair, input_dtype="uint8", output_dtype="uint8"
                ),
            ),
            (
                "  same, float32 I/O",
                lambda: convert_selective(
                    saved_model, calibration, keep_float=pair, input_dtype="float32", output_dtype="float32"
                ),
            ),
            (
                "  same, output op (SOFTMAX) float too",
                lambda: convert_selective(
                    saved_model,
                    calibration,
                    keep_float=[*pair, softmax.tensor],
                    input_dtype="int8",
                    output_dtype="int8",
                ),
            ),
            (
                "QuantizationDebugger get_nondebug_quantized_model()",
                lambda: debugger(saved_model, calibration, denylisted_nodes=pair).get_nondebug_quantized_model(),
            ),
            (
                "  same, fully_quantize=True",
                lambda: debugger(
                    saved_model, calibration, denylisted_nodes=pair, fully_quantize=True
                ).get_nondebug_quantized_model(),
            ),
            (
                "litert-quantizer NO_QUANTIZE rules, int8 I/O",
                lambda: litert(float_tflite, calibration, lq_static(8, keep_float=pair_ops)),
            ),
            (
                "  same, output op (SOFTMAX) float, rule for every op type",
                lambda: litert(
                    float_tflite,
                    calibration,
                    lq_static(8, keep_float=[*pair_ops, ("SOFTMAX", softmax.tensor)], op_specific=False),
                ),
            ),
            (
                "  same, output op (SOFTMAX) float, rule for its op type",
                lambda: litert(
                    float_tflite, calibration, lq_static(8, keep_float=[*pair_ops, ("SOFTMAX", softmax.tensor)])
                ),
            ),
            (
                "litert-quantizer: the two ops at 16-bit activations instead",
                lambda: litert(float_tflite, calibration, lq_static(8, keep16=pair_ops)),
            ),
            (
                "litert-quantizer, calibrated its own way (per-sample moving average)",
                lambda: litert(float_tflite, calibration, lq_static(8, keep_float=pair_ops), per_sample=True),
            ),
        ]
        rows = []
        for label, make in cases:
            with quiet():
                model, seconds, same = timed(make)
            rows.append(
                (
                    label,
                    fmt(accuracy(model, x_eval, y_eval)),
                    io_dtypes(model),
                    float_ops(model),
                    len(model),
                    f"{keras_bytes / len(model):.1f}x",
                    f"{seconds:.2f}",
                    "yes" if same else "NO",
                )
            )
        int8_row = (
            "(full int8, nothing kept float)",
            fmt(accuracy(int8, x_eval, y_eval)),
            io_dtypes(int8),
            float_ops(int8),
            len(int8),
            f"{keras_bytes / len(int8):.1f}x",
            "",
            "",
        )
        table(
            f"(b, e, f) {name(pair[0])} and {name(pair[1])} kept float (float .tflite {fmt(float_accuracy)} %)",
            ("how", "acc", "I/O", "ops touching float", "bytes", "vs .keras", "s", "same bytes"),
            [int8_row, *rows],
        )
        variant = lambda: mlir_quantize(calibrated, denylist=pair, input_dtype="int8", output_dtype="int8")  # noqa: E731
        milliseconds = np.mean([timed(variant)[1] for _ in range(3)]) * 1000
        say(f"  mlir_quantize from the cached calibration: {milliseconds:.0f} ms per variant")

        # (c) 16x8
        cases = [
            (
                "TFLiteConverter 16x8, int16 I/O",
                lambda: tf_converter(
                    saved_model,
                    calibration,
                    tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                    tf.int16,
                ).convert(),
            ),
            (
                "TFLiteConverter 16x8, float32 I/O",
                lambda: tf_converter(
                    saved_model,
                    calibration,
                    tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                    tf.float32,
                ).convert(),
            ),
            (
                "TFLiteConverter 16x8, int8 I/O",
                lambda: tf_converter(
                    saved_model,
                    calibration,
                    tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                    tf.int8,
                ).convert(),
            ),
            ("litert-quantizer static_wi8_ai16, int16 I/O", lambda: litert(float_tflite, calibration, lq_static(16))),
            (
                "litert-quantizer static_wi8_ai16, int8 I/O (gate.quantization.fallback)",
                lambda: convert_int16x8(saved_model, float_tflite, calibration, io_dtype="int8"),
            ),
        ]
        rows = []
        for label, make in cases:
            try:
                with quiet():
                    model, seconds, same = timed(make)
                rows.append(
                    (
                        label,
                        fmt(accuracy(model, x_eval, y_eval)),
                        io_dtypes(model),
                        float_ops(model),
                        len(model),
                        f"{seconds:.2f}",
                        "yes" if same else "NO",
                    )
                )
            except Exception as exc:  # the failure is the figure
                rows.append((label, "-", "-", f"fails: {str(exc).strip().splitlines()[-1][:110]}", "-", "-", "-"))
        table(
            "(c, e, f) 16x8: int16 activations, int8 weights",
            ("how", "acc", "I/O", "ops touching float", "bytes", "s", "same bytes"),
            rows,
        )

        # (g) op coverage on a model with less common ops (untrained: only the op lists matter here)
        zoo = op_zoo(tmp / "zoo")
        from absl import logging as absl_logging  # Keras resets it on import

        absl_logging.set_verbosity(absl_logging.ERROR)  # the 16x8 converter's note on the op zoo's input
        zoo_calibration = {"image": np.random.default_rng(0).random((64, 8, 8, 1), dtype=np.float32)}
        zoo_float = convert(zoo, method="float32")
        cases = [
            ("TFLiteConverter int8 (gate's int8)", lambda: convert(zoo, method="int8", calibration=zoo_calibration)),
            (
                "TF MLIR quantizer, nothing denylisted",
                lambda: convert_selective(zoo, zoo_calibration, keep_float=[], input_dtype="int8", output_dtype="int8"),
            ),
            ("litert-quantizer static_wi8_ai8", lambda: litert(zoo_float, zoo_calibration, lq_static(8))),
            (
                "TFLiteConverter 16x8, int16 I/O",
                lambda: convert_int16x8(zoo, zoo_float, zoo_calibration, io_dtype="int16"),
            ),
            (
                "litert-quantizer 16x8, int8 I/O",
                lambda: convert_int16x8(zoo, zoo_float, zoo_calibration, io_dtype="int8"),
            ),
        ]
        rows = []
        for label, make in cases:
            with quiet():
                model, seconds, same = timed(make)
            rows.append((label, io_dtypes(model), float_ops(model), f"{seconds:.2f}", "yes" if same else "NO"))
        float_model_ops = sorted({op["op_name"] for op in Interpreter(model_content=zoo_float)._get_ops_details()})
        table(
            f"(g) op coverage; the float model has {', '.join(float_model_ops)}",
            ("how", "I/O", "ops touching float", "s", "same bytes"),
            rows,
        )

        if not args.skip_mobilenet:
            mobilenet_cost(tmp)
    say(f"\nbench/selective_quantization.py: {time.perf_counter() - started:.0f} s")


def op_zoo(export_dir: Path) -> Path:
    """BatchNorm + ReLU layer, LeakyReLU, Concatenate, DepthwiseConv, Conv1D, GlobalAveragePooling, sigmoid."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="image")
    a = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(8, 3, padding="same")(inputs)))
    b = keras.layers.LeakyReLU(0.1)(keras.layers.Conv2D(8, 3, padding="same")(inputs))
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(keras.layers.Concatenate()([a, b]))
    x = keras.layers.Conv1D(8, 3, padding="same", activation="tanh")(keras.layers.Reshape((64, 16))(x))
    x = keras.layers.Dense(16, activation="sigmoid")(keras.layers.GlobalAveragePooling1D()(x))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    path = export_dir.with_suffix(".keras")
    model.save(path)
    return _load_keras3(path, export_dir, fixed_batch=False).saved_model_dir


def mobilenet_cost(tmp: Path) -> None:
    """(e) what rank_layers costs on the largest bundled model, and the ranking's use there."""
    folder = REPO / "models" / "digits_mobilenetv2"
    saved_model = _load_keras3(folder / "model.keras", tmp / "mobilenet", fixed_batch=False).saved_model_dir
    with np.load(folder / "train.npz") as train, np.load(folder / "eval.npz") as evaluation:
        calibration = {"image": train["x"][:200].astype(np.float32)}
        x_eval, y_eval = {"image": evaluation["x"].astype(np.float32)}, evaluation["y"]
    _CALIBRATED.clear()  # time the calibration too
    start = time.perf_counter()
    layers = rank_layers(saved_model, calibration)
    seconds = time.perf_counter() - start
    float_accuracy = accuracy(convert(saved_model, method="float32"), x_eval, y_eval)
    figures = []
    for k in (0, 1, 2, 3):
        model = convert_selective(
            saved_model,
            calibration,
            keep_float=[layer.name for layer in layers[:k]],
            input_dtype="int8",
            output_dtype="int8",
        )
        figures.append(f"k={k} {fmt(accuracy(model, x_eval, y_eval))}")
    say(
        f"\n(e) digits_mobilenetv2: rank_layers over {len(layers)} ops on 200 samples took {seconds:.1f} s "
        f"(calibration included); float {fmt(float_accuracy)} %, first k ops float: {', '.join(figures)}"
    )
    say(f"  top 3: {'; '.join(f'{layer.name} {layer.op} {layer.error:.2g}' for layer in layers[:3])}")


if __name__ == "__main__":
    main()
