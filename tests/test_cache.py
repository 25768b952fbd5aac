"""The result cache's key: what a model's result depends on, and nothing else (no TensorFlow needed)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from factories import job

from gate.scheduling.cache import cache_key


@pytest.fixture
def repository(tmp_path) -> Path:
    folder = tmp_path / "models" / "m"
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"PK trained weights")
    (folder / "eval.npz").write_bytes(b"PK eval arrays")
    (tmp_path / "my_pkg").mkdir()
    (tmp_path / "my_pkg" / "__init__.py").write_text("")
    (tmp_path / "my_pkg" / "layers.py").write_text("class Scale: ...\n")
    return tmp_path


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("models/m/model.keras", b"PK retrained weights"),  # a retrained model must never reuse a stale result
        ("models/m/eval.npz", b"PK new eval arrays"),
        ("models/m/calib.npz", b"PK a new file"),
        ("my_pkg/layers.py", b"class Scale: changed\n"),  # `my_pkg.layers>Scale` imports my_pkg.layers
        ("my_pkg/__init__.py", b"import os\n"),  # which runs my_pkg/__init__.py first
    ],
)
def test_the_key_changes_when_a_file_the_result_depends_on_changes(repository, path, data) -> None:
    before = cache_key(job(repository / "models" / "m"), root=repository)
    (repository / path).write_bytes(data)
    assert cache_key(job(repository / "models" / "m"), root=repository) != before


def test_the_key_does_not_change_with_where_outputs_go_or_with_compiled_bytecode(repository) -> None:
    base = job(repository / "models" / "m")
    before = cache_key(base, root=repository)
    (repository / "my_pkg" / "__pycache__").mkdir()
    (repository / "my_pkg" / "__pycache__" / "layers.cpython-311.pyc").write_bytes(b"written by the import")
    moved = dataclasses.replace(base, out_dir="elsewhere", log_path="elsewhere/logs/m.log", result_path="/x.json")
    assert cache_key(moved, root=repository) == before
