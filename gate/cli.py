"""The `gate` command: a thin dispatcher over gate.commands (one module per subcommand).

Exit codes, like ruff and mypy: 0 every model passed, 1 a model failed a check
or could not be gated, 2 a usage or configuration error (or a GitHub API error).
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Sequence

from gate.commands import COMMANDS
from gate.commands.options import EXIT_CONFIG
from gate.errors import ConfigError, GitHubError
from gate.escape import terminal

DEBUG_HELP = "show tracebacks of errors inside gate"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="gate", description="Release gate for on-device TFLite models.")
    root.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    commands = root.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        command = commands.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        # Accepted after the command too (`gate check --debug`); SUPPRESS keeps `gate --debug check`'s value.
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        command.set_defaults(run=module.run)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (ConfigError, GitHubError) as exc:
        # Messages echo names and values from files a pull request controls: printed safe for a runner's log.
        print(f"gate: error: {terminal(str(exc), lines=True)}", file=sys.stderr)
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


if __name__ == "__main__":
    raise SystemExit(main())
