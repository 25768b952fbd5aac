""".keras archives: the zip's central directory, then metadata.json, config.json and the weights.

Every entry is checked from the central directory (name, type, size,
compression ratio) before any is read, so a zip slip, a link or a zip bomb is
refused without inflating a byte. Then the two JSON entries are walked as
configs and every .h5 entry is checked as HDF5 storage.
"""

from __future__ import annotations

import re
import stat
import struct
import zipfile
from pathlib import Path

from gate.errors import ModelError
from gate.inspection.hdf5 import check_h5_storage
from gate.inspection.keras_config import KerasFindings, check_config, keras_findings, parse_json, writer_of
from gate.inspection.problems import damaged_file, raise_problems

_MAX_ZIP_ENTRIES = 1000  # a .keras file holds three entries plus assets
_MAX_CENTRAL_DIRECTORY_BYTES = 1 << 20
_MAX_UNCOMPRESSED_BYTES = 4 << 30  # far above any on-device model
_MAX_COMPRESSION_RATIO = 100  # Keras stores entries uncompressed; deflated JSON shrinks about 10x
_RATIO_CHECKED_ABOVE_BYTES = 1 << 20  # smaller entries cannot make a bomb
_MAX_JSON_BYTES = {"metadata.json": 1 << 20, "config.json": 64 << 20}
_END_OF_CENTRAL_DIRECTORY = struct.Struct("<4s4H2LH")
_UNREADABLE = "is not a readable .keras archive"
_SAVE_KERAS = 're-save the model with model.save("model.keras")'


def inspect_keras_archive(path: Path, allowed: frozenset[str]) -> KerasFindings:
    """Check a .keras archive entry by entry, then its configs and weights; raise ModelError on any problem."""
    with damaged_file(str(path), _UNREADABLE, _SAVE_KERAS):
        _check_central_directory(path)
        archive = zipfile.ZipFile(path)
    with archive:
        entries = _checked_entries(path, archive.infolist())
        metadata = _read_json_entry(path, archive, entries, "metadata.json")
        config = _read_json_entry(path, archive, entries, "config.json")
        with damaged_file(str(path), _UNREADABLE, _SAVE_KERAS):
            # Read whole, so the CRC is checked before the HDF5 library parses a byte of it.
            weights = {name: archive.read(info) for name, info in entries.items() if name.endswith(".h5")}
    version = metadata.get("keras_version") if isinstance(metadata, dict) else None
    writer = writer_of(path, "metadata.json", version)
    findings = keras_findings(path, writer, [check_config(path, "config.json", config, allowed, is_model=True)], config)
    for name, data in weights.items():
        check_h5_storage(f"{path}: {name}", data, _SAVE_KERAS)
    return findings


def _check_central_directory(path: Path) -> None:
    """Refuse an oversized central directory before zipfile builds every entry of it in memory."""
    size = path.stat().st_size
    with path.open("rb") as stream:
        # The end record is the last 22 bytes, followed by a comment of up to 64 KiB; zipfile searches the same way.
        stream.seek(max(0, size - _END_OF_CENTRAL_DIRECTORY.size - 0xFFFF))
        tail = stream.read()
    start = tail.rfind(b"PK\x05\x06")
    if start < 0 or len(tail) - start < _END_OF_CENTRAL_DIRECTORY.size:
        raise ModelError(f"{path}: is not a zip archive (empty, truncated or another format); {_SAVE_KERAS}")
    fields = _END_OF_CENTRAL_DIRECTORY.unpack_from(tail, start)
    entries, directory_bytes = fields[4], fields[5]
    if entries == 0xFFFF or directory_bytes == 0xFFFFFFFF:
        raise ModelError(f"{path}: is a ZIP64 archive (over 65535 entries or 4 GiB), larger than the gate accepts")
    if entries > _MAX_ZIP_ENTRIES or directory_bytes > _MAX_CENTRAL_DIRECTORY_BYTES:
        raise ModelError(
            f"{path}: holds {entries} entries ({directory_bytes} bytes of directory), more than the "
            f"{_MAX_ZIP_ENTRIES} a .keras file needs; {_SAVE_KERAS}"
        )


def _checked_entries(path: Path, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    """Every entry's name, type and size, from the central directory, before any is read."""
    if len(infos) > _MAX_ZIP_ENTRIES:
        raise ModelError(
            f"{path}: holds {len(infos)} entries, more than the {_MAX_ZIP_ENTRIES} a .keras file needs; {_SAVE_KERAS}"
        )
    problems = []
    entries: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        problem = None
        if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
            problem = "has an absolute path, which could write outside the extraction folder"
        elif ".." in re.split(r"[/\\]", name):
            problem = "climbs out of the archive with '..', which could write outside the extraction folder (zip slip)"
        elif stat.S_ISLNK(info.external_attr >> 16):
            problem = "is a symbolic link, which could point outside the archive"
        elif info.flag_bits & 0x1:
            problem = "is encrypted"
        elif name in entries:
            problem = "appears twice, so different readers could read different contents"
        elif info.file_size > max(_RATIO_CHECKED_ABOVE_BYTES, _MAX_COMPRESSION_RATIO * info.compress_size):
            problem = (
                f"expands {info.file_size / max(info.compress_size, 1):.0f}x ({info.compress_size} to "
                f"{info.file_size} bytes), more than the {_MAX_COMPRESSION_RATIO}x a model file needs (a zip bomb?)"
            )
        if problem:
            problems.append(f"{path}: entry {name!r} {problem}; {_SAVE_KERAS}")
        entries[name] = info
    total = sum(info.file_size for info in infos)
    if total > _MAX_UNCOMPRESSED_BYTES:
        problems.append(f"{path}: entries expand to {total} bytes, more than the {_MAX_UNCOMPRESSED_BYTES} allowed")
    raise_problems(problems)
    return entries


def _read_json_entry(path: Path, archive: zipfile.ZipFile, entries: dict[str, zipfile.ZipInfo], name: str) -> object:
    info = entries.get(name)
    if info is None:
        raise ModelError(f"{path}: has no {name}, so it is not a Keras model archive; {_SAVE_KERAS}")
    limit = _MAX_JSON_BYTES[name]
    too_large = ModelError(f"{path}: {name} is larger than {limit} bytes, more than a config needs; {_SAVE_KERAS}")
    if info.file_size > limit:
        raise too_large
    with damaged_file(str(path), _UNREADABLE, _SAVE_KERAS), archive.open(info) as stream:
        data = stream.read(limit + 1)  # bounded even if the central directory lied about the size
    if len(data) > limit:
        raise too_large
    return parse_json(path, name, data)
