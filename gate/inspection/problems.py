"""How inspection reports what it found: every problem of a file in one ModelError, and damage as a ModelError too."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from gate.errors import GateError, ModelError

MAX_PROBLEMS = 20  # a broken file can have thousands; the first ones say enough


def raise_problems(problems: list[str]) -> None:
    """One ModelError listing every problem found (the first MAX_PROBLEMS of them), one a line."""
    if problems:
        more = f"\n... and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
        raise ModelError("\n".join(problems[:MAX_PROBLEMS]) + more)


def describe(exc: BaseException) -> str:
    """An exception as one short line: 'BadZipFile: Bad CRC-32 for file ...'."""
    # KeyError's str() is the repr of its argument; h5py raises KeyError with the HDF5 library's message.
    text = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}".rstrip(": ")


@contextlib.contextmanager
def damaged_file(where: str, what: str, fix: str) -> Iterator[None]:
    """Turn whatever a parser raises on the bytes of `where` into a ModelError: '{where}: {what} ({error}); {fix}'.

    zipfile, h5py and numpy raise dozens of exception types on damaged input
    (BadZipFile, zlib.error, LZMAError, OSError, KeyError, TypeError, OverflowError,
    and h5py's SystemError when the HDF5 library fails inside a visit). Each means
    the file is damaged, not that gate has a bug, so wrap only the library calls.
    """
    try:
        yield
    except GateError:
        raise
    except Exception as exc:  # see the docstring: any exception here is damage in the file
        raise ModelError(f"{where}: {what} ({describe(exc)}); {fix}") from None
