"""Check the per-output figures of a model with several outputs, read back from elsewhere (see gate.reporting.verify).

Bounded and named as gate names them: at most MAX_OUTPUTS outputs, each a plain Keras name, once, with a task of
the registry whose metric its evaluations hold, evaluated on the whole eval set, each a .tflite output of its own;
the float model, the reference and every built candidate list the same outputs in the same order; each output's
fidelity and intervals are what one measurement gives, as a one-output model's (gate.reporting.verify_figures);
each output's change follows from its evaluations, and the candidate's own change is its worst output's, as the
model's task and float figures are its published candidate's worst output's. The checks named after an output are
made afresh by gate.reporting.verify's re-judging.
"""

from __future__ import annotations

import math

from gate.layout import MAX_OUTPUTS, OUTPUT_NAME
from gate.policy.fidelity import read_back_problem
from gate.policy.judge import worst_output
from gate.reporting.verify_figures import fidelity_problem, in_range, interval_problem, stateful
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
    samples = result.evaluation_data.samples if result.evaluation_data else None
    _check_scores(outputs, "float_per_output", reference=True, samples=samples)
    names = [(score.output, score.task) for score in outputs]
    conversions: list[tuple[str, Conversion | None]] = [("reference", result.reference)] if result.reference else []
    conversions += [(f"candidates[{result.candidates.index(c)}].conversion", c.conversion) for c in built]
    for where, conversion in conversions:
        assert conversion is not None  # built
        _check_scores(conversion.per_output, f"{where}.per_output", reference=where == "reference", samples=samples)
        if [(score.output, score.task) for score in conversion.per_output] != names:
            raise ValueError(f"{where}.per_output: not the outputs of float_per_output, in their order")
    for candidate in built:
        where = f"candidates[{result.candidates.index(candidate)}]"
        _check_fidelity(result, candidate, where)
        _check_changes(result, candidate, where)
    for index in range(len(outputs)):  # measured against the same float32 outputs on every built candidate, or none
        if len({c.conversion.per_output[index].fidelity is None for c in built if c.conversion}) > 1:
            raise ValueError(f"output {outputs[index].output}: its fidelity is measured on some built candidates only")
    _check_summary(result)


def _check_scores(scores: tuple[OutputScore, ...], where: str, *, reference: bool, samples: int | None) -> None:
    if not 2 <= len(scores) <= MAX_OUTPUTS:
        raise ValueError(f"{where}: {len(scores)} outputs; a model with several has 2 to {MAX_OUTPUTS}")
    if len({score.output for score in scores}) != len(scores):
        raise ValueError(f"{where}: names an output twice")
    tensors = [score.tensor for score in scores if score.tensor]
    if len(set(tensors)) != len(tensors):
        raise ValueError(f"{where}: maps two outputs to one .tflite tensor (gate maps each to its own)")
    for index, score in enumerate(scores):
        if not OUTPUT_NAME.fullmatch(score.output) or (score.tensor and not OUTPUT_NAME.fullmatch(score.tensor)):
            raise ValueError(f"{where}[{index}]: {score.output[:50]!r} or {score.tensor[:50]!r} is not a plain name")
        if score.task not in TASKS or score.evaluation.metric != TASKS[score.task].metric.name:
            raise ValueError(f"{where}[{index}]: task {score.task[:50]!r} does not score {score.evaluation.metric!r}")
        if not in_range(score.evaluation):
            raise ValueError(
                f"{where}[{index}].evaluation.value: {score.evaluation.value!r} is out of its metric's range"
            )
        if reference and score.fidelity is not None:
            raise ValueError(f"{where}[{index}].fidelity: the float model and the float32 .tflite have none")
        if not reference and score.task == "fidelity" and score.fidelity is None:
            raise ValueError(f"{where}[{index}].fidelity: missing, but the task fidelity measures it on every build")
        if samples is not None and score.evaluation.samples != samples:
            raise ValueError(
                f"{where}[{index}].evaluation: on {score.evaluation.samples} samples, but gate evaluates every output "
                f"on the eval set's {samples}"
            )


def _check_fidelity(result: ModelResult, candidate: Candidate, where: str) -> None:
    """Each output's fidelity figures, as verify checks a one-output file's."""
    conversion, reference = candidate.conversion, result.reference
    assert conversion is not None and reference is not None and result.provenance is not None  # built
    policy, keeps_state = result.provenance.effective_policy, stateful(result, conversion)
    for index, (score, float32) in enumerate(zip(conversion.per_output, reference.per_output, strict=True)):
        field = f"{where}.conversion.per_output[{index}].fidelity"
        if problem := read_back_problem(score.fidelity, reference=False, samples=score.evaluation.samples):
            raise ValueError(f"{field}: {problem}")
        if problem := fidelity_problem(score.fidelity, score.task, score.evaluation, float32.evaluation, policy,
                                       stateful=keeps_state):  # fmt: skip
            raise ValueError(f"{field}{problem}")


def _check_changes(result: ModelResult, candidate: Candidate, where: str) -> None:
    assert candidate.conversion is not None
    changes = candidate.per_output
    if [change.output for change in changes] != [score.output for score in result.float_per_output]:
        raise ValueError(f"{where}.per_output: not the outputs of float_per_output, in their order")
    scores = zip(result.float_per_output, candidate.conversion.per_output, changes, strict=True)
    assert result.provenance is not None  # built
    policy = result.provenance.effective_policy
    for index, (before, after, change) in enumerate(scores):
        expected = TASKS[after.task].change(before.evaluation.value, after.evaluation.value)
        if change.task != after.task or not math.isclose(change.metric_change, expected, abs_tol=1e-9):
            raise ValueError(f"{where}.per_output[{index}]: its change does not follow from its evaluations")
        if change.metric_change_interval is None and policy.get("statistics.decide_on", "estimate") != "estimate":
            raise ValueError(
                f"{where}.per_output[{index}].metric_change_interval: missing, but gate draws one for every output, "
                "and its policy judges it"
            )
        if problem := interval_problem(change.metric_change_interval, policy):
            raise ValueError(f"{where}.per_output[{index}].metric_change_interval: {problem}")
    worst = worst_output(changes, policy)
    if not math.isclose(candidate.metric_change or 0.0, changes[worst].metric_change, abs_tol=1e-9) or (
        candidate.metric_change_interval != changes[worst].metric_change_interval
        or candidate.conversion.evaluation != candidate.conversion.per_output[worst].evaluation
    ):
        raise ValueError(f"{where}: its metric change, interval and evaluation are not its worst output's")


def _check_summary(result: ModelResult) -> None:
    """The model's task and float figures are its published candidate's worst output's (gate.gating.several)."""
    published = result.candidates[result.chosen] if 0 <= result.chosen < len(result.candidates) else None
    if published is None or published.conversion is None or result.reference is None or result.provenance is None:
        return
    at = worst_output(published.per_output, result.provenance.effective_policy)
    worst = (result.float_per_output[at].task, result.float_per_output[at].evaluation,
             result.reference.per_output[at].evaluation)  # fmt: skip
    if (result.task, result.float_evaluation, result.reference.evaluation) != worst:
        raise ValueError(
            f"task, float_evaluation and reference.evaluation: not those of output {result.float_per_output[at].output}"
            ", the published candidate's worst"
        )
