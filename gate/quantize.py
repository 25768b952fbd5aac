"""Convert the float model to .tflite: the float32 reference and the quantized candidate.

The same SavedModel, method and calibration data give byte-identical output
(tested), so an artifact's sha256 identifies how it was made.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from gate.errors import ModelError

# What each method is, in the words of the TFLite post-training quantization guide.
METHOD_DESCRIPTIONS = {
    "float32": "float32 .tflite (reference, no quantization)",
    "int8": "full-integer int8 post-training quantization (representative dataset)",
    "dynamic_range": "dynamic-range quantization (int8 weights, float activations)",
    "float16": "float16 weight quantization",
}


def convert(
    saved_model_dir: Path,
    *,
    method: str,
    input_dtype: str = "int8",
    output_dtype: str = "int8",
    calibration: Mapping[str, np.ndarray] | None = None,
) -> bytes:
    """Convert with one method; `calibration` (inputs by name) is required for int8."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=["serving_default"])
    if method == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif method == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif method == "int8":
        if not calibration:
            raise ModelError("int8 quantization needs calibration data")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: _representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # Model I/O as the policy requires; float32 keeps quantize/dequantize ops at the edges.
        converter.inference_input_type = tf.dtypes.as_dtype(input_dtype) if input_dtype != "float32" else tf.float32
        converter.inference_output_type = tf.dtypes.as_dtype(output_dtype) if output_dtype != "float32" else tf.float32
    elif method != "float32":
        raise ValueError(f"unknown method {method!r}")
    try:
        return converter.convert()
    except Exception as exc:  # noqa: BLE001 - the converter raises many types, all meaning "cannot convert"
        raise ModelError(f"TFLite conversion ({method}) failed: {_converter_error(exc)}") from None


def _converter_error(exc: Exception) -> str:
    """The converter's first error, without the MLIR location that precedes it."""
    lines = [line for line in str(exc).splitlines() if "error:" in line] or str(exc).splitlines() or [type(exc).__name__]
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


def _representative(calibration: Mapping[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    # Feed by input name: the signature's input order need not match Keras' order.
    samples = len(next(iter(calibration.values())))
    for index in range(samples):
        yield {name: array[index : index + 1] for name, array in calibration.items()}
