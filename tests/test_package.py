"""The package tflite-gate, built as tool-release.yml builds it, installed outside the source tree.

The wheel goes into a fresh venv of its own (with pip, as a user's has); TensorFlow and the other
dependencies come from the test venv's site-packages through a path entry, so the install takes seconds,
and no .pth file of the test venv runs there: its editable gate, which maps `gate` to this source tree,
stays out. The venv then sets up a repository with `gate init` and gates it, and the report must be the
one the source tree writes for the same repository.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
from fake_github import FakeGitHub
from helpers import REPO, WORKFLOWS, git, load_workflow, run_gate, run_step, workflow_step

from gate import __version__

pytestmark = pytest.mark.slow  # end-to-end: real TensorFlow conversions or gate runs

COMMIT = "0123456789abcdef0123456789abcdef01234567"
RECORD = {"repository": "octo/gate", "commit": COMMIT, "version": __version__}
PACKAGE_DATA = [
    "gate/reporting/templates/summary.md.j2",
    "gate/schema/report.schema.json",
    "gate/scaffold/default.toml",
    "gate/scaffold/gate.yml",
    "gate/scaffold/gate-comment.yml",
    "gate/scaffold/gate-release.yml",
    "gate/scaffold/models-README.md",
    "gate/release.json",
]


def build(tmp_path: Path, tag: str) -> tuple[subprocess.CompletedProcess, Path]:
    """tool-release.yml's build step on a copy of the source tree, as the tag `tag` would run it."""
    source = tmp_path / "source"
    shutil.copytree(REPO / "gate", source / "gate", ignore=shutil.ignore_patterns("__pycache__", "release.json"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    step = workflow_step(load_workflow(WORKFLOWS / "tool-release.yml"), "release", "python -m build")
    expressions = {"github.ref_name": tag, "github.repository": "octo/gate", "github.sha": COMMIT}
    return run_step(step, expressions, cwd=source), source / "dist"


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    done, folder = build(tmp_path_factory.mktemp("build"), f"gate-v{__version__}")
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def test_the_release_builds_an_sdist_and_a_wheel_with_the_package_data_and_its_record(dist) -> None:
    wheel, sdist = f"tflite_gate-{__version__}-py3-none-any.whl", f"tflite_gate-{__version__}.tar.gz"
    assert sorted(p.name for p in dist.iterdir()) == sorted(["SHA256SUMS", wheel, sdist])
    lines = (dist / "SHA256SUMS").read_text().splitlines()
    sums = {name: digest for digest, name in (line.split("  ") for line in lines)}
    assert sums == {name: hashlib.sha256((dist / name).read_bytes()).hexdigest() for name in (sdist, wheel)}
    with zipfile.ZipFile(dist / wheel) as archive:
        names = archive.namelist()
        assert json.loads(archive.read("gate/release.json")) == RECORD
        metadata = archive.read(f"tflite_gate-{__version__}.dist-info/METADATA").decode()
    assert [name for name in PACKAGE_DATA if name not in names] == []
    assert "gate/commands/init.py" in names and not [n for n in names if n.startswith(("tests/", "models/"))]
    assert f"Name: tflite-gate\nVersion: {__version__}\n" in metadata
    with tarfile.open(dist / sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert [name for name in PACKAGE_DATA if name not in members] == []


def test_the_release_refuses_a_tag_that_is_not_the_version(tmp_path) -> None:
    done, folder = build(tmp_path, "gate-v9.9.9")
    assert done.returncode == 1
    assert done.stdout == (
        f"::error title=tool release::the tag is not gate-v{__version__}, the version in gate/__init__.py\n"
    )
    assert not folder.exists()


def deterministic(report: dict) -> list[dict]:
    """What two runs of the same gate on the same repository and machine agree on: every figure but the timings."""

    def strip(value):
        if isinstance(value, dict):
            timings = ("latency", "seconds", "stage_seconds", "step_seconds", "speedup", "measured_at")
            return {k: strip(v) for k, v in value.items() if k not in timings}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    models = strip(report["models"])
    for model in models:
        for candidate in model["candidates"]:
            for check in candidate["checks"]:
                if check["name"].startswith("latency."):
                    del check["measured"], check["message"]
    return models


def test_the_wheel_installed_outside_the_source_tree_gates_a_repository_as_the_source_tree_does(
    dist, tmp_path, healthy_model
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    python = venv / "bin" / "python"
    (wheel,) = dist.glob("*.whl")
    install = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel]
    subprocess.run(install, check=True, timeout=300)
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "test-venv-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin"}

    repo = tmp_path / "repo"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    which = subprocess.run(
        [python, "-c", "import gate; print(gate.__file__)"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert which.stdout.strip() == f"{purelib}/gate/__init__.py"
    # gate init from the wheel: the workflows call the release the wheel records, with no --pin.
    done = subprocess.run([venv / "bin" / "gate", "init"], cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (
        f"octo/gate/.github/workflows/reusable-gate.yml@{COMMIT} # gate-v{__version__}\n"
        in (repo / ".github" / "workflows" / "gate.yml").read_text()
    )
    shutil.copytree(healthy_model, repo / "models" / "healthy")
    shutil.rmtree(repo / ".github")  # what remains: models/ and policies/ (and .gitignore, CODEOWNERS)

    installed = subprocess.run(
        [venv / "bin" / "gate", "check", "--no-cache", "--out", "wheel-out"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert installed.returncode == 0, installed.stderr
    source = run_gate("check", "--no-cache", "--out", "source-out", cwd=repo)
    assert source.exit_code == 0, source.stderr
    wheel_report = json.loads((repo / "wheel-out" / "report.json").read_text())
    assert wheel_report["gate_version"] == source.report["gate_version"] == __version__
    assert deterministic(wheel_report) == deterministic(source.report)
    # The same gate by gate's own measure: the cache key covers its code's digest and every tool's version.
    assert wheel_report["models"][0]["origin"]["cache_key"] == source.report["models"][0]["origin"]["cache_key"]

    # A damaged release record is named, not trusted.
    Path(purelib, "gate", "release.json").write_text('{"repository": "octo/gate", "commit": "main"}')
    gate_init = [venv / "bin" / "gate", "init", "--force"]
    again = subprocess.run(gate_init, cwd=repo, env=env, capture_output=True, text=True)
    assert again.returncode == 2
    assert "gate/release.json of the installed gate is damaged (--pin: expected OWNER/NAME@COMMIT" in again.stderr


def test_the_release_uploads_the_built_files_to_a_draft_then_publishes_it(dist, github, tmp_path) -> None:
    folder = tmp_path / "job"
    shutil.copytree(dist, folder / "dist")
    workflow = load_workflow(WORKFLOWS / "tool-release.yml")
    expressions = {"github.token": FakeGitHub.TOKEN, "github.repository": "octo/models", "github.ref_name": "gate-v1"}
    for step in ("Upload the release to a draft", "Publish the release"):
        done = run_step(workflow_step(workflow, "release", step), expressions, cwd=folder)
        assert done.returncode == 0, done.stderr
    (release,) = github.releases
    assert (release["tag_name"], release["draft"]) == ("gate-v1", False)
    assert github.assets_of(release) == {path.name: path.read_bytes() for path in dist.iterdir()}
