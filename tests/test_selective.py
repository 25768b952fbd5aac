"""gate.quantization.fallback on a tiny real model whose int8 PTQ fails for a known reason: an outlier channel.

The MLP is trained in the fixture, then one channel of its "features" layer
is scaled up 1000x and the classifier's weights from it down as much (ReLU is
positively homogeneous: the float model computes the same function). int8
gives that tensor one scale, set by the outlier, and the other channels round
to zero; keeping "features" and "classifier" float, or int16 activations,
recovers the accuracy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import digits

pytestmark = pytest.mark.slow  # end-to-end: real TensorFlow conversions or gate runs

OUTLIER_FACTOR = 1000.0
CALIBRATION = 200


def _accuracy(model: bytes, x: np.ndarray, y: np.ndarray) -> float:
    from ai_edge_litert.interpreter import Interpreter

    from gate.targets.litert import from_model_output, to_model_input
    from gate.tasks.classification import CLASSIFICATION

    runner = Interpreter(model_content=model).get_signature_runner("serving_default")
    ((name, detail),) = runner.get_input_details().items()
    ((output, output_detail),) = runner.get_output_details().items()
    outputs = runner(**{name: to_model_input(x, detail)})[output]
    return CLASSIFICATION.score(from_model_output(outputs, output_detail), y)[0]


def _io(model: bytes) -> tuple[str, str]:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=model).get_signature_runner("serving_default")
    ((_, i),), ((_, o),) = runner.get_input_details().items(), runner.get_output_details().items()
    return np.dtype(i["dtype"]).name, np.dtype(o["dtype"]).name


def _op_dtypes(model: bytes) -> list[tuple[str, str]]:
    """(op, dtype of its first output) in graph order."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    return [(op["op_name"], np.dtype(tensors[op["outputs"][0]]["dtype"]).name) for op in interpreter._get_ops_details()]


class Example:
    """The SavedModel, its float .tflite, calibration and eval data."""

    def __init__(self, folder: Path) -> None:
        import keras

        from gate.frontends.keras import _load_keras3
        from gate.quantization.convert import convert, full_integer

        x_train, y_train, self.x_eval, self.y_eval = digits()
        keras.utils.set_random_seed(0)
        inputs = keras.Input((64,), name="pixels")
        x = keras.layers.Dense(32, activation="relu", name="hidden")(inputs)
        x = keras.layers.Dense(32, activation="relu", name="features")(x)
        outputs = keras.layers.Dense(10, activation="softmax", name="classifier")(x)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
        model.fit(x_train, y_train, epochs=15, batch_size=32, verbose=0)

        features, classifier = model.get_layer("features"), model.get_layer("classifier")
        channel = int(np.argmax(keras.Model(inputs, features.output).predict(x_train, verbose=0).mean(axis=0)))
        kernel, bias = features.get_weights()
        kernel[:, channel] *= OUTLIER_FACTOR
        bias[channel] *= OUTLIER_FACTOR
        features.set_weights([kernel, bias])
        kernel, bias = classifier.get_weights()
        kernel[channel] /= OUTLIER_FACTOR
        classifier.set_weights([kernel, bias])

        model.save(folder / "model.keras")
        self.saved_model = _load_keras3(
            folder / "model.keras", folder / "saved_model", fixed_batch=False
        ).saved_model_dir
        self.calibration = {"pixels": x_train[:CALIBRATION]}
        self.float_tflite = convert(self.saved_model, method="float32").tflite
        self.int8 = full_integer(self.saved_model, self.calibration, input_dtype="int8", output_dtype="int8")
        self.float_accuracy = _accuracy(self.float_tflite, self.x_eval, self.y_eval)
        # As gate exports recurrent models: a signature of batch one, which converts to a fixed batch.
        self.saved_model_batch1 = _load_keras3(
            folder / "model.keras", folder / "batch1", fixed_batch=True
        ).saved_model_dir

    def accuracy(self, model: bytes) -> float:
        return _accuracy(model, self.x_eval, self.y_eval)


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Example:
    return Example(tmp_path_factory.mktemp("outlier"))


def test_the_example_loses_accuracy_in_int8(example) -> None:
    assert example.float_accuracy - example.accuracy(example.int8) > 5.0


def test_ranking_puts_the_two_ops_around_the_outlier_tensor_first(example) -> None:
    from gate.quantization.ranking import rank_layers

    layers = rank_layers(example.saved_model, example.calibration)

    assert {layer.name for layer in layers[:2]} == {"features", "classifier"}
    assert {layer.name for layer in layers[2:]} == {"classifier (SOFTMAX)", "hidden"}
    by_name = {layer.name: layer for layer in layers}
    assert by_name["features"].op == "FULLY_CONNECTED"
    assert by_name["features"].channel_range_ratio > 100  # the outlier is visible in the ranking
    assert by_name["hidden"].channel_range_ratio < 20
    assert by_name["features"].error > 100 * by_name["hidden"].error


def test_a_screened_ranking_measures_the_worst_of_the_screen_again_on_every_sample(example) -> None:
    """A model of more ops than `refined`: every op on the first `screen` samples, then the worst again on all."""
    from gate.quantization.ranking import rank_layers

    on_all = {layer.name: layer.error for layer in rank_layers(example.saved_model, example.calibration)}
    on_four = {layer.name: layer.error for layer in rank_layers(example.saved_model, example.calibration, samples=4)}

    screened = rank_layers(example.saved_model, example.calibration, screen=4, refined=2)

    assert {layer.name for layer in screened[:2]} == set(sorted(on_four, key=on_four.__getitem__)[-2:])
    assert [layer.error for layer in screened[:2]] == sorted(
        (on_all[layer.name] for layer in screened[:2]), reverse=True
    )
    assert [layer.error for layer in screened[2:]] == sorted(
        (on_four[layer.name] for layer in screened[2:]), reverse=True
    )
    assert len(on_all) == len(screened) == 4


def test_keeping_the_two_ops_float_recovers_the_accuracy_with_int8_io(example) -> None:
    from gate.quantization.fallback import convert_selective
    from gate.quantization.ranking import rank_layers

    layers = rank_layers(example.saved_model, example.calibration)
    model = convert_selective(
        example.saved_model,
        example.calibration,
        keep_float=[layer.name for layer in layers[:2]],
        input_dtype="int8",
        output_dtype="int8",
    )

    assert example.float_accuracy - example.accuracy(model) <= 2.0
    assert _io(model) == ("int8", "int8")
    assert _op_dtypes(model) == [
        ("FULLY_CONNECTED", "int8"),  # hidden
        ("DEQUANTIZE", "float32"),
        ("FULLY_CONNECTED", "float32"),  # features
        ("FULLY_CONNECTED", "float32"),  # classifier
        ("QUANTIZE", "int8"),
        ("SOFTMAX", "int8"),
    ]


@pytest.mark.parametrize(
    ("input_dtype", "output_dtype"),
    [("int8", "int8"), ("uint8", "uint8"), ("float32", "float32"), ("float32", "int8"), ("int8", "float32")],
)
def test_model_io_dtypes_are_as_asked(example, input_dtype, output_dtype) -> None:
    from gate.quantization.fallback import convert_selective

    model = convert_selective(
        example.saved_model,
        example.calibration,
        keep_float=["features", "classifier"],
        input_dtype=input_dtype,
        output_dtype=output_dtype,
    )

    assert _io(model) == (input_dtype, output_dtype)
    assert example.float_accuracy - example.accuracy(model) <= 2.0


def test_an_output_op_kept_float_still_has_the_output_dtype_asked(example) -> None:
    from gate.quantization.fallback import convert_selective

    model = convert_selective(
        example.saved_model,
        example.calibration,
        keep_float=["classifier (SOFTMAX)"],
        input_dtype="int8",
        output_dtype="int8",
    )

    assert _io(model) == ("int8", "int8")
    assert _op_dtypes(model)[-2:] == [("SOFTMAX", "float32"), ("QUANTIZE", "int8")]


def test_nothing_kept_float_is_gates_int8_model(example) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from gate.quantization.fallback import convert_selective

    model = convert_selective(
        example.saved_model, example.calibration, keep_float=[], input_dtype="int8", output_dtype="int8"
    )

    def quantization(content: bytes) -> list:
        details = Interpreter(model_content=content).get_tensor_details()
        return sorted((t["name"], np.dtype(t["dtype"]).name, t["quantization"]) for t in details)

    # Only the conversion metadata differs: same ops, tensors and scales as the int8 method.
    assert quantization(model) == quantization(example.int8)
    assert _op_dtypes(model) == _op_dtypes(example.int8)


@pytest.mark.parametrize("io_dtype", ["int8", "int16", "float32"])
def test_int16x8_recovers_the_accuracy_with_the_io_asked(example, io_dtype) -> None:
    from gate.quantization.int16x8 import convert_int16x8

    model = convert_int16x8(example.saved_model, example.float_tflite, example.calibration, io_dtype=io_dtype)

    assert _io(model) == (io_dtype, io_dtype)
    assert ("FULLY_CONNECTED", "int16") in _op_dtypes(model)
    assert example.float_accuracy - example.accuracy(model) <= 2.0


def test_the_ranking_reuses_the_int8_conversions_calibration_and_ranks_the_same(example) -> None:
    from gate.quantization.convert import _CALIBRATED, _KEPT, full_integer
    from gate.quantization.ranking import rank_layers

    _CALIBRATED.clear()
    _KEPT.clear()
    full_integer(example.saved_model, example.calibration, input_dtype="int8", output_dtype="int8")
    assert len(_KEPT) == 1  # else every ranking calibrates the model a second time
    reused = rank_layers(example.saved_model, example.calibration)
    assert not _CALIBRATED  # no calibrate-only conversion ran

    _KEPT.clear()
    assert rank_layers(example.saved_model, example.calibration) == reused
    assert _CALIBRATED  # this time it calibrated on its own


def test_a_selective_build_is_the_same_from_the_int8_conversions_calibration_or_its_own(example) -> None:
    """The fallback publishes what the quantizer builds from either calibrated model, so its bytes must not depend on
    which one the process had (the int8 candidate's, or a calibrate-only conversion when int8 did not run here)."""
    from gate.quantization.convert import _CALIBRATED, _KEPT, full_integer
    from gate.quantization.fallback import convert_selective

    def selective() -> bytes:
        return convert_selective(
            example.saved_model, example.calibration, keep_float=["features"], input_dtype="int8", output_dtype="int8"
        )

    _CALIBRATED.clear()
    _KEPT.clear()
    own = selective()
    assert _CALIBRATED and not _KEPT  # built from a calibrate-only conversion
    _CALIBRATED.clear()
    full_integer(example.saved_model, example.calibration, input_dtype="int8", output_dtype="int8")
    from_int8 = selective()
    assert not _CALIBRATED  # built from the int8 conversion's calibration, without calibrating again
    assert from_int8 == own


def test_the_same_inputs_give_byte_identical_models(example) -> None:
    from gate.quantization.convert import _CALIBRATED, _KEPT
    from gate.quantization.fallback import convert_selective
    from gate.quantization.int16x8 import convert_int16x8
    from gate.quantization.ranking import rank_layers

    def everything() -> tuple:
        _CALIBRATED.clear()  # calibrate again
        _KEPT.clear()
        ranking = rank_layers(example.saved_model, example.calibration)
        kept = convert_selective(
            example.saved_model,
            example.calibration,
            keep_float=["features", "classifier"],
            input_dtype="int8",
            output_dtype="int8",
        )
        int16x8 = tuple(
            convert_int16x8(example.saved_model, example.float_tflite, example.calibration, io_dtype=io_dtype)
            for io_dtype in ("int8", "int16")
        )
        return ranking, kept, int16x8

    assert everything() == everything()


# fmt: skip on this table: a case a row or two, as it reads; ruff format would give each field a line.
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"keep_float": ["featurs"]},
         "keep_float: no layer named 'featurs' (did you mean 'features'?); rank_layers() lists the names"),
        ({"keep_float": [], "input_dtype": "int16"}, "input_dtype: expected one of int8, uint8, float32, got 'int16'"),
    ],
)  # fmt: skip
def test_bad_arguments_are_named(example, arguments, message) -> None:
    from gate.quantization.fallback import convert_selective

    with pytest.raises(ValueError) as error:
        convert_selective(
            example.saved_model, example.calibration, **{"input_dtype": "int8", "output_dtype": "int8", **arguments}
        )
    assert str(error.value) == message


def test_int16x8_with_int8_io_says_what_to_install_without_litert_quantizer(example, monkeypatch) -> None:
    from gate.errors import ModelError
    from gate.quantization.int16x8 import convert_int16x8

    monkeypatch.setitem(sys.modules, "litert_quantizer", None)  # import litert_quantizer now raises ImportError
    with pytest.raises(
        ModelError, match=r"^16x8 with int8 I/O needs litert-quantizer: pip install litert-quantizer==0\.11\.0$"
    ):
        convert_int16x8(example.saved_model, example.float_tflite, example.calibration, io_dtype="int8")


# fmt: skip on this table: a case a row or two, as it reads; ruff format would give each field a line.
@pytest.mark.parametrize(
    ("tensors", "layers", "names"),
    [
        # Keras 3 traces every layer call under "<layer>_<n>"
        (["functional_1/dense_1/MatMul;functional_1/dense_1/Relu", "functional_1/dense_1_2/MatMul",
          "StatefulPartitionedCall:0"],
         {"dense", "dense_1"}, ["dense", "dense_1", "dense_1 (SOFTMAX)"]),
        # tf.keras does not
        (["model/dense/MatMul;model/dense/Relu", "model/dense_1/MatMul", "StatefulPartitionedCall:0"],
         {"dense", "dense_1"}, ["dense", "dense_1", "dense_1 (SOFTMAX)"]),
        # a fused conv + batch norm + ReLU names every layer it computes
        (["m_1/Conv1_relu_1/Relu6;m_1/bn_Conv1_1/batchnorm/add_1;m_1/Conv1_1/convolution"],
         {"Conv1", "bn_Conv1"}, ["Conv1_relu+bn_Conv1+Conv1"]),
        # no layer path: the tensor's own name
        (["something"], set(), ["something"]),
    ],
)  # fmt: skip
def test_ops_are_named_after_their_keras_layers(tensors, layers, names) -> None:
    from gate.quantization.ranking import _Op, display_names

    ops, previous = [], None
    for index, tensor in enumerate(tensors):
        op = "SOFTMAX" if tensor.startswith("StatefulPartitionedCall") else "FULLY_CONNECTED"
        ops.append(_Op(op, (previous,) if previous else (f"input{index}",), (tensor,), True))
        previous = tensor

    assert list(display_names(ops, layers).values()) == names


def test_a_model_with_a_fixed_batch_of_one_is_ranked_and_converted(example) -> None:
    from gate.quantization.convert import convert
    from gate.quantization.fallback import convert_selective
    from gate.quantization.int16x8 import convert_int16x8
    from gate.quantization.ranking import rank_layers

    layers = rank_layers(example.saved_model_batch1, example.calibration)
    selective = convert_selective(
        example.saved_model_batch1,
        example.calibration,
        keep_float=["features", "classifier"],
        input_dtype="int8",
        output_dtype="int8",
    )
    float_tflite = convert(example.saved_model_batch1, method="float32").tflite
    int16x8 = convert_int16x8(example.saved_model_batch1, float_tflite, example.calibration, io_dtype="int8")

    assert [layer.name for layer in layers] == [
        layer.name for layer in rank_layers(example.saved_model, example.calibration)
    ]
    assert _io(selective) == _io(int16x8) == ("int8", "int8")


@pytest.mark.parametrize("limit", [1, 2])
def test_no_more_layers_than_search_max_float_layers_are_kept_float(example, limit) -> None:
    from gate.quantization.base import Setup
    from gate.quantization.fallback import build

    builds = []

    def loss(tflite: bytes) -> float:
        builds.append(tflite)
        return example.float_accuracy - example.accuracy(tflite)

    setup = Setup(
        calibration=example.calibration,
        allowed_loss=-50.0,  # a gain no build reaches: none stops early
        loss=loss,
        max_float_layers=limit,
        task="classification",
    )
    built = build(example.saved_model, setup)
    # One more layer float per try, up to the limit (of 4 the model has), then the quantizer's file of the best.
    assert len(builds) == limit + 1
    assert builds[-1] == built.tflite
    assert built.notes[1] == f"{limit} of 4 layers, ranked by the output error each causes when quantized alone"
    assert built.notes[0] == "kept in float: " + ", ".join(
        ["features (FULLY_CONNECTED)", "classifier (FULLY_CONNECTED)"][:limit]
    )


def test_the_fallback_publishes_the_quantizers_build_and_searches_again_when_a_prediction_was_wrong(example) -> None:
    """Tries are predicted (spliced); the winner is the quantizer's own file, and a prediction that does not measure
    as that file does sends the search back to the quantizer, so the choice is the quantizer's."""
    from gate.quantization.base import Setup
    from gate.quantization.fallback import convert_selective, grow_until_allowed

    def loss(tflite: bytes) -> float:
        return example.float_accuracy - example.accuracy(tflite)

    setup = Setup(calibration=example.calibration, allowed_loss=1.0, loss=loss, task="classification")

    def convert(layers) -> bytes:  # noqa: ANN001
        return convert_selective(
            example.saved_model,
            example.calibration,
            keep_float=[layer.tensor for layer in layers],
            input_dtype="int8",
            output_dtype="int8",
        )

    exact = grow_until_allowed(example.saved_model, setup, convert)
    assert [layer.name for layer in exact[2]] == ["features", "classifier"]
    # A prediction that every try is the float model: it "passes" at one layer, which the quantizer's file does not.
    lied = grow_until_allowed(example.saved_model, setup, convert, predict=lambda layers: example.float_tflite)
    assert lied == exact


def test_the_ranking_runs_each_variant_on_the_first_samples_and_finds_the_same_two_ops(example) -> None:
    from gate.quantization.ranking import rank_layers

    everything = len(next(iter(example.calibration.values())))
    on_all, on_eight = (
        rank_layers(example.saved_model, example.calibration, everything),
        rank_layers(example.saved_model, example.calibration, 8),
    )
    assert [layer.error for layer in on_all] != [layer.error for layer in on_eight]  # measured on fewer samples
    assert {layer.name for layer in on_eight[:2]} == {layer.name for layer in on_all[:2]} == {"features", "classifier"}


def test_each_output_of_a_model_with_several_is_measured_on_its_own_scale(tmp_path) -> None:
    """A value head a thousand times larger than the class scores beside it must not hide what int8 does to them."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from gate.frontends.keras import _load_keras3
    from gate.quantization.convert import calibrated_model, mlir_quantize
    from gate.quantization.ranking import rank_layers, tflite_ops

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,), name="features")
    hidden = keras.layers.Dense(16, activation="relu", name="trunk")(inputs)
    klass = keras.layers.Dense(3, activation="softmax", name="class")(hidden)
    value = keras.layers.Dense(1, name="value", kernel_initializer=keras.initializers.Constant(1000.0))(hidden)
    keras.Model(inputs, [value, klass]).save(tmp_path / "model.keras")
    loaded = _load_keras3(tmp_path / "model.keras", tmp_path / "saved", fixed_batch=False, named_outputs=True)
    probe = np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32)
    calibration = {loaded.inputs[0].name: probe}

    by_name = {layer.name: layer for layer in rank_layers(loaded.saved_model_dir, calibration)}

    # Independently: the class head's Dense int8 alone, every other op float, run by LiteRT, on the class scores.
    calibrated = calibrated_model(loaded.saved_model_dir, calibration)
    every = [tensor for op in tflite_ops(calibrated) for tensor in op.outputs]

    def outputs(denylist: list[str]) -> dict[str, np.ndarray]:
        model = mlir_quantize(calibrated, denylist=denylist, input_dtype="float32", output_dtype="float32")
        runner = Interpreter(model_content=model).get_signature_runner("serving_default")
        return {key: value.astype(np.float64) for key, value in runner(**calibration).items()}

    reference = outputs(every)
    alone = outputs([tensor for tensor in every if tensor != by_name["class"].tensor])
    (scores,) = [key for key, values in reference.items() if values.shape[1] == 3]
    noise = np.sum(np.square(alone[scores] - reference[scores]))
    assert noise > 0
    assert by_name["class"].error == pytest.approx(noise / np.sum(np.square(reference[scores])), rel=1e-9)
