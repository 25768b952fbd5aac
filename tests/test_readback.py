"""gate.readback: reading what another process wrote, bounded and through no link (no TensorFlow needed).

The attacks on each surface that reads this way (shards, cache entries, plans, baselines) are in
test_attacks.py; these are the reader's own limits, each at its edge.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from gate.readback import Missing, Refused, copy_inside, decode_json, digest_inside, open_inside, read_inside
from gate.results import FileDigest

TWENTY = b"0123456789abcdefghij"


@pytest.fixture
def root(tmp_path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    (folder / "twenty").write_bytes(TWENTY)
    (tmp_path / "root-link").symlink_to(folder)
    (tmp_path / "a-file").write_bytes(TWENTY)
    return folder


@pytest.mark.parametrize(
    ("root_name", "relative", "message"),
    [
        ("root-link", "twenty", "{tmp}/root-link: is a symbolic link, which could lead anywhere"),
        ("a-file", "twenty", "{tmp}/a-file: not a folder"),
        ("absent", "twenty", "{tmp}/absent: missing"),
        ("root", "absent/twenty", "absent: missing"),  # the first missing component, not the whole path
        ("root", "a" * 300, "a" * 300 + ": cannot be read (File name too long)"),
    ],
)
def test_a_file_is_refused_naming_the_first_part_of_its_path_that_cannot_be_opened(
    root, root_name, relative, message
) -> None:
    with pytest.raises(Refused) as refused:
        open_inside(root.parent / root_name, relative)
    assert str(refused.value) == message.format(tmp=root.parent)
    assert isinstance(refused.value, Missing) == message.endswith("missing")


def outcome(read: Callable[[], object]) -> object:
    """What `read` returns, or the Refused it raises (compared by its message: see `refused`)."""
    try:
        return read()
    except Refused as exc:
        return refused(str(exc))


def refused(message: str) -> tuple[str, str]:
    return ("Refused", message)


@pytest.mark.parametrize(("limit", "read"), [(20, TWENTY), (19, refused("twenty: larger than 19 bytes"))])
def test_a_file_of_exactly_its_limit_is_read_and_one_byte_more_is_refused(root, limit, read) -> None:
    assert outcome(lambda: read_inside(root, "twenty", limit=limit)) == read


def test_a_file_is_digested_whole_a_chunk_at_a_time(root) -> None:
    data = bytes(range(256)) * (10 * 1024 + 3)  # 2.5 MiB: more than two chunks
    (root / "large").write_bytes(data)
    assert digest_inside(root, "large") == FileDigest("large", len(data), hashlib.sha256(data).hexdigest())


def test_reading_or_digesting_a_large_file_holds_a_chunk_of_it_in_memory_not_all(root) -> None:
    with (root / "sparse").open("wb") as sparse:
        sparse.truncate(64 * 1024 * 1024)  # no disk used
    tracemalloc.start()
    try:
        with pytest.raises(Refused, match="^sparse: larger than 1,000 bytes$"):
            read_inside(root, "sparse", limit=1000)
        digest_inside(root, "sparse")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"{peak:,} bytes"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


LEFT_OUT = b"[gate: the first 15 of this log's 20 bytes are left out]\n"


@pytest.mark.parametrize(
    ("options", "copied"),
    [
        ({}, TWENTY),
        ({"limit": 20}, TWENTY),
        ({"limit": 19}, refused("twenty: larger than 19 bytes")),
        ({"limit": 5, "tail": True}, LEFT_OUT + b"fghij"),
        ({"limit": 20, "tail": True}, TWENTY),
        ({"expected": FileDigest("twenty", 20, sha(TWENTY))}, TWENTY),
        ({"expected": FileDigest("twenty", 21, sha(TWENTY))}, refused("twenty: 20 bytes, but its result records 21")),
        (
            {"expected": FileDigest("twenty", 20, sha(b""))},
            refused("twenty: does not match the sha256 its result records"),
        ),
    ],
)
def test_a_copy_is_bounded_checked_and_written_whole_or_not_at_all(root, tmp_path, options, copied) -> None:
    target = tmp_path / "out" / "logs" / "copy.log"
    digest = outcome(lambda: copy_inside(root, "twenty", target, **options))
    if isinstance(copied, bytes):
        assert (digest, target.read_bytes()) == (FileDigest("twenty", len(copied), sha(copied)), copied)
    else:
        assert digest == copied
        assert not any(path.is_file() for path in (tmp_path / "out").rglob("*"))  # not even its temporary


# The kernel gives these files a size of 0 and makes their contents as they are read: like a file that grows
# while gate copies it. A process reading its own wchan always reads "0", one byte more than its size.
@pytest.mark.parametrize("grown", ["status", "wchan"])
def test_a_file_that_grows_while_it_is_copied_is_refused(tmp_path, grown) -> None:
    process = Path(f"/proc/{os.getpid()}")
    assert os.stat(process / grown).st_size == 0 and (process / grown).read_bytes()
    assert outcome(lambda: copy_inside(process, grown, tmp_path / "copy")) == refused(
        f"{grown}: changed while it was being copied"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_copy_is_written_beside_its_target_so_that_replacing_the_target_is_atomic(root, tmp_path, monkeypatch):
    """os.replace cannot move a file to another file system: written in /tmp first, a copy could fail there."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-system-temporary-folder"))
    copy_inside(root, "twenty", tmp_path / "out" / "copy")
    assert (tmp_path / "out" / "copy").read_bytes() == TWENTY


def nested(depth: int) -> bytes:
    """A JSON document `depth` containers deep, an object with a list in it at each level."""
    return b'{"a": [' * (depth // 2) + (b"{}" if depth % 2 else b"") + b"]}" * (depth // 2)


# fmt: skip on this table: a case a row or two, as it reads; ruff format would give each field a line.
@pytest.mark.parametrize(
    ("document", "decoded"),
    [
        (b"5", 5),  # a document that is no container has nothing to bound but itself
        (b'"text"', "text"),
        (b"[9007199254740992, -9007199254740992]", [2**53, -(2**53)]),
        (b'{"n": 9007199254740993}', refused("report.json: $.n: the whole number is out of range (beyond ±2**53)")),
        (b'[1, {"n": [-9007199254740993]}]',
         refused("report.json: $[1].n[0]: the whole number is out of range (beyond ±2**53)")),
        (nested(32), json.loads(nested(32))),
        (nested(33), refused("report.json: nested more than 32 deep at $" + ".a[0]" * 16)),
    ],
)  # fmt: skip
def test_json_is_bounded_in_depth_and_in_its_whole_numbers(document, decoded) -> None:
    assert outcome(lambda: decode_json(document, "report.json")) == decoded
