"""Several outputs of a tf-keras model.h5 (or model.keras) and of a SavedModel: named before loading (a Keras config
names its output layers; a SavedModel's serving_default names its outputs by their keys), checked by gate validate,
and gated per output like a Keras 3 model.keras."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gate.errors import ModelError
from gate.inspection.signature import OutputInfo, saved_model_signature

X = np.random.default_rng(0).normal(size=(120, 6)).astype(np.float32)
FLOAT = 1  # tensorflow/core/framework/types.proto: DT_FLOAT


def test_a_saved_model_names_its_several_outputs_by_their_signature_keys_in_sorted_order() -> None:
    outputs = {"value": (FLOAT, (-1, 1)), "class": (FLOAT, (-1, 3))}
    serving = {"inputs": {"features": (FLOAT, (-1, 6))}, "outputs": outputs}
    signature = saved_model_signature("m", serving)
    assert signature is not None and signature.output_width is None
    assert signature.outputs == (OutputInfo("class", 3, None), OutputInfo("value", 1, None))
    one = saved_model_signature("m", {**serving, "outputs": {"output_0": (FLOAT, (-1, 3))}})
    assert one is not None and (one.output_width, one.outputs) == (3, ())
    with pytest.raises(ModelError, match="^m: its serving_default signature returns nothing; export the model's"):
        saved_model_signature("m", {**serving, "outputs": {}})


def test_a_saved_model_output_key_gate_cannot_use_as_a_name_is_refused_before_loading() -> None:
    from gate.gating.data import output_specs
    from gate.inspection import InputInfo, Inspection, Signature

    outputs = (OutputInfo("class head", 3, None), OutputInfo("value", 1, None))
    signature = Signature((InputInfo("x", (6,), "float32"),), None, None, outputs)
    inspection = Inspection("saved_model", "tensorflow", "2.21.0", (), False, (), signature)
    with pytest.raises(ModelError) as error:
        output_specs(inspection, {}, manifest="gate.toml", model_file="saved_model")
    assert str(error.value) == (
        "saved_model: output 'class head' has a name gate cannot use as y.<name> and in its checks' names; name its "
        "key in the serving_default signature with letters, digits, '_', '.' and '-' only (at most 128)"
    )


def legacy_two_heads():  # noqa: ANN201 - a tf-keras model
    """`value` is returned first though `class` is built first: Keras' order is value, class."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((6,), name="features")
    trunk = tf_keras.layers.Dense(16, activation="relu", name="trunk")(inputs)
    klass = tf_keras.layers.Dense(3, activation="softmax", name="class")(trunk)
    value = tf_keras.layers.Dense(1, name="value")(trunk)
    return tf_keras.Model(inputs, [value, klass])


@pytest.fixture(scope="module")
def legacy_models(tmp_path_factory) -> dict[str, Path]:
    """model.h5, model.keras and a saved_model/ of the same two-head tf-keras model, each in a model folder with labels
    its float outputs nearly meet (the class the float model picks, its value plus noise)."""
    model = legacy_two_heads()
    value, klass = (np.asarray(output) for output in model(X, training=False))
    labels = {"y.class": klass.argmax(axis=1), "y.value": value + np.random.default_rng(1).normal(0, 0.1, value.shape)}
    folders = {}
    for name, saved in (("legacy_h5", "model.h5"), ("legacy_keras", "model.keras"), ("legacy_sm", "saved_model")):
        folder = tmp_path_factory.mktemp("repo") / name
        folder.mkdir()
        model.save(folder / saved, **({"save_format": "tf"} if saved == "saved_model" else {}))
        np.savez(folder / "eval.npz", x=X, **labels)
        np.savez(folder / "calib.npz", x=X)
        (folder / "gate.toml").write_text(
            'method = "int8"\n[outputs.class]\ntask = "classification"\n[outputs.value]\ntask = "regression"\n'
        )
        folders[name] = folder
    return folders


@pytest.mark.slow  # builds a tf-keras model
@pytest.mark.parametrize("name", ["legacy_h5", "legacy_keras", "legacy_sm"])
def test_validate_names_the_outputs_of_an_h5_or_saved_model_that_a_table_gets_wrong(
    workspace: Path, legacy_models: dict[str, Path], capsys, name: str
) -> None:
    import shutil

    from gate.commands.validate import validate

    folder = workspace / "models" / name
    shutil.copytree(legacy_models[name], folder)
    assert validate([folder], policies_dir=workspace / "policies") == 0
    capsys.readouterr()
    (folder / "gate.toml").write_text('[outputs.klass]\ntask = "classification"\n')
    assert validate([folder], policies_dir=workspace / "policies") == 2
    order = "class, value" if name == "legacy_sm" else "value, class"  # a SavedModel's keys, sorted; Keras' order
    assert capsys.readouterr().err.splitlines()[0] == (
        f"{folder / 'gate.toml'}: [outputs.klass]: the model has no output 'klass' (did you mean 'class'?); its "
        f"outputs are {order}"
    )


@pytest.mark.slow  # a real gate run
def test_a_tf_keras_file_and_a_saved_model_with_two_outputs_are_gated_per_output(
    tmp_path: Path, legacy_models: dict[str, Path]
) -> None:
    """Each output's figure in the report equals scikit-learn's on the published .tflite's output that the report
    says is that output, run here."""
    import shutil

    from ai_edge_litert.interpreter import Interpreter
    from helpers import REPO, run_gate
    from sklearn.metrics import accuracy_score, mean_absolute_error

    shutil.copytree(REPO / "policies", tmp_path / "policies")
    for name, folder in legacy_models.items():
        shutil.copytree(folder, tmp_path / "models" / name)
    run = run_gate("check", "--out", "out", cwd=tmp_path)
    assert run.exit_code == 0, run.stderr
    with np.load(tmp_path / "models" / "legacy_h5" / "eval.npz") as data:
        classes, values = data["y.class"], data["y.value"][:, 0]
    orders = {"legacy_h5": ["value", "class"], "legacy_keras": ["value", "class"], "legacy_sm": ["class", "value"]}
    for name, order in orders.items():
        model = run.model(name)
        assert model["status"] != "ERROR", model.get("error")
        assert [o["output"] for o in model["float_per_output"]] == order
        published = model["candidates"][model["chosen"]]
        checks = {check["name"] for check in published["checks"]}
        assert {"accuracy.max_drop (class)", "mae.max_increase (value)", "fidelity.min_snr_db (value)"} <= checks

        runner = Interpreter(
            model_path=str(run.out_dir / published["conversion"]["artifact"]["path"])
        ).get_signature_runner()
        (detail,) = runner.get_input_details().values()
        scale, zero = detail["quantization"]
        outputs = runner(**{next(iter(runner.get_input_details())): np.clip(np.round(X / scale + zero), -128, 127)
                            .astype(np.int8)})  # fmt: skip
        tensors = {o["output"]: o["tensor"] for o in published["conversion"]["per_output"]}
        dequantized = {}
        for output, tensor in tensors.items():
            out_scale, out_zero = runner.get_output_details()[tensor]["quantization"]
            dequantized[output] = (outputs[tensor].astype(np.float64) - out_zero) * out_scale
        scores = {o["output"]: o["evaluation"]["value"] for o in published["conversion"]["per_output"]}
        assert dequantized["class"].shape[1] == 3 and dequantized["value"].shape[1] == 1
        assert scores["class"] == pytest.approx(accuracy_score(classes, dequantized["class"].argmax(axis=1)) * 100)
        assert scores["value"] == pytest.approx(mean_absolute_error(values, dequantized["value"][:, 0]), rel=1e-5)


@pytest.mark.slow  # saves and loads a SavedModel
def test_several_outputs_a_file_does_not_declare_are_refused_when_loading_shows_them(tmp_path: Path) -> None:
    """A serving signature whose input has no known rank declares nothing gate can check before loading."""
    import tensorflow as tf

    from gate.frontends.keras import load_model
    from gate.inspection import inspect_model

    class Undeclared(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec(None, tf.float32, name="x")])
        def serve(self, x):  # noqa: ANN001, ANN202 - a TensorFlow function
            return {"a": x * 2.0, "b": x + 1.0}

    module = Undeclared()
    path = tmp_path / "saved_model"
    tf.saved_model.save(module, str(path), signatures=module.serve.get_concrete_function())
    inspection = inspect_model(path)
    assert inspection.signature is None
    with pytest.raises(ModelError) as error:
        load_model(path, inspection, export_dir=tmp_path / "export", fixed_batch=False)
    assert str(error.value).startswith(
        f"{path}: the model has 2 outputs, but its file does not declare them where gate reads them before loading it"
    )


@pytest.mark.slow  # saves and loads a SavedModel
@pytest.mark.parametrize("samples", [60, 300])  # one batch of predictions, and two (gate.frontends.base.PREDICT_BATCH)
def test_an_output_without_the_batch_as_its_first_dimension_is_refused_naming_it(tmp_path: Path, samples: int) -> None:
    """A signature may return a tensor that is no output per sample (found by an attack: its 3 values were scored as
    3 samples, and the result was then refused as an internal error in gate)."""
    import tensorflow as tf

    from gate.frontends.base import Dataset
    from gate.frontends.keras import load_model
    from gate.gating.several import keras_outputs
    from gate.inspection import inspect_model
    from gate.results import DataInfo, FileDigest

    class Constant(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable(tf.random.stateless_normal((6, 3), seed=(1, 2)))

        @tf.function(input_signature=[tf.TensorSpec((None, 6), tf.float32, name="x")])
        def serve(self, x):  # noqa: ANN001, ANN202 - a TensorFlow function
            return {"a": tf.nn.softmax(tf.matmul(x, self.w)), "b": self.w[0] * 1.0}

    module = Constant()
    path = tmp_path / "saved_model"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    loaded = load_model(path, inspect_model(path), export_dir=tmp_path / "export", fixed_batch=False)
    x = np.random.default_rng(0).normal(size=(samples, 6)).astype(np.float32)
    data = Dataset({"x": x}, None, DataInfo(FileDigest("eval.npz", 1, "0" * 64), samples), tmp_path / "eval.npz")
    with pytest.raises(ModelError) as error:
        keras_outputs(loaded, data, where=str(path))
    assert str(error.value) == (
        f"{path}: output 'b' has shape (3,) on a batch of {min(samples, 256)} eval samples: every output must have the "
        "batch as its first dimension (one row per sample); return the output for each sample"
    )
