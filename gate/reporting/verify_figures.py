"""Figures of a result read back that gate could only have written together (gate.reporting.verify calls these).

Each function returns what is wrong, naming the field, or "". They hold a result to what one measurement gives:

- an interval is of the policy's confidence, drawn with gate's number of resamples, finite and in order;
- fidelity is measured on every built candidate against the same float32 outputs, or on none (when those
  outputs are zero on every eval sample, which the task `fidelity` refuses: it always has them);
- under the task `fidelity` the SNR and the output error are one measurement, SNR = 10·log10(100 / error), and
  identical outputs score what the float32 .tflite scores;
- a file measured on TFLM takes the .tflite's size in flash, and what TFLM cannot run is recomputed from the
  operators it records, in gate's own words; when TFLM cannot run it, the metric judged is LiteRT's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from gate.keys import Value
from gate.policy.config import POLICY_KEYS
from gate.results import Candidate, Conversion, Evaluation, Fidelity, Interval, ModelResult, OnDevice
from gate.targets.tflm_ops import RUNTIME_REFUSALS, missing_from, no_kernel
from gate.tasks import METRICS
from gate.tasks.fidelity import could_be_class_scores_problem

# gate.measurement.stats.DEFAULT_RESAMPLES, which no policy changes; not imported from there, which imports numpy,
# and `gate comment` reads results without it (tests/test_verify_figures.py checks that the two agree).
DEFAULT_RESAMPLES = 2000
# The SNR's tolerance against 10·log10(100 / output error): both come from the same float64 energies, the SNR
# rounded to 6 decimals.
SNR_TOLERANCE_DB = 1e-5
# gate writes one line of what TFLM cannot run; parse_failure caps TFLM's own words at 400 characters.
MAX_UNSUPPORTED_CHARS = 400
# A .tflite's distinct operators (the schema has about 200 builtins) and the length of one, "CUSTOM:<code> xN".
MAX_OPERATORS, MAX_OPERATOR_CHARS = 1000, 1000


def built_problem(result: ModelResult, candidate: Candidate) -> str:
    """What in a built candidate's figures does not follow from one measurement, as "field: problem", or ""."""
    conversion = candidate.conversion
    assert conversion is not None and result.provenance is not None  # checked by verify._check_built before
    assert result.reference is not None  # likewise
    policy = result.provenance.effective_policy
    if candidate.metric_change_interval is None and policy.get("statistics.decide_on", "estimate") != "estimate":
        return "metric_change_interval: missing, but gate draws one for every built candidate, and its policy judges it"
    if problem := interval_problem(candidate.metric_change_interval, policy):
        return f"metric_change_interval: {problem}"
    measured = _litert(conversion), _litert(result.reference)
    if problem := fidelity_problem(
        conversion.fidelity, result.task, *measured, policy, stateful=stateful(result, conversion)
    ):
        return f"conversion.fidelity{problem}"
    if conversion.device is not None and conversion.device.target == "tflm":
        if "ops.supported" not in policy:
            return "conversion.device: measured on tflm, but its effective policy has no ops.supported (gate sets it)"
        if problem := tflm_problem(conversion, conversion.device):
            return f"conversion.device.{problem}"
    return ""


def stateful(result: ModelResult, conversion: Conversion) -> bool:
    """Whether the file or the float32 one keeps state, so that each is evaluated as the app runs it, at its own
    batch: their outputs on the eval set can then be identical and their evaluations differ."""
    return conversion.state is not None or result.reference is not None and result.reference.state is not None


def in_range(evaluation: Evaluation) -> bool:
    """A figure its metric can take (accuracy 0 to 100%, an MAE from 0), finite; its metric one of METRICS."""
    metric = METRICS[evaluation.metric]
    return math.isfinite(evaluation.value) and metric.lowest <= evaluation.value <= metric.highest


def interval_problem(interval: Interval | None, policy: Mapping[str, Value]) -> str:
    """What in an interval read back gate could not have drawn under `policy`, or ""."""
    if interval is None:
        return ""
    confidence = policy.get("statistics.confidence", POLICY_KEYS["statistics.confidence"].default)
    if not (math.isfinite(interval.low) and math.isfinite(interval.high) and interval.low <= interval.high):
        return f"{interval.low!r} to {interval.high!r} is not an interval"
    if interval.confidence != confidence:
        return f"confidence {interval.confidence!r}, but the effective policy's statistics.confidence is {confidence}"
    # Fewer when some resamples give no number (gate.measurement.stats.bootstrap): a percentile interval of the others.
    fewer = interval.method == "percentile" and 0 < interval.resamples < DEFAULT_RESAMPLES
    if interval.resamples != DEFAULT_RESAMPLES and not fewer:
        return (
            f"{interval.resamples} resamples, but gate draws {DEFAULT_RESAMPLES} (fewer only in a percentile interval "
            "of those that give a number)"
        )
    if interval.method not in ("BCa", "percentile"):
        return f"the method {interval.method[:20]!r} is not BCa or percentile"
    return ""


def fidelity_presence_problem(result: ModelResult) -> str:
    """Fidelity figures on every built candidate or on none, and on every one under the task `fidelity`.

    A model with several outputs has them per output (gate.reporting.verify_outputs checks those), none of its own."""
    if result.float_per_output:
        return ""
    built = [(index, c.conversion) for index, c in enumerate(result.candidates) if c.conversion is not None]
    lacking = [index for index, conversion in built if conversion.fidelity is None]
    if not lacking or len(lacking) == len(built) and result.task != "fidelity":
        return ""
    why = (
        "the task fidelity measures it on every built candidate"
        if result.task == "fidelity"
        else f"candidate {next(i for i, _ in built if i not in lacking)}'s is measured, and gate measures every built "
        "candidate against the same float32 outputs (or none, when those are zero on every eval sample)"
    )
    return f"candidates[{lacking[0]}].conversion.fidelity: missing, but {why}"


def _litert(conversion: Conversion) -> Evaluation:
    """The evaluation of LiteRT's outputs, which the fidelity figures are measured on (a device has it beside)."""
    device = conversion.device
    return device.litert_evaluation if device and device.litert_evaluation else conversion.evaluation


def fidelity_problem(
    fidelity: Fidelity | None,
    task: str,
    evaluation: Evaluation,
    reference: Evaluation,
    policy: Mapping[str, Value],
    *,
    stateful: bool,
) -> str:
    """What in one file's (or one output's) fidelity figures gate could not have measured against the float32
    file's, evaluated as `reference`, or "": as ".field: problem", or ": problem" of the figures together."""
    if fidelity is None:
        return ""
    for field in ("top1_agreement_interval", "snr_db_interval"):
        if problem := interval_problem(getattr(fidelity, field), policy):
            return f".{field}: {problem}"
    if fidelity.not_class_scores and not could_be_class_scores_problem(task, fidelity.not_class_scores):
        why = (
            "a classifier's output is class scores, whose top-1 agreement gate measures"
            if task == "classification"
            else "gate gives no such reason"
        )
        return f".not_class_scores: {fidelity.not_class_scores[:80]!r}, but {why}"
    if problem := same_measurement_problem(fidelity, task, evaluation, reference, stateful=stateful):
        return f": {problem}"
    return ""


def same_measurement_problem(
    fidelity: Fidelity, task: str, evaluation: Evaluation, reference: Evaluation, *, stateful: bool
) -> str:
    """The fidelity figures and the evaluation of one file are one measurement of its outputs."""
    if fidelity.identical:
        if fidelity.top1_agreement not in (None, 100.0):
            return f"identical outputs, but a top-1 agreement of {fidelity.top1_agreement!r}%"
        # The same outputs score the same; only a file that keeps state is evaluated at another batch, as it runs.
        same_run = evaluation.batch_size == reference.batch_size or not stateful
        if same_run and not math.isclose(evaluation.value, reference.value, rel_tol=1e-9, abs_tol=1e-12):
            return (
                f"identical outputs to the float32 .tflite's, but its {evaluation.metric} is {evaluation.value!r} "
                f"and the float32 file's {reference.value!r}"
            )
    if task != "fidelity" or evaluation.metric != "output_error":
        return ""
    error = evaluation.value
    if fidelity.identical != (error == 0):
        return f"identical outputs exactly when the output error is 0, but it is {error!r}"
    if fidelity.snr_db is not None and error > 0:
        snr = 10 * math.log10(100 / error)
        if not math.isclose(fidelity.snr_db, snr, abs_tol=SNR_TOLERANCE_DB):
            return f"SNR {fidelity.snr_db!r} dB, but its output error of {error!r}% is an SNR of {snr:.6f} dB"
    return ""


def tflm_problem(conversion: Conversion, device: OnDevice) -> str:
    """A file measured on TFLM: its flash, its operators and what TFLM cannot run, as gate writes them."""
    if device.flash_bytes != conversion.artifact.size_bytes:
        size = conversion.artifact.size_bytes
        return f"flash_bytes: {device.flash_bytes!r}, but TFLM's flash is the .tflite's {size}"
    operators = device.operators
    if len(operators) > MAX_OPERATORS or any(len(op) > MAX_OPERATOR_CHARS for op in operators):
        return f"operators: more than {MAX_OPERATORS}, or one longer than {MAX_OPERATOR_CHARS} characters"
    names = [op.rpartition(" x")[0] for op in operators]
    if any(not name or not op.rpartition(" x")[2].isdecimal() for name, op in zip(names, operators, strict=True)):
        return "operators: each is an operator's name and its count, 'NAME xCOUNT'"
    unsupported = device.unsupported
    if missing := missing_from(names):
        expected = no_kernel(missing)
        if unsupported != (expected,):
            return f"unsupported: its operators make it {expected!r}"
    elif unsupported:
        said = unsupported[0]
        if len(unsupported) > 1 or len(said) > MAX_UNSUPPORTED_CHARS or not said.startswith(RUNTIME_REFUSALS):
            return "unsupported: TFLM has every operator it lists, and this is not what TFLM says of one it cannot run"
    # (A model with several outputs has no one LiteRT evaluation: each output's is its per_output figure.)
    if unsupported and not conversion.per_output and conversion.evaluation != device.litert_evaluation:
        return "evaluation: TFLM cannot run the file, so the metric judged is LiteRT's, litert_evaluation"
    return ""
