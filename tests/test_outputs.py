"""A model with several outputs: which .tflite output is which Keras output (gate.measurement.outputs), proven by
value on the same inputs with the real converter and LiteRT, and refused when ambiguous."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gate.errors import ModelError
from gate.frontends.base import Dataset
from gate.measurement.outputs import map_outputs
from gate.quantization.base import Setup
from gate.quantization.convert import convert
from gate.results import DataInfo, FileDigest
from gate.targets.litert import signature_outputs

PROBE = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)


def two_heads(*, identical: bool = False):  # noqa: ANN201 - a Keras model
    """Layer `class` is built first, but Keras lists the outputs as returned: value, then class."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,), name="features")
    hidden = keras.layers.Dense(16, activation="relu", name="trunk")(inputs)
    klass = keras.layers.Dense(3, activation="softmax", name="class")(hidden)
    value = keras.layers.Dense(3 if identical else 1, activation="softmax" if identical else None, name="value")(hidden)
    model = keras.Model(inputs, [value, klass])
    if identical:
        model.get_layer("value").set_weights(model.get_layer("class").get_weights())
    return model


def converted(model, tmp_path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:  # noqa: ANN001
    """The Keras outputs by name, and the float32 and int8 .tflite's by signature name, all on PROBE."""
    import keras

    archive = keras.export.ExportArchive()  # as gate.frontends.keras exports a Keras 3 model: a list endpoint
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        lambda x: model(x, training=False),
        input_signature=[keras.InputSpec(shape=(None, 6), dtype="float32", name="features")],
    )
    archive.write_out(str(tmp_path / "saved_model"), verbose=False)
    data = Dataset({"features": PROBE}, None, DataInfo(FileDigest("eval.npz", 0, ""), len(PROBE)), Path("eval.npz"))
    runs = {}
    for method, setup in (("float32", Setup()), ("int8", Setup(calibration={"features": PROBE}))):
        path = tmp_path / f"{method}.tflite"
        path.write_bytes(convert(tmp_path / "saved_model", method=method, setup=setup).tflite)
        runs[method] = signature_outputs(path, data, threads=1)[0]
    keras_values = dict(zip(model.output_names, (np.asarray(v) for v in model(PROBE, training=False)), strict=True))
    return keras_values, runs["float32"], runs["int8"]


def test_outputs_in_another_order_than_keras_are_mapped_by_value(tmp_path: Path) -> None:
    keras_values, float32, int8 = converted(two_heads(), tmp_path)
    assert list(keras_values) == ["value", "class"]
    mapping = map_outputs(keras_values, float32, where="m")
    assert list(mapping) == ["value", "class"] and set(mapping.values()) == {"output_0", "output_1"}
    for keras_name, tflite_name in mapping.items():
        np.testing.assert_allclose(float32[tflite_name], keras_values[keras_name], rtol=1e-4, atol=1e-5)
    # An int8 candidate from the same SavedModel has the same signature names and shapes: the mapping holds for it.
    assert {name: v.shape for name, v in int8.items()} == {name: v.shape for name, v in float32.items()}
    assert np.abs(int8[mapping["class"]] - keras_values["class"]).max() < 0.1


def test_two_identical_heads_are_refused(tmp_path: Path) -> None:
    keras_values, float32, _ = converted(two_heads(identical=True), tmp_path)
    with pytest.raises(ModelError) as error:
        map_outputs(keras_values, float32, where="models/two_head/model.keras")
    first = next(iter(float32))
    assert str(error.value) == (
        "models/two_head/model.keras: Keras outputs 'value' and 'class' are equal on all 40 eval samples, so gate "
        f"cannot tell which .tflite output ('{first}') is which; if the heads compute the same thing, export one of "
        "them; otherwise add eval samples on which they differ"
    )


def test_outputs_of_one_shape_are_told_apart_by_value_whatever_the_order_of_their_names() -> None:
    # Twelve outputs: sorted names put output_10 before output_2; the mapping must not depend on that order.
    rng = np.random.default_rng(2)
    keras_values = {f"head{i}": rng.normal(size=(8, 2)) for i in range(12)}
    rotated = {f"output_{(i + 5) % 12}": keras_values[f"head{i}"].astype(np.float32) + 1e-7 for i in range(12)}
    tflite = dict(sorted(rotated.items()))  # as LiteRT lists a signature's outputs: by name
    assert map_outputs(keras_values, tflite, where="m") == {f"head{i}": f"output_{(i + 5) % 12}" for i in range(12)}


@pytest.mark.parametrize(
    ("keras_values", "tflite", "message"),
    [
        (  # equal values of another shape are no match
            {"a": np.ones((4, 3))},
            {"output_0": np.ones((4, 3, 1))},
            "m: float32 .tflite output 'output_0' (3, 1) equals no Keras output on the 4 eval samples (closest: 'a' "
            "(3,), relative difference inf); the conversion changed the model: report it as a gate bug",
        ),
        (
            {"a": np.ones((5, 2)), "b": np.ones((5, 2)) * 3},
            {"output_0": np.ones((5, 2)), "output_1": np.ones((5, 2)) * 2},
            "m: float32 .tflite output 'output_1' (2,) equals no Keras output on the 5 eval samples (closest: 'b' "
            "(2,), relative difference 0.333); the conversion changed the model: report it as a gate bug",
        ),
        (
            {"a": np.ones((5, 2)), "b": np.ones((5, 2)) * 7},
            {"output_0": np.ones((5, 2)), "output_1": np.ones((5, 2))},
            "m: no .tflite output equals Keras output 'b'; several .tflite outputs equal the same Keras output on the "
            "eval samples, so gate cannot map them: report it as a gate bug",
        ),
        (
            {"a": np.ones((2, 1)), "b": np.ones((2, 1))},
            {"output_0": np.ones((2, 1))},
            "m: the Keras model has 2 output(s) (a, b) but its float32 .tflite has 1 (output_0); the conversion "
            "changed the model: report it as a gate bug",
        ),
    ],
)
def test_a_mapping_that_cannot_be_proven_is_refused(keras_values: dict, tflite: dict, message: str) -> None:
    with pytest.raises(ModelError) as error:
        map_outputs(keras_values, tflite, where="m")
    assert str(error.value) == message


@pytest.fixture(scope="module")
def two_head_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("two_head") / "model.keras"
    two_heads().save(path)
    return path


CLASSES = np.array([0, 1, 2, 1] * 10)


@pytest.mark.parametrize(
    ("toml", "arrays", "problems"),
    [
        (
            '[outputs.class]\ntask = "classification"\n[outputs.valeu]\ntask = "regression"\n',
            {"y.class": CLASSES},
            ["{manifest}: [outputs.valeu]: the model has no output 'valeu' (did you mean 'value'?); its outputs are "
             "value, class"],
        ),
        (
            '[outputs.class]\ntask = "classification"\n',
            {"y": CLASSES},
            ["{eval}: holds y, but the model has several outputs, whose labels are stored as y.<output name> "
             "(y.class); rename it",
             "{eval}: no array 'y.class'; add the labels the classification task scores output 'class' by: class "
             "indices or one-hot rows"],
        ),
        (
            '[outputs.class]\ntask = "classification"\n[outputs.value]\ntask = "regression"\n',
            {"y.class": CLASSES + 0.5, "y.value": np.zeros((40, 2))},
            ["{eval}: y.value has shape (40, 2); the model has 1 output(s), so expected (samples, 1)",
             "{eval}: y.class holds non-integer values; classification needs class indices (for a regression model "
             'set task = "regression" in gate.toml)'],
        ),
        (
            '[outputs.class]\ntask = "classification"\n',
            {"y.class": CLASSES, "y.value": np.zeros(40)},
            ["{eval}: holds y.value, but output 'value' is scored by fidelity, which reads no labels; remove it, or "
             "give the output a task in gate.toml's [outputs.value]"],
        ),
        (
            '[outputs.class]\ntask = "classification"\n',
            {"y.class": CLASSES[:30]},
            ["{eval}: arrays hold different numbers of samples (x has 40, y.class has 30); every array needs one row "
             "per sample"],
        ),
        (  # all in order: gate check refuses it as gate validate does
            '[outputs.class]\ntask = "classification"\n[outputs.value]\ntask = "regression"\n',
            {"y.class": CLASSES, "y.value": np.zeros(40)},
            ["{model}: the model has 2 outputs (value, class); gate.toml and eval.npz describe them, but gate check "
             "cannot gate a model with several outputs yet: export one model per output for now"],
        ),
    ],
)  # fmt: skip
def test_validate_checks_each_output_its_table_and_its_labels(
    workspace: Path, two_head_file: Path, capsys, toml: str, arrays: dict, problems: list[str]
) -> None:
    from gate.commands.validate import validate

    folder = workspace / "models" / "two_head"
    folder.mkdir()
    (folder / "model.keras").write_bytes(two_head_file.read_bytes())
    (folder / "gate.toml").write_text(toml)
    np.savez(folder / "eval.npz", x=PROBE, **arrays)
    np.savez(folder / "calib.npz", x=PROBE)
    assert validate([folder], policies_dir=workspace / "policies") == 2
    where = {"manifest": folder / "gate.toml", "eval": folder / "eval.npz", "model": folder / "model.keras"}
    lines = capsys.readouterr().err.splitlines()
    assert lines[:-1] == [problem.format(**where) for problem in problems]


def test_output_tables_are_refused_for_a_model_with_one_output(workspace: Path, capsys) -> None:
    from gate.commands.validate import validate

    folder = workspace / "models" / "healthy"
    (folder / "gate.toml").write_text('[outputs.class]\ntask = "classification"\n')
    assert validate([folder], policies_dir=workspace / "policies") == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"{folder / 'gate.toml'}: [outputs.class]: [outputs.<name>] tables are for a Keras model file that declares "
        "several outputs, and this one does not; set task instead"
    )


@pytest.mark.parametrize(
    ("toml", "problems"),
    [
        ('[outputs.class]\ntask = "clasification"\ncolour = 1\n[outputs.value]\n',
         ["{p}: outputs.class: unknown key 'colour'; allowed keys: task",
          "{p}: outputs.class: task: expected one of classification, regression, anomaly, fidelity, got "
          "'clasification' (did you mean 'classification'?)",
          "{p}: outputs.value: no task; add task = one of classification, regression, anomaly, fidelity"]),
        ('outputs = "class"\n', ["{p}: outputs: expected a table such as [outputs.class] task = \"classification\", "
                                 "got 'class'"]),
        ('[outputs]\nclass = "classification"\n',
         ["{p}: outputs: class: expected a table [outputs.class] with task = \"...\", got 'classification'"]),
        ('task = "regression"\n[outputs.class]\ntask = "classification"\n',
         ["{p}: task and [outputs.<name>] tables: a model with several outputs names the task of each in its table; "
          "remove task"]),
    ],
)  # fmt: skip
def test_output_tables_are_validated_in_gate_toml(tmp_path: Path, toml: str, problems: list[str]) -> None:
    from gate.policy.config import parse_manifest

    path = tmp_path / "gate.toml"
    path.write_text(toml)
    with pytest.raises(ModelError) as error:
        parse_manifest(path, ["default"])
    assert str(error.value).splitlines() == [problem.format(p=path) for problem in problems]


def test_output_tables_become_tasks_by_output_name(tmp_path: Path) -> None:
    from gate.policy.config import parse_manifest

    path = tmp_path / "gate.toml"
    path.write_text('[outputs.class]\ntask = "classification"\n[outputs.value]\ntask = "regression"\n')
    assert parse_manifest(path, ["default"]).outputs == {"class": "classification", "value": "regression"}
