"""`gate plan`: which models a change between two commits can have affected.

Read from git alone (the trees of both commits; nothing is checked out or
run), so it works on any clone with both commits. A model is planned when a
file of its folder changed, when its effective policy file changed (its
policy, or policies/default.toml for a model that names none), when a module
its gate.toml allows custom objects from changed, or, for every model, when
gate itself, its dependency pins or the workflows changed.
"""

from __future__ import annotations

import fnmatch
import heapq
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from gate.discover import FOLDER_MARKERS, custom_object_sources
from gate.errors import ConfigError
from gate.policy.config import DEFAULT_POLICY
from gate.tasks.custom import metric_sources, spec_problem

# GitHub runs at most 256 jobs per matrix.
MAX_MATRIX_JOBS = 256
# A change to any of these can change every model's result: gate's code, what `pip install .` reads (the
# dependency pins; setuptools also runs a setup.py and reads a setup.cfg), and the workflows that run it.
# docs/security.md's CODEOWNERS example protects the same files (tests/test_workflows.py keeps them equal).
GATE_ITSELF = (
    "gate/*",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "requirements*.txt",
    "constraints*.txt",
    ".github/workflows/*",
)


@dataclass(frozen=True)
class PlannedModel:
    name: str
    path: str  # models/<name>
    size_bytes: int  # of its files at head, to balance shards
    reason: str  # why it is planned, for `--format names` and the log


@dataclass(frozen=True)
class Plan:
    models: tuple[PlannedModel, ...]
    removed: tuple[str, ...]  # model folders that exist at base but not at head
    base: str
    head: str

    def matrix(self, max_jobs: int = MAX_MATRIX_JOBS) -> dict[str, list[dict[str, Any]]]:
        """A GitHub Actions matrix: one entry per model, or at most `max_jobs` shards balanced by size."""
        if len(self.models) <= max_jobs:
            return {"include": [{"model": m.name, "path": m.path} for m in self.models]}
        # Longest processing time first: each model goes to the lightest shard so far.
        shards: list[tuple[int, int, list[PlannedModel]]] = [(0, index, []) for index in range(max_jobs)]
        for model in sorted(self.models, key=lambda m: (-m.size_bytes, m.name)):
            size, index, members = heapq.heappop(shards)
            members.append(model)
            heapq.heappush(shards, (size + model.size_bytes, index, members))
        width = len(str(max_jobs))
        entries = []
        for _size, index, members in sorted(shards, key=lambda shard: shard[1]):
            members.sort(key=lambda m: m.name)
            entries.append({"model": f"shard-{index + 1:0{width}d}", "paths": [m.path for m in members]})
        return {"include": entries}

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "head": self.head,
            "include": self.matrix()["include"],
            "models": [m.name for m in self.models],
            "removed": list(self.removed),
        }


def _git(*args: str, cwd: str) -> str:
    """git's stdout; CalledProcessError when it fails."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def _commit(ref: str, *, cwd: str) -> str:
    """The full SHA of `ref`, or ConfigError saying what to fetch."""
    try:
        return _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=cwd).strip()
    except subprocess.CalledProcessError:
        pass
    try:
        shallow = _git("rev-parse", "--is-shallow-repository", cwd=cwd).strip() == "true"
    except subprocess.CalledProcessError:
        raise ConfigError(f"{cwd}: not a git repository; run gate plan inside the repository's clone") from None
    hint = (
        "this is a shallow clone that lacks it: check out with actions/checkout's fetch-depth: 0, "
        f"or run git fetch origin {ref}"
        if shallow
        else f"fetch it (git fetch origin {ref}) or check the name"
    )
    raise ConfigError(f"gate plan: unknown commit {ref!r}: {hint}")


def _tree(commit: str, path: str, *, cwd: str) -> dict[str, tuple[str, int]]:
    """Files under `path` at `commit`: relative path -> (blob sha, size)."""
    listing = _git("ls-tree", "-r", "-z", "--long", "--full-tree", commit, "--", path, cwd=cwd)
    files = {}
    for entry in filter(None, listing.split("\0")):
        meta, name = entry.split("\t", 1)
        _mode, kind, sha, size = meta.split()
        if kind == "blob":  # --long gives a blob's size; "-" only for trees and submodules
            files[name] = (sha, int(size))
    return files


def _model_names(files: dict[str, tuple[str, int]], models_dir: str) -> set[str]:
    names = set()
    for name in files:
        parts = PurePosixPath(name).relative_to(models_dir).parts
        if len(parts) > 1 and not parts[0].startswith("."):
            names.add(parts[0])
    return names


def _manifest(commit: str, path: str, *, cwd: str) -> dict[str, object]:
    """A model's gate.toml at `commit`, or {} when it is missing or broken (gate check reports that)."""
    try:
        return tomllib.loads(_git("show", f"{commit}:{path}", cwd=cwd))
    except (subprocess.CalledProcessError, tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError):
        return {}  # RecursionError: tables nested thousands deep


def plan_changes(
    *,
    base: str | None,
    head: str = "HEAD",
    everything: bool = False,
    repo: str = ".",
    models_dir: str = "models",
    policies_dir: str = "policies",
) -> Plan:
    """The models whose result can differ between `base` and `head` (every model with `everything`).

    With `everything`, `base` may be None: every model at `head` is planned, and none is listed as removed
    (a push's `before` commit can be gone after a force-push).
    """
    if base is None and not everything:
        raise ConfigError("gate plan: --base is needed to plan a change (or --all, to plan every model)")
    head_sha = _commit(head, cwd=repo)
    base_sha = _commit(base, cwd=repo) if base is not None else ""
    head_files = _tree(head_sha, models_dir, cwd=repo)
    head_models = _model_names(head_files, models_dir)
    base_models = _model_names(_tree(base_sha, models_dir, cwd=repo), models_dir) if base_sha else head_models
    diff = _git("diff", "--name-only", "-z", "--no-renames", base_sha, head_sha, cwd=repo) if base_sha else ""
    changed = [path for path in diff.split("\0") if path]

    def touched(pattern: str) -> bool:
        return any(fnmatch.fnmatchcase(path, pattern) for path in changed)

    gate_changed = next((p for p in GATE_ITSELF if touched(p)), None)
    # A model's file directly in models/ is an ERROR row of every run (gate.discover); any other file there
    # (models/README.md, which gate init writes) is no model's.
    loose = [
        p
        for p in changed
        if PurePosixPath(p).parent == PurePosixPath(models_dir) and PurePosixPath(p).name in FOLDER_MARKERS
    ]
    planned = []
    for name in sorted(head_models):
        folder = f"{models_dir}/{name}"
        manifest = _manifest(head_sha, f"{folder}/gate.toml", cwd=repo)
        policy = manifest.get("policy")
        policy = policy if isinstance(policy, str) else DEFAULT_POLICY  # gate check reports a bad one
        allowed = manifest.get("allow_custom_objects")
        sources = sorted(
            {
                source
                for entry in (allowed if isinstance(allowed, list) else [])
                if isinstance(entry, str)
                for source in custom_object_sources(entry)
            }
        )
        metric = manifest.get("metric")
        metric_code = metric_sources(metric) if isinstance(metric, str) and not spec_problem(metric) else ()
        reasons = [
            ("planned with --all", everything),
            (f"gate itself changed ({gate_changed})", gate_changed is not None),
            (f"files beside the model folders changed ({', '.join(loose)})", bool(loose)),
            ("its files changed", touched(f"{folder}/*")),
            (f"its policy changed ({policies_dir}/{policy}.toml)", touched(f"{policies_dir}/{policy}.toml")),
            *((f"the code of its custom objects changed ({source})", touched(f"{source}*")) for source in sources),
            *((f"the code of its metric changed ({source})", touched(f"{source}*")) for source in metric_code),
        ]
        reason = next((text for text, applies in reasons if applies), None)
        if reason:
            size = sum(s for path, (_sha, s) in head_files.items() if path.startswith(folder + "/"))
            planned.append(PlannedModel(name, folder, size, reason))
    return Plan(tuple(planned), tuple(sorted(base_models - head_models)), base_sha, head_sha)
