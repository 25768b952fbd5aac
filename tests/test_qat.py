"""gate.quantization.qat.train: quantization-aware training in its own process, as gate runs it.

Every QAT run here is `python -m gate.quantization.qat.train REQUEST.json` in a child process
(through gate.quantization.qat.job.run_qat, or subprocess directly where the exit code and
stderr matter), on tiny models built and trained in the test with fixed seeds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import digits, outputs_of_repeated_invokes

from gate.errors import ModelError
from gate.frontends.base import InputSpec
from gate.frontends.data import load_dataset
from gate.quantization.qat.job import (
    QatRequest,
    QatResult,
    QatStatus,
    read_request,
    read_result,
    run_qat,
    write_json,
    write_keras3_reference,
)
from gate.targets.litert import evaluate_tflite, from_model_output, to_model_input, variable_tensors

pytestmark = pytest.mark.slow  # end-to-end: real TensorFlow conversions or gate runs

TOLERANCE = 1e-5  # |tf-keras rebuild - Keras 3 original| on the eval inputs; measured: 0 to 3e-7


@dataclasses.dataclass(frozen=True)
class Folder:
    """A model folder as gate sees it, plus what the parent hands the QAT process."""

    path: Path
    input_name: str
    x_eval: np.ndarray
    y_eval: np.ndarray
    float_accuracy: float  # the Keras 3 model on the eval set

    def request(self, out: Path, **changes: object) -> QatRequest:
        out.mkdir(parents=True, exist_ok=True)
        request = QatRequest(
            model_path=str(self.path / "model.keras"),
            train_path=str(self.path / "train.npz"),
            input_names=(self.input_name,),
            task="classification",
            tflite_path=str(out / "model.qat-int8.tflite"),
            result_path=str(out / "result.json"),
            weights_path=str(self.path / "weights.npz"),
            reference_path=str(self.path / "reference.npz"),
            tolerance=TOLERANCE,
            epochs=2,
        )
        return dataclasses.replace(request, **changes)


def keras3_folder(folder: Path, layers: list, *, rows: bool = False, epochs: int = 20) -> Folder:
    """Train a Keras 3 digits model, save it as gate expects, and write the parent's weights and reference."""
    import keras

    x_train, y_train, x_eval, y_eval = digits("rows")
    if not rows:
        x_train, x_eval = x_train[..., None], x_eval[..., None]
    keras.utils.set_random_seed(0)
    name = "rows" if rows else "image"
    model = keras.Sequential([keras.Input(x_train.shape[1:], name=name), *layers])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    np.savez(folder / "train.npz", x=x_train, y=y_train)
    np.savez(folder / "eval.npz", x=x_eval, y=y_eval)
    write_keras3_reference(
        model, {name: x_eval}, weights_path=folder / "weights.npz", reference_path=folder / "reference.npz"
    )
    float_accuracy = float(np.mean(np.argmax(model.predict(x_eval, verbose=0), axis=1) == y_eval) * 100)
    return Folder(folder, name, x_eval, y_eval, float_accuracy)


def tflite_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of a .tflite in LiteRT, inputs quantized as gate.targets.litert does (round, then clip)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    runner_inputs = interpreter.get_input_details()
    (detail,), (output,) = runner_inputs, interpreter.get_output_details()
    fixed = detail["shape_signature"][0] == 1
    batch = 1 if fixed else len(x)
    scores = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        interpreter.resize_tensor_input(detail["index"], list(chunk.shape), strict=not fixed)
        interpreter.allocate_tensors()
        interpreter.set_tensor(detail["index"], to_model_input(chunk, detail))
        interpreter.invoke()
        scores.append(from_model_output(interpreter.get_tensor(output["index"]), output))
    return float(np.mean(np.argmax(np.concatenate(scores), axis=1) == y) * 100)


def run(request: QatRequest, where: Path) -> tuple[QatResult, list[str]]:
    lines: list[str] = []
    result = run_qat(request, request_path=where / "request.json", progress=lines.append, timeout_seconds=600)
    return result, lines


@pytest.fixture(scope="module")
def cnn(tmp_path_factory) -> Folder:
    import keras

    layers = [
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ]
    return keras3_folder(tmp_path_factory.mktemp("cnn") / "digits_cnn", layers)


@pytest.fixture(scope="module")
def cnn_run(cnn, tmp_path_factory) -> tuple[QatResult, list[str]]:
    out = tmp_path_factory.mktemp("cnn_run")
    return run(cnn.request(out), out)


def test_a_keras3_cnn_is_rebuilt_faithfully_and_keeps_its_accuracy_at_int8(cnn, cnn_run) -> None:
    result, lines = cnn_run
    assert result.status is QatStatus.OK, result.reason
    assert result.rebuilt and result.source_writer.startswith("keras 3.")
    assert result.faithfulness is not None
    assert result.faithfulness.max_abs_diff <= TOLERANCE == result.faithfulness.tolerance
    assert result.faithfulness.samples == len(cnn.x_eval)
    # Keras numbers layer names within a process (conv2d_1 after another test's conv2d): compare the classes.
    assert [i.class_name for i in result.annotated_layers] == ["Conv2D", "MaxPooling2D", "Flatten", "Dense"]
    assert result.unannotated_layers == ()
    assert [e.epoch for e in result.epochs] == [1, 2]
    assert result.loss == "sparse_categorical_crossentropy (probabilities)" and result.metric == "accuracy"
    assert result.train_samples == 1400 and result.calibration_samples == 200 and not result.fixed_batch
    assert [line.split("  ")[0] for line in lines if "epoch" in line] == ["qat: epoch 1/2", "qat: epoch 2/2"]
    tflite = Path(result.tflite.path)
    assert hashlib.sha256(tflite.read_bytes()).hexdigest() == result.tflite.sha256
    qat_accuracy = tflite_accuracy(tflite, cnn.x_eval, cnn.y_eval)
    # QAT fine-tunes on the training set, so it may also gain a little (measured: 91.44% float, 91.94% int8).
    assert qat_accuracy >= cnn.float_accuracy - 0.5, (qat_accuracy, cnn.float_accuracy)


def test_the_int8_model_has_the_requested_io_types(cnn, cnn_run) -> None:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=cnn_run[0].tflite.path)
    (detail,), (output,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert (np.dtype(detail["dtype"]).name, np.dtype(output["dtype"]).name) == ("int8", "int8")
    assert detail["quantization"][0] > 0


def test_two_runs_of_one_request_give_the_same_tflite_bytes(cnn, cnn_run, tmp_path) -> None:
    result, _lines = run(cnn.request(tmp_path), tmp_path)
    assert result.status is QatStatus.OK
    assert result.tflite.sha256 == cnn_run[0].tflite.sha256
    assert [e.loss for e in result.epochs] == [e.loss for e in cnn_run[0].epochs]


def test_layers_tfmot_cannot_quantize_stay_float_and_are_listed(tmp_path) -> None:
    import keras

    layers = [
        keras.layers.Rescaling(2.0, offset=-1.0),
        keras.layers.Conv1D(16, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ]
    folder = keras3_folder(tmp_path / "conv1d", layers, rows=True, epochs=10)
    result, lines = run(folder.request(tmp_path / "out", epochs=1), tmp_path)
    assert result.status is QatStatus.OK, result.reason
    assert [(i.class_name, i.note) for i in result.unannotated_layers] == [
        ("Rescaling", "tfmot's 8-bit scheme has no quantize config for Rescaling"),
        ("Conv1D", "tfmot's 8-bit scheme has no quantize config for Conv1D"),
    ]
    assert [i.class_name for i in result.annotated_layers] == ["Flatten", "Dense"]
    rescaling, conv1d = (i.name for i in result.unannotated_layers)  # Keras numbers names within a process
    assert f"qat: annotated 2 layers; left in float: {rescaling} (Rescaling), {conv1d} (Conv1D)" in lines
    assert tflite_accuracy(Path(result.tflite.path), folder.x_eval, folder.y_eval) >= folder.float_accuracy - 2


def test_a_crnn_trains_with_only_its_head_quantized_and_converts_with_a_batch_of_one(tmp_path) -> None:
    import keras

    layers = [
        keras.layers.Reshape((8, 8, 1)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.Reshape((8, 32)),
        keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True)),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(10, activation="softmax"),
    ]
    folder = keras3_folder(tmp_path / "crnn", layers, rows=True, epochs=10)
    result, _lines = run(folder.request(tmp_path / "out", epochs=1), tmp_path)
    assert result.status is QatStatus.OK, result.reason
    assert result.fixed_batch
    assert [i.class_name for i in result.annotated_layers] == ["Dense"]
    notes = {i.class_name: i.note for i in result.unannotated_layers}
    recurrent = next(i.name for i in result.unannotated_layers if i.class_name == "Bidirectional")
    assert notes["Conv2D"].startswith(f"feeds recurrent layer {recurrent!r}; with a fake-quant before an LSTM")
    assert notes["GlobalAveragePooling1D"].startswith(f"reads the output of recurrent layer {recurrent!r}")
    tflite = Path(result.tflite.path)
    accuracy = tflite_accuracy(tflite, folder.x_eval, folder.y_eval)
    assert accuracy >= folder.float_accuracy - 2
    # The LSTM was unrolled: the file keeps no state, so the same input gives the same output every time,
    # and an app that never resets it gets what gate measures.
    assert variable_tensors(tflite) == 0
    first, *again = outputs_of_repeated_invokes(tflite, folder.x_eval[:1])
    assert all(np.array_equal(first, output) for output in again)
    data = load_dataset(
        folder.path / "eval.npz",
        model_folder=folder.path,
        task="classification",
        output_width=10,
        inputs=(InputSpec("rows", (8, 8), "float32"),),
        need_labels=True,
    )
    without, with_resets = (
        evaluate_tflite(tflite, data, "classification", threads=1, reset=reset) for reset in (False, True)
    )
    assert without.value == with_resets.value == accuracy


@pytest.mark.parametrize("writer", ["h5", "tf_keras_keras"])
def test_a_tf_keras_model_is_trained_as_it_is(writer, tmp_path) -> None:
    import tf_keras

    x_train, y_train, _x_eval, _y_eval = digits()
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [tf_keras.Input((64,), name="pixels"), tf_keras.layers.Dense(16, activation="relu"), tf_keras.layers.Dense(10)]
    )  # logits
    model.compile(optimizer="adam", loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=3, verbose=0)
    path = tmp_path / ("model.h5" if writer == "h5" else "model.keras")
    model.save(path)
    np.savez(tmp_path / "train.npz", x=x_train, y=y_train)
    request = QatRequest(
        model_path=str(path),
        train_path=str(tmp_path / "train.npz"),
        input_names=("pixels",),
        task="classification",
        tflite_path=str(tmp_path / "qat.tflite"),
        result_path=str(tmp_path / "result.json"),
        epochs=1,
        input_dtype="uint8",
        output_dtype="float32",
    )
    result, _lines = run(request, tmp_path)
    assert result.status is QatStatus.OK, result.reason
    assert not result.rebuilt and result.source_writer.startswith("tf_keras 2.")
    assert result.faithfulness is None  # nothing was rebuilt, and no reference was given
    assert result.loss == "sparse_categorical_crossentropy (logits)"
    assert [i.class_name for i in result.annotated_layers] == ["Dense", "Dense"]


def _keras3_nested(folder: Path) -> None:
    import keras

    inner = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)], name="inner")
    x_in = keras.Input((64,), name="pixels")
    keras.Model(x_in, inner(x_in)).save(folder / "model.keras")


def _keras3_mlp(folder: Path) -> None:
    import keras

    model = keras.Sequential([keras.Input((64,), name="pixels"), keras.layers.Dense(10)])
    model.save(folder / "model.keras")
    write_keras3_reference(
        model,
        {"pixels": np.zeros((4, 64), np.float32)},
        weights_path=folder / "weights.npz",
        reference_path=folder / "reference.npz",
    )


@pytest.mark.parametrize(
    ("name", "build", "train", "message"),
    [
        (
            "no train.npz",
            _keras3_mlp,
            None,
            (
                "{folder}/train.npz: no such file; quantization-aware training fine-tunes the model on its training "
                "set, so "
                "add train.npz with the inputs (x) and labels (y)"
            ),
        ),
        (
            "no labels",
            _keras3_mlp,
            {"x": np.zeros((4, 64), np.float32)},
            (
                "quantization-aware training needs labelled training data: {folder}/train.npz: no array 'y'; add the "
                "labels the classification task scores: class indices or one-hot rows"
            ),
        ),
        (
            "nested model",
            _keras3_nested,
            {"x": np.zeros((4, 64), np.float32), "y": np.zeros(4)},
            (
                "{folder}/model.keras: layer 'inner' (Sequential) is a nested model; tfmot cannot quantize a model "
                "inside a "
                "model, so flatten it into one Sequential or Functional model"
            ),
        ),
    ],
)
def test_where_qat_cannot_be_done_the_process_exits_0_with_a_reason_and_no_traceback(
    name, build, train, message, tmp_path
) -> None:
    build(tmp_path)
    if train is not None:
        np.savez(tmp_path / "train.npz", **train)
    request = QatRequest(
        model_path=str(tmp_path / "model.keras"),
        train_path=str(tmp_path / "train.npz") if train else None,
        input_names=("pixels",),
        task="classification",
        tflite_path=str(tmp_path / "qat.tflite"),
        result_path=str(tmp_path / "result.json"),
        weights_path=str(tmp_path / "weights.npz"),
        reference_path=str(tmp_path / "reference.npz"),
    )
    write_json(tmp_path / "request.json", request)
    process = subprocess.run(
        [sys.executable, "-P", "-m", "gate.quantization.qat.train", str(tmp_path / "request.json")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    assert "Traceback" not in process.stderr
    result = read_result(tmp_path / "result.json")
    assert result.status is QatStatus.UNAVAILABLE
    assert result.reason == message.format(folder=tmp_path)
    assert f"qat: not trained: {result.reason.splitlines()[0]}" in process.stderr
    assert not (tmp_path / "qat.tflite").exists()


def test_a_rebuild_that_is_not_faithful_is_not_trained(cnn, tmp_path) -> None:
    with np.load(cnn.path / "reference.npz") as reference:
        arrays = dict(reference)
    arrays["outputs"] = arrays["outputs"] + 1e-4  # as if tf-keras computed something slightly different
    np.savez(tmp_path / "reference.npz", **arrays)
    result, _lines = run(cnn.request(tmp_path, reference_path=str(tmp_path / "reference.npz")), tmp_path)
    assert result.status is QatStatus.UNAVAILABLE and result.stage == "faithfulness"
    assert re.fullmatch(
        r"the tf-keras rebuild is not faithful: its outputs differ from the original Keras 3 model's by up to "
        r"0\.0001\d* on the 397 eval inputs \(tolerance 1e-05\); "
        r"gate will not train a model it cannot show to be the same",
        result.reason,
    ), result.reason


def test_importing_gate_qat_imports_no_tensorflow_and_makes_tensorflow_use_tf_keras() -> None:
    code = (
        "import sys, gate.quantization.qat.train; assert 'tensorflow' not in sys.modules, 'imported too early'\n"
        "import tensorflow as tf; print(tf.keras.__name__)"
    )
    environment = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"} | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=300, check=False
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip().startswith("tf_keras."), process.stdout


def test_a_converter_crash_is_a_failed_result_that_keeps_the_training_figures(cnn, cnn_run, tmp_path) -> None:
    """A stand-in for python that writes the result the QAT process writes before converting, then dies."""
    partial = dataclasses.replace(
        cnn_run[0], status=QatStatus.FAILED, stage="convert", tflite=None, reason="the process ended while converting"
    )
    request = cnn.request(tmp_path)
    write_json(tmp_path / "partial.json", partial)
    fake_python = tmp_path / "python"
    fake_python.write_text(f"#!/bin/sh\ncp {tmp_path / 'partial.json'} {request.result_path}\nkill -SEGV $$\n")
    fake_python.chmod(fake_python.stat().st_mode | stat.S_IXUSR)
    result = run_qat(
        request, request_path=tmp_path / "request.json", python=str(fake_python), progress=lambda line: None
    )
    assert result.status is QatStatus.FAILED and result.tflite is None
    assert result.reason == "the TFLite converter crashed with SIGSEGV during the convert stage"
    assert result.epochs == cnn_run[0].epochs


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epoch": 3}, "Object has an unknown field `epoch` - at `$`"),
        ({"epochs": 0}, "epochs: expected a whole number from 1 to 1000, got 0"),
        ({"epochs": "3"}, "Expected `int`, got `str` - at `$.epochs`"),
        ({"learning_rate": 0}, "learning_rate: expected a number from 1e-07 to 1, got 0.0"),
        ({"input_dtype": "int16"}, "input_dtype: expected one of int8, uint8, float32, got 'int16'"),
        (
            {"task": "clasification"},
            "task: expected one of classification, regression, anomaly, fidelity, custom-higher, custom-lower, got "
            "'clasification'",
        ),
        ({"input_names": ["x", 1]}, "Expected `str`, got `int` - at `$.input_names[1]`"),
        ({"fixed_batch": 1}, "Expected `bool`, got `int` - at `$.fixed_batch`"),
        ({"model_path": None}, "Expected `str`, got `null` - at `$.model_path`"),
        ({"outputs": [["class", "segmentation"]]}, "outputs: expected tasks of classification, regression, anomaly"),
        ({"outputs": [["class"]]}, "Expected `array` of length 2, got 1 - at `$.outputs[0]`"),
    ],
)
def test_a_bad_request_is_refused_naming_the_file_and_field(changes, message, tmp_path) -> None:
    data = {
        "model_path": "m.keras",
        "train_path": "train.npz",
        "input_names": ["x"],
        "task": "classification",
        "tflite_path": "q.tflite",
        "result_path": "r.json",
    } | changes
    (tmp_path / "request.json").write_text(json.dumps(data))
    with pytest.raises(ModelError) as raised:
        read_request(tmp_path / "request.json")
    assert str(raised.value).startswith(f"{tmp_path / 'request.json'}: {message}")


def test_a_result_whose_tflite_changed_is_refused(cnn_run, tmp_path) -> None:
    result = cnn_run[0]
    copy = tmp_path / "model.tflite"
    copy.write_bytes(Path(result.tflite.path).read_bytes() + b"\0")
    write_json(
        tmp_path / "result.json", dataclasses.replace(result, tflite=dataclasses.replace(result.tflite, path=str(copy)))
    )
    with pytest.raises(ModelError, match=r"result.json: tflite.sha256: .*model.tflite has sha256 [0-9a-f]{64}, not "):
        read_result(tmp_path / "result.json")


def test_method_qat_int8_gates_a_keras3_model_end_to_end(workspace) -> None:
    from helpers import run_gate

    (workspace / "models" / "healthy" / "gate.toml").write_text('method = "qat-int8"\n')
    run = run_gate("check", "--no-cache", cwd=workspace)
    assert run.exit_code == 0, run.stderr
    (qat,) = run.model("healthy")["candidates"]
    assert qat["method"] == "qat-int8" and qat["status"] == "PASS"
    assert qat["conversion"]["inputs"][0]["dtype"] == "int8" and qat["conversion"]["float_ops"] == []
    assert abs(qat["metric_change"]) <= 0.5 or qat["metric_change"] > 0
    assert qat["notes"][0].startswith("rebuilt in tf-keras from the Keras 3 model: outputs on 397 eval samples at most")
    assert "rebuilt in tf-keras from the Keras 3 model" in run.markdown
    assert (run.out_dir / "artifacts" / "healthy.qat-int8.tflite").is_file()
    assert "qat: epoch 3/3" in run.stderr  # one progress line per epoch
