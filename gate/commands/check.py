"""`gate check`: quantize, measure, judge and report every model."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from gate import escape
from gate.commands import options
from gate.errors import ConfigError
from gate.reporting.markdown import SUMMARY_LIMITS
from gate.results import ModelResult, Status

DETAIL = SUMMARY_LIMITS["detail"]  # a verdict line's failures, as the summary caps a detail: the log stays readable

HELP = "quantize, measure, judge and report every model"
# Keras before 3.13.2 has known safe_mode bypasses (see docs/security.md).
MINIMUM_KERAS = (3, 13, 2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.model_dirs(parser)
    options.policies(parser)
    options.out(parser)
    parser.add_argument(
        "-j",
        "--jobs",
        type=_positive,
        default=None,
        metavar="N",
        help="gate up to N models at once (default: one per core)",
    )
    options.cache(parser)
    options.baseline(parser)
    parser.add_argument(
        "--entry", metavar="JSON", help="gate the models of one `gate plan` matrix entry (what a CI shard job passes)"
    )
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's and the converter's own output")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def run(args: argparse.Namespace) -> int:
    model_dirs = options.entry_paths(args.entry) if args.entry else options.chosen_model_dirs(args)
    return check(
        model_dirs,
        policies_dir=args.policies,
        out_dir=args.out,
        verbose=args.verbose,
        jobs=args.jobs,
        cache_dir=options.cache_dir(args, warn=progress),
        baseline_path=args.baseline,
        step_summary=not args.entry,
        debug=args.debug,
    )


def check_keras_version() -> None:
    try:
        version = metadata.version("keras")
    except metadata.PackageNotFoundError:
        raise ConfigError("Keras is not installed; install gate with pip install -e .") from None
    parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
    if parts < MINIMUM_KERAS:
        minimum = ".".join(map(str, MINIMUM_KERAS))
        raise ConfigError(
            f"Keras {version} is installed; gate needs keras>={minimum}, which fixes known safe_mode bypasses: "
            f"pip install 'keras>={minimum}'"
        )


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, through the code that kills the running worker and writes no report."""

    def terminate(signum: int, frame: object) -> None:
        interrupt = KeyboardInterrupt()
        interrupt.signum = signum  # type: ignore[attr-defined]
        raise interrupt

    signal.signal(signal.SIGTERM, terminate)


def progress(line: str) -> None:
    """One progress line on stderr; its names and messages come from the pull request, so it is made safe."""
    print(escape.terminal(line), file=sys.stderr, flush=True)


def check(
    model_dirs: Sequence[Path],
    *,
    policies_dir: Path,
    out_dir: Path,
    verbose: bool = False,
    jobs: int | None = None,
    cache_dir: Path | None = None,
    baseline_path: Path | None = None,
    step_summary: bool = True,
    debug: bool = False,
) -> int:
    from gate.reporting.verify import load_baseline
    from gate.scheduling.run import gate_all

    check_keras_version()
    stop_on_sigterm()
    baseline = load_baseline(baseline_path, warn=progress) if baseline_path else None
    results = gate_all(
        model_dirs,
        policies_dir=policies_dir,
        out_dir=out_dir,
        verbose=verbose,
        progress=progress,
        jobs=jobs,
        cache_dir=cache_dir,
        baseline=baseline,
        step_summary=step_summary,
        debug=debug,
    )
    for result in results:
        print(verdict_line(result))
    progress(f"gate: reports written to {out_dir / 'report.md'} and {out_dir / 'report.json'}")
    return exit_code(results)


def exit_code(results: Sequence[ModelResult]) -> int:
    return options.EXIT_PASS if all(r.status is Status.PASS for r in results) else options.EXIT_FAIL


def verdict_line(result: ModelResult) -> str:
    """One line per model, like twine's `Checking dist/x.whl: PASSED`, safe to print (gate.escape.terminal)."""
    candidate = result.candidate
    if candidate is None:  # every problem, as gate validate lists them: a broken gate.toml can have several
        return escape.terminal(f"{result.name}  ERROR  {escape.capped('; '.join(result.error.splitlines()), DETAIL)}")
    failed = [f"{c.name}: {c.message}" for c in candidate.checks if c.status is Status.FAIL]
    passed = sum(c.status is Status.PASS for c in candidate.checks)
    skipped = sum(c.status is Status.SKIP for c in candidate.checks)
    summary = escape.capped("; ".join(failed), DETAIL) if failed else f"{passed} checks passed, {skipped} skipped"
    method = candidate.conversion.method if candidate.conversion else candidate.method
    return escape.terminal(f"{result.name}  {method}  {result.status.value}  {summary}")
