"""The content-addressed result cache: a model is gated again only when something it depends on changed.

The key is a sha256 over every file of the model folder, the effective
policy, the code its gate.toml allows custom objects from (and its custom metric's module), gate's own code and
the versions of Python and every tool that measures, and, when the policy
judges latency, the machine (CPU model and core count): a latency measured on
another kind of machine is never reused; such a model is gated afresh.

An entry is a folder `<cache>/<key[:2]>/<key>/` holding `entry.json` (the
result, the files it refers to with their sha256, when and where it was
measured, and a digest of itself) and those files: the artifacts, the latency
benchmark and the model's log. It is written into a temporary folder and
renamed into place, so it is complete or absent. Before use it is read like
anything written elsewhere (gate.readback: bounded, no link followed), and
verified: its schema, its own digest, its key, its result (gate.reporting.verify: names,
paths and verdict), and every file's sha256 as it is copied out, at the paths
gate's layout gives them. A corrupt, partial or foreign entry is ignored with
one warning line and the model is gated again.

What the cache trusts is its folder: the digests find damage, not forgery,
since whoever can write the folder can recompute them (they are not keyed with
a secret). So the default folder is outside any work tree
(`$XDG_CACHE_HOME/gate`, else `~/.cache/gate`), where a commit cannot put an
entry, and gate refuses a cache folder inside a git work tree unless told
(`--cache-in-work-tree`). Code gate runs as the same user (an allowed custom
layer) can write it too: see the security model (docs/security.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gate.discover import custom_object_sources, digest
from gate.encoding import InvalidResult, dumps, load_result, to_jsonable
from gate.environment import gate_source_digest, machine, tool_versions
from gate.gating.pipeline import Job
from gate.layout import log_path
from gate.policy.judge import LATENCY_CHECKS
from gate.readback import Missing, Refused, copy_inside, read_json
from gate.reporting.verify import check_result
from gate.results import FileDigest, ModelResult
from gate.tasks.custom import metric_sources

ENTRY = "entry.json"
ENTRY_VERSION = 2  # 2: the model's log is kept with the entry
MAX_ENTRY_BYTES = 64 * 1024 * 1024
MAX_LOG_BYTES = 4 * 1024 * 1024  # the end of a log is what explains a crash
# Job fields that say where to write, not what to compute.
_WHERE_FIELDS = {"folder", "out_dir", "log_path", "result_path"}


@dataclass(frozen=True)
class Entry:
    """What entry.json holds."""

    entry_version: int
    key: str
    model: str
    result: ModelResult
    files: tuple[FileDigest, ...]  # paths inside --out, as gate's layout names them
    digest: str  # sha256 of this entry's canonical JSON without this field


def default_directory(environ: Mapping[str, str] = os.environ) -> Path:
    """`$XDG_CACHE_HOME/gate`, else `~/.cache/gate` (a relative XDG_CACHE_HOME is ignored, as the spec says)."""
    base = environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "gate"


def work_tree(path: Path) -> Path | None:
    """The git work tree `path` lies in (the nearest folder with a `.git` on the way up), or None."""
    real = Path(os.path.realpath(path))
    return next((folder for folder in (real, *real.parents) if (folder / ".git").exists()), None)


def _sha256_file(path: Path) -> str:
    return digest(path, path.parent).sha256


def regular_files(folder: Path) -> list[Path]:
    """Every regular file under `folder` (hidden ones too; no links, no __pycache__), in a stable order."""
    return [
        path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink() and "__pycache__" not in path.relative_to(folder).parts
    ]


def _folder_files(folder: Path) -> dict[str, str]:
    """Every regular file under the folder, by relative path, with its sha256."""
    return {path.relative_to(folder).as_posix(): _sha256_file(path) for path in regular_files(folder)}


def _custom_code(names: tuple[str, ...], root: Path, metric: str = "") -> dict[str, dict[str, str]]:
    """The source of the code each allowed custom object's import, and the custom metric's, runs, from the root."""
    code: dict[str, dict[str, str]] = {}
    sources = [source for name in names for source in custom_object_sources(name)]
    for source in [*sources, *(metric_sources(metric) if metric else ())]:
        path = root / source
        if path.is_file() and not path.is_symlink():
            code[source] = {"": _sha256_file(path)}
        elif path.is_dir() and not path.is_symlink():
            code[source] = _folder_files(path)
    return code


def cache_key(job: Job, *, root: Path) -> str:
    """sha256 over everything `job`'s result depends on (see the module docstring)."""
    judges_latency = any(name in job.policy for name in LATENCY_CHECKS)
    parts = {
        "job": {k: v for k, v in to_jsonable(job).items() if k not in _WHERE_FIELDS},
        "files": _folder_files(Path(job.folder)),
        "custom_code": _custom_code(job.allow_custom_objects, root, job.metric),
        "tools": tool_versions(),
        "gate_source": gate_source_digest(),
        "machine": machine() if judges_latency else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _entry_digest(entry: dict) -> str:
    return hashlib.sha256(dumps({k: v for k, v in entry.items() if k != "digest"}).encode()).hexdigest()


class Cache:
    """Result cache rooted at `directory`; `warn` receives one line per entry that cannot be trusted."""

    def __init__(self, directory: Path, warn: Callable[[str], None]) -> None:
        self.directory = directory
        self.warn = warn

    @staticmethod
    def _entry(key: str) -> str:
        """An entry's folder inside the cache, from the key gate computed (64 hex digits), never from data."""
        return f"{key[:2]}/{key}"

    def load(self, key: str, model: str, out_dir: Path) -> ModelResult | None:
        """The cached result for `key`, its files copied into `out_dir`; None (after a warning) if it cannot be used."""
        folder = self._entry(key)
        copied: list[Path] = []
        try:
            entry = self._verified(read_json(self.directory, f"{folder}/{ENTRY}", limit=MAX_ENTRY_BYTES), key, model)
            for file in entry.files:
                copied.append(out_dir / file.path)
                copy_inside(self.directory, f"{folder}/{file.path}", out_dir / file.path, expected=file)
        except Missing:
            return None
        except (Refused, InvalidResult, ValueError) as exc:
            for path in copied:  # a model gated again must not find a cached file beside its own
                path.unlink(missing_ok=True)
            self.warn(f"gate: ignoring cache entry {self.directory / folder}: {exc}; gating {model} again")
            return None
        assert entry.result.origin is not None
        return dataclasses.replace(entry.result, origin=dataclasses.replace(entry.result.origin, from_cache=True))

    def _verified(self, raw: object, key: str, model: str) -> Entry:
        if not isinstance(raw, dict) or raw.get("entry_version") != ENTRY_VERSION:
            raise ValueError(f"entry_version is not {ENTRY_VERSION}")
        entry: Entry = load_result(Entry, raw)
        if _entry_digest(raw) != entry.digest:
            raise ValueError("its digest does not match its contents")
        if (entry.key, entry.model, entry.result.name) != (key, model, model):
            raise ValueError(f"it is the entry of {entry.model[:80]!r} with key {entry.key[:12]}…, not of this model")
        if entry.result.origin is None or entry.result.origin.cache_key != key:
            raise ValueError("its result carries another key")
        check_result(entry.result)
        paths = {f.path for f in entry.files}
        kept = entry.result.kept_files()
        if not kept <= paths <= kept | {log_path(model)} or len(paths) != len(entry.files):
            raise ValueError("its files are not the ones its result refers to")
        return entry

    def store(self, key: str, result: ModelResult, out_dir: Path) -> None:
        """Keep `result`, its files and its log under `key`; a failure to write is a warning, never a failed run."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".entry-", dir=self.directory))
            try:
                artifacts = {a.path: a for a in result.artifacts}
                files = [
                    copy_inside(out_dir, relative, staging / relative, expected=artifacts.get(relative))
                    for relative in sorted(result.kept_files())
                ]
                try:  # a worker with allowed custom code wrote the log: copied bounded, never through a link
                    files.append(
                        copy_inside(
                            out_dir,
                            log_path(result.name),
                            staging / log_path(result.name),
                            limit=MAX_LOG_BYTES,
                            tail=True,
                        )
                    )
                except Missing:
                    pass
                entry = {
                    "entry_version": ENTRY_VERSION,
                    "key": key,
                    "model": result.name,
                    "result": result.to_json(),
                    "files": to_jsonable(files),
                }
                entry["digest"] = _entry_digest(entry)
                (staging / ENTRY).write_text(dumps(entry), encoding="utf-8")
                folder = self.directory / self._entry(key)
                folder.parent.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(folder, ignore_errors=True)  # a corrupt entry this run ignored
                os.rename(staging, folder)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        except (OSError, Refused) as exc:
            self.warn(f"gate: could not write the cache entry of {result.name} under {self.directory}: {exc}")
