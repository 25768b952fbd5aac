"""The one exception family that carries messages meant for users.

Only ``gate.cli.main`` turns these into text and an exit code; anything else
that escapes is a bug in gate and is shown with a traceback only under --debug.
"""

from __future__ import annotations


class GateError(Exception):
    """A problem the user can act on; ``str(error)`` is the whole message."""


class ConfigError(GateError):
    """A broken policy or command line: nothing can be gated (exit code 2)."""


class GitHubError(GateError):
    """A GitHub API call failed, or GitHub's state refuses the action (exit code 2).

    The message names the request, the status, the API's own message and what to
    check (usually a permission of the workflow's token).
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ModelError(GateError):
    """One model cannot be gated (refused, unreadable, bad data): its report row is ERROR."""


def printable(name: str) -> str:
    """`name` with the bytes that are not UTF-8 shown as \\xNN escapes.

    Python keeps undecodable bytes of file names as lone surrogates, which no
    report (UTF-8) can hold; a name that changes here must be refused.
    """
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
