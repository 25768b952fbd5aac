"""Render results into report.md and report.json, and write every output atomically.

Reports are rendered from `ModelResult`s only (never from a model or a raw
measurement), so a stored result renders the same report anywhere.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from gate import __version__
from gate.layout import CHECKSUMS, REPORT_JSON, REPORT_MD
from gate.results import SCHEMA_VERSION, ModelResult, Status, dumps, json_schema

# GitHub rejects issue and PR comments longer than this many characters.
GITHUB_COMMENT_LIMIT = 65_536
STATUS_ICONS = {Status.PASS: "✅", Status.FAIL: "❌", Status.ERROR: "⚠️", Status.SKIP: "➖"}


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write `path` so that it is either absent, the old file, or complete.

    A temporary file in the same folder is renamed over the target (os.replace is
    atomic on POSIX), so an interrupted run never leaves a half-written file
    that looks complete. Leftover temporaries start with "." and end in ".tmp".
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = data.encode() if isinstance(data, str) else data
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
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


def report_json(results: Sequence[ModelResult]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "gate_version": __version__,
        "status": overall_status(results).value,
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


def _size(size_bytes: int) -> str:
    return f"{size_bytes / 1024:,.1f} KiB" if size_bytes < 1024 * 1024 else f"{size_bytes / 1024 / 1024:,.2f} MiB"


def _metric(value: float, metric: str) -> str:
    return f"{value:.2f}%" if metric == "accuracy" else f"{value:.4g}"


def _change(value: float, metric: str) -> str:
    sign = "+" if value > 0 else ("−" if value < 0 else "±")
    return f"{sign}{abs(value):.2f} pts" if metric == "accuracy" else f"{sign}{abs(value):.2f}%"


def _ms(value: float) -> str:
    # Three significant figures: a 1 µs MLP and a 40 ms CNN both stay readable.
    return f"{value:.3g} ms"


def _number(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "—"}[value]
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("gate", "templates"),
        undefined=jinja2.StrictUndefined,  # a misspelled field is a bug, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(md=_md, size=_size, metric=_metric, change=_change, number=_number, ms=_ms)
    environment.globals.update(icons=STATUS_ICONS, Status=Status)
    return environment


def render_markdown(results: Sequence[ModelResult], *, details: bool = True) -> str:
    """report.md: the verdict on the first line, a table, then each model's details."""
    return _environment().get_template("report.md.j2").render(
        results=results,
        status=overall_status(results),
        counts={s: sum(r.status is s for r in results) for s in Status},
        details=details,
        gate_version=__version__,
    )


def markdown_for_comment(results: Sequence[ModelResult]) -> str:
    """report.md, fitted under GitHub's comment limit: details are dropped before anything else."""
    text = render_markdown(results)
    if len(text) <= GITHUB_COMMENT_LIMIT:
        return text
    text = render_markdown(results, details=False)
    note = "\n_Truncated to fit a GitHub comment; report.json has every figure._\n"
    return text if len(text) <= GITHUB_COMMENT_LIMIT else text[: GITHUB_COMMENT_LIMIT - len(note)] + note


# ---------------------------------------------------------------- files


def checksums(out_dir: Path, results: Sequence[ModelResult]) -> str:
    """SHA256SUMS in `sha256sum` format for every artifact the results name.

    Hashes are taken from the files on disk (not the results), so `sha256sum -c`
    and the report agree only when the artifacts are really the ones gated.
    """
    paths = sorted({artifact.path for r in results for artifact in r.artifacts})
    lines = [f"{hashlib.sha256((out_dir / p).read_bytes()).hexdigest()}  {p}" for p in paths]
    return "".join(line + "\n" for line in lines)


def write_reports(out_dir: Path, results: Sequence[ModelResult]) -> str:
    """Write report.json, report.md and SHA256SUMS into `out_dir`; return the Markdown."""
    markdown = markdown_for_comment(results)
    write_atomic(out_dir / CHECKSUMS, checksums(out_dir, results))
    write_atomic(out_dir / REPORT_JSON, dumps(report_json(results)))
    write_atomic(out_dir / REPORT_MD, markdown)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        # GitHub's job summary is one file the steps append to.
        with open(summary, "a", encoding="utf-8") as stream:
            stream.write(markdown)
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
            "models": {"type": "array", "items": model},
        },
        "required": ["schema_version", "gate_version", "status", "models"],
        "additionalProperties": False,
        "$defs": dict(sorted(definitions.items())),
    }


if __name__ == "__main__":
    # Regenerate the shipped schema: python -m gate.report > gate/schema/report.schema.json
    print(dumps(report_schema()), end="")
