"""`gate release`: lay out exactly what a release publishes, from a `gate check` output folder."""

from __future__ import annotations

import argparse
import shutil
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
    from gate.commands.check import progress
    from gate.discover import digest, refuse_links
    from gate.layout import CHECKSUMS, REPORT_JSON, REPORT_MD
    from gate.merge import read_shard
    from gate.readback import MAX_JSON_BYTES, Refused, copy_inside, read_inside
    from gate.report import write_atomic
    from gate.results import Status

    # Validated like any output written elsewhere: every result checked and re-judged, every artifact's digest.
    shard = read_shard(args.source, command="gate release", what="the output folder")
    if not shard.results:
        raise ConfigError(f"{args.source}: the report holds no model; gate every model before releasing")
    failed = [r for r in shard.results if r.status is not Status.PASS]
    if failed:
        for result in failed:
            progress(f"gate release: {result.name} is {result.status.value}; nothing is published")
        return options.EXIT_FAIL
    refuse_links(args.out, "pass a real folder with --out (gate release replaces it)")
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    published = []
    try:
        for result in shard.results:
            artifact = result.candidate.conversion.artifact  # type: ignore[union-attr]
            name = Path(artifact.path).name
            copy_inside(args.source, artifact.path, args.out / name, expected=artifact)  # verified as it is copied
            published.append(name)
        for name in (REPORT_MD, REPORT_JSON):
            write_atomic(args.out / name, read_inside(args.source, name, limit=MAX_JSON_BYTES))
            published.append(name)
    except Refused as exc:
        raise ConfigError(f"gate release: {args.source}: {exc}") from None
    sums = "".join(f"{digest(args.out / name, args.out).sha256}  {name}\n" for name in sorted(published))
    write_atomic(args.out / CHECKSUMS, sums)
    progress(f"gate release: {len(shard.results)} model(s) laid out in {args.out}")
    return options.EXIT_PASS
