"""`gate validate`: check every policy and gate.toml, without loading a model or importing TensorFlow."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gate.commands import options
from gate.config import ModelConfig, configure_model, load_policies
from gate.discover import find_model_folders
from gate.errors import ConfigError
from gate.escape import terminal

HELP = "check every policy and gate.toml without loading any model or TensorFlow"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.model_dirs(parser)
    options.policies(parser)


def run(args: argparse.Namespace) -> int:
    return validate(options.chosen_model_dirs(args), policies_dir=args.policies)


def validate(model_dirs: Sequence[Path], *, policies_dir: Path) -> int:
    """List every problem in the policies and manifests; exit 2 if there is any."""
    problems: list[str] = []
    try:
        policies = load_policies(policies_dir)
        policy_names = list(policies)
    except ConfigError as exc:
        problems.append(str(exc))
        # Check the manifests anyway, against the policy files that exist, so one run lists every problem.
        policies = {}
        policy_names = [path.stem for path in policies_dir.glob("*.toml")]
    try:
        folders = find_model_folders(model_dirs)
    except ConfigError as exc:
        problems.append(str(exc))
        folders = []
    for folder in folders:
        configured = configure_model(folder, policies, policy_names=policy_names)
        if not isinstance(configured, ModelConfig) and configured[1]:
            problems.append(configured[1])
    if problems:
        text = "\n".join(problems)
        print(terminal(text, lines=True), file=sys.stderr)
        print(f"gate: {len(text.splitlines())} problem(s) found", file=sys.stderr)
        return options.EXIT_CONFIG
    print(f"gate: {len(policy_names)} policies and {len(folders)} model folders are valid", file=sys.stderr)
    return options.EXIT_PASS
