"""Check the per-output figures of a model with several outputs, read back from elsewhere (see gate.reporting.verify).

Bounded and named as gate names them: at most MAX_OUTPUTS outputs, each a plain Keras name, once, with a task of
the registry whose metric its evaluations hold; the float model, the reference and every built candidate list the
same outputs in the same order; each output's change follows from its evaluations, and the candidate's own change
is its worst output's. The checks named after an output are made afresh by gate.reporting.verify's re-judging.
"""

from __future__ import annotations

import math

from gate.layout import MAX_OUTPUTS, OUTPUT_NAME
from gate.policy.judge import worst_output
from gate.results import Candidate, Conversion, ModelResult, OutputScore
from gate.tasks import TASKS


def check_outputs(result: ModelResult) -> None:
    """Raise ValueError naming the first per-output figure of `result` that gate could not have written."""
    outputs = result.float_per_output
    built = [c for c in result.candidates if c.conversion is not None]
    if not outputs:
        if any(c.per_output or c.conversion.per_output for c in built if c.conversion) or (
            result.reference and result.reference.per_output
        ):
            raise ValueError("float_per_output: empty, but a conversion or candidate has per-output figures")
        return
    _check_scores(outputs, "float_per_output", reference=True)
    names = [(score.output, score.task) for score in outputs]
    conversions: list[tuple[str, Conversion | None]] = [("reference", result.reference)] if result.reference else []
    conversions += [(f"candidates[{result.candidates.index(c)}].conversion", c.conversion) for c in built]
    for where, conversion in conversions:
        assert conversion is not None  # built
        _check_scores(conversion.per_output, f"{where}.per_output", reference=where == "reference")
        if [(score.output, score.task) for score in conversion.per_output] != names:
            raise ValueError(f"{where}.per_output: not the outputs of float_per_output, in their order")
    for candidate in built:
        _check_changes(result, candidate, f"candidates[{result.candidates.index(candidate)}]")


def _check_scores(scores: tuple[OutputScore, ...], where: str, *, reference: bool) -> None:
    if not 2 <= len(scores) <= MAX_OUTPUTS:
        raise ValueError(f"{where}: {len(scores)} outputs; a model with several has 2 to {MAX_OUTPUTS}")
    if len({score.output for score in scores}) != len(scores):
        raise ValueError(f"{where}: names an output twice")
    for index, score in enumerate(scores):
        if not OUTPUT_NAME.fullmatch(score.output) or (score.tensor and not OUTPUT_NAME.fullmatch(score.tensor)):
            raise ValueError(f"{where}[{index}]: {score.output[:50]!r} or {score.tensor[:50]!r} is not a plain name")
        if score.task not in TASKS or score.evaluation.metric != TASKS[score.task].metric.name:
            raise ValueError(f"{where}[{index}]: task {score.task[:50]!r} does not score {score.evaluation.metric!r}")
        if reference and score.fidelity is not None:
            raise ValueError(f"{where}[{index}].fidelity: the float model and the float32 .tflite have none")
        if not reference and score.task == "fidelity" and score.fidelity is None:
            raise ValueError(f"{where}[{index}].fidelity: missing, but the task fidelity measures it on every build")


def _check_changes(result: ModelResult, candidate: Candidate, where: str) -> None:
    assert candidate.conversion is not None
    changes = candidate.per_output
    if [change.output for change in changes] != [score.output for score in result.float_per_output]:
        raise ValueError(f"{where}.per_output: not the outputs of float_per_output, in their order")
    scores = zip(result.float_per_output, candidate.conversion.per_output, changes, strict=True)
    for index, (before, after, change) in enumerate(scores):
        expected = TASKS[after.task].change(before.evaluation.value, after.evaluation.value)
        if change.task != after.task or not math.isclose(change.metric_change, expected, abs_tol=1e-9):
            raise ValueError(f"{where}.per_output[{index}]: its change does not follow from its evaluations")
    assert result.provenance is not None  # built
    worst = worst_output(changes, result.provenance.effective_policy)
    if not math.isclose(candidate.metric_change or 0.0, changes[worst].metric_change, abs_tol=1e-9) or (
        candidate.metric_change_interval != changes[worst].metric_change_interval
        or candidate.conversion.evaluation != candidate.conversion.per_output[worst].evaluation
    ):
        raise ValueError(f"{where}: its metric change, interval and evaluation are not its worst output's")
