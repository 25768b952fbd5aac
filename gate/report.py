"""Render results into report.md and report.json, and write every output atomically.

Reports are rendered from `ModelResult`s only (never from a model or a raw
measurement), so a stored result renders the same report anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from gate import __version__
from gate.compare import Baseline, Comparison, ModelChange, compare, latency_change
from gate.judge import CHECKS, Context, deciding_samples_note, relaxed_policy
from gate.keys import duration, plain
from gate.layout import CHECKSUMS, COMMENT_MD, REPORT_JSON, REPORT_MD, log_path
from gate.results import (
    SCHEMA_VERSION,
    Candidate,
    CheckResult,
    Conversion,
    Interval,
    ModelResult,
    State,
    Status,
    dumps,
    json_schema,
)

# GitHub rejects issue and PR comments longer than this many characters.
GITHUB_COMMENT_LIMIT = 65_536
# The hidden first line by which gate finds its own comment on a pull request again.
COMMENT_MARKER = "<!-- gate-report -->"
# The workflow artifact the report job uploads (see .github/workflows/gate.yml).
ARTIFACT_NAME = "gate-report"
OUTPUT_MODE = 0o644  # what every file gate writes gets: owner read-write, everyone else read
STATUS_ICONS = {Status.PASS: "✅", Status.FAIL: "❌", Status.ERROR: "⚠️", Status.SKIP: "➖"}


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write `path` so that it is either absent, the old file, or complete.

    A temporary file in the same folder is renamed over the target (os.replace is
    atomic on POSIX), so an interrupted run never leaves a half-written file
    that looks complete. Leftover temporaries start with "." and end in ".tmp".
    The file is readable by all (0644), like any tool's output: mkstemp makes it 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = data.encode() if isinstance(data, str) else data
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, OUTPUT_MODE)
        with os.fdopen(fd, "wb") as stream:
            stream.write(blob)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def overall_status(results: Sequence[ModelResult]) -> Status:
    """PASS only when every model passed; ERROR outranks FAIL in the headline."""
    statuses = {r.status for r in results}
    if Status.ERROR in statuses:
        return Status.ERROR
    return Status.FAIL if Status.FAIL in statuses else Status.PASS


def source() -> dict[str, str] | None:
    """The commit this run gated, as GitHub Actions names it (GITHUB_SHA, GITHUB_REF_NAME); None elsewhere."""
    commit = os.environ.get("GITHUB_SHA", "")
    return {"commit": commit, "ref": os.environ.get("GITHUB_REF_NAME", "")} if commit else None


def report_json(results: Sequence[ModelResult], comparison: Comparison | None = None) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "gate_version": __version__,
        "status": overall_status(results).value,
        "source": source(),
        "comparison": comparison.to_json() if comparison else None,
        "models": [r.to_json() for r in results],
    }


# ---------------------------------------------------------------- Markdown


def _md(text: object) -> str:
    """Escape untrusted text (model names, messages) for a Markdown table cell in a PR comment.

    Pull requests choose folder names and file contents: HTML, table pipes and
    line breaks must not change the comment's structure.
    """
    escaped = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped = escaped.replace("|", "\\|").replace("`", "'").replace("@", "@\u200b")
    return "<br>".join(escaped.splitlines())


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


def _not_smaller(candidate: Candidate, reference: Conversion) -> str:
    """'; not smaller than the 3.3 KiB float32 .tflite' when quantizing made no smaller file than float32 did."""
    if candidate.conversion is None or candidate.conversion.artifact.size_bytes < reference.artifact.size_bytes:
        return ""
    return f"; not smaller than the {_size(reference.artifact.size_bytes)} float32 .tflite"


def _override_toml(result: ModelResult) -> str:
    """The gate.toml lines that would accept the published candidate's failures for this model."""
    candidate, provenance = result.candidate, result.provenance
    assert candidate is not None and provenance is not None and result.evaluation_data is not None
    context = Context(provenance.effective_policy, result.task, result.reference, result.evaluation_data.samples)
    sections: dict[str, list[str]] = {}
    for key, value in relaxed_policy(candidate, context).items():
        section, name = key.split(".", 1)
        line = f"{name} = {_toml_value(value)}"
        if key == "runtime.resets_state":
            line += "  # only if the app calls interpreter.reset_all_variables() before each inference"
        sections.setdefault(section, []).append(line)
    if not sections:
        return ""
    lines = ['override_reason = "why this model may miss the policy (the report shows it)"']
    for section, entries in sections.items():
        lines += ["", f"[overrides.{section}]", *entries]
    return "\n".join(lines)


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


def _metric(value: float, metric: str) -> str:
    return f"{value:.2f}%" if metric == "accuracy" else f"{value:.4g}"


def _change(value: float, metric: str) -> str:
    sign = "+" if value > 0 else ("−" if value < 0 else "±")
    return f"{sign}{abs(value):.2f} pts" if metric == "accuracy" else f"{sign}{abs(value):.2f}%"


def _interval(interval: Interval | None, metric: str) -> str:
    """'95% CI −4.17 to −1.11 pts' for a metric change's interval; '' when there is none."""
    if interval is None:
        return ""
    unit = "pts" if metric == "accuracy" else "%"
    low, high = (f"{round(v, 2) + 0.0:.2f}".replace("-", "−") for v in (interval.low, interval.high))
    return f"{interval.confidence:.0%} CI {low} to {high} {unit}"


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


def _failed_checks(checks: Sequence[CheckResult]) -> str:
    """`❌ size.min_reduction 3.99× < 4×; …`: why a model failed, in its summary row."""
    relation = {"min": "<", "max": ">", "equal": "≠"}
    return "; ".join(
        f"{c.name} {_figure(c.measured, c.unit)} {relation[CHECKS[c.name].bound]} {_figure(c.limit, c.unit)}"
        for c in checks
        if c.status is Status.FAIL
    )


def _verdict_cell(change: ModelChange) -> str:
    base, head = change.base, change.head
    if head is None:
        return "removed" + (f" (was {STATUS_ICONS[base.status]} {base.status.value})" if base else "")
    now = f"{STATUS_ICONS[head.status]} {head.status.value}"
    return f"new: {now}" if base is None else f"{STATUS_ICONS[base.status]} {base.status.value} → {now}"


def _size_cell(change: ModelChange) -> str:
    base, head = change.base, change.head
    if head is None or head.size_bytes is None:
        return "—"
    if base is None or base.size_bytes is None:
        return _size(head.size_bytes)
    return f"{_size(base.size_bytes)} → {_size(head.size_bytes)} ({_size_change(head.size_bytes - base.size_bytes)})"


def _metric_cell(change: ModelChange, label: str) -> str:
    base, head = change.base, change.head
    if head is None or head.metric_value is None:
        return "—"
    now = f"{head.metric} {_metric(head.metric_value, head.metric)}"
    if base is None or base.metric_value is None or base.metric != head.metric:
        return now
    delta = head.metric_value - base.metric_value
    if head.metric != "accuracy":  # MAE: percent of the base's
        delta = delta / base.metric_value * 100 if base.metric_value else 0.0
    return (
        f"{head.metric} {_metric(base.metric_value, base.metric)} → {_metric(head.metric_value, head.metric)} "
        f"({_change(delta, head.metric)} vs {label})"
    )


def _latency_cell(change: ModelChange) -> str:
    base, head = change.base, change.head
    if head is None or head.p50_ms is None:
        return "—"
    if base is None or base.p50_ms is None:
        return duration(head.p50_ms)
    delta = latency_change(base, head)
    if delta is None:
        why = "" if base.machine == head.machine else ", measured on different CPUs"
        return f"{duration(base.p50_ms)} → {duration(head.p50_ms)} (within noise{why})"
    return f"{duration(base.p50_ms)} → {duration(head.p50_ms)} ({_duration_change(delta)})"


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("gate", "templates"),
        undefined=jinja2.StrictUndefined,  # a misspelled field is a bug, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(
        md=_md, cause=_cause, size=_size, size_change=_size_change, metric=_metric, change=_change,
        number=_number, duration=duration, duration_change=_duration_change, figure=_figure,
        failed_checks=_failed_checks, verdict_cell=_verdict_cell, size_cell=_size_cell, metric_cell=_metric_cell,
        latency_cell=_latency_cell, interval=_interval, mermaid_label=_mermaid_label, steps=_steps,
        state_text=_state_text, headline=_headline, not_smaller=_not_smaller, override_toml=_override_toml,
        deciding_samples=_deciding_samples,
    )  # fmt: skip
    environment.globals.update(icons=STATUS_ICONS, Status=Status, log_path=log_path, artifact=ARTIFACT_NAME)
    return environment


@dataclass(frozen=True)
class Markdown:
    """report.md in parts, so that the comment can drop model details one by one to fit."""

    summary: str
    details: dict[str, str]  # by model name, in report order
    footer: str

    def text(self, keep: Sequence[str] | None = None, note: str = "") -> str:
        kept = [self.details[name] for name in (self.details if keep is None else keep)]
        return self.summary + "".join(kept) + note + self.footer


def render(results: Sequence[ModelResult], comparison: Comparison | None = None) -> Markdown:
    environment = _environment()
    summary = environment.get_template("summary.md.j2").render(
        results=results,
        status=overall_status(results),
        counts={s: sum(r.status is s for r in results) for s in Status},
        comparison=comparison,
    )
    model = environment.get_template("model.md.j2")
    details = {r.name: model.render(r=r) for r in results}
    footer = f"\n<sub>gate {__version__} · report.json carries every figure above with its provenance</sub>\n"
    return Markdown(summary, details, footer)


def render_markdown(results: Sequence[ModelResult], comparison: Comparison | None = None) -> str:
    """report.md: the verdict on the first line, the summary table, then each model's details."""
    return render(results, comparison).text()


def markdown_for_comment(results: Sequence[ModelResult], comparison: Comparison | None = None) -> str:
    """The report fitted under GitHub's comment limit, with the hidden marker that finds the comment again.

    Model details are dropped one by one, passing models first and from the end, until it fits;
    a note then points to the full report.md in the workflow artifact.
    """
    parts = render(results, comparison)
    text = parts.text()
    if len(COMMENT_MARKER) + 1 + len(text) <= GITHUB_COMMENT_LIMIT:
        return f"{COMMENT_MARKER}\n{text}"
    keep = list(parts.details)
    order = [r.name for r in reversed(results) if r.status is Status.PASS]
    order += [r.name for r in reversed(results) if r.status is not Status.PASS]
    for name in order:
        keep.remove(name)
        dropped = len(parts.details) - len(keep)
        note = (
            f"\n_Details of {dropped} model(s) are left out to fit a GitHub comment: see `report.md` in the "
            f"workflow artifact `{ARTIFACT_NAME}` (report.json there has every figure)._\n"
        )
        text = parts.text(keep, note)
        if len(COMMENT_MARKER) + 1 + len(text) <= GITHUB_COMMENT_LIMIT:
            return f"{COMMENT_MARKER}\n{text}"
    # Even the summary table is too long (thousands of models): cut it at a row boundary.
    budget = GITHUB_COMMENT_LIMIT - len(COMMENT_MARKER) - 1 - len(note) - len(parts.footer)
    summary = parts.summary[: parts.summary.rfind("\n", 0, budget) + 1]
    return f"{COMMENT_MARKER}\n{summary}{note}{parts.footer}"


# ---------------------------------------------------------------- files


def checksums(out_dir: Path, results: Sequence[ModelResult]) -> str:
    """SHA256SUMS in `sha256sum` format for every artifact the results name.

    Hashes are taken from the files on disk (not the results), so `sha256sum -c`
    and the report agree only when the artifacts are really the ones gated.
    """
    paths = sorted({artifact.path for r in results for artifact in r.artifacts})
    lines = [f"{hashlib.sha256((out_dir / p).read_bytes()).hexdigest()}  {p}" for p in paths]
    return "".join(line + "\n" for line in lines)


def write_reports(
    out_dir: Path,
    results: Sequence[ModelResult],
    *,
    baseline: Baseline | None = None,
    removed: Sequence[str] = (),
    step_summary: bool = True,
) -> str:
    """Write report.json, report.md, comment.md and SHA256SUMS into `out_dir`; return report.md's text.

    With a `baseline` (the base branch's results), the reports compare each model with it.
    With `step_summary`, the comment's text is also appended to GitHub's job summary when the
    step has one (a shard of a CI matrix passes False: the merged report is summarized once).
    """
    comparison = compare(results, baseline, removed=removed) if baseline else None
    markdown = render_markdown(results, comparison)
    comment = markdown_for_comment(results, comparison)
    write_atomic(out_dir / CHECKSUMS, checksums(out_dir, results))
    write_atomic(out_dir / REPORT_JSON, dumps(report_json(results, comparison)))
    write_atomic(out_dir / REPORT_MD, markdown)
    write_atomic(out_dir / COMMENT_MD, comment)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary and step_summary:
        # GitHub's job summary is one file the steps append to.
        with open(summary, "a", encoding="utf-8") as stream:
            stream.write(comment.removeprefix(COMMENT_MARKER + "\n"))
    return markdown


def report_schema() -> dict[str, Any]:
    """The JSON Schema of report.json, shipped as gate/schema/report.schema.json."""
    definitions: dict[str, Any] = {}
    model = json_schema(ModelResult, definitions)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "gate report.json",
        "type": "object",
        "properties": {
            "schema_version": {"const": SCHEMA_VERSION},
            "gate_version": {"type": "string"},
            "status": json_schema(Status, definitions),
            "source": {
                "anyOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "properties": {"commit": {"type": "string"}, "ref": {"type": "string"}},
                        "required": ["commit", "ref"],
                        "additionalProperties": False,
                    },
                ]
            },  # fmt: skip
            "comparison": {"anyOf": [{"type": "null"}, json_schema(Comparison, definitions)]},
            "models": {"type": "array", "items": model},
        },
        "required": ["schema_version", "gate_version", "status", "source", "comparison", "models"],
        "additionalProperties": False,
        "$defs": dict(sorted(definitions.items())),
    }


if __name__ == "__main__":
    # Regenerate the shipped schema: python -m gate.report > gate/schema/report.schema.json
    print(dumps(report_schema()), end="")
