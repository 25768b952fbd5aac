"""gate publish and the GitHub client against a fake GitHub API on 127.0.0.1 (tests/fake_github.py).

gate comment's tests are in test_comment.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fake_github import FakeGitHub

from gate import cli
from gate.ci.github import GitHub, next_page
from gate.errors import GitHubError

REPO = "octo/models"
HEAD = "a1" * 20


# the client


def test_a_request_that_takes_longer_than_the_timeout_fails(github) -> None:
    github.add_pull(7, head_sha=HEAD)
    github.delay_s = 0.5
    client = GitHub(api_url=github.api_url, token=FakeGitHub.TOKEN, timeout_s=0.1)
    with pytest.raises(GitHubError, match=r"GitHub API GET /repos/octo/models/pulls/7: could not reach .*timed out"):
        client.get("/repos/octo/models/pulls/7", need="pull-requests: read")


def test_a_client_that_hangs_up_early_leaves_nothing_on_stderr(capfd) -> None:
    """The fake once printed socketserver's "Exception occurred during processing of request from ..." on
    stderr when a client closed its socket before the answer came (as a timeout does), and a later test that
    reads stderr failed on it."""
    with FakeGitHub(REPO) as github:
        github.add_pull(7, head_sha=HEAD)
        github.delay_s = 0.3
        client = GitHub(api_url=github.api_url, token=FakeGitHub.TOKEN, timeout_s=0.05)
        for _ in range(3):
            with pytest.raises(GitHubError, match="timed out"):
                client.get("/repos/octo/models/pulls/7", need="pull-requests: read")
    assert capfd.readouterr().err == ""


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
            "report.md": "## ✅ gate: all 2 model(s) pass\n".encode(),
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
