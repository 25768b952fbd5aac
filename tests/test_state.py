"""What an app gets from a recurrent model's .tflite: no state between invokes, or figures measured as it runs it.

A tf-keras LSTM converts to UNIDIRECTIONAL_SEQUENCE_LSTM, which keeps its state in
variable tensors from one invoke to the next: an app that runs one sample per invoke,
as the TFLite tutorials do, gets each sample's answer started from the last one's
state. gate unrolls recurrent layers so that its files keep none, and measures any
file that still does the way an app runs it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import TEST_POLICIES, digits, outputs_of_repeated_invokes, run_gate, write_data

from gate.frontends.base import Dataset, InputSpec
from gate.frontends.data import load_dataset
from gate.frontends.keras import load_model
from gate.inspection import inspect_model
from gate.quantization.base import Setup
from gate.quantization.convert import convert
from gate.quantization.methods import METHODS
from gate.targets.litert import evaluate_tflite, variable_tensors

pytestmark = pytest.mark.slow  # end-to-end: real TensorFlow conversions or gate runs


def lstm_model(folder: Path, writer: str) -> Path:
    """An LSTM on the digits' 8 rows: tf-keras's (634 parameters) as model.h5, or Keras 3's bidirectional one,
    as the CRNN example has, as model.keras."""
    import keras
    import tf_keras

    x_train, y_train, x_eval, y_eval = digits("rows")
    library, filename = (tf_keras, "model.h5") if writer == "tf_keras" else (keras, "model.keras")
    library.utils.set_random_seed(0)
    lstm = library.layers.LSTM(8)
    recurrent = lstm if writer == "tf_keras" else library.layers.Bidirectional(lstm)
    model = library.Sequential(
        [library.Input((8, 8), name="rows"), recurrent, library.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer=library.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=20, batch_size=64, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / filename)
    write_data(folder, x_train, y_train, x_eval[:120], y_eval[:120])
    return folder


def converted(folder: Path, tmp_path: Path, method: str, *, unroll: bool) -> tuple[Path, Dataset]:
    """The model of `folder` loaded and converted with `method` as gate's pipeline does, and its eval data."""
    model_file = next(folder / name for name in ("model.keras", "model.h5") if (folder / name).exists())
    inspection = inspect_model(model_file)
    model = load_model(model_file, inspection, export_dir=tmp_path / "export", fixed_batch=True, unroll=unroll)
    data_args = {"model_folder": folder, "inputs": model.inputs, "task": "classification", "output_width": 10}
    data = load_dataset(folder / "eval.npz", need_labels=True, **data_args)
    calibration = load_dataset(folder / "train.npz", need_labels=False, **data_args).inputs
    setup = Setup(calibration={name: array[:100] for name, array in calibration.items()})
    path = tmp_path / f"model.{method}.tflite"
    export = model.export_for(calibrated=METHODS[method].needs_calibration)
    path.write_bytes(convert(export, method=method, setup=setup).tflite)
    return path, data


@pytest.fixture(scope="module")
def lstm_h5(tmp_path_factory) -> Path:
    return lstm_model(tmp_path_factory.mktemp("lstm") / "lstm", "tf_keras")


@pytest.mark.parametrize(("writer", "method"), [("tf_keras", "float32"), ("tf_keras", "int8"), ("keras3", "float32")])
def test_a_recurrent_model_converts_to_a_file_that_keeps_no_state(writer, method, lstm_h5, tmp_path) -> None:
    folder = lstm_h5 if writer == "tf_keras" else lstm_model(tmp_path / "bilstm", "keras3")
    path, data = converted(folder, tmp_path, method, unroll=True)
    assert variable_tensors(path) == 0
    first, *again = outputs_of_repeated_invokes(path, data.inputs["rows"][:1])
    assert all(np.array_equal(first, output) for output in again)
    without, with_resets = (
        evaluate_tflite(path, data, "classification", threads=1, batch_size=1, reset=reset) for reset in (False, True)
    )
    assert without.per_sample == with_resets.per_sample and without.value == with_resets.value


def test_as_it_is_a_tf_keras_lstm_keeps_state_between_invokes(lstm_h5, tmp_path) -> None:
    """Why gate unrolls: the fused op's next invoke starts from the last one's state."""
    path, data = converted(lstm_h5, tmp_path, "int8", unroll=False)
    assert variable_tensors(path) == 2
    first, second, _third = outputs_of_repeated_invokes(path, data.inputs["rows"][:1])
    assert not np.array_equal(first, second)


def op_names(path: Path) -> set[str]:
    from ai_edge_litert.interpreter import Interpreter

    return {op["op_name"] for op in Interpreter(model_path=str(path))._get_ops_details()}


def test_a_keras3_lstm_converts_to_int8_unrolled_and_stays_a_compact_loop_where_nothing_calibrates(tmp_path) -> None:
    """A WHILE loop keeps no state, but TF 2.21's int8 calibration dies on it (SIGSEGV); unrolled, it converts."""
    (tmp_path / "policies").mkdir()
    for name, text in TEST_POLICIES.items():
        (tmp_path / "policies" / f"{name}.toml").write_text(text)
    lstm_model(tmp_path / "models" / "int8", "keras3")
    (tmp_path / "models" / "int8" / "gate.toml").write_text('method = "int8"\n')
    shutil.copytree(tmp_path / "models" / "int8", tmp_path / "models" / "float16")
    (tmp_path / "models" / "float16" / "gate.toml").write_text('method = "float16"\npolicy = "float_io"\n')
    run = run_gate("check", "--no-cache", cwd=tmp_path)
    (int8,) = run.model("int8")["candidates"]
    assert int8["status"] in ("PASS", "FAIL") and int8["conversion"]["state"] is None, int8["reason"]
    artifacts = run.out_dir / "artifacts"
    assert "WHILE" not in op_names(artifacts / "int8.int8.tflite")
    assert "WHILE" in op_names(artifacts / "float16.float16.tflite")
    assert "WHILE" in op_names(artifacts / "int8.float32.tflite")  # the reference, as the float model is


def per_sample_loop(path: Path, data: Dataset, *, reset: bool) -> float:
    """Accuracy the way the TFLite tutorials run a model, written here independently of gate.targets.litert."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (detail,), (output,) = interpreter.get_input_details(), interpreter.get_output_details()
    scale, zero_point = detail["quantization"]
    correct = 0
    for x, y in zip(data.inputs["rows"], data.labels, strict=True):
        if reset:
            interpreter.reset_all_variables()
        quantized = np.clip(np.round(x[None] / scale + zero_point), -128, 127).astype(np.int8)
        interpreter.set_tensor(detail["index"], quantized)
        interpreter.invoke()
        correct += int(np.argmax(interpreter.get_tensor(output["index"])) == y)
    return 100 * correct / len(data.labels)


@pytest.fixture(scope="module")
def fused_workspace(tmp_path_factory, lstm_h5) -> Path:
    """A SavedModel exported from the tf-keras LSTM as it is: gate converts it as it is, fused and stateful."""
    import tensorflow as tf
    import tf_keras

    root = tmp_path_factory.mktemp("fused")
    (root / "policies").mkdir()
    (root / "policies" / "default.toml").write_text(TEST_POLICIES["default"])
    folder = root / "models" / "fused"
    folder.mkdir(parents=True)
    model = tf_keras.models.load_model(lstm_h5 / "model.h5")
    serve = tf.function(lambda rows: model(rows, training=False))
    signature = serve.get_concrete_function(tf.TensorSpec((1, 8, 8), tf.float32, name="rows"))
    tf.saved_model.save(model, str(folder / "saved_model"), signatures=signature)
    for name in ("train.npz", "eval.npz"):
        shutil.copy(lstm_h5 / name, folder / name)
    (folder / "gate.toml").write_text('method = "int8"\n')
    return root


@pytest.fixture(scope="module")
def fused_run(fused_workspace):
    return run_gate("check", "--no-cache", cwd=fused_workspace)


def test_a_file_that_keeps_state_is_judged_as_an_app_runs_it_and_fails_runtime_stateless(fused_run) -> None:
    model = fused_run.model("fused")
    (candidate,) = model["candidates"]
    conversion, state = candidate["conversion"], candidate["conversion"]["state"]
    assert state["variable_tensors"] == 2 and state["app_resets"] is False
    path = fused_run.out_dir / "artifacts" / "fused.int8.tflite"
    eval_data = load_dataset(
        fused_run.out_dir.parent / "models" / "fused" / "eval.npz",
        model_folder=fused_run.out_dir.parent,
        inputs=(InputSpec("rows", (8, 8), "float32"),),
        task="classification",
        output_width=10,
        need_labels=True,
    )
    # Judged: one sample per invoke and no reset; beside it, with a reset before each invoke.
    assert conversion["evaluation"]["value"] == per_sample_loop(path, eval_data, reset=False)
    assert state["other_evaluation"]["value"] == per_sample_loop(path, eval_data, reset=True)
    assert conversion["evaluation"]["value"] < state["other_evaluation"]["value"]
    (stateless,) = [c for c in candidate["checks"] if c["name"] == "runtime.stateless"]
    assert (stateless["status"], stateless["measured"]) == ("FAIL", "stateful")
    assert stateless["message"].startswith(
        "keeps state between invokes in 2 variable tensors: run one sample per invoke without a reset, as an app "
        f"that does not know runs it, it scores accuracy {conversion['evaluation']['value']:.2f}%"
    )
    must = "call interpreter.reset_all_variables() before each inference: the file keeps state in 2 variable tensors"
    assert state["app_must"].startswith(must)
    assert f"> **fused: the published `int8` file keeps state between invokes.** The app must {must}" in (
        fused_run.markdown
    )


def test_with_runtime_resets_state_it_is_judged_with_resets_and_the_release_says_what_the_app_must_do(
    fused_workspace, fused_run, tmp_path
) -> None:
    workspace = tmp_path / "workspace"
    shutil.copytree(fused_workspace, workspace, ignore=shutil.ignore_patterns("gate-out", ".gate-cache"))
    (workspace / "models" / "fused" / "gate.toml").write_text(
        'method = "int8"\noverride_reason = "the app resets the LSTM state before each inference"\n'
        "[overrides.runtime]\nresets_state = true\n"
        "[overrides.accuracy]\nmax_drop = 100.0\n"
    )
    run = run_gate("check", "--no-cache", cwd=workspace)
    (candidate,) = run.model("fused")["candidates"]
    state = candidate["conversion"]["state"]
    assert state["app_resets"] is True
    before = fused_run.model("fused")["candidates"][0]["conversion"]
    assert candidate["conversion"]["evaluation"]["value"] == before["state"]["other_evaluation"]["value"]
    assert state["other_evaluation"]["value"] == before["evaluation"]["value"]
    (stateless,) = [c for c in candidate["checks"] if c["name"] == "runtime.stateless"]
    assert (stateless["status"], stateless["measured"]) == ("PASS", "stateful, reset by the app")
    assert run.exit_code == 0, run.stdout
    layout = run_gate("release", "--from", "gate-out", "--out", "release", cwd=workspace)
    assert layout.exit_code == 0, layout.stderr
    line = (
        "fused.int8.tflite: fused, int8, accuracy "
        f"{candidate['conversion']['evaluation']['value']:.2f}% on 120 samples; keeps state between invokes: the app "
        f"must {state['app_must']}"
    )
    assert f"gate release: {line}\n" in layout.stderr
    assert (workspace / "release" / "RELEASE.md").read_text() == f"- {line}\n"
