"""The content-addressed result cache: a model is gated again only when something it depends on changed.

The key is a sha256 over every file of the model folder, the effective
policy, the modules its gate.toml allows custom objects from, gate's own code
and the versions of Python and every tool that measures, and, when the policy
judges latency, the machine (CPU model and core count): a latency measured on
another kind of machine is never reused; such a model is gated afresh.

An entry is a folder `<cache>/<key[:2]>/<key>/` holding `entry.json` (the
result, the files it refers to with their sha256, when and where it was
measured, and a digest of itself) and those files. It is written into a
temporary folder and renamed into place, so it is complete or absent. Before
use it is verified: its schema, its own digest, its key, and every file's
sha256. A corrupt, partial or foreign entry is ignored with one warning line
and the model is gated again; it is never trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gate.discover import digest
from gate.environment import gate_source_digest, machine, tool_versions
from gate.judge import LATENCY_CHECKS
from gate.pipeline import Job
from gate.results import FileDigest, InvalidResult, ModelResult, dumps, load_result, to_jsonable

ENTRY = "entry.json"
ENTRY_VERSION = 1
# Job fields that say where to write, not what to compute.
_WHERE_FIELDS = {"folder", "out_dir", "log_path", "result_path"}


@dataclass(frozen=True)
class Entry:
    """What entry.json holds."""

    entry_version: int
    key: str
    model: str
    result: ModelResult
    files: tuple[FileDigest, ...]  # paths inside --out, as the result names them
    digest: str  # sha256 of this entry's canonical JSON without this field


def _sha256_file(path: Path) -> str:
    return digest(path, path.parent).sha256


def regular_files(folder: Path) -> list[Path]:
    """Every regular file under `folder` (hidden ones too; no links), in a stable order."""
    return [path for path in sorted(folder.rglob("*")) if path.is_file() and not path.is_symlink()]


def _folder_files(folder: Path) -> dict[str, str]:
    """Every regular file under the model folder, by relative path, with its sha256."""
    return {path.relative_to(folder).as_posix(): _sha256_file(path) for path in regular_files(folder)}


def _custom_modules(names: tuple[str, ...], root: Path) -> dict[str, dict[str, str]]:
    """The source of every package gate.toml allows custom objects from (imported from the repository root)."""
    modules: dict[str, dict[str, str]] = {}
    for name in names:
        package = name.split(">", 1)[0]
        base = root.joinpath(*package.split("."))
        files = {f"{package}.py": _sha256_file(base.with_suffix(".py"))} if base.with_suffix(".py").is_file() else {}
        if base.is_dir():
            files |= {f"{package}/{rel}": sha for rel, sha in _folder_files(base).items()}
        modules[package] = files
    return modules


def cache_key(job: Job, *, root: Path) -> str:
    """sha256 over everything `job`'s result depends on (see the module docstring)."""
    judges_latency = any(name in job.policy for name in LATENCY_CHECKS)
    parts = {
        "job": {k: v for k, v in to_jsonable(job).items() if k not in _WHERE_FIELDS},
        "files": _folder_files(Path(job.folder)),
        "custom_modules": _custom_modules(job.allow_custom_objects, root),
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

    def _folder(self, key: str) -> Path:
        return self.directory / key[:2] / key

    def load(self, key: str, model: str, out_dir: Path) -> ModelResult | None:
        """The cached result for `key`, its files copied into `out_dir`; None (after a warning) if it cannot be used."""
        folder = self._folder(key)
        if not (folder / ENTRY).is_file():
            return None
        try:
            entry = self._verified(folder, key, model)
        except (OSError, ValueError, InvalidResult) as exc:
            self.warn(f"gate: ignoring cache entry {folder}: {exc}; gating {model} again")
            return None
        for file in entry.files:
            target = out_dir / file.path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / file.path, target)
        assert entry.result.origin is not None
        return dataclasses.replace(entry.result, origin=dataclasses.replace(entry.result.origin, from_cache=True))

    def _verified(self, folder: Path, key: str, model: str) -> Entry:
        raw = json.loads((folder / ENTRY).read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or raw.get("entry_version") != ENTRY_VERSION:
            raise ValueError(f"entry_version is not {ENTRY_VERSION}")
        entry: Entry = load_result(Entry, raw)
        if _entry_digest(raw) != entry.digest:
            raise ValueError("its digest does not match its contents")
        if (entry.key, entry.model, entry.result.name) != (key, model, model):
            raise ValueError(f"it is the entry of {entry.model!r} with key {entry.key[:12]}…, not of this model")
        if entry.result.origin is None or entry.result.origin.cache_key != key:
            raise ValueError("its result carries another key")
        expected = {f.path for f in entry.files}
        if expected != entry.result.kept_files():
            raise ValueError("its files are not the ones its result refers to")
        for file in entry.files:
            path = folder / file.path
            if not path.is_file() or path.is_symlink() or _sha256_file(path) != file.sha256:
                raise ValueError(f"{file.path} is missing or does not match its sha256")
        return entry

    def store(self, key: str, result: ModelResult, out_dir: Path) -> None:
        """Keep `result` and its files under `key`; a failure to write is a warning, never a failed run."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".entry-", dir=self.directory))
            try:
                files = []
                for relative in sorted(result.kept_files()):
                    target = staging / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(out_dir / relative, target)
                    files.append(FileDigest(relative, target.stat().st_size, _sha256_file(target)))
                entry = {"entry_version": ENTRY_VERSION, "key": key, "model": result.name,
                         "result": result.to_json(), "files": to_jsonable(files)}  # fmt: skip
                entry["digest"] = _entry_digest(entry)
                (staging / ENTRY).write_text(dumps(entry), encoding="utf-8")
                folder = self._folder(key)
                folder.parent.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(folder, ignore_errors=True)  # a corrupt entry this run ignored
                os.rename(staging, folder)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        except OSError as exc:
            self.warn(f"gate: could not write the cache entry of {result.name} under {self.directory}: {exc}")

    def entries(self) -> Iterator[tuple[str, str]]:
        """(model name, key) of every entry, for finding results by name (e.g. a base branch's)."""
        for path in sorted(self.directory.glob(f"*/*/{ENTRY}")):
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                yield str(raw["model"]), str(raw["key"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
