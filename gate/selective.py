"""Selective and 16x8 quantization: find the layers int8 hurts, keep them float, or use int16 activations.

Chosen with bench/selective_quantization.py (see its docstring for the figures):

- Ranking is measured, not read off a per-tensor statistic: each layer is
  quantized alone (every other op float) and the model output is compared
  with the float model's. On an outlier channel (scripts/train_failing_example.py)
  the QuantizationDebugger's RMSE/scale, the TF guide's metric, rates the
  broken tensor 0.27, "healthy": its error is within one step of its own,
  far too coarse, scale. litert-quantizer's lowest-SNR-first ranks the
  consumer and the softmax above it. Both need 3 layers float where this
  ranking needs 2 (the debugger's 3 include the largest layer). Reverting
  one op at a time (NNCF, Neural Compressor) cannot see a tensor that needs
  both its producer and its consumer float: no single revert helps.
- Selective int8 uses TensorFlow's own MLIR quantizer, the one gate's int8
  method runs (`TFLiteConverter` calibrates; `mlir_quantize` quantizes), with
  the `denylisted_nodes` the QuantizationDebugger passes it. Called directly
  it also takes the model I/O types, which the debugger drops: int8, uint8 or
  float32 I/O, and an output op kept float still gets a quantized output.
  With nothing kept float it gives the same ops and scales as the int8 method.
- 16x8 with int16 or float32 I/O is TFLiteConverter's
  EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8. TensorFlow
  cannot give a 16x8 model int8 I/O (modify_model_io_type refuses); litert-quantizer
  can: int16 inside, QUANTIZE ops requantizing to int8 at the edges, so the
  model meets an int8-I/O policy. That path needs `litert-quantizer`, imported
  only when asked for.

Imported only in the worker process, where TensorFlow is already imported;
TensorFlow and litert-quantizer are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gate.errors import ModelError
from gate.methods import Built, NotApplicable, Setup, representative_dataset
from gate.quantize import converter_error
from gate.results import LayerError

IO_DTYPES = ("int8", "uint8", "float32")  # what convert_selective's model I/O can be
INT16X8_IO_DTYPES = ("int8", "int16", "float32")
# Ops that move quantized tensors around without computing: never worth ranking on their own.
_EDGE_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})
# Samples per invoke when running the ranking variants.
_BATCH = 64
# The samples each ranking variant runs on (the first of the calibration set): each of a model's ops costs one
# quantizer call and one run, and on 200 samples a ResNet50's runs cost more than its calibration. On the
# bundled outlier model and digits_mobilenetv2, 64 keep what the fallback keeps on 200 (bench/ranking_samples.py).
RANKING_SAMPLES = _BATCH
# Calibrated models of recent (SavedModel, calibration) pairs: the search converts the same model many times.
_CALIBRATED: dict[str, bytes] = {}
# The calibrated models the int8 method's converter made on its way (see keeping_calibration).
_KEPT: dict[str, bytes] = {}
_CALIBRATED_KEEP = 2


def rank_layers(
    saved_model_dir: Path, calibration: Mapping[str, np.ndarray], samples: int = RANKING_SAMPLES
) -> list[LayerError]:
    """Every quantizable layer, most harmful first.

    Each op is quantized alone (float I/O, every other op float), run on the
    first `samples` calibration samples and compared with the same conversion
    with nothing quantized. One calibration (the int8 method's own, on every
    sample), then one quantizer call and one batched run per op. The model I/O
    dtype does not enter: it is the same for every candidate, so it cannot
    change the order.
    """
    calibrated = _calibrated(saved_model_dir, calibration, ranges_only=True)
    probe = {name: array[:samples] for name, array in calibration.items()}
    ops = _ops(calibrated)
    every_tensor = [name for op in ops for name in op.outputs]
    reference_model = _mlir_quantize(calibrated, denylist=every_tensor, input_dtype="float32", output_dtype="float32")
    reference, activations = _run(reference_model, probe, keep=[op.outputs[0] for op in ops])
    power = float(np.sum(np.square(reference, dtype=np.float64)))
    names = _display_names(ops, _variable_layers(saved_model_dir))

    ranked = []
    for op in filter(_rankable, ops):
        alone = _mlir_quantize(
            calibrated,
            denylist=[name for name in every_tensor if name not in op.outputs],
            input_dtype="float32",
            output_dtype="float32",
        )
        outputs, _ = _run(alone, probe)
        noise = float(np.sum(np.square(outputs.astype(np.float64) - reference)))
        ranked.append(
            LayerError(
                name=names[op.outputs[0]],
                op=op.name,
                error=noise / power if power > 0 else noise,
                tensor=op.outputs[0],
                scale=_output_scale(alone, op.outputs[0]),
                channel_range_ratio=_channel_range_ratio(activations.get(op.outputs[0], np.zeros((0, 2)))),
            )
        )
    # Ties (ops whose quantization changes nothing) keep graph order, so the ranking is deterministic.
    return sorted(ranked, key=lambda layer: -layer.error)


def convert_selective(
    saved_model_dir: Path,
    calibration: Mapping[str, np.ndarray],
    *,
    keep_float: Sequence[str],
    input_dtype: str,
    output_dtype: str,
) -> bytes:
    """int8 everywhere except the layers named in keep_float, with model I/O of the given dtypes.

    `keep_float` holds `LayerError.name` or `LayerError.tensor` values from
    `rank_layers`. Each kept op gets DEQUANTIZE before and QUANTIZE after it,
    so its tensors are float32 while the model's I/O stays as asked.
    """
    for label, dtype in (("input_dtype", input_dtype), ("output_dtype", output_dtype)):
        if dtype not in IO_DTYPES:
            raise ValueError(f"{label}: expected one of {', '.join(IO_DTYPES)}, got {dtype!r}")
    calibrated = _calibrated(saved_model_dir, calibration)
    ops = _ops(calibrated)
    by_name = {name: tensor for tensor, name in _display_names(ops, _variable_layers(saved_model_dir)).items()}
    tensors = {name for op in ops for name in op.outputs}
    unknown = [name for name in keep_float if name not in by_name and name not in tensors]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(by_name), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"keep_float: no layer named {', '.join(map(repr, unknown))}{hint}; rank_layers() lists the names"
        )
    denylist = [by_name.get(name, name) for name in keep_float]
    return _mlir_quantize(calibrated, denylist=denylist, input_dtype=input_dtype, output_dtype=output_dtype)


def convert_int16x8(
    saved_model_dir: Path, float_tflite: bytes, calibration: Mapping[str, np.ndarray], *, io_dtype: str
) -> bytes:
    """int16 activations, int8 weights; io_dtype "int16" or "float32" (TFLiteConverter) or "int8" (litert-quantizer).

    `float_tflite` (the float32 reference gate already converted) is what
    litert-quantizer quantizes; the TFLiteConverter paths read the SavedModel.
    """
    if io_dtype == "int8":
        return _litert_int16x8_int8_io(float_tflite, calibration)
    if io_dtype not in INT16X8_IO_DTYPES:
        raise ValueError(f"io_dtype: expected one of {', '.join(INT16X8_IO_DTYPES)}, got {io_dtype!r}")
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=["serving_default"])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: representative_dataset(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    converter.inference_input_type = tf.dtypes.as_dtype(io_dtype)
    converter.inference_output_type = tf.dtypes.as_dtype(io_dtype)
    try:
        return converter.convert()
    except Exception as exc:  # noqa: BLE001 - the converter raises many types, all meaning "cannot convert"
        raise ModelError(f"TFLite conversion (16x8) failed: {converter_error(exc)}") from None


# ---------------------------------------------------------------- TensorFlow's MLIR quantizer


@contextlib.contextmanager
def keeping_calibration(saved_model_dir: Path, calibration: Mapping[str, np.ndarray]) -> Iterator[None]:
    """Keep the calibrated model that a TFLiteConverter.convert() inside makes on its way to full int8.

    convert() calibrates and returns only the quantized model. Calibrating again for the layer
    ranking cost as much as the int8 conversion itself: 4.8 s of digits_mobilenetv2's 7 s ranking.
    `Calibrator.calibrate` is the call whose result `_experimental_calibrate_only` returns; the
    ranking then reads the same tensors and ranges (tests/test_selective.py checks it). If a
    TensorFlow release renames it, nothing is kept and the ranking calibrates again, as before.
    """
    try:
        from tensorflow.lite.python.optimize import calibrator

        original = calibrator.Calibrator.calibrate
    except (ImportError, AttributeError):
        yield
        return
    results: list[bytes] = []

    def calibrate(self, *args, **kwargs) -> bytes:  # noqa: ANN001, ANN002, ANN003 - the calibrator's own signature
        result = original(self, *args, **kwargs)
        results.append(result)
        return result

    calibrator.Calibrator.calibrate = calibrate
    try:
        yield
    finally:
        calibrator.Calibrator.calibrate = original
    if len(results) == 1 and isinstance(results[0], bytes):
        _remember(_KEPT, _digest(saved_model_dir, calibration), results[0])


def _calibrated(saved_model_dir: Path, calibration: Mapping[str, np.ndarray], *, ranges_only: bool = False) -> bytes:
    """The float model with calibrated ranges, as gate's int8 method calibrates it (cached).

    `ranges_only`: for reading tensors and ranges (the ranking), where the int8 converter's own
    calibrated model serves. It lacks the CONVERSION_METADATA that a calibrate-only conversion
    appends, so a model built for publishing starts from the calibrate-only one: its bytes stay
    those of `_experimental_calibrate_only`.
    """
    key = _digest(saved_model_dir, calibration)
    if ranges_only and key in _KEPT:
        return _KEPT[key]
    if key in _CALIBRATED:
        return _CALIBRATED[key]
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=["serving_default"])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: representative_dataset(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    # What QuantizationDebugger sets: stop after calibration, so the quantizer can run with a denylist.
    converter._experimental_calibrate_only = True  # noqa: SLF001
    try:
        calibrated = converter.convert()
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"TFLite calibration failed: {converter_error(exc)}") from None
    _remember(_CALIBRATED, key, calibrated)
    return calibrated


def _remember(cache: dict[str, bytes], key: str, calibrated: bytes) -> None:
    while len(cache) >= _CALIBRATED_KEEP:
        cache.pop(next(iter(cache)))
    cache[key] = calibrated


def _digest(saved_model_dir: Path, calibration: Mapping[str, np.ndarray]) -> str:
    sha = hashlib.sha256()
    for path in sorted(p for p in Path(saved_model_dir).rglob("*") if p.is_file()):
        sha.update(str(path.relative_to(saved_model_dir)).encode())
        sha.update(path.read_bytes())
    for name in sorted(calibration):
        array = np.ascontiguousarray(calibration[name])
        sha.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def _mlir_quantize(calibrated: bytes, *, denylist: Sequence[str], input_dtype: str, output_dtype: str) -> bytes:
    import tensorflow as tf
    from tensorflow.lite.python import convert  # QuantizationDebugger's quantizer; not in the tf.lite namespace

    try:
        return convert.mlir_quantize(
            calibrated,
            input_data_type=tf.dtypes.as_dtype(input_dtype),
            output_data_type=tf.dtypes.as_dtype(output_dtype),
            denylisted_nodes=list(denylist),
        )
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"selective int8 quantization failed: {converter_error(exc)}") from None


# ---------------------------------------------------------------- litert-quantizer


def _litert_int16x8_int8_io(float_tflite: bytes, calibration: Mapping[str, np.ndarray]) -> bytes:
    try:
        from litert_quantizer import Quantizer, qtyping
        from litert_quantizer.recipe_manager import RecipeManager
    except ImportError:
        raise ModelError("16x8 with int8 I/O needs litert-quantizer: pip install litert-quantizer==0.11.0") from None

    ops = qtyping.TFLOperationName
    recipe = RecipeManager()
    recipe.add_static_config(".*", ops.ALL_SUPPORTED, activation_num_bits=16, weight_num_bits=8)
    # The virtual INPUT/OUTPUT ops at 8 bits: QUANTIZE ops requantize int8 <-> int16 at the model's edges.
    recipe.add_static_config(".*", ops.INPUT, activation_num_bits=8, weight_num_bits=8)
    recipe.add_static_config(".*", ops.OUTPUT, activation_num_bits=8, weight_num_bits=8)
    # litert-quantizer draws tqdm progress bars on stderr; the worker's stderr is gate's log.
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            # It refuses a model whose tensor names are not unique, and ops it has no rule for stay float.
            quantizer = Quantizer(float_tflite, recipe.get_quantization_recipe())
            ranges = _litert_ranges(quantizer, float_tflite, calibration)
            result = quantizer.quantize(ranges, enable_progress_report=False)
        except Exception as exc:  # noqa: BLE001 - litert-quantizer raises ValueError, RuntimeError, KeyError...
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            raise ModelError(f"16x8 quantization (litert-quantizer) failed: {message}"[:400]) from None
    return bytes(result.quantized_model)


def _litert_ranges(quantizer, float_tflite: bytes, calibration: Mapping[str, np.ndarray]) -> dict:  # noqa: ANN001
    """Global min/max over every sample, as TFLiteConverter calibrates.

    litert-quantizer's calibrate() keeps a moving average (0.95) of each
    step's min/max, so one sample per step would shrink the ranges and depend
    on the order; one step per batch of samples, merged by min/max, does not.
    """
    samples = len(next(iter(calibration.values())))
    merged: dict = {}
    step = _BATCH if _dynamic_batch(float_tflite) else 1
    for start in range(0, samples, step):
        batch = {name: array[start : start + step] for name, array in calibration.items()}
        ranges = quantizer.calibrate({"serving_default": [batch]}, num_threads=1)
        for tensor, qsv in ranges.items():
            if merged.get(tensor) and qsv:
                merged[tensor] = {
                    "min": np.minimum(merged[tensor]["min"], qsv["min"]),
                    "max": np.maximum(merged[tensor]["max"], qsv["max"]),
                }
            elif qsv or tensor not in merged:
                merged[tensor] = qsv
    return merged


# ---------------------------------------------------------------- the .tflite's ops, run and named


@dataclass(frozen=True)
class _Op:
    name: str  # FULLY_CONNECTED, ...
    inputs: tuple[str, ...]  # input tensor names (weights included)
    outputs: tuple[str, ...]  # output tensor names
    float_output: bool


def _rankable(op: _Op) -> bool:
    """An op the quantizer would compute in int8: a float output that is not a QUANTIZE/DEQUANTIZE edge."""
    return op.float_output and op.name not in _EDGE_OPS


def _interpreter(model: bytes, *, preserve: bool = False):  # noqa: ANN202
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():
        # Keeping every tensor is what reading a layer's activations needs; LiteRT warns it is for debugging.
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors", category=UserWarning)
        return Interpreter(model_content=model, num_threads=1, experimental_preserve_all_tensors=preserve)


def _ops(model: bytes) -> list[_Op]:
    interpreter = _interpreter(model)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = []
    # _get_ops_details is what LiteRT's own model analyzer uses; there is no public equivalent.
    for op in interpreter._get_ops_details():  # noqa: SLF001
        inputs = tuple(tensors[i]["name"] for i in op["inputs"] if i >= 0)
        outputs = tuple(tensors[i]["name"] for i in op["outputs"] if i >= 0)
        if outputs:
            float_output = np.dtype(tensors[op["outputs"][0]]["dtype"]).kind == "f"
            ops.append(_Op(op["op_name"], inputs, outputs, float_output))
    return ops


def _run(
    model: bytes, calibration: Mapping[str, np.ndarray], *, keep: Sequence[str] = ()
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The model's (float) outputs on every sample, and the tensors named in `keep` per channel.

    `keep` gives (channels, 2) arrays of each channel's min and max over the samples.
    """
    interpreter = _interpreter(model, preserve=bool(keep))
    runner = interpreter.get_signature_runner("serving_default")
    inputs = runner.get_input_details()
    samples = len(next(iter(calibration.values())))
    step = _BATCH if _dynamic_batch(model) else 1
    indices = {t["name"]: t["index"] for t in interpreter.get_tensor_details()}
    outputs, ranges = [], {}
    for start in range(0, samples, step):
        batch = {
            name: np.asarray(calibration[name][start : start + step], detail["dtype"])
            for name, detail in inputs.items()
        }
        result = runner(**batch)
        outputs.append(np.concatenate([result[key].reshape(len(result[key]), -1) for key in sorted(result)], axis=1))
        for name in (n for n in keep if n in indices):
            values = interpreter.get_tensor(indices[name])
            values = values.reshape(-1, values.shape[-1]) if values.ndim > 1 else values.reshape(-1, 1)
            low, high = values.min(axis=0), values.max(axis=0)
            if name in ranges:
                low, high = np.minimum(ranges[name][:, 0], low), np.maximum(ranges[name][:, 1], high)
            ranges[name] = np.stack([low, high], axis=1)
    return np.concatenate(outputs).astype(np.float64), ranges


def _dynamic_batch(model: bytes) -> bool:
    """Whether every input takes any batch; a SavedModel exported with a batch of one converts to a fixed one."""
    inputs = _interpreter(bytes(model)).get_signature_runner("serving_default").get_input_details()
    return all(detail["shape_signature"][0] == -1 for detail in inputs.values())


def _output_scale(model: bytes, tensor: str) -> float:
    """The int8 scale of `tensor`, or of the int8 tensor a DEQUANTIZE turns into it (a model output keeps its name)."""
    interpreter = _interpreter(model)
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    by_name = {t["name"]: t for t in details.values()}
    if tensor not in by_name:
        return 0.0
    scale = float(by_name[tensor]["quantization"][0])
    if scale:
        return scale
    for op in interpreter._get_ops_details():  # noqa: SLF001
        if op["op_name"] == "DEQUANTIZE" and details[op["outputs"][0]]["name"] == tensor:
            return float(details[op["inputs"][0]]["quantization"][0])
    return 0.0


def _channel_range_ratio(ranges: np.ndarray) -> float:
    widths = ranges[:, 1] - ranges[:, 0]
    live = widths[widths > 0]  # ReLU channels that never fire have no range
    return float(live.max() / np.median(live)) if live.size else 0.0


def _display_names(ops: Sequence[_Op], layers: set[str]) -> dict[str, str]:
    """A unique, recognisable name per op, by its first output tensor: the Keras layer(s) it computes.

    TFLite names a tensor after the graph ops fused into it, e.g.
    "functional_1/features_1/MatMul;functional_1/features_1/Relu". The layer
    is the path element after the model's: Keras 3 traces each call under
    "<layer>_<n>", tf.keras under "<layer>". Which one applies is decided by
    which reading matches more of `layers`, the SavedModel's variable paths.
    """
    segments = {op.outputs[0]: _layer_segments(op.outputs[0]) for op in ops}
    found = {s for parts in segments.values() for s in parts}
    strip = sum(_strip(s) in layers for s in found) > sum(s in layers for s in found)
    layer_of: dict[str, str] = {}  # tensor -> layer name(s), before making names unique
    names: dict[str, str] = {}
    taken: dict[str, int] = {}
    for op in ops:
        tensor = op.outputs[0]
        if not _rankable(op):  # shape arithmetic and the QUANTIZE/DEQUANTIZE edges keep their tensor names
            names[tensor] = tensor
            continue
        layer_names = list(dict.fromkeys(_strip(s) if strip else s for s in segments[tensor]))
        # A model output is named after the signature ("StatefulPartitionedCall:0"): name it after
        # the layer that feeds it, as a Dense layer's softmax activation would be.
        name = "+".join(layer_names) if layer_names else layer_of.get(op.inputs[0] if op.inputs else "", tensor)
        for output in op.outputs:
            layer_of[output] = name
        if name in taken:  # a layer that became several ops: "classifier", then "classifier (SOFTMAX)"
            taken[name] += 1
            name = f"{name} ({op.name})" if taken[name] == 2 else f"{name} ({op.name} {taken[name]})"
        taken.setdefault(name, 1)
        names[tensor] = name
    return names


def _layer_segments(tensor: str) -> list[str]:
    parts = [part.split("/") for part in tensor.split(";")]
    return [path[1] for path in parts if len(path) > 2]  # model scope / layer scope / graph op


def _strip(segment: str) -> str:
    return re.sub(r"_\d+$", "", segment)


def _variable_layers(saved_model_dir: Path) -> set[str]:
    """Layer names from the SavedModel's variable paths ("features/kernel"), read without loading it."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    except Exception:  # noqa: BLE001 - names are a courtesy; the tensor names still identify every op
        return set()
    return {
        node.variable.name.rsplit("/", 1)[0]
        for graph in saved_model.meta_graphs
        for node in graph.object_graph_def.nodes
        if node.WhichOneof("kind") == "variable" and "/" in node.variable.name
    }


# ---------------------------------------------------------------- the candidates gate.methods registers

_RANKED: dict[str, list[LayerError]] = {}


def ranked_layers(saved_model_dir: Path, calibration: Mapping[str, np.ndarray]) -> list[LayerError]:
    """`rank_layers`, computed once per model and calibration set (the search and the report both need it)."""
    key = _digest(saved_model_dir, calibration)
    if key not in _RANKED:
        _RANKED.clear()
        _RANKED[key] = rank_layers(saved_model_dir, calibration)
    return _RANKED[key]


def build(saved_model_dir: Path, setup: Setup) -> Built:
    """The int8-float-fallback candidate: keep the most harmful layers float, one more at a time, until it passes.

    Layers are kept cumulatively in ranking order (a tensor may need both its producer and its
    consumer float before anything improves, so a revert that did not help alone is not undone),
    and each build is measured on the eval set. The first build whose metric change the policy
    allows wins; if none does within `search.max_float_layers`, the best one is returned.
    """
    assert setup.calibration is not None and setup.metric_change is not None
    ranked = ranked_layers(saved_model_dir, setup.calibration)
    limit = int(setup.extra.get("max_float_layers", 5))
    best: tuple[float, bytes, list[LayerError]] | None = None
    for count in range(1, min(limit, len(ranked)) + 1):
        kept = ranked[:count]
        tflite = convert_selective(saved_model_dir, setup.calibration, keep_float=[layer.tensor for layer in kept],
                                   input_dtype=setup.input_dtype, output_dtype=setup.output_dtype)  # fmt: skip
        change = setup.metric_change(tflite)
        # Accuracy changes upwards is better (points gained); MAE changes downwards: compare them as a loss.
        classification = setup.extra.get("task", "classification") == "classification"
        loss = -change if classification else change
        if best is None or loss < best[0]:
            best = (loss, tflite, kept)
        if setup.allowed_change is not None and loss <= (
            -setup.allowed_change if classification else setup.allowed_change
        ):
            break
    if best is None:
        raise NotApplicable("the model has no layer that int8 quantizes")
    _loss, tflite, kept = best
    names = ", ".join(f"{layer.name} ({layer.op})" for layer in kept)
    return Built(tflite, (f"kept in float: {names}", f"{len(kept)} of {len(ranked)} layers, ranked by the output "
                          "error each causes when quantized alone"))  # fmt: skip


def build_int16x8(saved_model_dir: Path, setup: Setup) -> Built:
    """The int16x8 candidate, with the model I/O the policy asks for where 16x8 can give it."""
    assert setup.calibration is not None
    if setup.input_dtype != setup.output_dtype or setup.input_dtype not in INT16X8_IO_DTYPES:
        raise NotApplicable(f"16x8 gives int8, int16 or float32 I/O alike on both sides, and the policy asks for "
                            f"{setup.input_dtype} input and {setup.output_dtype} output")  # fmt: skip
    tflite = convert_int16x8(saved_model_dir, setup.float_tflite, setup.calibration, io_dtype=setup.input_dtype)
    how = "litert-quantizer (16x8 inside, int8 at the edges)" if setup.input_dtype == "int8" else "TFLiteConverter"
    return Built(
        tflite,
        (
            f"int16 activations, int8 weights, {setup.input_dtype} I/O, by {how}",
            f"calibrated on the first {len(next(iter(setup.calibration.values()))):,} samples",
        ),
    )
