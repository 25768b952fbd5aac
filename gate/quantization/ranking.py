"""Which layers int8 hurts most: each layer quantized alone and measured (the ranking float fallback keeps float).

Ranking is measured, not read off a per-tensor statistic: see gate.quantization.fallback's docstring and
bench/selective_quantization.py for why. Also the .tflite's ops, run and named, that the fallback reuses.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gate.findings import LayerError
from gate.quantization.base import RANKING_SAMPLES, REFINED, SCREEN_SAMPLES
from gate.quantization.convert import calibrated_model, calibration_digest, mlir_quantize
from gate.quantization.splice import OneOpInt8

# Ops that move quantized tensors around without computing: never worth ranking on their own.
_EDGE_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})


# Samples per invoke when running the ranking variants.
BATCH = 64


def rank_layers(
    saved_model_dir: Path,
    calibration: Mapping[str, np.ndarray],
    samples: int = RANKING_SAMPLES,
    *,
    screen: int = SCREEN_SAMPLES,
    refined: int = REFINED,
) -> list[LayerError]:
    """Every quantizable layer, most harmful first.

    Each op is quantized alone (float I/O, every other op float), run on the first `samples` calibration samples
    and compared with the same conversion with nothing quantized (on a model with several outputs, the worst
    output's noise-to-signal). A model of more than `refined` such ops is screened first: every op on the first
    `screen` samples, then the `refined` worst again on all, which come first (gate.quantization.base says why).
    One calibration (the int8 method's own), two quantizer calls (nothing and everything int8), then per op a
    model spliced from those two (gate.quantization.splice: the quantizer's model for that op, bit for bit) and
    one batched run. The model I/O dtype does not enter: it is the same for every candidate, so it cannot change
    the order.

    Every op is measured: bench/ranking_preselection.py found no faithful way to rule ops out without running
    them. At a softmax output the errors of ops quantized together do not add (on digits_mobilenetv2 an op alone
    measures up to 63x a group it is in, and group testing misses the worst op), and a score read off one fully
    int8 run puts that model's 10 worst at places 6 to 63 of 65.
    """
    calibrated = calibrated_model(saved_model_dir, calibration)
    probe = {name: array[:samples] for name, array in calibration.items()}
    ops = tflite_ops(calibrated)
    every_tensor = [name for op in ops for name in op.outputs]
    reference_model = every_op_float(saved_model_dir, calibration)
    # Each op's model is spliced from this float one and one fully int8 conversion: the quantizer's own, without a
    # quantizer call per op (gate.quantization.splice); an op that cannot be spliced is quantized as before.
    every_op_int8 = mlir_quantize(calibrated, denylist=[], input_dtype="float32", output_dtype="float32")
    one_op_int8 = OneOpInt8(reference_model, every_op_int8)
    reference, activations = _run(reference_model, probe, keep=[op.outputs[0] for op in ops])
    names = display_names(ops, variable_layers(saved_model_dir))

    def measured(op: _Op, rows: int) -> tuple[float, float]:
        """The output's noise-to-signal ratio with only `op` int8, on the first `rows` samples; its output scale."""
        alone = one_op_int8.alone(op.outputs[0]) or mlir_quantize(
            calibrated,
            denylist=[name for name in every_tensor if name not in op.outputs],
            input_dtype="float32",
            output_dtype="float32",
        )
        outputs, _ = _run(alone, {name: array[:rows] for name, array in probe.items()})
        return _noise_to_signal(outputs, reference, rows), _output_scale(alone, op.outputs[0])

    rankable = [op for op in ops if _rankable(op)]
    rows = _samples_in(probe)
    screened = len(rankable) > refined and rows > screen
    errors = {op: measured(op, screen if screened else rows) for op in rankable}
    measured_again = set(rankable)
    if screened:
        measured_again = set(sorted(rankable, key=lambda op: -errors[op][0])[:refined])
        errors.update({op: measured(op, rows) for op in rankable if op in measured_again})
    ranked = [
        LayerError(
            name=names[op.outputs[0]],
            op=op.name,
            error=errors[op][0],
            tensor=op.outputs[0],
            scale=errors[op][1],
            channel_range_ratio=_channel_range_ratio(activations.get(op.outputs[0], np.zeros((0, 2)))),
        )
        for op in rankable
    ]
    # The ops measured again first, then the rest as screened; ties (ops whose quantization changes nothing) keep graph
    # order, so the ranking is deterministic.
    order = sorted(range(len(ranked)), key=lambda i: (rankable[i] not in measured_again, -ranked[i].error))
    return [ranked[i] for i in order]


def _noise_to_signal(outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], rows: int) -> float:
    """sum((q - f)^2) / sum(f^2) of the worst output, on the first `rows` samples.

    Each output on its own: a model's outputs need not share a scale (a regression head in metres beside class
    scores), and one noise-to-signal over all of them would rank by the largest output alone.
    """
    ratios = []
    for key, expected in reference.items():
        power = float(np.sum(np.square(expected[:rows])))
        noise = float(np.sum(np.square(outputs[key] - expected[:rows])))
        ratios.append(noise / power if power > 0 else noise)
    return max(ratios)


def _samples_in(data: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(data.values())))


@dataclass(frozen=True)
class _Op:
    name: str  # FULLY_CONNECTED, ...
    inputs: tuple[str, ...]  # input tensor names (weights included)
    outputs: tuple[str, ...]  # output tensor names
    float_output: bool


def _rankable(op: _Op) -> bool:
    """An op the quantizer would compute in int8: a float output that is not a QUANTIZE/DEQUANTIZE edge."""
    return op.float_output and op.name not in _EDGE_OPS


def _interpreter(model: bytes, *, preserve: bool = False):
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():
        # Keeping every tensor is what reading a layer's activations needs; LiteRT warns it is for debugging.
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors", category=UserWarning)
        return Interpreter(
            model_content=model, num_threads=os.cpu_count() or 1, experimental_preserve_all_tensors=preserve
        )


def tflite_ops(model: bytes) -> list[_Op]:
    interpreter = _interpreter(model)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = []
    # _get_ops_details is what LiteRT's own model analyzer uses; there is no public equivalent.
    for op in interpreter._get_ops_details():
        inputs = tuple(tensors[i]["name"] for i in op["inputs"] if i >= 0)
        outputs = tuple(tensors[i]["name"] for i in op["outputs"] if i >= 0)
        if outputs:
            float_output = np.dtype(tensors[op["outputs"][0]]["dtype"]).kind == "f"
            ops.append(_Op(op["op_name"], inputs, outputs, float_output))
    return ops


def _run(
    model: bytes, calibration: Mapping[str, np.ndarray], *, keep: Sequence[str] = ()
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The model's (float) outputs on every sample, by signature output name, a row per sample; and the tensors
    named in `keep` per channel.

    `keep` gives (channels, 2) arrays of each channel's min and max over the samples.
    """
    interpreter = _interpreter(model, preserve=bool(keep))
    runner = interpreter.get_signature_runner("serving_default")
    inputs = runner.get_input_details()
    samples = _samples_in(calibration)
    step = BATCH if dynamic_batch(model) else 1
    indices = {t["name"]: t["index"] for t in interpreter.get_tensor_details()}
    outputs: dict[str, list[np.ndarray]] = {}
    ranges: dict[str, np.ndarray] = {}
    for start in range(0, samples, step):
        batch = {
            name: np.asarray(calibration[name][start : start + step], detail["dtype"])
            for name, detail in inputs.items()
        }
        result = runner(**batch)
        for key, values in result.items():
            outputs.setdefault(key, []).append(values.reshape(len(values), -1))
        for name in (n for n in keep if n in indices):
            values = interpreter.get_tensor(indices[name])
            values = values.reshape(-1, values.shape[-1]) if values.ndim > 1 else values.reshape(-1, 1)
            low, high = values.min(axis=0), values.max(axis=0)
            if name in ranges:
                low, high = np.minimum(ranges[name][:, 0], low), np.maximum(ranges[name][:, 1], high)
            ranges[name] = np.stack([low, high], axis=1)
    return {key: np.concatenate(batches).astype(np.float64) for key, batches in sorted(outputs.items())}, ranges


def dynamic_batch(model: bytes) -> bool:
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
    for op in interpreter._get_ops_details():
        if op["op_name"] == "DEQUANTIZE" and details[op["outputs"][0]]["name"] == tensor:
            return float(details[op["inputs"][0]]["quantization"][0])
    return 0.0


def _channel_range_ratio(ranges: np.ndarray) -> float:
    widths = ranges[:, 1] - ranges[:, 0]
    live = widths[widths > 0]  # ReLU channels that never fire have no range
    return float(live.max() / np.median(live)) if live.size else 0.0


def display_names(ops: Sequence[_Op], layers: set[str]) -> dict[str, str]:
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


def variable_layers(saved_model_dir: Path) -> set[str]:
    """Layer names from the SavedModel's variable paths ("features/kernel"), read without loading it."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    except Exception:  # names are a courtesy; the tensor names still identify every op
        return set()
    return {
        node.variable.name.rsplit("/", 1)[0]
        for graph in saved_model.meta_graphs
        for node in graph.object_graph_def.nodes
        if node.WhichOneof("kind") == "variable" and "/" in node.variable.name
    }


_RANKED: dict[str, list[LayerError]] = {}
_EVERY_OP_FLOAT: dict[str, bytes] = {}


def every_op_float(saved_model_dir: Path, calibration: Mapping[str, np.ndarray]) -> bytes:
    """The quantizer's model with every op kept float (float I/O): what the ranking compares with, and what float
    fallback's tries take their float ops from (gate.quantization.splice.KeptFloat). Once per model."""
    key = calibration_digest(saved_model_dir, calibration)
    if key not in _EVERY_OP_FLOAT:
        _EVERY_OP_FLOAT.clear()
        calibrated = calibrated_model(saved_model_dir, calibration)
        every_tensor = [name for op in tflite_ops(calibrated) for name in op.outputs]
        _EVERY_OP_FLOAT[key] = mlir_quantize(
            calibrated, denylist=every_tensor, input_dtype="float32", output_dtype="float32"
        )
    return _EVERY_OP_FLOAT[key]


def ranked_layers(saved_model_dir: Path, calibration: Mapping[str, np.ndarray]) -> list[LayerError]:
    """`rank_layers`, computed once per model and calibration set (the search and the report both need it)."""
    key = calibration_digest(saved_model_dir, calibration)
    if key not in _RANKED:
        _RANKED.clear()
        _RANKED[key] = rank_layers(saved_model_dir, calibration)
    return _RANKED[key]
