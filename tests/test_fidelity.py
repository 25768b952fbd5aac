"""Fidelity: a candidate's outputs against the float32 .tflite's (gate.tasks.fidelity, gate.measurement.fidelity).

Every figure is checked against numpy; the task is gated end to end on a model whose eval.npz holds only `x`.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from gate.measurement.fidelity import FloatOutputs, measure_fidelity
from gate.policy.checks import Context
from gate.results import Fidelity, Interval, Status
from gate.tasks.fidelity import FIDELITY, class_scores_problem


def outputs_pair(seed: int, shape: tuple[int, ...] = (300, 5), noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=shape).astype(np.float32)
    return reference + rng.normal(scale=noise, size=shape).astype(np.float32), reference


@pytest.mark.parametrize("seed", range(3))
def test_top1_agreement_equals_numpys(seed: int) -> None:
    quantized, reference = outputs_pair(seed, noise=0.5)
    expected = np.mean(np.argmax(quantized, axis=1) == np.argmax(reference, axis=1)) * 100
    fidelity = measure_fidelity(quantized, FloatOutputs(reference, ""), confidence=0.95, resamples=500)
    assert fidelity.top1_agreement == pytest.approx(expected, abs=1e-6)
    assert 0 < fidelity.top1_agreement < 100  # the noise flips some samples and not others
    interval = fidelity.top1_agreement_interval
    assert interval is not None and interval.low < fidelity.top1_agreement < interval.high


def test_one_sigmoid_unit_agrees_on_the_05_threshold() -> None:
    reference = np.array([[0.2], [0.6], [0.49], [0.9]])
    quantized = np.array([[0.3], [0.4], [0.51], [0.8]])  # the same class, then two flips, then the same
    assert measure_fidelity(quantized, FloatOutputs(reference, ""), confidence=0.95).top1_agreement == 50.0


@pytest.mark.parametrize(("shape", "noise"), [((300, 5), 0.1), ((50, 8, 8, 3), 0.01), ((40, 1), 1.0)])
def test_snr_equals_numpys(shape: tuple[int, ...], noise: float) -> None:
    quantized, reference = outputs_pair(1, shape, noise)
    f, q = reference.astype(np.float64), quantized.astype(np.float64)
    expected = 10 * np.log10(np.sum(f**2) / np.sum((q - f) ** 2))
    fidelity = measure_fidelity(quantized, FloatOutputs(reference, "not class scores"), confidence=0.95,
                                resamples=500)  # fmt: skip
    assert fidelity.snr_db == pytest.approx(expected, abs=1e-5)
    assert fidelity.snr_db_interval is not None and fidelity.snr_db_interval.low < expected
    assert expected < fidelity.snr_db_interval.high
    assert fidelity.top1_agreement is None and fidelity.top1_agreement_interval is None


def test_snr_is_the_ratio_of_sums_not_the_mean_of_per_sample_ratios() -> None:
    reference = np.array([[1.0], [10.0]])
    quantized = np.array([[1.1], [10.1]])  # noise 0.01 each; signal 1 and 100
    fidelity = measure_fidelity(quantized, FloatOutputs(reference, "x"), confidence=0.95, resamples=200)
    assert fidelity.snr_db == pytest.approx(10 * math.log10(101 / 0.02), abs=1e-5)


def test_identical_outputs_have_no_snr_and_say_so() -> None:
    from factories import model_result

    from gate.policy.judge import CHECKS
    from gate.reporting.markdown import render_markdown

    reference = np.eye(3)[np.arange(30) % 3]
    fidelity = measure_fidelity(reference.copy(), FloatOutputs(reference, ""), confidence=0.95, resamples=200)
    assert (fidelity.identical, fidelity.snr_db, fidelity.snr_db_interval) == (True, None, None)
    assert fidelity.top1_agreement == 100.0  # every resample the same: the interval is the point
    assert fidelity.top1_agreement_interval == Interval(100.0, 100.0, 0.95, "percentile", 200)

    result = with_fidelity(model_result(), fidelity)
    assert CHECKS["fidelity.min_snr_db"].evaluate(result.candidates[0], 30.0, Context({}, "classification")) == (
        Status.PASS, "identical outputs", "identical outputs to the float32 .tflite's on every eval sample"
    )  # fmt: skip
    markdown = render_markdown([result])
    assert "| identical outputs |" in markdown and "inf" not in markdown.lower().replace("inference", "")


def with_fidelity(result, fidelity: Fidelity | None):
    candidate = result.candidates[0]
    conversion = dataclasses.replace(candidate.conversion, fidelity=fidelity)
    return dataclasses.replace(result, candidates=(dataclasses.replace(candidate, conversion=conversion),))


@pytest.mark.parametrize(
    ("task", "activation", "outputs", "problem"),
    [
        ("classification", "linear", np.array([[2.0, -1.0]]), ""),  # logits: classification argmaxes them
        ("fidelity", "softmax", np.full((2, 3), 1 / 3), ""),
        ("fidelity", "sigmoid", np.array([[0.2], [0.7]]), ""),
        ("anomaly", "linear", np.full((2, 640), 0.5), "its last activation is linear, not softmax or sigmoid"),
        ("fidelity", None, np.array([[0.2, 0.8], [1.0, 0.0]]), ""),  # a SavedModel: probabilities by value
        ("fidelity", None, np.array([[2.0, -1.0], [0.3, 0.4]]), "gate cannot read its last activation, and its "
         "values are no probabilities (rows summing to 1)"),
    ],
)  # fmt: skip
def test_top1_agreement_applies_to_class_scores(task, activation, outputs, problem) -> None:
    assert class_scores_problem(task, activation, outputs) == problem


def figures(agreement: float | None, snr: float, low_high: tuple[float, float] = (0.0, 0.0)) -> Fidelity:
    interval = Interval(*low_high, 0.95, "BCa", 2000)
    return Fidelity(300, agreement, interval if agreement is not None else None,
                    "" if agreement is not None else "its last activation is linear, not softmax or sigmoid",
                    snr, interval, False)  # fmt: skip


def test_the_fidelity_checks_judge_the_estimate_or_the_end_of_its_interval() -> None:
    from factories import model_result

    from gate.policy.judge import CHECKS, judge, relaxed_policy

    agreement, snr = CHECKS["fidelity.min_top1_agreement"].evaluate, CHECKS["fidelity.min_snr_db"].evaluate
    passing = with_fidelity(model_result(), figures(98.5, 30.0, (97.0, 99.5))).candidates[0]
    context = Context({}, "fidelity")
    assert agreement(passing, 98.0, context) == (
        Status.PASS, 98.5, "same top-1 class as the float32 .tflite on 98.50% of 300 eval samples "
        "(95% CI 97.00 to 99.50%) (need ≥ 98%)"
    )  # fmt: skip
    assert agreement(passing, 99.0, context)[:2] == (Status.FAIL, 98.5)
    pessimistic = Context({"statistics.decide_on": "upper_bound"}, "fidelity")
    assert agreement(passing, 98.0, pessimistic)[0] is Status.FAIL  # its low end, 97.0
    assert agreement(passing, 99.0, Context({"statistics.decide_on": "lower_bound"}, "fidelity"))[0] is Status.PASS
    # An interval that excludes its estimate (forged, or a skewed BCa) never judges kinder than the estimate.
    excluded = with_fidelity(model_result(), figures(50.0, 5.0, (99.5, 100.0))).candidates[0]
    assert agreement(excluded, 99.0, pessimistic)[0] is Status.FAIL
    assert snr(excluded, 30.0, pessimistic)[2].endswith(
        "judged on the estimate, worse than the pessimistic end of its interval (99.50)"
    )
    assert snr(passing, 25.0, context)[:2] == (Status.PASS, 30.0)
    assert snr(passing, 31.0, context)[:2] == (Status.FAIL, 30.0)

    regression = with_fidelity(model_result(), figures(None, 30.0)).candidates[0]
    assert agreement(regression, 98.0, context) == (
        Status.SKIP, None,
        "top-1 agreement applies to class-score outputs: its last activation is linear, not softmax or sigmoid",
    )  # fmt: skip
    unmeasured = with_fidelity(model_result(), None).candidates[0]
    # Unmeasurable (float outputs zero everywhere) fails: dropping the figures from a result never makes it pass.
    assert snr(unmeasured, 25.0, context)[:2] == agreement(unmeasured, 98.0, context)[:2] == (Status.FAIL, None)
    failing = judge(unmeasured, Context({"fidelity.min_snr_db": 25.0}, "classification"))
    assert relaxed_policy(failing, context) == {}  # no limit passes a figure not measured


def test_the_fidelity_task_is_judged_by_its_checks_and_skips_qat() -> None:
    from types import SimpleNamespace

    from gate.gating.search import allowed_change, skip_reason

    bench = SimpleNamespace(task="fidelity", cannot_run=lambda method: "", policy={}, integer_inputs=False)
    assert skip_reason("qat-int8", bench, has_calibration=True, has_training=True) == (
        "it trains on labels, and the fidelity task has none it can train on"
    )
    # The float fallback searches down to the output error of the SNR limit: 30 dB is 0.1% of the signal's energy.
    assert allowed_change({"fidelity.min_snr_db": 30.0}, "fidelity") == pytest.approx(0.1)
    assert FIDELITY.loss(FIDELITY.change(0.0, 0.25)) == 0.25  # more output error is worse


def test_the_output_error_per_sample_averages_to_the_error_and_refuses_silent_float_outputs() -> None:
    from gate.errors import ModelError

    quantized, reference = outputs_pair(4, (200, 6), noise=0.05)
    value, per_sample = FIDELITY.score(quantized, reference)
    f, q = reference.astype(np.float64), quantized.astype(np.float64)
    assert value == pytest.approx(np.sum((q - f) ** 2) / np.sum(f**2) * 100)
    assert np.mean(per_sample) == pytest.approx(value)
    with pytest.raises(ModelError, match="outputs are zero on every eval sample"):
        FIDELITY.score(quantized, np.zeros_like(reference))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"samples": 299}, "measured on 299 samples, but the conversion's evaluation on 300"),
        ({"snr_db": None}, "an SNR is given exactly when the outputs are not identical"),
        ({"top1_agreement": 100.5}, "100.5 is out of its figure's range"),
        ({"top1_agreement": None}, "top-1 agreement is given exactly when the output is class scores"),
        ({"snr_db": math.inf}, "a figure or its interval is not a finite number"),
        ({"snr_db_interval": Interval(31.0, 29.0, 0.95, "BCa", 2000)}, "is not one of its figure"),
    ],
)
def test_a_fidelity_read_back_must_be_one_gate_wrote(change: dict, problem: str) -> None:
    from gate.policy.fidelity import read_back_problem

    fine = figures(98.0, 30.0, (29.0, 31.0))  # 294 of 300 samples
    fine = dataclasses.replace(fine, top1_agreement_interval=Interval(97.0, 99.5, 0.95, "BCa", 2000))
    assert read_back_problem(fine, reference=False, samples=300) == ""
    assert problem in read_back_problem(dataclasses.replace(fine, **change), reference=False, samples=300)
    assert "no fidelity figures" in read_back_problem(fine, reference=True, samples=300)


def tflite_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    """A .tflite's dequantized outputs, run here without gate."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    (detail,), (output,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(detail["index"], [len(x), *x.shape[1:]])
    interpreter.allocate_tensors()
    scale, zero = detail["quantization"]
    fed = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8) if scale else x
    interpreter.set_tensor(detail["index"], fed)
    interpreter.invoke()
    out_scale, out_zero = output["quantization"]
    values = interpreter.get_tensor(output["index"])
    return (values.astype(np.float64) - out_zero) * out_scale if out_scale else values.astype(np.float64)


def test_a_model_with_only_x_in_eval_npz_is_gated_by_fidelity(workspace) -> None:
    from helpers import run_gate

    folder = workspace / "models" / "healthy"
    (folder / "gate.toml").write_text('task = "fidelity"\nmethod = "int8"\n')
    x = np.load(folder / "eval.npz")["x"]
    np.savez(folder / "eval.npz", x=x)  # no labels
    np.savez(folder / "train.npz", x=np.load(folder / "train.npz")["x"])
    (workspace / "policies" / "default.toml").write_text("[fidelity]\nmin_top1_agreement = 95.0\nmin_snr_db = 20.0\n")
    run = run_gate("check", "models/healthy", "--out", "out", cwd=workspace)
    assert run.exit_code == 0, run.stdout + run.stderr
    result = run.model("healthy")
    assert (result["task"], result["status"]) == ("fidelity", "PASS")
    assert result["reference"]["fidelity"] is None
    (int8,) = result["candidates"]
    fidelity = int8["conversion"]["fidelity"]

    # Both files run here, and the figures computed with numpy.
    artifacts = run.out_dir / "artifacts"
    f = tflite_outputs(artifacts / "healthy.float32.tflite", x)
    q = tflite_outputs(artifacts / "healthy.int8.tflite", x)
    assert fidelity["top1_agreement"] == pytest.approx(np.mean(f.argmax(1) == q.argmax(1)) * 100, abs=1e-6)
    assert fidelity["snr_db"] == pytest.approx(10 * np.log10(np.sum(f**2) / np.sum((q - f) ** 2)), abs=1e-4)
    assert fidelity["snr_db_interval"]["low"] < fidelity["snr_db"] < fidelity["snr_db_interval"]["high"]
    assert int8["conversion"]["evaluation"]["value"] == pytest.approx(np.sum((q - f) ** 2) / np.sum(f**2) * 100)
    checks = {c["name"]: c["status"] for c in int8["checks"]}
    assert checks == {"fidelity.min_top1_agreement": "PASS", "fidelity.min_snr_db": "PASS"}
    assert f"top-1 {fidelity['top1_agreement']:.2f}%" in run.markdown


@pytest.mark.parametrize(("task", "code"), [("fidelity", 0), ("anomaly", 2)])
def test_gate_validate_asks_labels_only_of_a_task_that_scores_them(tmp_path, capsys, task: str, code: int) -> None:
    import shutil

    from gate import cli

    repo = Path(__file__).resolve().parent.parent
    folder = tmp_path / "machine_ad"
    shutil.copytree(repo / "models" / "machine_ad", folder)
    (folder / "gate.toml").write_text(f'task = "{task}"\n')
    np.savez(folder / "eval.npz", x=np.zeros((6, 640), np.float16))  # no y
    assert cli.main(["validate", str(folder), "--policies", str(repo / "policies")]) == code
    assert ("no array 'y'" in capsys.readouterr().err) == bool(code)


def test_samples_with_neither_signal_nor_noise_do_not_shrink_the_snr_interval_to_a_point() -> None:
    # Padding 5 informative samples with 100 whose float and quantized outputs are both zero leaves the SNR as it
    # is; resamples drawn from the padding alone are 0/0, which once made the interval the point.
    rng = np.random.default_rng(5)
    signal = rng.normal(size=(5, 8))
    quantized = signal + rng.normal(scale=0.1, size=signal.shape)
    few = measure_fidelity(quantized, FloatOutputs(signal, ""), confidence=0.95)
    padded = measure_fidelity(
        np.concatenate([quantized, np.zeros((100, 8))]),
        FloatOutputs(np.concatenate([signal, np.zeros((100, 8))]), ""),
        confidence=0.95,
    )
    assert padded.snr_db == few.snr_db
    assert few.snr_db_interval is not None and padded.snr_db_interval is not None
    assert padded.snr_db_interval.low < padded.snr_db - 1 and padded.snr_db_interval.high > padded.snr_db + 1
    # The padded interval is of the resamples that give a number (about 13 draw none of the 5), and says how many.
    assert 1950 < padded.snr_db_interval.resamples < few.snr_db_interval.resamples == 2000
