"""`gate release`: lay out exactly what a release publishes, from a `gate check` output folder."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from gate import escape
from gate.commands import options
from gate.errors import ConfigError

if TYPE_CHECKING:
    from gate.results import ModelResult

# One line per released artifact; SHA256SUMS and the attestation cover it like every other file.
RELEASE_NOTES = "RELEASE.md"

HELP = (
    "lay out the release files (each passing model's .tflite, RELEASE.md, the reports, SHA256SUMS); refuse if any "
    "model failed"
)


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
    from gate.ci.merge import read_shard
    from gate.commands.check import progress
    from gate.discover import digest
    from gate.files import refuse_links, write_atomic
    from gate.layout import CHECKSUMS, REPORT_JSON, REPORT_MD
    from gate.readback import MAX_JSON_BYTES, Refused, copy_inside, read_inside
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
    lines = []
    try:
        for result in shard.results:
            artifact = result.candidate.conversion.artifact  # type: ignore[union-attr]
            name = Path(artifact.path).name
            copy_inside(args.source, artifact.path, args.out / name, expected=artifact)  # verified as it is copied
            published.append(name)
            lines.append(artifact_line(name, result))
        for name in (REPORT_MD, REPORT_JSON):
            write_atomic(args.out / name, read_inside(args.source, name, limit=MAX_JSON_BYTES))
            published.append(name)
    except Refused as exc:
        raise ConfigError(f"gate release: {args.source}: {exc}") from None
    # Names come from the pull request: each line is shown as itself in Markdown (and on the terminal by progress).
    write_atomic(args.out / RELEASE_NOTES, "".join(f"- {escape.markdown(line)}\n" for line in lines))
    published.append(RELEASE_NOTES)
    sums = "".join(f"{digest(args.out / name, args.out).sha256}  {name}\n" for name in sorted(published))
    write_atomic(args.out / CHECKSUMS, sums)
    for line in lines:
        progress(f"gate release: {line}")
    progress(f"gate release: {len(shard.results)} model(s) laid out in {args.out}")
    return options.EXIT_PASS


def artifact_line(name: str, result: ModelResult) -> str:
    """The release's line for one artifact: what it is, what it scored, and what an app must do to get that."""
    from gate.policy.checks import score_text

    conversion = result.candidate.conversion if result.candidate else None
    assert conversion is not None  # a released model published a built candidate
    evaluation = conversion.evaluation
    line = f"{name}: {result.name}, {conversion.method}, {score_text(evaluation)} on {evaluation.samples} samples"
    if conversion.state:
        return f"{line}; keeps state between invokes: the app must {conversion.state.app_must}"
    return f"{line}; keeps no state between invokes"
