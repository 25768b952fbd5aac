"""`gate merge`: one report from the `--out` folders of many `gate check` runs (CI shards).

A shard was written by another process, on another machine, maybe by another
gate version: it is untrusted data. Every shard's report.json is validated
(its schema_version, then every result against the result types), every
artifact a result names must sit at the path gate gives it, with the sha256
and size the result records, and a model may be gated in one shard only. A
shard that fails any of this is refused with one message naming the shard
and the problem, and nothing is merged.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gate.discover import digest
from gate.errors import ConfigError
from gate.layout import REPORT_JSON, artifact_path, clear_outputs, log_path
from gate.results import SCHEMA_VERSION, InvalidResult, ModelResult, error_result, load_result


@dataclass(frozen=True)
class Shard:
    path: Path
    results: tuple[ModelResult, ...]


def read_report(path: Path, *, what: str) -> tuple[dict, tuple[ModelResult, ...]]:
    """A report.json written elsewhere, validated: (its top level, its results); ValueError names the problem."""
    if path.is_symlink() or not path.is_file():
        raise ValueError(f"{path}: no {REPORT_JSON} (a regular file) in this {what}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(document).__name__}")
    version = document.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{path}: schema_version is missing or not a number ({version!r})")
    if version != SCHEMA_VERSION:
        fix = (
            "a newer gate wrote it: use that version here too"
            if version > SCHEMA_VERSION
            else ("an older gate wrote it: gate the models again with this version")
        )
        raise ValueError(f"{path}: schema_version {version}, but this gate reads {SCHEMA_VERSION}; {fix}")
    models = document.get("models")
    if not isinstance(models, list):
        raise ValueError(f"{path}: 'models' is missing or not a list")
    results = []
    for index, model in enumerate(models):
        try:
            results.append(load_result(ModelResult, model))
        except InvalidResult as exc:
            raise ValueError(f"{path}: models[{index}]: {exc}") from None
    return document, tuple(results)


def _check_files(shard: Path, result: ModelResult) -> None:
    """Every file the result refers to is where gate puts it, and each artifact matches its digest."""
    if "/" in result.name or result.name in ("", ".", ".."):
        raise ValueError(f"model name {result.name!r} is not a folder name")
    conversions = [c for c in (result.reference, result.candidate.conversion if result.candidate else None) if c]
    for conversion in conversions:
        artifact = conversion.artifact
        if artifact.path != artifact_path(result.name, conversion.method):
            raise ValueError(
                f"{result.name}: artifact path {artifact.path!r} is not "
                f"{artifact_path(result.name, conversion.method)!r}"
            )
        file = shard / artifact.path
        if file.is_symlink() or not file.is_file():
            raise ValueError(f"{result.name}: artifact {artifact.path} is missing")
        found = digest(file, shard)
        if (found.sha256, found.size_bytes) != (artifact.sha256, artifact.size_bytes):
            raise ValueError(f"{result.name}: {artifact.path} does not match the sha256 its result records")
    for relative in result.kept_files() - {a.path for a in result.artifacts}:
        if (shard / relative).is_symlink() or not (shard / relative).is_file():
            raise ValueError(f"{result.name}: {relative} is missing")


def read_shard(path: Path) -> Shard:
    try:
        _document, results = read_report(path / REPORT_JSON, what="shard")
        for result in results:
            _check_files(path, result)
    except ValueError as exc:
        raise ConfigError(f"gate merge: refusing shard {path}: {exc}") from None
    return Shard(path, results)


def merge_shards(
    shard_dirs: Sequence[Path], *, out_dir: Path, planned: Sequence[str] | None = None
) -> list[ModelResult]:
    """The results of every shard, by model name, their files copied into `out_dir`.

    With `planned` (the model names `gate plan` listed), a planned model no shard holds is an
    ERROR row, and a shard holding a model that was not planned is refused.
    """
    shards = [read_shard(path) for path in shard_dirs]
    owner: dict[str, Path] = {}
    for shard in shards:
        for result in shard.results:
            if result.name in owner:
                raise ConfigError(
                    f"gate merge: refusing shard {shard.path}: model {result.name} was gated in {owner[result.name]} "
                    "too; each model belongs to exactly one shard"
                )
            if planned is not None and result.name not in planned:
                raise ConfigError(f"gate merge: refusing shard {shard.path}: model {result.name} is not in the plan")
            owner[result.name] = shard.path
    clear_outputs(out_dir)
    results = {}
    for shard in shards:
        for result in shard.results:
            files = result.kept_files() | {log_path(result.name)}
            for relative in sorted(files):
                source = shard.path / relative
                if source.is_file() and not source.is_symlink():
                    (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, out_dir / relative)
            results[result.name] = result
    for name in planned or ():
        if name not in results:
            results[name] = error_result(
                name,
                f"no shard holds a result for {name}: its check job failed before uploading one; see that job's log",
            )
    return [results[name] for name in sorted(results)]
