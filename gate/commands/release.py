"""`gate release`: lay out exactly what a release publishes, from a `gate check` output folder."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from gate.commands import options
from gate.errors import ConfigError

HELP = "lay out the release files (each passing model's .tflite, the reports, SHA256SUMS); refuse if any model failed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=Path("gate-out"),
        help="the --out folder of a gate check run over every model (default: gate-out/)",
    )
    options.out(parser, default="release")


def run(args: argparse.Namespace) -> int:
    from gate.discover import digest, refuse_links
    from gate.layout import CHECKSUMS, REPORT_JSON, REPORT_MD
    from gate.merge import read_shard
    from gate.report import write_atomic
    from gate.results import Status

    shard = read_shard(args.source)  # validated like any output written elsewhere, every artifact's digest checked
    if not shard.results:
        raise ConfigError(f"{args.source}: the report holds no model; gate every model before releasing")
    failed = [r for r in shard.results if r.status is not Status.PASS]
    if failed:
        for result in failed:
            print(f"gate release: {result.name} is {result.status.value}; nothing is published", file=sys.stderr)
        return options.EXIT_FAIL
    refuse_links(args.out, "pass a real folder with --out (gate release replaces it)")
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    published = []
    for result in shard.results:
        artifact = result.candidate.conversion.artifact  # type: ignore[union-attr]
        name = Path(artifact.path).name
        shutil.copyfile(args.source / artifact.path, args.out / name)
        published.append(name)
    for name in (REPORT_MD, REPORT_JSON):
        shutil.copyfile(args.source / name, args.out / name)
        published.append(name)
    sums = "".join(f"{digest(args.out / name, args.out).sha256}  {name}\n" for name in sorted(published))
    write_atomic(args.out / CHECKSUMS, sums)
    print(f"gate release: {len(shard.results)} model(s) laid out in {args.out}", file=sys.stderr)
    return options.EXIT_PASS
