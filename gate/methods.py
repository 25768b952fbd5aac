"""The one registry of quantization methods, as gate.judge's CHECKS is for checks.

Each method carries its name, what it is, the data it needs and how it sets up
`tf.lite.TFLiteConverter`. The manifest's `method` key, the converter, the
pipeline and the README's method table (tested against `METHODS`) all read it:
adding a method is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gate.keys import Value

if TYPE_CHECKING:
    # Only in annotations: `gate comment` imports this module through gate.cli and must run on the
    # standard library alone (its workflow installs gate with --no-deps).
    import numpy as np

REFERENCE = "float32"  # the unquantized .tflite every candidate is measured against
DEFAULT_METHOD = "int8"
# What full-integer conversion makes the model's inputs and outputs when the policy does not say.
DEFAULT_IO_DTYPE = "int8"


@dataclass(frozen=True)
class Setup:
    """What a conversion needs beyond the SavedModel: model I/O types and calibration samples."""

    input_dtype: str = DEFAULT_IO_DTYPE
    output_dtype: str = DEFAULT_IO_DTYPE
    calibration: Mapping[str, np.ndarray] | None = None  # inputs by name, one row per sample


def io_dtypes(policy: Mapping[str, Value]) -> tuple[str, str]:
    """The model I/O dtypes a policy asks of full-integer conversion (its io.* checks), with the default."""
    return str(policy.get("io.input_dtype", DEFAULT_IO_DTYPE)), str(policy.get("io.output_dtype", DEFAULT_IO_DTYPE))


@dataclass(frozen=True)
class Method:
    """A way to convert the float model to .tflite."""

    name: str
    description: str
    needs_calibration: bool  # a representative dataset (calib.npz or train.npz) drives the conversion
    configure: Callable[[Any, Setup], None]  # sets up a TFLiteConverter; `tf` is imported by then
    selectable: bool = True  # False for the float32 reference, which is not a way to quantize


def _float32(converter: Any, setup: Setup) -> None:
    pass


def _dynamic_range(converter: Any, setup: Setup) -> None:
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]


def _float16(converter: Any, setup: Setup) -> None:
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


def _int8(converter: Any, setup: Setup) -> None:
    import tensorflow as tf

    if not setup.calibration:
        raise ValueError("int8 quantization needs calibration data")
    calibration = setup.calibration
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: _representative(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    # Model I/O as the policy requires; float32 keeps quantize/dequantize ops at the edges.
    converter.inference_input_type = tf.dtypes.as_dtype(setup.input_dtype)
    converter.inference_output_type = tf.dtypes.as_dtype(setup.output_dtype)


def _representative(calibration: Mapping[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    # Feed by input name: the signature's input order need not match Keras' order.
    samples = len(next(iter(calibration.values())))
    for index in range(samples):
        yield {name: array[index : index + 1] for name, array in calibration.items()}


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method(REFERENCE, "float32 .tflite: no quantization; the reference every method is measured against",
               needs_calibration=False, configure=_float32, selectable=False),
        Method("int8", "Full-integer int8 post-training quantization: int8 weights and activations, calibrated on a "
               "representative dataset; model I/O as `io.input_dtype`/`io.output_dtype` say (int8 by default).",
               needs_calibration=True, configure=_int8),
        Method("dynamic_range", "Dynamic-range quantization: int8 weights, float activations and float I/O.",
               needs_calibration=False, configure=_dynamic_range),
        Method("float16", "float16 weights; float32 activations and I/O.", needs_calibration=False, configure=_float16),
    )
}  # fmt: skip

SELECTABLE = tuple(name for name, method in METHODS.items() if method.selectable)


def method_reference() -> str:
    """The README's table of methods, from the registry (a test keeps the README in sync)."""
    rows = ["| Method | Needs calibration data | What it is |", "|---|---|---|"]
    for method in METHODS.values():
        if method.selectable:
            rows.append(f"| `{method.name}` | {'yes' if method.needs_calibration else 'no'} | {method.description} |")
    return "\n".join(rows) + "\n"
