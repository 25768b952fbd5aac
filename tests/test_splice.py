"""gate.quantization.splice: each op's model spliced from two conversions is the quantizer's own, bit for bit.

For every op the layer ranking measures, on bundled models of every kind of graph gate ships (convolutions and
pooling, depthwise convolutions and residual adds, a wide convolution, an autoencoder),
the spliced model and TensorFlow's MLIR quantizer's (every other op denylisted) give the same outputs, exactly,
and the same int8 scale for the op's output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # real TensorFlow conversions

MODELS = Path(__file__).resolve().parent.parent / "models"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("digits_cnn", "train.npz"),
        ("digits_mobilenetv2", "train.npz"),
        ("digits_wide_cnn", "train.npz"),
        ("machine_ad", "calib.npz"),
    ],
)
def test_every_op_spliced_alone_is_the_quantizers_model_bit_for_bit(tmp_path, name, data) -> None:
    from gate.frontends.keras import _load_keras3
    from gate.quantization.convert import calibrated_model, mlir_quantize
    from gate.quantization.ranking import _output_scale, _rankable, _run, tflite_ops
    from gate.quantization.splice import OneOpInt8

    loaded = _load_keras3(MODELS / name / "model.keras", tmp_path / name, fixed_batch=False)
    with np.load(MODELS / name / data) as stored:
        calibration = {loaded.inputs[0].name: stored["x"][:64].astype(np.float32)}
    calibrated = calibrated_model(loaded.saved_model_dir, calibration)
    ops = tflite_ops(calibrated)
    every_tensor = [tensor for op in ops for tensor in op.outputs]

    def quantized(denylist: list[str]) -> bytes:
        return mlir_quantize(calibrated, denylist=denylist, input_dtype="float32", output_dtype="float32")

    one_op_int8 = OneOpInt8(quantized(every_tensor), quantized([]))
    probe = {input_name: array[:16] for input_name, array in calibration.items()}
    ranked = [op for op in ops if _rankable(op)]
    for op in ranked:
        spliced = one_op_int8.alone(op.outputs[0])
        by_quantizer = quantized([tensor for tensor in every_tensor if tensor not in op.outputs])
        assert spliced is not None, f"{op.name} {op.outputs[0]} was not spliced"
        outputs, expected = _run(spliced, probe)[0], _run(by_quantizer, probe)[0]
        assert outputs.keys() == expected.keys(), op.name
        assert all(np.array_equal(outputs[key], expected[key]) for key in expected), f"{op.name} {op.outputs[0]}"
        assert _output_scale(spliced, op.outputs[0]) == _output_scale(by_quantizer, op.outputs[0]) > 0
    assert len(ranked) >= 4
    assert one_op_int8.alone("no such tensor") is None


@pytest.mark.parametrize(
    ("name", "data"),
    [("digits_cnn", "train.npz"), ("digits_mobilenetv2", "train.npz"), ("machine_ad", "calib.npz")],
)
def test_the_fallbacks_tries_spliced_are_the_quantizers_builds_bit_for_bit(tmp_path, name, data) -> None:
    """KeptFloat: the int8 model (int8 I/O, as the default policy asks) with the ranking's first 1 to 4 layers float,
    run as LiteRT runs it, gives exactly what the quantizer's build of the same layers gives."""
    from gate.frontends.keras import _load_keras3
    from gate.quantization.convert import calibrated_model, mlir_quantize
    from gate.quantization.ranking import _run, every_op_float, rank_layers
    from gate.quantization.splice import KeptFloat

    loaded = _load_keras3(MODELS / name / "model.keras", tmp_path / name, fixed_batch=False)
    with np.load(MODELS / name / data) as stored:
        calibration = {loaded.inputs[0].name: stored["x"][:64].astype(np.float32)}
    calibrated = calibrated_model(loaded.saved_model_dir, calibration)
    ranked = rank_layers(loaded.saved_model_dir, calibration)
    int8 = mlir_quantize(calibrated, denylist=[], input_dtype="int8", output_dtype="int8")
    tries = KeptFloat(int8, every_op_float(loaded.saved_model_dir, calibration))
    (scale, zero_point), *_ = (detail["quantization"] for detail in _interpreter_inputs(int8))
    (x,) = calibration.values()
    probe = {loaded.inputs[0].name: np.clip(np.round(x[:16] / scale + zero_point), -128, 127).astype(np.int8)}
    for count in range(1, 5):
        layers = [layer.tensor for layer in ranked[:count]]
        spliced = tries.with_float(layers)
        assert spliced is not None, f"{layers} were not spliced"
        outputs = _run(spliced, probe)[0]
        expected = _run(mlir_quantize(calibrated, denylist=layers, input_dtype="int8", output_dtype="int8"), probe)[0]
        assert outputs.keys() == expected.keys()
        assert all(np.array_equal(outputs[key], expected[key]) for key in expected), f"{count} layers float"
    assert tries.with_float(["no such tensor"]) is None


def _interpreter_inputs(model: bytes) -> list[dict]:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=model).get_input_details()
