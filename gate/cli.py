"""The `gate` command: `gate check` gates models, `gate validate` checks configuration.

Exit codes, like ruff and mypy: 0 every model passed, 1 a model failed a check
or could not be gated, 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from gate.errors import ConfigError, ModelError
from gate.results import ModelResult, Status

EXIT_PASS, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2
# Keras before 3.13.2 has known safe_mode bypasses (see the README's security model).
MINIMUM_KERAS = (3, 13, 2)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gate", description="Release gate for on-device TFLite models.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors inside gate")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("check", "quantize, measure, judge and report every model"),
        ("validate", "check every policy and gate.toml without loading any model or TensorFlow"),
    ):
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("model_dirs", nargs="*", type=Path, metavar="MODEL_DIR", help="model folders, or folders of them (default: models/)")
        command.add_argument("--policies", type=Path, default=Path("policies"), help="policy folder (default: policies/)")
        if name == "check":
            command.add_argument("--out", type=Path, default=Path("gate-out"), help="output folder (default: gate-out/)")
            command.add_argument("--verbose", action="store_true", help="show TensorFlow's and the converter's own output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    model_dirs = args.model_dirs or [Path("models")]
    try:
        if args.command == "validate":
            return validate(model_dirs, policies_dir=args.policies)
        return check(model_dirs, policies_dir=args.policies, out_dir=args.out, verbose=args.verbose)
    except ConfigError as exc:
        print(f"gate: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt as exc:
        print("gate: interrupted; no report was written (the next run starts afresh)", file=sys.stderr)
        return 128 + getattr(exc, "signum", signal.SIGINT)
    except Exception:
        if args.debug:
            traceback.print_exc()
        else:
            print("gate: internal error (a bug in gate); run again with --debug for the traceback", file=sys.stderr)
        return EXIT_CONFIG


def _check_keras_version() -> None:
    try:
        version = metadata.version("keras")
    except metadata.PackageNotFoundError:
        raise ConfigError("Keras is not installed; install gate with pip install -e .") from None
    parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
    if parts < MINIMUM_KERAS:
        minimum = ".".join(map(str, MINIMUM_KERAS))
        raise ConfigError(f"Keras {version} is installed; gate needs keras>={minimum}, which fixes known safe_mode bypasses: pip install 'keras>={minimum}'")


def check(model_dirs: Sequence[Path], *, policies_dir: Path, out_dir: Path, verbose: bool) -> int:
    from gate.run import gate_all

    _check_keras_version()

    def terminate(signum: int, frame: object) -> None:
        interrupt = KeyboardInterrupt()  # unwinds through gate_all, which kills the running worker
        interrupt.signum = signum
        raise interrupt

    signal.signal(signal.SIGTERM, terminate)
    results = gate_all(
        model_dirs,
        policies_dir=policies_dir,
        out_dir=out_dir,
        verbose=verbose,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    for result in results:
        print(verdict_line(result))
    print(f"gate: reports written to {out_dir / 'report.md'} and {out_dir / 'report.json'}", file=sys.stderr)
    return EXIT_PASS if all(r.status is Status.PASS for r in results) else EXIT_FAIL


def verdict_line(result: ModelResult) -> str:
    """One line per model, like twine's `Checking dist/x.whl: PASSED`."""
    candidate = result.candidate
    if candidate is None:
        return f"{result.name}  ERROR  {result.error.splitlines()[0] if result.error else ''}"
    failed = [f"{c.name}: {c.message}" for c in candidate.checks if c.status is Status.FAIL]
    passed = sum(c.status is Status.PASS for c in candidate.checks)
    skipped = sum(c.status is Status.SKIP for c in candidate.checks)
    summary = "; ".join(failed) if failed else f"{passed} checks passed, {skipped} skipped"
    return f"{result.name}  {candidate.conversion.method}  {result.status.value}  {summary}"


def validate(model_dirs: Sequence[Path], *, policies_dir: Path) -> int:
    """List every problem in the policies and manifests; exit 2 if there is any."""
    from gate.config import load_policies, parse_manifest
    from gate.discover import find_model_folders

    problems: list[str] = []
    try:
        policy_names = list(load_policies(policies_dir))
    except ConfigError as exc:
        problems.append(str(exc))
        # Check the manifests anyway, against the policy files that exist, so one run lists every problem.
        policy_names = [path.stem for path in policies_dir.glob("*.toml")]
    try:
        folders = find_model_folders(model_dirs)
    except ConfigError as exc:
        problems.append(str(exc))
        folders = []
    for folder in folders:
        if folder.problem:
            problems.append(folder.problem)
            continue
        try:
            parse_manifest(folder.manifest, policy_names)
        except ModelError as exc:
            problems.append(str(exc))
    if problems:
        text = "\n".join(problems)
        print(text, file=sys.stderr)
        print(f"gate: {len(text.splitlines())} problem(s) found", file=sys.stderr)
        return EXIT_CONFIG
    print(f"gate: {len(policy_names)} policies and {len(folders)} model folders are valid", file=sys.stderr)
    return EXIT_PASS


if __name__ == "__main__":
    raise SystemExit(main())
