"""The one exception family that carries messages meant for users.

Only ``gate.cli.main`` turns these into text and an exit code; anything else
that escapes is a bug in gate and is shown with a traceback only under --debug.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager


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


@contextmanager
def translated(message: Callable[[Exception], str], *, passing: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Whatever a library raises inside (TensorFlow, Keras, LiteRT...) as one ModelError saying `message(exc)`.

    The one place third-party failures become a model's failure (pypa/build's `_handle_backend`): the
    library's exception stays the ModelError's `__cause__`, so the worker writes its traceback to the
    model's log (gate.gating.pipeline). ModelErrors and the `passing` types go through unchanged.
    """
    try:
        yield
    except ModelError:
        raise
    except passing:
        raise
    except Exception as exc:  # libraries raise anything; each call site says what it meant
        raise ModelError(message(exc)) from exc


def log_cause(error: ModelError) -> None:
    """Write the traceback of what a library raised (the `translated` error's cause) to stderr: the model's log."""
    if error.__cause__ is not None:
        traceback.print_exception(error.__cause__, file=sys.stderr)


def printable(name: str) -> str:
    """`name` with the bytes that are not UTF-8 shown as \\xNN escapes.

    Python keeps undecodable bytes of file names as lone surrogates, which no
    report (UTF-8) can hold; a name that changes here must be refused.
    """
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
