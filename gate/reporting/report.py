"""Write a run's reports (report.json, report.md, comment.md, SHA256SUMS), every output atomically.

The Markdown is rendered by gate.reporting.markdown, from `ModelResult`s only.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import os
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gate import __version__
from gate.encoding import dumps
from gate.files import write_atomic
from gate.layout import CHECKSUMS, COMMENT_MD, REPORT_JSON, REPORT_MD
from gate.reporting.compare import Baseline, Comparison, compare
from gate.reporting.markdown import COMMENT_MARKER, fit_comment, render
from gate.results import SCHEMA_VERSION, ModelResult, Status, overall_status


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


def json_schema(annotation: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of `annotation`'s JSON form; dataclasses go into `definitions`.

    Generated from the same type hints that `to_jsonable` follows, so the shipped
    schema cannot drift from the results (tests compare the two).
    """
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [json_schema(option, definitions) for option in typing.get_args(annotation)]}
    if origin is tuple:
        return {"type": "array", "items": json_schema(typing.get_args(annotation)[0], definitions)}
    if origin is dict:
        return {"type": "object", "additionalProperties": json_schema(typing.get_args(annotation)[1], definitions)}
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        name = annotation.__name__
        if name not in definitions:
            definitions[name] = {}  # placeholder: a dataclass may refer to itself
            hints = typing.get_type_hints(annotation)
            fields = dataclasses.fields(annotation)
            definitions[name] = {
                "type": "object",
                "description": (annotation.__doc__ or "").strip().splitlines()[0],
                "properties": {f.name: json_schema(hints[f.name], definitions) for f in fields},
                "required": [f.name for f in fields],
                "additionalProperties": False,
            }
        return {"$ref": f"#/$defs/{name}"}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"enum": [member.value for member in annotation]}
    simple = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string"}
    return {"type": simple[annotation]}


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
            },
            "comparison": {"anyOf": [{"type": "null"}, json_schema(Comparison, definitions)]},
            "models": {"type": "array", "items": model},
        },
        "required": ["schema_version", "gate_version", "status", "source", "comparison", "models"],
        "additionalProperties": False,
        "$defs": dict(sorted(definitions.items())),
    }


if __name__ == "__main__":
    # Regenerate the shipped schema: python -m gate.reporting.report > gate/schema/report.schema.json
    print(dumps(report_schema()), end="")
