"""`gate plan`: the models a change can have affected, as a GitHub Actions job matrix."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gate.commands import options
from gate.errors import ConfigError
from gate.escape import terminal

HELP = "list the models whose result can differ between two commits, as a GitHub Actions matrix"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", help="the commit to compare with (a PR's base SHA); not needed with --all")
    parser.add_argument("--head", default="HEAD", help="the commit to gate (default: HEAD)")
    parser.add_argument(
        "--all", action="store_true", help="plan every model (e.g. on a push to the default branch); no --base needed"
    )
    parser.add_argument(
        "--models", default="models", help="the folder of model folders, relative to the repository (default: models/)"
    )
    options.policies(parser)
    parser.add_argument(
        "--format",
        choices=("json", "names"),
        default="json",
        help="json: the plan with its matrix (default); names: one model name a line, for people",
    )
    parser.add_argument(
        "--save", type=Path, help="also write the plan's JSON to this file (gate merge --plan reads it)"
    )
    parser.add_argument(
        "--github-output",
        action="store_true",
        help="append matrix=, count= and removed= to $GITHUB_OUTPUT for the next jobs",
    )


def run(args: argparse.Namespace) -> int:
    from gate.plan import plan_changes
    from gate.report import write_atomic

    plan = plan_changes(
        base=args.base,
        head=args.head,
        everything=args.all,
        models_dir=options.repository_path(args.models, "--models"),
        policies_dir=options.repository_path(str(args.policies), "--policies"),
    )
    document = plan.to_json()
    if args.save:
        write_atomic(args.save, json.dumps(document, indent=2) + "\n")
    if args.github_output:
        if not os.environ.get("GITHUB_OUTPUT"):
            raise ConfigError("--github-output: GITHUB_OUTPUT is not set; it is set in GitHub Actions steps")
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as output:
            output.write(f"matrix={json.dumps(plan.matrix(), separators=(',', ':'))}\n")
            output.write(f"count={len(document['include'])}\n")
            output.write(f"removed={json.dumps(document['removed'], separators=(',', ':'))}\n")
    if args.format == "names":
        print("".join(f"{terminal(model.name)}\n" for model in plan.models), end="")
    else:
        print(json.dumps(document, indent=2))
    for model in plan.models:
        print(terminal(f"gate plan: {model.name}: {model.reason}"), file=sys.stderr)
    for name in plan.removed:
        print(terminal(f"gate plan: {name}: removed"), file=sys.stderr)
    print(f"gate plan: {len(plan.models)} model(s) to gate, {len(plan.removed)} removed", file=sys.stderr)
    return options.EXIT_PASS
