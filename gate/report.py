"""Write a run's reports (report.json, report.md, comment.md, SHA256SUMS), every output atomically.

The Markdown is rendered by gate.markdown, from `ModelResult`s only.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gate import __version__
from gate.compare import Baseline, Comparison, compare
from gate.layout import CHECKSUMS, COMMENT_MD, REPORT_JSON, REPORT_MD
from gate.markdown import COMMENT_MARKER, fit_comment, render
from gate.readback import OUTPUT_MODE
from gate.results import SCHEMA_VERSION, ModelResult, Status, dumps, json_schema, overall_status


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
    planned_base: str = "",
    commit: str = "",
    step_summary: bool = True,
) -> Comparison | None:
    """Write report.json, report.md, comment.md and SHA256SUMS into `out_dir`; return the comparison made.

    With a `baseline` (the base branch's results), the reports compare each model with it, and say so when
    it is not the report of `planned_base` (the commit gate plan compared with). `commit` is the commit that
    was gated, named under the verdict. With `step_summary`, the comment's text is also appended to GitHub's
    job summary when the step has one (a shard of a CI matrix passes False: the merged report is summarized
    once).
    """
    comparison = compare(results, baseline, removed=removed, planned_base=planned_base) if baseline else None
    parts = render(results, comparison, commit=commit)
    comment = fit_comment(parts, results)
    write_atomic(out_dir / CHECKSUMS, checksums(out_dir, results))
    write_atomic(out_dir / REPORT_JSON, dumps(report_json(results, comparison)))
    write_atomic(out_dir / REPORT_MD, parts.text())
    write_atomic(out_dir / COMMENT_MD, comment)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary and step_summary:
        # GitHub's job summary is one file the steps append to.
        with open(summary, "a", encoding="utf-8") as stream:
            stream.write(comment.removeprefix(COMMENT_MARKER + "\n"))
    return comparison


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
