import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from factories import DEFAULT_POLICY, candidate, conversion

from gate.results import Evaluation, State, Status, must_reset


def verdicts(judged) -> dict[str, Status]:
    return {check.name: check.status for check in judged.checks}


@pytest.mark.parametrize(
    ("candidate_args", "policy", "failed"),
    [
        ({}, DEFAULT_POLICY, []),
        ({"size_bytes": 30_000}, DEFAULT_POLICY, ["size.min_reduction"]),  # 80 kB / 30 kB = 2.7x < 4x
        ({"accuracy": 93.5}, DEFAULT_POLICY, ["accuracy.max_drop"]),  # 96 -> 93.5 = 2.5 pts
        ({"accuracy": 94.0}, DEFAULT_POLICY, []),  # exactly 2 pts: allowed
        ({"dtype": "uint8"}, DEFAULT_POLICY, ["io.input_dtype", "io.output_dtype"]),
        ({"p50_ms": 6.0}, DEFAULT_POLICY, ["latency.max_p50_ms"]),
        ({"float_ops": ("DEQUANTIZE x1",)}, DEFAULT_POLICY | {"ops.integer_only": True}, ["ops.integer_only"]),
        ({"p50_ms": 2.5}, DEFAULT_POLICY | {"latency.min_speedup": 1.0}, ["latency.min_speedup"]),
        ({"size_bytes": 30_000}, DEFAULT_POLICY | {"size.baseline": "float32_tflite", "size.min_reduction": 1.3}, []),
        # every failure is listed, not only the first
        ({"size_bytes": 30_000, "accuracy": 90.0}, DEFAULT_POLICY, ["size.min_reduction", "accuracy.max_drop"]),
    ],
)
def test_checks_fail_exactly_when_a_threshold_is_crossed(candidate_args, policy, failed) -> None:
    judged = candidate(policy=policy, **candidate_args)
    assert sorted(n for n, s in verdicts(judged).items() if s is Status.FAIL) == sorted(failed)
    assert judged.status is (Status.FAIL if failed else Status.PASS)


def test_a_check_not_in_the_policy_does_not_run() -> None:
    judged = candidate(policy={"accuracy.max_drop": 2.0})
    assert list(verdicts(judged)) == ["accuracy.max_drop"]


def test_checks_that_do_not_apply_are_skipped_with_a_reason() -> None:
    judged = candidate(policy=DEFAULT_POLICY | {"mae.max_increase": 5.0}, task="classification")
    mae = next(c for c in judged.checks if c.name == "mae.max_increase")
    assert mae.status is Status.SKIP
    assert mae.measured is None
    assert "classification" in mae.message


def test_failed_check_records_measured_value_and_threshold() -> None:
    judged = candidate(accuracy=93.0)
    check = next(c for c in judged.checks if c.name == "accuracy.max_drop")
    assert (check.measured, check.limit, check.unit) == (3.0, 2.0, "pts")
    assert check.message == "accuracy dropped 3.00 pts (allowed drop ≤ 2)"


@pytest.mark.parametrize(
    ("samples", "float_correct", "lost"), [(300, 281, 3), (500, 450, 10), (1000, 905, 20), (500, 487, 10)]
)
def test_a_drop_of_exactly_the_limit_passes_and_one_more_sample_fails(samples, float_correct, lost) -> None:
    from gate.policy.judge import CHECKS, Context
    from gate.tasks.classification import CLASSIFICATION

    def accuracy(correct: int) -> float:
        outputs = np.zeros((samples, 2))
        outputs[:correct, 0] = outputs[correct:, 1] = 1
        return CLASSIFICATION.score(outputs, np.zeros(samples, dtype=np.int64))[0]

    limit = lost * 100 / samples  # e.g. 3 of 300 samples: exactly 1 point
    for lost_samples, expected in ((lost, Status.PASS), (lost + 1, Status.FAIL)):
        change = CLASSIFICATION.change(accuracy(float_correct), accuracy(float_correct - lost_samples))
        candidate = SimpleNamespace(metric_change=change, metric_change_interval=None)
        assert CHECKS["accuracy.max_drop"].evaluate(candidate, limit, Context({}, "classification"))[0] is expected


def verdict(
    policy: dict,
    *,
    change: float | None = None,
    interval: tuple | None = None,
    confidence: float = 0.95,
    task: str = "classification",
    samples: int = 400,
    inputs: tuple = (),
    state: State | None = None,
    **conversion_args,
) -> tuple:
    """(status, measured, message) of the one check `policy` sets, on a candidate built from the arguments."""
    from gate.policy.judge import Context, judge
    from gate.results import Interval, TensorInfo

    unjudged = candidate(policy={}, **conversion_args)
    unjudged = dataclasses.replace(
        unjudged,
        metric_change=unjudged.metric_change if change is None else change,
        metric_change_interval=Interval(*interval, confidence, "BCa", 2000) if interval else None,
        conversion=dataclasses.replace(unjudged.conversion, state=state),
    )
    reference = conversion("float32", size_bytes=40_000, dtype="float32")
    if inputs:  # (name, dtype in the candidate, dtype in the float model): an integer one there stays integer
        tensors = {side: tuple(TensorInfo(name, dtypes[side], (-1, 12), 0.0, 0) for name, *dtypes in inputs)
                   for side in (0, 1)}  # fmt: skip
        reference = dataclasses.replace(reference, inputs=tensors[1])
        unjudged = dataclasses.replace(unjudged, conversion=dataclasses.replace(unjudged.conversion, inputs=tensors[0]))
    (check,) = judge(unjudged, Context({"size.baseline": "source"} | policy, task, reference, samples)).checks
    return check.status, check.measured, check.message


PASS, FAIL, SKIP = Status.PASS, Status.FAIL, Status.SKIP
SOURCE, FLOAT32 = {"size.baseline": "source"}, {"size.baseline": "float32_tflite"}
# A file that keeps state in 2 variable tensors; its figure the other way (with or without resets) is 10.56%.
STATEFUL = {
    "variable_tensors": 2,
    "other_evaluation": Evaluation("accuracy", 10.56, 1000, 1, ()),
    "app_must": must_reset(2),
}
ACCURACY, MAE = {"accuracy.max_drop": 2.0}, {"mae.max_increase": 5.0}
UPPER, LOWER = {"statistics.decide_on": "upper_bound"}, {"statistics.decide_on": "lower_bound"}


@pytest.mark.parametrize(
    ("policy", "arguments", "expected"),
    [
        # size: against the source file or the float32 .tflite; exactly the limit passes
        (SOURCE | {"size.min_reduction": 4.0}, {"size_bytes": 20_000},
         (PASS, 4.0, "4.00× smaller than the source model file (need ≥ 4×)")),
        (SOURCE | {"size.min_reduction": 4.0}, {"size_bytes": 30_000},
         (FAIL, 2.667, "2.67× smaller than the source model file (need ≥ 4×)")),
        (FLOAT32 | {"size.min_reduction": 1.3}, {"size_bytes": 30_000},
         (PASS, 1.333, "1.33× smaller than the float32 .tflite (need ≥ 1.3×)")),
        # a file no smaller than the float32 .tflite says so, whichever baseline judges it
        (FLOAT32 | {"size.min_reduction": 1.0}, {"size_bytes": 50_000},
         (FAIL, 0.8, "1.25× larger than the float32 .tflite (need ≥ 1×)")),
        (SOURCE | {"size.min_reduction": 1.0}, {"size_bytes": 40_000},
         (PASS, 2.0, "2.00× smaller than the source model file, but no smaller than the float32 .tflite (need ≥ 1×)")),
        (SOURCE | {"size.min_reduction": 1.0}, {"size_bytes": 100_000},
         (FAIL, 0.8, "1.25× larger than the source model file and 2.50× larger than the float32 .tflite (need ≥ 1×)")),
        # accuracy: the estimate, shown with its interval; exactly the limit passes
        (ACCURACY, {"change": -2.0, "interval": (-3.5, -0.5)},
         (PASS, 2.0, "accuracy dropped 2.00 pts (95% CI 0.50 to 3.50 pts) (allowed drop ≤ 2)")),
        (ACCURACY, {"change": -1.23456, "interval": (-2.0049, 0.0049), "confidence": 0.8},
         (PASS, 1.2346, "accuracy dropped 1.23 pts (80% CI 0.00 to 2.00 pts) (allowed drop ≤ 2)")),
        # a rise is said as one, with the interval of the rise
        (ACCURACY, {"change": 1.0, "interval": (-0.5, 2.5)},
         (PASS, -1.0, "accuracy rose 1.00 pts (95% CI −0.50 to 2.50 pts) (allowed drop ≤ 2)")),
        (ACCURACY, {"change": 0.0, "interval": (0.0, 0.0)},
         (PASS, 0.0, "accuracy did not change (95% CI 0.00 to 0.00 pts) (allowed drop ≤ 2)")),
        (ACCURACY, {"change": -2.5}, (FAIL, 2.5, "accuracy dropped 2.50 pts (allowed drop ≤ 2)")),
        # statistics.decide_on: the pessimistic or the optimistic end of the interval instead of the estimate
        (ACCURACY | UPPER, {"change": -1.5, "interval": (-2.5, -0.5)},
         (FAIL, 1.5, "accuracy dropped 1.50 pts (95% CI 0.50 to 2.50 pts) (allowed drop ≤ 2); judged on the upper "
                     "bound of its interval, 2.50")),
        (ACCURACY | LOWER, {"change": -2.5, "interval": (-3.0, -1.0)},
         (PASS, 2.5, "accuracy dropped 2.50 pts (95% CI 1.00 to 3.00 pts) (allowed drop ≤ 2); judged on the lower "
                     "bound of its interval, 1.00")),
        (ACCURACY | UPPER, {"change": 0.0, "interval": (0.0, 0.0)},
         (PASS, 0.0, "accuracy did not change (95% CI 0.00 to 0.00 pts) (allowed drop ≤ 2); judged on the upper "
                     "bound of its interval, 0.00")),
        (ACCURACY | UPPER, {"change": -2.5}, (FAIL, 2.5, "accuracy dropped 2.50 pts (allowed drop ≤ 2)")),
        # the check's message carries no note on the eval set's size: the report shows deciding_samples_note once
        (ACCURACY, {"change": 0.0, "samples": 114}, (PASS, 0.0, "accuracy did not change (allowed drop ≤ 2)")),
        ({"accuracy.max_drop": 1.0}, {"change": 0.0, "samples": 300},
         (PASS, 0.0, "accuracy did not change (allowed drop ≤ 1)")),
        (ACCURACY, {"change": 0.0, "task": "regression"},
         (SKIP, None, "task is regression: accuracy applies to classification (see mae.max_increase)")),
        # MAE: percent of the float model's; exactly the limit passes
        (MAE, {"change": 5.0, "interval": (1.0, 7.0), "task": "regression"},
         (PASS, 5.0, "MAE rose 5.00% (95% CI 1.00 to 7.00 %) of the float model's (allowed rise ≤ 5%)")),
        (MAE, {"change": 1.23456, "task": "regression"},
         (PASS, 1.2346, "MAE rose 1.23% of the float model's (allowed rise ≤ 5%)")),
        (MAE, {"change": 5.4, "task": "regression"},
         (FAIL, 5.4, "MAE rose 5.40% of the float model's (allowed rise ≤ 5%)")),
        (MAE | UPPER, {"change": 4.0, "interval": (1.0, 7.0), "task": "regression"},
         (FAIL, 4.0, "MAE rose 4.00% (95% CI 1.00 to 7.00 %) of the float model's (allowed rise ≤ 5%); judged on the "
                     "upper bound of its interval, 7.00")),
        (MAE | LOWER, {"change": 6.0, "interval": (2.0, 9.0), "task": "regression"},
         (PASS, 6.0, "MAE rose 6.00% (95% CI 2.00 to 9.00 %) of the float model's (allowed rise ≤ 5%); judged on the "
                     "lower bound of its interval, 2.00")),
        (MAE, {"change": -2.0, "interval": (-3.0, -1.0), "task": "regression"},
         (PASS, -2.0, "MAE fell 2.00% (95% CI 1.00 to 3.00 %) of the float model's (allowed rise ≤ 5%)")),
        (MAE, {"change": 0.0, "task": "regression"},
         (PASS, 0.0, "MAE did not change of the float model's (allowed rise ≤ 5%)")),
        (MAE, {"change": 0.0},
         (SKIP, None, "task is classification: MAE applies to regression (see accuracy.max_drop)")),
        # I/O dtypes; inputs that are integer in the float model are not judged
        ({"io.input_dtype": "int8"}, {}, (PASS, "int8", "every input is int8")),
        ({"io.output_dtype": "int8"}, {"dtype": "uint8"}, (FAIL, "uint8", "output must be int8: output_0 is uint8")),
        ({"io.input_dtype": "int8"}, {"inputs": (("image", "int8", "float32"), ("ids", "int32", "int32"),
                                                 ("mask", "int32", "int32"))},
         (PASS, "int32,int8", "every input is int8 (ids, mask stay integer, as in the float model)")),
        ({"io.input_dtype": "uint8"}, {"inputs": (("image", "int8", "float32"), ("ids", "int32", "int32"))},
         (FAIL, "int32,int8", "input must be uint8: image is int8 (ids stay integer, as in the float model)")),
        ({"io.input_dtype": "int8"}, {"inputs": (("a", "float32", "float32"), ("b", "uint8", "float32"))},
         (FAIL, "float32,uint8", "input must be int8: a is float32; b is uint8")),
        ({"io.input_dtype": "int8"}, {"inputs": (("ids", "int32", "int32"),)},
         (SKIP, "int32", "every input is an integer tensor in the float model (int32), which quantization leaves as "
                         "it is")),
        ({"io.input_dtype": "int8"}, {"inputs": (("pixels", "uint8", "uint8"),)},
         (SKIP, "uint8", "every input is an integer tensor in the float model (uint8), which quantization leaves as "
                         "it is")),
        ({"io.output_dtype": "int8"}, {"inputs": (("ids", "int32", "int32"),)}, (PASS, "int8", "every output is int8")),
        # ops
        ({"ops.integer_only": True}, {"float_ops": ("DEQUANTIZE x1", "SOFTMAX x2")},
         (FAIL, False, "ops with float tensors: DEQUANTIZE x1, SOFTMAX x2")),
        ({"ops.integer_only": True}, {}, (PASS, True, "every op runs on integer tensors")),
        ({"ops.integer_only": False}, {"float_ops": ("SOFTMAX x1",)},
         (SKIP, None, "the policy does not require integer-only ops")),
        # state between invokes: judged as the app runs the file, unless the policy says the app resets it
        ({"runtime.stateless": True}, {},
         (PASS, "stateless", "keeps no state between invokes: each inference depends on its input alone")),
        ({"runtime.stateless": True}, {"state": State(app_resets=False, **STATEFUL)},
         (FAIL, "stateful", "keeps state between invokes in 2 variable tensors: run one sample per invoke without a "
                            "reset, as an app that does not know runs it, it scores accuracy 95.00% (accuracy 10.56% "
                            "with interpreter.reset_all_variables() before each inference); if your app resets it, "
                            "say so with runtime.resets_state = true")),
        ({"runtime.stateless": True}, {"state": State(app_resets=True, **STATEFUL)},
         (PASS, "stateful, reset by the app", "keeps state between invokes in 2 variable tensors; the policy says the "
                                              "app calls interpreter.reset_all_variables() before each inference "
                                              "(runtime.resets_state = true), and the figures were measured so "
                                              "(accuracy 95.00%; accuracy 10.56% without resets)")),
        ({"runtime.stateless": False}, {"state": State(app_resets=False, **STATEFUL)},
         (SKIP, None, "the policy does not require a file that keeps no state between invokes")),
        # latency: exactly the budget passes; the speedup is float32 p50 / candidate p50 (2.0 ms here)
        ({"latency.max_p50_ms": 2.0}, {"p50_ms": 2.0}, (PASS, 2.0, "p50 2 ms at batch 1, 1 thread(s) (budget ≤ 2 ms)")),
        ({"latency.max_p50_ms": 1.0}, {"p50_ms": 1.23456789},
         (FAIL, 1.234568, "p50 1.2 ms at batch 1, 1 thread(s) (budget ≤ 1 ms)")),
        ({"latency.max_p95_ms": 3.0}, {"p50_ms": 2.0}, (PASS, 3.0, "p95 3 ms at batch 1, 1 thread(s) (budget ≤ 3 ms)")),
        ({"latency.min_speedup": 1.0}, {"p50_ms": 2.0}, (PASS, 1.0, "1.00× faster than float32 at p50 (need ≥ 1×)")),
        ({"latency.min_speedup": 1.7}, {"p50_ms": 1.2},
         (FAIL, 1.667, "1.67× faster than float32 at p50 (need ≥ 1.7×)")),
    ],
)  # fmt: skip
def test_each_check_gives_its_verdict_measured_value_and_message(policy, arguments, expected) -> None:
    assert verdict(policy, **arguments) == expected


def test_a_candidate_without_a_latency_skips_the_latency_checks_and_the_first_failure_is_its_reason() -> None:
    from gate.policy.judge import Context, judge

    unjudged = candidate(policy={}, size_bytes=30_000, accuracy=90.0)
    unjudged = dataclasses.replace(unjudged, speedup=None,
                                   conversion=dataclasses.replace(unjudged.conversion, latency=None))  # fmt: skip
    policy = DEFAULT_POLICY | {"latency.max_p95_ms": 4.0, "latency.min_speedup": 1.0}
    judged = judge(unjudged, Context(policy, "classification"))
    assert [(c.name, c.status, c.message) for c in judged.checks if c.status is not Status.PASS] == [
        ("size.min_reduction", Status.FAIL, "2.67× smaller than the source model file (need ≥ 4×)"),
        ("accuracy.max_drop", Status.FAIL, "accuracy dropped 6.00 pts (allowed drop ≤ 2)"),
        ("latency.max_p50_ms", Status.SKIP, "latency was not measured"),
        ("latency.max_p95_ms", Status.SKIP, "latency was not measured"),
        ("latency.min_speedup", Status.SKIP, "latency was not measured"),
    ]
    assert (judged.status, judged.reason) == (
        Status.FAIL,
        "size.min_reduction: 2.67× smaller than the source model file (need ≥ 4×)",
    )
    passing = judge(candidate(policy={}), Context(DEFAULT_POLICY, "classification"))
    assert (passing.status, passing.reason) == (Status.PASS, "")


@pytest.mark.parametrize(
    ("check", "samples", "note"),
    [
        # within two samples' worth of the limit (2 × 0.88 pts with 114 samples): those samples decide
        (("accuracy.max_drop", PASS, 0.877, 2.0), 114,
         "with 114 eval samples one sample is 0.88 pts, and the accuracy drop (0.88 pts) is within 2 samples of its "
         "limit (2 pts): one or two samples decide this PASS; add eval data to resolve it"),
        (("accuracy.max_drop", FAIL, 2.2, 2.0), 1000,
         "with 1000 eval samples one sample is 0.10 pts, and the accuracy drop (2.20 pts) is within 2 samples of its "
         "limit (2 pts): one or two samples decide this FAIL; add eval data to resolve it"),
        (("accuracy.max_drop", PASS, 0.0, 2.0), 114, ""),  # 2.3 samples away
        (("accuracy.max_drop", FAIL, 2.3, 2.0), 1000, ""),
        (("accuracy.max_drop", SKIP, None, 2.0), 114, ""),
        (("mae.max_increase", PASS, 4.9, 5.0), 114, ""),  # the note is about accuracy samples only
    ],
)  # fmt: skip
def test_the_deciding_samples_note_is_given_only_when_one_or_two_samples_decide(check, samples, note) -> None:
    from gate.policy.judge import deciding_samples_note
    from gate.results import CheckResult

    name, status, measured, limit = check
    result = CheckResult(name, status, measured, limit, "pts", "")
    assert deciding_samples_note(result, samples) == note
