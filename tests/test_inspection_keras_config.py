"""gate.inspection.keras_config: configs naming anything but Keras' own classes and functions are refused."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from inspection_models import keras_file, payload_saved_model, put, refused, write_file

from gate.inspection import inspect_model, keras_config, keras_names

# Registered under the name of the package it lives in, as gate.inspection requires of allowed custom objects.
PACKAGE = __name__.split(".")[0]
CUSTOM_LAYER = f"{PACKAGE}>MarkerLayer"


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
    refused(
        path,
        rf"^{re.escape(str(path))}: {source}: layer 'lambda' \(config\.layers\[2\]\) is a Lambda layer, "
        r"which runs arbitrary Python when loaded; replace it with a built-in layer or a custom layer "
        r"allowed in gate\.toml$",
        marker,
    )


@pytest.mark.parametrize("entry", ["Lambda", "keras.layers.Lambda", "TFSMLayer", "my_pkg>TFSMLayer"])
def test_lambda_and_tfsmlayer_can_never_be_allowed(lambda_models, entry) -> None:
    path, marker = lambda_models[0], lambda_models[2]
    refused(
        path,
        rf"gate\.toml: allow_custom_objects lists '{re.escape(entry)}', which can never be allowed",
        marker,
        allowed_custom_objects=(entry,),
    )


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
    refused(
        path,
        rf"config\.json: layer 'mine' \(config\.layers\[1\]\) is the custom object '{CUSTOM_LAYER}', which "
        rf"runs code from outside Keras when loaded; if you trust it, add \"{CUSTOM_LAYER}\" to "
        r"allow_custom_objects in gate\.toml",
        marker,
    )


def test_a_custom_object_allowed_in_gate_toml_is_accepted_and_listed(custom_layer_model) -> None:
    path, marker = custom_layer_model
    inspection = inspect_model(path, allowed_custom_objects=(CUSTOM_LAYER, "other_pkg>Unused"))
    assert inspection.allowed_custom_objects == (CUSTOM_LAYER,)
    assert CUSTOM_LAYER in inspection.layer_classes
    assert not marker.exists()


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
    (
        "config.layers[1]",
        "os.system",
        lambda m: evil_layer(module="os", class_name="system", config={"name": "evil", "command": f"touch {m}"}),
        rf"layer 'evil' \(config\.layers\[1\]\) names module 'os', {OUTSIDE_KERAS}",
    ),
    (
        "config.layers[1].config.kernel_initializer",
        "builtins.open",
        lambda m: evil_layer(module="builtins", class_name="open", config={"file": str(m), "mode": "w"}),
        rf"{dense('kernel_initializer')} names module 'builtins', {OUTSIDE_KERAS}",
    ),
    (
        "config.layers[1].config.activation",
        "builtins function",
        lambda m: {"module": "builtins", "class_name": "function", "config": "open", "registered_name": "function"},
        rf"{dense('activation')} names Python's builtins\.open, which is not a Keras function",
    ),
    (
        "compile_config.optimizer",
        "subprocess.Popen",
        lambda m: evil_layer(module="subprocess", class_name="Popen", config={"args": ["touch", str(m)]}),
        rf"compile_config\.optimizer names module 'subprocess', {OUTSIDE_KERAS}",
    ),
    # CVE-2025-8747: a Keras module that is not a modeling API (get_file downloads to any path)
    (
        "config.layers[1].config.bias_initializer",
        "keras get_file",
        lambda m: evil_layer(
            module="keras.src.utils.file_utils",
            class_name="get_file",
            config={"fname": str(m), "origin": "file:///etc/hostname"},
        ),
        rf"{dense('bias_initializer')} names module 'keras\.src\.utils\.file_utils', {OUTSIDE_KERAS}",
    ),
    (
        "config.layers[1].config.activation",
        "serialized lambda",
        serialized_lambda,
        rf"{dense('activation')} holds a serialized Python lambda, which runs arbitrary Python when loaded",
    ),
    (
        "config.layers[1]",
        "registered name overrides a built-in",
        lambda m: evil_layer(module="keras.layers", class_name="Dense", registered_name="evil_pkg>Payload"),
        r"layer 'evil' \(config\.layers\[1\]\) is the custom object 'evil_pkg>Payload'",
    ),
    (
        "config.layers[1].config.activation",
        "custom function by name",
        lambda m: "evil_pkg>touch_marker",
        rf"{dense('activation')} is the custom object 'evil_pkg>touch_marker'",
    ),
    (
        "config.layers[1].config.activation",
        "unknown activation",
        lambda m: "system",
        rf"{dense('activation')} uses the function 'system', which is not one of Keras' own",
    ),
    (
        "compile_config.loss",
        "unknown loss",
        lambda m: "os.system",
        r"compile_config\.loss uses the function 'os\.system', which is not one of Keras' own",
    ),
    (
        "config.layers[1]",
        "unknown class",
        lambda m: evil_layer(module="keras.layers", class_name="DenseButEvil"),
        r"layer 'evil' \(config\.layers\[1\]\) uses the class 'DenseButEvil', which is not one of Keras' own",
    ),
    (
        "config.layers[1].config.vocabulary",
        "vocabulary file",
        lambda m: str(m),
        rf"{dense('vocabulary')} names the vocabulary file '{{marker}}', which would be read when loaded",
    ),
    # wrong JSON types
    (
        "config.layers[1].class_name",
        "class_name not a string",
        lambda m: ["Dense"],
        r"layer 'dense' \(config\.layers\[1\]\) has class_name \['Dense'\], which is not a string",
    ),
    (
        "config.layers[1].module",
        "module not a string",
        lambda m: 7,
        r"layer 'dense' \(config\.layers\[1\]\) has module 7, which is not a string",
    ),
    (
        "config.layers[1].config.activation",
        "function name not a string",
        lambda m: {"module": "keras.activations", "class_name": "function", "config": {"name": "relu"}},
        rf"{dense('activation')} is a function named \{{'name': 'relu'\}}, not a string",
    ),
]


@pytest.mark.parametrize(
    ("where", "payload", "message"),
    [(w, p, m) for w, _, p, m in CONFIG_PAYLOADS],
    ids=[case[1] for case in CONFIG_PAYLOADS],
)
def test_config_payloads_are_refused(healthy_config, tmp_path, where, payload, message) -> None:
    config, weights = healthy_config
    marker = tmp_path / "marker"
    path = keras_file(tmp_path, put(config, where, payload(marker)), weights)
    refused(
        path,
        rf"^{re.escape(str(path))}: config\.json: .*" + message.replace("{marker}", re.escape(str(marker))),
        marker,
    )


def test_a_tfsmlayer_is_refused(healthy_config, tmp_path) -> None:
    """CVE-2026-1462: a TFSMLayer loads and runs another SavedModel, here one that writes the marker."""
    import keras

    marker = tmp_path / "marker"
    payload = payload_saved_model(tmp_path / "payload", write_file(marker))
    keras.layers.TFSMLayer(str(payload), call_endpoint="serving_default")(np.zeros((1, 4), np.float32))
    assert marker.exists(), "the payload is live"
    marker.unlink()
    config, weights = healthy_config
    layer = evil_layer(
        module="keras.layers",
        class_name="TFSMLayer",
        config={"name": "tfsm", "filepath": str(payload), "call_endpoint": "serving_default"},
    )
    path = keras_file(tmp_path, put(config, "config.layers[1]", layer), weights)
    refused(
        path,
        r"config\.json: layer 'tfsm' \(config\.layers\[1\]\) is a TFSMLayer, which loads and runs another "
        r"SavedModel from a path when loaded \(CVE-2026-1462\); rebuild the model from Keras layers",
        marker,
    )


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
    refused(
        path,
        r"is the allowed custom object 'my_pkg>MyLayer' but names module 'os', which is not in its package "
        r"'my_pkg'",
        allowed_custom_objects=("my_pkg>MyLayer",),
    )


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
        (b'{"class_name": ', r"config\.json: is not valid JSON \(JSONDecodeError: "),
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


# --- the table of Keras' own names ----------------------------------------------------------------------


def keras_names_script():
    """scripts/keras_names.py, which generates gate/inspection/keras_names.py from the installed Keras."""
    path = Path(__file__).resolve().parent.parent / "scripts" / "keras_names.py"
    spec = importlib.util.spec_from_file_location("keras_names_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # it imports Keras, and so TensorFlow: seconds before it starts
def test_builtin_name_table_matches_installed_keras() -> None:
    names, modules = keras_names_script().keras_builtin_names()
    table = keras_names.KERAS_NAMES
    assert {"added": sorted(names - table), "gone": sorted(table - names)} == {"added": [], "gone": []}, (
        "regenerate gate/inspection/keras_names.py (python scripts/keras_names.py --write) and review the new names"
    )
    assert modules == keras_names.KERAS_MODULES
    assert not table & set(keras_config.NEVER_ALLOWED)
