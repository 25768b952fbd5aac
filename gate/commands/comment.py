"""`gate comment`: post gate's report as one sticky pull-request comment, from a `workflow_run` workflow.

The fork-safe pattern (README, "GitHub Actions"): the `pull_request` run gates
the PR's code with a read-only token and uploads the `gate-report` artifact; a
`workflow_run` workflow on the default branch downloads it and runs this, with
a token that may comment. That artifact was written by code the pull request
controls, so everything in it is untrusted data, and no Markdown from it is
ever posted: the comment is rendered here, by the default branch's gate, from
the artifact's report.json after it was read bounded and validated as `gate
merge` validates a shard (types, schema_version, every result checked against
the registries and re-judged from its figures). The PR number must be a
positive integer, the head SHA the triggering run's, and the PR's current head
still that SHA. The comment names that commit and the base it compares with.

It needs the standard library, Jinja2 and msgspec: gate-comment.yml installs
exactly those, pinned by hash (reusable-gate-comment.yml), and gate with
`--no-deps`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gate.commands import options
from gate.errors import ConfigError, GitHubError
from gate.escape import terminal
from gate.github import GitHub

HELP = "post or update gate's sticky pull-request comment, rendered from a downloaded gate-report artifact"
PULL_REQUEST_JSON = "pull-request.json"
MAX_PULL_REQUEST_JSON_BYTES = 4096
BOT_LOGIN = "github-actions[bot]"  # who GITHUB_TOKEN comments as
NEED = "pull-requests: write"
_MAX_NUMBER = 2**53  # larger is not a number GitHub hands out, nor one every JSON reader keeps exact


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--artifact",
        type=Path,
        required=True,
        metavar="DIR",
        help="the downloaded gate-report artifact: report.json and pull-request.json",
    )
    options.repo(parser)
    parser.add_argument(
        "--head-sha",
        required=True,
        metavar="SHA",
        help="the head SHA of the run that wrote the artifact (github.event.workflow_run.head_sha)",
    )
    parser.add_argument(
        "--bot-login",
        default=BOT_LOGIN,
        metavar="LOGIN",
        help=f"who the token comments as; only its comments are updated (default: {BOT_LOGIN})",
    )


def run(args: argparse.Namespace) -> int:
    return comment(artifact=args.artifact, repo=args.repo, head_sha=args.head_sha, bot_login=args.bot_login)


def comment(
    *, artifact: Path, repo: str, head_sha: str, bot_login: str = BOT_LOGIN, github: GitHub | None = None
) -> int:
    """Validate the artifact, render the comment, find its pull request, then update gate's comment or create it.

    Returns 0 when the comment was posted, or skipped because the PR has moved on
    or cannot be found; invalid input and API errors raise (exit code 2).
    """
    options.check_repo(repo)
    if not options.SHA.fullmatch(head_sha):
        raise ConfigError(f"--head-sha: expected 40 lowercase hex digits, got {shown(head_sha)}")
    number = read_pull_request(artifact, head_sha=head_sha)
    body = render_comment(artifact, head_sha=head_sha)
    github = github or GitHub.from_environment()

    if number is None:
        # A fork PR's run has no PR in workflow_run.pull_requests (actions/runner #3444): find it by its head.
        number = find_pull_request(github, repo, head_sha)
        if number is None:
            say(f"gate: no open pull request of {repo} has head {head_sha}; nothing to comment on (skipped)")
            return options.EXIT_PASS
    pull = github.get(f"/repos/{repo}/pulls/{number}", need=NEED)
    current = (pull.get("head") or {}).get("sha") if isinstance(pull, dict) else None
    if current != head_sha:
        say(
            f"gate: pull request #{number} is now at {current}, not {head_sha}: this report is stale "
            "(the newer push gets its own); skipped"
        )
        return options.EXIT_PASS

    existing = sticky_comment(github, repo, number, bot_login=bot_login)
    if existing is None:
        posted = github.post(f"/repos/{repo}/issues/{number}/comments", {"body": body}, need=NEED)
        say(f"gate: created the report comment on pull request #{number}: {posted.get('html_url', '')}")
    else:
        posted = github.patch(f"/repos/{repo}/issues/comments/{int(existing['id'])}", {"body": body}, need=NEED)
        say(f"gate: updated the report comment on pull request #{number}: {posted.get('html_url', '')}")
    return options.EXIT_PASS


def render_comment(artifact: Path, *, head_sha: str) -> str:
    """The comment, rendered from the artifact's report.json once it is validated (see the module docstring)."""
    from gate.markdown import markdown_for_comment
    from gate.merge import read_report

    try:
        report = read_report(artifact)
    except ValueError as exc:
        raise ConfigError(f"{artifact}/{exc}; not a report this gate can vouch for, so nothing is posted") from None
    return markdown_for_comment(report.models, report.comparison, commit=head_sha)


def read_pull_request(artifact: Path, *, head_sha: str) -> int | None:
    """pull-request.json: {"number": N, "head_sha": "..."}; the number, or None when the run did not know it."""
    from gate.readback import Refused, read_inside

    path = artifact / PULL_REQUEST_JSON
    try:
        raw = read_inside(artifact, PULL_REQUEST_JSON, limit=MAX_PULL_REQUEST_JSON_BYTES)
    except Refused as exc:
        raise ConfigError(f"{artifact}/{exc}; download the gate-report artifact into {artifact}") from None
    try:
        record = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        raise ConfigError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(record, dict):
        raise ConfigError(f'{path}: expected a JSON object {{"number": N, "head_sha": "..."}}, got {shown(record)}')
    problems = [
        f"{path}: {shown(key)[1:-1]}: unknown key; expected number and head_sha"
        for key in record
        if key not in ("number", "head_sha")
    ]
    number = record.get("number")
    # bool is an int in Python, and "12; rm" or 12.0 are not PR numbers.
    if number is not None and not (type(number) is int and 0 < number <= _MAX_NUMBER):
        problems.append(f"{path}: number: expected a positive whole number, got {shown(number)}")
    artifact_sha = record.get("head_sha")
    if not (isinstance(artifact_sha, str) and options.SHA.fullmatch(artifact_sha)):
        problems.append(f"{path}: head_sha: expected 40 lowercase hex digits, got {shown(artifact_sha)}")
    elif artifact_sha != head_sha:
        problems.append(
            f"{path}: head_sha: {artifact_sha} is not the head of the run that triggered this one "
            f"(--head-sha {head_sha}); the artifact does not belong to that run"
        )
    if problems:
        raise ConfigError("\n".join(problems))
    return number


def find_pull_request(github: GitHub, repo: str, head_sha: str) -> int | None:
    """The open pull request whose head is `head_sha`: by the commit's pulls, else among all open pulls."""
    try:
        pulls = list(github.paginate(f"/repos/{repo}/commits/{head_sha}/pulls", need=NEED))
    except GitHubError as error:
        if error.status not in (404, 422):  # a fork's commit may be unknown to the commit endpoints
            raise
        pulls = []
    matches = _heads(pulls, head_sha)
    if not matches:
        matches = _heads(github.paginate(f"/repos/{repo}/pulls", need=NEED, params={"state": "open"}), head_sha)
    if len(matches) > 1:
        say(
            f"gate: pull requests {', '.join(f'#{n}' for n in matches)} all have head {head_sha}; "
            f"commenting on #{matches[0]}"
        )
    return matches[0] if matches else None


def _heads(pulls: Any, head_sha: str) -> list[int]:
    return sorted(
        int(pull["number"])
        for pull in pulls
        if isinstance(pull, dict)
        and pull.get("state", "open") == "open"
        and (pull.get("head") or {}).get("sha") == head_sha
        and type(pull.get("number")) is int
    )


def sticky_comment(github: GitHub, repo: str, number: int, *, bot_login: str) -> dict | None:
    """gate's earlier comment on the PR: the oldest one of `bot_login` that starts with the marker, or None.

    Anyone can write the marker into a comment; a comment by someone else is
    never edited (the token could overwrite a person's words with the report),
    nor one of the same bot (another workflow's) that merely quotes the marker.
    """
    from gate.markdown import COMMENT_MARKER

    for item in github.paginate(f"/repos/{repo}/issues/{number}/comments", need=NEED):
        if (
            isinstance(item, dict)
            and str(item.get("body") or "").startswith(COMMENT_MARKER)
            and (item.get("user") or {}).get("login") == bot_login
        ):
            return item
    return None


def shown(value: object) -> str:
    """An untrusted value as a message shows it: repr (control characters escaped), at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def say(line: str) -> None:
    """What the command did: one line on stdout, the job log's record of it (made safe: it echoes API answers)."""
    print(terminal(line), flush=True)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"duplicate key {', '.join(map(repr, duplicates))}")
    return dict(pairs)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
