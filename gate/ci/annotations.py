"""GitHub Actions annotations: one `::error` line per failed check, pointing at the model's gate.toml.

GitHub shows at most 10 error annotations per step, so the tenth line sums up
the rest. Names and messages come from the pull request: they are made safe
for the runner's log first (gate.escape.terminal: control characters shown
escaped, no `##[`), then escaped as the runner's workflow-command parser
expects (`%`, CR and LF; in properties also `:` and `,`).
"""

from __future__ import annotations

from collections.abc import Sequence

from gate.discover import MANIFEST, MODEL_FILES
from gate.escape import capped, terminal
from gate.reporting.markdown import SUMMARY_LIMITS as LIMITS
from gate.results import ModelResult, Status

MAX_SHOWN = 10


def _escape_data(text: str) -> str:
    return terminal(text, lines=True).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _file(result: ModelResult, models_dir: str) -> str:
    """The file a reviewer would change: the model's gate.toml, else its model file, else its folder."""
    inputs = [f.path for f in result.provenance.inputs] if result.provenance else []
    if MANIFEST in inputs:
        return f"{models_dir}/{result.name}/{MANIFEST}"
    model = next((path.split("/")[0] for path in inputs if path.split("/")[0] in MODEL_FILES), "")
    return f"{models_dir}/{result.name}/{model}".rstrip("/")


def error_annotations(results: Sequence[ModelResult], *, models_dir: str = "models") -> list[str]:
    """The `::error` lines for every failed check and every model that could not be gated."""
    problems: list[tuple[str, str, str]] = []  # (file, title, message)
    for result in results:
        if result.status is Status.ERROR:
            problems.append((_file(result, models_dir), f"gate: {result.name} could not be gated", result.error))
        elif result.status is Status.FAIL and result.candidate:
            for check in result.candidate.checks:
                if check.status is Status.FAIL:
                    title = f"gate: {result.name} failed {check.name}"
                    problems.append((_file(result, models_dir), title, check.message))
    lines = [
        f"::error file={_escape_property(file)},title={_escape_property(capped(title, LIMITS['title']))}::"
        f"{_escape_data(capped(message, LIMITS['detail']))}"
        for file, title, message in problems
    ]
    if len(lines) > MAX_SHOWN:
        rest = len(lines) - (MAX_SHOWN - 1)
        lines = [*lines[: MAX_SHOWN - 1], f"::error title=gate::{rest} more failed checks; see the gate report"]
    return lines
