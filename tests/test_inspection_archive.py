"""gate.inspection.archive: .keras archives are checked entry by entry, from the central directory first."""

from __future__ import annotations

import json
import re
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from inspection_models import CONFIG, METADATA, refused, write_keras

from gate.inspection import archive


def symlink_entry(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix, so that the mode bits count
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


ARCHIVES: list[tuple[str, Callable[[Path], dict], str]] = [
    (
        "zip slip",
        lambda m: {"metadata.json": METADATA, "config.json": CONFIG, f"../../{m.name}": "pwned"},
        r"entry '\.\./\.\./marker' climbs out of the archive with '\.\.'.*\(zip slip\)",
    ),
    (
        "absolute path",
        lambda m: {"metadata.json": METADATA, "config.json": CONFIG, str(m): "pwned"},
        r"entry '/.*marker' has an absolute path, which could write outside the extraction folder",
    ),
    (
        "windows path",
        lambda m: {"metadata.json": METADATA, "config.json": CONFIG, "C:\\marker": "pwned"},
        r"entry 'C:\\\\marker' has an absolute path",
    ),
    (
        "missing config",
        lambda m: {"metadata.json": METADATA, "model.weights.h5": b""},
        r"has no config\.json, so it is not a Keras model archive",
    ),
    (
        "missing metadata",
        lambda m: {"config.json": CONFIG, "model.weights.h5": b""},
        r"has no metadata\.json, so it is not a Keras model archive",
    ),
    (
        "metadata not JSON",
        lambda m: {"metadata.json": "keras 3", "config.json": CONFIG},
        r"metadata\.json: is not valid JSON",
    ),
    (
        "metadata not an object",
        lambda m: {"metadata.json": '["3.15.1"]', "config.json": CONFIG},
        r"metadata\.json: keras_version is None, expected a version such as \"3\.15\.1\"",
    ),
    (
        "version not a string",
        lambda m: {"metadata.json": {"keras_version": 3.15}, "config.json": CONFIG},
        r"metadata\.json: keras_version is 3\.15, expected a version",
    ),
    (
        "keras 1",
        lambda m: {"metadata.json": {"keras_version": "1.2.2"}, "config.json": CONFIG},
        r"metadata\.json: written by Keras 1\.2\.2; the gate loads files of Keras 3 and tf-keras 2",
    ),
]


@pytest.mark.parametrize(("entries", "message"), [(e, m) for _, e, m in ARCHIVES], ids=[a[0] for a in ARCHIVES])
def test_bad_archives_are_refused(tmp_path, entries, message) -> None:
    marker = tmp_path / "marker"
    path = write_keras(tmp_path / "models" / "x" / "model.keras", entries(marker))
    refused(path, rf"^{re.escape(str(path))}: " + message, marker)


def test_a_symlink_entry_is_refused(tmp_path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps(METADATA))
        archive.writestr("config.json", json.dumps(CONFIG))
        archive.writestr(symlink_entry("assets/vocabulary.txt", str(marker)), str(marker))
    refused(path, r"entry 'assets/vocabulary\.txt' is a symbolic link, which could point outside the archive", marker)


def test_a_zip_bomb_is_refused_from_the_directory(tmp_path) -> None:
    path = write_keras(
        tmp_path / "model.keras",
        {"metadata.json": METADATA, "config.json": CONFIG, "model.weights.h5": bytes(8 << 20)},
        compression=zipfile.ZIP_DEFLATED,
    )
    refused(
        path,
        r"entry 'model\.weights\.h5' expands \d+x \(\d+ to 8388608 bytes\), more than the 100x a model "
        r"file needs \(a zip bomb\?\)",
    )


def test_an_oversized_config_is_refused_before_it_is_read(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(archive._MAX_JSON_BYTES, "config.json", 1000)
    path = write_keras(tmp_path / "model.keras", {"metadata.json": METADATA, "config.json": b" " * 5000})
    # Damage the entry's local header: reading it would fail with "Bad magic number for file header", so the
    # refusal below can only come from the size the central directory declares, before a byte is read.
    with zipfile.ZipFile(path) as written:
        offset = written.getinfo("config.json").header_offset
    data = bytearray(path.read_bytes())
    data[offset : offset + 4] = b"XXXX"
    path.write_bytes(bytes(data))
    text = refused(path, r"config\.json is larger than 1000 bytes, more than a config needs")
    assert "Bad magic number" not in text


def test_an_entry_larger_than_its_declared_size_is_not_read_past_it(tmp_path) -> None:
    path = write_keras(tmp_path / "model.keras", {"metadata.json": METADATA, "config.json": CONFIG})
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 1)  # config.json in the central directory
    data[entry + 20 : entry + 28] = (10).to_bytes(4, "little") * 2  # declare 10 bytes, compressed and not
    path.write_bytes(bytes(data))
    refused(path, r"is not a readable \.keras archive \(BadZipFile: Bad CRC-32 for file 'config\.json'\)")


@pytest.mark.parametrize("count", [1001, 70_000])
def test_too_many_entries_are_refused_before_reading_them(tmp_path, count) -> None:
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(count):
            archive.writestr(f"assets/{index}", b"")
    message = (
        r"holds 1001 entries \(\d+ bytes of directory\), more than the 1000 a \.keras file needs"
        if count < 0xFFFF
        else r"is a ZIP64 archive \(over 65535 entries or 4 GiB\)"
    )
    refused(path, message)


def test_duplicate_entries_are_refused(tmp_path) -> None:
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(CONFIG))
        archive.writestr("metadata.json", json.dumps(METADATA))
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("config.json", json.dumps({"class_name": "Lambda"}))
    refused(path, r"entry 'config\.json' appears twice, so different readers could read different contents")


@pytest.mark.parametrize("content", ["empty", "random", "truncated"])
def test_unreadable_keras_files_are_refused(keras3_models, garbage, tmp_path, content) -> None:
    valid = keras3_models["cnn.keras"].read_bytes()
    data = {"empty": b"", "random": garbage, "truncated": valid[: len(valid) // 2]}[content]
    path = tmp_path / "model.keras"
    path.write_bytes(data)
    refused(
        path,
        r"is not a zip archive \(empty, truncated or another format\); re-save the model with "
        r"model\.save\(\"model\.keras\"\)",
    )


def test_an_archive_with_a_damaged_entry_is_refused(keras3_models, tmp_path) -> None:
    data = bytearray(keras3_models["cnn.keras"].read_bytes())
    start = data.index(b"config.json") + len("config.json") + 10  # inside config.json's stored bytes
    data[start : start + 20] = b"\x00" * 20
    path = tmp_path / "model.keras"
    path.write_bytes(bytes(data))
    refused(path, r"is not a readable \.keras archive \(BadZipFile: Bad CRC-32 for file 'config\.json'\)")


def test_a_damaged_lzma_entry_is_refused(tmp_path) -> None:
    """zipfile raises lzma.LZMAError, which is none of zipfile's own exceptions, on a damaged LZMA entry."""
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps(METADATA))
        archive.writestr("config.json", json.dumps(CONFIG) * 20, compress_type=zipfile.ZIP_LZMA)
    data = bytearray(path.read_bytes())
    start = data.index(b"config.json") + len("config.json") + 20  # inside the compressed stream
    data[start : start + 30] = bytes(30)
    path.write_bytes(bytes(data))
    refused(path, r"is not a readable \.keras archive \(LZMAError: Corrupt input data\); re-save the model with")
