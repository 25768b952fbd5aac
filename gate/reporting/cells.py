"""The report's cells and phrases: the Jinja filters its templates call on result fields (`FILTERS`).

Each turns a figure, a check or a change into the text of a table cell or a sentence; Markdown and untrusted
strings go through gate.escape here or in the template's finalize. The comparison's cells are in change_cells.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from gate import escape
from gate.escape import Trusted
from gate.keys import duration, plain
from gate.policy.checks import Context, deciding_samples_note
from gate.policy.fidelity import interval_text
from gate.policy.judge import CHECKS, policy_key, relaxed_policy, worst_output
from gate.results import (
    Agreement,
    Candidate,
    CheckResult,
    Conversion,
    Fidelity,
    Interval,
    ModelResult,
    OnDevice,
    OutputChange,
    OutputScore,
    State,
    Status,
)
from gate.tasks import METRICS, TASKS

STATUS_ICONS = {Status.PASS: "✅", Status.FAIL: "❌", Status.ERROR: "⚠️", Status.SKIP: "➖"}


def _cause(text: str, limit: int = 100) -> str:
    """The first line of an error, short enough for a table cell (the details hold the whole message)."""
    lines = text.splitlines() or [""]
    first = lines[0] if len(lines[0]) <= limit else lines[0][: limit - 1].rsplit(" ", 1)[0] + "…"
    return first + (f" (and {len(lines) - 1} more problem(s), in the details)" if len(lines) > 1 else "")


def _headline(results: Sequence[ModelResult]) -> str:
    """'all 5 models pass', 'the model failed', '1 of 3 models failed, 2 passed': the verdict as a person says it."""
    if len(results) == 1:
        return {Status.PASS: "the model passes", Status.FAIL: "the model failed"}.get(
            results[0].status, "the model could not be gated"
        )
    counts = {status: sum(r.status is status for r in results) for status in Status}
    if counts[Status.PASS] == len(results):
        return f"all {len(results)} models pass" if results else "no model to gate"
    said = {Status.FAIL: "failed", Status.ERROR: "could not be gated", Status.PASS: "passed"}
    parts = [f"{counts[status]} {words}" for status, words in said.items() if counts[status]]
    parts[0] = parts[0].replace(" ", f" of {len(results)} models ", 1)  # "1 of 3 models failed"
    return ", ".join(parts)


def _not_smaller(candidate: Candidate, reference: Conversion | None) -> str:
    """'; not smaller than the 3.3 KiB float32 .tflite' when quantizing made no smaller file than float32 did."""
    if reference is None or candidate.conversion is None:
        return ""
    if candidate.conversion.artifact.size_bytes < reference.artifact.size_bytes:
        return ""
    return f"; not smaller than the {_size(reference.artifact.size_bytes)} float32 .tflite"


def _override_toml(result: ModelResult) -> Trusted:
    """The gate.toml lines that would accept the published candidate's failures for this model.

    Trusted inside its code block: keys are the registry's, and each value one its key's kind parses
    (a number, a flag, a dtype), so nothing in it comes from the pull request.
    """
    candidate, provenance = result.candidate, result.provenance
    assert candidate is not None and provenance is not None and result.evaluation_data is not None
    context = Context(provenance.effective_policy, result.task, result.reference)
    sections: dict[str, list[str]] = {}
    for key, value in relaxed_policy(candidate, context).items():
        section, name = key.split(".", 1)
        line = f"{name} = {_toml_value(value)}"
        if key == "runtime.resets_state":
            line += "  # only if the app calls interpreter.reset_all_variables() before each inference"
        sections.setdefault(section, []).append(line)
    if not sections:
        return Trusted("")
    lines = ['override_reason = "why this model may miss the policy (the report shows it)"']
    for section, entries in sections.items():
        lines += ["", f"[overrides.{section}]", *entries]
    return Trusted("\n".join(lines))


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return plain(value) if isinstance(value, int | float) else json.dumps(value)


def _deciding_samples(result: ModelResult) -> str:
    """The note, once per model, when one or two eval samples decide the published candidate's accuracy verdict."""
    if result.candidate is None or result.evaluation_data is None:
        return ""
    notes = [deciding_samples_note(check, result.evaluation_data.samples) for check in result.candidate.checks]
    return next((note for note in notes if note), "")


def _size(size_bytes: int) -> str:
    return f"{size_bytes / 1024:,.1f} KiB" if size_bytes < 1024 * 1024 else f"{size_bytes / 1024 / 1024:,.2f} MiB"


def _size_change(delta_bytes: int) -> str:
    sign = "+" if delta_bytes > 0 else ("−" if delta_bytes < 0 else "±")
    return sign + _size(abs(delta_bytes))


def _macs(macs: int | None) -> str:
    """'1.23 M', '14,052': a MAC count as the tables show it ('—' when the file could not be read)."""
    if macs is None:
        return "—"
    return f"{macs:,}" if macs < 1_000_000 else f"{macs / 1e6:,.2f} M"


def _bytes_exact(size_bytes: int) -> str:
    """'4,032 B (3.94 KiB)': a device figure a firmware engineer copies, in bytes."""
    return f"{size_bytes:,} B ({size_bytes / 1024:,.2f} KiB)"


# What a device cannot run, as a cell and device.md.j2 show it: gate writes one line of at most 400 characters.
UNSUPPORTED_CHARS = 300


def _device_cell(device: OnDevice) -> str:
    """The candidate table's device figures: 'arena 3.9 KiB, flash 20.1 KiB', 'SRAM 21.7 KiB, 89,900 cycles, ...'."""
    figures = (("arena", device.arena_bytes), ("SRAM", device.sram_bytes), ("flash", device.flash_bytes))
    parts = [f"{label} {_size(value)}" for label, value in figures if value is not None]
    if device.npu_cycles is not None:
        parts.append(f"{device.npu_cycles:,} NPU cycles")
    if device.npu_ops_percent is not None:
        parts.append(f"{device.npu_ops_percent:.1f}% of ops on the NPU")
    if device.agreement and device.agreement.same_prediction is not None:
        parts.append(f"{device.agreement.same_prediction:.2f}% same class as LiteRT")
    if device.unsupported:
        parts.append(f"cannot run it: {escape.capped('; '.join(device.unsupported), UNSUPPORTED_CHARS)}")
    return ", ".join(parts) or "—"


def _agreement_text(agreement: Agreement) -> str:
    said = (
        f"{agreement.differing_samples} of {agreement.samples} samples differ, by at most "
        f"{agreement.max_steps:g} quantization steps"
    )
    if agreement.same_prediction is not None:
        said += f"; the same predicted class on {agreement.same_prediction:.2f}% of them"
    return said


def _metric(value: float, metric: str) -> str:
    return METRICS[metric].show(value)


def _change(value: float, metric: str) -> str:
    sign = "+" if value > 0 else ("−" if value < 0 else "±")
    return f"{sign}{abs(value):.2f}" + (" pts" if METRICS[metric].change_unit == "pts" else "%")


def _interval(interval: Interval | None, metric: str) -> str:
    """'95% CI −4.17 to −1.11 pts' for a metric change's interval; '' when there is none."""
    if interval is None:
        return ""
    unit = METRICS[metric].change_unit
    low, high = (f"{round(v, 2) + 0.0:.2f}".replace("-", "−") for v in (interval.low, interval.high))
    return f"{interval.confidence:.0%} CI {low} to {high} {unit}"


def _fidelity(fidelity: Fidelity | None) -> str:
    """'top-1 99.24% (95% CI 97.98 to 99.75%); SNR 40.85 dB (95% CI 40.17 to 41.47 dB)', or 'identical outputs'."""
    if fidelity is None:
        return "—"
    if fidelity.identical:
        return "identical outputs"
    parts = []
    for label, value, interval, unit in (
        ("top-1", fidelity.top1_agreement, fidelity.top1_agreement_interval, "%"),
        ("SNR", fidelity.snr_db, fidelity.snr_db_interval, " dB"),
    ):
        if value is None:
            continue
        parts.append(f"{label} {value:.2f}{unit}{interval_text(interval, unit)}")
    return "; ".join(parts)


def _worst_output(result: ModelResult) -> str:
    """' (radius: the worst of 2 outputs)': whose figures a model with several outputs shows in one row; ''."""
    candidate, at = result.candidate, _worst_at(result)
    if candidate is None or at is None:
        return ""
    return f" ({candidate.per_output[at].output}: the worst of {len(candidate.per_output)} outputs)"


def _published_fidelity(result: ModelResult) -> Fidelity | None:
    """The published file's fidelity figures (the summary row's under the task fidelity): a model with several
    outputs has them per output, and the row shows its worst output's."""
    candidate, at = result.candidate, _worst_at(result)
    if candidate is None or candidate.conversion is None:
        return None
    return candidate.conversion.fidelity if at is None else candidate.conversion.per_output[at].fidelity


def _interval_runtime(result: ModelResult) -> str:
    """Where a custom metric's interval comes from when the device judged is not LiteRT ("" when from its figures).

    The exact bootstrap (gate.measurement.custom) calls the function on resamples of the outputs, and gate has those
    of the file from LiteRT only: on tflm, whose figure is judged, the interval is of LiteRT's outputs of the file."""
    from gate.tasks.custom import CustomTask, is_mean_of_scores

    candidate = result.candidate
    conversion = candidate.conversion if candidate else None
    device = conversion.device if conversion else None
    if not (candidate and conversion and device and device.agreement and candidate.metric_change_interval):
        return ""
    if not isinstance(TASKS.get(result.task), CustomTask) or result.float_evaluation is None:
        return ""
    if is_mean_of_scores(result.float_evaluation) and is_mean_of_scores(conversion.evaluation):
        return ""  # its scores were resampled, the device's own
    return (
        f"The {_metric_name(result)} change's interval is of LiteRT's outputs of this file, not "
        f"{device.target}'s: the exact bootstrap of a custom metric calls it on resamples of the outputs, "
        "and gate runs the file once more in LiteRT for them (the agreement above says how far the two differ)"
    )


def _worst_at(result: ModelResult) -> int | None:
    """Which output of a model with several the published candidate is judged by; None for one output."""
    candidate = result.candidate
    if candidate is None or not candidate.per_output or result.provenance is None:
        return None
    return worst_output(candidate.per_output, result.provenance.effective_policy)


def _outputs_of(result: ModelResult, candidate: Candidate) -> list[tuple[OutputScore, OutputScore, OutputScore,
                                                                          OutputChange]]:  # fmt: skip
    """Each output's figures on the float model, the float32 .tflite and the candidate, with its change."""
    if candidate.conversion is None or result.reference is None:
        return []
    sides = (result.float_per_output, result.reference.per_output, candidate.conversion.per_output)
    return list(zip(*sides, candidate.per_output, strict=True))


def _steps(step_seconds: dict[str, float]) -> str:
    """What a candidate's time went to: 'conversion 30.1 s, evaluation 2.0 s, latency 3.9 s'."""
    return ", ".join(f"{step} {seconds:.1f} s" for step, seconds in step_seconds.items())


def _state_text(state: State) -> str:
    """A stateful file's two figures and what the app must do, for a table cell."""
    judged, other = ("with", "without") if state.app_resets else ("without", "with")
    other_figure = _metric(state.other_evaluation.value, state.other_evaluation.metric)
    return (
        f"{state.variable_tensors} variable tensors; judged as run {judged} a reset before each invoke"
        f"{' (runtime.resets_state = true)' if state.app_resets else ''}, {other_figure} {other} one; the app must "
        f"{state.app_must}"
    )


def _shape(shape: Sequence[int]) -> Trusted:
    """A tensor's shape as a list, [-1, 30]: whole numbers only, so it needs no escaping."""
    return Trusted("[" + ", ".join(str(int(dimension)) for dimension in shape) + "]")


def _mermaid_label(text: str) -> str:
    return '"' + "".join(ch for ch in text if ch.isalnum() or ch in "-_.") + '"'


def _duration_change(milliseconds: float) -> str:
    sign = "+" if milliseconds > 0 else ("−" if milliseconds < 0 else "±")
    return sign + duration(abs(milliseconds))


def _number(value: object) -> str:
    if isinstance(value, tuple | list):  # as in TOML: ["int8", "int16x8"]
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "—"}[value]
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _figure(value: object, unit: str) -> str:
    """A measured value or threshold with its unit, as a reviewer reads it: 3.99×, 3.1 pts, 41 µs."""
    if unit == "ms" and isinstance(value, int | float) and not isinstance(value, bool):
        return duration(float(value))
    if isinstance(value, float):
        text = f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"  # 1000 %, not 1e+03 %
    else:
        text = _number(value)
    return f"{text}{'' if unit in ('', '×') else ' '}{unit}"


def _failed_checks(checks: Sequence[CheckResult]) -> Trusted:
    """`size.min_reduction 3.99× < 4×; …`: why a model failed, in its summary row."""
    relation = {"min": "<", "max": ">", "equal": "≠"}  # each followed by a space: never an HTML tag
    return Trusted(
        "; ".join(
            f"{escape.markdown(c.name)} {escape.markdown(_figure(c.measured, c.unit))}{_judged_on_its_interval(c)} "
            f"{relation[CHECKS[policy_key(c.name)].bound]} {escape.markdown(_figure(c.limit, c.unit))}"
            for c in checks
            if c.status is Status.FAIL
        )
    )


def _judged_on_its_interval(check: CheckResult) -> str:
    """', its interval's pessimistic end' when the figure meets the limit and the check failed on its interval
    (statistics.decide_on), so that '37.22 dB < 35 dB' is never written; its message says the end's value."""
    measured, limit, bound = check.measured, check.limit, CHECKS[policy_key(check.name)].bound
    if not (isinstance(measured, float | int) and isinstance(limit, float | int)) or bound == "equal":
        return ""
    met = measured >= limit if bound == "min" else measured <= limit
    return ", its interval's pessimistic end" if met else ""


def _metric_name(result: ModelResult) -> str:
    """How the reports name a model's metric: a custom metric by its spec as gate.toml wrote it (escaped, as every
    {{ }} is), a built-in one by its name."""
    if result.provenance and result.provenance.custom_metric:
        return result.provenance.custom_metric
    return result.float_evaluation.metric if result.float_evaluation else "metric"


def _loss_chart(task: str) -> tuple[str, str]:
    """The candidate chart's title and unit: how much worse each candidate is, in the task's own terms."""
    metric = TASKS[task].metric
    said = metric.said[0].upper() + metric.said[1:]
    if metric.change_unit == "pts":
        return f"{said} {'lost' if metric.higher_is_better else 'gained'} (points)", "points"
    return f"{said} {'decrease' if metric.higher_is_better else 'increase'} (%)", "percent"


def _loss(change: float, task: str) -> float:
    return TASKS[task].loss(change)


# The templates' filters, by the name a template calls them.
FILTERS: dict[str, Callable[..., object]] = {
    "cap": escape.capped,
    "code": escape.code,
    "code_span": escape.code_span,
    "cause": _cause,
    "size": _size,
    "size_change": _size_change,
    "metric": _metric,
    "change": _change,
    "number": _number,
    "duration": duration,
    "duration_change": _duration_change,
    "figure": _figure,
    "failed_checks": _failed_checks,
    "metric_name": _metric_name,
    "interval": _interval,
    "fidelity": _fidelity,
    "worst_output": _worst_output,
    "published_fidelity": _published_fidelity,
    "interval_runtime": _interval_runtime,
    "outputs_of": _outputs_of,
    "mermaid_label": _mermaid_label,
    "shape": _shape,
    "steps": _steps,
    "state_text": _state_text,
    "headline": _headline,
    "not_smaller": _not_smaller,
    "override_toml": _override_toml,
    "deciding_samples": _deciding_samples,
    "loss_chart": _loss_chart,
    "loss": _loss,
    "macs": _macs,
    "bytes_exact": _bytes_exact,
    "device_cell": _device_cell,
    "agreement_text": _agreement_text,
}
