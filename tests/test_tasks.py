"""Each task's figures against an independent computation (scikit-learn, numpy), its label checks and its bootstrap."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from gate.errors import ModelError
from gate.results import Interval, Status
from gate.tasks.anomaly import ANOMALY, anomaly_scores, auc_percent

WHERE = Path("models/m/eval.npz")


def scores_and_labels(seed: int, samples: int = 300, anomalous: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(samples) < anomalous).astype(np.int64)
    return rng.normal(size=samples) + labels, labels


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("ties", [False, True])
def test_auc_equals_scikit_learns(seed: int, ties: bool) -> None:
    scores, labels = scores_and_labels(seed)
    scores = np.round(scores) if ties else scores  # rounded scores tie across the classes
    assert auc_percent(scores, labels) == pytest.approx(roc_auc_score(labels, scores) * 100, abs=1e-9)
    # Vectorised over resamples, as the bootstrap calls it.
    rows = np.stack([scores, -scores])
    np.testing.assert_allclose(auc_percent(rows, labels), [roc_auc_score(labels, r) * 100 for r in rows], atol=1e-9)


def test_auc_counts_a_tie_as_one_half() -> None:
    assert auc_percent(np.array([1.0, 1.0]), np.array([0, 1])) == 50.0 == roc_auc_score([0, 1], [1.0, 1.0]) * 100


def test_the_anomaly_score_is_the_mse_against_the_input_as_stored() -> None:
    rng = np.random.default_rng(0)
    stored = (rng.normal(size=(20, 5, 4)) * 30).astype(np.float16)
    outputs = stored.astype(np.float32) + rng.normal(size=stored.shape).astype(np.float32)
    expected = np.mean((stored.astype(np.float64) - outputs.astype(np.float64)) ** 2, axis=(1, 2))
    np.testing.assert_array_equal(anomaly_scores(outputs, {"x": stored}), expected)


@pytest.mark.parametrize("shape", [(6,), (6, 1), (6, 1, 1)])
def test_one_output_value_per_sample_is_the_score_itself(shape: tuple[int, ...]) -> None:
    outputs = np.arange(6, dtype=np.float32).reshape(shape)
    assert anomaly_scores(outputs, {"x": np.zeros((6, 3))}).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_an_output_that_is_no_reconstruction_is_refused() -> None:
    with pytest.raises(ModelError) as raised:
        anomaly_scores(np.zeros((2, 8)), {"x": np.zeros((2, 640))})
    assert str(raised.value) == (
        "the model's output has shape (8,) per sample, which is neither one anomaly score nor the shape of exactly "
        "one input (the model's inputs are 'x' (640,)); an anomaly model outputs a reconstruction of its input or "
        "one score per sample"
    )
    with pytest.raises(ModelError, match="several inputs have that shape"):
        anomaly_scores(np.zeros((3, 4)), {"a": np.ones((3, 4)), "b": np.ones((3, 4))})


# fmt: skip on this table: a case a row or two, as it reads; ruff format would give each field a line.
@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.zeros(40), "models/m/eval.npz: y holds only normal (0) samples (40); ROC AUC needs both kinds: add "
         "anomalous (1) samples to the eval data"),
        (np.ones(7, dtype=np.int8), "models/m/eval.npz: y holds only anomalous (1) samples (7); ROC AUC needs both "
         "kinds: add normal (0) samples to the eval data"),
        (np.array([0, 1, 2]), "models/m/eval.npz: y holds 2; the anomaly task labels a sample 0 (normal) or 1 "
         "(anomalous), nothing else"),
        (np.zeros((3, 2)), "models/m/eval.npz: y has shape (3, 2); the anomaly task expects one label per sample, "
         "shape (samples,)"),
    ],
)  # fmt: skip
def test_bad_anomaly_labels_are_one_clear_message(y: np.ndarray, message: str) -> None:
    assert ANOMALY.check_labels(y, where=WHERE, output_width=None, output_activation=None)[1] == message


def test_the_auc_interval_is_stratified_paired_and_holds_the_change() -> None:
    from gate.measurement.stats import change_interval

    # 3 anomalous samples in 400: one unstratified resample in 20 has none, and no AUC.
    scores, labels = scores_and_labels(1, samples=400, anomalous=0.01)
    assert labels.sum() == 3
    quantized = scores + np.random.default_rng(2).normal(0, 0.3, len(scores))
    change = auc_percent(quantized, labels) - auc_percent(scores, labels)
    interval = change_interval(scores, quantized, ANOMALY, labels)
    assert interval.method == "BCa" and interval.low < change < interval.high
    assert interval == change_interval(scores, quantized, ANOMALY, labels)  # seeded
    # Paired: the same scores for both models change nothing in any resample.
    same = change_interval(scores, scores, ANOMALY, labels)
    assert (same.low, same.high) == (0.0, 0.0)


def _candidate(change: float, interval: tuple[float, float] | None = None) -> SimpleNamespace:
    ci = Interval(*interval, 0.95, "BCa", 2000) if interval else None
    return SimpleNamespace(metric_change=change, metric_change_interval=ci)


def test_auc_max_drop_judges_the_anomaly_task_only() -> None:
    from gate.policy.checks import Context
    from gate.policy.judge import CHECKS

    check = CHECKS["auc.max_drop"].evaluate
    assert check(_candidate(-0.5, (-0.9, -0.1)), 1.0, Context({}, "anomaly")) == (
        Status.PASS,
        0.5,
        "AUC dropped 0.50 pts (95% CI 0.10 to 0.90 pts) (allowed drop ≤ 1)",
    )
    assert check(_candidate(-2.2), 1.0, Context({}, "anomaly"))[:2] == (Status.FAIL, 2.2)
    assert check(_candidate(-2.2), 1.0, Context({}, "classification")) == (
        Status.SKIP,
        None,
        "task is classification: AUC applies to anomaly (see accuracy.max_drop)",
    )
    assert CHECKS["accuracy.max_drop"].evaluate(_candidate(-3.0), 1.0, Context({}, "anomaly")) == (
        Status.SKIP,
        None,
        "task is anomaly: accuracy applies to classification (see auc.max_drop)",
    )


def tiny_autoencoder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 16-8-2-8-16 autoencoder trained on samples near a plane; anomalies lie off it. Returns the eval x, y."""
    import keras

    rng = np.random.default_rng(0)
    basis = rng.normal(size=(2, 16))

    def normal(samples: int) -> np.ndarray:
        return rng.normal(size=(samples, 2)) @ basis + rng.normal(0, 0.1, (samples, 16))

    x_train = normal(600).astype(np.float32)
    x_eval = normal(200)
    y_eval = (rng.random(200) < 0.3).astype(np.int64)
    x_eval[y_eval == 1] += rng.normal(0, 0.1, (int(y_eval.sum()), 16))  # off the plane by as much as the noise
    keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((16,), name="x"),
            layers.Dense(8, activation="relu"),
            layers.Dense(2),
            layers.Dense(8, activation="relu"),
            layers.Dense(16),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    model.fit(x_train, x_train, epochs=40, batch_size=64, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    np.savez(folder / "train.npz", x=x_train)
    np.savez(folder / "eval.npz", x=x_eval.astype(np.float32), y=y_eval)
    (folder / "gate.toml").write_text('task = "anomaly"\nmethod = "int8"\n')
    return x_eval.astype(np.float32), y_eval


def test_an_anomaly_detector_is_gated_by_auc_with_its_interval(workspace) -> None:
    from ai_edge_litert.interpreter import Interpreter
    from helpers import run_gate

    from gate.measurement.stats import change_interval

    x, y = tiny_autoencoder(workspace / "models" / "ad")
    run = run_gate("check", "models/ad", "--out", "out", cwd=workspace)
    assert run.exit_code in (0, 1), run.stdout + run.stderr
    result = run.model("ad")
    assert result["task"] == "anomaly"
    (int8,) = result["candidates"]
    evaluation = int8["conversion"]["evaluation"]

    # The int8 file run as an app runs it, and the figures computed here with numpy and scikit-learn.
    interpreter = Interpreter(model_path=str(run.out_dir / "artifacts" / "ad.int8.tflite"))
    (detail,), (output,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(detail["index"], [len(x), 16])
    interpreter.allocate_tensors()
    scale, zero = detail["quantization"]
    interpreter.set_tensor(detail["index"], np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8))
    interpreter.invoke()
    out_scale, out_zero = output["quantization"]
    reconstruction = (interpreter.get_tensor(output["index"]).astype(np.float64) - out_zero) * out_scale
    scores = np.mean((x.astype(np.float64) - reconstruction) ** 2, axis=1)
    assert evaluation["metric"] == "auc"
    assert evaluation["value"] == pytest.approx(roc_auc_score(y, scores) * 100, abs=1e-6)
    assert 60 < result["float_evaluation"]["value"] < 100  # the anomalies are not all plain

    change = int8["metric_change"]
    assert change == pytest.approx(evaluation["value"] - result["float_evaluation"]["value"])
    interval = change_interval(result["float_evaluation"]["per_sample"], evaluation["per_sample"], ANOMALY, y)
    assert int8["metric_change_interval"] == dataclasses.asdict(interval)
    check = next(c for c in int8["checks"] if c["name"] == "auc.max_drop")
    assert check["status"] in ("PASS", "FAIL") and check["measured"] == pytest.approx(-change, abs=1e-4)
    assert "auc" in run.markdown.lower()


def test_a_task_without_labels_to_train_on_skips_qat_and_says_why() -> None:
    from gate.gating.search import skip_reason

    def bench(task: str) -> SimpleNamespace:
        return SimpleNamespace(task=task, cannot_run=lambda method: "", policy={}, integer_inputs=False)

    assert skip_reason("qat-int8", bench("anomaly"), has_calibration=True, has_training=True) == (
        "it trains on labels, and the anomaly task has none it can train on"
    )
    assert skip_reason("qat-int8", bench("classification"), has_calibration=True, has_training=True) == ""


@pytest.mark.parametrize(
    ("task", "metric", "title", "unit"),
    [
        ("anomaly", "auc", "AUC lost (points)", "points"),
        ("classification", "accuracy", "Accuracy lost (points)", "points"),
        ("regression", "mae", "MAE increase (%)", "percent"),
    ],
)
def test_the_candidate_chart_shows_how_much_worse_in_the_tasks_terms(task, metric, title, unit) -> None:
    from factories import model_result

    from gate.reporting.markdown import render_markdown

    result = model_result()
    first = result.candidates[0]
    candidates = []
    for method, change in (("int8", -1.25), ("int16x8", 0.5)):
        conversion = dataclasses.replace(
            first.conversion, method=method, evaluation=dataclasses.replace(first.conversion.evaluation, metric=metric)
        )
        candidates.append(dataclasses.replace(first, method=method, conversion=conversion, metric_change=change))
    anomaly = dataclasses.replace(result, task=task, candidates=tuple(candidates))
    markdown = render_markdown([anomaly])
    worse = [1.25, -0.5] if task != "regression" else [-1.25, 0.5]  # a drop of AUC is worse; a rise of MAE is
    assert f'    title "{title} per candidate"\n' in markdown and f'    y-axis "{unit}"\n' in markdown
    assert f"    bar [{worse[0]:.2f}, {worse[1]:.2f}]\n" in markdown


# fmt: skip on this table: a case a row or two, as it reads; ruff format would give each field a line.
@pytest.mark.parametrize(
    ("arrays", "problem"),
    [
        ({"y": np.zeros(6, np.int64)}, "eval.npz: y holds only normal (0) samples (6); ROC AUC needs both kinds: add "
         "anomalous (1) samples to the eval data"),
        ({}, "eval.npz: no array 'y'; add the labels the anomaly task scores: 0 (normal) or 1 (anomalous) per sample"),
    ],
)  # fmt: skip
def test_gate_validate_checks_the_anomaly_tasks_labels(tmp_path, capsys, arrays, problem) -> None:
    import shutil

    from gate import cli

    repo = Path(__file__).resolve().parent.parent
    folder = tmp_path / "machine_ad"
    shutil.copytree(repo / "models" / "machine_ad", folder)
    np.savez(folder / "eval.npz", x=np.zeros((6, 640), np.float16), **arrays)
    assert cli.main(["validate", str(folder), "--policies", str(repo / "policies")]) == 2
    assert f"{folder / problem}" in capsys.readouterr().err.splitlines()


def test_the_interval_of_a_task_whose_metric_reads_no_labels_ignores_them() -> None:
    from gate.measurement.stats import change_interval
    from gate.tasks.regression import REGRESSION

    rng = np.random.default_rng(3)
    float_errors, quantized_errors = rng.random(50), rng.random(50)
    targets = rng.normal(size=(50, 3))  # regression labels: one column per output unit
    assert change_interval(float_errors, quantized_errors, REGRESSION, targets) == change_interval(
        float_errors, quantized_errors, REGRESSION
    )
