"""A pull request walked end to end on a temporary git repository, with the commands the workflows run.

gate.yml on the default branch: plan every model, gate each matrix entry, merge, keep report.json as the
baseline. On a pull request: plan what changed, gate that shard, merge against the baseline: the comment
shows the changed model's deltas and says the unchanged one was not gated again. gate-release.yml on a tag:
gate every model without the cache and lay out what is published. The matrix jobs and the release run
their steps' own scripts (from the reusable workflows).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from helpers import REPO, WORKFLOWS, commit, git, load_workflow, run_gate, run_step, workflow_step

pytestmark = pytest.mark.slow  # end-to-end: real TensorFlow conversions or gate runs

FOLDERS = {"inputs.models": "models", "inputs.policies": "policies"}  # the reusable workflows' defaults


def gate_shards(repo: Path, plan: Path, prefix: str, env: dict[str, str]) -> list[Path]:
    """The matrix jobs: the check step once per entry of the plan, each shard's gate-out kept apart."""
    step = workflow_step(load_workflow(WORKFLOWS / "reusable-gate.yml"), "check", "gate check")
    shards = []
    for index, entry in enumerate(json.loads(plan.read_text())["include"]):
        done = run_step(step, FOLDERS | {"toJSON(matrix)": json.dumps(entry)}, cwd=repo, env=env)
        assert done.returncode in (0, 1), done.stderr
        shards.append((repo / "gate-out").rename(repo / f"{prefix}-shard-{index}"))
    return shards


@pytest.fixture(scope="module")
def repository(tmp_path_factory, healthy_model) -> Path:
    repo = tmp_path_factory.mktemp("repository")
    git(repo, "init", "-q", "-b", "main")
    shutil.copytree(REPO / "policies", repo / "policies")
    for name in ("kws", "vision"):
        shutil.copytree(healthy_model, repo / "models" / name)
    (repo / ".gitignore").write_text("*-shard-*/\ngate-out/\nbaseline/\nrelease/\n.gate-cache/\n")
    commit(repo, "two models")
    return repo


def test_a_pull_request_end_to_end(repository, tmp_path) -> None:
    repo = repository
    main = git(repo, "rev-parse", "HEAD")
    push_env = {"GITHUB_SHA": main, "GITHUB_REF_NAME": "main"}

    # The push run on the default branch: every model, merged, kept as the baseline.
    assert run_gate("plan", "--all", "--save", "plan-main.json", cwd=repo).exit_code == 0
    shards = gate_shards(repo, repo / "plan-main.json", "main", push_env)
    pushed = run_gate("merge", *shards, "--plan", "plan-main.json", "--out", "baseline", cwd=repo, env=push_env)
    assert pushed.exit_code == 0, pushed.stderr
    assert pushed.report["source"] == {"commit": main, "ref": "main"}

    # A pull request that changes one model.
    git(repo, "checkout", "-q", "-b", "retrain")
    (repo / "models" / "vision" / "gate.toml").write_text("calibration_samples = 20\n")
    head = commit(repo, "recalibrate vision")
    plan = run_gate("plan", "--base", main, "--head", head, "--save", "plan-pr.json", cwd=repo)
    assert [entry["model"] for entry in json.loads(plan.stdout)["include"]] == ["vision"]
    pr_env = {"GITHUB_SHA": head, "GITHUB_REF_NAME": "7/merge"}
    shards = gate_shards(repo, repo / "plan-pr.json", "pr", pr_env)
    merged = run_gate(
        "merge",
        *shards,
        "--plan",
        "plan-pr.json",
        "--baseline",
        "baseline/report.json",
        "--pull-request",
        "7",
        "--head-sha",
        head,
        "--annotate",
        "--out",
        "gate-out",
        cwd=repo,
        env=pr_env,
    )
    assert merged.exit_code == 0, merged.stderr
    assert [m["name"] for m in merged.report["models"]] == ["vision"]  # kws was not gated again
    comment = (repo / "gate-out" / "comment.md").read_text()
    assert comment.startswith("<!-- gate-report -->\n## ✅ gate: the model passes")
    label = f"main@\u200b{main[:7]}"  # the report keeps @ from mentioning anyone
    assert f"**Against the base branch ({label})**" in comment
    (row,) = [line for line in comment.splitlines() if line.startswith("| vision | ✅ PASS → ✅ PASS |")]
    assert f" vs {label})" in row and " → " in row
    assert f"Not gated again, unchanged since {label}: kws." in comment
    assert json.loads((repo / "gate-out" / "pull-request.json").read_text()) == {"number": 7, "head_sha": head}
    assert not [line for line in merged.stdout.splitlines() if line.startswith("::error")]

    # The release on a tag, as its workflow runs it: every model again, no cache, and only what passed is laid out.
    git(repo, "checkout", "-q", "main")
    git(repo, "tag", "v1.0.0")
    # On this machine a run with the default cache has gated main: the release must gate afresh anyway.
    assert run_gate("check", "--out", "local-out", cwd=repo).exit_code == 0
    release = load_workflow(WORKFLOWS / "reusable-gate-release.yml")
    released = run_step(workflow_step(release, "release", "gate check"), FOLDERS, cwd=repo)
    assert released.returncode == 0, released.stderr
    report = json.loads((repo / "gate-out" / "report.json").read_text())
    assert "(cached" not in released.stderr and not any(m["origin"]["from_cache"] for m in report["models"])
    layout = run_step(workflow_step(release, "release", "gate release"), {}, cwd=repo)
    assert layout.returncode == 0, layout.stderr
    files = sorted(p.name for p in (repo / "release").iterdir())
    assert files == ["RELEASE.md", "SHA256SUMS", "kws.int8.tflite", "report.json", "report.md", "vision.int8.tflite"]
    for line in (repo / "release" / "SHA256SUMS").read_text().splitlines():
        sha, name = line.split("  ")
        assert hashlib.sha256((repo / "release" / name).read_bytes()).hexdigest() == sha


def test_a_failing_model_blocks_the_merge_with_annotations_and_the_release(repository, tmp_path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(repository, repo)
    (repo / "models" / "kws" / "gate.toml").write_text(
        'method = "int8"\noverride_reason = "the board has 4 KiB of flash"\n[overrides.size]\nmin_reduction = 100.0\n'
    )
    out = repo / "gate-out"
    run = run_gate("check", "--no-cache", "--out", out, cwd=repo)
    assert run.exit_code == 1
    merged = run_gate("merge", out, "--annotate", "--out", repo / "merged", cwd=repo)
    assert merged.exit_code == 1
    (annotation,) = [line for line in merged.stdout.splitlines() if line.startswith("::error")]
    assert annotation.startswith("::error file=models/kws/gate.toml,title=gate%3A kws failed size.min_reduction::")
    layout = run_gate("release", "--from", out, "--out", tmp_path / "release", cwd=repo)
    assert layout.exit_code == 1
    assert "gate release: kws is FAIL; nothing is published" in layout.stderr
    assert not (tmp_path / "release").exists()
