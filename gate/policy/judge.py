"""Judge a candidate's measured figures against a policy.

`CHECKS` is the one registry of checks: each with its threshold's kind, unit
and meaning, the named figures it reads (gate.figures.FIGURES), and how they are
judged against it: a limit on a figure needs no evaluation of its own. The policy
schema (gate.policy.config.POLICY_KEYS), the docs' policy reference (tested
against it) and the report all read from it. A check returns a verdict; it
never raises.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from functools import partial

from gate.keys import Choice, Flag, Invalid, Number, Value
from gate.policy import fidelity
from gate.policy.checks import (
    CheckDefinition,
    Context,
    dtype_check,
    integer_only,
    percent_increase,
    points_drop,
    rounded_limit,
    size_reduction,
    stateless,
    supported_ops,
)
from gate.results import Candidate, CheckResult, OutputChange, Status
from gate.tasks import TASKS

_DTYPES = Choice(("int8", "uint8", "float32"))

CHECKS: dict[str, CheckDefinition] = {
    check.name: check
    for check in (
        CheckDefinition(
            "size.min_reduction",
            Number(1.0, 1000.0),
            "×",
            "Minimum size reduction of the quantized .tflite, against the baseline `size.baseline` names.",
            size_reduction,
            bound="min",
            better="smaller",
            figures=("size_reduction_vs_source", "size_reduction_vs_float32"),
        ),
        CheckDefinition(
            "accuracy.max_drop",
            Number(0.0, 100.0),
            "pts",
            "Most top-1 accuracy the quantized .tflite may lose against the float model, in percentage points "
            "(classification).",
            partial(points_drop, "accuracy.max_drop"),
            figures=("metric_change",),
        ),
        CheckDefinition(
            "auc.max_drop",
            Number(0.0, 100.0),
            "pts",
            "Most ROC AUC the quantized .tflite may lose against the float model, in percentage points (anomaly).",
            partial(points_drop, "auc.max_drop"),
            figures=("metric_change",),
        ),
        CheckDefinition(
            "mae.max_increase",
            Number(0.0, 1000.0),
            "%",
            "Most the mean absolute error may rise against the float model, in percent of the float MAE (regression).",
            partial(percent_increase, "mae.max_increase"),
            figures=("metric_change",),
        ),
        CheckDefinition(
            "custom.max_drop",
            Number(0.0, 1_000_000.0),
            "pts",
            "Most a custom metric where higher is better may lose against the float model, in points of the metric "
            '(task = "custom", direction = "higher").',
            partial(points_drop, "custom.max_drop"),
            figures=("metric_change",),
        ),
        CheckDefinition(
            "custom.max_increase",
            Number(0.0, 1000.0),
            "%",
            "Most a custom metric where lower is better may rise against the float model, in percent of the float "
            'model\'s value, as `mae.max_increase` does (task = "custom", direction = "lower").',
            partial(percent_increase, "custom.max_increase"),
            figures=("metric_change",),
        ),
        CheckDefinition(
            "fidelity.min_top1_agreement",
            Number(0.0, 100.0),
            "%",
            "Least share of eval samples, in percent, on which the quantized .tflite picks the float32 .tflite's "
            "top-1 class (needs no labels; every task). SKIP for an output that is not class scores; FAIL when the "
            "float32 .tflite's outputs are zero on every eval sample (nothing to compare with).",
            fidelity.top1_agreement,
            bound="min",
            figures=("top1_agreement",),
        ),
        CheckDefinition(
            "fidelity.min_snr_db",
            Number(0.0, 200.0),
            "dB",
            "Least signal-to-noise ratio, in dB, of the quantized .tflite's outputs against the float32 .tflite's on "
            "the same eval inputs (needs no labels; every task). Identical outputs pass; FAIL when the float32 "
            ".tflite's outputs are zero on every eval sample.",
            fidelity.snr,
            bound="min",
            figures=("snr_db",),
        ),
        CheckDefinition(
            "io.input_dtype",
            _DTYPES,
            "",
            "Required dtype of every model input; `int8`/`uint8` also set the I/O type of full-integer conversion. "
            "Inputs that are integer in the float model (token ids, int32) stay so in every candidate and are "
            "not judged; the check is SKIP when every input is one.",
            partial(dtype_check, "inputs"),
            bound="equal",
        ),
        CheckDefinition(
            "io.output_dtype",
            _DTYPES,
            "",
            "Required dtype of every model output.",
            partial(dtype_check, "outputs"),
            bound="equal",
        ),
        CheckDefinition(
            "ops.integer_only",
            Flag(),
            "",
            "When true, no op may read or write a float tensor (what integer-only accelerators and MCUs need).",
            integer_only,
            bound="equal",
        ),
        CheckDefinition(
            "ops.supported",
            Flag(),
            "",
            "When true, the target runtime must have a kernel for every operator of the file, for the types it uses "
            "(tflm: an operator or operator version TFLM lacks fails the candidate, naming it; the metric shown is "
            'then LiteRT\'s). True by default when `target.runtime = "tflm"`; SKIP on other targets.',
            supported_ops,
            bound="equal",
        ),
        CheckDefinition(
            "runtime.stateless",
            Flag(),
            "",
            "When true, the quantized .tflite may keep no state from one invoke to the next (variable tensors, as "
            "a converted tf-keras LSTM keeps), unless `runtime.resets_state` says the app resets it before each "
            "inference.",
            stateless,
            bound="equal",
        ),
        CheckDefinition(
            "memory.max_arena_kib",
            Number(0.0, 1e7),
            "KiB",
            "Largest tensor arena the model may need, in KiB (tflm: the smallest arena with which TFLM allocates "
            "and invokes it, on this 64-bit host; Ethos-U: Vela's SRAM figure). SKIP on a target that measures none.",
            figures=("arena_kib", "sram_kib"),
            better="smaller in its tensor arena",
        ),
        CheckDefinition(
            "memory.max_flash_kib",
            Number(0.0, 1e7),
            "KiB",
            "Most flash the model may take, in KiB (tflm: the .tflite file the firmware embeds; Ethos-U: Vela's "
            "flash figure, where the configuration keeps weights in flash). SKIP on a target that measures none.",
            figures=("flash_kib",),
        ),
        CheckDefinition(
            "npu.min_ops_on_npu",
            Number(0.0, 100.0),
            "%",
            "Least share of the .tflite's operators an Ethos-U target's Vela must place on the NPU, in percent (a "
            "float candidate runs 0%). SKIP on other targets.",
            bound="min",
            figures=("npu_ops_percent",),
        ),
        CheckDefinition(
            "npu.max_inference_ms",
            Number(0.0001, 1e6),
            "ms",
            "Most inference time Vela estimates at the Ethos-U configuration's clock (the NPU's part only). SKIP "
            "when nothing runs on the NPU, and on other targets.",
            figures=("npu_inference_ms",),
        ),
        CheckDefinition(
            "latency.max_p50_ms",
            Number(0.0001, 1e6),
            "ms",
            "Median single-sample latency budget of the quantized .tflite.",
            figures=("latency_p50_ms",),
        ),
        CheckDefinition(
            "latency.max_p95_ms",
            Number(0.0001, 1e6),
            "ms",
            "95th-percentile single-sample latency budget of the quantized .tflite.",
            figures=("latency_p95_ms",),
        ),
        CheckDefinition(
            "latency.min_speedup",
            Number(0.0001, 1000.0),
            "×",
            "Minimum p50 speedup of the quantized .tflite over the float32 .tflite, measured in the same run.",
            bound="min",
            figures=("speedup",),
        ),
    )
}

LATENCY_CHECKS = ("latency.max_p50_ms", "latency.max_p95_ms", "latency.min_speedup")


# The figures of one output: on a model with several outputs, the checks that read them judge each output apart.
OUTPUT_FIGURES = frozenset({"metric_change", "top1_agreement", "snr_db"})


def policy_key(check: str) -> str:
    """The policy key a check result judges: 'accuracy.max_drop (class)', one output's, is 'accuracy.max_drop'."""
    return check.split(" (", 1)[0]


def judged_as(name: str, candidate: Candidate, context: Context) -> list[tuple[str, Candidate, Context]]:
    """What check `name` judges of a candidate, under which result name: the candidate itself, or on a model with
    several outputs and a check of an output's figures, each output it applies to, seen as a model of its own (its
    task, metric, change and fidelity): 'accuracy.max_drop (class)'. A metric check applies to the outputs of the
    task it judges; a fidelity check to every output."""
    conversion = candidate.conversion
    if not candidate.per_output or conversion is None or not OUTPUT_FIGURES & set(CHECKS[name].figures):
        return [(name, candidate, context)]
    views = []
    for score, change in zip(conversion.per_output, candidate.per_output, strict=True):
        if "metric_change" in CHECKS[name].figures and TASKS[score.task].policy_key != name:
            continue
        seen = dataclasses.replace(conversion, evaluation=score.evaluation, fidelity=score.fidelity)
        view = dataclasses.replace(candidate, conversion=seen, metric_change=change.metric_change,
                                   metric_change_interval=change.metric_change_interval)  # fmt: skip
        views.append((f"{name} ({score.output})", view, dataclasses.replace(context, task=score.task)))
    return views


def _allowance(change: OutputChange, policy: Mapping[str, Value]) -> float | None:
    """The loss the policy allows an output's task (a positive number), or None when it sets no check for it."""
    task = TASKS[change.task]
    limit = policy.get(task.policy_key)
    return abs(task.allowed_change(float(limit))) if isinstance(limit, int | float) else None


def _loss(change: OutputChange) -> float:
    return TASKS[change.task].loss(change.metric_change)


def worst_output(changes: Sequence[OutputChange], policy: Mapping[str, Value]) -> int:
    """The index of the output whose change is worst (the first of equals): the largest loss in its task's terms, as
    a share of the change the policy allows its task (a drop of 3 of 2 allowed points is worse than a rise of 4 of
    10 allowed percent). An output whose task's check the policy does not set is the worst only when the policy
    judges no output (then by its loss itself): its loss, in its own units, cannot be weighed against a share."""
    limits = [_allowance(change, policy) for change in changes]
    judged = any(limit is not None for limit in limits)
    keys = [
        (limit is not None or not judged, _loss(change) / (limit or 1.0))
        for change, limit in zip(changes, limits, strict=True)
    ]
    return keys.index(max(keys))


def worst_share(changes: Sequence[OutputChange], policy: Mapping[str, Value]) -> float:
    """What a method that searches itself (float fallback) minimises on a model with several outputs: the largest
    loss of an output whose task's check the policy sets, as a share of what it allows (within it: at most 1), or
    the largest loss when the policy judges none of them."""
    allowed = [(change, limit) for change in changes if (limit := _allowance(change, policy)) is not None]
    if not allowed:
        return max(_loss(change) for change in changes)
    return max(_loss(change) / (limit or 1e-9) for change, limit in allowed)


def judge(candidate: Candidate, context: Context) -> Candidate:
    """Run every check the policy sets on a built `candidate`; return it with its checks, status and reason.

    Every check runs, so the report lists all failures, not the first; on a model with several outputs, once
    per output it applies to (judged_as).
    """
    results = []
    for name, check in CHECKS.items():
        if name not in context.policy:
            continue
        limit = context.policy[name]
        assert not isinstance(limit, tuple)  # no check takes a list of names
        for shown, seen, seen_in in judged_as(name, candidate, context):
            status, measured, message = check.evaluate(seen, limit, seen_in)
            results.append(CheckResult(shown, status, measured, limit, check.unit, message))
    failed = [r for r in results if r.status is Status.FAIL]
    status = Status.FAIL if failed else Status.PASS
    reason = f"{failed[0].name}: {failed[0].message}" if failed else ""
    return dataclasses.replace(candidate, checks=tuple(results), status=status, reason=reason)


def hard_requirement_problem(
    policy: Mapping[str, Value], *, float_io: bool, float_ops: bool, integer_inputs: bool
) -> str:
    """Why a kind of candidate cannot pass `policy` whatever it measures, or "" (used to skip it untried).

    `float_io`: its model I/O is float32 whatever the policy asks. `integer_inputs`: the float model's
    inputs are integer (token ids), which no candidate changes.
    """
    for side in ("output",) if integer_inputs else ("input", "output"):
        wanted = policy.get(f"io.{side}_dtype")
        if float_io and wanted and wanted != "float32":
            return f"its model {side} is float32, and the policy requires io.{side}_dtype = {wanted}"
    if policy.get("ops.integer_only") and float_ops:
        return "it keeps ops on float tensors, and the policy requires ops.integer_only = true"
    return ""


def relaxed_policy(candidate: Candidate, context: Context) -> dict[str, Value]:
    """For each check the candidate failed, the policy value under which it passes: the override that accepts it.

    A limit is the measured figure rounded (to 3 significant digits) the way that passes, then moved
    1% at a time until the check passes (statistics.decide_on can judge an interval's bound). A stateful
    file is accepted by saying that the app resets it (runtime.resets_state), not by a limit.
    """
    relaxed: dict[str, Value] = {}
    for result in candidate.checks:
        if result.status is not Status.FAIL or result.measured is None:  # no limit passes a figure not measured
            continue
        if result.name == "runtime.stateless":
            relaxed["runtime.resets_state"] = True
            continue
        key = policy_key(result.name)
        judged = next((view for view in judged_as(key, candidate, context) if view[0] == result.name), None)
        value = _passing_limit(CHECKS[key], result, *judged[1:]) if judged else None
        if value is not None:  # of several outputs' values, the loosest: each output passes under it
            loosest = max if CHECKS[key].bound == "max" else min
            relaxed[key] = loosest(value, relaxed.get(key, value))
    return relaxed


def _passing_limit(check: CheckDefinition, result: CheckResult, candidate: Candidate, context: Context) -> Value | None:
    if check.bound == "equal":  # the file's dtype, or false for ops.integer_only (what a failure measures)
        tries = [result.measured]
    else:
        assert isinstance(result.measured, float | int) and isinstance(result.limit, float | int)
        up = check.bound == "max"
        # Judged on an interval's bound, a figure can fail on the right side of its limit: start from the limit.
        start = max(result.measured, result.limit) if up else min(result.measured, result.limit)
        tries = [rounded_limit(start * (1.01**step if up else 0.99**step), up=up) for step in range(200)]
    for value in tries:
        try:
            check.kind.parse(value)
        except Invalid:
            return None
        if check.evaluate(candidate, value, context)[0] is not Status.FAIL:
            return value
    return None
