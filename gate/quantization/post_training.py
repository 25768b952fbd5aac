"""Post-training quantization by TensorFlow's converter: the float32 reference, int8, dynamic range, float16.

Each function is one method's builder in gate.quantization.methods' METHODS.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from gate.quantization.base import Built, NotApplicable, Setup
from gate.quantization.convert import full_integer, tflite_converter

if TYPE_CHECKING:
    import numpy as np


def float32(saved_model_dir: Path, setup: Setup) -> Built:
    return Built(tflite_converter(saved_model_dir).convert())


def dynamic_range(saved_model_dir: Path, setup: Setup) -> Built:
    import tensorflow as tf

    converter = tflite_converter(saved_model_dir)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return Built(converter.convert())


def float16(saved_model_dir: Path, setup: Setup) -> Built:
    import tensorflow as tf

    converter = tflite_converter(saved_model_dir)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return Built(converter.convert())


def int8(saved_model_dir: Path, setup: Setup) -> Built:
    assert setup.calibration is not None
    tflite = full_integer(
        saved_model_dir, setup.calibration, input_dtype=setup.input_dtype, output_dtype=setup.output_dtype
    )
    return Built(tflite, (f"calibrated on the first {_samples(setup.calibration):,} samples",))


def int8_all_calibration(saved_model_dir: Path, setup: Setup) -> Built:
    assert setup.calibration is not None and setup.all_calibration is not None
    used, available = _samples(setup.calibration), _samples(setup.all_calibration)
    if available <= used:
        raise NotApplicable(f"there is no more calibration data than int8 used ({used:,} samples)")
    tflite = full_integer(
        saved_model_dir, setup.all_calibration, input_dtype=setup.input_dtype, output_dtype=setup.output_dtype
    )
    return Built(tflite, (f"calibrated on all {available:,} calibration samples (int8 used {used:,})",))


def _samples(calibration: Mapping[str, np.ndarray] | None) -> int:
    return len(next(iter(calibration.values()))) if calibration else 0
