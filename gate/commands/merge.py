"""`gate merge`: one report from the `--out` folders of `gate check` runs on different models (CI shards)."""

from __future__ import annotations

import argparse
import json
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


def run(args: argparse.Namespace) -> int:
    from gate.ci.annotations import error_annotations
    from gate.ci.merge import merge_shards, read_plan
    from gate.files import write_atomic
    from gate.reporting.compare import stale_warning
    from gate.reporting.report import write_reports
    from gate.reporting.verify import load_baseline

    if args.head_sha is not None and not options.SHA.fullmatch(args.head_sha):
        raise ConfigError(f"--head-sha: expected 40 lowercase hex digits, got {args.head_sha[:60]!r}")
    planned, removed, base = read_plan(args.plan) if args.plan else (None, [], "")
    results = merge_shards(args.shard_dirs, out_dir=args.out, planned=planned)
    baseline = load_baseline(args.baseline, warn=progress) if args.baseline else None
    comparison = write_reports(
        args.out, results, baseline=baseline, removed=removed, planned_base=base, commit=args.head_sha or ""
    )
    if comparison and (warning := stale_warning(comparison)):
        progress(warning)
    if args.pull_request is not None or args.head_sha is not None:
        number = int(args.pull_request) if args.pull_request and args.pull_request.isdigit() else None
        write_atomic(args.out / PULL_REQUEST_JSON, json.dumps({"number": number, "head_sha": args.head_sha}) + "\n")
    for result in results:
        print(verdict_line(result))
    if args.annotate:
        for line in error_annotations(results):
            print(line)
    progress(f"gate: merged {len(args.shard_dirs)} shard(s), {len(results)} model(s) into {args.out}")
    return exit_code(results)
