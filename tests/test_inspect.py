"""gate.inspect: hostile model files are refused before anything runs; real models are accepted.

Every hostile input is built here, in tmp_path. Every payload that could run
writes a marker file if it ever does (models whose building runs the payload
delete the marker after saving), and each refusal test asserts that
inspect_model raised ModelError with the expected message and that the marker
does not exist.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import inspect
import io
import json
import pkgutil
import random
import re
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gate.inspect as gate_inspect
from gate.errors import ModelError
from gate.inspect import Inspection, inspect_model

# Registered under the name of the package it lives in, as gate.inspect requires of allowed custom objects.
PACKAGE = __name__.split(".")[0]
CUSTOM_LAYER = f"{PACKAGE}>MarkerLayer"


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
    cnn = keras.Sequential([
        keras.Input((8, 8, 1)),
        layers.Rescaling(1 / 255.0),
        layers.Conv2D(4, 3, activation="relu", kernel_regularizer=keras.regularizers.l2(0.01),
                      kernel_constraint=keras.constraints.MaxNorm(2.0),
                      kernel_initializer=keras.initializers.HeNormal(seed=1)),
        layers.BatchNormalization(),
        layers.MaxPooling2D(),
        layers.Dropout(0.2),
        layers.Flatten(),
        layers.Dense(10, activation="softmax", bias_initializer=keras.initializers.Constant(0.1),
                     kernel_initializer=keras.initializers.RandomNormal(0.0, 0.05),
                     bias_constraint=keras.constraints.NonNeg(), activity_regularizer=keras.regularizers.L1L2(0.01)),
    ])
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


@pytest.mark.parametrize(
    ("models", "name", "expected"),
    [
        ("keras3_models", "cnn.keras", ("keras", "keras", {"Conv2D", "BatchNormalization", "Rescaling"}, False)),
        ("keras3_models", "cnn.h5", ("h5", "keras", {"Conv2D", "BatchNormalization", "Dropout"}, False)),
        ("keras3_models", "rnn.keras", ("keras", "keras", {"LSTM", "Bidirectional", "GRU", "TimeDistributed"}, True)),
        ("keras3_models", "rnn.h5", ("h5", "keras", {"LSTM", "SimpleRNN"}, True)),
        ("keras3_models", "mobilenetv2.keras", ("keras", "keras", {"DepthwiseConv2D", "ReLU", "Add"}, False)),
        ("keras3_models", "cnn.export", ("saved_model", "tensorflow", set(), False)),
        ("keras3_models", "rnn.export", ("saved_model", "tensorflow", set(), True)),  # the LSTM's While loop
        ("tf_keras_models", "cnn.keras", ("keras", "tf_keras", {"Conv2D", "MaxPooling2D", "Dense"}, False)),
        ("tf_keras_models", "cnn.h5", ("h5", "tf_keras", {"Conv2D", "Flatten"}, False)),
        ("tf_keras_models", "rnn.keras", ("keras", "tf_keras", {"Bidirectional", "GRU"}, True)),
        ("tf_keras_models", "rnn.h5", ("h5", "tf_keras", {"LSTM", "TimeDistributed"}, True)),
        ("tf_keras_models", "cnn.saved_model", ("saved_model", "tensorflow", set(), False)),
    ],
)
def test_real_models_are_accepted(request, models, name, expected) -> None:
    file_format, writer, some_layers, recurrent = expected
    inspection = inspect_model(request.getfixturevalue(models)[name])
    assert (inspection.format, inspection.writer, inspection.has_recurrent_layers) == (file_format, writer, recurrent)
    assert re.fullmatch(r"[23]\.\d+\.\d+", inspection.writer_version)
    assert some_layers <= set(inspection.layer_classes)
    assert list(inspection.layer_classes) == sorted(set(inspection.layer_classes))
    assert inspection.allowed_custom_objects == ()


def test_the_example_models_in_the_repository_are_accepted() -> None:
    for path in sorted(Path(__file__).parent.parent.glob("models/*/model.keras")):
        assert inspect_model(path).writer == "keras", path


# --- payloads in real models ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def lambda_models(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A Keras 3 .keras and a tf-keras .h5 file with a Lambda layer that writes `marker` when it runs."""
    import keras
    import tf_keras

    folder = tmp_path_factory.mktemp("lambda")
    marker = folder / "marker"
    marker_path = str(marker)  # the lambda's closure is saved with it
    files = []
    for module, name in ((keras, "model.keras"), (tf_keras, "model.h5")):
        inputs = module.Input((4,))
        payload = module.layers.Lambda(lambda x: (open(marker_path, "w").close(), x)[1], name="lambda")
        module.Model(inputs, module.layers.Dense(2)(payload(module.layers.Dense(3)(inputs)))).save(folder / name)
        files.append(folder / name)
    marker.unlink()  # building the model ran the payload; from here on it must not run again
    return files[0], files[1], marker


def test_the_lambda_payload_is_live(lambda_models, tmp_path) -> None:
    """Loading the fixture without safe_mode really runs it, so the marker tests below mean something."""
    import keras

    archive, _, marker = lambda_models
    copy_of = tmp_path / "model.keras"
    copy_of.write_bytes(archive.read_bytes())
    keras.saving.load_model(copy_of, safe_mode=False)
    assert marker.exists()
    marker.unlink()


@pytest.mark.parametrize("which", [0, 1], ids=["keras3.keras", "tf_keras.h5"])
def test_lambda_layers_are_refused(lambda_models, which) -> None:
    path, marker = lambda_models[which], lambda_models[2]
    source = "config.json" if path.suffix == ".keras" else "model_config"
    refused(path, rf"^{re.escape(str(path))}: {source}: layer 'lambda' \(config\.layers\[2\]\) is a Lambda layer, "
                  r"which runs arbitrary Python when loaded; replace it with a built-in layer or a custom layer "
                  r"allowed in gate\.toml$", marker)


@pytest.mark.parametrize("entry", ["Lambda", "keras.layers.Lambda", "TFSMLayer", "my_pkg>TFSMLayer"])
def test_lambda_and_tfsmlayer_can_never_be_allowed(lambda_models, entry) -> None:
    path, marker = lambda_models[0], lambda_models[2]
    refused(path, rf"gate\.toml: allow_custom_objects lists '{re.escape(entry)}', which can never be allowed",
            marker, allowed_custom_objects=(entry,))


@pytest.fixture(scope="session")
def custom_layer_model(tmp_path_factory) -> tuple[Path, Path]:
    """A Keras 3 model with a registered custom layer whose constructor writes `marker`."""
    import keras

    folder = tmp_path_factory.mktemp("custom")
    marker = folder / "marker"

    @keras.saving.register_keras_serializable(package=PACKAGE)
    class MarkerLayer(keras.layers.Layer):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            marker.write_text("pwned")

        def call(self, x):
            return x

    inputs = keras.Input((4,))
    keras.Model(inputs, MarkerLayer(name="mine")(inputs)).save(folder / "model.keras")
    marker.unlink()
    return folder / "model.keras", marker


def test_a_custom_object_not_allowed_is_refused(custom_layer_model) -> None:
    path, marker = custom_layer_model
    refused(path, rf"config\.json: layer 'mine' \(config\.layers\[1\]\) is the custom object '{CUSTOM_LAYER}', which "
                  rf"runs code from outside Keras when loaded; if you trust it, add \"{CUSTOM_LAYER}\" to "
                  r"allow_custom_objects in gate\.toml", marker)


def test_a_custom_object_allowed_in_gate_toml_is_accepted_and_listed(custom_layer_model) -> None:
    path, marker = custom_layer_model
    inspection = inspect_model(path, allowed_custom_objects=(CUSTOM_LAYER, "other_pkg>Unused"))
    assert inspection.allowed_custom_objects == (CUSTOM_LAYER,)
    assert CUSTOM_LAYER in inspection.layer_classes
    assert not marker.exists()


# --- payloads written into configs ---------------------------------------------------------------------


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


def evil_layer(**fields: object) -> dict:
    return {"registered_name": None, "config": {"name": "evil"}} | fields


def serialized_lambda(marker: Path) -> dict:
    """An activation as Keras 3 writes a Python lambda: bytecode that writes `marker` when called."""
    from keras.src.utils.python_utils import func_dump

    path = str(marker)
    return {"class_name": "__lambda__", "config": {"value": func_dump(lambda x: (open(path, "w").close(), x)[1])}}


def dense(where: str) -> str:
    return rf"layer 'dense' \(config\.layers\[1\]\.config\.{where}\)"


OUTSIDE_KERAS = r"which is not part of Keras, so loading would import it"
CONFIG_PAYLOADS: list[tuple[str, str, Callable[[Path], object], str]] = [
    # CVE-2025-1550: a config naming any module; each payload would write the marker if the named callable ran
    ("config.layers[1]", "os.system",
     lambda m: evil_layer(module="os", class_name="system", config={"name": "evil", "command": f"touch {m}"}),
     rf"layer 'evil' \(config\.layers\[1\]\) names module 'os', {OUTSIDE_KERAS}"),
    ("config.layers[1].config.kernel_initializer", "builtins.open",
     lambda m: evil_layer(module="builtins", class_name="open", config={"file": str(m), "mode": "w"}),
     rf"{dense('kernel_initializer')} names module 'builtins', {OUTSIDE_KERAS}"),
    ("config.layers[1].config.activation", "builtins function",
     lambda m: {"module": "builtins", "class_name": "function", "config": "open", "registered_name": "function"},
     rf"{dense('activation')} names Python's builtins\.open, which is not a Keras function"),
    ("compile_config.optimizer", "subprocess.Popen",
     lambda m: evil_layer(module="subprocess", class_name="Popen", config={"args": ["touch", str(m)]}),
     rf"compile_config\.optimizer names module 'subprocess', {OUTSIDE_KERAS}"),
    # CVE-2025-8747: a Keras module that is not a modeling API (get_file downloads to any path)
    ("config.layers[1].config.bias_initializer", "keras get_file",
     lambda m: evil_layer(module="keras.src.utils.file_utils", class_name="get_file",
                          config={"fname": str(m), "origin": "file:///etc/hostname"}),
     rf"{dense('bias_initializer')} names module 'keras\.src\.utils\.file_utils', {OUTSIDE_KERAS}"),
    ("config.layers[1].config.activation", "serialized lambda", serialized_lambda,
     rf"{dense('activation')} holds a serialized Python lambda, which runs arbitrary Python when loaded"),
    ("config.layers[1]", "registered name overrides a built-in",
     lambda m: evil_layer(module="keras.layers", class_name="Dense", registered_name="evil_pkg>Payload"),
     r"layer 'evil' \(config\.layers\[1\]\) is the custom object 'evil_pkg>Payload'"),
    ("config.layers[1].config.activation", "custom function by name",
     lambda m: "evil_pkg>touch_marker", rf"{dense('activation')} is the custom object 'evil_pkg>touch_marker'"),
    ("config.layers[1].config.activation", "unknown activation",
     lambda m: "system", rf"{dense('activation')} uses the function 'system', which is not one of Keras' own"),
    ("compile_config.loss", "unknown loss", lambda m: "os.system",
     r"compile_config\.loss uses the function 'os\.system', which is not one of Keras' own"),
    ("config.layers[1]", "unknown class",
     lambda m: evil_layer(module="keras.layers", class_name="DenseButEvil"),
     r"layer 'evil' \(config\.layers\[1\]\) uses the class 'DenseButEvil', which is not one of Keras' own"),
    ("config.layers[1].config.vocabulary", "vocabulary file", lambda m: str(m),
     rf"{dense('vocabulary')} names the vocabulary file '{{marker}}', which would be read when loaded"),
    # wrong JSON types
    ("config.layers[1].class_name", "class_name not a string", lambda m: ["Dense"],
     r"layer 'dense' \(config\.layers\[1\]\) has class_name \['Dense'\], which is not a string"),
    ("config.layers[1].module", "module not a string", lambda m: 7,
     r"layer 'dense' \(config\.layers\[1\]\) has module 7, which is not a string"),
    ("config.layers[1].config.activation", "function name not a string",
     lambda m: {"module": "keras.activations", "class_name": "function", "config": {"name": "relu"}},
     rf"{dense('activation')} is a function named \{{'name': 'relu'\}}, not a string"),
]


@pytest.mark.parametrize(("where", "payload", "message"), [(w, p, m) for w, _, p, m in CONFIG_PAYLOADS],
                         ids=[case[1] for case in CONFIG_PAYLOADS])
def test_config_payloads_are_refused(healthy_config, tmp_path, where, payload, message) -> None:
    config, weights = healthy_config
    marker = tmp_path / "marker"
    path = keras_file(tmp_path, put(config, where, payload(marker)), weights)
    refused(path, rf"^{re.escape(str(path))}: config\.json: .*" + message.replace("{marker}", re.escape(str(marker))),
            marker)


def test_a_tfsmlayer_is_refused(healthy_config, tmp_path) -> None:
    """CVE-2026-1462: a TFSMLayer loads and runs another SavedModel, here one that writes the marker."""
    import keras

    marker = tmp_path / "marker"
    payload = payload_saved_model(tmp_path / "payload", write_file(marker))
    keras.layers.TFSMLayer(str(payload), call_endpoint="serving_default")(np.zeros((1, 4), np.float32))
    assert marker.exists(), "the payload is live"
    marker.unlink()
    config, weights = healthy_config
    layer = evil_layer(module="keras.layers", class_name="TFSMLayer",
                       config={"name": "tfsm", "filepath": str(payload), "call_endpoint": "serving_default"})
    path = keras_file(tmp_path, put(config, "config.layers[1]", layer), weights)
    refused(path, r"config\.json: layer 'tfsm' \(config\.layers\[1\]\) is a TFSMLayer, which loads and runs another "
                  r"SavedModel from a path when loaded \(CVE-2026-1462\); rebuild the model from Keras layers", marker)


def test_a_module_outside_keras_is_not_imported(healthy_config, tmp_path, monkeypatch) -> None:
    """Even when the named package is importable (a .py file in the PR), inspection does not import it."""
    marker = tmp_path / "marker"
    package = tmp_path / "pr_code" / "my_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass MyLayer: pass\n")
    monkeypatch.syspath_prepend(str(package.parent))
    config, weights = healthy_config
    layer = evil_layer(module="my_pkg", class_name="MyLayer", config={"name": "mine"})
    path = keras_file(tmp_path, put(config, "config.layers[1]", layer), weights)
    refused(path, rf"layer 'mine' \(config\.layers\[1\]\) names module 'my_pkg', {OUTSIDE_KERAS}", marker)
    assert "my_pkg" not in sys.modules


def test_an_allowed_custom_object_may_not_name_another_package(healthy_config, tmp_path) -> None:
    config, weights = healthy_config
    layer = evil_layer(module="os", class_name="system", registered_name="my_pkg>MyLayer", config={"name": "mine"})
    path = keras_file(tmp_path, put(config, "config.layers[1]", layer), weights)
    refused(path, r"is the allowed custom object 'my_pkg>MyLayer' but names module 'os', which is not in its package "
                  r"'my_pkg'", allowed_custom_objects=("my_pkg>MyLayer",))


def test_every_problem_in_a_config_is_listed(healthy_config, tmp_path) -> None:
    config, weights = healthy_config
    config = put(config, "config.layers[1].config.activation", "evil_pkg>a")
    config = put(config, "config.layers[2].config.kernel_initializer", "evil_pkg>b")
    text = refused(keras_file(tmp_path, config, weights), "evil_pkg>a")
    assert len(text.splitlines()) == 2 and "evil_pkg>b" in text.splitlines()[1]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([], r"config\.json: expected a JSON object describing the model \(with a class_name\)"),
        (b'"Sequential"', r"config\.json: expected a JSON object describing the model"),
        ({"config": {"layers": []}}, r"config\.json: expected a JSON object describing the model"),
        (b"{\"class_name\": ", r"config\.json: is not valid JSON \(JSONDecodeError: "),
        (b"\xff\xfe\x00garbage", r"config\.json: is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, r"config\.json: is not valid JSON \(RecursionError"),
    ],
)
def test_malformed_configs_are_refused(tmp_path, config, message) -> None:
    refused(keras_file(tmp_path, config), message)


def test_deeply_nested_configs_are_walked_without_recursion(tmp_path) -> None:
    depth = 900  # as deep as json (and so Keras) reads; a recursive walk would need several frames a level
    evil = json.dumps({"module": "os", "class_name": "system", "config": {}})
    config = f'{{"class_name": "Sequential", "config": {{"layers": [], "extra": {"[" * depth}{evil}{"]" * depth}}}}}'
    refused(keras_file(tmp_path, config.encode()), rf"config\.extra(\[0\]){{{depth}}} names module 'os'")


# --- .keras archives ----------------------------------------------------------------------------------

METADATA = {"keras_version": "3.15.1"}
CONFIG = {"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": []}}


def symlink_entry(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix, so that the mode bits count
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


ARCHIVES: list[tuple[str, Callable[[Path], dict], str]] = [
    ("zip slip", lambda m: {"metadata.json": METADATA, "config.json": CONFIG, f"../../{m.name}": "pwned"},
     r"entry '\.\./\.\./marker' climbs out of the archive with '\.\.'.*\(zip slip\)"),
    ("absolute path", lambda m: {"metadata.json": METADATA, "config.json": CONFIG, str(m): "pwned"},
     r"entry '/.*marker' has an absolute path, which could write outside the extraction folder"),
    ("windows path", lambda m: {"metadata.json": METADATA, "config.json": CONFIG, "C:\\marker": "pwned"},
     r"entry 'C:\\\\marker' has an absolute path"),
    ("missing config", lambda m: {"metadata.json": METADATA, "model.weights.h5": b""},
     r"has no config\.json, so it is not a Keras model archive"),
    ("missing metadata", lambda m: {"config.json": CONFIG, "model.weights.h5": b""},
     r"has no metadata\.json, so it is not a Keras model archive"),
    ("metadata not JSON", lambda m: {"metadata.json": "keras 3", "config.json": CONFIG},
     r"metadata\.json: is not valid JSON"),
    ("metadata not an object", lambda m: {"metadata.json": '["3.15.1"]', "config.json": CONFIG},
     r"metadata\.json: keras_version is None, expected a version such as \"3\.15\.1\""),
    ("version not a string", lambda m: {"metadata.json": {"keras_version": 3.15}, "config.json": CONFIG},
     r"metadata\.json: keras_version is 3\.15, expected a version"),
    ("keras 1", lambda m: {"metadata.json": {"keras_version": "1.2.2"}, "config.json": CONFIG},
     r"metadata\.json: written by Keras 1\.2\.2; the gate loads files of Keras 3 and tf-keras 2"),
]


@pytest.mark.parametrize(("entries", "message"), [(e, m) for _, e, m in ARCHIVES], ids=[a[0] for a in ARCHIVES])
def test_bad_archives_are_refused(tmp_path, entries, message) -> None:
    marker = tmp_path / "marker"
    path = write_keras(tmp_path / "models" / "x" / "model.keras", entries(marker))
    refused(path, rf"^{re.escape(str(path))}: " + message, marker)


def test_a_symlink_entry_is_refused(tmp_path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps(METADATA))
        archive.writestr("config.json", json.dumps(CONFIG))
        archive.writestr(symlink_entry("assets/vocabulary.txt", str(marker)), str(marker))
    refused(path, r"entry 'assets/vocabulary\.txt' is a symbolic link, which could point outside the archive", marker)


def test_a_zip_bomb_is_refused_from_the_directory(tmp_path) -> None:
    path = write_keras(tmp_path / "model.keras",
                       {"metadata.json": METADATA, "config.json": CONFIG, "model.weights.h5": bytes(8 << 20)},
                       compression=zipfile.ZIP_DEFLATED)
    refused(path, r"entry 'model\.weights\.h5' expands \d+x \(\d+ to 8388608 bytes\), more than the 100x a model "
                  r"file needs \(a zip bomb\?\)")


def test_an_oversized_config_is_refused_before_it_is_read(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(gate_inspect._MAX_JSON_BYTES, "config.json", 1000)
    path = write_keras(tmp_path / "model.keras", {"metadata.json": METADATA, "config.json": b" " * 5000})
    refused(path, r"config\.json is larger than 1000 bytes, more than a config needs")


def test_an_entry_larger_than_its_declared_size_is_not_read_past_it(tmp_path) -> None:
    path = write_keras(tmp_path / "model.keras", {"metadata.json": METADATA, "config.json": CONFIG})
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 1)  # config.json in the central directory
    data[entry + 20:entry + 28] = (10).to_bytes(4, "little") * 2  # declare 10 bytes, compressed and not
    path.write_bytes(bytes(data))
    refused(path, r"is not a readable \.keras archive \(BadZipFile: Bad CRC-32 for file 'config\.json'\)")


@pytest.mark.parametrize("count", [1001, 70_000])
def test_too_many_entries_are_refused_before_reading_them(tmp_path, count) -> None:
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(count):
            archive.writestr(f"assets/{index}", b"")
    message = (r"holds 1001 entries \(\d+ bytes of directory\), more than the 1000 a \.keras file needs"
               if count < 0xFFFF else r"is a ZIP64 archive \(over 65535 entries or 4 GiB\)")
    refused(path, message)


def test_duplicate_entries_are_refused(tmp_path) -> None:
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(CONFIG))
        archive.writestr("metadata.json", json.dumps(METADATA))
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("config.json", json.dumps({"class_name": "Lambda"}))
    refused(path, r"entry 'config\.json' appears twice, so different readers could read different contents")


@pytest.fixture(scope="session")
def garbage() -> bytes:
    return random.Random(0).randbytes(4096)


@pytest.mark.parametrize("content", ["empty", "random", "truncated"])
def test_unreadable_keras_files_are_refused(keras3_models, garbage, tmp_path, content) -> None:
    valid = keras3_models["cnn.keras"].read_bytes()
    data = {"empty": b"", "random": garbage, "truncated": valid[: len(valid) // 2]}[content]
    path = tmp_path / "model.keras"
    path.write_bytes(data)
    refused(path, r"is not a zip archive \(empty, truncated or another format\); re-save the model with "
                  r"model\.save\(\"model\.keras\"\)")


def test_an_archive_with_a_damaged_entry_is_refused(keras3_models, tmp_path) -> None:
    data = bytearray(keras3_models["cnn.keras"].read_bytes())
    start = data.index(b"config.json") + len("config.json") + 10  # inside config.json's stored bytes
    data[start:start + 20] = b"\x00" * 20
    path = tmp_path / "model.keras"
    path.write_bytes(bytes(data))
    refused(path, r"is not a readable \.keras archive \(BadZipFile: Bad CRC-32 for file 'config\.json'\)")


# --- legacy .h5 files ---------------------------------------------------------------------------------


def h5_file(path: Path, **attributes: object) -> Path:
    with h5py.File(path, "w") as h5:
        for name, value in attributes.items():
            h5.attrs[name] = value
    return path


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"keras_version": "2.21.0"}, r"has no model_config attribute, so it holds only weights"),
        ({"keras_version": "2.21.0", "model_config": "{"}, r"model_config: is not valid JSON"),
        ({"keras_version": "2.21.0", "model_config": np.arange(3)}, r"attribute model_config is not UTF-8 text"),
        ({"keras_version": "2.21.0", "model_config": b"\xff\xfe"}, r"model_config: is not valid JSON"),
        ({"keras_version": "2.21.0", "model_config": "[]"}, r"model_config: expected a JSON object describing"),
        ({"keras_version": "2.21.0", "model_config": json.dumps(CONFIG), "training_config": "[1]"},
         r"training_config: expected a JSON object of training settings"),
        ({"keras_version": "2.21.0", "model_config": json.dumps(CONFIG),
          "training_config": json.dumps({"loss": "evil_pkg>loss", "optimizer_config": {"class_name": "Custom>Adam"}})},
         r"training_config: loss is the custom object 'evil_pkg>loss'"),
        ({"keras_version": "0.3", "model_config": json.dumps(CONFIG)}, r"keras_version: written by Keras 0\.3"),
        ({"model_config": json.dumps(put(CONFIG, "config.layers", [
            {"class_name": "TFOpLambda", "config": {"name": "tf.io.write_file", "function": "io.write_file"}}]))},
         r"model_config: layer 'tf\.io\.write_file' \(config\.layers\[0\]\) is a TFOpLambda layer"),
    ],
)
def test_bad_h5_files_are_refused(tmp_path, attributes, message) -> None:
    path = h5_file(tmp_path / "model.h5", **attributes)
    refused(path, rf"^{re.escape(str(path))}: " + message)


def test_an_h5_file_without_keras_version_is_read_as_keras_2(tmp_path) -> None:
    inspection = inspect_model(h5_file(tmp_path / "model.h5", model_config=json.dumps(CONFIG)))
    assert (inspection.format, inspection.writer, inspection.writer_version) == ("h5", "tf_keras", "")


@pytest.mark.parametrize("content", ["empty", "random", "truncated"])
def test_unreadable_h5_files_are_refused(tf_keras_models, garbage, tmp_path, content) -> None:
    valid = tf_keras_models["cnn.h5"].read_bytes()
    data = {"empty": b"", "random": garbage, "truncated": valid[: len(valid) // 2]}[content]
    path = tmp_path / "model.h5"
    path.write_bytes(data)
    refused(path, r"is not a readable HDF5 file \(OSError: .*\); re-save the model with model\.save\(")


# Each writes an object whose data lives outside the file; `secret` stands for /proc/self/environ.
HDF5_INDIRECTIONS: dict[str, tuple[Callable[[h5py.File, Path], None], str]] = {
    "external dataset": (
        lambda h5, secret: h5.create_dataset("leak", shape=(8,), dtype="u1", external=[(str(secret), 0, 8)]),
        r"dataset 'leak' keeps its data in the outside file .*secret, so loading would read that file into the weights",
    ),
    "external link": (
        lambda h5, secret: h5.__setitem__("leak", h5py.ExternalLink(str(secret), "/data")),
        r"'leak' is an HDF5 external link to .*secret:/data, so loading would read another file",
    ),
    "soft link": (
        lambda h5, secret: h5.__setitem__("leak", h5py.SoftLink("/elsewhere")),
        r"'leak' is an HDF5 soft link to /elsewhere, which Keras never writes",
    ),
    "virtual dataset": (
        lambda h5, secret: h5.create_virtual_dataset("leak", virtual_layout(secret)),
        r"dataset 'leak' is a virtual dataset that maps data from other files",
    ),
    "reference in an attribute": (  # tf-keras follows weight_names references to data that no link reaches
        lambda h5, secret: h5.attrs.create("leak", [h5.ref], dtype=h5py.ref_dtype),
        r"attribute 'leak' of '/' holds HDF5 object references, which Keras never writes",
    ),
    "references in a dataset": (
        lambda h5, secret: h5.create_dataset("leak", data=np.array([(h5.ref, 1)], dtype=[("r", h5py.ref_dtype), ("n", "i4")])),
        r"dataset 'leak' holds HDF5 object references, which Keras never writes",
    ),
    "shape bomb": (  # 8 GiB declared, nothing stored: reading it allocates it all
        lambda h5, secret: h5.create_dataset("leak", shape=(1 << 31,), dtype="f4", chunks=(1 << 16,), compression="gzip"),
        r"dataset 'leak' declares 8589934592 bytes but stores 0 \(a decompression bomb\?\)",
    ),
}


def virtual_layout(secret: Path) -> h5py.VirtualLayout:
    layout = h5py.VirtualLayout(shape=(8,), dtype="u1")
    layout[:] = h5py.VirtualSource(str(secret), "data", shape=(8,))
    return layout


@pytest.mark.parametrize("indirection", sorted(HDF5_INDIRECTIONS))
def test_hdf5_objects_that_read_other_files_are_refused(tf_keras_models, healthy_config, tmp_path, indirection) -> None:
    write, message = HDF5_INDIRECTIONS[indirection]
    secret = tmp_path / "secret"
    with h5py.File(secret, "w") as h5:
        h5["data"] = np.frombuffer(b"GITHUB_TOKEN", dtype="u1")
    path = tmp_path / "h5" / "model.h5"
    path.parent.mkdir()
    path.write_bytes(tf_keras_models["cnn.h5"].read_bytes())
    with h5py.File(path, "a") as h5:
        write(h5, secret)
    refused(path, rf"^{re.escape(str(path))}: " + message)

    weights = io.BytesIO(healthy_config[1])
    with h5py.File(weights, "a") as h5:
        write(h5, secret)
    path = keras_file(tmp_path / "keras", healthy_config[0], weights.getvalue())
    refused(path, rf"^{re.escape(str(path))}: model\.weights\.h5: " + message)


def test_unreadable_weights_in_an_archive_are_refused(healthy_config, tmp_path) -> None:
    path = keras_file(tmp_path, healthy_config[0], b"not hdf5")
    refused(path, r"model\.weights\.h5: is not a readable HDF5 file \(OSError: .*\); re-save the model with model\.save")


# --- SavedModels --------------------------------------------------------------------------------------


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


def read_file(marker: Path) -> Callable:
    import tensorflow as tf

    return lambda x: tf.io.write_file(str(marker), tf.io.read_file("/etc/hostname"))


def matching_files(marker: Path) -> Callable:
    import tensorflow as tf

    return lambda x: tf.io.write_file(str(marker), tf.strings.reduce_join(tf.io.matching_files("/etc/*")))


def print_to_file(marker: Path) -> Callable:
    import tensorflow as tf

    return lambda x: tf.print(x, output_stream=f"file://{marker}")


def save_tensors(marker: Path) -> Callable:
    import tensorflow as tf

    return lambda x: tf.raw_ops.SaveV2(prefix=str(marker), tensor_names=["x"], shape_and_slices=[""], tensors=[x])


def while_writing(marker: Path) -> Callable:
    import tensorflow as tf

    def body(i):
        with tf.control_dependencies([tf.io.write_file(str(marker), "pwned")]):
            return i + 1

    return lambda x: tf.while_loop(lambda i: i < 1, body, [tf.constant(0)])


def python_function(marker: Path) -> Callable:
    import tensorflow as tf

    return lambda x: tf.py_function(lambda: float(marker.write_text("pwned")), [], tf.float32)


SERVE = r"function '__inference_serve_\d+'"
SAVED_MODEL_PAYLOADS: list[tuple[Callable[[Path], Callable], str]] = [
    (write_file, rf"{SERVE} runs op 'WriteFile' \(node '[^']+'\), which is not an inference op the gate allows"),
    (read_file, rf"{SERVE} runs op 'ReadFile'"),
    (matching_files, rf"{SERVE} runs op 'MatchingFiles'"),
    (print_to_file, rf"{SERVE} runs op 'PrintV2'"),
    (save_tensors, rf"{SERVE} runs op 'SaveV2' \(node '[^']+'\) outside the functions TensorFlow writes to load"),
    (while_writing, r"function '[^']*body[^']*' runs op 'WriteFile'"),
    (python_function, rf"{SERVE} runs op 'EagerPyFunc'"),
]


@pytest.mark.parametrize(("payload", "message"), SAVED_MODEL_PAYLOADS, ids=lambda case: getattr(case, "__name__", ""))
def test_saved_model_payloads_are_refused(tmp_path, payload, message) -> None:
    marker = tmp_path / "marker"
    folder = payload_saved_model(tmp_path / "saved_model", payload(marker))
    assert not list(tmp_path.glob("marker*")), "saving ran the payload"
    refused(folder, rf"^{re.escape(str(folder / 'saved_model.pb'))}: " + message)
    assert not list(tmp_path.glob("marker*"))


def edited_saved_model(source: Path, folder: Path, edit: Callable | None = None) -> Path:
    """A copy of the SavedModel `source` whose saved_model.pb went through `edit(meta_graph)`."""
    import shutil

    from tensorflow.core.protobuf import saved_model_pb2

    shutil.copytree(source, folder)
    if edit:
        proto = saved_model_pb2.SavedModel.FromString((folder / "saved_model.pb").read_bytes())
        edit(proto.meta_graphs[0])
        (folder / "saved_model.pb").write_bytes(proto.SerializeToString())
    return folder


def functions(meta_graph, part: str) -> list:
    return [f for f in meta_graph.graph_def.library.function if part in f.signature.name]


def call_restore_from_serving(meta_graph) -> None:
    restore = functions(meta_graph, "traced_restore")[0].signature.name
    node = functions(meta_graph, "signature_wrapper")[0].node_def.add(name="sneaky", op="StatefulPartitionedCall")
    node.attr["f"].func.name = restore


def restore_from_a_constant(meta_graph) -> None:
    restore = functions(meta_graph, "traced_restore")[0]
    node = next(n for n in restore.node_def if n.op == "RestoreV2")
    node.input[0] = "RestoreV2/tensor_names:output:0"


def restore_node_without_placeholder(meta_graph) -> None:
    root = meta_graph.saver_def.restore_op_name
    node = next(n for n in meta_graph.graph_def.node if n.name == root)
    node.input[0] = "Const"


def call_an_op_as_a_function(meta_graph) -> None:
    node = functions(meta_graph, "signature_wrapper")[0].node_def.add(name="call_op", op="PartitionedCall")
    node.attr["f"].func.name = "WriteFile"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (call_restore_from_serving,
         r"node 'sneaky' calls '__inference__traced_restore_\d+', which loads or saves variables and only the loader"),
        (restore_from_a_constant,
         r"function '__inference__traced_restore_\d+' restores variables \(node 'RestoreV2'\) from another path"),
        (restore_node_without_placeholder,
         r"saver_def names 'StatefulPartitionedCall_\d+' to restore variables, .* placeholder 'saver_filename:0'"),
        (call_an_op_as_a_function, r"node 'call_op' calls 'WriteFile', which is not a function of the SavedModel"),
    ],
)
def test_tampered_saver_functions_are_refused(keras3_models, tmp_path, edit, message) -> None:
    folder = edited_saved_model(keras3_models["cnn.export"], tmp_path / "saved_model", edit)
    refused(folder, message)


def test_a_second_graph_file_is_refused(keras3_models, tmp_path) -> None:
    folder = edited_saved_model(keras3_models["cnn.export"], tmp_path / "saved_model")
    (folder / "saved_model.pbtxt").write_text("meta_graphs {}")
    refused(folder, r"holds saved_model\.pbtxt next to saved_model\.pb and TensorFlow may read either")


def test_a_symlink_inside_a_saved_model_is_refused(keras3_models, tmp_path) -> None:
    folder = edited_saved_model(keras3_models["cnn.export"], tmp_path / "saved_model")
    (folder / "assets" / "vocabulary.txt").symlink_to("/etc/passwd")
    refused(folder, r"assets/vocabulary\.txt: is a symbolic link, which could make TensorFlow read files outside")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("missing", r"has no saved_model\.pb"),
        ("empty", r"saved_model\.pb: holds no MetaGraph"),
        ("random", r"saved_model\.pb: is not a readable SavedModel \("),
        ("truncated", r"saved_model\.pb: is not a readable SavedModel \(truncated"),
    ],
)
def test_unreadable_saved_models_are_refused(keras3_models, garbage, tmp_path, content, message) -> None:
    valid = (keras3_models["cnn.export"] / "saved_model.pb").read_bytes()
    folder = tmp_path / "saved_model"
    folder.mkdir()
    if content != "missing":
        data = {"empty": b"", "random": garbage, "truncated": valid[: len(valid) // 2]}[content]
        (folder / "saved_model.pb").write_bytes(data)
    refused(folder, message)


def test_a_symlinked_model_file_is_refused(keras3_models, tmp_path) -> None:
    link = tmp_path / "model.keras"
    link.symlink_to(keras3_models["cnn.keras"])
    refused(link, r"model\.keras: is a symbolic link; commit the model itself")


# --- nothing escapes but ModelError -------------------------------------------------------------------

JSON_KEYS = st.sampled_from(["class_name", "module", "registered_name", "config", "layers", "name", "activation",
                             "kernel_initializer", "metrics", "vocabulary", "layer", "x"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.sampled_from(["Dense", "Lambda", "function", "keras.layers", "os", "builtins", "relu", "a>b", "__lambda__"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(JSON_KEYS, children, max_size=5),
    max_leaves=30,
)
# Derandomized and without an example database: the same examples on every run, and no .hypothesis folder.
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(config=JSON_VALUES)
def test_any_json_config_gives_an_inspection_or_a_model_error(tmp_path, config) -> None:
    path = keras_file(tmp_path, {"module": "keras", "class_name": "Sequential", "config": config})
    with contextlib.suppress(ModelError):
        assert isinstance(inspect_model(path), Inspection)


@FUZZ
@given(data=st.data())
def test_damaged_files_give_an_inspection_or_a_model_error(keras3_models, tmp_path, data) -> None:
    # Not .h5: the HDF5 library can spin forever on some damaged files (the worker's timeout ends that).
    name = data.draw(st.sampled_from(["cnn.keras", "cnn.export"]))
    source = keras3_models[name] / "saved_model.pb" if name.endswith("export") else keras3_models[name]
    blob = bytearray(source.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    target = tmp_path / "fuzz" / ("saved_model/saved_model.pb" if name.endswith("export") else Path(name).name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(bytes(blob[: data.draw(st.integers(0, len(blob)))]))
    with contextlib.suppress(ModelError):
        assert isinstance(inspect_model(target.parent if name.endswith("export") else target), Inspection)


# --- the module itself --------------------------------------------------------------------------------


def test_importing_gate_inspect_does_not_import_tensorflow_or_keras() -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import gate.inspect"],
                            capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
    assert not re.search(r"\b(tensorflow|keras|tf_keras|h5py)\b", result.stderr)


NAMESPACES = ("layers", "initializers", "regularizers", "constraints", "activations", "losses", "metrics", "optimizers",
              "optimizers.schedules", "optimizers.legacy", "dtype_policies", "mixed_precision", "models")
CLASSES_ONLY = ("layers", "mixed_precision", "models")  # their functions (Input, load_model...) are not config entries
ALIASED = ("activations", "initializers", "regularizers", "constraints", "losses", "metrics", "optimizers")
CALLABLE_OPS = {"Map", "Scan", "AssociativeScan", "Switch", "WhileLoop", "ForiLoop", "Cond", "VectorizedMap",
                "Function", "Operation"}  # keras.ops that call a Python callable, and the bases


def keras_builtin_names() -> tuple[frozenset[str], frozenset[str]]:
    """The names and modules of Keras' own config entries, from the installed keras and tf_keras.

    gate.inspect keeps the result as literals, since it must not import Keras. To print them: cd tests && python -c
    "import test_inspect; print(sorted(test_inspect.keras_builtin_names()[0]))"
    """
    import keras
    import tf_keras
    import tf_keras.src.activations
    import tf_keras.src.initializers
    from keras.src.models.functional import Functional as Functional3
    from keras.src.ops.operation import Operation
    from tf_keras.src.engine.functional import Functional as Functional2
    from tf_keras.src.saving import object_registration

    names: set[str] = {"Functional"}  # functional models, whose class has no public name
    modules = {"keras", Functional3.__module__, Functional2.__module__}
    for package in ("keras", "tf_keras"):
        for namespace in NAMESPACES:
            try:
                module = importlib.import_module(f"{package}.{namespace}")
            except ImportError:
                continue
            modules.add(f"keras.{namespace}")
            names.update(
                name for name, value in vars(module).items()
                if not name.startswith("_") and name not in ("get", "serialize", "deserialize")
                and not inspect.ismodule(value) and (inspect.isclass(value) or namespace not in CLASSES_ONLY)
            )
        for namespace in ALIASED:
            names.update(getattr(importlib.import_module(f"{package}.src.{namespace}"), "ALL_OBJECTS_DICT", {}))
    tf_keras.src.initializers.populate_deserializable_objects()
    names.update(tf_keras.src.initializers.LOCAL.ALL_OBJECTS)
    names.update(tf_keras.src.activations._TF_ACTIVATIONS_V2)
    names.update(name for name, value in object_registration._GLOBAL_CUSTOM_OBJECTS.items()
                 if value.__module__.startswith("tf_keras."))
    for info in pkgutil.iter_modules(keras.src.ops.__path__):
        if info.name.endswith("_test"):
            continue
        module = importlib.import_module(f"keras.src.ops.{info.name}")
        operations = {name for name, value in vars(module).items()
                      if inspect.isclass(value) and issubclass(value, Operation)
                      and value.__module__ == module.__name__ and name not in CALLABLE_OPS}
        names |= operations
        modules |= {module.__name__} if operations else set()
    return frozenset(names - set(gate_inspect._NEVER_ALLOWED)), frozenset(modules)


def test_builtin_name_table_matches_installed_keras() -> None:
    names, modules = keras_builtin_names()
    assert {"added": sorted(names - gate_inspect._KERAS_NAMES), "gone": sorted(gate_inspect._KERAS_NAMES - names)} == \
        {"added": [], "gone": []}, "regenerate _KERAS_NAMES with keras_builtin_names() and review the new names"
    assert modules == gate_inspect._KERAS_MODULES
    assert not gate_inspect._KERAS_NAMES & set(gate_inspect._NEVER_ALLOWED)
