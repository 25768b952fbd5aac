"""Render results into report.md, and fit it into one pull-request comment.

Reports are rendered from `ModelResult`s only (never from a model or a raw
measurement), so a stored result renders the same report anywhere: `gate
check`, `gate merge` and `gate comment` (which renders the comment itself from
a validated report.json) share this one renderer. Every `{{ }}` in the
templates is escaped by `gate.escape` unless it is `Trusted` Markdown that a
filter (gate.reporting.cells) built from escaped parts, numbers and registry names.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jinja2

from gate import __version__, escape
from gate.layout import benchmark_path, log_path
from gate.quantization.base import RANKING_SAMPLES, REFINED, SCREEN_SAMPLES
from gate.reporting import cells, change_cells
from gate.reporting.compare import Comparison
from gate.results import ModelResult, Status, overall_status

# GitHub rejects issue and PR comments longer than this many characters.
GITHUB_COMMENT_LIMIT = 65_536
# The first line of every comment gate posts: how `gate comment` finds its own comment again.
COMMENT_MARKER = "<!-- gate-report -->"
# The workflow artifact the report job uploads (see .github/workflows/reusable-gate.yml).
ARTIFACT_NAME = "gate-report"
# Where space is scarce (the summary, which the comment always keeps), long untrusted text is capped.
SUMMARY_LIMITS = {"name": 100, "cause": 100, "label": 60, "title": 200, "detail": 1000, "reason": 500}


@functools.cache  # stateless once built: templates are compiled once per process
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("gate.reporting", "templates"),
        undefined=jinja2.StrictUndefined,  # a misspelled field is a bug, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=escape.template_value,  # every {{ }}: escaped, unless Trusted
    )
    environment.filters.update(cells.FILTERS | change_cells.FILTERS)
    environment.globals.update(
        icons=cells.STATUS_ICONS,
        Status=Status,
        log_path=log_path,
        benchmark_path=benchmark_path,
        artifact=ARTIFACT_NAME,
        limits=SUMMARY_LIMITS,
        ranking={"samples": RANKING_SAMPLES, "screen": SCREEN_SAMPLES, "refined": REFINED},
    )
    return environment


@dataclass(frozen=True)
class Markdown:
    """report.md in parts, so that the comment can leave out model details, then rows, to fit.

    `rows` and `comparison_rows` (by model name) are the summary's table rows; `callouts` are the
    IMPORTANT, WARNING and CAUTION boxes, each model's, and `callouts_in_brief` one box per kind naming
    the models, for when each model's no longer fit. The rest of the summary is never left out.
    """

    head: str
    rows: dict[str, str]
    comparison_head: str
    comparison_rows: dict[str, str]
    comparison_tail: str
    callouts: str
    callouts_in_brief: str
    details: dict[str, str]  # by model name, in report order
    footer: str

    def text(
        self, leave_out: frozenset[str] = frozenset(), leave_out_rows: frozenset[str] = frozenset(), brief: bool = False
    ) -> str:
        """The report, without the details of `leave_out` and the summary rows of `leave_out_rows`."""
        rows = "".join(row for name, row in self.rows.items() if name not in leave_out_rows)
        compared = "".join(row for name, row in self.comparison_rows.items() if name not in leave_out_rows)
        details = "".join(text for name, text in self.details.items() if name not in leave_out)
        notes = _left_out_note(len(leave_out), len(leave_out_rows))
        callouts = self.callouts_in_brief if brief else self.callouts
        return "".join(
            (
                self.head,
                rows,
                self.comparison_head,
                compared,
                self.comparison_tail,
                callouts,
                details,
                notes,
                self.footer,
            )
        )


def _left_out_note(details: int, rows: int) -> str:
    if not details and not rows:
        return ""
    rows_note = f" and the summary rows of {rows}" if rows else ""
    return (
        f"\n_Details of {details} model(s){rows_note} are left out to fit a GitHub comment: see `report.md` in the "
        f"workflow artifact `{ARTIFACT_NAME}` (report.json there has every figure)._\n"
    )


def render(results: Sequence[ModelResult], comparison: Comparison | None = None, *, commit: str = "") -> Markdown:
    """The report's parts; `commit` (a full SHA) is named under the verdict as the commit that was gated."""
    environment = _environment()
    status = overall_status(results)
    summary: Any = environment.get_template("summary.md.j2").make_module(  # its macros, as attributes
        {"results": results, "status": status, "comparison": comparison, "commit": commit}
    )
    label = comparison.label if comparison else ""
    model = environment.get_template("model.md.j2")
    return Markdown(
        head=str(summary.head()),
        rows={r.name: str(summary.row(r)) for r in results},
        comparison_head=str(summary.comparison_head()) if comparison else "",
        comparison_rows={c.name: str(summary.comparison_row(c, label)) for c in comparison.changes}
        if comparison
        else {},
        comparison_tail=str(summary.comparison_tail()) if comparison else "",
        callouts="".join(str(summary.callouts(r)) for r in results),
        callouts_in_brief=str(summary.callouts_in_brief()),
        details={r.name: model.render(r=r) for r in results},
        footer=f"\n<sub>gate {__version__} · report.json carries every figure above with its provenance</sub>\n",
    )


def render_markdown(results: Sequence[ModelResult], comparison: Comparison | None = None, *, commit: str = "") -> str:
    """report.md: the verdict on the first line, the summary table, then each model's details."""
    return render(results, comparison, commit=commit).text()


def fit_comment(parts: Markdown, results: Sequence[ModelResult]) -> str:
    """The report fitted under GitHub's comment limit, starting with the marker that finds the comment again.

    Model details are left out one by one, passing models first and from the end, until it fits;
    then, for hundreds of callouts, they are given in brief (one per kind, naming the models); then,
    for thousands of models, the summary rows of passing models and then of the others. The verdict,
    every callout and the rest of the summary always stay. One pass over the models: each part's
    length is counted once, the text is joined once.
    """
    budget = GITHUB_COMMENT_LIMIT - len(COMMENT_MARKER) - 1
    full = parts.text()
    if len(full) <= budget:
        return f"{COMMENT_MARKER}\n{full}"
    order = [r.name for r in reversed(results) if r.status is Status.PASS]
    order += [r.name for r in reversed(results) if r.status is not Status.PASS]
    # Room for the note that says what was left out, at its longest.
    length = len(full) + len(_left_out_note(len(results), len(results)))
    leave_out: set[str] = set()
    for name in order:
        if length <= budget:
            break
        leave_out.add(name)
        length -= len(parts.details[name])
    brief = length > budget and len(parts.callouts_in_brief) < len(parts.callouts)
    if brief:
        length -= len(parts.callouts) - len(parts.callouts_in_brief)
    leave_out_rows: set[str] = set()
    for name in order:
        if length <= budget:
            break
        leave_out_rows.add(name)
        length -= len(parts.rows[name]) + len(parts.comparison_rows.get(name, ""))
    text = parts.text(frozenset(leave_out), frozenset(leave_out_rows), brief)
    if len(text) > budget:  # a comparison of thousands of removed models: GitHub would refuse the comment whole
        note = _left_out_note(len(leave_out), len(leave_out_rows)) + parts.footer
        text = text[: text.rfind("\n", 0, budget - len(note)) + 1] + note
    return f"{COMMENT_MARKER}\n{text}"


def markdown_for_comment(
    results: Sequence[ModelResult], comparison: Comparison | None = None, *, commit: str = ""
) -> str:
    """comment.md: the report fitted into one GitHub comment (see `fit_comment`)."""
    return fit_comment(render(results, comparison, commit=commit), results)
