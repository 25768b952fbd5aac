"""The GitHub Actions workflows: schema-valid, clean under zizmor, and shaped as docs/security.md says.

The three reusable workflows (reusable-*.yml) hold the jobs; the three callers in this repository are what
`gate init` writes, calling them locally with gate-version "checkout"; tool-release.yml releases gate itself.
check-jsonschema and zizmor run as the venv's own executables (both are in the test extra), offline. The
structural tests state the facts a reviewer relies on, so a change that breaks one fails here instead of in a
live run, and the steps' scripts run here as the runner runs them.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
from factories import model_result, shard
from fake_github import FakeGitHub
from helpers import (
    BIN,
    REPO,
    WORKFLOWS,
    comment_requirements,
    commit,
    git,
    heredoc,
    load_workflow,
    run_step,
    workflow_step,
)

from gate.commands.init import CALLERS, caller_workflows
from gate.encoding import dumps
from gate.reporting.markdown import markdown_for_comment
from gate.reporting.report import report_json

HEAD = "c3" * 20
REUSABLE = {name: f"reusable-{name}" for name in CALLERS}  # each caller and the workflow it calls
WITH_STEPS = sorted([*REUSABLE.values(), "tool-release.yml"])
# Each action at one commit everywhere, the version its tag names (read from the actions' repositories).
PINS = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "actions/cache": ("27d5ce7f107fe9357f9df03efb73ab90386fccae", "v5.0.5"),
    "actions/cache/restore": ("27d5ce7f107fe9357f9df03efb73ab90386fccae", "v5.0.5"),
    "actions/cache/save": ("27d5ce7f107fe9357f9df03efb73ab90386fccae", "v5.0.5"),
    "actions/upload-artifact": ("bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"),
    "actions/download-artifact": ("3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c", "v8.0.1"),
    "actions/attest": ("1e69f48acb82d1966a394da916b4c1698aa569d6", "v4.2.2"),
}
_USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+?)@(\S+)(.*)$")


def load(name: str) -> dict:
    return load_workflow(WORKFLOWS / name)


def steps(workflow: dict) -> list[tuple[str, dict]]:
    return [(job_name, step) for job_name, job in workflow["jobs"].items() for step in job.get("steps", [])]


def uses(step: dict) -> str:
    return step.get("uses", "").split("@", 1)[0]


def step_using(workflow: dict, job: str, action: str) -> list[dict]:
    return [step for name, step in steps(workflow) if name == job and uses(step) == action]


def check_jsonschema(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *sorted(folder.glob("*.yml"))],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def zizmor(folder: Path, *options: str) -> list[dict]:
    process = subprocess.run(
        [BIN / "zizmor", "--offline", "--no-config", "--format", "json", "--persona", "pedantic", *options, folder],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode in (0, 11, 12, 13, 14), process.stderr  # 1x: findings of some severity
    return json.loads(process.stdout)


def findings(folder: Path, *options: str) -> list[tuple[str, str]]:
    return [
        (f["ident"], Path(f["locations"][0]["symbolic"]["key"]["Local"]["verbatim_path"]).name)
        for f in zizmor(folder, *options)
    ]


def test_the_workflows_are_there() -> None:
    assert sorted(path.name for path in WORKFLOWS.iterdir()) == sorted([*CALLERS, *WITH_STEPS])


def test_every_workflow_validates_against_the_github_workflows_schema() -> None:
    process = check_jsonschema(WORKFLOWS)
    assert process.returncode == 0, process.stdout + process.stderr


def test_zizmor_finds_nothing_even_as_the_pedantic_persona() -> None:
    assert zizmor(WORKFLOWS) == []


def test_the_suppressed_zizmor_findings_are_the_reviewed_ones() -> None:
    # The workflow_run trigger, and the local calls, which zizmor would have spelled `$/...` (a form GitHub's
    # documentation of reusable workflows does not have yet; `./` is the calling commit's own file).
    assert sorted(findings(WORKFLOWS, "--no-ignores")) == sorted(
        [("dangerous-triggers", "gate-comment.yml")] + [("self-repository", name) for name in CALLERS]
    )
    ignores = [
        (path.name, line.split("# zizmor: ignore", 1)[1])
        for path in WORKFLOWS.glob("*.yml")
        for line in path.read_text().splitlines()
        if "zizmor: ignore" in line
    ]
    assert sorted(ignores) == sorted(
        [
            (
                "gate-comment.yml",
                "[dangerous-triggers] runs only default-branch code; the artifact is validated data, "
                "never executed or checked out",
            )
        ]
        + [(name, "[self-repository] the same commit") for name in CALLERS]
    )


def test_this_repositorys_callers_are_what_gate_init_writes_calling_the_local_workflows() -> None:
    written = caller_workflows(pin=None, branch="main")
    assert {Path(path).name: text for path, text in written.items()} == {
        name: (WORKFLOWS / name).read_text() for name in CALLERS
    }


@pytest.mark.parametrize("name", CALLERS)
def test_a_caller_grants_exactly_what_the_reusable_workflow_needs(name) -> None:
    caller, reusable = load(name), load(REUSABLE[name])
    assert caller["permissions"] == {} and reusable["permissions"] == {}
    (job,) = caller["jobs"].values()
    assert job["uses"] == f"./.github/workflows/{REUSABLE[name]}"
    assert job["with"] == {"gate-version": "checkout"}
    assert set(job) == {"uses", "permissions", "with"}  # no secrets, no concurrency (the reusable one has it)
    # A called job gets at most what its caller grants, and the caller grants no more than those jobs ask.
    needed: dict[str, str] = {}
    for called in reusable["jobs"].values():
        for scope, access in called["permissions"].items():
            needed[scope] = "write" if "write" in (access, needed.get(scope)) else access
    assert job["permissions"] == needed
    inputs = reusable["on"]["workflow_call"]["inputs"]
    assert inputs["gate-version"] == {
        "description": inputs["gate-version"]["description"],
        "type": "string",
        "required": True,
    }
    assert "concurrency" in reusable and "concurrency" not in caller


@pytest.mark.parametrize("name", ["reusable-gate.yml", "reusable-gate-release.yml"])
def test_the_models_and_policies_folders_and_the_python_are_inputs(name) -> None:
    inputs = load(name)["on"]["workflow_call"]["inputs"]
    assert {key: (value["type"], value.get("default")) for key, value in inputs.items()} == {
        "gate-version": ("string", None),
        "models": ("string", "models"),
        "policies": ("string", "policies"),
        "python-version": ("string", "3.11"),
    }


@pytest.mark.parametrize("name", WITH_STEPS)
def test_every_action_is_pinned_to_a_full_commit_with_its_version_in_a_comment(name) -> None:
    text = (WORKFLOWS / name).read_text(encoding="utf-8")
    lines = [_USES_LINE.match(line) for line in text.splitlines()]
    pinned = [(m.group(1), m.group(2), m.group(3).strip()) for m in lines if m]
    assert pinned, f"{name} uses no action"
    for action, ref, comment in pinned:
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{name}: {action}@{ref} is not pinned to a commit"
        assert (ref, comment) == (PINS[action][0], f"# {PINS[action][1]}"), f"{name}: {action}@{ref} {comment}"
    assert len(pinned) == len([step for _, step in steps(load(name)) if "uses" in step])


@pytest.mark.parametrize("name", WITH_STEPS)
def test_least_privilege_and_no_expansion_inside_a_script(name) -> None:
    workflow = load(name)
    assert workflow["permissions"] == {}
    for job_name, job in workflow["jobs"].items():
        assert "permissions" in job, f"{name}: job {job_name} does not say what its token may do"
        assert job["runs-on"] == "ubuntu-latest"
    for job_name, step in steps(workflow):
        # A value expanded into a script is code; passed through env: it is data.
        assert "${{" not in step.get("run", ""), f"{name}: {job_name}: {step.get('name')} expands ${{{{ }}}} in run:"
        if uses(step) == "actions/checkout":
            assert step["with"]["persist-credentials"] is False
        if uses(step) == "actions/setup-python":
            # The comment job's and the tool release's pinned wheels are CPython 3.11's.
            python = (
                "${{ inputs.python-version }}"
                if "python-version" in workflow["on"].get("workflow_call", {}).get("inputs", {})
                else "3.11"
            )
            assert step["with"]["python-version"] == python
    assert not any("pull_request_target" in str(key) for key in workflow["on"])
    for trigger in load(name)["on"]:
        assert trigger in ("workflow_call", "push"), f"{name} runs on {trigger}"


def test_gate_yml_plans_checks_in_a_matrix_and_reports_once() -> None:
    assert load("gate.yml")["name"] == "gate"  # gate-comment.yml's workflow_run names it
    # Every pull request and merge queue group gets the required `report` status: no paths filter skips it.
    assert load("gate.yml")["on"] == {"pull_request": None, "merge_group": None, "push": {"branches": ["main"]}}
    workflow = load("reusable-gate.yml")
    assert workflow["concurrency"] == {
        "group": "gate-${{ github.event.pull_request.number || github.sha }}",
        "cancel-in-progress": "${{ github.event_name == 'pull_request' }}",
    }
    jobs = workflow["jobs"]
    assert {name: job["permissions"] for name, job in jobs.items()} == {
        "plan": {"contents": "read"},
        "check": {"contents": "read"},
        "report": {"contents": "read"},
    }
    for name in jobs:
        (cache,) = step_using(workflow, name, "actions/cache")
        assert cache["with"] == {
            "path": "~/.cache/pip",
            "key": "gate-pip-${{ runner.os }}-${{ inputs.python-version }}-${{ inputs.gate-version }}-"
            "${{ hashFiles('pyproject.toml') }}",
        }
        assert workflow_step(workflow, name, "Install gate")["env"] == {"GATE_VERSION": "${{ inputs.gate-version }}"}

    (checkout,) = step_using(workflow, "plan", "actions/checkout")
    assert checkout["with"]["fetch-depth"] == 0
    plan_step = workflow_step(workflow, "plan", "gate plan")
    assert plan_step["id"] == "plan"
    assert plan_step["env"]["BASE_SHA"] == (
        "${{ github.event.pull_request.base.sha || github.event.merge_group.base_sha }}"
    )

    check = jobs["check"]
    assert check["needs"] == "plan" and check["if"] == "needs.plan.outputs.count != '0'"
    assert check["strategy"] == {"fail-fast": False, "matrix": "${{ fromJSON(needs.plan.outputs.matrix) }}"}
    gate_check = workflow_step(workflow, "check", "gate check")
    assert gate_check["env"] == {"ENTRY": "${{ toJSON(matrix) }}", "POLICIES": "${{ inputs.policies }}"}
    assert gate_check["run"] == 'gate check --entry "$ENTRY" --policies "$POLICIES" --out gate-out --no-cache'
    (upload,) = step_using(workflow, "check", "actions/upload-artifact")
    assert upload["if"] == "always()" and upload["with"]["name"] == "gate-shard-${{ strategy.job-index }}"

    report = jobs["report"]
    assert report["needs"] == ["plan", "check"] and report["if"] == "${{ !cancelled() }}"
    downloads = step_using(workflow, "report", "actions/download-artifact")
    assert [d["with"].get("pattern") for d in downloads] == [None, "gate-shard-*"]
    assert downloads[1]["with"]["merge-multiple"] is False and downloads[1]["with"]["path"] == "shards"
    (restore,) = step_using(workflow, "report", "actions/cache/restore")
    (save,) = step_using(workflow, "report", "actions/cache/save")
    assert restore["with"]["restore-keys"] == "gate-baseline-"
    assert restore["with"]["key"] == (
        "gate-baseline-${{ github.event.pull_request.base.sha || github.event.merge_group.base_sha || "
        "github.event.before }}"
    )
    assert save["with"]["key"] == "gate-baseline-${{ github.sha }}"
    assert restore["with"]["path"] == save["with"]["path"]  # a cache's version includes its paths
    assert "github.event_name == 'push'" in save["if"]
    merge = workflow_step(workflow, "report", "gate merge")
    assert "if" not in merge  # its exit code is the job's, and the job's is the required check
    assert '--plan plan/plan.json --out gate-out "${extra[@]}" --annotate' in merge["run"]
    (report_upload,) = step_using(workflow, "report", "actions/upload-artifact")
    assert report_upload["with"]["name"] == "gate-report" and report_upload["if"] == "${{ !cancelled() }}"
    assert report_upload["with"]["path"].split() == [
        "gate-out/report.md",
        "gate-out/report.json",
        "gate-out/comment.md",
        "gate-out/pull-request.json",
        "gate-out/SHA256SUMS",
        "gate-out/artifacts/",
    ]


def test_gate_comment_never_touches_the_pull_requests_code() -> None:
    assert load("gate-comment.yml")["on"] == {"workflow_run": {"workflows": ["gate"], "types": ["completed"]}}
    workflow = load("reusable-gate-comment.yml")
    assert workflow["on"] == {
        "workflow_call": {"inputs": {"gate-version": workflow["on"]["workflow_call"]["inputs"]["gate-version"]}}
    }
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"actions": "read", "contents": "read", "pull-requests": "write"}
    assert "github.event.workflow_run.event == 'pull_request'" in job["if"]
    (checkout,) = [step for _, step in steps(workflow) if uses(step) == "actions/checkout"]
    # Only gate's own repository checks out: the default branch, to install its gate.
    assert checkout["if"] == "inputs.gate-version == 'checkout'"
    assert checkout["with"]["ref"] == "${{ github.event.repository.default_branch }}"
    assert "head" not in json.dumps(checkout) and "allow-unsafe-pr-checkout" not in checkout["with"]
    (setup,) = [step for _, step in steps(workflow) if uses(step) == "actions/setup-python"]
    assert "cache" not in setup["with"]
    (download,) = [step for _, step in steps(workflow) if uses(step) == "actions/download-artifact"]
    assert download["with"] == {
        "name": "gate-report",
        "path": "${{ runner.temp }}/gate-report",
        "run-id": "${{ github.event.workflow_run.id }}",
        "github-token": "${{ github.token }}",
    }
    runs = [step["run"] for _, step in steps(workflow) if "run" in step]
    assert len(runs) == 2 and runs[1] == 'gate comment --artifact "$REPORT_DIR" --repo "$REPO" --head-sha "$HEAD_SHA"'
    post = workflow_step(workflow, "comment", "Post or update")
    assert post["env"]["HEAD_SHA"] == "${{ github.event.workflow_run.head_sha }}"
    assert post["env"]["GITHUB_TOKEN"] == "${{ github.token }}"


def fake_pip(folder: Path) -> Path:
    """A `pip` that records its arguments, one call a line, in folder/pip.log."""
    folder.mkdir(parents=True, exist_ok=True)
    pip = folder / "pip"
    pip.write_text(f'#!/bin/sh\necho "$*" >> {folder / "pip.log"}\n')
    pip.chmod(0o755)
    return folder / "pip.log"


@pytest.mark.parametrize(("version", "installs"), [("checkout", "install ."), ("0.1.0", "install tflite-gate==0.1.0")])
def test_every_install_step_installs_the_gate_version_it_is_given(tmp_path, version, installs) -> None:
    log = fake_pip(tmp_path / "bin")
    for name in ("reusable-gate.yml", "reusable-gate-release.yml"):
        workflow = load(name)
        for job in workflow["jobs"]:
            done = run_step(
                workflow_step(workflow, job, "Install gate"),
                {"inputs.gate-version": version},
                cwd=tmp_path,
                path=f"{tmp_path / 'bin'}:/usr/bin:/bin",
            )
            assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == [installs] * 4  # plan, check, report; release


@pytest.mark.parametrize(
    ("version", "gate"),
    [
        ("checkout", "install --no-deps --no-build-isolation ."),
        ("0.1.0", "install --no-deps --only-binary :all: tflite-gate==0.1.0"),
    ],
)
def test_the_comment_job_installs_gate_without_its_dependencies_after_the_pinned_ones(tmp_path, version, gate) -> None:
    log = fake_pip(tmp_path / "bin")
    workflow = load("reusable-gate-comment.yml")
    install = workflow_step(workflow, "comment", "Install gate")
    done = run_step(install, {"inputs.gate-version": version}, cwd=tmp_path, path=f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert done.returncode == 0, done.stderr
    requirements = tmp_path / "comment-requirements.txt"
    assert log.read_text().splitlines() == [f"install --no-deps --require-hashes -r {requirements}", gate]
    assert requirements.read_text() == heredoc(install["run"])
    assert [line.split("==")[0] for line in requirements.read_text().splitlines()] == [
        "jinja2",
        "markupsafe",
        "msgspec",
        "setuptools",
    ]
    assert all(re.search(r" --hash=sha256:[0-9a-f]{64}$", line) for line in requirements.read_text().splitlines())


def test_the_release_gates_uploads_attests_then_publishes_without_any_cache() -> None:
    assert load("gate-release.yml")["on"] == {"push": {"tags": ["v*"]}}
    workflow = load("reusable-gate-release.yml")
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "write", "id-token": "write", "attestations": "write"}
    names = [uses(step) or step["run"] for step in job["steps"]]
    assert names == [
        "actions/checkout",
        "actions/setup-python",
        names[2],  # the install, tested above
        'gate check "$MODELS" --policies "$POLICIES" --no-cache --out gate-out',
        "gate release --from gate-out --out release/",
        'gate publish release --repo "$REPO" --tag "$TAG" --draft',
        "actions/attest",
        'gate publish release --repo "$REPO" --tag "$TAG" --finalize',
    ]
    for name in ("reusable-gate-release.yml", "tool-release.yml"):
        text = (WORKFLOWS / name).read_text()
        assert "actions/cache" not in text and "cache:" not in text  # a poisoned cache would reach a release
    (attest,) = [step for step in job["steps"] if uses(step) == "actions/attest"]
    assert attest["with"] == {"subject-checksums": "release/SHA256SUMS"}


def test_the_tool_release_builds_attests_and_publishes_on_its_own_tags() -> None:
    workflow = load("tool-release.yml")
    assert workflow["on"] == {"push": {"tags": ["gate-v*"]}}  # the models' releases are v* (gate-v1 is not one)
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "write", "id-token": "write", "attestations": "write"}
    names = [uses(step) or step["name"] for step in job["steps"]]
    assert names == [
        "actions/checkout",
        "actions/setup-python",
        "Install the build tools, pinned by hash",
        "Build the sdist and the wheel",
        "Install the wheel (its gate publish uploads the release)",
        "Upload the release to a draft",
        "actions/attest",
        "Publish the release",
    ]
    tools = heredoc(workflow_step(workflow, "release", "Install the build tools")["run"])
    assert all(re.search(r"==\S+ --hash=sha256:[0-9a-f]{64}$", line) for line in tools.splitlines())
    (attest,) = [step for step in job["steps"] if uses(step) == "actions/attest"]
    assert attest["with"] == {"subject-checksums": "dist/SHA256SUMS"}


@pytest.mark.slow  # end to end: the workflow's step in bash, gate in a process of its own
def test_the_plan_step_plans_the_models_folder_it_is_given(tmp_path) -> None:
    repo = tmp_path / "repo"
    (repo / "ml" / "models" / "kws").mkdir(parents=True)
    (repo / "ml" / "models" / "kws" / "gate.toml").write_text("")
    (repo / "ml" / "policies").mkdir()
    (repo / "ml" / "policies" / "default.toml").write_text("[accuracy]\nmax_drop = 2.0\n")
    git(repo.parent, "init", "-q", "-b", "main", str(repo))
    base = commit(repo, "one model")
    (repo / "ml" / "models" / "vision").mkdir()
    (repo / "ml" / "models" / "vision" / "gate.toml").write_text("")
    head = commit(repo, "another")
    step = workflow_step(load("reusable-gate.yml"), "plan", "gate plan")
    for event, planned in (("pull_request", ["vision"]), ("push", ["kws", "vision"])):
        (repo / "output").write_text("")
        expressions = {
            "github.event_name": event,
            "github.event.pull_request.base.sha || github.event.merge_group.base_sha": base if event != "push" else "",
            "github.sha": head,
            "inputs.models": "ml/models",
            "inputs.policies": "ml/policies",
        }
        done = run_step(step | {"env": step["env"] | {"GITHUB_OUTPUT": str(repo / "output")}}, expressions, cwd=repo)
        assert done.returncode == 0, done.stderr
        assert json.loads((repo / "plan.json").read_text())["models"] == planned
        assert f"count={len(planned)}" in (repo / "output").read_text()


def installed_copy(name: str, version: str, purelib: Path) -> None:
    """Copy the installed distribution `name` (which must be `version`) into another environment's site-packages."""
    distribution = metadata.distribution(name)
    assert distribution.version == version, f"{name} {distribution.version} is installed, the workflow pins {version}"
    for file in distribution.files or ():
        source = Path(distribution.locate_file(file))
        if source.is_file() and ".." not in file.parts:
            target = purelib / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@pytest.mark.slow
def test_gate_comment_runs_from_a_no_deps_install(tmp_path) -> None:
    """The comment job's install: gate's wheel with --no-deps, and the packages it pins by hash only."""
    source = tmp_path / "source"
    shutil.copytree(REPO / "gate", source / "gate", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            tmp_path / "wheel",
            source,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / "venv"], check=True, timeout=120)
    python = tmp_path / "venv" / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (wheel,) = (tmp_path / "wheel").glob("tflite_gate-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", purelib, wheel],
        check=True,
        capture_output=True,
        timeout=300,
    )
    pins = [line.split()[0].split("==") for line in comment_requirements().splitlines()]
    for name, version in pins:
        if name != "setuptools":  # it builds gate's wheel, which is installed above
            installed_copy(name, version, purelib)

    artifact = tmp_path / "gate-report"
    results = [model_result("digits"), model_result("kws", accuracy=80.0)]
    (artifact / "report.json").parent.mkdir()
    (artifact / "report.json").write_text(dumps(report_json(results)))
    (artifact / "pull-request.json").write_text(json.dumps({"number": 4, "head_sha": HEAD}))
    script = textwrap.dedent("""
        import sys
        import gate
        from gate.cli import main
        print("gate from", gate.__file__, file=sys.stderr)
        sys.exit(main(sys.argv[1:]))
    """)
    with FakeGitHub("octo/models") as github:
        github.add_pull(4, head_sha=HEAD)
        env = {"GITHUB_API_URL": github.api_url, "GITHUB_TOKEN": FakeGitHub.TOKEN, "PATH": "/usr/bin:/bin"}
        process = subprocess.run(
            [
                python,
                "-I",
                "-c",
                script,
                "comment",
                "--artifact",
                artifact,
                "--repo",
                "octo/models",
                "--head-sha",
                HEAD,
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,
        )
    assert process.returncode == 0, process.stderr
    assert f"gate from {purelib}/gate/__init__.py" in process.stderr
    assert "gate: created the report comment on pull request #4" in process.stdout
    assert [c["body"] for c in github.comments_on(4)] == [markdown_for_comment(results, commit=HEAD)]


def download(shards: list[tuple[str, Path]], path: Path) -> None:
    """actions/download-artifact v8.0.1 with `pattern:` and merge-multiple false: each artifact into
    path/<artifact name>/, except when exactly one matches: then into path itself (its src/download-artifact.ts:
    `artifacts.length === 1 ? resolvedPath : path.join(resolvedPath, artifact.name)`)."""
    for name, folder in shards:
        shutil.copytree(folder, path if len(shards) == 1 else path / name)


@pytest.mark.slow  # end to end: the workflow's step in bash, gate in a process of its own
@pytest.mark.parametrize("count", [1, 2, 5])
def test_the_merge_step_merges_the_shards_as_download_artifact_lays_them_out(tmp_path, count) -> None:
    names = [f"model_{index}" for index in range(count)]
    shards = []
    for index, name in enumerate(names):
        shard(tmp_path / "uploaded" / name, [model_result(name)])
        shards.append((f"gate-shard-{index}", tmp_path / "uploaded" / name))
    job = tmp_path / "job"
    download(shards, job / "shards")
    (job / "plan").mkdir()
    (job / "plan" / "plan.json").write_text(json.dumps({"base": "", "models": names, "removed": []}))
    pull_request = {
        "github.event_name": "pull_request",
        "github.event.pull_request.number": "7",
        "github.event.pull_request.head.sha": HEAD,
    }
    process = run_step(workflow_step(load("reusable-gate.yml"), "report", "gate merge"), pull_request, cwd=job)
    assert process.returncode == 0, process.stderr
    report = json.loads((job / "gate-out" / "report.json").read_text())
    assert [(m["name"], m["status"]) for m in report["models"]] == [(name, "PASS") for name in names]
    assert json.loads((job / "gate-out" / "pull-request.json").read_text()) == {"number": 7, "head_sha": HEAD}
    assert sorted(p.name for p in (job / "gate-out" / "artifacts").iterdir()) == sorted(
        f"{name}.{method}.tflite" for name in names for method in ("float32", "int8")
    )


def _codeowners_example() -> list[str]:
    security = (REPO / "docs" / "security.md").read_text(encoding="utf-8")
    block = security.split("protection, e.g. a `.github/CODEOWNERS` of\n\n```\n", 1)[1].split("```", 1)[0]
    return [line.split()[0] for line in block.splitlines() if line.strip()]


def _protected(path: str, patterns: list[str]) -> bool:
    """Whether a CODEOWNERS pattern anchored at the root (`/gate/`, `/pyproject.toml`, `/requirements*.txt`) owns it."""
    return any(
        path.startswith(pattern[1:]) if pattern.endswith("/") else fnmatch.fnmatchcase(path, pattern[1:])
        for pattern in patterns
    )


def _installed_from() -> set[str]:
    """The repository files every `pip install` of the workflows reads: the project for `.`, `-r`/`-c` files."""
    files = set()
    for workflow in WORKFLOWS.glob("*.yml"):
        for _job, step in steps(load(workflow.name)):
            for command in re.findall(r"pip install ([^\n;&|]+)", step.get("run", "")):
                words = command.split()
                for index, word in enumerate(words):
                    if word.strip("'\"").split("[")[0] == ".":
                        files |= {"pyproject.toml", "setup.py", "setup.cfg"}
                    elif word in ("-r", "-c", "--requirement", "--constraint"):
                        if not words[index + 1].strip("'\"").startswith("$"):  # not a file the step writes itself
                            files.add(words[index + 1])
    return files


def test_what_the_workflows_install_from_is_gate_itself_to_plan_and_to_the_codeowners_example() -> None:
    """A pull request that changes what gate is installed from changes the gate: planned and owned like gate/."""
    from gate.ci.plan import GATE_ITSELF

    installed = _installed_from()
    assert {"pyproject.toml", "setup.py", "setup.cfg"} <= installed
    owned = _codeowners_example()
    for path in sorted(installed | {"gate/judge.py", ".github/workflows/gate.yml", "requirements-dev.txt"}):
        assert any(fnmatch.fnmatchcase(path, pattern) for pattern in GATE_ITSELF), f"gate plan ignores {path}"
    for pattern in GATE_ITSELF:
        example = pattern.replace("*", "x")
        assert _protected(example, owned), f"the security model's CODEOWNERS example leaves {example} unprotected"
    assert _protected("policies/default.toml", owned)
