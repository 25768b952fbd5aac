"""The one registry of quantization methods, as gate.judge's CHECKS is for checks.

Each method carries its name, what it is, the data it needs, what it produces
(integer or float model I/O, float ops left or not, so that a policy that
cannot be met rules it out before it is tried) and how it is built. The
manifest's `method` key, the search (`method = "auto"` tries them in this
order, from the most to the least deployable), the pipeline and the README's
method table (tested against `METHODS`) all read it: adding a method is one
entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.keys import Value

if TYPE_CHECKING:
    # Only in annotations: `gate comment` imports this module through gate.cli and must run on the
    # standard library alone (its workflow installs gate with --no-deps).
    import numpy as np

REFERENCE = "float32"  # the unquantized .tflite every candidate is measured against
AUTO = "auto"  # search METHODS in order for the first candidate that passes
DEFAULT_METHOD = AUTO
# What full-integer conversion makes the model's inputs and outputs when the policy does not say.
DEFAULT_IO_DTYPE = "int8"


@dataclass(frozen=True)
class Setup:
    """What building a candidate needs beyond the SavedModel."""

    input_dtype: str = DEFAULT_IO_DTYPE
    output_dtype: str = DEFAULT_IO_DTYPE
    calibration: Mapping[str, np.ndarray] | None = None  # inputs by name, one row per sample (the first N)
    all_calibration: Mapping[str, np.ndarray] | None = None  # every calibration sample there is
    float_tflite: bytes = b""  # the float32 reference, for methods that start from it
    # The metric change a candidate may show (gate.search derives it from the policy), and how to measure one:
    # a method that searches itself (selective fallback) stops as soon as a build is within it.
    allowed_change: float | None = None
    metric_change: Callable[[bytes], float] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. what QAT needs: the model file and train data


@dataclass(frozen=True)
class Built:
    """A candidate's .tflite bytes and how it was made, for the report."""

    tflite: bytes
    notes: tuple[str, ...] = ()
    # Seconds of the method's own steps besides the conversion itself, e.g. {"ranking": 2.7} or {"QAT training": 12}.
    seconds: dict[str, float] = field(default_factory=dict)


def io_dtypes(policy: Mapping[str, Value]) -> tuple[str, str]:
    """The model I/O dtypes a policy asks of full-integer conversion (its io.* checks), with the default."""
    return str(policy.get("io.input_dtype", DEFAULT_IO_DTYPE)), str(policy.get("io.output_dtype", DEFAULT_IO_DTYPE))


@dataclass(frozen=True)
class Method:
    """A way to convert the float model to .tflite."""

    name: str
    description: str
    needs_calibration: bool  # a representative dataset (calib.npz or train.npz) drives the conversion
    build: Callable[[Path, Setup], Built]  # (SavedModel folder, setup) -> .tflite; TensorFlow is imported by then
    # What model I/O it produces, for ruling it out before it is tried: "policy" (the io.* dtypes) or "float32".
    io: str = "policy"
    float_ops: bool = False  # it leaves ops on float tensors
    needs_training_data: bool = False
    selectable: bool = True  # False for the float32 reference, which is not a way to quantize


def _converter(saved_model_dir: Path) -> Any:
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=["serving_default"])


def representative_dataset(calibration: Mapping[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    # Feed by input name: the signature's input order need not match Keras' order.
    samples = len(next(iter(calibration.values())))
    for index in range(samples):
        yield {name: array[index : index + 1] for name, array in calibration.items()}


def _samples(calibration: Mapping[str, np.ndarray] | None) -> int:
    return len(next(iter(calibration.values()))) if calibration else 0


def _float32(saved_model_dir: Path, setup: Setup) -> Built:
    return Built(_converter(saved_model_dir).convert())


def _dynamic_range(saved_model_dir: Path, setup: Setup) -> Built:
    import tensorflow as tf

    converter = _converter(saved_model_dir)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return Built(converter.convert())


def _float16(saved_model_dir: Path, setup: Setup) -> Built:
    import tensorflow as tf

    converter = _converter(saved_model_dir)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return Built(converter.convert())


def full_integer(
    saved_model_dir: Path, calibration: Mapping[str, np.ndarray], *, input_dtype: str, output_dtype: str
) -> bytes:
    """Full-integer int8 post-training quantization: int8 activations and weights, calibrated."""
    import tensorflow as tf

    converter = _converter(saved_model_dir)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: representative_dataset(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    # Model I/O as the policy requires; float32 keeps quantize/dequantize ops at the edges.
    converter.inference_input_type = tf.dtypes.as_dtype(input_dtype)
    converter.inference_output_type = tf.dtypes.as_dtype(output_dtype)
    from gate.selective import keeping_calibration

    with keeping_calibration(saved_model_dir, calibration):  # the layer ranking starts from it
        return converter.convert()


def _int8(saved_model_dir: Path, setup: Setup) -> Built:
    assert setup.calibration is not None
    tflite = full_integer(saved_model_dir, setup.calibration, input_dtype=setup.input_dtype,
                          output_dtype=setup.output_dtype)  # fmt: skip
    return Built(tflite, (f"calibrated on the first {_samples(setup.calibration):,} samples",))


class NotApplicable(Exception):  # noqa: N818 - a reason, not a failure
    """A method that does not apply to this model; str() says why (the candidate is skipped with it)."""


def _int8_all_calibration(saved_model_dir: Path, setup: Setup) -> Built:
    assert setup.calibration is not None and setup.all_calibration is not None
    used, available = _samples(setup.calibration), _samples(setup.all_calibration)
    if available <= used:
        raise NotApplicable(f"there is no more calibration data than int8 used ({used:,} samples)")
    tflite = full_integer(saved_model_dir, setup.all_calibration, input_dtype=setup.input_dtype,
                          output_dtype=setup.output_dtype)  # fmt: skip
    return Built(tflite, (f"calibrated on all {available:,} calibration samples (int8 used {used:,})",))


def _float_fallback(saved_model_dir: Path, setup: Setup) -> Built:
    from gate import selective

    return selective.build(saved_model_dir, setup)


def _int16x8(saved_model_dir: Path, setup: Setup) -> Built:
    from gate import selective

    return selective.build_int16x8(saved_model_dir, setup)


def _qat_int8(saved_model_dir: Path, setup: Setup) -> Built:
    from gate import qat_job  # the parent's side: gate.qat itself runs in a process of its own

    return qat_job.build(saved_model_dir, setup)


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method(REFERENCE, "float32 .tflite: no quantization; the reference every method is measured against",
               needs_calibration=False, build=_float32, io="float32", float_ops=True, selectable=False),
        Method("int8", "Full-integer int8 post-training quantization: int8 weights and activations, calibrated on "
               "the first `calibration_samples` of the calibration data; model I/O as `io.input_dtype`/"
               "`io.output_dtype` say (int8 by default).", needs_calibration=True, build=_int8),
        Method("int8-all-calibration", "As `int8`, calibrated on every calibration sample there is: helps when "
               "the first samples miss part of the activations' range.", needs_calibration=True,
               build=_int8_all_calibration),
        Method("qat-int8", "Quantization-aware training (tensorflow-model-optimization) on train.npz for "
               "`qat.epochs`, then full-int8 conversion; Keras 3 models are rebuilt in tf-keras first, and the "
               "rebuild is shown to be faithful before training.", needs_calibration=True, build=_qat_int8,
               needs_training_data=True),
        Method("int8-float-fallback", "Selective quantization: int8 everywhere except the fewest layers that "
               "quantization harms most, found by measurement (layers ranked by their quantization error, then "
               "kept in float one by one until the metric is within the policy); model I/O as for `int8`.",
               needs_calibration=True, build=_float_fallback, float_ops=True),
        Method("int16x8", "int16 activations with int8 weights (16x8): 256 times finer activations where int8 "
               "ones collapse; int8 I/O by requantizing at the edges (litert-quantizer), or float32 I/O when the "
               "policy asks for it; slower reference kernels.", needs_calibration=True, build=_int16x8),
        Method("dynamic_range", "Dynamic-range quantization: int8 weights, float activations and float I/O.",
               needs_calibration=False, build=_dynamic_range, io="float32", float_ops=True),
        Method("float16", "float16 weights; float32 activations and I/O.", needs_calibration=False,
               build=_float16, io="float32", float_ops=True),
    )
}  # fmt: skip

SELECTABLE = tuple(name for name, method in METHODS.items() if method.selectable)
METHOD_CHOICES = (AUTO, *SELECTABLE)


def search_order(method: str, restrict: Sequence[str] = ()) -> tuple[str, ...]:
    """The candidates a manifest's `method` asks for: one method, or for "auto" every one in order (or `restrict`'s)."""
    if method != AUTO:
        return (method,)
    return tuple(name for name in SELECTABLE if not restrict or name in restrict)


def method_reference() -> str:
    """The README's table of methods, from the registry (a test keeps the README in sync)."""
    rows = ["| Method | Needs calibration data | What it is |", "|---|---|---|",
            f"| `{AUTO}` (default) | when a candidate does | Tries the methods below in this order and keeps the "
            "first that passes every check of the policy (see \"The candidate search\"). |"]  # fmt: skip
    for method in METHODS.values():
        if method.selectable:
            rows.append(f"| `{method.name}` | {'yes' if method.needs_calibration else 'no'} | {method.description} |")
    return "\n".join(rows) + "\n"
