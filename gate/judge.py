"""Judge a candidate's measured figures against a policy.

`CHECKS` is the one registry of checks: each with its threshold's kind, unit
and meaning, and how a candidate's figures are judged against it. The policy
schema (gate.config.POLICY_KEYS), the README's policy reference (tested
against it) and the report all read from it. A check returns a verdict; it
never raises.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gate.keys import Choice, Flag, Kind, Number, Value, plain
from gate.results import Candidate, CheckResult, Status


Verdict = tuple[Status, float | str | bool | None, str]


@dataclass(frozen=True)
class CheckDefinition:
    """A policy check: its threshold, and how a candidate's figures are judged against it."""

    name: str
    kind: Kind
    unit: str
    description: str
    evaluate: Callable[[Candidate, Value, Mapping[str, Value], str], Verdict]
    bound: str = "max"  # a failure means measured > limit ("max"), < limit ("min") or != limit ("equal")


def _size_reduction(candidate: Candidate, limit: Value, policy: Mapping[str, Value], task: str) -> Verdict:
    baseline = policy["size.baseline"]
    if baseline == "source":
        ratio, label = candidate.size_reduction_vs_source, "the source model file"
    else:
        ratio, label = candidate.size_reduction_vs_float32, "the float32 .tflite"
    status = Status.PASS if ratio >= limit else Status.FAIL
    return status, round(ratio, 3), f"{ratio:.2f}× smaller than {label} (need ≥ {plain(limit)}×)"


def _accuracy_drop(candidate: Candidate, limit: Value, policy: Mapping[str, Value], task: str) -> Verdict:
    if task != "classification":
        return Status.SKIP, None, f"task is {task}: accuracy applies to classification (see mae.max_increase)"
    # Rounded so that a drop of exactly the limit passes, as the README promises: 281/300 - 278/300 is
    # 1.0000000000000036 in floating point. No eval set is large enough for 1e-9 points to matter.
    drop = round(-candidate.metric_change, 9) + 0.0  # + 0.0 turns -0.0 (no change) into 0.0
    status = Status.PASS if drop <= limit else Status.FAIL
    return status, round(drop, 4), f"accuracy dropped {drop:.2f} pts (allowed ≤ {plain(limit)})"


def _mae_increase(candidate: Candidate, limit: Value, policy: Mapping[str, Value], task: str) -> Verdict:
    if task != "regression":
        return Status.SKIP, None, f"task is {task}: MAE applies to regression (see accuracy.max_drop)"
    increase = round(candidate.metric_change, 9)  # as for the accuracy drop
    status = Status.PASS if increase <= limit else Status.FAIL
    return status, round(increase, 4), f"MAE rose {increase:.2f}% of the float model's (allowed ≤ {plain(limit)}%)"


def _dtype_check(side: str) -> Callable[[Candidate, Value, Mapping[str, Value], str], Verdict]:
    def evaluate(candidate: Candidate, limit: Value, policy: Mapping[str, Value], task: str) -> Verdict:
        tensors = getattr(candidate.conversion, side)
        dtypes = sorted({t.dtype for t in tensors})
        measured = ",".join(dtypes)
        wrong = [f"{t.name} is {t.dtype}" for t in tensors if t.dtype != limit]
        if wrong:
            return Status.FAIL, measured, f"{side[:-1]} must be {limit}: " + "; ".join(wrong)
        return Status.PASS, measured, f"every {side[:-1]} is {limit}"

    return evaluate


def _integer_only(candidate: Candidate, limit: Value, policy: Mapping[str, Value], task: str) -> Verdict:
    float_ops = candidate.conversion.float_ops
    if not limit:
        return Status.SKIP, None, "the policy does not require integer-only ops"
    if float_ops:
        return Status.FAIL, False, "ops with float tensors: " + ", ".join(float_ops)
    return Status.PASS, True, "every op runs on integer tensors"


def _latency_budget(percentile: str) -> Callable[[Candidate, Value, Mapping[str, Value], str], Verdict]:
    def evaluate(candidate: Candidate, limit: Value, policy: Mapping[str, Value], task: str) -> Verdict:
        latency = candidate.conversion.latency
        if latency is None:
            return Status.SKIP, None, "latency was not measured"
        value = getattr(latency, f"{percentile}_ms")
        status = Status.PASS if value <= limit else Status.FAIL
        return (
            status,
            round(value, 4),
            f"{percentile} {value:.3g} ms at batch 1, {latency.threads} thread(s) (budget ≤ {plain(limit)} ms)",
        )

    return evaluate


def _speedup(candidate: Candidate, limit: Value, policy: Mapping[str, Value], task: str) -> Verdict:
    if candidate.speedup is None:
        return Status.SKIP, None, "latency was not measured"
    status = Status.PASS if candidate.speedup >= limit else Status.FAIL
    return status, round(candidate.speedup, 3), f"{candidate.speedup:.2f}× faster than float32 at p50 (need ≥ {plain(limit)}×)"


_DTYPES = Choice(("int8", "uint8", "float32"))

CHECKS: dict[str, CheckDefinition] = {
    check.name: check
    for check in (
        CheckDefinition(
            "size.min_reduction",
            Number(1.0, 1000.0),
            "×",
            "Minimum size reduction of the quantized .tflite, against the baseline `size.baseline` names.",
            _size_reduction,
            bound="min",
        ),
        CheckDefinition(
            "accuracy.max_drop",
            Number(0.0, 100.0),
            "pts",
            "Most top-1 accuracy the quantized .tflite may lose against the float model, in percentage points "
            "(classification).",
            _accuracy_drop,
        ),
        CheckDefinition(
            "mae.max_increase",
            Number(0.0, 1000.0),
            "%",
            "Most the mean absolute error may rise against the float model, in percent of the float MAE (regression).",
            _mae_increase,
        ),
        CheckDefinition(
            "io.input_dtype",
            _DTYPES,
            "",
            "Required dtype of every model input; `int8`/`uint8` also set the I/O type of full-integer conversion.",
            _dtype_check("inputs"),
            bound="equal",
        ),
        CheckDefinition(
            "io.output_dtype", _DTYPES, "", "Required dtype of every model output.", _dtype_check("outputs"),
            bound="equal",
        ),
        CheckDefinition(
            "ops.integer_only",
            Flag(),
            "",
            "When true, no op may read or write a float tensor (what integer-only accelerators and MCUs need).",
            _integer_only,
            bound="equal",
        ),
        CheckDefinition(
            "latency.max_p50_ms",
            Number(0.0001, 1e6),
            "ms",
            "Median single-sample latency budget of the quantized .tflite.",
            _latency_budget("p50"),
        ),
        CheckDefinition(
            "latency.max_p95_ms",
            Number(0.0001, 1e6),
            "ms",
            "95th-percentile single-sample latency budget of the quantized .tflite.",
            _latency_budget("p95"),
        ),
        CheckDefinition(
            "latency.min_speedup",
            Number(0.0001, 1000.0),
            "×",
            "Minimum p50 speedup of the quantized .tflite over the float32 .tflite, measured in the same run.",
            _speedup,
            bound="min",
        ),
    )
}

LATENCY_CHECKS = ("latency.max_p50_ms", "latency.max_p95_ms", "latency.min_speedup")


def judge(candidate: Candidate, *, policy: Mapping[str, Value], task: str) -> Candidate:
    """Run every check the policy sets on `candidate`; return it with its checks and status.

    Every check runs, so the report lists all failures, not the first.
    """
    results = []
    for name, check in CHECKS.items():
        if name not in policy:
            continue
        limit = policy[name]
        status, measured, message = check.evaluate(candidate, limit, policy, task)
        results.append(CheckResult(name, status, measured, limit, check.unit, message))
    status = Status.FAIL if any(r.status is Status.FAIL for r in results) else Status.PASS
    return dataclasses.replace(candidate, checks=tuple(results), status=status)
