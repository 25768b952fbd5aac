"""Files every stage writes or guards: atomic writes with the mode gate's outputs have, and refusing links.

The ground floor: it imports nothing of gate's.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gate.errors import ConfigError


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write `path` so that it is either absent, the old file, or complete.

    A temporary file in the same folder is renamed over the target (os.replace is
    atomic on POSIX), so an interrupted run never leaves a half-written file
    that looks complete. Leftover temporaries start with "." and end in ".tmp".
    The file is readable by all (0644), like any tool's output: mkstemp makes it 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = data.encode() if isinstance(data, str) else data
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, OUTPUT_MODE)
        with os.fdopen(fd, "wb") as stream:
            stream.write(blob)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def refuse_links(path: Path, fix: str) -> None:
    """Raise ConfigError when `path`, as given, is or lies under a symbolic link: it could lead anywhere."""
    for part in (path, *path.parents):
        if part.is_symlink():
            raise ConfigError(
                f"{path}: {part} is a symbolic link, which could point anywhere on the machine that "
                f"runs the gate; {fix}"
            )


OUTPUT_MODE = 0o644  # every file gate writes, copies included: owner read-write, everyone else read
