"""Find model folders and the files each one holds (the model contract in the README)."""

from __future__ import annotations

import hashlib
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from gate.errors import ConfigError, ModelError, printable
from gate.files import refuse_links
from gate.results import FileDigest

MODEL_FILES = {"model.keras": "keras", "model.h5": "h5", "saved_model": "saved_model"}
MANIFEST = "gate.toml"
EVAL_DATA, TRAIN_DATA, CALIB_DATA = "eval.npz", "train.npz", "calib.npz"
# Files that make a folder a model folder (rather than a folder of model folders).
FOLDER_MARKERS = ("model.keras", "model.h5", "saved_model/saved_model.pb", MANIFEST, EVAL_DATA)


@dataclass(frozen=True)
class ModelFolder:
    """A folder under models/: its name is the model's name in every report."""

    name: str
    path: Path
    problem: str | None = None  # why the folder cannot be gated, found before any of it is read

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST


@dataclass(frozen=True)
class ModelFiles:
    """The files of a model folder that follow the contract."""

    model: Path  # model.keras, model.h5 or the saved_model/ directory
    format: str  # "keras", "h5" or "saved_model"
    eval_data: Path
    train_data: Path | None
    calib_data: Path | None


def shown(path: Path) -> Path:
    """`path` as messages and reports name it: relative to the working directory (the checkout in CI) inside it.

    An absolute MODEL_DIR or --policies would otherwise put the runner's disk (/home/runner/work/...) into
    every message about the model, the report and the pull request's comment. A folder outside the working
    directory is named as it was given.
    """
    try:
        return path.relative_to(Path.cwd()) if path.is_absolute() else path
    except ValueError:
        return path


def find_model_folders(paths: Sequence[Path]) -> list[ModelFolder]:
    """Each path is a model folder, or a folder of model folders (like models/)."""
    folders: list[ModelFolder] = []
    for path in map(shown, paths):
        if not path.is_dir():
            raise ConfigError(f"{path}: no such folder; pass model folders or the folder that holds them")
        refuse_links(path, "commit the folder itself")
        model_files_here = [marker for marker in FOLDER_MARKERS if (path / marker).exists()]
        subfolders = [
            p for p in sorted(path.iterdir()) if (p.is_dir() or p.is_symlink()) and not p.name.startswith(".")
        ]
        if model_files_here and not any(_is_model_folder(p) for p in subfolders):
            folders.append(_model_folder(path))
            continue
        folders.extend(_model_folder(p) for p in subfolders if not (model_files_here and p.name == "saved_model"))
        if model_files_here:
            # Beside model folders, these files are a mistake (or an attempt to hide the folders): never
            # gate them as a model, never drop the folders, and make the run fail until they move.
            folders.append(
                ModelFolder(
                    f"{_name(path)}/",
                    path,
                    problem=(
                        f"{path}: holds {', '.join(model_files_here)} beside model folders; the files of a model "
                        "belong in "
                        f"a folder of their own, {path}/<name>/, so move them there (or delete them)"
                    ),
                )
            )
    names = [f.name for f in folders]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"two model folders are named {', '.join(duplicates)}; model names must be unique")
    if not folders:
        raise ConfigError(f"no model folders found in {', '.join(map(str, paths))}; see the README's model contract")
    return folders


def _model_folder(path: Path) -> ModelFolder:
    name = _name(path)
    if printable(name) != name:
        return ModelFolder(
            printable(name),
            path,
            problem=(
                f"{printable(str(path))}: the folder name is not valid UTF-8 (its other bytes are shown as \\xNN); "
                "rename the folder using UTF-8 characters"
            ),
        )
    # A link in a pull request can point anywhere on the machine that runs the gate: read none.
    links = [
        p
        for p in (path, *(path / name for name in (*MODEL_FILES, MANIFEST, EVAL_DATA, TRAIN_DATA, CALIB_DATA)))
        if p.is_symlink()
    ]
    problem = None
    if links:
        problem = (
            f"{links[0]}: is a symbolic link, which could point anywhere on the machine that runs the gate; "
            "commit the folder or file itself"
        )
    return ModelFolder(name, path, problem=problem)


def _name(path: Path) -> str:
    """The folder's own name, also for `gate check .` or `..` (whose Path.name is empty or '..')."""
    return Path(os.path.abspath(path)).name


def _is_model_folder(path: Path) -> bool:
    return any((path / marker).exists() for marker in FOLDER_MARKERS)


def model_files(folder: ModelFolder) -> ModelFiles:
    """Identify the model and data files of `folder`, or raise ModelError saying what is missing."""
    present = [name for name in MODEL_FILES if (folder.path / name).exists()]
    if not present:
        raise ModelError(
            f"{folder.path}: no model file; add exactly one of model.keras, model.h5 or a saved_model/ folder"
        )
    if len(present) > 1:
        raise ModelError(
            f"{folder.path}: found {' and '.join(present)}; keep exactly one model per folder so it is clear which "
            "one is gated"
        )
    eval_data = folder.path / EVAL_DATA
    if not eval_data.is_file():
        raise ModelError(
            f"{folder.path}: no eval.npz; add one with arrays x and y so the gate can measure the model on its own data"
        )
    optional = {name: folder.path / name for name in (TRAIN_DATA, CALIB_DATA)}
    return ModelFiles(
        model=folder.path / present[0],
        format=MODEL_FILES[present[0]],
        eval_data=eval_data,
        train_data=optional[TRAIN_DATA] if optional[TRAIN_DATA].is_file() else None,
        calib_data=optional[CALIB_DATA] if optional[CALIB_DATA].is_file() else None,
    )


def custom_object_sources(entry: str) -> tuple[str, ...]:
    """The repository paths whose code runs when the worker imports an allowed custom object's package.

    `my_pkg.layers>Scale` is registered in package `my_pkg.layers`, and importing it runs
    `my_pkg/__init__.py` first, then `my_pkg/layers.py` (or `my_pkg/layers/`): so the whole top-level
    package counts, the folder `my_pkg/` and the module `my_pkg.py`, whichever the repository holds. What
    those import from elsewhere in the repository is not followed. The one resolver both `gate plan` (which
    models a change re-gates) and the result cache's key use; () when the name is no importable module.
    """
    package = entry.split(">", 1)[0].split(".")
    if not all(part.isidentifier() for part in package):
        return ()
    return f"{package[0]}.py", f"{package[0]}/"


def unreviewable_custom_code(entry: str, root: Path) -> str:
    """Why the code `entry`'s import would run is not the reviewed source of `custom_object_sources` ("" if it is).

    The worker imports through a symbolic link, but the cache key digests regular files only (as everywhere
    else, gate never follows a link out of a folder): code behind a link could change unseen. And Python imports a
    compiled module (my_pkg.abi3.so, my_pkg.cpython-311-x86_64-linux-gnu.so) before my_pkg.py, and a bytecode file
    my_pkg.pyc when there is no my_pkg.py: code no reviewer reads. (A committed __pycache__ is never read: the
    workers keep their bytecode in a folder of their own, PYTHONPYCACHEPREFIX.)
    """
    sources = custom_object_sources(entry)
    for source in sources:
        path = root / source.rstrip("/")
        if path.is_symlink():
            return f"{path.relative_to(root).as_posix()} is a symbolic link; {_REGULAR_FILES}"
        if path.is_dir():
            for inner in sorted(path.rglob("*")):
                if inner.is_symlink():
                    return f"{inner.relative_to(root).as_posix()} is a symbolic link; {_REGULAR_FILES}"
                # pkg/mod.*.so is imported before pkg/mod.py, pkg/mod.pyc when there is no mod.py (a __pycache__
                # is never read: PYTHONPYCACHEPREFIX)
                if inner.name.endswith(_COMPILED) and "__pycache__" not in inner.relative_to(path).parts:
                    return (
                        f"{inner.relative_to(root).as_posix()} is compiled code, which Python would import in place of "
                        "a reviewed module of the package; remove it from the repository"
                    )
    package = sources[0].removesuffix(".py") if sources else ""
    for suffix in _COMPILED:
        compiled = root / f"{package}{suffix}"
        if package and (compiled.exists() or compiled.is_symlink()):
            return (
                f"{compiled.name} is compiled code, which Python would import in place of the reviewed {package}.py "
                f"or {package}/; remove it from the repository"
            )
    return ""


def import_from_repository(module: str, root: Path) -> ModuleType:
    """Import `module` (dotted) of the repository at `root`: its top package found by its file, never via sys.path.

    With the root on sys.path while it is imported, every top-level name the module imports and Python has not
    imported yet (sklearn, statistics, ...) would be looked up in the repository first: a root `sklearn/` that no
    reviewer of the module sees would run, and neither `gate plan` nor the cache key follows it. Its submodules are
    found in its own folder (its __path__). sys.path is put back as it was, whatever the module did to it.
    ImportError (ModuleNotFoundError) as Python's own when the repository has no such module.
    """
    import importlib

    top = module.partition(".")[0]
    saved = sys.path[:]
    try:
        if top not in sys.modules:
            _import_top(top, root)
        return importlib.import_module(module)
    finally:
        sys.path[:] = saved


def _import_top(top: str, root: Path) -> None:
    """Import the top-level module or package `top` from `root`, as Python finds it there: a package folder with an
    __init__.py, else top.py, else a folder as a namespace package (compiled code is refused before)."""
    import importlib.util

    folder, file = root / top, root / f"{top}.py"
    if (folder / "__init__.py").is_file():
        spec = importlib.util.spec_from_file_location(top, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])  # fmt: skip
    elif file.is_file():
        spec = importlib.util.spec_from_file_location(top, file)
    elif folder.is_dir():
        spec = importlib.machinery.ModuleSpec(top, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
    else:
        raise ModuleNotFoundError(f"No module named {top!r}", name=top)
    assert spec is not None  # a file location always gives one
    imported = importlib.util.module_from_spec(spec)
    sys.modules[top] = imported  # before its code runs, as Python's import does (a module may import itself)
    try:
        if spec.loader is not None:
            spec.loader.exec_module(imported)
    except BaseException:
        del sys.modules[top]
        raise


_COMPILED = (*importlib.machinery.EXTENSION_SUFFIXES, *importlib.machinery.BYTECODE_SUFFIXES)
_REGULAR_FILES = (
    "gate imports custom code only from regular files of the repository: replace the link with what it points to"
)


def digest(path: Path, relative_to: Path) -> FileDigest:
    """Size and sha256 of one file."""
    sha = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            sha.update(block)
    return FileDigest(
        path=path.relative_to(relative_to).as_posix(), size_bytes=path.stat().st_size, sha256=sha.hexdigest()
    )


def digest_tree(path: Path, relative_to: Path) -> tuple[FileDigest, ...]:
    """Digests of a file, or of every file under a directory, in a stable order."""
    if path.is_file():
        return (digest(path, relative_to),)
    return tuple(digest(p, relative_to) for p in sorted(path.rglob("*")) if p.is_file() and not p.is_symlink())
