"""gate.inspection: real models are accepted; whatever a file holds, inspecting it gives an Inspection or a ModelError.

The refusals are tested module by module: test_inspection_keras_config.py,
test_inspection_archive.py, test_inspection_hdf5.py, test_inspection_saved_model.py
and test_inspection_protobuf.py; test_mutations.py damages real files byte by byte.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inspection_models import keras_file, refused

from gate.errors import ModelError
from gate.inspection import Inspection, inspect_model

# fmt: skip on this table: a case a row or two, as it reads; ruff format would give each field a line.
REAL_MODELS = [
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
]  # fmt: skip


@pytest.mark.slow  # builds real models (request.getfixturevalue)
@pytest.mark.parametrize(("models", "name", "expected"), REAL_MODELS)
def test_real_models_are_accepted(request, models, name, expected) -> None:
    file_format, writer, some_layers, recurrent = expected
    inspection = inspect_model(request.getfixturevalue(models)[name])
    assert (inspection.format, inspection.writer, inspection.has_recurrent_layers) == (file_format, writer, recurrent)
    assert re.fullmatch(r"[23]\.\d+\.\d+", inspection.writer_version)
    assert some_layers <= set(inspection.layer_classes)
    assert list(inspection.layer_classes) == sorted(set(inspection.layer_classes))
    assert inspection.allowed_custom_objects == ()


@pytest.mark.slow  # builds real models (request.getfixturevalue)
@pytest.mark.parametrize(
    ("models", "name"),
    [  # a model of each format and writer, recurrent and not, both SavedModel writers
        ("keras3_models", "cnn.keras"),
        ("keras3_models", "rnn.h5"),
        ("keras3_models", "rnn.export"),
        ("tf_keras_models", "cnn.h5"),
        ("tf_keras_models", "rnn.keras"),
        ("tf_keras_models", "cnn.saved_model"),
    ],
)
def test_the_signature_read_without_loading_is_what_loading_gives(request, models, name, tmp_path) -> None:
    """gate validate checks data against the declared signature: it must be the one gate check loads."""
    from gate.frontends.keras import load_model

    path = request.getfixturevalue(models)[name]
    inspection = inspect_model(path)
    loaded = load_model(path, inspection, export_dir=tmp_path / "export", fixed_batch=False, unroll=False)
    assert inspection.signature is not None
    declared = [(i.name, i.shape, i.dtype) for i in inspection.signature.inputs]
    assert declared == [(s.name, s.shape, s.dtype) for s in loaded.inputs]
    assert inspection.signature.output_width == loaded.output_width
    if inspection.format != "saved_model":
        assert inspection.signature.output_activation == "softmax"


def test_the_example_models_in_the_repository_are_accepted() -> None:
    for path in sorted(Path(__file__).parent.parent.glob("models/*/model.keras")):
        assert inspect_model(path).writer == "keras", path


def test_a_symlinked_model_file_is_refused(keras3_models, tmp_path) -> None:
    link = tmp_path / "model.keras"
    link.symlink_to(keras3_models["cnn.keras"])
    refused(link, r"model\.keras: is a symbolic link; commit the model itself")


# --- nothing escapes but ModelError -------------------------------------------------------------------

JSON_KEYS = st.sampled_from(
    [
        "class_name",
        "module",
        "registered_name",
        "config",
        "layers",
        "name",
        "activation",
        "kernel_initializer",
        "metrics",
        "vocabulary",
        "layer",
        "x",
    ]
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.sampled_from(["Dense", "Lambda", "function", "keras.layers", "os", "builtins", "relu", "a>b", "__lambda__"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(JSON_KEYS, children, max_size=5),
    max_leaves=30,
)
# Derandomized and without an example database: the same examples on every run, and no .hypothesis folder.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.mark.slow  # a fuzzer: 150 drawn configs, as tests/test_properties.py
@FUZZ
@given(config=JSON_VALUES)
def test_any_json_config_gives_an_inspection_or_a_model_error(tmp_path, config) -> None:
    path = keras_file(tmp_path, {"module": "keras", "class_name": "Sequential", "config": config})
    with contextlib.suppress(ModelError):
        assert isinstance(inspect_model(path), Inspection)


@FUZZ
@given(data=st.data())
def test_damaged_files_give_an_inspection_or_a_model_error(keras3_models, tmp_path, data) -> None:
    # Not .h5: the HDF5 library could crash or loop on damage inspection cannot see; test_mutations.py damages
    # .h5 files in a child process.
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


def test_importing_gate_inspection_does_not_import_tensorflow_or_keras() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import gate.inspection"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    assert not re.search(r"\b(tensorflow|keras|tf_keras|h5py)\b", result.stderr)
