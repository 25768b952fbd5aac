"""Options that several commands share, so each is spelled and explained once."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from gate.errors import ConfigError

EXIT_PASS, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2


def model_dirs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dirs", nargs="*", type=Path, metavar="MODEL_DIR",
                        help="model folders, or folders of them (default: models/)")


def policies(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policies", type=Path, default=Path("policies"), help="policy folder (default: policies/)")


def out(parser: argparse.ArgumentParser, default: str = "gate-out") -> None:
    parser.add_argument("--out", type=Path, default=Path(default), help=f"output folder (default: {default}/)")


def chosen_model_dirs(args: argparse.Namespace) -> list[Path]:
    return args.model_dirs or [Path("models")]


_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


def repo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", required=True, metavar="OWNER/NAME",
                        help="the GitHub repository (in a workflow: ${{ github.repository }})")


def check_repo(name: str) -> None:
    """--repo goes into API paths: only OWNER/NAME as GitHub spells names."""
    if not _REPO.fullmatch(name) or ".." in name:
        raise ConfigError(f"--repo: expected OWNER/NAME, got {name!r}")
