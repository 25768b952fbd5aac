"""Options that several commands share, so each is spelled and explained once."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from gate.errors import ConfigError

EXIT_PASS, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2
SHA = re.compile(r"[0-9a-f]{40}")  # a commit, as GitHub passes it: 40 lowercase hex digits


def model_dirs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model_dirs",
        nargs="*",
        type=Path,
        metavar="MODEL_DIR",
        help="model folders, or folders of them (default: models/)",
    )


def policies(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policies", type=Path, default=Path("policies"), help="policy folder (default: policies/)")


def out(parser: argparse.ArgumentParser, default: str = "gate-out") -> None:
    parser.add_argument("--out", type=Path, default=Path(default), help=f"output folder (default: {default}/)")


def chosen_model_dirs(args: argparse.Namespace) -> list[Path]:
    return args.model_dirs or [Path("models")]


def cache(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="result cache folder (default: $XDG_CACHE_HOME/gate, else ~/.cache/gate); never inside a git work tree",
    )
    parser.add_argument(
        "--cache-in-work-tree",
        action="store_true",
        help="accept a --cache folder inside a git work tree, where a commit could plant entries (only if no one "
        "else can write there)",
    )
    parser.add_argument("--no-cache", action="store_true", help="gate every model afresh; read and write no cache")


def cache_dir(args: argparse.Namespace, *, warn: Callable[[str], None]) -> Path | None:
    """The result cache's folder, or None. A cache entry is trusted as gate's own result, so none in a work tree."""
    from gate.cache import default_directory, work_tree

    if args.no_cache:
        return None
    if args.cache is not None:
        tree = work_tree(args.cache)
        if tree is not None and not args.cache_in_work_tree:
            raise ConfigError(
                f"--cache {args.cache}: inside the git work tree {tree}, where a commit could add entries that gate "
                "would take for its own results; pass a folder outside any work tree (the default is "
                f"{default_directory()}), or add --cache-in-work-tree if no one else can write there"
            )
        return args.cache
    directory = default_directory()
    if (tree := work_tree(directory)) is not None:
        warn(
            f"gate: warning: the default cache folder {directory} is inside the git work tree {tree}, where a "
            "commit could add entries; gating without a cache (pass --cache DIR outside any work tree)"
        )
        return None
    return directory


def entry_paths(text: str) -> list[Path]:
    """The model folders of one `gate plan` matrix entry: {"model": ..., "path": P} or {"paths": [P...]}."""
    try:
        entry = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"--entry: not JSON ({exc}); pass one entry of gate plan's matrix") from None
    paths = entry.get("paths", [entry.get("path")]) if isinstance(entry, dict) else None
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise ConfigError(f'--entry: expected {{"model": ..., "path": ...}} or {{"paths": [...]}}, got {text[:200]!r}')
    for path in paths:
        pure = PurePosixPath(path)
        if pure.is_absolute() or ".." in pure.parts:
            raise ConfigError(f"--entry: {path!r} must be a relative path inside the repository")
    return [Path(p) for p in paths]


def repository_path(text: str, option: str) -> str:
    """A folder of the repository, as git names it (gate plan reads the commits' trees, not the work tree)."""
    pure = PurePosixPath(text)
    if pure.is_absolute() or ".." in pure.parts or str(pure) == ".":
        raise ConfigError(f"{option}: {text!r} must be a folder inside the repository, relative to its root")
    return pure.as_posix()


def baseline(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="REPORT_JSON",
        help="the base branch's report.json: the report shows each model's change against it",
    )


_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


def repo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repo",
        required=True,
        metavar="OWNER/NAME",
        help="the GitHub repository (in a workflow: ${{ github.repository }})",
    )


def check_repo(name: str, *, option: str = "--repo") -> None:
    """--repo goes into API paths (gate init's --pin into workflows): only OWNER/NAME as GitHub spells names."""
    if not _REPO.fullmatch(name) or ".." in name:
        raise ConfigError(f"{option}: expected OWNER/NAME, got {name!r}")
