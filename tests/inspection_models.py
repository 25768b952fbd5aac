"""Models, files and helpers the inspection tests share; the session fixtures are registered in conftest.py.

Every hostile input is built in tmp_path. Every payload that could run writes
a marker file if it ever does (models whose building runs the payload delete
the marker after saving), and each refusal test asserts that inspect_model
raised ModelError with the expected message and that the marker does not
exist.
"""

from __future__ import annotations

import copy
import io
import json
import random
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import h5py
import numpy as np
import pytest

from gate.errors import ModelError
from gate.inspection import inspect_model


def refused(path: Path, message: str, marker: Path | None = None, **kwargs: object) -> str:
    """Assert that inspecting `path` raises ModelError matching `message` and runs nothing."""
    with pytest.raises(ModelError) as raised:
        inspect_model(path, **kwargs)
    text = str(raised.value)
    assert re.search(message, text, re.MULTILINE), text
    assert text.startswith(str(path.parent)), text  # it names the file (or gate.toml next to it)
    if marker is not None:
        assert not marker.exists(), f"the payload ran: {marker}"
    return text


# --- real models, built once per session --------------------------------------------------------------


def build_models(keras: ModuleType, folder: Path, *, mobilenet: bool) -> dict[str, Path]:
    """Models with the layers and settings the gate must accept, saved as .keras and .h5."""
    layers = keras.layers
    keras.utils.set_random_seed(0)
    cnn = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            layers.Rescaling(1 / 255.0),
            layers.Conv2D(
                4,
                3,
                activation="relu",
                kernel_regularizer=keras.regularizers.l2(0.01),
                kernel_constraint=keras.constraints.MaxNorm(2.0),
                kernel_initializer=keras.initializers.HeNormal(seed=1),
            ),
            layers.BatchNormalization(),
            layers.MaxPooling2D(),
            layers.Dropout(0.2),
            layers.Flatten(),
            layers.Dense(
                10,
                activation="softmax",
                bias_initializer=keras.initializers.Constant(0.1),
                kernel_initializer=keras.initializers.RandomNormal(0.0, 0.05),
                bias_constraint=keras.constraints.NonNeg(),
                activity_regularizer=keras.regularizers.L1L2(0.01),
            ),
        ]
    )
    cnn.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    cnn.fit(np.random.rand(16, 8, 8, 1), np.random.randint(0, 10, 16), epochs=1, verbose=0)
    rows = keras.Input((8, 8), name="rows")
    x = layers.LSTM(8, return_sequences=True)(rows)
    x = layers.Bidirectional(layers.GRU(4, return_sequences=True))(x)
    x = layers.TimeDistributed(layers.Dense(3))(x)
    x = layers.SimpleRNN(4)(x)
    rnn = keras.Model(rows, layers.Dense(10, activation="softmax")(x))
    models = {"cnn": cnn, "rnn": rnn}
    if mobilenet:
        models["mobilenetv2"] = keras.applications.MobileNetV2(
            input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10
        )
    files = {}
    for name, model in models.items():
        for suffix in (".keras", ".h5"):
            files[name + suffix] = folder / name / f"model{suffix}"
            files[name + suffix].parent.mkdir(parents=True, exist_ok=True)
            model.save(files[name + suffix])
    return files


@pytest.fixture(scope="session")
def keras3_models(tmp_path_factory) -> dict[str, Path]:
    import keras

    folder = tmp_path_factory.mktemp("keras3")
    files = build_models(keras, folder, mobilenet=True)
    for name in ("cnn", "rnn"):  # model.export() writes the inference-only SavedModel Keras 3 recommends
        files[f"{name}.export"] = folder / name / "saved_model"
        keras.saving.load_model(files[f"{name}.keras"]).export(str(files[f"{name}.export"]), verbose=False)
    return files


@pytest.fixture(scope="session")
def tf_keras_models(tmp_path_factory) -> dict[str, Path]:
    import tensorflow as tf
    import tf_keras

    folder = tmp_path_factory.mktemp("tf_keras")
    files = build_models(tf_keras, folder, mobilenet=False)
    files["cnn.saved_model"] = folder / "cnn" / "saved_model"
    tf.saved_model.save(tf_keras.models.load_model(files["cnn.keras"]), str(files["cnn.saved_model"]))
    return files


@pytest.fixture(scope="session")
def healthy_config(tmp_path_factory) -> tuple[dict, bytes]:
    """config.json and model.weights.h5 of a compiled and fitted Keras 3 MLP: layers[1] is 'dense'."""
    import keras

    layers = [keras.Input((4,)), keras.layers.Dense(3, name="dense"), keras.layers.Dense(2, name="out")]
    model = keras.Sequential(layers)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(np.random.rand(8, 4), np.random.randint(0, 2, 8), verbose=0)
    path = tmp_path_factory.mktemp("healthy") / "model.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json")), archive.read("model.weights.h5")


def write_keras(path: Path, entries: dict[str, bytes | str | dict], *, compression: int = zipfile.ZIP_STORED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, json.dumps(data) if isinstance(data, dict | list) else data)
    return path


def empty_h5() -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w"):
        pass
    return buffer.getvalue()


def keras_file(folder: Path, config: object, weights: bytes | None = None, version: str = "3.15.1") -> Path:
    weights = empty_h5() if weights is None else weights
    entries = {"metadata.json": {"keras_version": version}, "config.json": config, "model.weights.h5": weights}
    return write_keras(folder / "models" / "x" / "model.keras", entries)


def put(config: dict, where: str, value: object) -> dict:
    """A copy of `config` with `value` at `where`, such as 'config.layers[1].config.activation'."""
    config = copy.deepcopy(config)
    *parents, last = re.findall(r"[^.\[\]]+", where)
    node = config
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[int(last) if isinstance(node, list) else last] = value
    return config


METADATA = {"keras_version": "3.15.1"}
CONFIG = {"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": []}}


@pytest.fixture(scope="session")
def garbage() -> bytes:
    return random.Random(0).randbytes(4096)


def payload_saved_model(folder: Path, payload: Callable) -> Path:
    """A SavedModel whose serving function runs `payload(x)` besides doubling x."""
    import tensorflow as tf

    class Payload(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def serve(self, x):
            payload(x)  # a stateful op: tf.function keeps it although nothing uses its result
            return {"output_0": x * 2.0}

    module = Payload()
    tf.saved_model.save(module, str(folder), signatures=module.serve)
    return folder


def write_file(marker: Path) -> Callable:
    import tensorflow as tf

    return lambda x: tf.io.write_file(str(marker), "pwned")
