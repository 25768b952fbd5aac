"""`gate plan` on temporary git repositories: only what a change can have affected is gated."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from helpers import commit, git

from gate import cli
from gate.ci.plan import Plan, PlannedModel, plan_changes
from gate.errors import ConfigError


@pytest.fixture
def repo(tmp_path) -> Path:
    """Three models: two on the default policy, one on `edge`; gate's own code and a workflow."""
    git(tmp_path, "init", "-q")
    for name, manifest in (("a", ""), ("b", ""), ("c", 'policy = "edge"\n')):
        folder = tmp_path / "models" / name
        folder.mkdir(parents=True)
        (folder / "model.keras").write_bytes(name.encode() * 100)
        (folder / "eval.npz").write_bytes(b"data")
        (folder / "gate.toml").write_text(manifest)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "default.toml").write_text("[accuracy]\nmax_drop = 2.0\n")
    (tmp_path / "policies" / "edge.toml").write_text("[accuracy]\nmax_drop = 1.0\n")
    (tmp_path / "gate").mkdir()
    (tmp_path / "gate" / "judge.py").write_text("# gate\n")
    (tmp_path / "README.md").write_text("readme\n")
    (tmp_path / "models" / "a" / "notes.txt").write_text("notes\n")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "gate.yml").write_text("on: pull_request\n")
    commit(tmp_path, "base")
    return tmp_path


def planned(repo: Path, **kwargs: object) -> list[str]:
    return [m.name for m in plan_changes(base="HEAD~1", repo=str(repo), **kwargs).models]


def moved(repo: Path) -> None:
    (repo / "models/a/notes.txt").rename(repo / "models/b/notes.txt")


def loose(repo: Path) -> None:
    (repo / "models/README.md").write_text("beside the folders\n")
    (repo / "models/NOTES.md").write_text("beside the folders\n")


def hidden(repo: Path) -> None:
    (repo / "models/.cache/a").mkdir(parents=True)
    (repo / "models/.cache/a/x").write_text("not a model")


EVERY = ["a", "b", "c"]


def two_loose(repo: Path) -> None:
    (repo / "models/gate.toml").write_text("\n")
    (repo / "models/eval.npz").write_bytes(b"beside the folders")


# fmt: skip on this table: a case a row or two, as it reads; ruff format would give each field a line.
@pytest.mark.parametrize(
    ("change", "expected", "reason"),
    [
        (lambda r: (r / "models/a/model.keras").write_bytes(b"retrained"), ["a"], "its files changed"),
        (lambda r: (r / "models/b/train.npz").write_bytes(b"new data"), ["b"], "its files changed"),
        (lambda r: (r / "models/c/notes\tv2.txt").write_text("a tab in the name"), ["c"], "its files changed"),
        (moved, ["a", "b"], "its files changed"),  # a rename changes both folders
        (hidden, [], ""),
        (lambda r: (r / "policies/default.toml").write_text("[accuracy]\nmax_drop = 3.0\n"), ["a", "b"],
         "its policy changed (policies/default.toml)"),
        (lambda r: (r / "policies/edge.toml").write_text("[accuracy]\nmax_drop = 0.5\n"), ["c"],
         "its policy changed (policies/edge.toml)"),
        (lambda r: (r / "gate/judge.py").write_text("# changed\n"), EVERY, "gate itself changed (gate/*)"),
        (lambda r: (r / "pyproject.toml").write_text("[project]\n"), EVERY, "gate itself changed (pyproject.toml)"),
        (lambda r: (r / "setup.py").write_text("import setuptools\n"), EVERY, "gate itself changed (setup.py)"),
        (lambda r: (r / ".github/workflows/gate.yml").write_text("on: push\n"), EVERY,
         "gate itself changed (.github/workflows/*)"),
        (lambda r: (r / ".github/CODEOWNERS").write_text("/gate/ @org/team\n"), [], ""),
        (lambda r: (r / "README.md").write_text("docs only\n"), [], ""),
        (loose, [], ""),  # no model's file: models/README.md is what gate init writes
        (lambda r: (r / "models/gate.toml").write_text("\n"), EVERY,
         "files beside the model folders changed (models/gate.toml)"),
        (two_loose, EVERY, "files beside the model folders changed (models/eval.npz, models/gate.toml)"),
    ],
    ids=["model file", "new data file", "tab in a file name", "file moved", "hidden folder", "default policy",
         "named policy", "gate code", "dependency pins", "setup.py", "workflow", "not a workflow", "docs",
         "docs beside the model folders", "a model's file beside the models", "two of them"],
)  # fmt: skip
def test_only_models_a_change_can_affect_are_planned(repo, change, expected, reason) -> None:
    change(repo)
    commit(repo, "change")
    plan = plan_changes(base="HEAD~1", repo=str(repo))
    assert [m.name for m in plan.models] == expected
    assert {m.reason for m in plan.models} == ({reason} if expected else set())
    for model in plan.models:  # what the shards are balanced by: the bytes of its files at head
        assert model.size_bytes == sum(p.stat().st_size for p in (repo / model.path).rglob("*") if p.is_file())


def test_every_model_is_planned_with_all_and_the_plan_names_both_commits(repo) -> None:
    base = git(repo, "rev-parse", "HEAD")
    (repo / "models/a/model.keras").write_bytes(b"retrained")
    head = commit(repo, "change")
    plan = plan_changes(base=base, repo=str(repo), everything=True)
    assert [(m.name, m.reason) for m in plan.models] == [(name, "planned with --all") for name in EVERY]
    assert plan.to_json() == {
        "base": base,
        "head": head,
        "include": [{"model": name, "path": f"models/{name}"} for name in EVERY],
        "models": EVERY,
        "removed": [],
    }


def test_the_plan_compares_the_two_commits_it_is_given_from_anywhere_in_the_clone(repo, tmp_path_factory) -> None:
    (repo / "models/a/model.keras").write_bytes(b"retrained")
    commit(repo, "change a")
    (repo / "models/b/model.keras").write_bytes(b"retrained")
    commit(repo, "change b")
    assert [m.name for m in plan_changes(base="HEAD~2", head="HEAD~1", repo=str(repo)).models] == ["a"]
    assert [m.name for m in plan_changes(base="HEAD~2", repo=str(repo / "gate")).models] == ["a", "b"]
    elsewhere = tmp_path_factory.mktemp("not-a-clone")
    with pytest.raises(
        ConfigError, match=f"^{elsewhere}: not a git repository; run gate plan inside the repository's clone$"
    ):
        plan_changes(base="HEAD", repo=str(elsewhere))
    with pytest.raises(ConfigError, match=r"unknown commit 'HEAD~1\.\.HEAD': fetch it"):
        plan_changes(base="HEAD~1..HEAD", repo=str(repo))  # a range names two commits, not the base


@pytest.mark.parametrize(
    ("module", "changed", "allowed", "source"),
    [
        ("my_layers.py", "my_layers.py", "my_layers>Scale", "my_layers.py"),
        ("my_layers/__init__.py", "my_layers/scale.py", "my_layers>Scale", "my_layers/"),
        # only the part before the first ">" is the module
        ("my_layers.py", "my_layers.py", "my_layers>Scale>v2", "my_layers.py"),
    ],
    ids=["module", "package", "name with a second >"],
)
def test_a_model_whose_custom_objects_module_changed_is_planned(repo, module, changed, allowed, source) -> None:
    (repo / module).parent.mkdir(parents=True, exist_ok=True)
    (repo / module).write_text("# registers Scale\n")
    (repo / "models/b/gate.toml").write_text(f'allow_custom_objects = ["{allowed}"]\n')
    (repo / "other_layers.py").write_text("# allowed by no model\n")
    commit(repo, "allow a custom layer")
    (repo / "other_layers.py").write_text("# changed, but no model imports it\n")
    commit(repo, "unrelated module")
    assert planned(repo) == []
    (repo / changed).write_text("# Scale changed\n")
    commit(repo, "change the layer")
    (model,) = plan_changes(base="HEAD~1", repo=str(repo)).models
    assert (model.name, model.reason) == ("b", f"the code of its custom objects changed ({source})")


def test_a_model_that_switches_policy_is_planned_and_a_deleted_one_is_listed_as_removed(repo) -> None:
    (repo / "models/a/gate.toml").write_text('policy = "edge"\n')
    subprocess.run(["git", "rm", "-rq", "models/b"], cwd=repo, check=True)
    commit(repo, "change")
    plan = plan_changes(base="HEAD~1", repo=str(repo))
    assert [m.name for m in plan.models] == ["a"]
    assert plan.removed == ("b",)
    assert planned(repo, everything=True) == ["a", "c"]


def test_the_matrix_is_usable_by_github_actions_and_shards_beyond_256_models() -> None:
    small = Plan(tuple(PlannedModel(f"m{i}", f"models/m{i}", 10, "") for i in range(3)), (), "b", "h")
    assert small.matrix() == {"include": [{"model": f"m{i}", "path": f"models/m{i}"} for i in range(3)]}
    most = Plan(tuple(PlannedModel(f"m{i:03d}", f"models/m{i:03d}", 10, "") for i in range(256)), (), "b", "h")
    assert most.matrix()["include"][255] == {"model": "m255", "path": "models/m255"}  # 256 jobs: one model each
    models = tuple(PlannedModel(f"m{i:03d}", f"models/m{i:03d}", 1000 if i < 10 else 1, "") for i in range(600))
    entries = Plan(models, (), "b", "h").matrix()["include"]
    assert len(entries) == 256
    assert sorted(p for e in entries for p in e["paths"]) == sorted(m.path for m in models)  # each model once
    sizes = [sum(1000 if int(p[-3:]) < 10 else 1 for p in e["paths"]) for e in entries]
    assert max(sizes) == 1000  # a large model is never shared with another large one
    assert entries[0]["model"] == "shard-001"


def test_the_command_prints_names_or_the_plan_and_writes_github_outputs(repo, monkeypatch, capsys, tmp_path) -> None:
    (repo / "models/c/model.keras").write_bytes(b"retrained")
    commit(repo, "change")
    monkeypatch.chdir(repo)
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    assert cli.main(["plan", "--base", "HEAD~1", "--save", str(tmp_path / "plan.json"), "--github-output"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["include"] == [{"model": "c", "path": "models/c"}]
    assert printed["removed"] == []
    assert json.loads((tmp_path / "plan.json").read_text()) == printed
    assert output.read_text().splitlines() == [
        'matrix={"include":[{"model":"c","path":"models/c"}]}',
        "count=1",
        "removed=[]",
    ]
    assert cli.main(["plan", "--base", "HEAD~1", "--format", "names"]) == 0
    assert capsys.readouterr().out == "c\n"


def test_an_unknown_base_or_a_shallow_clone_says_what_to_fetch(repo, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(repo)
    assert cli.main(["plan", "--base", "no-such-ref"]) == 2
    assert (
        "unknown commit 'no-such-ref': fetch it (git fetch origin no-such-ref) or check the name"
        in capsys.readouterr().err
    )
    base = git(repo, "rev-parse", "HEAD")
    (repo / "models/a/model.keras").write_bytes(b"retrained")
    commit(repo, "change")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)], check=True)
    monkeypatch.chdir(shallow)
    assert cli.main(["plan", "--base", base]) == 2
    assert (
        "this is a shallow clone that lacks it: check out with actions/checkout's fetch-depth: 0, "
        f"or run git fetch origin {base}"
    ) in capsys.readouterr().err


@pytest.mark.parametrize(
    ("allowed", "changed", "planned"),
    [
        ('["my_pkg.layers>Scale"]', "my_pkg/layers.py", ["a"]),  # the module the dotted name imports
        ('["my_pkg.layers>Scale"]', "my_pkg/__init__.py", ["a"]),  # run first when my_pkg.layers is imported
        ('["my_layers>Scale"]', "my_layers.py", ["a"]),
        ('["my_layers>Scale"]', "my_pkg/layers.py", []),
    ],
)
def test_a_change_to_the_code_of_a_models_custom_objects_plans_it(repo, allowed, changed, planned) -> None:
    (repo / "my_pkg").mkdir()
    for path in ("my_pkg/__init__.py", "my_pkg/layers.py", "my_layers.py"):
        (repo / path).write_text("# layers\n")
    (repo / "models/a/gate.toml").write_text(f"allow_custom_objects = {allowed}\n")
    commit(repo, "custom layers")
    (repo / changed).write_text("# changed\n")
    commit(repo, "change")
    plan = plan_changes(base="HEAD~1", repo=str(repo))
    assert [m.name for m in plan.models] == planned
    if planned:
        source = changed.split("/")[0] + ("/" if "/" in changed else "")
        assert plan.models[0].reason == f"the code of its custom objects changed ({source})"


def test_plan_and_the_cache_key_resolve_a_custom_object_to_the_same_code(tmp_path) -> None:
    """One resolver: what `gate plan` watches for a custom object is what the result cache's key hashes."""
    from gate.discover import custom_object_sources
    from gate.scheduling.cache import _custom_code

    (tmp_path / "my_pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "my_pkg" / "layers.py").write_text("# layers\n")
    (tmp_path / "my_pkg" / "__pycache__" / "layers.cpython-311.pyc").write_bytes(b"written by the import")
    assert custom_object_sources("my_pkg.layers>Scale") == ("my_pkg.py", "my_pkg/")
    assert custom_object_sources("../evil>X") == ()
    assert _custom_code(("my_pkg.layers>Scale",), tmp_path) == {
        "my_pkg/": {"layers.py": hashlib.sha256(b"# layers\n").hexdigest()}
    }


@pytest.mark.parametrize(
    "manifest",
    ["allow_custom_objects = 5", "allow_custom_objects = [5]", "policy = 3", "x = " + "[" * 100_000 + "]" * 100_000],
)
def test_a_manifest_gate_check_refuses_does_not_stop_the_plan(repo, manifest) -> None:
    (repo / "models/a/gate.toml").write_text(manifest)
    commit(repo, "broken manifest")
    assert planned(repo) == ["a"]  # gate check then makes it an ERROR row


def test_all_needs_no_base_so_a_force_push_plans_every_model(repo, capsys, monkeypatch) -> None:
    plan = plan_changes(base=None, everything=True, repo=str(repo))
    assert ([m.name for m in plan.models], plan.removed, plan.base) == (["a", "b", "c"], (), "")
    monkeypatch.chdir(repo)
    assert cli.main(["plan", "--all"]) == 0
    assert json.loads(capsys.readouterr().out)["models"] == ["a", "b", "c"]
    assert cli.main(["plan"]) == 2
    assert capsys.readouterr().err == (
        "gate: error: gate plan: --base is needed to plan a change (or --all, to plan every model)\n"
    )


def test_names_are_printed_one_safe_line_each(repo, capsys, monkeypatch) -> None:
    folder = repo / "models" / "::add-mask::x\n::stop-commands::y"
    folder.mkdir()
    (folder / "eval.npz").write_bytes(b"data")
    commit(repo, "hostile folder name")
    monkeypatch.chdir(repo)
    assert cli.main(["plan", "--base", "HEAD~1", "--format", "names"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "\\x3a:add-mask::x\\x0a::stop-commands::y\n"
    assert all(not line.startswith("::") for line in captured.err.splitlines())


@pytest.mark.parametrize("folder", ["../models", "/srv/models", "."])
def test_the_models_folder_must_be_one_of_the_repository(repo, capsys, folder) -> None:
    from gate.cli import main

    assert main(["plan", "--all", "--models", folder]) == 2
    assert f"gate: error: --models: {folder!r} must be a folder inside the repository" in capsys.readouterr().err


def test_a_change_to_a_models_custom_metric_plans_it(repo) -> None:
    (repo / "my_metrics.py").write_text("def f1(outputs, labels): ...\n")
    (repo / "models/a/gate.toml").write_text('task = "custom"\nmetric = "my_metrics:f1"\ndirection = "higher"\n')
    commit(repo, "a custom metric")
    (repo / "my_metrics.py").write_text("def f1(outputs, labels): return 1.0, [1.0]\n")
    commit(repo, "change it")
    (model,) = plan_changes(base="HEAD~1", repo=str(repo)).models
    assert (model.name, model.reason) == ("a", "the code of its metric changed (my_metrics.py)")
