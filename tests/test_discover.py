"""gate.discover: which folders are gated, and that no file can hide a model folder."""

from pathlib import Path

import pytest

from gate.discover import find_model_folders
from gate.errors import ConfigError


def make(root: Path, *files: str) -> Path:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


def gated(folders) -> list[tuple[str, bool]]:
    return [(folder.name, folder.problem is None) for folder in folders]


def test_every_subfolder_of_a_folder_of_models_is_gated(tmp_path) -> None:
    models = make(
        tmp_path / "models",
        "a/model.keras",
        "b/model.h5",
        "c/saved_model/saved_model.pb",
        "empty/.keep",
        ".git/config",
        "README.md",
    )
    assert gated(find_model_folders([models])) == [("a", True), ("b", True), ("c", True), ("empty", True)]


def test_a_model_folder_can_be_passed_itself_and_keep_folders_of_its_own(tmp_path) -> None:
    folder = make(tmp_path / "models" / "cnn", "model.keras", "eval.npz", "saved_model/variables/x", "notes/a.txt")
    assert gated(find_model_folders([folder])) == [("cnn", True)]


@pytest.mark.parametrize("stray", ["model.keras", "model.h5", "gate.toml", "eval.npz", "saved_model/saved_model.pb"])
def test_model_files_beside_model_folders_are_an_error_row_and_hide_nothing(tmp_path, stray) -> None:
    models = make(tmp_path / "models", "a/model.keras", "b/gate.toml", stray)
    folders = find_model_folders([models])
    assert gated(folders) == [("a", True), ("b", True), ("models/", False)]
    assert folders[-1].problem == (
        f"{models}: holds {stray} beside model folders; the files of a model belong in a folder of their own, "
        f"{models}/<name>/, so move them there (or delete them)"
    )


@pytest.mark.parametrize("link", ["a", "a/eval.npz", "a/gate.toml", "a/model.keras", "a/saved_model"])
def test_a_symbolic_link_to_a_folder_or_model_file_is_an_error_row(tmp_path, link) -> None:
    outside = make(tmp_path / "outside", "model.keras", "eval.npz", "gate.toml", "saved_model/saved_model.pb")
    models = make(tmp_path / "models", "b/model.keras")
    if link != "a":
        (models / "a").mkdir()
    (models / link).symlink_to(outside / Path(link).name if link != "a" else outside)
    folders = find_model_folders([models])
    assert gated(folders) == [("a", False), ("b", True)]
    assert folders[0].problem == (
        f"{models / link}: is a symbolic link, which could point anywhere on the machine that runs the gate; "
        "commit the folder or file itself"
    )


def test_a_model_folder_passed_as_dot_keeps_its_name(tmp_path, monkeypatch) -> None:
    folder = make(tmp_path / "models" / "cnn", "model.keras", "eval.npz")
    monkeypatch.chdir(folder)
    assert gated(find_model_folders([Path(".")])) == [("cnn", True)]


@pytest.mark.parametrize("given", ["models", "models/a"])
def test_a_models_folder_that_is_a_symbolic_link_is_refused(tmp_path, monkeypatch, given) -> None:
    make(tmp_path / "outside", "a/model.keras")
    (tmp_path / "models").symlink_to(tmp_path / "outside")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as raised:
        find_model_folders([Path(given)])
    assert str(raised.value) == (
        f"{given}: models is a symbolic link, which could point anywhere on the machine that runs the gate; "
        "commit the folder itself"
    )
