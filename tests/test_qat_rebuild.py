"""gate.quantization.qat.rebuild: Keras 3 models rebuilt in tf-keras compute the same outputs; what cannot be
rebuilt says why.

Keras 3 and tf-keras live in one process here (imported by name): rebuilding
needs no tfmot, so these tests need no QAT process of their own.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gate.errors import ModelError
from gate.quantization.qat.construct import _make_layer, build, keras3_activations
from gate.quantization.qat.layers import KERAS3_ACTIVATIONS, LAYERS, SAME_ACTIVATIONS
from gate.quantization.qat.rebuild import _layer_plan, read_keras3_config, translate

pytestmark = pytest.mark.slow  # end-to-end: real TensorFlow conversions or gate runs

TOLERANCE = 1e-5


def _keras3_weights(model) -> dict[str, list[np.ndarray]]:
    """What write_keras3_reference saves, without the file."""
    return {layer.name: layer.get_weights() for layer in model.layers if layer.get_weights()}


def _randomize(model, seed: int = 0) -> None:
    """Weights far from their initial values, so a weight that is not copied shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        positive = type(layer).__name__ == "BatchNormalization"  # moving variances
        layer.set_weights(
            [
                (np.abs(rng.normal(size=w.shape)) * 0.5 + 0.5 if positive else rng.normal(size=w.shape) * 0.3).astype(
                    w.dtype
                )
                for w in layer.get_weights()
            ]
        )


def rebuilt_difference(model, inputs: list[np.ndarray], tmp_path: Path) -> float:
    """Save a Keras 3 model, rebuild it in tf-keras from the file, and compare outputs."""
    path = tmp_path / "model.keras"
    model.save(path)
    plan = translate(read_keras3_config(path), str(path))
    rebuilt = build(plan, _keras3_weights(model), str(path))
    feed = inputs if len(inputs) > 1 else inputs[0]
    expected = np.asarray(model(feed, training=False))
    actual = np.asarray(rebuilt(feed, training=False))
    assert actual.shape == expected.shape
    return float(np.max(np.abs(actual - expected)))


def _zoo(name: str):
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    if name == "cnn":
        model = keras.Sequential(
            [
                keras.Input((12, 12, 3), name="image"),
                layers.Rescaling(1 / 255.0),
                layers.Conv2D(8, 3, padding="same", use_bias=False),
                layers.BatchNormalization(),
                layers.ReLU(max_value=6.0),
                layers.DepthwiseConv2D(3, padding="same", activation="relu6"),
                layers.SeparableConv2D(8, 3, activation="swish"),
                layers.ZeroPadding2D(1),
                layers.AveragePooling2D(2),
                layers.MaxPooling2D(padding="same"),
                layers.Conv2DTranspose(4, 2, strides=2),
                layers.UpSampling2D(),
                layers.Cropping2D(1),
                layers.SpatialDropout2D(0.2),
                layers.GlobalAveragePooling2D(),
                layers.Dense(5, activation="softmax", kernel_regularizer="l2"),
            ]
        )
        return model, [rng.uniform(0, 255, (4, 12, 12, 3)).astype(np.float32)]
    if name == "functional":
        x_in = keras.Input((16,), name="features")
        a = layers.Dense(8, activation="gelu")(x_in)
        b = layers.Dense(8, activation="hard_swish")(x_in)
        c = layers.Add()([a, b])
        d = layers.Multiply()([c, layers.Activation("hard_sigmoid")(b)])
        e = layers.Concatenate()([layers.LeakyReLU(negative_slope=0.1)(d), layers.ELU()(c), layers.PReLU()(a)])
        f = layers.Reshape((4, 6))(layers.Dropout(0.5)(e))
        g = layers.Flatten()(layers.Permute((2, 1))(f))
        h = layers.Subtract()([layers.Dense(4, activation="tanh")(g), layers.Dense(4, activation="mish")(g)])
        i = layers.Maximum()([h, layers.Minimum()([h, layers.Average()([h, h])])])
        out = layers.Softmax()(layers.UnitNormalization()(i))
        return keras.Model(x_in, out), [rng.normal(size=(4, 16)).astype(np.float32)]
    if name == "sequence":
        x_in = keras.Input((8, 6), name="rows")
        x = layers.Normalization(mean=0.5, variance=2.0)(x_in)
        x = layers.Conv1D(8, 3, padding="same", activation="relu")(x)
        x = layers.ZeroPadding1D(1)(x)
        x = layers.Cropping1D(1)(x)
        x = layers.LayerNormalization()(x)
        x = layers.Bidirectional(layers.LSTM(6, return_sequences=True))(x)
        x = layers.GRU(6, return_sequences=True)(x)
        x = layers.SimpleRNN(6, return_sequences=True)(x)
        x = layers.Add()([x, layers.Attention(use_scale=True)([x, x])])
        x = layers.Add()([x, layers.MultiHeadAttention(num_heads=2, key_dim=3)(x, x)])
        x = layers.AdditiveAttention()([x, x])
        x = layers.TimeDistributed(layers.Dense(4))(x)
        x = layers.Concatenate()([layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)])
        out = layers.Dense(3, activation="sigmoid")(x)
        return keras.Model(x_in, out), [rng.normal(size=(4, 8, 6)).astype(np.float32)]
    if name == "embedding":
        model = keras.Sequential(
            [
                keras.Input((7,), dtype="int32", name="tokens"),
                layers.Embedding(20, 4),
                layers.GRU(5),
                layers.RepeatVector(3),
                layers.LSTM(4, go_backwards=True),
                layers.Dense(2),
            ]
        )
        return model, [rng.integers(0, 20, (4, 7)).astype(np.int32)]
    if name == "two_inputs":
        a_in, b_in = keras.Input((4,), name="a"), keras.Input((3,), name="b")
        out = layers.Dense(2)(layers.Concatenate()([layers.Dense(3)(a_in), b_in]))
        return keras.Model([a_in, b_in], out), [
            rng.normal(size=(4, 4)).astype(np.float32),
            rng.normal(size=(4, 3)).astype(np.float32),
        ]
    raise ValueError(name)


@pytest.mark.parametrize("name", ["cnn", "functional", "sequence", "embedding", "two_inputs"])
def test_a_rebuilt_model_computes_what_the_keras3_model_computes(name, tmp_path) -> None:
    model, inputs = _zoo(name)
    _randomize(model)
    assert rebuilt_difference(model, inputs, tmp_path) <= TOLERANCE


# Constructor arguments for the layers that need some, and the input to build them on.
LAYER_ARGUMENTS = {
    "Dense": {"units": 2},
    "Embedding": {"input_dim": 5, "output_dim": 2},
    "Conv1D": {"filters": 2, "kernel_size": 3},
    "Conv2D": {"filters": 2, "kernel_size": 3},
    "Conv1DTranspose": {"filters": 2, "kernel_size": 3},
    "Conv2DTranspose": {"filters": 2, "kernel_size": 3},
    "DepthwiseConv1D": {"kernel_size": 3},
    "DepthwiseConv2D": {"kernel_size": 3},
    "SeparableConv1D": {"filters": 2, "kernel_size": 3},
    "SeparableConv2D": {"filters": 2, "kernel_size": 3},
    "AveragePooling1D": {"pool_size": 2},
    "AveragePooling2D": {"pool_size": 2},
    "Reshape": {"target_shape": (4,)},
    "Permute": {"dims": (2, 1)},
    "RepeatVector": {"n": 2},
    "Dropout": {"rate": 0.1},
    "SpatialDropout1D": {"rate": 0.1},
    "SpatialDropout2D": {"rate": 0.1},
    "GaussianNoise": {"stddev": 0.1},
    "GaussianDropout": {"rate": 0.1},
    "Activation": {"activation": "relu"},
    "Dot": {"axes": 1},
    "Rescaling": {"scale": 0.5},
    "Normalization": {"mean": 0.0, "variance": 1.0},
    "LSTM": {"units": 2},
    "GRU": {"units": 2},
    "SimpleRNN": {"units": 2},
    "MultiHeadAttention": {"num_heads": 2, "key_dim": 2},
}


@pytest.mark.parametrize("class_name", sorted(LAYERS))
def test_every_layer_in_the_table_translates_into_a_tf_keras_layer(class_name) -> None:
    """The LAYERS table against the installed keras and tf_keras: nothing tf-keras rejects is passed on."""
    import keras
    import tf_keras

    if class_name in ("Bidirectional", "TimeDistributed"):
        layer = getattr(keras.layers, class_name)(
            keras.layers.LSTM(2) if class_name == "Bidirectional" else keras.layers.Dense(2)
        )
    else:
        layer = getattr(keras.layers, class_name)(**LAYER_ARGUMENTS.get(class_name, {}))
    entry = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    problems: list[str] = []
    plan = _layer_plan(entry, "test", problems, functional=False)
    assert problems == []
    rebuilt = _make_layer(tf_keras, plan)
    assert type(rebuilt).__name__ == class_name


def test_activations_the_table_calls_the_same_are_the_same_and_keras3_formulas_match_keras3() -> None:
    import keras
    import tensorflow as tf
    import tf_keras

    grid = tf.constant(np.linspace(-6, 6, 241, dtype=np.float32).reshape(1, -1))
    for name in SAME_ACTIVATIONS:
        assert np.allclose(keras.activations.get(name)(grid), tf_keras.activations.get(name)(grid), atol=1e-6), name
    ours = keras3_activations()
    for name, replacement in KERAS3_ACTIVATIONS.items():
        assert np.allclose(keras.activations.get(name)(grid), ours[replacement](grid), atol=1e-6), name
    # Why hard_sigmoid is replaced: tf-keras' own is clip(0.2x + 0.5), 0.083 away from Keras 3's.
    assert not np.allclose(keras.activations.hard_sigmoid(grid), tf_keras.activations.hard_sigmoid(grid), atol=0.05)


def _config(model, tmp_path: Path) -> dict:
    model.save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        return json.loads(archive.read("config.json"))


def _nested(keras):
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="inner")
    x_in = keras.Input((4,), name="x")
    return keras.Model(x_in, keras.layers.Dense(1)(inner(x_in)))


def _ops(keras):
    x_in = keras.Input((4,), name="x")
    return keras.Model(x_in, keras.layers.Dense(1)(keras.ops.add(x_in, 1.0)))  # recorded as an operation named "add"


def _preprocessing(keras):
    return keras.Sequential([keras.Input((4, 4, 1)), keras.layers.RandomFlip(), keras.layers.Flatten()])


def _mixed_precision(keras):
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, dtype="mixed_float16", name="dense")])


def _rms_scaling(keras):
    return keras.Sequential([keras.Input((4,)), keras.layers.LayerNormalization(rms_scaling=True)])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            _nested,
            (
                r"layer 'inner' \(Sequential\) is a nested model; tfmot cannot quantize a model inside a model, so "
                r"flatten it into one Sequential or Functional model"
            ),
        ),
        (
            _ops,
            (
                r"layer 'add(_\d+)?' \(Add\) is 'keras.src.ops.numpy.Add', not a keras.layers class \(a keras.ops "
                r"call\), which gate cannot rebuild in tf-keras; replace it with a built-in Keras layer"
            ),
        ),
        (_preprocessing, r"layer 'random_flip' \(RandomFlip\): gate does not rebuild RandomFlip layers in tf-keras"),
        (
            _mixed_precision,
            (
                r"layer 'dense' \(Dense\): dtype policy 'mixed_float16'; quantization-aware training needs "
                r"float32 layers"
            ),
        ),
        (_rms_scaling, r"option rms_scaling=True has no tf-keras equivalent \(only False has\)"),
    ],
)
def test_what_cannot_be_rebuilt_is_a_reason_naming_the_layer(build, message, tmp_path) -> None:
    import keras

    with pytest.raises(ModelError, match=message) as raised:
        translate(_config(build(keras), tmp_path), "models/m/model.keras")
    assert str(raised.value).startswith("models/m/model.keras: ")


def test_a_subclassed_model_is_a_reason() -> None:
    config = {"module": "my_models", "class_name": "MyModel", "registered_name": "my_models>MyModel", "config": {}}
    with pytest.raises(
        ModelError,
        match=re.escape(
            "is a subclassed model ('my_models>MyModel'); quantization-aware "
            "training needs a Sequential or Functional model"
        ),
    ):
        translate(config, "m.keras")


def test_weights_that_do_not_fit_the_rebuilt_layer_are_a_reason(tmp_path) -> None:
    import keras

    model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2, name="head")])
    plan = translate(_config(model, tmp_path), "m.keras")
    with pytest.raises(
        ModelError,
        match=re.escape(
            "layer 'head' (Dense) has weights of shapes [(4, 3)] in Keras 3 but "
            "[(4, 2), (2,)] when rebuilt in tf-keras; gate cannot copy them"
        ),
    ):
        build(plan, {"head": [np.zeros((4, 3), np.float32)]}, "m.keras")
