from types import SimpleNamespace

import numpy as np
import pytest
from factories import DEFAULT_POLICY, candidate

from gate.results import Status


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
    from gate.judge import Context, _accuracy_drop
    from gate.measure import score
    from gate.search import metric_change

    def accuracy(correct: int) -> float:
        outputs = np.zeros((samples, 2))
        outputs[:correct, 0] = outputs[correct:, 1] = 1
        return score(outputs, np.zeros(samples, dtype=np.int64), "classification")[0]

    limit = lost * 100 / samples  # e.g. 3 of 300 samples: exactly 1 point
    for lost_samples, expected in ((lost, Status.PASS), (lost + 1, Status.FAIL)):
        change = metric_change("classification", accuracy(float_correct), accuracy(float_correct - lost_samples))
        candidate = SimpleNamespace(metric_change=change, metric_change_interval=None)
        assert _accuracy_drop(candidate, limit, Context({}, "classification"))[0] is expected
