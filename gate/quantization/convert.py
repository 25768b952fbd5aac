"""Setting up TensorFlow's converter, once for every method: the converter, calibration, full integer, errors.

The same SavedModel, method and calibration data give byte-identical output
(tested), so an artifact's sha256 identifies how it was made; except for an
unrolled recurrent graph, which TF 2.21's MLIR quantizer does not quantize the
same way twice (docs: recurrent layers and stateful files).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gate.errors import translated
from gate.quantization.base import Built, NotApplicable, Setup
from gate.quantization.methods import METHODS


def converter_error(exc: Exception) -> str:
    """The converter's first error, without the MLIR location that precedes it."""
    lines = (
        [line for line in str(exc).splitlines() if "error:" in line] or str(exc).splitlines() or [type(exc).__name__]
    )
    message = lines[0].split("error:", 1)[-1].strip()
    if message.startswith("loc("):  # loc(callsite(fused[...] at ...)): message
        depth = 0
        for position, char in enumerate(message):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if char == ")" and depth == 0:
                message = message[position + 1 :].lstrip(": ")
                break
    if "TensorListReserve" in message:
        # Only a SavedModel gets here: for a Keras file the gate fixes the batch itself.
        message += "; recurrent layers need a static batch: export the SavedModel with a signature of batch 1"
    return message[:400]


def tflite_converter(saved_model_dir: Path) -> Any:
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=["serving_default"])


def representative_dataset(calibration: Mapping[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    # Feed by input name: the signature's input order need not match Keras' order.
    samples = len(next(iter(calibration.values())))
    for index in range(samples):
        yield {name: array[index : index + 1] for name, array in calibration.items()}


def full_integer(
    saved_model_dir: Path, calibration: Mapping[str, np.ndarray], *, input_dtype: str, output_dtype: str
) -> bytes:
    """Full-integer int8 post-training quantization: int8 activations and weights, calibrated."""
    import tensorflow as tf

    converter = tflite_converter(saved_model_dir)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: representative_dataset(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    # Model I/O as the policy requires; float32 keeps quantize/dequantize ops at the edges.
    converter.inference_input_type = tf.dtypes.as_dtype(input_dtype)
    converter.inference_output_type = tf.dtypes.as_dtype(output_dtype)
    with keeping_calibration(saved_model_dir, calibration):  # the layer ranking starts from it
        return converter.convert()


# Calibrated models of recent (SavedModel, calibration) pairs: the search converts the same model many times.
_CALIBRATED: dict[str, bytes] = {}
# The calibrated models the int8 method's converter made on its way (see keeping_calibration).
_KEPT: dict[str, bytes] = {}
_CALIBRATED_KEEP = 2


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

    def calibrate(self, *args, **kwargs) -> bytes:  # the calibrator's own signature
        result = original(self, *args, **kwargs)
        results.append(result)
        return result

    calibrator.Calibrator.calibrate = calibrate
    try:
        yield
    finally:
        calibrator.Calibrator.calibrate = original
    if len(results) == 1 and isinstance(results[0], bytes):
        _remember(_KEPT, calibration_digest(saved_model_dir, calibration), results[0])


def calibrated_model(saved_model_dir: Path, calibration: Mapping[str, np.ndarray]) -> bytes:
    """The float model with calibrated ranges, as gate's int8 method calibrates it (cached).

    The int8 converter's own calibrated model when it ran in this process (keeping_calibration), else a
    calibrate-only conversion, which takes as long as the int8 one (27 s of the fallback's time on issue 26's
    ResNet50). The latter appends a CONVERSION_METADATA entry the former lacks; it is dropped, so what the MLIR
    quantizer builds from either is the same, byte for byte (tests/test_selective.py), whichever the process had.
    """
    key = calibration_digest(saved_model_dir, calibration)
    for cache in (_KEPT, _CALIBRATED):
        if key in cache:
            return cache[key]
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=["serving_default"])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: representative_dataset(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    # What QuantizationDebugger sets: stop after calibration, so the quantizer can run with a denylist.
    converter._experimental_calibrate_only = True
    with translated(lambda exc: f"TFLite calibration failed: {converter_error(exc)}"):
        calibrated = _without_conversion_metadata(converter.convert())
    _remember(_CALIBRATED, key, calibrated)
    return calibrated


def _without_conversion_metadata(model: bytes) -> bytes:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    unpacked = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    unpacked.metadata = [entry for entry in unpacked.metadata or () if entry.name != b"CONVERSION_METADATA"]
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(unpacked.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _remember(cache: dict[str, bytes], key: str, calibrated: bytes) -> None:
    while len(cache) >= _CALIBRATED_KEEP:
        cache.pop(next(iter(cache)))
    cache[key] = calibrated


def calibration_digest(saved_model_dir: Path, calibration: Mapping[str, np.ndarray]) -> str:
    sha = hashlib.sha256(_files_digest(saved_model_dir).encode())
    for name in sorted(calibration):
        array = np.ascontiguousarray(calibration[name])
        sha.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def _files_digest(folder: Path) -> str:
    """sha256 of a folder's files, read once while none of them changes (a ResNet50's 95 MB took 0.7 s a call)."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    stats = tuple((str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in files)
    return _stated_files_digest(Path(folder), stats)


@functools.lru_cache(maxsize=4)
def _stated_files_digest(folder: Path, stats: tuple[tuple[str, int, int], ...]) -> str:
    sha = hashlib.sha256()
    for name, _, _ in stats:
        path = Path(name)
        sha.update(str(path.relative_to(folder)).encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()


def mlir_quantize(calibrated: bytes, *, denylist: Sequence[str], input_dtype: str, output_dtype: str) -> bytes:
    import tensorflow as tf
    from tensorflow.lite.python import convert  # QuantizationDebugger's quantizer; not in the tf.lite namespace

    with translated(lambda exc: f"selective int8 quantization failed: {converter_error(exc)}"):
        return convert.mlir_quantize(
            calibrated,
            input_data_type=tf.dtypes.as_dtype(input_dtype),
            output_data_type=tf.dtypes.as_dtype(output_dtype),
            denylisted_nodes=list(denylist),
        )


def convert(saved_model_dir: Path, *, method: str, setup: Setup = Setup()) -> Built:
    """Build a .tflite with one method of the registry; a converter failure is a ModelError saying why."""
    # The converter raises many types, all meaning "cannot convert".
    with translated(
        lambda exc: f"TFLite conversion ({method}) failed: {converter_error(exc)}", passing=(NotApplicable,)
    ):
        return METHODS[method].build(saved_model_dir, setup)
