"""The result cache: its key (what a model's result depends on, and nothing else), its folder and how an entry is
stored (no TensorFlow needed)."""

from __future__ import annotations

import dataclasses
import importlib.machinery
import json
import tempfile
from pathlib import Path

import pytest
from factories import job, model_result, with_files

from gate import cli
from gate.layout import log_path
from gate.results import ModelResult, Origin
from gate.scheduling import cache as cache_module
from gate.scheduling.cache import Cache, cache_key, default_directory


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
        ("helpers.py", b"class Scale: changed\n"),  # `helpers>Scale` imports the module file helpers.py
    ],
)
def test_the_key_changes_when_a_file_the_result_depends_on_changes(repository, path, data) -> None:
    (repository / "helpers.py").write_text("class Scale: ...\n")
    allowed = ("my_pkg.layers>Scale", "helpers>Scale")
    before = cache_key(job(repository / "models" / "m", allow_custom_objects=allowed), root=repository)
    (repository / path).write_bytes(data)
    assert cache_key(job(repository / "models" / "m", allow_custom_objects=allowed), root=repository) != before


def test_the_key_does_not_change_with_the_order_of_the_policy_keys(repository) -> None:
    """Two gate.toml files that differ only in the order of their keys ask for the same result."""
    policy = job(repository / "models" / "m").policy
    reordered = dict(reversed(policy.items()))
    assert list(reordered) != list(policy)
    assert cache_key(job(repository / "models" / "m", policy=reordered), root=repository) == cache_key(
        job(repository / "models" / "m", policy=policy), root=repository
    )


@pytest.mark.parametrize(("judged", "reused_on_another_machine"), [("latency.max_p50_ms", False), (None, True)])
def test_a_result_that_judges_latency_is_reused_only_on_the_same_kind_of_machine(
    repository, monkeypatch, judged, reused_on_another_machine
) -> None:
    policy = {"accuracy.max_drop": 2.0} | ({judged: 5.0} if judged else {})
    model = job(repository / "models" / "m", policy=policy)
    monkeypatch.setattr(cache_module, "machine", lambda: "AMD EPYC 7763 64-Core Processor, 2 cores, x86_64")
    here = cache_key(model, root=repository)
    monkeypatch.setattr(cache_module, "machine", lambda: "Apple M2, 8 cores, arm64")
    assert (cache_key(model, root=repository) == here) is reused_on_another_machine


def test_the_key_does_not_change_with_where_outputs_go_or_with_compiled_bytecode(repository) -> None:
    base = job(repository / "models" / "m")
    before = cache_key(base, root=repository)
    (repository / "my_pkg" / "__pycache__").mkdir()
    (repository / "my_pkg" / "__pycache__" / "layers.cpython-311.pyc").write_bytes(b"written by the import")
    moved = dataclasses.replace(base, out_dir="elsewhere", log_path="elsewhere/logs/m.log", result_path="/x.json")
    assert cache_key(moved, root=repository) == before


@pytest.mark.parametrize(
    ("environ", "folder"),
    [
        ({}, Path.home() / ".cache" / "gate"),
        ({"XDG_CACHE_HOME": ""}, Path.home() / ".cache" / "gate"),
        ({"XDG_CACHE_HOME": "relative/cache"}, Path.home() / ".cache" / "gate"),  # ignored, as the XDG spec says
        ({"XDG_CACHE_HOME": "/var/cache/ci"}, Path("/var/cache/ci/gate")),
    ],
)
def test_the_default_cache_folder_follows_the_xdg_spec(environ, folder) -> None:
    assert default_directory(environ) == folder


# ---------------------------------------------------------------- storing an entry

KEY = "ab" * 32


def gated(out: Path, name: str = "alpha", key: str = KEY) -> ModelResult:
    """`name` as a run gates it into `out`: its artifacts, benchmark and log written, its result keyed `key`."""
    result = with_files(out, model_result(name))
    (out / "logs").mkdir(exist_ok=True)
    (out / log_path(name)).write_text("converter output\n")
    return dataclasses.replace(result, origin=Origin("2026-12-06T12:00:00+00:00", "a CPU", key, False))


def test_an_entry_stored_again_replaces_the_first_and_a_missing_cache_folder_is_made(tmp_path) -> None:
    warnings: list[str] = []
    cache = Cache(tmp_path / "not" / "yet" / "cache", warn=warnings.append)
    result = gated(tmp_path / "out")
    cache.store(KEY, result, tmp_path / "out")
    (tmp_path / "out" / log_path("alpha")).write_text("the second run's log\n")
    cache.store(KEY, result, tmp_path / "out")  # e.g. after this run ignored a corrupt entry of the key
    assert warnings == []
    assert cache.load(KEY, "alpha", tmp_path / "reused") is not None
    assert (tmp_path / "reused" / log_path("alpha")).read_text() == "the second run's log\n"


def test_an_entry_is_staged_inside_the_cache_folder_so_that_renaming_it_into_place_is_atomic(
    tmp_path, monkeypatch
) -> None:
    """os.rename cannot move a folder to another file system: staged in /tmp, an entry could never be stored."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-system-temporary-folder"))
    warnings: list[str] = []
    cache = Cache(tmp_path / "cache", warn=warnings.append)
    cache.store(KEY, gated(tmp_path / "out"), tmp_path / "out")
    assert warnings == []
    assert [path.name for path in (tmp_path / "cache").iterdir()] == [KEY[:2]]  # no staging folder is left


def test_an_artifact_changed_after_it_was_measured_is_not_stored(tmp_path) -> None:
    """Allowed custom code runs in the worker and could rewrite a .tflite after gate measured it."""
    warnings: list[str] = []
    cache = Cache(tmp_path / "cache", warn=warnings.append)
    result = gated(tmp_path / "out")
    artifact = tmp_path / "out" / "artifacts" / "alpha.int8.tflite"
    artifact.write_bytes(b"x" * artifact.stat().st_size)
    cache.store(KEY, result, tmp_path / "out")
    assert warnings == [
        f"gate: could not write the cache entry of alpha under {tmp_path / 'cache'}: artifacts/alpha.int8.tflite: "
        "does not match the sha256 its result records"
    ]
    assert list((tmp_path / "cache").iterdir()) == []  # nor is its staging folder left behind


def test_a_log_of_64_mib_is_stored_as_its_last_4_mib(tmp_path) -> None:
    cache = Cache(tmp_path / "cache", warn=pytest.fail)
    result = gated(tmp_path / "out")
    with (tmp_path / "out" / log_path("alpha")).open("r+b") as log:
        log.truncate(64 * 1024 * 1024)  # sparse: no disk used
        log.seek(64 * 1024 * 1024 - 4)
        log.write(b"end\n")
    cache.store(KEY, result, tmp_path / "out")
    stored = (tmp_path / "cache" / KEY[:2] / KEY / log_path("alpha")).read_bytes()
    note = b"[gate: the first 62,914,560 of this log's 67,108,864 bytes are left out]\n"
    assert stored.startswith(note) and stored.endswith(b"end\n") and len(stored) == len(note) + 4 * 1024 * 1024


def test_an_entry_without_a_log_is_used(tmp_path) -> None:
    """The log is kept with the entry when there is one; without it, the entry is complete all the same."""
    cache = Cache(tmp_path / "cache", warn=pytest.fail)
    result = gated(tmp_path / "out")
    (tmp_path / "out" / log_path("alpha")).unlink()
    cache.store(KEY, result, tmp_path / "out")
    loaded = cache.load(KEY, "alpha", tmp_path / "reused")
    assert loaded is not None and loaded.origin.from_cache
    assert not (tmp_path / "reused" / log_path("alpha")).exists()


@pytest.mark.parametrize(
    ("entry", "link", "target"),
    [
        ("my_pkg.layers>Scale", "my_pkg/layers.py", "elsewhere/layers.py"),  # a module inside the package
        ("helpers>Scale", "helpers.py", "elsewhere/layers.py"),  # the module file itself
        ("outside>Scale", "outside", "elsewhere"),  # the package folder
    ],
)
def test_custom_code_behind_a_link_is_refused_as_the_cache_cannot_see_it(
    repository, monkeypatch, capsys, entry, link, target
) -> None:
    """The worker would import through the link, but the key digests regular files only: a change behind the
    link would reuse a stale result (found by mutation testing)."""
    (repository / "elsewhere").mkdir()
    (repository / "elsewhere" / "__init__.py").write_text("")
    (repository / "elsewhere" / "layers.py").write_text("class Scale: ...\n")
    (repository / link).unlink(missing_ok=True)
    (repository / link).symlink_to(repository / target)
    (repository / "policies").mkdir()
    (repository / "policies" / "default.toml").write_text(
        (Path(__file__).parent.parent / "policies" / "default.toml").read_text()
    )
    (repository / "models" / "m" / "gate.toml").write_text(f'allow_custom_objects = ["{entry}"]\n')
    monkeypatch.chdir(repository)
    assert cli.main(["check", "--no-cache", "--out", "gate-out"]) == 1
    (model,) = json.loads((repository / "gate-out" / "report.json").read_text())["models"]
    assert model["error"] == (
        f"{Path('models/m/gate.toml')}: allow_custom_objects: {link} is a symbolic link; gate imports custom code only "
        "from regular files of the repository: replace the link with what it points to"
    )


@pytest.mark.parametrize(
    ("entry", "compiled"),
    [
        ("helpers>Scale", "helpers.abi3.so"),  # an extension module: imported before helpers.py
        ("my_pkg.layers>Scale", f"my_pkg{importlib.machinery.EXTENSION_SUFFIXES[0]}"),  # before the package too
        ("gone>Scale", "gone.pyc"),  # bytecode with no source beside it: imported as it is
    ],
)
def test_compiled_code_in_place_of_a_custom_objects_source_is_refused(repository, monkeypatch, entry, compiled) -> None:
    """No reviewer reads a .so or a .pyc, and neither the key nor gate plan would follow it (found by an attack)."""
    (repository / "helpers.py").write_text("class Scale: ...\n")
    (repository / compiled).write_bytes(b"\x7fELF or bytecode")
    (repository / "policies").mkdir()
    (repository / "policies" / "default.toml").write_text(
        (Path(__file__).parent.parent / "policies" / "default.toml").read_text()
    )
    (repository / "models" / "m" / "gate.toml").write_text(f'allow_custom_objects = ["{entry}"]\n')
    monkeypatch.chdir(repository)
    assert cli.main(["check", "--no-cache", "--out", "gate-out"]) == 1
    (model,) = json.loads((repository / "gate-out" / "report.json").read_text())["models"]
    package = entry.split(">")[0].split(".")[0]
    assert model["error"] == (
        f"{Path('models/m/gate.toml')}: allow_custom_objects: {compiled} is compiled code, which Python would import "
        f"in place of the reviewed {package}.py or {package}/; remove it from the repository"
    )
