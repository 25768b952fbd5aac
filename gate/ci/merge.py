"""`gate merge`: one report from the `--out` folders of many `gate check` runs (CI shards).

A shard was written by another process, on another machine, maybe by another
gate version: it is untrusted data. Every shard's report.json is read bounded
(gate.readback), validated against the result types and its schema_version,
and every result checked and re-judged (gate.reporting.verify); every file a result
names is opened at the path gate's layout gives it, without following a link,
and each artifact must have the sha256 and size the result records; a model
may be gated in one shard only. A shard that fails any of this is refused with
one message naming the shard and the problem, and nothing is merged. Logs and
benchmarks, which no result digests, are copied bounded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gate.errors import ConfigError
from gate.layout import clear_outputs, log_path, name_problem
from gate.readback import Missing, Refused, copy_inside, digest_inside, open_inside, read_json
from gate.reporting.verify import read_report
from gate.results import ModelResult, error_result

_SHA = re.compile(r"[0-9a-f]{40}")
MAX_LOG_BYTES = 4 * 1024 * 1024  # the end of a log is what explains a failure
MAX_BENCHMARK_BYTES = 64 * 1024 * 1024  # pytest-benchmark's JSON with every round's timing


@dataclass(frozen=True)
class Shard:
    path: Path
    results: tuple[ModelResult, ...]


def _check_files(shard: Path, result: ModelResult) -> None:
    """Every file the result names is where gate puts it, a regular file; each artifact has its size and sha256."""
    for artifact in result.artifacts:  # at the paths of the layout: check_result made sure
        found = digest_inside(shard, artifact.path)
        if (found.size_bytes, found.sha256) != (artifact.size_bytes, artifact.sha256):
            raise Refused(f"{artifact.path}: does not match the sha256 and size its result records")
    for relative in result.kept_files() - {a.path for a in result.artifacts}:  # the latency benchmark
        os.close(open_inside(shard, relative))


def read_shard(path: Path, *, command: str = "gate merge", what: str = "shard") -> Shard:
    """The shard (a `gate check --out` folder) at `path`, every result checked and every artifact's digest."""
    try:
        report = read_report(path)
        for result in report.models:
            try:
                _check_files(path, result)
            except Refused as exc:
                raise ValueError(f"{result.name}: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{command}: refusing {what} {path}: {exc}") from None
    return Shard(path, report.models)


def read_plan(path: Path) -> tuple[list[str], list[str], str]:
    """The plan `gate plan --save` wrote: (the planned model names, the removed ones, the base it compared with)."""
    try:
        plan = read_json(path.parent, path.name, limit=64 * 1024 * 1024)
        if not isinstance(plan, dict):
            raise Refused("expected a JSON object")
        models, removed, base = plan.get("models"), plan.get("removed"), plan.get("base", "")
        for key, names in (("models", models), ("removed", removed)):
            if not isinstance(names, list) or not all(isinstance(n, str) and not name_problem(n) for n in names):
                raise Refused(f"{key}: expected a list of model folder names")
        if not (base == "" or isinstance(base, str) and _SHA.fullmatch(base)):
            raise Refused("base: expected the full SHA of the commit gate plan compared with, or nothing")
    except Refused as exc:
        raise ConfigError(f"{path}: not a plan written by gate plan --save ({exc})") from None
    return models, removed, base  # type: ignore[return-value]


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
            try:
                _copy_files(shard.path, result, out_dir)
            except Refused as exc:
                raise ConfigError(f"gate merge: refusing shard {shard.path}: {result.name}: {exc}") from None
            results[result.name] = result
    for name in planned or ():
        if name not in results:
            results[name] = error_result(
                name,
                f"no shard holds a result for {name}: its check job failed before uploading one; see that job's log",
            )
    return [results[name] for name in sorted(results)]


def _copy_files(shard: Path, result: ModelResult, out_dir: Path) -> None:
    """The result's artifacts (verified again as they are copied), its benchmark and its log (bounded, if any)."""
    for artifact in result.artifacts:
        copy_inside(shard, artifact.path, out_dir / artifact.path, expected=artifact)
    for relative in result.kept_files() - {a.path for a in result.artifacts}:
        copy_inside(shard, relative, out_dir / relative, limit=MAX_BENCHMARK_BYTES)
    if not name_problem(result.name):  # the ERROR row of files beside the model folders has no log
        try:
            copy_inside(shard, log_path(result.name), out_dir / log_path(result.name), limit=MAX_LOG_BYTES, tail=True)
        except Missing:
            pass
