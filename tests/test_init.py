"""`gate init` in a temporary git repository: what it writes validates, it never replaces a file unless told to,
and nothing from the user's environment reaches a workflow unchecked."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from helpers import REPO, GateRun, git, load_workflow, run_gate
from test_workflows import check_jsonschema, findings, zizmor

from gate import __version__
from gate.cli import main
from gate.commands.init import CALLERS, scaffold

COMMIT = "0123456789abcdef0123456789abcdef01234567"
PIN = f"octo/gate@{COMMIT}"
WRITTEN = [
    "policies/default.toml",
    "models/README.md",
    ".github/workflows/gate.yml",
    ".github/workflows/gate-comment.yml",
    ".github/workflows/gate-release.yml",
]


@pytest.fixture
def repository(tmp_path):
    repo = tmp_path / "repo"
    git(tmp_path, "init", "-q", "-b", "trunk", str(repo))
    (repo / ".gitignore").write_text("__pycache__/\ngate-out/")  # one of gate's lines already, no final newline
    return repo


def init(repo: Path, *args: str) -> GateRun:
    """`gate init` run by its `main` in this process: it starts no other and keeps no state, and a fresh process
    for each test (gate compiled anew where no bytecode is kept) was a fifth of the fast suite's time."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.chdir(repo), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        exit_code = main(["init", *args])
    return GateRun(exit_code, stdout.getvalue(), stderr.getvalue(), repo / "gate-out")


def test_it_writes_a_repository_whose_workflows_validate_and_call_the_pinned_release(repository) -> None:
    done = init(repository, "--pin", PIN, "--owner", "@octo/ml-platform")
    assert done.exit_code == 0, done.stderr
    assert [line.removeprefix("gate init: wrote ") for line in done.stderr.splitlines()[: len(WRITTEN)]] == WRITTEN
    assert "gate init: added 1 line(s) to .gitignore" in done.stderr
    assert "gate init: added 2 line(s) to .github/CODEOWNERS" in done.stderr
    assert done.stderr.splitlines()[-4:] == [
        f"gate init: the workflows call gate {__version__} from octo/gate@{COMMIT[:12]}. Next:",
        "  1. Review and commit what was written: git add -A && git commit -m 'Gate the models with gate'; push.",
        "  2. Protect the default branch as .github/CODEOWNERS says: require review from Code Owners and the status "
        "check 'gate / report'.",
        "  3. Add a model as models/README.md says, check it with gate validate and gate check, and open a pull "
        "request: the report comes as a comment.",
    ]
    workflows = repository / ".github" / "workflows"
    process = check_jsonschema(workflows)
    assert process.returncode == 0, process.stdout + process.stderr
    assert zizmor(workflows) == []
    assert findings(workflows, "--no-ignores") == [("dangerous-triggers", "gate-comment.yml")]
    for name in CALLERS:
        (job,) = load_workflow(workflows / name)["jobs"].values()
        assert job["uses"] == f"octo/gate/.github/workflows/reusable-{name}@{COMMIT}"
        assert job["with"] == {"gate-version": __version__}
        assert f"@{COMMIT} # gate-v{__version__}\n" in (workflows / name).read_text()
    assert load_workflow(workflows / "gate.yml")["on"]["push"] == {"branches": ["trunk"]}  # the repository's branch
    assert (repository / "policies" / "default.toml").read_text() == scaffold("default.toml")
    assert (repository / ".gitignore").read_text() == (
        "__pycache__/\ngate-out/\n\n"
        "# gate: gate check's reports, and the latency runs pytest-benchmark keeps\n.benchmarks/\n"
    )
    codeowners = (repository / ".github" / "CODEOWNERS").read_text().splitlines()
    assert codeowners[-2:] == ["/policies/  @octo/ml-platform", "/.github/   @octo/ml-platform"]
    assert any("Require review from Code Owners" in line for line in codeowners)
    # What it wrote is a repository gate validates (no model yet: models/README.md is not one).
    assert "no model folders found in models" in run_gate("validate", cwd=repository).stderr


def test_a_second_run_refuses_and_force_replaces_naming_each_file(repository) -> None:
    assert init(repository, "--pin", PIN).exit_code == 0
    policy = repository / "policies" / "default.toml"
    policy.write_text("[accuracy]\nmax_drop = 9.0\n")
    again = init(repository, "--pin", PIN)
    assert again.exit_code == 2
    assert f"{repository} already has {', '.join(WRITTEN)}; nothing was written. Pass --force" in again.stderr
    assert policy.read_text() == "[accuracy]\nmax_drop = 9.0\n"
    forced = init(repository, "--pin", PIN, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert [f"gate init: replaced {path}" for path in WRITTEN] == forced.stderr.splitlines()[: len(WRITTEN)]
    assert policy.read_text() == scaffold("default.toml")
    assert "gate init: .gitignore already has gate's lines" in forced.stderr  # lines are added once
    codeowners = (repository / ".github" / "CODEOWNERS").read_text()
    assert codeowners.count("/policies/") == 1 and "# /policies/  @your-org/ml-platform" in codeowners


def test_it_adds_to_the_codeowners_file_github_reads(repository) -> None:
    (repository / "CODEOWNERS").write_text("*  @octo/everyone")
    assert init(repository, "--pin", PIN, "--owner", "@octo/ml").exit_code == 0
    assert not (repository / ".github" / "CODEOWNERS").exists()  # it would hide the repository's own
    lines = (repository / "CODEOWNERS").read_text().splitlines()
    assert lines[0] == "*  @octo/everyone" and lines[-2:] == ["/policies/  @octo/ml", "/.github/   @octo/ml"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "this gate {version} was not built by a gate release (it has no gate/release.json)"),
        (("--pin", "octo/gate@main"), "--pin: expected OWNER/NAME@COMMIT with the commit's 40 hex digits"),
        (("--pin", f"octo/gate`echo/x@{COMMIT}"), "--pin: expected OWNER/NAME, got 'octo/gate`echo/x'"),
        (("--pin", PIN, "--branch", 'main"]\n  evil: ['), "the branch name 'main\"]\\n  evil: [' has characters"),
        (("--pin", PIN, "--branch", "!main"), "the branch name '!main' has characters gate does not write"),
        (("--pin", PIN, "--owner", "@octo/ml\n/gate/ @me"), "--owner: expected @org/team, @user or an e-mail"),
    ],
)
def test_what_comes_from_the_environment_is_checked_before_anything_is_written(repository, args, message) -> None:
    done = init(repository, *args)
    assert done.exit_code == 2
    assert message.format(version=__version__) in done.stderr
    assert sorted(p.name for p in repository.iterdir()) == [".git", ".gitignore"]


def test_a_branch_name_that_cannot_go_into_a_workflow_is_refused(tmp_path) -> None:
    repo = tmp_path / "repo"
    git(tmp_path, "init", "-q", "-b", "feature#1", str(repo))  # a valid git branch; `#` would start a YAML comment
    done = init(repo, "--pin", PIN)
    assert done.exit_code == 2
    assert "the branch name 'feature#1' has characters gate does not write into a workflow" in done.stderr
    assert init(repo, "--pin", PIN, "--branch", "main").exit_code == 0


def test_outside_a_git_repository_it_says_what_to_do(tmp_path) -> None:
    folder = tmp_path / "not-a-repo\x1b]0;title\x07"
    folder.mkdir()
    done = init(folder, "--pin", PIN)
    assert done.exit_code == 2
    assert "is not inside a git repository; run it in your repository's clone (git init first" in done.stderr
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr  # the folder's name is shown escaped
    assert list(folder.iterdir()) == []


def test_it_writes_through_no_symbolic_link(repository, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (repository / ".github").symlink_to(elsewhere)
    done = init(repository, "--pin", PIN)
    assert done.exit_code == 2
    assert f"gate init: {repository / '.github'} is a symbolic link" in done.stderr
    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in repository.iterdir()) == [".git", ".github", ".gitignore"]  # nothing written


def test_this_repositorys_default_policy_is_what_gate_init_writes() -> None:
    assert (REPO / "policies" / "default.toml").read_text() == scaffold("default.toml")


def test_the_model_contract_it_writes_is_short_and_has_the_snippet() -> None:
    contract = scaffold("models-README.md")
    assert len(contract.splitlines()) <= 30
    assert 'np.savez("models/my_model/eval.npz", x=x_eval.astype(np.float32), y=y_eval)' in contract
