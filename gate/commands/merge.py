"""`gate merge`: one report from the `--out` folders of `gate check` runs on different models (CI shards)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gate.commands import options
from gate.commands.check import exit_code, progress, verdict_line
from gate.errors import ConfigError

HELP = "merge the --out folders of several gate check runs into one report, validating each"
PULL_REQUEST_JSON = "pull-request.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "shard_dirs",
        nargs="*",
        type=Path,
        metavar="SHARD_DIR",
        help="--out folders of gate check runs (none: nothing was planned)",
    )
    options.out(parser)
    parser.add_argument(
        "--plan", type=Path, help="the plan gate plan --save wrote: every planned model must have a result"
    )
    options.baseline(parser)
    parser.add_argument("--pull-request", metavar="N", help="the pull request's number, kept in pull-request.json")
    parser.add_argument("--head-sha", metavar="SHA", help="the commit that was gated, kept in pull-request.json")
    parser.add_argument(
        "--annotate",
        action="store_true",
        help="print a GitHub ::error annotation per failed check (at most 10 are shown per step)",
    )


def _planned(path: Path) -> tuple[list[str], list[str]]:
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
        models, removed = plan["models"], plan["removed"]
        if not all(isinstance(n, str) for n in [*models, *removed]):
            raise TypeError("names must be strings")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a plan written by gate plan --save ({exc})") from None
    return models, removed


def run(args: argparse.Namespace) -> int:
    from gate.annotations import error_annotations
    from gate.compare import load_baseline
    from gate.merge import merge_shards
    from gate.report import write_atomic, write_reports

    planned, removed = _planned(args.plan) if args.plan else (None, [])
    results = merge_shards(args.shard_dirs, out_dir=args.out, planned=planned)
    baseline = load_baseline(args.baseline, warn=progress) if args.baseline else None
    write_reports(args.out, results, baseline=baseline, removed=removed)
    if args.pull_request is not None or args.head_sha is not None:
        number = int(args.pull_request) if args.pull_request and args.pull_request.isdigit() else None
        write_atomic(args.out / PULL_REQUEST_JSON, json.dumps({"number": number, "head_sha": args.head_sha}) + "\n")
    for result in results:
        print(verdict_line(result))
    if args.annotate:
        for line in error_annotations(results):
            print(line)
    print(f"gate: merged {len(args.shard_dirs)} shard(s), {len(results)} model(s) into {args.out}", file=sys.stderr)
    return exit_code(results)
