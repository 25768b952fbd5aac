"""report.md and the PR comment render as GitHub renders them (cmark-gfm, GitHub's own Markdown engine)."""

from __future__ import annotations

import dataclasses
import html.parser
import re

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options
from factories import model_result, stateful

from gate.findings import Finding, LayerError
from gate.keys import duration
from gate.reporting.cells import _figure
from gate.reporting.compare import Baseline, compare
from gate.reporting.markdown import COMMENT_MARKER, GITHUB_COMMENT_LIMIT, markdown_for_comment, render_markdown
from gate.results import Status, error_result


class _Structure(html.parser.HTMLParser):
    """Tags as GitHub's renderer leaves them: details must nest and close; tables must be tables."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.tables = 0
        self.problems: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("details", "summary", "table"):
            self.open.append(tag)
        self.tables += tag == "table"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("details", "summary", "table"):
            if not self.open or self.open[-1] != tag:
                self.problems.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
            else:
                self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def rendered(markdown: str) -> _Structure:
    # GitHub keeps <details>, <summary>, <b>, <br> and <sub>: render raw HTML, as it does for those tags.
    page = cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)
    structure = _Structure()
    structure.feed(page)
    return structure


def markdown_tables(markdown: str) -> int:
    """Tables in the source: a header row directly followed by a |---| delimiter row."""
    lines = markdown.splitlines()
    return sum(1 for a, b in zip(lines, lines[1:]) if a.startswith("| ") and re.fullmatch(r"\|(---\|)+", b))


def varied_results() -> list:
    failing = model_result("fails", accuracy=80.0, size_bytes=30_000)
    finding = Finding("input_range", "The input 'image' cannot be represented in int8", "feature 3 spans 0 to 0.9 …")
    layer = LayerError("features", "FULLY_CONNECTED", 0.49, "seq/features/MatMul", 11.26, 369.1)
    failing = dataclasses.replace(failing, findings=(finding,), layer_errors=(layer,))
    long_error = error_result("broken", "models/broken/model.keras: " + "a very long reason " * 40 + "\nsecond line")
    hostile = model_result("x|y<b>", overrides={"size.min_reduction": 2.0})
    return [model_result("passes"), failing, long_error, hostile, stateful(model_result("keeps_state"))]


def test_every_table_parses_every_details_closes_and_no_markdown_is_left_raw() -> None:
    results = varied_results()
    baseline = Baseline("main@3f2a1c9", "3f2a1c9" + "0" * 33, {"passes": results[0], "gone": results[0]})
    markdown = render_markdown(results, compare(results, baseline, removed=["gone"]))
    structure = rendered(markdown)
    assert structure.problems == [] and structure.open == []
    assert structure.tables == markdown_tables(markdown) > 5
    text = "".join(structure.text)
    assert "|---" not in text and "**" not in text and "<details" not in text
    # Alerts are GitHub's own step after cmark-gfm: a blockquote whose first line is the marker.
    assert "<blockquote>\n<p>[!IMPORTANT]\n" in cmarkgfm.github_flavored_markdown_to_html(markdown)
    assert "x|y<b>" in text  # a hostile name shows as text, not as a table cell break or a tag


def test_a_long_error_takes_one_line_in_the_summary_and_all_of_it_in_the_details() -> None:
    markdown = render_markdown(varied_results())
    (row,) = [line for line in markdown.splitlines() if line.startswith("| broken |")]
    assert len(row) < 250 and row.endswith(
        "a very long reason a very long reason a very long… (and 1 more problem(s), in the details) |"
    )
    assert markdown.count("a very long reason") > 40


def test_a_failed_models_summary_row_names_its_failed_checks_with_value_and_limit() -> None:
    markdown = render_markdown(varied_results())
    (row,) = [line for line in markdown.splitlines() if line.startswith("| fails |")]
    assert row.endswith("| ❌ FAIL: size.min_reduction 2.67× < 4×; accuracy.max_drop 16 pts > 2 pts |")


@pytest.mark.parametrize(
    ("milliseconds", "text"),
    [
        (0.000841, "0.84 µs"),
        (0.0413, "41 µs"),
        (3.21, "3.2 ms"),
        (12.5, "12 ms"),
        (1500, "1.5 s"),
        (0.9996, "1 ms"),  # rounds up into the next unit
        (0.0, "0 µs"),
    ],
)
def test_latency_reads_in_the_unit_that_suits_it(milliseconds, text) -> None:
    assert duration(milliseconds) == text


def test_large_figures_are_written_out_not_in_exponent_notation() -> None:
    assert (_figure(1000.0, "%"), _figure(2345.7, "%"), _figure(8.991, "×")) == (
        "1000 %",
        "2346 %",
        "8.99×",
    )


def test_a_latency_check_reads_in_microseconds_where_it_was_microseconds() -> None:
    markdown = render_markdown([model_result(p50_ms=0.000591)])
    (row,) = [line for line in markdown.splitlines() if line.startswith("| `latency.max_p50_ms` |")]
    assert row.startswith("| `latency.max_p50_ms` | 5 ms | 0.59 µs | ✅ PASS | p50 0.59 µs at batch 1, 1 thread(s)")
    assert "(budget ≤ 5 ms)" in row


def test_a_comment_for_200_models_fits_githubs_limit_and_renders() -> None:
    results = [model_result(f"model_{i:03d}", accuracy=80.0 if i % 7 == 0 else 95.0) for i in range(200)]
    full = render_markdown(results)
    assert len(full) > GITHUB_COMMENT_LIMIT
    comment = markdown_for_comment(results)
    assert len(comment) <= GITHUB_COMMENT_LIMIT
    assert comment.startswith(COMMENT_MARKER + "\n## ❌ gate: 29 of 200 models failed, 171 passed")
    assert all(f"| model_{i:03d} |" in comment for i in range(200))  # the summary keeps every model
    assert "left out to fit a GitHub comment: see `report.md` in the workflow artifact `gate-report`" in comment
    kept = re.findall(r"<summary><b>(model_\d+)</b>", comment)
    assert kept and all(int(name[6:]) % 7 == 0 for name in kept[: len(kept)])  # failing models keep details first
    structure = rendered(comment)
    assert structure.problems == [] and structure.open == []


def test_an_error_row_points_to_its_log_in_the_workflow_artifact() -> None:
    # That no absolute path reaches a report is tested on a real run (test_gate.py::test_no_path_of_the_runners_...).
    result = error_result("crashed", "models/crashed: the gate's worker died with SIGSEGV during stage 'load'")
    result = dataclasses.replace(result, stage_seconds={"inspect": 0.1, "load": 2.0})
    markdown = render_markdown([result])
    assert "<code>logs/crashed.log</code> in the output folder (the workflow artifact `gate-report` in CI)" in markdown
    assert "/tmp" not in markdown and "/home" not in markdown
    assert result.status is Status.ERROR


def test_a_file_that_keeps_state_is_said_in_its_rows_and_callout_and_in_brief_when_hundreds_no_longer_fit() -> None:
    results = [stateful(model_result(f"model_{index:03d}")) for index in range(400)]
    full = render_markdown(results)
    callout = "> **model_000: the published `int8` file keeps state between invokes.** The app must call interpreter."
    assert full.count("keeps state between invokes.** The app must") == 400 and callout in full
    assert (
        "| State between invokes | — | none | 2 variable tensors; judged as run without a reset before each invoke, "
        "10.56% with one; the app must call interpreter.reset_all_variables() before each inference" in full
    )
    assert "<br>conversion 0.5 s, evaluation 0.3 s, latency 0.1 s |" in full
    comment = markdown_for_comment(results)
    assert len(comment) <= GITHUB_COMMENT_LIMIT
    assert "keeps state between invokes.** The app must" not in comment
    brief = "> **400 model(s) publish a file that keeps state between invokes** (each one's, with what the app must do"
    assert brief in comment and "model_000, model_001, model_002" in comment


def test_a_check_failed_on_its_interval_never_reads_as_a_false_comparison() -> None:
    from gate.reporting.cells import _failed_checks
    from gate.results import CheckResult, Status

    checks = [
        CheckResult("fidelity.min_snr_db", Status.FAIL, 37.22, 35.0, "dB", "SNR 37.22 dB ... judged on ... 33.25"),
        CheckResult("accuracy.max_drop", Status.FAIL, 1.5, 2.0, "pts", "accuracy dropped 1.50 pts ... 2.50"),
        CheckResult("size.min_reduction", Status.FAIL, 3.94, 4.0, "×", "3.94× smaller"),
    ]
    assert _failed_checks(checks) == (
        "fidelity.min_snr_db 37.2 dB, its interval's pessimistic end < 35 dB; accuracy.max_drop 1.5 pts, its "
        "interval's pessimistic end > 2 pts; size.min_reduction 3.94× < 4×"
    )
