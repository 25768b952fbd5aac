"""The `gate` subcommands, one module each (pre-commit's commands/ is the model).

Each module has `HELP`, `add_arguments(parser)` and `run(args) -> int`;
`COMMANDS` lists them in the order `gate --help` shows. A new command is a new
module and one line here. Shared options live in `gate.commands.options`.
"""

from __future__ import annotations

from gate.commands import check, comment, init, merge, plan, publish, release, validate

COMMANDS = {
    "check": check,
    "validate": validate,
    "plan": plan,
    "merge": merge,
    "release": release,
    "comment": comment,
    "publish": publish,
    "init": init,
}
