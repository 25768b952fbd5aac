"""Quantization-aware training of a model with several outputs, end to end: `gate check` trains every output at once
(gate.quantization.qat.heads) and scores and judges the converted file per output, like every other candidate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # a real gate run, with QAT in its own process

# The QAT runs fast enough to move a head that starts far off: 5 epochs at 1e-2 (the default is 3 at 1e-4).
# No metric or fidelity check: the reset head's outputs move far from the float model's, as they should.
POLICY = "[size]\nmin_reduction = 2.0\n[qat]\nlearning_rate = 0.01\nepochs = 5\n"
MANIFEST = 'method = "qat-int8"\n[outputs.class]\ntask = "classification"\n[outputs.value]\ntask = "regression"\n'


def three_heads(folder: Path) -> dict[str, np.ndarray]:
    """A Keras 3 model with a classifier (`class`), a regression head (`value`) and an unlabelled output (`embed`,
    scored by fidelity), trained together; then `value` is reset to a constant, as an untrained head would be, so that
    only training on its own labels brings its MAE down. Returns the eval arrays."""
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 6)).astype(np.float32)
    classes = np.argmax(x[:, :3], axis=1)
    value = (2 * x[:, 0] - x[:, 1] + x[:, 4]).astype(np.float32)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,), name="features")
    trunk = keras.layers.Dense(32, activation="relu", name="trunk")(inputs)
    heads = [
        keras.layers.Dense(3, activation="softmax", name="class")(trunk),
        keras.layers.Dense(1, name="value")(trunk),
        keras.layers.Dense(4, name="embed")(trunk),
    ]
    model = keras.Model(inputs, heads)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=["sparse_categorical_crossentropy", "mae", None])
    model.fit(x[:480], [classes[:480], value[:480]], epochs=30, batch_size=32, verbose=0)
    model.get_layer("value").set_weights([np.zeros((32, 1), np.float32), np.full(1, 0.5, np.float32)])
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    np.savez(folder / "train.npz", x=x[:480], **{"y.class": classes[:480], "y.value": value[:480]})
    evaluation = {"x": x[480:], "y.class": classes[480:], "y.value": value[480:]}
    np.savez(folder / "eval.npz", **evaluation)
    (folder / "gate.toml").write_text(MANIFEST)
    return evaluation


def test_qat_trains_every_output_of_a_model_with_several_and_its_file_is_scored_per_output(tmp_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter
    from helpers import run_gate
    from sklearn.metrics import accuracy_score, mean_absolute_error

    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "default.toml").write_text(POLICY)
    evaluation = three_heads(tmp_path / "models" / "three")
    run = run_gate("check", "--no-cache", "--out", "out", cwd=tmp_path)
    assert run.exit_code == 0, run.stderr
    model = run.model("three")
    (qat,) = model["candidates"]
    assert qat["method"] == "qat-int8" and qat["status"] == "PASS", qat["reason"]
    assert (
        "trained on every output at once: class by sparse_categorical_crossentropy (probabilities); value by mae; "
        "embed by MSE to the float model's outputs (distillation: no labels)"
    ) in qat["notes"]

    # Scored per output, each by its task, with its fidelity to the float32 file's same output.
    scores = {o["output"]: o for o in qat["conversion"]["per_output"]}
    floats = {o["output"]: o["evaluation"]["value"] for o in model["float_per_output"]}
    assert list(scores) == ["class", "value", "embed"]
    assert [scores[name]["task"] for name in scores] == ["classification", "regression", "fidelity"]
    assert all(scores[name]["fidelity"] is not None for name in scores)
    # Each output trained on its own loss: the reset head learnt its labels (measured: MAE 1.97 -> 0.09), the others
    # kept what they had (accuracy 98.33% -> 96.67%; embed SNR 25 dB against the float32 file).
    assert scores["value"]["evaluation"]["value"] < floats["value"] / 4
    assert scores["class"]["evaluation"]["value"] >= floats["class"] - 2
    assert scores["embed"]["fidelity"]["snr_db"] > 15

    # The figures are the published file's own outputs as LiteRT runs it, scored here by scikit-learn.
    runner = Interpreter(model_path=str(run.out_dir / qat["conversion"]["artifact"]["path"])).get_signature_runner()
    (detail,) = runner.get_input_details().values()
    scale, zero = detail["quantization"]
    outputs = runner(features=np.clip(np.round(evaluation["x"] / scale + zero), -128, 127).astype(np.int8))

    # The QAT file is exported apart from the others (its own process, from tf-keras): each output is told apart by
    # its width here, not by the tensor names gate mapped on the float32 file.
    by_width = {}
    for tensor, values in outputs.items():
        out_scale, out_zero = runner.get_output_details()[tensor]["quantization"]
        by_width[values.shape[1]] = (tensor, (values.astype(np.float64) - out_zero) * out_scale)
    assert {name: scores[name]["tensor"] for name in scores} == {
        "class": by_width[3][0],
        "value": by_width[1][0],
        "embed": by_width[4][0],
    }
    accuracy = accuracy_score(evaluation["y.class"], by_width[3][1].argmax(axis=1)) * 100
    assert scores["class"]["evaluation"]["value"] == pytest.approx(accuracy)
    mae = mean_absolute_error(evaluation["y.value"], by_width[1][1][:, 0])
    assert scores["value"]["evaluation"]["value"] == pytest.approx(mae, rel=1e-5)
