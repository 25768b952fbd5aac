"""16x8 quantization: int16 activations, int8 weights; int8 I/O through litert-quantizer, else TFLiteConverter.

16x8 with int16 or float32 I/O is TFLiteConverter's EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8.
TensorFlow cannot give a 16x8 model int8 I/O (modify_model_io_type refuses); litert-quantizer can: int16
inside, QUANTIZE ops requantizing to int8 at the edges, so the model meets an int8-I/O policy. That path
needs `litert-quantizer`, imported only when asked for.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from gate.errors import ModelError, translated
from gate.findings import LayerError
from gate.quantization.base import Built, NotApplicable, Setup
from gate.quantization.convert import converter_error, representative_dataset
from gate.quantization.fallback import grow_until_allowed
from gate.quantization.ranking import BATCH, dynamic_batch

INT16X8_IO_DTYPES = ("int8", "int16", "float32")


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
    with translated(lambda exc: f"TFLite conversion (16x8) failed: {converter_error(exc)}"):
        return converter.convert()


def _litert_int16x8_int8_io(
    float_tflite: bytes, calibration: Mapping[str, np.ndarray], int16_layers: Sequence[LayerError] | None = None
) -> bytes:
    """int8 model I/O; int16 activations everywhere, or only on `int16_layers` (int8 elsewhere) when given.

    A rule's regex is searched in an op's output tensor names joined by ";" with a trailing ";"
    (litert_quantizer's get_op_scope), so `^<tensor>;$` picks one op; the last matching rule wins. A rule
    names the layer's own op type: one for every type would also match the virtual OUTPUT op reading a
    model output, and turn that output int16. Where int16 meets int8, QUANTIZE ops requantize: integer-only.
    """
    try:
        from litert_quantizer import Quantizer, qtyping
        from litert_quantizer.recipe_manager import RecipeManager
    except ImportError:
        raise ModelError("16x8 with int8 I/O needs litert-quantizer: pip install litert-quantizer==0.11.0") from None

    # litert-quantizer draws tqdm progress bars on stderr; the worker's stderr is gate's log.
    def failed(exc: Exception) -> str:  # litert-quantizer raises ValueError, RuntimeError, KeyError...
        return f"16x8 quantization (litert-quantizer) failed: {type(exc).__name__}: {exc}".splitlines()[0][:400]

    with contextlib.redirect_stderr(io.StringIO()), translated(failed):
        ops = qtyping.TFLOperationName
        recipe = RecipeManager()
        everywhere = 16 if int16_layers is None else 8
        recipe.add_static_config(".*", ops.ALL_SUPPORTED, activation_num_bits=everywhere, weight_num_bits=8)
        # The virtual INPUT/OUTPUT ops at 8 bits: QUANTIZE ops requantize int8 <-> int16 at the model's edges.
        recipe.add_static_config(".*", ops.INPUT, activation_num_bits=8, weight_num_bits=8)
        recipe.add_static_config(".*", ops.OUTPUT, activation_num_bits=8, weight_num_bits=8)
        for layer in int16_layers or ():
            recipe.add_static_config(
                f"^{re.escape(layer.tensor)};$", getattr(ops, layer.op), activation_num_bits=16, weight_num_bits=8
            )
        # It refuses a model whose tensor names are not unique, and ops it has no rule for stay float.
        quantizer = Quantizer(float_tflite, recipe.get_quantization_recipe())
        ranges = _litert_ranges(quantizer, float_tflite, calibration)
        result = quantizer.quantize(ranges, enable_progress_report=False)
    return bytes(result.quantized_model)


def _litert_ranges(quantizer, float_tflite: bytes, calibration: Mapping[str, np.ndarray]) -> dict:
    """Global min/max over every sample, as TFLiteConverter calibrates.

    litert-quantizer's calibrate() keeps a moving average (0.95) of each
    step's min/max, so one sample per step would shrink the ranges and depend
    on the order; one step per batch of samples, merged by min/max, does not.
    """
    samples = len(next(iter(calibration.values())))
    merged: dict = {}
    step = BATCH if dynamic_batch(float_tflite) else 1
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


def build(saved_model_dir: Path, setup: Setup) -> Built:
    """The int16x8 candidate, with the model I/O the policy asks for where 16x8 can give it."""
    assert setup.calibration is not None
    if setup.input_dtype != setup.output_dtype or setup.input_dtype not in INT16X8_IO_DTYPES:
        raise NotApplicable(
            f"16x8 gives int8, int16 or float32 I/O alike on both sides, and the policy asks for "
            f"{setup.input_dtype} input and {setup.output_dtype} output"
        )
    tflite = convert_int16x8(saved_model_dir, setup.float_tflite, setup.calibration, io_dtype=setup.input_dtype)
    how = "litert-quantizer (16x8 inside, int8 at the edges)" if setup.input_dtype == "int8" else "TFLiteConverter"
    return Built(
        tflite,
        (
            f"int16 activations, int8 weights, {setup.input_dtype} I/O, by {how}",
            f"calibrated on the first {len(next(iter(setup.calibration.values()))):,} samples",
        ),
    )


def build_on_ranked_layers(saved_model_dir: Path, setup: Setup) -> Built:
    """int8 with the most harmful layers at int16 activations, one more at a time, until it passes: integer-only.

    The layers are those float fallback would keep in float, by the same ranking; int16 activations keep
    the model integer, so it runs where float cannot (integer-only microcontrollers and NPUs). Measured on
    the bundled digits_outlier_mlp (/work/proto22): int16 on its two ranked layers recovers 96.67% where
    int8 scores 67.78% (float fallback on the same layers: 97.22%).
    """
    assert setup.calibration is not None
    if (setup.input_dtype, setup.output_dtype) != ("int8", "int8"):
        raise NotApplicable(
            f"it gives int8 model I/O, and the policy asks for {setup.input_dtype} input and "
            f"{setup.output_dtype} output"
        )
    calibration = setup.calibration
    ranked, tflite, layers = grow_until_allowed(
        saved_model_dir, setup, lambda layers: _litert_int16x8_int8_io(setup.float_tflite, calibration, layers),
        leave_out=setup.no_int16_kernel,
    )  # fmt: skip
    names = ", ".join(f"{layer.name} ({layer.op})" for layer in layers)
    notes = [f"int16 activations on: {names}; int8 elsewhere, int8 I/O (litert-quantizer)",
             f"{len(layers)} of {len(ranked)} layers, ranked as float fallback ranks them"]  # fmt: skip
    if left := [layer for layer in ranked if layer.op in setup.no_int16_kernel]:
        why = "; ".join(f"{op}: {setup.no_int16_kernel[op]}" for op in sorted({layer.op for layer in left}))
        names = ", ".join(layer.name for layer in left)
        notes.append(
            f"not given int16 activations, as the target has no int16 kernel for their operator: {names} ({why}); "
            f"in the built file, {_computed_in(tflite, {layer.op for layer in left})}"
        )
    return Built(tflite, tuple(notes))


def _computed_in(tflite: bytes, operators: set[str]) -> str:
    """'EXP computes in FLOAT32': what the built file does with `operators`, read from its own tensors.

    litert-quantizer can leave an operator it gives no int16 activations in float (DEQUANTIZE, EXP, QUANTIZE) rather
    than int8: the note says what the file holds, and ops.integer_only judges it.
    """
    from gate.quantization.ranking import _interpreter

    interpreter = _interpreter(tflite)
    tensors = {tensor["index"]: tensor for tensor in interpreter.get_tensor_details()}
    dtypes: dict[str, set[str]] = {}
    # _get_ops_details is what LiteRT's own model analyzer uses; there is no public equivalent.
    for op in interpreter._get_ops_details():
        if op["op_name"] in operators and op["outputs"].size:
            dtypes.setdefault(op["op_name"], set()).add(np.dtype(tensors[op["outputs"][0]]["dtype"]).name.upper())
    return "; ".join(
        f"{name} computes in {' and '.join(sorted(dtypes[name]))}" if name in dtypes else f"{name} is not in it"
        for name in sorted(operators)
    )
