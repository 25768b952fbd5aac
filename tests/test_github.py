"""gate comment and gate publish against a fake GitHub API on 127.0.0.1 (tests/fake_github.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fake_github import Answer, FakeGitHub

from gate import cli
from gate.commands.comment import MARKER, MAX_COMMENT_CHARS
from gate.errors import GitHubError
from gate.github import GitHub, next_page

REPO = "octo/models"
HEAD = "a1" * 20
OTHER = "b2" * 20
BODY = f"{MARKER}\n## ✅ gate: all 3 model(s) pass\n"


@pytest.fixture
def github(monkeypatch):
    with FakeGitHub(REPO) as fake:
        monkeypatch.setenv("GITHUB_API_URL", fake.api_url)
        monkeypatch.setenv("GITHUB_TOKEN", FakeGitHub.TOKEN)
        monkeypatch.delenv("GH_TOKEN", raising=False)
        yield fake


def report_artifact(
    folder: Path, *, body: str = BODY, pull_request: object = None, number: int | None = 7, head_sha: str = HEAD
) -> Path:
    """What gate merge writes into the gate-report artifact: comment.md and pull-request.json."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "comment.md").write_text(body, encoding="utf-8")
    record = pull_request if pull_request is not None else {"number": number, "head_sha": head_sha}
    text = record if isinstance(record, str) else json.dumps(record)
    (folder / "pull-request.json").write_text(text, encoding="utf-8")
    return folder


def comment(artifact: Path, head_sha: str = HEAD) -> int:
    return cli.main(["comment", "--artifact", str(artifact), "--repo", REPO, "--head-sha", head_sha])


# gate comment: the sticky comment


def test_the_first_run_creates_the_comment_and_the_second_updates_it(github, tmp_path, capsys) -> None:
    github.add_pull(7, head_sha=HEAD)
    github.add_comment(7, "LGTM", login="octocat")
    assert comment(report_artifact(tmp_path / "one")) == 0
    assert "gate: created the report comment on pull request #7: https://github.test/" in capsys.readouterr().out
    second = BODY + "\nsecond run\n"
    assert comment(report_artifact(tmp_path / "two", body=second)) == 0
    assert "gate: updated the report comment on pull request #7" in capsys.readouterr().out
    ours = [c for c in github.comments_on(7) if MARKER in c["body"]]
    assert [c["body"] for c in ours] == [second]
    assert len(github.comments_on(7)) == 2  # the person's comment and gate's one
    assert github.calls("POST") == ["POST /api/repos/octo/models/issues/7/comments"]
    assert github.calls("PATCH") == [f"PATCH /api/repos/octo/models/issues/comments/{ours[0]['id']}"]


def test_the_comment_is_found_on_a_later_page(monkeypatch, tmp_path) -> None:
    with FakeGitHub(REPO, page_size=2) as github:
        monkeypatch.setenv("GITHUB_API_URL", github.api_url)
        monkeypatch.setenv("GITHUB_TOKEN", FakeGitHub.TOKEN)
        github.add_pull(7, head_sha=HEAD)
        for index in range(5):
            github.add_comment(7, f"comment {index}", login="octocat")
        ours = github.add_comment(7, BODY + "old report")
        assert comment(report_artifact(tmp_path)) == 0
    assert ours["body"] == BODY and len(github.comments_on(7)) == 6
    pages = [r.query.get("page", "1") for r in github.requests if r.path.endswith("/issues/7/comments")]
    assert pages == ["1", "2", "3"]


def test_a_marker_in_someone_elses_comment_is_never_edited(github, tmp_path) -> None:
    github.add_pull(7, head_sha=HEAD)
    quoted = github.add_comment(7, f"why does the bot write {MARKER}?", login="octocat")
    oldest = github.add_comment(7, BODY + "old")
    newer = github.add_comment(7, BODY + "older duplicate")
    assert comment(report_artifact(tmp_path)) == 0
    assert quoted["body"] == f"why does the bot write {MARKER}?"
    assert (oldest["body"], newer["body"]) == (BODY, BODY + "older duplicate")
    assert github.calls("POST") == []


def test_a_body_of_exactly_65536_characters_is_posted(github, tmp_path) -> None:
    github.add_pull(7, head_sha=HEAD)
    body = MARKER + "é" * (MAX_COMMENT_CHARS - len(MARKER))  # 2 bytes a character: the limit counts characters
    assert comment(report_artifact(tmp_path, body=body)) == 0
    assert github.comments_on(7)[0]["body"] == body


@pytest.mark.parametrize("record", [{"head_sha": HEAD}, {"number": None, "head_sha": HEAD}])
def test_a_fork_pull_request_is_found_by_its_head_sha(github, tmp_path, capsys, record) -> None:
    github.add_pull(3, head_sha=OTHER)
    github.add_pull(9, head_sha=HEAD)
    assert comment(report_artifact(tmp_path, pull_request=record)) == 0
    assert "on pull request #9" in capsys.readouterr().out
    assert [c["body"] for c in github.comments_on(9)] == [BODY]
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
    assert [c["body"] for c in github.comments_on(8)] == [BODY]
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
    github.add_comment(7, BODY + "report of the newer push")
    assert comment(report_artifact(tmp_path)) == 0
    assert capsys.readouterr().out == (
        f"gate: pull request #7 is now at {OTHER}, not {HEAD}: this report is stale "
        "(the newer push gets its own); skipped\n"
    )
    assert github.calls("POST") == github.calls("PATCH") == []
    assert github.comments_on(7)[0]["body"] == BODY + "report of the newer push"


# gate comment: the artifact is untrusted input

MARKER_FILE = Path("/tmp/gate-test-payload-ran")  # every payload below would create it if it ever ran
PAYLOAD = f"$(touch {MARKER_FILE})"


def _symlinked_body(folder: Path) -> None:
    (folder / "secret.md").write_text(BODY)
    (folder / "comment.md").unlink()
    (folder / "comment.md").symlink_to(folder / "secret.md")


def _symlinked_pull_request(folder: Path) -> None:
    (folder / "elsewhere.json").write_text(json.dumps({"number": 7, "head_sha": HEAD}))
    (folder / "pull-request.json").unlink()
    (folder / "pull-request.json").symlink_to(folder / "elsewhere.json")


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
            ("pull-request.json: head_sha: expected 40 lowercase hex digits, got None"),
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
            ('pull-request.json: expected a JSON object {"number": N, "head_sha": "..."}, got [7]'),
        ),
        ({"pull_request": "7" * 5000}, None, "pull-request.json: larger than 4096 bytes"),
        (
            {"body": f"## gate report {PAYLOAD}\n{MARKER}\n"},
            None,
            f"comment.md: does not start with {MARKER}, so it is not a report gate wrote",
        ),
        (
            {"body": MARKER + "x" * (MAX_COMMENT_CHARS - len(MARKER) + 1)},
            None,
            "comment.md: 65,537 characters; GitHub refuses comments over 65,536 (gate merge shrinks the report to fit)",
        ),
        (
            {"body": MARKER + "x" * (4 * MAX_COMMENT_CHARS)},
            None,
            "comment.md: more than 65,536 characters; GitHub refuses longer comments",
        ),
        (
            {},
            lambda folder: (folder / "comment.md").write_bytes(MARKER.encode() + b"\n\xff\xfe"),
            "comment.md: not UTF-8 (byte 0xff at offset 21)",
        ),
        ({}, _symlinked_body, "comment.md: is a symbolic link; the artifact must hold a regular file"),
        ({}, _symlinked_pull_request, "pull-request.json: is a symbolic link; the artifact must hold a regular file"),
        (
            {},
            lambda folder: (folder / "comment.md").unlink(),
            "comment.md: no such file; download the gate-report artifact into",
        ),
        (
            {},
            lambda folder: ((folder / "comment.md").unlink(), (folder / "comment.md").mkdir()),
            "comment.md: not a regular file",
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


# gate comment: API errors


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


def test_a_request_that_takes_longer_than_the_timeout_fails(github) -> None:
    github.add_pull(7, head_sha=HEAD)
    github.delay_s = 0.5
    client = GitHub(api_url=github.api_url, token=FakeGitHub.TOKEN, timeout_s=0.1)
    with pytest.raises(GitHubError, match=r"GitHub API GET /repos/octo/models/pulls/7: could not reach .*timed out"):
        client.get("/repos/octo/models/pulls/7", need="pull-requests: read")


def test_the_token_is_never_sent_to_a_next_page_on_another_host(github) -> None:
    github.link_base = "http://127.0.0.2:9"
    github.page_size = 1
    github.add_pull(1, head_sha=HEAD)
    github.add_pull(2, head_sha=HEAD)
    client = GitHub(api_url=github.api_url, token=FakeGitHub.TOKEN)
    with pytest.raises(
        GitHubError,
        match="the next page 'http://127.0.0.2:9/api/repos/octo/models/pulls.*' is not "
        "under http://127.0.0.1:.*/api; refusing to send the token there",
    ):
        list(client.paginate("/repos/octo/models/pulls", need="pull-requests: read"))
    assert len(github.requests) == 1


@pytest.mark.parametrize(
    ("header", "url"),
    [
        (
            '<https://api.github.com/x?page=2>; rel="next", <https://api.github.com/x?page=5>; rel="last"',
            "https://api.github.com/x?page=2",
        ),
        ('<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=1>; rel="first"', None),
        ("", None),
    ],
)
def test_next_page_reads_the_link_header(header, url) -> None:
    assert next_page(header) == url


def test_gate_comment_imports_nothing_outside_the_standard_library(github, tmp_path) -> None:
    """Its workflow installs gate with --no-deps: importing numpy (or anything else) there would fail."""
    github.add_pull(7, head_sha=HEAD)
    script = textwrap.dedent("""
        import sys
        from importlib.abc import MetaPathFinder
        from importlib.machinery import PathFinder

        allowed = set(sys.stdlib_module_names) | {"gate"}
        attempted = []  # installed modules outside the standard library that something tried to import

        class OnlyTheStandardLibrary(MetaPathFinder):
            # As if gate were installed with --no-deps: nothing else is there.

            def find_spec(self, name, path=None, target=None):
                top = name.partition(".")[0]
                if top not in allowed:
                    # The standard library probes for a few modules that are never there (copy: Jython's org).
                    if PathFinder.find_spec(top) is not None:
                        attempted.append(name)
                    raise ImportError(f"{name} is not in the standard library")
                return None

        sys.meta_path.insert(0, OnlyTheStandardLibrary())
        from gate.cli import main

        code = main(sys.argv[1:])
        print("attempted imports:", attempted, file=sys.stderr)
        sys.exit(code)
    """)
    argv = ["comment", "--artifact", str(report_artifact(tmp_path)), "--repo", REPO, "--head-sha", HEAD]
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
    assert [c["body"] for c in github.comments_on(7)] == [BODY]


# gate publish


def release_folder(
    folder: Path, files: dict[str, bytes] | None = None, *, listed: dict[str, bytes] | None = None
) -> Path:
    """What gate release --out lays out: the passing models' .tflite files, the reports and SHA256SUMS."""
    files = (
        files
        if files is not None
        else {
            "digits_cnn.int8.tflite": b"TFL3 digits" * 100,
            "breast_cancer_mlp.int8.tflite": b"TFL3 mlp" * 50,
            "report.md": f"{MARKER}\n## ✅ gate: all 2 model(s) pass\n".encode(),
            "report.json": b'{"schema_version": 1}',
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    listed = files if listed is None else listed
    (folder / "SHA256SUMS").write_text(
        "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(listed.items()))
    )
    return folder


def publish(*args: str | Path) -> int:
    return cli.main(["publish", *map(str, args), "--repo", REPO, "--tag", "v1.2.0"])


def folder_contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_draft_upload_finalize(github, tmp_path, capsys) -> None:
    folder = release_folder(tmp_path / "release")
    assert publish(folder, "--draft") == 0
    (release,) = github.releases
    assert release["draft"] is True and release["tag_name"] == "v1.2.0"
    assert github.assets_of(release) == folder_contents(folder)
    out = capsys.readouterr().out
    assert out.startswith(f"gate: created the draft release of v1.2.0 (id {release['id']})\n")
    assert "gate: uploaded SHA256SUMS (" in out
    assert publish("--finalize", folder) == 0
    assert release["draft"] is False
    assert (
        capsys.readouterr().out
        == "gate: published the release of v1.2.0: https://github.test/octo/models/releases/tag/v1.2.0\n"
    )
    calls = [call.split("/octo/models", 1)[1] for call in github.calls() if not call.startswith("GET")]
    assert calls == ["/releases", *[f"/releases/{release['id']}/assets"] * 5, f"/releases/{release['id']}"]
    assert [r.query["name"] for r in github.requests if r.path.startswith("/uploads/")] == [
        "breast_cancer_mlp.int8.tflite",
        "digits_cnn.int8.tflite",
        "report.json",
        "report.md",
        "SHA256SUMS",
    ]
    # Published: the release is immutable, so a second --draft is refused before any upload.
    github.requests.clear()
    assert publish(folder, "--draft") == 2
    assert "already has a published release of v1.2.0" in capsys.readouterr().err
    assert github.calls("POST") == []


def test_a_draft_of_the_tag_is_reused_and_left_holding_exactly_the_folder(github, tmp_path, capsys) -> None:
    draft = github.add_release("v1.2.0", draft=True)
    github.add_release("v1.1.0", draft=False)
    github.add_asset(draft, "report.md", b"an earlier attempt")
    github.add_asset(draft, "kws.int8.tflite", b"a model that no longer passes")
    folder = release_folder(tmp_path / "release")
    assert publish(folder, "--draft") == 0
    assert github.assets_of(draft) == folder_contents(folder)
    assert len(github.releases) == 2
    out = capsys.readouterr().out
    assert out.startswith(
        f"gate: reusing the draft release of v1.2.0 (id {draft['id']})\n"
        f"gate: removed kws.int8.tflite, which {folder / 'SHA256SUMS'} does not list, from the draft\n"
    )
    assert "gate: replaced report.md (" in out


def test_a_published_release_of_the_tag_is_never_touched(github, tmp_path, capsys) -> None:
    github.add_release("v1.2.0", draft=False)
    assert publish(release_folder(tmp_path / "release"), "--draft") == 2
    assert capsys.readouterr().err == (
        "gate: error: octo/models already has a published release of v1.2.0 (https://github.test/octo/models/releases/"
        "tag/v1.2.0); a published release cannot change: push a new tag\n"
    )
    assert github.calls("POST") == github.calls("DELETE") == []


def _changed_model(folder: Path) -> None:
    (folder / "digits_cnn.int8.tflite").write_bytes(b"TFL3 swapped")


def _unlisted_file(folder: Path) -> None:
    (folder / "notes.txt").write_text("not in SHA256SUMS")


def _missing_file(folder: Path) -> None:
    (folder / "report.json").unlink()


def _linked_file(folder: Path) -> None:
    (folder / "report.json").unlink()
    (folder / "report.json").symlink_to("/etc/hostname")


def _subfolder(folder: Path) -> None:
    (folder / "artifacts").mkdir()


def _malformed_line(folder: Path) -> None:
    with (folder / "SHA256SUMS").open("a") as sums:
        sums.write("deadbeef report.md\n")


def _listed_twice(folder: Path) -> None:
    sums = (folder / "SHA256SUMS").read_text()
    (folder / "SHA256SUMS").write_text(sums + sums.splitlines()[0] + "\n")


def _path_in_sums(folder: Path) -> None:
    with (folder / "SHA256SUMS").open("a") as sums:
        sums.write(f"{'0' * 64}  ../etc/passwd\n")


def _no_sums(folder: Path) -> None:
    (folder / "SHA256SUMS").unlink()


DIGITS_SHA = hashlib.sha256(b"TFL3 digits" * 100).hexdigest()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _changed_model,
            (
                f"digits_cnn.int8.tflite: sha256 {hashlib.sha256(b'TFL3 swapped').hexdigest()}, but "
                f"SHA256SUMS says {DIGITS_SHA}"
            ),
        ),
        (_unlisted_file, "notes.txt: not listed in SHA256SUMS; every released file must be"),
        (_missing_file, "SHA256SUMS: lists report.json, which is not in"),
        (_linked_file, "report.json: a symbolic link; a release folder holds only regular files"),
        (_subfolder, "artifacts: a folder; a release folder holds only regular files"),
        (_malformed_line, "SHA256SUMS:5: expected '<64 lowercase hex digits>  <file name>', got 'deadbeef report.md'"),
        (_listed_twice, "SHA256SUMS:5: breast_cancer_mlp.int8.tflite is listed twice"),
        (_path_in_sums, "SHA256SUMS:5: '../etc/passwd' is not a file name of the release folder"),
        (_no_sums, "SHA256SUMS: no such file; gate release writes it"),
    ],
)
def test_a_folder_its_sha256sums_does_not_account_for_is_refused_before_any_request(
    github, tmp_path, capsys, change, message
) -> None:
    folder = release_folder(tmp_path / "release")
    change(folder)
    assert publish(folder, "--draft") == 2
    err = capsys.readouterr().err
    assert message in err
    assert github.requests == []


def test_every_checksum_problem_is_reported_together(github, tmp_path, capsys) -> None:
    folder = release_folder(tmp_path / "release")
    _changed_model(folder)
    _unlisted_file(folder)
    assert publish(folder, "--draft") == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "sha256" in err[0] and "notes.txt" in err[1]
    assert err[2] == f"gate: refusing to publish {folder}"


def test_finalize_refuses_a_draft_that_does_not_hold_the_folder(github, tmp_path, capsys) -> None:
    folder = release_folder(tmp_path / "release")
    assert publish(folder, "--draft") == 0
    (release,) = github.releases
    asset = next(a for a in github.assets if a["name"] == "report.md")
    github.assets.remove(asset)
    github.add_asset(release, "stray.bin", b"?")
    capsys.readouterr()
    assert publish("--finalize", folder) == 2
    assert capsys.readouterr().err == (
        "gate: error: the draft release of v1.2.0 does not hold "
        f"{folder}:\nreport.md: not attached to the draft\n"
        "stray.bin: attached to the draft but not in the folder\n"
    )
    assert release["draft"] is True


@pytest.mark.parametrize(
    ("published", "message"),
    [
        (False, "octo/models has no draft release of v1.2.0; run gate publish DIR --draft first"),
        (
            True,
            "octo/models's release of v1.2.0 is already published (https://github.test/octo/models/releases/tag/v1.2.0)",
        ),
    ],
)
def test_finalize_needs_a_draft(github, capsys, published, message) -> None:
    if published:
        github.add_release("v1.2.0", draft=False)
    assert publish("--finalize") == 2
    assert capsys.readouterr().err == f"gate: error: {message}\n"
    assert github.calls("PATCH") == []


def test_a_token_without_contents_write_gets_a_message_naming_the_permission(github, tmp_path, capsys) -> None:
    github.fail("POST", r"/api/repos/octo/models/releases", 403, "Resource not accessible by integration")
    assert publish(release_folder(tmp_path / "release"), "--draft") == 2
    assert capsys.readouterr().err == (
        "gate: error: GitHub API POST /repos/octo/models/releases failed: HTTP 403: Resource not accessible by "
        "integration; check that the workflow job's token has the 'contents: write' permission (its permissions: "
        "block)\n"
    )


def test_an_upload_github_refuses_names_its_reason(github, tmp_path, capsys) -> None:
    folder = release_folder(tmp_path / "release")
    github.fail(
        "POST", r"/uploads/repos/octo/models/releases/\d+/assets", 422, "Cannot upload assets to an immutable release"
    )
    assert publish(folder, "--draft") == 2
    err = capsys.readouterr().err
    assert "GitHub API POST http://127.0.0.1:" in err
    assert "/uploads/repos/octo/models/releases/" in err
    assert "?name=breast_cancer_mlp.int8.tflite failed: HTTP 422: Cannot upload assets to an immutable release" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--draft"], "gate: error: gate publish --draft: pass the release folder (what gate release --out wrote)"),
        (
            ["--draft", "release", "--tag", "v1 2"],
            "gate: error: --tag: expected a git tag name such as v1.2.0, got 'v1 2'",
        ),
    ],
)
def test_publish_command_line_errors(github, tmp_path, monkeypatch, capsys, argv, message) -> None:
    monkeypatch.chdir(tmp_path)
    release_folder(tmp_path / "release")
    assert cli.main(["publish", "--repo", REPO, "--tag", "v1.2.0", *argv]) == 2
    assert capsys.readouterr().err.strip() == message
    assert github.requests == []


def test_upload_urls_off_the_api_host_are_refused(github) -> None:
    client = GitHub(api_url=github.api_url, token=FakeGitHub.TOKEN)
    with pytest.raises(GitHubError, match="upload_url 'https://uploads.example/x' is on neither"):
        client.upload("https://uploads.example/x", "a.tflite", b"x", need="contents: write")
    assert github.requests == []
