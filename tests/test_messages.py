"""Messages that say what is true and what to do next, on stored results and tiny data files (no TensorFlow)."""

from __future__ import annotations

import dataclasses
import tomllib

import numpy as np
import pytest
from factories import DEFAULT_POLICY, candidate, model_result

from gate.errors import ModelError
from gate.frontends.base import InputSpec
from gate.frontends.data import load_dataset
from gate.policy.checks import Context
from gate.policy.judge import judge
from gate.reporting.compare import Baseline, compare
from gate.reporting.markdown import render_markdown
from gate.results import Interval, Origin, Status

PIXELS = (InputSpec("input_layer", (4,), "float32"),)


def data_file(tmp_path, **arrays) -> None:
    np.savez(tmp_path / "eval.npz", **arrays)


def test_the_sample_counts_name_the_arrays_as_the_file_does(tmp_path) -> None:
    data_file(tmp_path, x=np.zeros((54, 4), np.float32), y=np.zeros(49, np.int64))
    with pytest.raises(ModelError) as raised:
        load_dataset(
            tmp_path / "eval.npz",
            model_folder=tmp_path,
            inputs=PIXELS,
            task="classification",
            output_width=2,
            need_labels=True,
        )
    assert str(raised.value) == (
        f"{tmp_path / 'eval.npz'}: arrays hold different numbers of samples (x has 54, y has 49); every array needs "
        "one row per sample"
    )


@pytest.mark.parametrize(
    ("labels", "activation", "message"),
    [
        (
            [321.0, 25.0],
            "linear",
            "y holds class 321, but the model scores classes 0..1 and ends in one linear unit, as a regression model "
            'does: if it predicts a number, set task = "regression" in gate.toml; if it is a classifier, fix the '
            "labels or the model's output layer",
        ),
        (
            [151.5, 75.0],
            "linear",
            "y holds non-integer values, and the model ends in one linear unit, as a regression model does: set task "
            '= "regression" in gate.toml (classification needs class indices)',
        ),
        (
            [321.0, 25.0],
            "sigmoid",
            "y holds class 321, but the model scores classes 0..1; fix the labels or the model's output layer",
        ),
    ],
)
def test_labels_of_a_regression_model_suggest_task_regression(tmp_path, labels, activation, message) -> None:
    data_file(tmp_path, x=np.zeros((2, 4), np.float32), y=np.asarray(labels))
    with pytest.raises(ModelError) as raised:
        load_dataset(
            tmp_path / "eval.npz",
            model_folder=tmp_path,
            inputs=PIXELS,
            task="classification",
            output_width=1,
            need_labels=True,
            output_activation=activation,
        )
    assert str(raised.value) == f"{tmp_path / 'eval.npz'}: {message}"


def with_change(change: float, low: float, high: float, **policy) -> object:
    """The default factory candidate, its accuracy change and interval set, judged again."""
    float_accuracy = 96.0
    unjudged = candidate(accuracy=float_accuracy + change)
    unjudged = dataclasses.replace(unjudged, metric_change_interval=Interval(low, high, 0.95, "BCa", 2000))
    return judge(unjudged, Context(DEFAULT_POLICY | policy, "classification"))


@pytest.mark.parametrize(
    ("change", "low", "high", "message"),
    [
        (1.85, 0.0, 3.7, "accuracy rose 1.85 pts (95% CI 0.00 to 3.70 pts) (allowed drop ≤ 2)"),
        (0.0, -1.85, 1.85, "accuracy did not change (95% CI −1.85 to 1.85 pts) (allowed drop ≤ 2)"),
        (-1.85, -3.7, 0.0, "accuracy dropped 1.85 pts (95% CI 0.00 to 3.70 pts) (allowed drop ≤ 2)"),
    ],
)
def test_a_change_is_said_as_a_person_says_it(change, low, high, message) -> None:
    (accuracy,) = [c for c in with_change(change, low, high).checks if c.name == "accuracy.max_drop"]
    assert accuracy.message == message


def test_the_deciding_samples_note_is_shown_once_per_model_and_only_when_one_or_two_samples_decide() -> None:
    close = model_result("close", accuracy=94.1)  # 1000 eval samples: a drop of 1.9 pts against a limit of 2
    far = model_result("far", accuracy=40.0)  # 56 pts: no sample decides that
    markdown = render_markdown([close, far])
    assert markdown.count("one or two samples decide") == 1
    assert (
        "Note: with 1000 eval samples one sample is 0.10 pts, and the accuracy drop (1.90 pts) is within 2 samples "
        "of its limit (2 pts): one or two samples decide this PASS; add eval data to resolve it." in markdown
    )
    assert "add eval data" not in "".join(c.message for c in far.candidate.checks)


def test_a_failed_model_gets_the_exact_toml_that_would_accept_it() -> None:
    failed = model_result("digits", accuracy=93.0, size_bytes=25_000)  # 3 pts lost, 3.2x smaller
    markdown = render_markdown([failed])
    toml = markdown.split("```toml\n", 1)[1].split("\n```", 1)[0]
    manifest = tomllib.loads(toml)
    assert manifest["overrides"] == {"size": {"min_reduction": 3.2}, "accuracy": {"max_drop": 3}}
    assert manifest["override_reason"]
    # With those overrides, the same figures pass.
    policy = failed.provenance.effective_policy | {
        f"{section}.{key}": value for section, keys in manifest["overrides"].items() for key, value in keys.items()
    }
    assert judge(failed.candidate, Context(policy, "classification", failed.reference)).status is Status.PASS
    assert 'judge it by another policy of `policies/` (`policy = "<name>"` in `gate.toml`)' in markdown


def test_a_quantized_file_no_smaller_than_the_float32_one_is_said_in_its_rows() -> None:
    larger = model_result("conv1d", size_bytes=42_000)  # the float32 .tflite is 40,000 bytes
    markdown = render_markdown([larger])
    (row,) = [line for line in markdown.splitlines() if line.startswith("| conv1d |")]
    assert "| 78.1 KiB → 41.0 KiB (1.90×; not smaller than the 39.1 KiB float32 .tflite) |" in row
    (size,) = [c for c in larger.candidate.checks if c.name == "size.min_reduction"]
    assert size.message == (
        "1.90× smaller than the source model file, but 1.05× larger than the float32 .tflite (need ≥ 4×)"
    )


def measured_on(result, machine: str):
    return dataclasses.replace(result, origin=Origin("2026-12-02T10:00:00+00:00", machine, "k" * 64, False))


@pytest.mark.parametrize(
    ("base_p50", "machines", "cell"),
    [
        (0.5, ("AMD EPYC, 2 cores, x86_64", "AMD EPYC, 2 cores, x86_64"), "500 µs → 1 ms (+500 µs)"),
        (0.95, ("AMD EPYC, 2 cores, x86_64", "AMD EPYC, 2 cores, x86_64"), "950 µs → 1 ms (within noise)"),
        (
            0.5,
            ("AMD EPYC, 2 cores, x86_64", "Intel Xeon, 4 cores, x86_64"),
            "500 µs → 1 ms (within noise, measured on different CPUs)",
        ),
    ],
)
def test_a_latency_change_is_shown_only_beyond_both_runs_spread_on_the_same_cpu(base_p50, machines, cell) -> None:
    head = measured_on(model_result("digits"), machines[1])  # p50 1 ms, spread (stddev) 0.1 ms
    base = measured_on(model_result("digits", p50_ms=base_p50), machines[0])
    comparison = compare([head], Baseline("main@3f2a1c9", "3f2a1c9" + "0" * 33, {"digits": base}))
    assert f"| {cell} |" in render_markdown([head], comparison)


def test_a_file_larger_than_both_baselines_says_so_plainly() -> None:
    bigger = model_result("bigger", size_bytes=100_000)  # the source is 80,000 bytes, the float32 .tflite 40,000
    (size,) = [c for c in bigger.candidate.checks if c.name == "size.min_reduction"]
    assert (
        size.message == "1.25× larger than the source model file and 2.50× larger than the float32 .tflite (need ≥ 4×)"
    )


def test_an_eval_set_of_one_sample_is_refused_while_one_calibration_sample_is_not(tmp_path) -> None:
    from gate.discover import ModelFiles
    from gate.gating.data import read_data

    data_file(tmp_path, x=np.zeros((1, 4), np.float32), y=np.zeros(1, np.int64))
    np.savez(tmp_path / "calib.npz", x=np.zeros((1, 4), np.float32))
    files = ModelFiles(tmp_path / "model.keras", "keras", tmp_path / "eval.npz", None, tmp_path / "calib.npz")
    arguments = {"model_folder": tmp_path, "inputs": PIXELS, "task": "classification", "output_width": 2}
    with pytest.raises(ModelError) as raised:
        read_data(files, ["int8"], calibrate_on_eval=False, **arguments)
    assert str(raised.value) == (
        f"{tmp_path / 'eval.npz'}: holds 1 sample; gate's confidence intervals resample the eval set and need at "
        "least 2: add more"
    )
    data_file(tmp_path, x=np.zeros((2, 4), np.float32), y=np.zeros(2, np.int64))
    eval_data, calibration, _ = read_data(files, ["int8"], calibrate_on_eval=False, **arguments)
    assert (eval_data.info.samples, calibration.info.samples) == (2, 1)
