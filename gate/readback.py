"""Read what another process wrote (a shard, a cache entry, a baseline, a workflow artifact), and refuse it cleanly.

Such files are input, like a pull request's: whoever wrote them may have
meant harm. Every file is opened inside its root folder one path component at
a time, never following a symbolic link (`O_NOFOLLOW` on each component, so a
link cannot be swapped in between a check and the read), and must be a regular
file; its path is built from gate's layout by the caller, never read from the
data. Every read is bounded. JSON is decoded by msgspec and then bounded too:
nesting depth, integers within ±2**53 (what every JSON reader keeps exact),
no NaN or infinity (not JSON; msgspec refuses them, and floats beyond the
double range). Every failure is one `Refused` naming the file and the field.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from gate.files import OUTPUT_MODE
from gate.results import FileDigest

MAX_JSON_BYTES = 256 * 1024 * 1024  # a report.json of thousands of models, with every per-sample score
MAX_DEPTH = 32  # gate's own documents nest at most 12 deep
MAX_INTEGER = 2**53
_CHUNK = 1 << 20


class Refused(ValueError):
    """A file written elsewhere cannot be used; str() names the file (relative to its root) and the problem."""


class Missing(Refused):
    """The file (or a folder on its path) is not there."""


def open_inside(root: Path, relative: str) -> int:
    """A read-only descriptor of the regular file `root/relative`, opened without following any link."""
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise Refused(f"{relative!r} is not a plain path inside {root}")
    try:
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise Missing(f"{root}: missing") from None
    except OSError as error:
        raise Refused(f"{root}: {_why(error, root, None)}") from None
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | (os.O_NONBLOCK if last else os.O_DIRECTORY)
            try:
                opened = os.open(part, flags, dir_fd=folder)
            except FileNotFoundError:
                raise Missing(f"{'/'.join(parts[: index + 1])}: missing") from None
            except OSError as error:
                raise Refused(f"{'/'.join(parts[: index + 1])}: {_why(error, part, folder)}") from None
            os.close(folder)
            folder = opened
    except BaseException:
        os.close(folder)
        raise
    if not stat.S_ISREG(os.fstat(folder).st_mode):
        os.close(folder)
        raise Refused(f"{relative}: not a regular file")
    return folder


def _why(error: OSError, name: Path | str, folder: int | None) -> str:
    try:
        if stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
            return "is a symbolic link, which could lead anywhere"
    except OSError:
        pass
    return "not a folder" if error.errno == errno.ENOTDIR else f"cannot be read ({error.strerror})"


def digest_inside(root: Path, relative: str) -> FileDigest:
    """The size and sha256 of `root/relative` (see `open_inside`)."""
    sha, size = hashlib.sha256(), 0
    with os.fdopen(open_inside(root, relative), "rb") as stream:
        while block := stream.read(_CHUNK):
            sha.update(block)
            size += len(block)
    return FileDigest(relative, size, sha.hexdigest())


def read_inside(root: Path, relative: str, *, limit: int) -> bytes:
    """The bytes of `root/relative` (see `open_inside`); Refused when it holds more than `limit`."""
    with os.fdopen(open_inside(root, relative), "rb") as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise Refused(f"{relative}: larger than {limit:,} bytes")
    return data


def copy_inside(
    root: Path,
    relative: str,
    target: Path,
    *,
    expected: FileDigest | None = None,
    limit: int | None = None,
    tail: bool = False,
) -> FileDigest:
    """Copy `root/relative` to `target`, hashing what is copied; return its digest (path: `relative`).

    With `expected`, a copy whose size or sha256 differ is removed and refused. A file larger than `limit`
    is refused, or with `tail` (a log), only its last `limit` bytes are copied, after a line saying how much
    was left out. Nothing is replaced until the copy is complete and checked.
    """
    with os.fdopen(open_inside(root, relative), "rb") as source:
        size = os.fstat(source.fileno()).st_size
        if expected is not None and size != expected.size_bytes:
            raise Refused(f"{relative}: {size:,} bytes, but its result records {expected.size_bytes:,}")
        if limit is not None and size > limit and not tail:
            raise Refused(f"{relative}: larger than {limit:,} bytes")
        content = size if limit is None else min(size, limit)  # the bytes to copy
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        sha = hashlib.sha256()
        try:
            os.fchmod(fd, OUTPUT_MODE)  # mkstemp makes it 0600
            with os.fdopen(fd, "wb") as sink:
                if content < size:
                    note = f"[gate: the first {size - content:,} of this log's {size:,} bytes are left out]\n"
                    sink.write(note.encode())
                    sha.update(note.encode())
                    source.seek(size - content)
                left = content + 1  # one more: a file that grows while it is copied is refused
                while left and (block := source.read(min(_CHUNK, left))):
                    sink.write(block)
                    sha.update(block)
                    left -= len(block)
                copied = sink.tell()
            if left == 0:
                raise Refused(f"{relative}: changed while it was being copied")
            if expected is not None and (copied, sha.hexdigest()) != (expected.size_bytes, expected.sha256):
                raise Refused(f"{relative}: does not match the sha256 its result records")
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return FileDigest(relative, copied, sha.hexdigest())


def read_json(root: Path, relative: str, *, limit: int = MAX_JSON_BYTES) -> Any:
    """`root/relative` decoded as bounded JSON (see the module docstring)."""
    return decode_json(read_inside(root, relative, limit=limit), relative)


def decode_json(raw: bytes, where: str) -> Any:
    try:
        value = msgspec.json.decode(raw)
    except RecursionError:
        raise Refused(f"{where}: nested more than {MAX_DEPTH} deep") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Refused(f"{where}: not valid JSON ({exc})") from None
    _check_bounds(value, where)
    return value


def _check_bounds(value: Any, where: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH and integers beyond ±MAX_INTEGER, naming the first such field."""
    pending: list[tuple[Any, int, tuple]] = [(value, 1, ())] if isinstance(value, dict | list) else []
    while pending:
        item, depth, path = pending.pop()
        if depth > MAX_DEPTH:
            raise Refused(f"{where}: nested more than {MAX_DEPTH} deep at {_path(path)}")
        children = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in children:
            if isinstance(child, dict | list):
                pending.append((child, depth + 1, (path, key)))
            elif type(child) is int and not -MAX_INTEGER <= child <= MAX_INTEGER:
                raise Refused(f"{where}: {_path((path, key))}: the whole number is out of range (beyond ±2**53)")


def _path(path: tuple) -> str:
    keys = []
    while path:
        path, key = path
        keys.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "$" + "".join(reversed(keys))
