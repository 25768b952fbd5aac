"""How the fidelity checks judge a candidate's outputs against the float32 .tflite's (results.Fidelity).

The `evaluate` of `fidelity.min_top1_agreement` and `fidelity.min_snr_db` in gate.policy.judge.CHECKS. They
judge every task's candidates (the figures need no labels); for the task `fidelity` they are its checks. Like
the metric checks, they compare the estimate with the limit, or an end of its interval (statistics.decide_on:
`upper_bound` is the pessimistic end, which for a figure where higher is better is its low end).
"""

from __future__ import annotations

import math

from gate.keys import plain
from gate.policy.checks import Context, Verdict, judged_value
from gate.results import Candidate, Fidelity, Interval, Status

# The SNR's bound: its energies are sums of squared float32 values (of 1.4e-45 to 3.4e38 in magnitude) over at
# most 2**53 of them, so |SNR| <= 10·log10((3.4e38)² · 2**53 / (1.4e-45)²) ≈ 1827 dB.
MAX_SNR_DB = 1830.0
# A check the policy sets that cannot be measured fails rather than skips: no figures must never judge kinder than
# bad ones (a result read back with its figures dropped would otherwise pass), and the task `fidelity` refuses
# such eval data outright.
NOT_MEASURED = (
    "no fidelity figures: the float32 .tflite's outputs are zero on every eval sample, so nothing can be compared "
    "with them; use eval inputs on which the model outputs something"
)


def interval_text(interval: Interval | None, unit: str) -> str:
    """' (95% CI 97.00 to 99.50%)': a figure's interval, as the messages and the report's cells write it."""
    if interval is None:
        return ""
    low, high = (f"{round(v, 2) + 0.0:.2f}".replace("-", "−") for v in (interval.low, interval.high))
    return f" ({interval.confidence:.0%} CI {low} to {high}{unit})"


def top1_agreement(candidate: Candidate, limit: float, context: Context) -> Verdict:
    assert candidate.conversion is not None
    fidelity = candidate.conversion.fidelity
    if fidelity is None:
        return Status.FAIL, None, NOT_MEASURED
    if fidelity.top1_agreement is None:
        return Status.SKIP, None, f"top-1 agreement applies to class-score outputs: {fidelity.not_class_scores}"
    value, interval = fidelity.top1_agreement, fidelity.top1_agreement_interval
    decided, how = judged_value(value, interval, context, higher_is_better=True)
    status = Status.PASS if round(decided, 9) >= limit else Status.FAIL
    said = f"same top-1 class as the float32 .tflite on {value:.2f}% of {fidelity.samples} eval samples"
    return status, round(value, 4), f"{said}{interval_text(interval, '%')} (need ≥ {plain(limit)}%){how}"


def snr(candidate: Candidate, limit: float, context: Context) -> Verdict:
    assert candidate.conversion is not None
    fidelity = candidate.conversion.fidelity
    if fidelity is None:
        return Status.FAIL, None, NOT_MEASURED
    if fidelity.snr_db is None:  # identical outputs: an infinite SNR passes any limit
        return Status.PASS, "identical outputs", "identical outputs to the float32 .tflite's on every eval sample"
    value, interval = fidelity.snr_db, fidelity.snr_db_interval
    decided, how = judged_value(value, interval, context, higher_is_better=True)
    status = Status.PASS if round(decided, 9) >= limit else Status.FAIL
    said = f"SNR {value:.2f} dB against the float32 .tflite's outputs"
    return status, round(value, 4), f"{said}{interval_text(interval, ' dB')} (need ≥ {plain(limit)} dB){how}"


def read_back_problem(fidelity: Fidelity | None, *, reference: bool, samples: int) -> str:
    """What in a Fidelity read back (gate.reporting.verify) gate could not have written, or ""."""
    if fidelity is None:
        return ""
    if reference:
        return "the float32 .tflite is what the others are compared with: it has no fidelity figures"
    if fidelity.samples != samples:
        return f"measured on {fidelity.samples} samples, but the conversion's evaluation on {samples}"
    if fidelity.identical != (fidelity.snr_db is None) or fidelity.identical and fidelity.snr_db_interval:
        return "an SNR is given exactly when the outputs are not identical"
    if (fidelity.top1_agreement is None) != bool(fidelity.not_class_scores) or len(fidelity.not_class_scores) > 200:
        return "top-1 agreement is given exactly when the output is class scores, and otherwise says why not"
    if (fidelity.top1_agreement is None) != (fidelity.top1_agreement_interval is None):  # a mean's is always finite
        return "a top-1 agreement comes with its interval, and an interval with its top-1 agreement"
    figures = [(fidelity.top1_agreement, fidelity.top1_agreement_interval, 0.0, 100.0),
               (fidelity.snr_db, fidelity.snr_db_interval, -MAX_SNR_DB, MAX_SNR_DB)]  # fmt: skip
    for value, interval, lowest, highest in figures:
        ends = (interval.low, interval.high, interval.confidence) if interval else ()
        if value is not None and not all(math.isfinite(v) for v in (value, *ends)):
            return "a figure or its interval is not a finite number"
        if value is not None and not lowest <= value <= highest:
            return f"{value!r} is out of its figure's range"
        if interval and not (lowest <= interval.low <= interval.high <= highest and 0 < interval.confidence < 1):
            return f"the interval {interval.low!r} to {interval.high!r} is not one of its figure"
        if interval and interval.method not in ("BCa", "percentile"):
            return f"the interval's method {interval.method[:20]!r} is not BCa or percentile"
    agreeing = (fidelity.top1_agreement or 0.0) * samples / 100  # samples of the same top-1 class: a whole number
    if abs(round(agreeing) - agreeing) * 100 / max(samples, 1) > 1e-6:  # written rounded to 6 decimals
        return f"a top-1 agreement of {fidelity.top1_agreement!r}% is no whole number of {samples} samples"
    return ""
