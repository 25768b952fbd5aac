"""End to end: `gate check` and `gate validate` as a user runs them, on real tiny models."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, TEST_POLICIES, digits, keras3_mlp, run_gate, write_data

from gate.frontends.base import InputSpec
from gate.frontends.data import load_dataset
from gate.targets.litert import evaluate_tflite, variable_tensors

pytestmark = pytest.mark.slow  # end-to-end: real TensorFlow conversions or gate runs


def tf_keras_mlp(folder: Path, filename: str, manifest: str = "") -> None:
    import tf_keras

    x_train, y_train, x_eval, y_eval = digits()
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [
            tf_keras.Input((64,), name="pixels"),
            tf_keras.layers.Dense(16, activation="relu"),
            tf_keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=30, batch_size=64, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / filename)
    write_data(folder, x_train, y_train, x_eval, y_eval)
    (folder / "gate.toml").write_text(manifest)


def keras3_lstm(folder: Path) -> None:
    import keras

    x_train, y_train, x_eval, y_eval = digits("rows")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8, 8), name="rows"), keras.layers.LSTM(16), keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=15, batch_size=64, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    write_data(folder, x_train, y_train, x_eval[:60], y_eval[:60])
    (folder / "gate.toml").write_text('method = "dynamic_range"\npolicy = "float_io"\n')


def keras3_two_inputs(folder: Path) -> None:
    import keras

    x_train, y_train, x_eval, y_eval = digits()
    keras.utils.set_random_seed(0)
    top, bottom = keras.Input((32,), name="top"), keras.Input((32,), name="bottom")
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()([bottom, top]))
    model = keras.Model([top, bottom], keras.layers.Dense(10, activation="softmax")(hidden))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit([x_train[:, :32], x_train[:, 32:]], y_train, epochs=30, batch_size=64, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    np.savez(folder / "train.npz", **{"x.top": x_train[:, :32], "x.bottom": x_train[:, 32:]}, y=y_train)
    np.savez(folder / "eval.npz", **{"x.top": x_eval[:, :32], "x.bottom": x_eval[:, 32:]}, y=y_eval)


def keras3_regression(folder: Path) -> None:
    import keras
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    x = ((data.data - data.data.mean(0)) / data.data.std(0)).astype(np.float32)
    y = data.target.astype(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((10,), name="features"), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mae")
    model.fit(x[:350], y[:350], epochs=60, batch_size=32, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    write_data(folder, x[:350], y[:350], x[350:], y[350:])
    (folder / "gate.toml").write_text('task = "regression"\n')


def keras3_saved_model(folder: Path) -> None:
    keras3_mlp(folder / "build")
    import keras

    model = keras.saving.load_model(folder / "build" / "model.keras")
    model.export(folder / "saved_model", verbose=False)
    for name in ("train.npz", "eval.npz"):
        shutil.move(folder / "build" / name, folder / name)
    shutil.rmtree(folder / "build")


def keras3_lstm_saved_model(folder: Path, batch: int | None) -> None:
    """A recurrent SavedModel, exported with a fixed batch of one or with a dynamic batch."""
    keras3_lstm(folder / "build")
    import keras

    model = keras.saving.load_model(folder / "build" / "model.keras")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve", model.call, input_signature=[keras.InputSpec(shape=(batch, 8, 8), dtype="float32", name="rows")]
    )
    archive.write_out(folder / "saved_model", verbose=False)
    for name in ("train.npz", "eval.npz", "gate.toml"):
        shutil.move(folder / "build" / name, folder / name)
    shutil.rmtree(folder / "build")


CUSTOM_LAYER_MODULE = """
import keras


@keras.saving.register_keras_serializable(package="my_layers")
class Scale(keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        return inputs * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
"""


def plant_bytecode(root: Path) -> None:
    """A committed __pycache__ beside my_layers.py: bytecode Python would run without looking at the reviewed source."""
    import importlib.util
    import py_compile

    evil = root / "evil_my_layers.py"
    evil.write_text(
        CUSTOM_LAYER_MODULE + "\nimport pathlib\npathlib.Path(__file__).with_name('PWNED').write_text('ran')\n"
    )
    cache = Path(importlib.util.cache_from_source(str(root / "my_layers.py")))
    py_compile.compile(str(evil), cfile=str(cache), invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    evil.unlink()


def keras3_custom_layer(folder: Path) -> None:
    """A model with a custom layer that lives in the repository (my_layers.py at its root)."""
    import importlib
    import sys

    import keras

    root = folder.parent.parent
    (root / "my_layers.py").write_text(CUSTOM_LAYER_MODULE)
    sys.path.insert(0, str(root))
    try:
        my_layers = importlib.import_module("my_layers")
    finally:
        sys.path.remove(str(root))
    x_train, y_train, x_eval, y_eval = digits()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,), name="pixels"),
            my_layers.Scale(0.5),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=30, batch_size=64, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    write_data(folder, x_train, y_train, x_eval, y_eval)
    (folder / "gate.toml").write_text('allow_custom_objects = ["my_layers>Scale"]\n')


@pytest.fixture(scope="session")
def zoo(tmp_path_factory, healthy_model) -> Path:
    """One workspace holding every kind of model the contract allows, plus broken ones."""
    root = tmp_path_factory.mktemp("zoo")
    (root / "policies").mkdir()
    for name, text in TEST_POLICIES.items():
        (root / "policies" / f"{name}.toml").write_text(text)
    models = root / "models"
    shutil.copytree(healthy_model, models / "keras3_mlp")
    tf_keras_mlp(models / "tf_keras_keras", "model.keras")
    tf_keras_mlp(models / "tf_keras_h5", "model.h5", 'method = "dynamic_range"\npolicy = "float_io"\n')
    keras3_saved_model(models / "keras_export")
    keras3_lstm(models / "lstm")
    keras3_lstm_saved_model(models / "lstm_export", batch=1)
    keras3_lstm_saved_model(models / "lstm_export_dynamic", batch=None)
    keras3_two_inputs(models / "two_inputs")
    keras3_regression(models / "regression")
    keras3_custom_layer(models / "custom_layer")
    plant_bytecode(root)
    shutil.copytree(healthy_model, models / "float16")
    (models / "float16" / "gate.toml").write_text('method = "float16"\npolicy = "float_io"\n')
    shutil.copytree(healthy_model, models / "demands_10x")
    (models / "demands_10x" / "gate.toml").write_text(
        'method = "int8"\noverride_reason = "the board has 16 KiB of flash"\n[overrides.size]\nmin_reduction = 10.0\n'
    )
    shutil.copytree(healthy_model, models / "calib_npz")  # beside train.npz, calib.npz calibrates
    with np.load(models / "calib_npz" / "eval.npz") as data:
        np.savez(models / "calib_npz" / "calib.npz", x=data["x"][:50])
    shutil.copytree(healthy_model, models / "calibrated_on_eval")
    (models / "calibrated_on_eval" / "train.npz").unlink()
    (models / "calibrated_on_eval" / "gate.toml").write_text(
        'calibrate_on_eval = true\noverride_reason = "judged on the pessimistic end of an 80% interval"\n'
        '[overrides.statistics]\nconfidence = 0.8\ndecide_on = "upper_bound"\n'
    )
    shutil.copytree(healthy_model, models / "corrupt")
    (models / "corrupt" / "model.keras").write_bytes(b"PK\x03\x04 this is not a zip archive")
    shutil.copytree(healthy_model, models / "typo")
    (models / "typo" / "gate.toml").write_text('methd = "int8"\n')
    return root


@pytest.fixture(scope="session")
def zoo_run(zoo):
    # Absolute folders, as a workflow passing ${{ github.workspace }}/models does: the reports still name them
    # relative to the checkout (test_no_path_of_the_runners_disk_appears).
    return run_gate("check", zoo / "models", "--policies", zoo / "policies", cwd=zoo)


PASSING = [
    "keras3_mlp",
    "tf_keras_keras",
    "tf_keras_h5",
    "keras_export",
    "lstm",
    "lstm_export",
    "two_inputs",
    "regression",
    "float16",
    "custom_layer",
    "calib_npz",
    "calibrated_on_eval",
]


@pytest.mark.parametrize("name", PASSING)
def test_every_supported_kind_of_model_is_gated_and_passes(zoo_run, name) -> None:
    model = zoo_run.model(name)
    assert (model["status"], model["error"]) == ("PASS", "")
    candidate = model["candidates"][model["chosen"]]
    assert all(check["status"] in ("PASS", "SKIP") for check in candidate["checks"])
    assert candidate["conversion"]["evaluation"]["samples"] == model["evaluation_data"]["samples"]
    fidelity = candidate["conversion"]["fidelity"]  # a labelled task's candidates carry it too
    assert (fidelity["top1_agreement"] is None) == (model["task"] == "regression")  # a regressor's: no classes
    assert fidelity["snr_db"] is not None or fidelity["identical"]


def test_one_failing_or_broken_model_fails_the_run_but_every_model_is_reported(zoo_run) -> None:
    assert zoo_run.exit_code == 1
    assert sorted(m["name"] for m in zoo_run.report["models"]) == sorted(
        [*PASSING, "lstm_export_dynamic", "demands_10x", "corrupt", "typo"]
    )
    assert zoo_run.report["status"] == "ERROR"


def test_a_threshold_override_that_is_not_met_fails_with_the_check_named_in_both_reports(zoo_run) -> None:
    model = zoo_run.model("demands_10x")
    assert model["status"] == "FAIL"
    (failed,) = [c for c in model["candidates"][0]["checks"] if c["status"] == "FAIL"]
    assert (failed["name"], failed["limit"]) == ("size.min_reduction", 10.0)
    assert model["provenance"]["overrides"] == {"size.min_reduction": 10.0}
    assert "| `size.min_reduction` | 10× |" in zoo_run.markdown
    assert "> Reason given: the board has 16 KiB of flash" in zoo_run.markdown
    assert any(line.startswith("demands_10x  int8  FAIL  size.min_reduction: ") for line in zoo_run.stdout.splitlines())


def test_a_corrupt_model_file_becomes_an_error_row(zoo_run) -> None:
    model = zoo_run.model("corrupt")
    assert model["status"] == "ERROR"
    assert model["error"].startswith(f"{Path('models/corrupt/model.keras')}: ")
    assert "| corrupt | — | — | — | — | — | ⚠️ ERROR: models/corrupt/model.keras: " in zoo_run.markdown
    assert "Traceback" not in zoo_run.stderr + zoo_run.stdout


def test_a_typo_in_gate_toml_is_an_error_row_for_that_model_only(zoo_run) -> None:
    model = zoo_run.model("typo")
    assert model["error"] == (
        f"{Path('models/typo/gate.toml')}: unknown key 'methd' (did you mean 'method'?); allowed keys: task, metric, "
        "direction, policy, method, calibration_samples, calibrate_on_eval, overrides, override_reason, outputs, "
        "allow_custom_objects"
    )


def test_a_committed_pycache_of_a_custom_layer_never_runs(zoo, zoo_run) -> None:
    """The reviewed my_layers.py is what loads the model; the bytecode planted beside it never runs."""
    assert zoo_run.model("custom_layer")["provenance"]["allowed_custom_objects"] == ["my_layers>Scale"]
    assert not (zoo / "PWNED").exists()


def test_an_allowed_custom_layer_is_loaded_and_shown_prominently(zoo_run) -> None:
    assert zoo_run.model("custom_layer")["provenance"]["allowed_custom_objects"] == ["my_layers>Scale"]
    assert (
        "> **custom_layer: custom code allowed** by gate.toml and run while loading this model: my_layers&gt;Scale"
        in zoo_run.markdown
    )


@pytest.mark.parametrize("name", ["lstm", "lstm_export"])
def test_recurrent_models_convert_with_a_fixed_batch_of_one(zoo_run, name) -> None:
    model = zoo_run.model(name)
    assert model["fixed_batch"] is True
    assert model["candidates"][0]["conversion"]["evaluation"]["batch_size"] == 1
    assert "(the model's batch is fixed at one)" in zoo_run.markdown


def test_a_recurrent_saved_model_with_a_dynamic_batch_is_an_error_that_says_how_to_export_it(zoo_run) -> None:
    assert zoo_run.model("lstm_export_dynamic")["error"] == (
        "TFLite conversion (float32) failed: 'tf.TensorListReserve' op requires element_shape to be static during "
        "TF Lite transformation pass; recurrent layers need a static batch: export the SavedModel with a signature of "
        "batch 1"
    )


def test_the_report_says_which_data_calibrated_and_evaluated_each_model(zoo_run) -> None:
    mlp = zoo_run.model("keras3_mlp")
    assert mlp["calibration"]["file"]["path"] == "train.npz"
    assert mlp["calibration"]["samples"] == 200
    assert mlp["evaluation_data"]["file"]["path"] == "eval.npz"
    assert zoo_run.model("tf_keras_h5")["calibration"] is None  # dynamic range needs no calibration
    assert zoo_run.model("tf_keras_h5")["source_writer"].startswith("tf_keras 2.")
    assert zoo_run.model("keras3_mlp")["source_writer"].startswith("keras 3.")


def test_no_path_of_the_runners_disk_appears(zoo, zoo_run) -> None:
    for name in ("report.md", "report.json", "comment.md"):
        assert str(zoo) not in (zoo_run.out_dir / name).read_text(), name
    assert str(zoo) not in zoo_run.stdout
    assert zoo_run.model("keras3_mlp")["provenance"]["policy_file"] == str(Path("policies/default.toml"))
    assert zoo_run.model("corrupt")["error"].startswith(f"{Path('models/corrupt/model.keras')}: ")


def test_calib_npz_calibrates_when_there_is_also_train_npz(zoo_run) -> None:
    model = zoo_run.model("calib_npz")
    assert (model["calibration"]["file"]["path"], model["calibration"]["samples"]) == ("calib.npz", 50)
    assert "Calibration: <code>calib.npz</code>, first 50 samples." in zoo_run.markdown


def test_calibrate_on_eval_calibrates_on_the_eval_set_and_says_so_in_bold(zoo_run) -> None:
    model = zoo_run.model("calibrated_on_eval")
    assert model["calibration"]["file"]["path"] == "eval.npz"
    bold = "Calibration: **the eval set itself** (`calibrate_on_eval = true` in gate.toml), <code>eval.npz</code>"
    assert f"{bold}, first 200" in zoo_run.markdown


def test_the_policys_confidence_and_decide_on_reach_the_interval_and_the_accuracy_check(zoo_run) -> None:
    int8 = zoo_run.model("calibrated_on_eval")["candidates"][0]
    interval = int8["metric_change_interval"]
    assert interval["confidence"] == 0.8
    (accuracy,) = [c for c in int8["checks"] if c["name"] == "accuracy.max_drop"]
    pessimistic = -interval["low"] + 0.0
    assert accuracy["message"].endswith(f"judged on the pessimistic end of its interval, {pessimistic:.2f}")
    assert "(80% CI" in accuracy["message"]
    assert zoo_run.model("keras3_mlp")["candidates"][0]["metric_change_interval"]["confidence"] == 0.95


def test_artifacts_checksums_and_benchmarks_are_written(zoo_run) -> None:
    out = zoo_run.out_dir
    sums = dict(reversed(line.split("  ")) for line in (out / "SHA256SUMS").read_text().splitlines())
    assert "artifacts/keras3_mlp.int8.tflite" in sums and "artifacts/lstm.dynamic_range.tflite" in sums
    for path, sha in sums.items():
        assert hashlib.sha256((out / path).read_bytes()).hexdigest() == sha
    assert (out / "benchmarks" / "keras3_mlp.json").is_file()
    latency = zoo_run.model("keras3_mlp")["candidates"][0]["conversion"]["latency"]
    assert latency["rounds"] == 200 and latency["p50_ms"] <= latency["p95_ms"]


def test_the_same_inputs_give_byte_identical_artifacts(workspace) -> None:
    first = run_gate("check", "--out", "first", "--no-cache", cwd=workspace)
    second = run_gate("check", "--out", "second", "--no-cache", cwd=workspace)
    assert (first.exit_code, second.exit_code) == (0, 0)
    assert (first.out_dir / "SHA256SUMS").read_text() == (second.out_dir / "SHA256SUMS").read_text()
    assert "healthy: candidate int8: PASS" in first.stderr  # progress per model and candidate


def test_a_typo_in_a_policy_is_a_configuration_error(workspace) -> None:
    (workspace / "policies" / "default.toml").write_text("[accuracy]\nmax_dorp = 2.0\n")
    for command in ("check", "validate"):
        run = run_gate(command, cwd=workspace)
        assert run.exit_code == 2
        assert "unknown key 'accuracy.max_dorp' (did you mean 'accuracy.max_drop'?)" in run.stderr
    assert not (workspace / "gate-out" / "report.json").exists()


def test_validate_lists_every_problem_without_tensorflow(workspace) -> None:
    (workspace / "policies" / "edge.toml").write_text("[io]\ninput_dtype = 8\n")
    shutil.copytree(workspace / "models" / "healthy", workspace / "models" / "other")
    (workspace / "models" / "other" / "gate.toml").write_text('task = "clasification"\n')
    run = run_gate("validate", cwd=workspace)
    assert run.exit_code == 2
    assert "edge.toml: io.input_dtype: expected one of int8, uint8, float32, got 8" in run.stderr
    expected = (
        "other/gate.toml: task: expected one of classification, regression, anomaly, fidelity, custom, got "
        "'clasification'"
    )
    assert expected in run.stderr
    assert run.stderr.endswith(
        "gate: 2 problem(s) found; loading the model, its conversion and the eval run are not checked (gate check "
        "does them)\n"
    )


SUBCLASSED_MODULE = """
import keras


@keras.saving.register_keras_serializable(package="my_models")
class Tiny(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.scores = keras.layers.Dense(10, activation="softmax")

    def call(self, x):
        return self.scores(self.hidden(x))
"""


def subclassed_model(folder: Path) -> None:
    """A subclassed Keras 3 model whose class lives in the repository (my_models.py), allowed in gate.toml."""
    import importlib
    import sys

    root = folder.parent.parent
    (root / "my_models.py").write_text(SUBCLASSED_MODULE)
    sys.path.insert(0, str(root))
    try:
        model = importlib.import_module("my_models").Tiny()
    finally:
        sys.path.remove(str(root))
    x_train, y_train, x_eval, y_eval = digits()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=1, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    write_data(folder, x_train, y_train, x_eval, y_eval)
    (folder / "gate.toml").write_text('allow_custom_objects = ["my_models>Tiny"]\n')


def two_outputs_model(folder: Path) -> None:
    import keras

    x_train, y_train, x_eval, y_eval = digits()
    pixels = keras.Input((64,), name="pixels")
    hidden = keras.layers.Dense(16, activation="relu")(pixels)
    outputs = [keras.layers.Dense(10, activation="softmax")(hidden), keras.layers.Dense(1)(hidden)]
    folder.mkdir(parents=True)
    keras.Model(pixels, outputs).save(folder / "model.keras")
    write_data(folder, x_train, y_train, x_eval, y_eval)


def test_validate_refuses_every_folder_check_refuses_for_a_reason_it_can_see_with_the_same_message(workspace) -> None:
    models, healthy = workspace / "models", workspace / "models" / "healthy"

    def copy(name: str, *remove: str) -> Path:
        shutil.copytree(healthy, models / name)
        for file in remove:
            (models / name / file).unlink()
        return models / name

    copy("no_model_file", "model.keras")
    shutil.copy(healthy / "model.keras", copy("two_model_files") / "model.h5")
    copy("no_eval_data", "eval.npz")
    (copy("eval_not_npz") / "eval.npz").write_text("x,y\n0.1,3\n")
    wrong_y = copy("y_wrong_shape")
    with np.load(healthy / "eval.npz") as data:
        np.savez(wrong_y / "eval.npz", x=data["x"], y=np.zeros((len(data["y"]), 3)))
    two_outputs_model(models / "two_outputs")
    subclassed_model(models / "subclassed")
    keras3_regression(models / "regression_without_task")
    (models / "regression_without_task" / "gate.toml").unlink()
    (copy("two_toml_errors") / "gate.toml").write_text('task = "clasification"\ncalibration_samples = 0\n')
    refused = [
        "eval_not_npz",
        "no_eval_data",
        "no_model_file",
        "regression_without_task",
        "subclassed",
        "two_model_files",
        "two_outputs",
        "two_toml_errors",
        "y_wrong_shape",
    ]

    validated = run_gate("validate", cwd=workspace)
    checked = run_gate("check", cwd=workspace)
    assert validated.exit_code == 2 and checked.exit_code == 1
    problems = validated.stderr.splitlines()
    assert problems[-1] == (
        f"gate: {len(refused) + 1} problem(s) found; loading the model, its conversion and the eval run are not "
        "checked (gate check does them)"
    )
    assert sorted(m["name"] for m in checked.report["models"] if m["status"] == "ERROR") == refused
    for name in refused:
        error = checked.model(name)["error"]
        assert error in validated.stderr, name  # the very message gate check gives
    assert checked.model("healthy")["status"] == "PASS"
    assert checked.model("subclassed")["error"].startswith(
        f"{Path('models/subclassed/model.keras')}: is a subclassed model ('my_models>Tiny')"
    )
    assert (
        'and ends in one linear unit, as a regression model does: if it predicts a number, set task = "regression"'
        in (checked.model("regression_without_task")["error"])
    )
    # Both problems of the gate.toml, on the terminal as in the report, as gate validate lists them.
    toml_errors = checked.model("two_toml_errors")["error"].splitlines()
    assert len(toml_errors) == 2
    assert f"two_toml_errors  ERROR  {'; '.join(toml_errors)}" in checked.stdout.splitlines()
    assert f"two_toml_errors: ERROR before gating: {'; '.join(toml_errors)}" in checked.stderr
    # Its eval.npz holds y, as a model with one output's does; a model with several holds y.<output name>.
    assert re.fullmatch(
        re.escape(f"{Path('models/two_outputs/eval.npz')}: holds y, but the model has several outputs (")
        + r"dense_\d+, dense_\d+"
        + re.escape(
            ') and gate.toml gives none a task that reads labels: add [outputs.<name>] task = "..." tables to '
            "gate.toml and store each output's labels as y.<name>"
        ),
        checked.model("two_outputs")["error"],
    )
    for name in refused:
        shutil.rmtree(models / name)
    valid = run_gate("validate", cwd=workspace)
    assert valid.exit_code == 0 and valid.stderr.endswith(
        "gate: 2 policies and 1 model folders are valid as far as can be seen without TensorFlow; loading the "
        "model, its conversion and the eval run are not checked (gate check does them)\n"
    )


def test_validate_does_not_import_tensorflow() -> None:
    import subprocess
    import sys

    code = "import sys; from gate.cli import main; main(['validate']); print('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def test_the_bundled_example_models_pass(tmp_path) -> None:
    run = run_gate("check", "--out", tmp_path / "out", cwd=REPO)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert [m["name"] for m in run.report["models"]] == [
        "breast_cancer_mlp",
        "digits_cnn",
        "digits_crnn",
        "digits_mobilenetv2",
        "digits_outlier_mlp",
        "digits_wide_cnn",
        "machine_ad",
        "two_head",
    ]
    # The anomaly detector is judged by its ROC AUC, below 100 % in float, with the interval of its change.
    machine_ad = run.model("machine_ad")
    assert machine_ad["task"] == "anomaly" and 80 < machine_ad["float_evaluation"]["value"] < 100
    published = machine_ad["candidates"][machine_ad["chosen"]]
    assert published["conversion"]["evaluation"]["metric"] == "auc" and published["metric_change_interval"]
    assert "auc.max_drop" in [check["name"] for check in published["checks"] if check["status"] == "PASS"]
    # Plain int8 honestly fails the outlier-channel example; the search recovers it and shows why.
    outlier = run.model("digits_outlier_mlp")
    assert outlier["candidates"][0]["method"] == "int8" and outlier["candidates"][0]["status"] == "FAIL"
    assert -outlier["candidates"][0]["metric_change"] > 2
    assert outlier["candidates"][outlier["chosen"]]["status"] == "PASS"
    assert outlier["layer_errors"][0]["name"] == "features"
    assert "xychart-beta" in run.markdown
    # The recurrent model: unrolled, its int8 file converts (as it is, the converter crashes) and keeps no state,
    # so an app that runs one sample per invoke without resets gets what the report says.
    crnn = run.model("digits_crnn")
    (published,) = crnn["candidates"]
    assert (published["method"], published["status"], published["conversion"]["state"]) == ("int8", "PASS", None)
    artifact = run.out_dir / "artifacts" / "digits_crnn.int8.tflite"
    assert variable_tensors(artifact) == 0
    eval_data = load_dataset(
        REPO / "models" / "digits_crnn" / "eval.npz",
        model_folder=REPO / "models" / "digits_crnn",
        inputs=(InputSpec("rows", (8, 8), "float32"),),
        task="classification",
        output_width=10,
        need_labels=True,
    )
    without, with_resets = (
        evaluate_tflite(artifact, eval_data, "classification", threads=1, batch_size=1, reset=reset)
        for reset in (False, True)
    )
    assert without.value == with_resets.value == published["conversion"]["evaluation"]["value"]


def keras3_mlp_with(folder: Path, healthy_model: Path, kernel_value: float, at: tuple) -> None:
    """A copy of the healthy MLP with values of the first Dense kernel replaced."""
    import keras

    model = keras.saving.load_model(healthy_model / "model.keras")
    kernel, bias = model.layers[0].get_weights()
    kernel[at] = kernel_value
    model.layers[0].set_weights([kernel, bias])
    shutil.copytree(healthy_model, folder)
    model.save(folder / "model.keras")


def test_non_finite_weights_and_outputs_are_error_rows_that_say_so_beside_a_healthy_model(
    workspace, healthy_model
) -> None:
    models = workspace / "models"
    keras3_mlp_with(models / "inf_weight", healthy_model, np.inf, (3, 0))
    # Finite weights whose sum overflows float32 on every digit: hidden unit 0 is infinite, the softmax NaN.
    keras3_mlp_with(models / "nan_outputs", healthy_model, 3e38, (slice(None), 0))
    run = run_gate("check", cwd=workspace)
    assert run.exit_code == 1
    assert run.model("healthy")["status"] == "PASS"
    assert run.model("inf_weight")["error"] == (
        f"{Path('models/inf_weight/model.keras')}: weight 'kernel' of layer 'dense' holds 0 NaN and 1 infinite "
        "value(s) "
        "among its 1024; the float model itself is broken: retrain it or fix that weight, then re-save"
    )
    samples = len(digits()[2])
    assert run.model("nan_outputs")["error"] == (
        f"{Path('models/nan_outputs/eval.npz')}: the float model's output is NaN on {samples} of {samples} eval "
        "samples "
        "(first: sample 0); check the model's weights and the data's scale"
    )
    assert "internal error" not in run.markdown and "Traceback" not in run.stderr
