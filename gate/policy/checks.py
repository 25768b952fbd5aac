"""How a policy check judges a candidate's figures, and the sentence it says about them.

A check of gate.policy.judge.CHECKS that names `figures` and no evaluation of its own is a limit on a named
figure (gate.figures.FIGURES): `within_limit` judges it and words its message from the figure. The functions
below are the evaluations of the checks with more to say (intervals, dtypes, state, the size at int8's ceiling).
Each takes the candidate, the limit the policy sets and a `Context`, and returns a verdict (status, measured
figure, message); none raises.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gate.figures import FIGURES
from gate.keys import Kind, Value, duration, plain
from gate.results import Candidate, CheckResult, Conversion, Evaluation, Interval, Status
from gate.targets import DEFAULT_TARGET
from gate.targets.base import TARGET_FIGURES, measured_on
from gate.tasks import METRICS, TASKS

Verdict = tuple[Status, float | str | bool | None, str]
# When the measured drop is within this many eval samples' worth of its limit, those samples decide the verdict.
DECIDING_SAMPLES = 2


@dataclass(frozen=True)
class Context:
    """What a check may read besides the candidate: the effective policy, the task and the float32 reference."""

    policy: Mapping[str, Value]
    task: str
    reference: Conversion | None = None  # its inputs tell which inputs are integer in the float model


# The limit comes as the check's kind parsed it from the policy: a number for Number kinds, and so on.
Evaluate = Callable[[Candidate, Any, Context], Verdict]


@dataclass(frozen=True)
class CheckDefinition:
    """A policy check: its threshold, the named figures it reads, and how they are judged against it."""

    name: str
    kind: Kind
    unit: str
    description: str
    evaluation: Evaluate | None = None  # its own; None: `within_limit`, the first measured of `figures` vs the limit
    bound: str = "max"  # a failure means measured > limit ("max"), < limit ("min") or != limit ("equal")
    better: str = ""  # what doing better on it is, as the search says it: "no later candidate is smaller than int8"
    figures: tuple[str, ...] = ()  # the names in gate.figures.FIGURES it reads

    def evaluate(self, candidate: Candidate, limit: Any, context: Context) -> Verdict:
        if self.evaluation is not None:
            return self.evaluation(candidate, limit, context)
        return within_limit(self, candidate, limit, context)


def within_limit(check: CheckDefinition, candidate: Candidate, limit: float, context: Context) -> Verdict:
    """The first of the check's figures measured for the candidate, at most ("max") or at least ("min") the limit."""
    for name in check.figures:
        figure = FIGURES[name]
        if (value := figure.read(candidate)) is not None:
            assert figure.says is not None
            passed = value <= limit if check.bound == "max" else value >= limit
            relation = "budget ≤" if check.bound == "max" else "need ≥"
            said = f"{figure.says(value, candidate)} ({relation} {amount(limit, figure.unit)})"
            return Status.PASS if passed else Status.FAIL, round(value, figure.digits), said
    return Status.SKIP, None, unmeasured(check.figures, context)


def amount(value: float, unit: str) -> str:
    """A limit as a message says it: "2 ms", "64 KiB", "1.5×", "100%"."""
    if unit == "ms":
        return duration(value)
    return f"{plain(value)}{'' if unit in ('×', '%') else ' '}{unit}"


def unmeasured(figures: tuple[str, ...], context: Context) -> str:
    """Why none of `figures` was measured: the target measures none of them (and which ones do), or not this time."""
    target = str(context.policy.get("target.runtime", DEFAULT_TARGET))
    added = [name for name in figures if name in TARGET_FIGURES[target]]  # a policy names a target of TARGET_NAMES
    measured_by = measured_on(figures)
    if measured_by and not added:
        said = " or ".join(FIGURES[name].said for name in figures)
        return f"the target ({target}) measures no {said}: {measured_by} do (see docs/targets.md)"
    figure = FIGURES[(added or figures)[0]]
    return figure.missing or f"no {figure.said} was measured for this file"


def size_reduction(candidate: Candidate, limit: float, context: Context) -> Verdict:
    float32 = FIGURES["size_reduction_vs_float32"].read(candidate)
    if context.policy["size.baseline"] == "source":
        ratio, label = FIGURES["size_reduction_vs_source"].read(candidate), "the source model file"
    else:
        ratio, label = float32, "the float32 .tflite"
    assert ratio is not None
    status = Status.PASS if ratio >= limit else Status.FAIL
    said = f"{ratio:.2f}× smaller than {label}" if ratio >= 1 else f"{1 / ratio:.2f}× larger than {label}"
    if label != "the float32 .tflite" and float32 is not None and float32 <= 1:
        # vs the source it can look small, optimizer state and all; what an app ships instead is the float32 file
        larger = "no smaller than" if float32 == 1 else f"{1 / float32:.2f}× larger than"
        said += f"{', but' if ratio >= 1 else ' and'} {larger} the float32 .tflite"
    said = f"{said} (need ≥ {plain(limit)}×)"
    if status is Status.FAIL and limit <= INT8_CEILING and float32 is not None and float32 >= 3:
        said += _beyond_int8(float32, ratio, against_source=label != "the float32 .tflite")
    return status, round(ratio, 3), said


# int8 stores a weight in a quarter of float32's bytes: no int8 file is more than 4× smaller than its float32 weights.
INT8_CEILING = 4.0


def _beyond_int8(vs_float32: float, ratio: float, *, against_source: bool) -> str:
    """Why a file of int8 weights falls short of a threshold at int8's ceiling, and the policy that passes it."""
    made_of = (
        ": int8 weights are a quarter of float32 ones, but biases stay int32 and the file has fixed overhead, so "
        f"against float32 weights alone int8 lands below {plain(INT8_CEILING)}×"
    )
    reach = rounded_limit(vs_float32, up=False)
    if not against_source:
        return f"{made_of}. What passes: `min_reduction = {plain(reach)}` under `[size]`, what this file reaches"
    return (
        f"{made_of}, and the source is {ratio / vs_float32:.2f}× the float32 .tflite: float32 weights, no "
        'optimizer state (which roughly triples a trained Keras file). What passes: `baseline = "float32_tflite"` '
        f"and `min_reduction = {plain(reach)}` under `[size]` (this file is {vs_float32:.3f}× smaller than the float32 "
        ".tflite), or the source saved with its optimizer state"
    )


def judged_value(
    estimate: float, interval: Interval | None, context: Context, *, higher_is_better: bool
) -> tuple[float, str]:
    """What a check compares with its limit (statistics.decide_on): the estimate, or an end of its interval; and the
    words that say which ("" for the estimate).

    Pessimistic (`upper_bound`) judges the worse of the estimate and the interval's worse end: a BCa interval can, in
    rare skewed cases, exclude its estimate, and an interval must never make a verdict kinder than the estimate.
    Optimistic (`lower_bound`) judges the better end, as asked.
    """
    decide_on = str(context.policy.get("statistics.decide_on", "estimate"))
    if decide_on == "estimate" or interval is None:
        return estimate, ""
    low, high = sorted((interval.low, interval.high))
    worse, better = (low, high) if higher_is_better else (high, low)
    if decide_on == "lower_bound":
        return better + 0.0, f"; judged on the optimistic end of its interval, {better + 0.0:.2f}"
    value = (min(estimate, worse) if higher_is_better else max(estimate, worse)) + 0.0  # -0.0 (no change) → 0.0
    if value != worse:
        return value, f"; judged on the estimate, worse than the pessimistic end of its interval ({worse + 0.0:.2f})"
    return value, f"; judged on the pessimistic end of its interval, {value:.2f}"


def _interval_text(value: float, interval: Interval | None, unit: str) -> str:
    """' (95% CI 0.50 to 3.50 pts)': the interval of what _moved says, of `value` (a drop, a rise) or, when it is
    negative, of its opposite (the rise, the fall)."""
    if interval is None:
        return ""
    ends = (interval.low, interval.high) if value >= 0 else (-interval.high, -interval.low)
    low, high = (f"{round(v, 2) + 0.0:.2f}".replace("-", "−") for v in ends)
    return f" ({interval.confidence:.0%} CI {low} to {high} {unit})"


def _moved(name: str, change: float, unit: str, *, up: str, down: str) -> str:
    """'accuracy dropped 1.85 pts', 'accuracy rose 1.85 pts', 'MAE did not change': as a person says it."""
    if change == 0:
        return f"{name} did not change"
    return f"{name} {up if change > 0 else down} {abs(change):.2f}{unit}"


def _judged_by(task: str) -> str:
    """The check that judges a task's metric ('' for a result that names no task: an error)."""
    return TASKS[task].policy_key if task in TASKS else ""


def _not_judging(check: str, context: Context) -> Verdict | None:
    """SKIP when `check` does not judge this model's task: it says which tasks it judges and which check does."""
    if _judged_by(context.task) == check:
        return None
    judged = [task for task in TASKS.values() if task.policy_key == check]  # a metric check judges a task or more
    said = judged[0].metric.said
    tasks = " and ".join(task.name for task in judged)
    return Status.SKIP, None, f"task is {context.task}: {said} applies to {tasks} (see {_judged_by(context.task)})"


def points_drop(check: str, candidate: Candidate, limit: float, context: Context) -> Verdict:
    """A drop in points of a metric where higher is better (accuracy, AUC); `check` is bound in CHECKS."""
    if skipped := _not_judging(check, context):
        return skipped
    change = FIGURES["metric_change"].read(candidate)
    assert change is not None
    # Rounded so that a drop of exactly the limit passes, as the README promises: 281/300 - 278/300 is
    # 1.0000000000000036 in floating point. No eval set is large enough for 1e-9 points to matter.
    drop = round(-change, 9) + 0.0  # + 0.0 turns -0.0 (no change) into 0.0
    ci = candidate.metric_change_interval
    interval = dataclasses.replace(ci, low=-ci.high, high=-ci.low) if ci else None  # of the drop
    decided, how = judged_value(drop, interval, context, higher_is_better=False)
    status = Status.PASS if round(decided, 9) <= limit else Status.FAIL
    moved = _moved(TASKS[context.task].metric.said, drop, " pts", up="dropped", down="rose")
    shown = _interval_text(drop, interval, "pts")
    return status, round(drop, 4), f"{moved}{shown} (allowed drop ≤ {plain(limit)}){how}"


def deciding_samples_note(check: CheckResult, eval_samples: int) -> str:
    """A note when one or two eval samples decide the accuracy check's verdict (the report shows it once per model)."""
    if check.name != "accuracy.max_drop" or check.status is Status.SKIP or not eval_samples:
        return ""
    per_sample = 100 / eval_samples
    assert isinstance(check.measured, float | int) and isinstance(check.limit, float | int)
    # Exactly two samples decide too; measured is the drop rounded to 4 decimals (up to 0.00005 pts off): with 300
    # samples a drop 2 samples above the limit, 1.6667 for 1.66666..., is 2.0001 samples away.
    if abs(check.measured - check.limit) > DECIDING_SAMPLES * per_sample + 0.00005:
        return ""
    return (
        f"with {eval_samples} eval samples one sample is {per_sample:.2f} pts, and the accuracy drop "
        f"({check.measured:.2f} pts) is within {DECIDING_SAMPLES} samples of its limit ({plain(check.limit)} pts): "
        f"one or two samples decide this {check.status.value}; add eval data to resolve it"
    )


def percent_increase(check: str, candidate: Candidate, limit: float, context: Context) -> Verdict:
    """A rise in percent of the float model's value of a metric where lower is better (MAE); `check` is bound."""
    if skipped := _not_judging(check, context):
        return skipped
    change = FIGURES["metric_change"].read(candidate)
    assert change is not None
    increase = round(change, 9) + 0.0  # as for the accuracy drop
    interval = candidate.metric_change_interval
    decided, how = judged_value(increase, interval, context, higher_is_better=False)
    status = Status.PASS if round(decided, 9) <= limit else Status.FAIL
    moved = _moved(TASKS[context.task].metric.said, increase, "%", up="rose", down="fell")
    shown = _interval_text(increase, interval, "%")
    return status, round(increase, 4), f"{moved}{shown} of the float model's (allowed rise ≤ {plain(limit)}%){how}"


def dtype_check(side: str, candidate: Candidate, limit: Value, context: Context) -> Verdict:
    """`side` is "inputs" or "outputs" (bound with functools.partial in CHECKS)."""
    assert candidate.conversion is not None
    tensors = getattr(candidate.conversion, side)
    # An input that is integer in the float model (token ids) stays integer in every .tflite: not quantizable.
    fixed = {t.name for t in getattr(context.reference, side, ()) if t.dtype.startswith(("int", "uint"))}
    judged = [t for t in tensors if t.name not in fixed]
    measured = ",".join(sorted({t.dtype for t in tensors}))
    if not judged:
        return (
            Status.SKIP,
            measured,
            f"every {side[:-1]} is an integer tensor in the float model ({measured}), which quantization leaves as "
            "it is",
        )
    wrong = [f"{t.name} is {t.dtype}" for t in judged if t.dtype != limit]
    note = f" ({', '.join(sorted(fixed))} stay integer, as in the float model)" if fixed else ""
    if wrong:
        return Status.FAIL, measured, f"{side[:-1]} must be {limit}: " + "; ".join(wrong) + note
    return Status.PASS, measured, f"every {side[:-1]} is {limit}{note}"


def integer_only(candidate: Candidate, limit: Value, context: Context) -> Verdict:
    assert candidate.conversion is not None
    float_ops = candidate.conversion.float_ops
    if not limit:
        return Status.SKIP, None, "the policy does not require integer-only ops"
    if float_ops:
        return Status.FAIL, False, "ops with float tensors: " + ", ".join(float_ops)
    return Status.PASS, True, "every op runs on integer tensors"


def stateless(candidate: Candidate, limit: Value, context: Context) -> Verdict:
    assert candidate.conversion is not None
    state = candidate.conversion.state
    if not limit:
        return Status.SKIP, None, "the policy does not require a file that keeps no state between invokes"
    if state is None:
        return Status.PASS, "stateless", "keeps no state between invokes: each inference depends on its input alone"
    judged, other = candidate.conversion.evaluation, state.other_evaluation
    if state.app_resets:
        return (
            Status.PASS,
            "stateful, reset by the app",
            f"keeps state between invokes in {state.variable_tensors} variable tensors; the policy says the app "
            "calls interpreter.reset_all_variables() before each inference (runtime.resets_state = true), and the "
            f"figures were measured so ({score_text(judged)}; {score_text(other)} without resets)",
        )
    return (
        Status.FAIL,
        "stateful",
        f"keeps state between invokes in {state.variable_tensors} variable tensors: run one sample per invoke "
        f"without a reset, as an app that does not know runs it, it scores {score_text(judged)} "
        f"({score_text(other)} with interpreter.reset_all_variables() before each inference); if your app resets "
        "it, say so with runtime.resets_state = true",
    )


def score_text(evaluation: Evaluation) -> str:
    """'accuracy 97.22%', 'mae 0.0123': a figure as the messages and the release notes say it."""
    return f"{evaluation.metric} {METRICS[evaluation.metric].show(evaluation.value)}"


def supported_ops(candidate: Candidate, limit: Value, context: Context) -> Verdict:
    """Whether the runtime runs every operator of the file itself: what TFLM lacks fails it, naming the operator."""
    assert candidate.conversion is not None
    device = candidate.conversion.device
    if not limit:
        return Status.SKIP, None, "the policy does not require a kernel in the target runtime for every operator"
    if device is None or device.target != "tflm":
        # An NPU's operators that Vela cannot place run on the CPU: npu.min_ops_on_npu judges those.
        target = context.policy.get("target.runtime", "litert")
        return Status.SKIP, None, f"judged on the tflm target only, and this one is {target}"
    if device.unsupported:
        return Status.FAIL, False, f"{device.target} cannot run it: {'; '.join(device.unsupported)}"
    return Status.PASS, True, f"{device.target} has a kernel for every operator ({', '.join(device.operators)})"


def rounded_limit(value: float, *, up: bool) -> float | int:
    """`value` to 3 significant digits, rounded up or down; a whole number as an int (as TOML writes it)."""
    if value <= 0:
        return 0
    step = 10 ** (math.floor(math.log10(value)) - 2)
    rounded = round((math.ceil if up else math.floor)(round(value / step, 6)) * step, 10)
    return int(rounded) if float(rounded).is_integer() else rounded
