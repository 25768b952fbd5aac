"""`gate publish`: attach a release folder to a draft GitHub release, then publish it.

Immutable releases refuse new assets once published (HTTP 422 "Cannot upload
assets to an immutable release"), so publishing is two steps with the
attestation between them:

    gate publish release/ --repo OWNER/NAME --tag v1.2.0 --draft      # create or reuse the draft, upload
    gate publish --repo OWNER/NAME --tag v1.2.0 --finalize [release/] # publish it (draft=false)

The folder is what `gate release --out` lays out. Before anything is uploaded its
`SHA256SUMS` must account for it exactly: every listed file present with that
digest, every other file listed. The draft then holds exactly those files.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.ci.github import GitHub
from gate.commands import options
from gate.errors import ConfigError, GitHubError
from gate.escape import terminal

HELP = "upload a release folder to a draft GitHub release (--draft), then publish that draft (--finalize)"
CHECKSUMS = "SHA256SUMS"
NEED = "contents: write"
# GitHub renames assets with other characters, which would break the names SHA256SUMS and the attestation record.
_ASSET_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
# sha256sum's line: digest, a space, ' ' (text) or '*' (binary), the name.
_CHECKSUM_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+/-]*")


@dataclass(frozen=True)
class ReleaseFile:
    """One file of the release folder, with the digest SHA256SUMS records (and the file was found to have)."""

    path: Path
    sha256: str
    size: int

    @property
    def name(self) -> str:
        return self.path.name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "release_dir",
        nargs="?",
        type=Path,
        metavar="DIR",
        help="the folder gate release wrote (needed with --draft; with --finalize, checked against the draft's assets)",
    )
    options.repo(parser)
    parser.add_argument("--tag", required=True, help="the release's tag (in a workflow: ${{ github.ref_name }})")
    step = parser.add_mutually_exclusive_group(required=True)
    step.add_argument("--draft", action="store_true", help="create or reuse the tag's draft release and upload DIR")
    step.add_argument("--finalize", action="store_true", help="publish the tag's draft release")


def run(args: argparse.Namespace) -> int:
    if args.draft:
        if args.release_dir is None:
            raise ConfigError("gate publish --draft: pass the release folder (what gate release --out wrote)")
        return publish_draft(args.release_dir, repo=args.repo, tag=args.tag)
    return finalize(repo=args.repo, tag=args.tag, release_dir=args.release_dir)


def publish_draft(release_dir: Path, *, repo: str, tag: str, github: GitHub | None = None) -> int:
    """Verify the folder, then make the tag's draft release hold exactly its files."""
    check_target(repo, tag)
    files = verify_release_dir(release_dir)
    github = github or GitHub.from_environment()
    drafts, published = releases_of(github, repo, tag)
    if published:
        raise GitHubError(
            f"{repo} already has a published release of {tag} ({published[0].get('html_url', '')}); "
            "a published release cannot change: push a new tag"
        )
    if drafts:
        release = drafts[0]
        say(f"gate: reusing the draft release of {tag} (id {release['id']})")
    else:
        release = github.post(f"/repos/{repo}/releases", {"tag_name": tag, "name": tag, "draft": True}, need=NEED)
        say(f"gate: created the draft release of {tag} (id {release['id']})")
    release_id = int(release["id"])
    assets = {
        asset["name"]: asset for asset in github.paginate(f"/repos/{repo}/releases/{release_id}/assets", need=NEED)
    }
    for name in sorted(set(assets) - {file.name for file in files}):
        # Left by an earlier attempt: SHA256SUMS and the attestation would not cover it.
        github.delete(f"/repos/{repo}/releases/assets/{int(assets[name]['id'])}", need=NEED)
        say(f"gate: removed {name}, which {release_dir / CHECKSUMS} does not list, from the draft")
    for file in files:
        if file.name in assets:
            github.delete(f"/repos/{repo}/releases/assets/{int(assets[file.name]['id'])}", need=NEED)
        data = read_verified(file)
        asset = github.upload(str(release["upload_url"]), file.name, data, need=NEED)
        digest = asset.get("digest") if isinstance(asset, dict) else None
        if digest is not None and digest != f"sha256:{file.sha256}":
            raise GitHubError(
                f"GitHub stored {file.name} with digest {digest}, not sha256:{file.sha256}; re-run gate publish --draft"
            )
        verb = "replaced" if file.name in assets else "uploaded"
        say(f"gate: {verb} {file.name} ({file.size:,} bytes, sha256 {file.sha256})")
    say(f"gate: the draft release of {tag} holds {len(files)} file(s); publish it with gate publish --finalize")
    return options.EXIT_PASS


def finalize(*, repo: str, tag: str, release_dir: Path | None = None, github: GitHub | None = None) -> int:
    """Publish the tag's draft; with `release_dir`, first check the draft holds exactly its files."""
    check_target(repo, tag)
    files = verify_release_dir(release_dir) if release_dir is not None else None
    github = github or GitHub.from_environment()
    drafts, published = releases_of(github, repo, tag)
    if not drafts:
        if published:
            raise GitHubError(f"{repo}'s release of {tag} is already published ({published[0].get('html_url', '')})")
        raise GitHubError(f"{repo} has no draft release of {tag}; run gate publish DIR --draft first")
    release = drafts[0]
    release_id = int(release["id"])
    if files is not None:
        assets = list(github.paginate(f"/repos/{repo}/releases/{release_id}/assets", need=NEED))
        problems = compare_assets(assets, files)
        if problems:
            raise GitHubError(f"the draft release of {tag} does not hold {release_dir}:\n" + "\n".join(problems))
    done = github.patch(f"/repos/{repo}/releases/{release_id}", {"draft": False}, need=NEED)
    say(f"gate: published the release of {tag}: {done.get('html_url', '')}")
    return options.EXIT_PASS


def check_target(repo: str, tag: str) -> None:
    options.check_repo(repo)
    if not _TAG.fullmatch(tag) or ".." in tag:
        raise ConfigError(f"--tag: expected a git tag name such as v1.2.0, got {tag!r}")


def releases_of(github: GitHub, repo: str, tag: str) -> tuple[list[dict], list[dict]]:
    """The tag's draft and published releases.

    Listed, not fetched by tag: /releases/tags/{tag} never answers with a draft.
    """
    drafts: list[dict[str, Any]] = []
    published: list[dict[str, Any]] = []
    for release in github.paginate(f"/repos/{repo}/releases", need=NEED):
        if isinstance(release, dict) and release.get("tag_name") == tag:
            (drafts if release.get("draft") else published).append(release)
    return sorted(drafts, key=lambda r: int(r["id"])), published


def verify_release_dir(release_dir: Path) -> list[ReleaseFile]:
    """The folder's files, each checked against SHA256SUMS; every problem found is reported together."""
    if release_dir.is_symlink() or not release_dir.is_dir():
        raise ConfigError(f"{release_dir}: not a folder; pass the folder gate release --out wrote")
    problems: list[str] = []
    present: dict[str, Path] = {}
    for entry in sorted(release_dir.iterdir()):
        mode = entry.lstat().st_mode
        if not stat.S_ISREG(mode):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode) else "not a file"
            problems.append(f"{entry}: {kind}; a release folder holds only regular files")
        elif not _ASSET_NAME.fullmatch(entry.name):
            problems.append(f"{entry}: GitHub would rename this asset; use letters, digits, '_', '.', '+', '-'")
        elif entry.name != CHECKSUMS:
            present[entry.name] = entry
    checksums = release_dir / CHECKSUMS
    if not checksums.is_file() or checksums.is_symlink():
        raise ConfigError("\n".join([*problems, f"{checksums}: no such file; gate release writes it"]))
    listed = parse_checksums(checksums, problems)
    files = []
    for name, expected in listed.items():
        if name not in present:
            problems.append(f"{checksums}: lists {name}, which is not in {release_dir}")
            continue
        actual, size = sha256_of(present[name])
        if actual != expected:
            problems.append(f"{present[name]}: sha256 {actual}, but {CHECKSUMS} says {expected}")
        files.append(ReleaseFile(present[name], expected, size))
    for name in sorted(set(present) - set(listed)):
        problems.append(f"{release_dir / name}: not listed in {CHECKSUMS}; every released file must be")
    if problems:
        raise ConfigError("\n".join(problems) + f"\ngate: refusing to publish {release_dir}")
    return [*files, ReleaseFile(checksums, *sha256_of(checksums))]


def parse_checksums(path: Path, problems: list[str]) -> dict[str, str]:
    """SHA256SUMS as name → digest, appending a problem for each line that is not `DIGEST  NAME`."""
    listed: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        problems.append(f"{path}: not UTF-8")
        return listed
    for number, line in enumerate(lines, start=1):
        match = _CHECKSUM_LINE.fullmatch(line)
        if match is None:
            problems.append(f"{path}:{number}: expected '<64 lowercase hex digits>  <file name>', got {line[:80]!r}")
            continue
        digest, name = match.groups()
        if name == CHECKSUMS:
            problems.append(f"{path}:{number}: lists itself")
        elif "/" in name or not _ASSET_NAME.fullmatch(name):
            problems.append(f"{path}:{number}: {name!r} is not a file name of the release folder")
        elif name in listed:
            problems.append(f"{path}:{number}: {name} is listed twice")
        else:
            listed[name] = digest
    return listed


def sha256_of(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def read_verified(file: ReleaseFile) -> bytes:
    """The file's bytes, checked again against its digest: what is uploaded is what was verified."""
    fd = os.open(file.path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read()
    if hashlib.sha256(data).hexdigest() != file.sha256:
        raise ConfigError(f"{file.path}: changed while gate publish ran; refusing to upload it")
    return data


def compare_assets(assets: Iterable[Any], files: list[ReleaseFile]) -> list[str]:
    """What differs between a draft's assets and the release folder (names, sizes, digests when GitHub has them)."""
    by_name = {asset["name"]: asset for asset in assets if isinstance(asset, dict)}
    problems = []
    for file in files:
        asset = by_name.pop(file.name, None)
        if asset is None:
            problems.append(f"{file.name}: not attached to the draft")
        elif asset.get("state", "uploaded") != "uploaded":
            problems.append(f"{file.name}: its upload did not finish (state {asset.get('state')!r})")
        elif asset.get("size") != file.size:
            problems.append(f"{file.name}: {asset.get('size')} bytes on GitHub, {file.size} in the folder")
        elif asset.get("digest") not in (None, f"sha256:{file.sha256}"):
            problems.append(f"{file.name}: digest {asset.get('digest')} on GitHub, sha256:{file.sha256} in the folder")
    problems.extend(f"{name}: attached to the draft but not in the folder" for name in sorted(by_name))
    return problems


def say(line: str) -> None:
    print(terminal(line), file=sys.stdout, flush=True)
