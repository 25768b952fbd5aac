"""gate comment against a fake GitHub API on 127.0.0.1 (tests/fake_github.py).

The artifact it reads was written by code the pull request controls: the comment is rendered by gate
comment itself, from the artifact's report.json once validated, never from Markdown found there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from factories import model_result, on_device, regression_result, two_output_result
from fake_github import Answer, FakeGitHub
from helpers import comment_requirements

from gate import cli
from gate.encoding import dumps
from gate.reporting.compare import Baseline, compare
from gate.reporting.markdown import COMMENT_MARKER, GITHUB_COMMENT_LIMIT, markdown_for_comment
from gate.reporting.report import report_json

REPO = "octo/models"
HEAD = "a1" * 20
OTHER = "b2" * 20
BASE = "3f2a1c9" + "0" * 33
RESULTS = (model_result("digits"),)
MARKER_FILE = Path("/tmp/gate-test-payload-ran")  # every payload below would create it if it ever ran
PAYLOAD = f"$(touch {MARKER_FILE})"


def expected_body(results=RESULTS, comparison=None) -> str:
    return markdown_for_comment(results, comparison, commit=HEAD)


def report_artifact(
    folder: Path,
    *,
    results=RESULTS,
    comparison=None,
    report: object = None,
    pull_request: object = None,
    number: int | None = 7,
    head_sha: str = HEAD,
) -> Path:
    """What gate merge writes into the gate-report artifact: report.json, comment.md and pull-request.json."""
    folder.mkdir(parents=True, exist_ok=True)
    document = report if report is not None else report_json(results, comparison)
    (folder / "report.json").write_text(document if isinstance(document, str) else dumps(document), encoding="utf-8")
    (folder / "comment.md").write_text(expected_body(results, comparison), encoding="utf-8")
    record = pull_request if pull_request is not None else {"number": number, "head_sha": head_sha}
    text = record if isinstance(record, str) else json.dumps(record)
    (folder / "pull-request.json").write_text(text, encoding="utf-8")
    return folder


def comment(artifact: Path, head_sha: str = HEAD) -> int:
    return cli.main(["comment", "--artifact", str(artifact), "--repo", REPO, "--head-sha", head_sha])


# The sticky comment


def test_the_first_run_creates_the_comment_and_the_second_updates_it(github, tmp_path, capsys) -> None:
    github.add_pull(7, head_sha=HEAD)
    github.add_comment(7, "LGTM", login="octocat")
    assert comment(report_artifact(tmp_path / "one")) == 0
    assert "gate: created the report comment on pull request #7: https://github.test/" in capsys.readouterr().out
    failing = (model_result("digits", accuracy=80.0),)
    assert comment(report_artifact(tmp_path / "two", results=failing)) == 0
    assert "gate: updated the report comment on pull request #7" in capsys.readouterr().out
    ours = [c for c in github.comments_on(7) if c["body"].startswith(COMMENT_MARKER)]
    assert [c["body"] for c in ours] == [expected_body(failing)]
    assert ours[0]["body"].startswith(f"{COMMENT_MARKER}\n## ❌ gate: the model failed")
    assert len(github.comments_on(7)) == 2  # the person's comment and gate's one
    assert github.calls("POST") == ["POST /api/repos/octo/models/issues/7/comments"]
    assert github.calls("PATCH") == [f"PATCH /api/repos/octo/models/issues/comments/{ours[0]['id']}"]


def test_the_comment_names_the_gated_commit_and_the_base_it_compares_with(github, tmp_path) -> None:
    github.add_pull(7, head_sha=HEAD)
    baseline = Baseline(f"main@{BASE[:7]}", BASE, {"digits": RESULTS[0]})
    comparison = compare(RESULTS, baseline, planned_base=BASE)
    assert comment(report_artifact(tmp_path, comparison=comparison)) == 0
    (posted,) = github.comments_on(7)
    lines = posted["body"].splitlines()
    assert lines[3] == "Gated commit `a1a1a1a`, compared with main@\u200b3f2a1c9."
    assert "[!WARNING]" not in posted["body"]


def test_a_comparison_with_another_commit_than_the_base_is_called_out(github, tmp_path) -> None:
    """restore-keys can restore an older baseline: the comment says whose figures it compares with."""
    github.add_pull(7, head_sha=HEAD)
    older = "c3" * 20
    comparison = compare(RESULTS, Baseline(f"main@{older[:7]}", older, {"digits": RESULTS[0]}), planned_base=BASE)
    assert comment(report_artifact(tmp_path, comparison=comparison)) == 0
    (posted,) = github.comments_on(7)
    assert (
        "> **The changes above are against main@\u200bc3c3c3c, not against this change's base, `3f2a1c9`:** no "
        "baseline report of that commit was found, so an older one was used."
    ) in posted["body"]


def test_the_comment_is_found_on_a_later_page(monkeypatch, tmp_path) -> None:
    with FakeGitHub(REPO, page_size=2) as github:
        monkeypatch.setenv("GITHUB_API_URL", github.api_url)
        monkeypatch.setenv("GITHUB_TOKEN", FakeGitHub.TOKEN)
        github.add_pull(7, head_sha=HEAD)
        for index in range(5):
            github.add_comment(7, f"comment {index}", login="octocat")
        ours = github.add_comment(7, f"{COMMENT_MARKER}\nold report")
        assert comment(report_artifact(tmp_path)) == 0
    assert ours["body"] == expected_body() and len(github.comments_on(7)) == 6
    pages = [r.query.get("page", "1") for r in github.requests if r.path.endswith("/issues/7/comments")]
    assert pages == ["1", "2", "3"]


def test_only_the_bots_comment_that_starts_with_the_marker_is_ever_edited(github, tmp_path) -> None:
    github.add_pull(7, head_sha=HEAD)
    quoted = github.add_comment(7, f"why does the bot write {COMMENT_MARKER}?", login="octocat")
    # Another workflow's comment, by the same bot, that quotes the marker: not gate's.
    other_workflow = github.add_comment(7, f"Coverage report (not {COMMENT_MARKER}): 93%")
    oldest = github.add_comment(7, f"{COMMENT_MARKER}\nold")
    newer = github.add_comment(7, f"{COMMENT_MARKER}\nolder duplicate")
    assert comment(report_artifact(tmp_path)) == 0
    assert quoted["body"] == f"why does the bot write {COMMENT_MARKER}?"
    assert other_workflow["body"] == f"Coverage report (not {COMMENT_MARKER}): 93%"
    assert (oldest["body"], newer["body"]) == (expected_body(), f"{COMMENT_MARKER}\nolder duplicate")
    assert github.calls("POST") == []


def test_a_bot_comment_that_only_quotes_the_marker_gets_a_new_comment_beside_it(github, tmp_path) -> None:
    github.add_pull(7, head_sha=HEAD)
    other_workflow = github.add_comment(7, f"> {COMMENT_MARKER}\nquoted by another workflow")
    assert comment(report_artifact(tmp_path)) == 0
    assert other_workflow["body"] == f"> {COMMENT_MARKER}\nquoted by another workflow"
    assert [c["body"] for c in github.comments_on(7)][1:] == [expected_body()]


def test_a_report_of_thousands_of_models_is_fitted_and_accepted(github, tmp_path) -> None:
    github.add_pull(7, head_sha=HEAD)
    results = tuple(model_result(f"model_{i:04d}", accuracy=80.0 if i % 9 == 0 else 95.0) for i in range(600))
    assert comment(report_artifact(tmp_path, results=results)) == 0  # the fake answers 422 to a longer body
    (posted,) = github.comments_on(7)
    assert len(posted["body"]) <= GITHUB_COMMENT_LIMIT
    assert posted["body"].startswith(f"{COMMENT_MARKER}\n## ❌ gate: 67 of 600 models failed, 533 passed")


@pytest.mark.parametrize("record", [{"head_sha": HEAD}, {"number": None, "head_sha": HEAD}])
def test_a_fork_pull_request_is_found_by_its_head_sha(github, tmp_path, capsys, record) -> None:
    github.add_pull(3, head_sha=OTHER)
    github.add_pull(9, head_sha=HEAD)
    assert comment(report_artifact(tmp_path, pull_request=record)) == 0
    assert "on pull request #9" in capsys.readouterr().out
    assert [c["body"] for c in github.comments_on(9)] == [expected_body()]
    assert f"GET /api/repos/octo/models/commits/{HEAD}/pulls" in github.calls()
    assert "GET /api/repos/octo/models/pulls" not in github.calls()


@pytest.mark.parametrize(
    "commit_pulls", [Answer(200, []), Answer(422, {"message": f"No commit found for SHA: {HEAD}"})]
)
def test_a_fork_pull_request_is_found_among_the_open_pulls_when_the_commit_lookup_finds_none(
    monkeypatch, tmp_path, commit_pulls
) -> None:
    with FakeGitHub(REPO, page_size=2) as github:
        monkeypatch.setenv("GITHUB_API_URL", github.api_url)
        monkeypatch.setenv("GITHUB_TOKEN", FakeGitHub.TOKEN)
        github.commit_pulls_answer = commit_pulls
        for number in range(1, 6):
            github.add_pull(number, head_sha=OTHER)
        github.add_pull(6, head_sha=HEAD, state="closed")
        github.add_pull(8, head_sha=HEAD)
        assert comment(report_artifact(tmp_path, number=None)) == 0
    assert [c["body"] for c in github.comments_on(8)] == [expected_body()]
    listed = [r.query for r in github.requests if r.path == "/api/repos/octo/models/pulls"]
    assert [(q["state"], q.get("page", "1")) for q in listed] == [("open", "1"), ("open", "2"), ("open", "3")]


def test_no_open_pull_request_with_that_head_is_a_skip(github, tmp_path, capsys) -> None:
    github.add_pull(3, head_sha=OTHER)
    assert comment(report_artifact(tmp_path, number=None)) == 0
    assert capsys.readouterr().out == (
        f"gate: no open pull request of octo/models has head {HEAD}; nothing to comment on (skipped)\n"
    )
    assert github.calls("POST") == github.calls("PATCH") == []


def test_a_report_of_a_commit_the_pull_request_has_moved_past_is_skipped(github, tmp_path, capsys) -> None:
    github.add_pull(7, head_sha=OTHER)  # a newer push
    github.add_comment(7, f"{COMMENT_MARKER}\nreport of the newer push")
    assert comment(report_artifact(tmp_path)) == 0
    assert capsys.readouterr().out == (
        f"gate: pull request #7 is now at {OTHER}, not {HEAD}: this report is stale "
        "(the newer push gets its own); skipped\n"
    )
    assert github.calls("POST") == github.calls("PATCH") == []
    assert github.comments_on(7)[0]["body"] == f"{COMMENT_MARKER}\nreport of the newer push"


# The artifact is untrusted input


def test_markdown_the_pull_requests_code_wrote_is_never_posted(github, tmp_path) -> None:
    """comment.md claims an all-pass report with mentions, a tracking image and a link; report.json says FAIL."""
    github.add_pull(7, head_sha=HEAD)
    failing = (model_result("digits", accuracy=80.0),)
    folder = report_artifact(tmp_path, results=failing)
    forged = (
        f"{COMMENT_MARKER}\n## ✅ gate: all 1 model(s) pass\n@org/team please merge "
        "![](https://tracker.example/pixel.png) [the report](https://phish.example/login)\n<!-- the rest -->\n"
    )
    (folder / "comment.md").write_text(forged)
    assert comment(folder) == 0
    (posted,) = github.comments_on(7)
    assert posted["body"] == expected_body(failing)
    assert "## ❌ gate: the model failed" in posted["body"]
    assert not any(text in posted["body"] for text in ("@org", "tracker.example", "phish.example", "<!-- the rest"))


def _symlinked(name: str):
    def change(folder: Path) -> None:
        (folder / f"elsewhere-{name}").write_bytes((folder / name).read_bytes())
        (folder / name).unlink()
        (folder / name).symlink_to(folder / f"elsewhere-{name}")

    return change


def _forged_pass(*, checks_too: bool):
    """A report whose model says PASS while its accuracy check failed (or says that check passed, too)."""

    def forge(folder: Path) -> None:
        document = report_json((model_result("digits", accuracy=80.0),))
        candidate = document["models"][0]["candidates"][0]
        document["status"] = document["models"][0]["status"] = candidate["status"] = "PASS"
        candidate["reason"] = ""
        if checks_too:
            candidate["checks"][1]["status"] = "PASS"
        (folder / "report.json").write_text(dumps(document))

    return forge


def _rewritten(change):
    def rewrite(folder: Path) -> None:
        (folder / "report.json").write_text(change((folder / "report.json").read_text()))

    return rewrite


@pytest.mark.parametrize(
    ("artifact", "change", "message"),
    [
        (
            {"pull_request": {"number": f"12; {PAYLOAD}", "head_sha": HEAD}},
            None,
            "pull-request.json: number: expected a positive whole number, got '12; $(touch "
            "/tmp/gate-test-payload-ran)'",
        ),
        (
            {"pull_request": {"number": "12", "head_sha": HEAD}},
            None,
            "pull-request.json: number: expected a positive whole number, got '12'",
        ),
        (
            {"pull_request": {"number": 12.0, "head_sha": HEAD}},
            None,
            "pull-request.json: number: expected a positive whole number, got 12.0",
        ),
        (
            {"pull_request": {"number": True, "head_sha": HEAD}},
            None,
            "pull-request.json: number: expected a positive whole number, got True",
        ),
        (
            {"pull_request": {"number": 0, "head_sha": HEAD}},
            None,
            "pull-request.json: number: expected a positive whole number, got 0",
        ),
        (
            {"pull_request": {"number": -7, "head_sha": HEAD}},
            None,
            "pull-request.json: number: expected a positive whole number, got -7",
        ),
        (
            {"pull_request": {"number": [7], "head_sha": HEAD}},
            None,
            "pull-request.json: number: expected a positive whole number, got [7]",
        ),
        (
            {"pull_request": {"number": 7, "head_sha": OTHER}},
            None,
            (
                f"pull-request.json: head_sha: {OTHER} is not the head of the run that triggered this one (--head-sha "
                f"{HEAD}); the artifact does not belong to that run"
            ),
        ),
        (
            {"pull_request": {"number": 7, "head_sha": HEAD.upper()}},
            None,
            f"pull-request.json: head_sha: expected 40 lowercase hex digits, got '{HEAD.upper()}'",
        ),
        (
            {"pull_request": {"number": 7, "head_sha": HEAD + "\n"}},
            None,
            "pull-request.json: head_sha: expected 40 lowercase hex digits, got 'a1a1a1",
        ),
        (
            {"pull_request": {"number": 7}},
            None,
            "pull-request.json: head_sha: expected 40 lowercase hex digits, got None",
        ),
        (
            {"pull_request": {"number": 7, "head_sha": HEAD, "run": PAYLOAD}},
            None,
            "pull-request.json: run: unknown key; expected number and head_sha",
        ),
        (
            {"pull_request": f'{{"number": 7, "number": 8, "head_sha": "{HEAD}"}}'},
            None,
            "pull-request.json: not valid JSON (duplicate key 'number')",
        ),
        (
            {"pull_request": f'{{"number": NaN, "head_sha": "{HEAD}"}}'},
            None,
            "pull-request.json: not valid JSON (NaN is not JSON)",
        ),
        (
            {"pull_request": "[7]"},
            None,
            'pull-request.json: expected a JSON object {"number": N, "head_sha": "..."}, got [7]',
        ),
        ({"pull_request": "7" * 5000}, None, "pull-request.json: larger than 4,096 bytes"),
        ({}, _symlinked("pull-request.json"), "pull-request.json: is a symbolic link, which could lead anywhere"),
        ({}, lambda folder: (folder / "pull-request.json").unlink(), "pull-request.json: missing; download the"),
        ({}, _symlinked("report.json"), "report.json: is a symbolic link, which could lead anywhere"),
        ({}, lambda folder: (folder / "report.json").unlink(), "report.json: missing; not a report this gate can"),
        (
            {},
            lambda folder: ((folder / "report.json").unlink(), (folder / "report.json").mkdir()),
            "report.json: not a regular file",
        ),
        (
            {},
            _forged_pass(checks_too=False),
            "report.json: models[0] ('digits'): candidates[0]: says PASS (size.min_reduction PASS; accuracy.max_drop "
            "FAIL; io.input_dtype PASS; io.output_dtype PASS; latency.max_p50_ms PASS), but its figures judged "
            "against its effective policy give FAIL (size.min_reduction PASS; accuracy.max_drop FAIL;",
        ),
        (
            {},
            _forged_pass(checks_too=True),
            "report.json: models[0] ('digits'): candidates[0]: says PASS (size.min_reduction PASS; accuracy.max_drop "
            "PASS; io.input_dtype PASS; io.output_dtype PASS; latency.max_p50_ms PASS), but its figures judged "
            "against its effective policy give FAIL (size.min_reduction PASS; accuracy.max_drop FAIL;",
        ),
        (
            {"report": '{"schema_version": 2, "models": ' + "[" * 100_000 + "]" * 100_000 + "}"},
            None,
            "report.json: nested more than 32 deep",
        ),
        (
            {},
            _rewritten(lambda text: text.replace('"source_bytes": 80000', '"source_bytes": Infinity')),
            "report.json: not valid JSON (JSON is malformed: invalid character",
        ),
        (
            {},
            _rewritten(lambda text: text.replace('"source_bytes": 80000', '"source_bytes": 1' + "0" * 400)),
            "report.json: $.models[0].source_bytes: the whole number is out of range (beyond ±2**53)",
        ),
        (
            {},
            _rewritten(lambda text: text.replace('"task": "classification"', '"task": "x", "run": "rm -rf /"', 1)),
            "report.json: Object has an unknown field `run` - at `$.models[0]`",
        ),
        (
            {},
            _rewritten(lambda text: text.replace('"schema_version": 6', '"schema_version": 7')),
            "report.json: schema_version 7, but this gate reads 6; a newer gate wrote it",
        ),
    ],
)
def test_an_artifact_that_is_not_a_gate_report_is_refused_before_any_request(
    github, tmp_path, capsys, artifact, change, message
) -> None:
    github.add_pull(7, head_sha=HEAD)
    folder = report_artifact(tmp_path / "gate-report", **artifact)
    if change:
        change(folder)
    assert comment(folder) == 2
    assert message in capsys.readouterr().err
    assert github.requests == []
    assert not MARKER_FILE.exists()


def test_every_problem_of_pull_request_json_is_reported_together(github, tmp_path, capsys) -> None:
    folder = report_artifact(tmp_path, pull_request={"number": "7", "head_sha": "abc", "extra": 1})
    assert comment(folder) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("pull-request.json: ", 1)[1] for line in lines] == [
        "extra: unknown key; expected number and head_sha",
        "number: expected a positive whole number, got '7'",
        "head_sha: expected 40 lowercase hex digits, got 'abc'",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--repo", REPO, "--head-sha", "HEAD"],
            "gate: error: --head-sha: expected 40 lowercase hex digits, got 'HEAD'",
        ),
        (
            ["--repo", "octo/../admin", "--head-sha", HEAD],
            "gate: error: --repo: expected OWNER/NAME, got 'octo/../admin'",
        ),
        (["--repo", "octo", "--head-sha", HEAD], "gate: error: --repo: expected OWNER/NAME, got 'octo'"),
    ],
)
def test_bad_command_line_values_are_refused(github, tmp_path, capsys, argv, message) -> None:
    assert cli.main(["comment", "--artifact", str(report_artifact(tmp_path)), *argv]) == 2
    assert capsys.readouterr().err.strip() == message
    assert github.requests == []


# API errors


def test_a_token_without_pull_requests_write_gets_a_message_naming_the_permission(github, tmp_path, capsys) -> None:
    github.add_pull(7, head_sha=HEAD)
    github.fail("POST", r"/api/repos/octo/models/issues/7/comments", 403, "Resource not accessible by integration")
    assert comment(report_artifact(tmp_path)) == 2
    assert capsys.readouterr().err == (
        "gate: error: GitHub API POST /repos/octo/models/issues/7/comments failed: HTTP 403: Resource not accessible "
        "by integration; check that the workflow job's token has the 'pull-requests: write' permission (its "
        "permissions: block)\n"
    )


@pytest.mark.parametrize(
    ("status", "message", "headers", "expected"),
    [
        (
            404,
            "Not Found",
            {},
            (
                "GitHub API GET /repos/octo/models/pulls/7 failed: HTTP 404: Not Found; check --repo, "
                "and that the token has the 'pull-requests: write' permission"
            ),
        ),
        (
            403,
            "API rate limit exceeded",
            {"X-RateLimit-Remaining": "0"},
            "HTTP 403: API rate limit exceeded; the API rate limit is used up; re-run the job later",
        ),
        (502, "Server Error", {}, "HTTP 502: Server Error; GitHub had an internal error; re-run the job"),
    ],
)
def test_api_errors_name_the_request_the_status_and_what_to_check(
    github, tmp_path, capsys, status, message, headers, expected
) -> None:
    github.fail("GET", r"/api/repos/octo/models/pulls/7", status, message, headers)
    assert comment(report_artifact(tmp_path)) == 2
    assert expected in capsys.readouterr().err


def test_a_missing_or_wrong_token_is_named(github, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    assert comment(report_artifact(tmp_path)) == 2
    assert "gate: error: no GitHub token: set GITHUB_TOKEN or GH_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("GH_TOKEN", "expired")
    assert comment(report_artifact(tmp_path)) == 2
    assert (
        "HTTP 401: Bad credentials; the token was refused: check that GITHUB_TOKEN (or GH_TOKEN) is set to a valid "
        "token"
    ) in capsys.readouterr().err


def test_an_unreachable_api_is_named(tmp_path, monkeypatch, capsys) -> None:
    with FakeGitHub(REPO) as closed:
        url = closed.api_url  # nothing listens there once the fake has stopped
    monkeypatch.setenv("GITHUB_API_URL", url)
    monkeypatch.setenv("GITHUB_TOKEN", FakeGitHub.TOKEN)
    assert comment(report_artifact(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "gate: error: GitHub API GET /repos/octo/models/pulls/7: could not reach http://127.0.0.1:" in err
    assert "check GITHUB_API_URL and the network" in err


@pytest.mark.parametrize(
    "results",
    [
        RESULTS,
        (regression_result(),),
        (two_output_result(),),
        (on_device(model_result(), macs=25_600),),
        (on_device(model_result(), macs=25_600, target="ethos-u55-128"),),
    ],
    ids=["classification", "regression", "two outputs, one a regression", "tflm", "ethos-u"],
)
def test_gate_comment_imports_only_what_its_workflow_installs(github, tmp_path, results) -> None:
    """The comment job installs gate with --no-deps and the packages it pins by hash only: no NumPy, so verifying a
    regression figure (its percent change re-computed) is pure Python."""
    github.add_pull(7, head_sha=HEAD)
    pinned = sorted(line.split("==")[0] for line in comment_requirements().splitlines())
    assert pinned == ["jinja2", "markupsafe", "msgspec", "setuptools"]
    script = textwrap.dedent("""
        import sys
        from importlib.abc import MetaPathFinder
        from importlib.machinery import PathFinder

        allowed = set(sys.stdlib_module_names) | {"gate", "jinja2", "markupsafe", "msgspec"}
        # msgspec tries typing_extensions and goes on without it (msgspec/_utils.py): not needed there.
        optional = {"typing_extensions"}
        attempted = []  # installed modules outside those that something tried to import

        class OnlyWhatTheWorkflowInstalls(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                top = name.partition(".")[0]
                if top not in allowed:
                    # The standard library probes for a few modules that are never there (copy: Jython's org).
                    if top not in optional and PathFinder.find_spec(top) is not None:
                        attempted.append(name)
                    raise ImportError(f"{name} is not installed in the comment job")
                return None

        sys.meta_path.insert(0, OnlyWhatTheWorkflowInstalls())
        from gate.cli import main

        code = main(sys.argv[1:])
        print("attempted imports:", attempted, file=sys.stderr)
        sys.exit(code)
    """)
    artifact = report_artifact(tmp_path, results=results)
    argv = ["comment", "--artifact", str(artifact), "--repo", REPO, "--head-sha", HEAD]
    process = subprocess.run(
        [sys.executable, "-P", "-c", script, *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert "attempted imports: []" in process.stderr, process.stderr
    assert process.returncode == 0, process.stderr
    assert "gate: created the report comment on pull request #7" in process.stdout
    assert [c["body"] for c in github.comments_on(7)] == [expected_body(results)]


def test_hostile_names_in_the_report_are_posted_as_text(github, tmp_path) -> None:
    github.add_pull(7, head_sha=HEAD)
    hostile = model_result("x` @octocat <!-- ![pixel](tracker) [click](phish) www.phish.example")
    assert comment(report_artifact(tmp_path, results=(hostile,))) == 0
    (posted,) = github.comments_on(7)
    body = posted["body"].removeprefix(COMMENT_MARKER)
    for live in ("@octocat", "<!--", "![pixel](", "[click](", "www.phish", "x` "):
        assert live not in body, live
