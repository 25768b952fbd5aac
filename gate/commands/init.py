"""`gate init`: set a repository up for gate, writing what a team needs and nothing more.

It writes policies/default.toml, the three caller workflows (each a few lines that call gate's
reusable workflows, pinned to the commit of the gate release that is installed), models/README.md
(the model contract), and adds the lines gate needs to .gitignore and CODEOWNERS. It never replaces
a file unless told to (--force), and then names each file it replaces.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from gate import __version__
from gate.commands import options
from gate.errors import ConfigError
from gate.escape import terminal

HELP = "set up this repository for gate: a default policy, three caller workflows, the model contract"

# Where each file goes in the repository, and its file in gate/scaffold/ (written as it is).
FILES = {"policies/default.toml": "default.toml", "models/README.md": "models-README.md"}
WORKFLOWS = ".github/workflows"
# The caller workflows, templates in gate/scaffold/ too; each calls reusable-<its name> of gate's repository.
CALLERS = ("gate.yml", "gate-comment.yml", "gate-release.yml")
GITIGNORE = ("gate-out/", ".benchmarks/")
GITIGNORE_HEADER = "# gate: gate check's reports, and the latency runs pytest-benchmark keeps\n"
# GitHub reads the first of these that exists; a new one would hide the repository's own.
CODEOWNERS_FILES = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")
CODEOWNERS_HEADER = """\
# gate: a change to the policies or the workflows changes the gate itself, so its owners review it.
# Turn on, in Settings > Branches (or Rules) for the default branch: "Require a pull request before merging",
# "Require review from Code Owners", and "Require status checks to pass" with the check "gate / report".
"""
PROTECTED = ("/policies/", "/.github/")
PLACEHOLDER_OWNER = "@your-org/ml-platform"
# tool-release.yml writes it into the package it builds: the repository and commit of the release.
RELEASE_RECORD = "release.json"

_OWNER = re.compile(r"@[A-Za-z0-9](?:[A-Za-z0-9-]*)(?:/[A-Za-z0-9_.-]+)?|[^@\s]+@[^@\s]+\.[A-Za-z]+")
_BRANCH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")


@dataclass(frozen=True)
class Pin:
    """The gate release whose reusable workflows the callers call: its repository, commit and version."""

    repository: str  # OWNER/NAME
    commit: str  # 40 hex digits
    version: str  # what the workflows install from the package index


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--owner",
        help="who reviews changes to the policies and workflows, as CODEOWNERS names them (@org/team, @user); "
        "without it the CODEOWNERS lines are written commented out",
    )
    parser.add_argument(
        "--branch", help="the default branch, whose pushes store the baseline (default: origin's, else the current)"
    )
    parser.add_argument(
        "--pin",
        metavar="OWNER/NAME@COMMIT",
        help="the gate repository and release commit the workflows call (default: the release this gate was "
        "built from)",
    )
    parser.add_argument("--force", action="store_true", help="replace files that exist (each is named)")


def run(args: argparse.Namespace) -> int:
    root = repository_root(Path.cwd())
    pin = parse_pin(args.pin) if args.pin else installed_release()
    owner = check_owner(args.owner) if args.owner else None
    branch = check_branch(args.branch or default_branch(root))
    files = {path: scaffold(name) for path, name in FILES.items()} | caller_workflows(pin=pin, branch=branch)
    codeowners = next((name for name in CODEOWNERS_FILES if (root / name).exists()), CODEOWNERS_FILES[0])
    for path in [*files, ".gitignore", codeowners]:
        refuse_link(root, root / path)
    existing = [path for path in files if (root / path).exists()]
    if existing and not args.force:
        raise ConfigError(
            f"gate init: {root} already has {', '.join(existing)}; nothing was written. "
            "Pass --force to replace them (git diff then shows what changed)"
        )
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
        say(f"gate init: {'replaced' if path in existing else 'wrote'} {path}")
    append_lines(root, ".gitignore", GITIGNORE, header=GITIGNORE_HEADER)
    append_lines(root, codeowners, codeowners_lines(owner), header=CODEOWNERS_HEADER)
    say(next_steps(codeowners, owner=owner, pin=pin))
    return options.EXIT_PASS


def scaffold(name: str) -> str:
    return resources.files("gate").joinpath("scaffold", name).read_text(encoding="utf-8")


def caller_workflows(*, pin: Pin | None, branch: str) -> dict[str, str]:
    """The three callers: of `pin`'s reusable workflows, or, with None, of the repository's own (gate's)."""
    fields = {
        "branch": json.dumps(branch),  # every value is checked to need no quoting; quoted all the same
        "workflows": f"{pin.repository}/{WORKFLOWS}" if pin else f"./{WORKFLOWS}",
        # zizmor suggests the `$/` form for a local call, which GitHub does not document for reusable workflows yet;
        # ./ is documented to be the calling commit's own file.
        "pin": f"@{pin.commit} # gate-v{pin.version}" if pin else " # zizmor: ignore[self-repository] the same commit",
        "gate_version": json.dumps(pin.version if pin else "checkout"),
    }
    return {f"{WORKFLOWS}/{name}": Template(scaffold(name)).substitute(fields) for name in CALLERS}


def codeowners_lines(owner: str | None) -> list[str]:
    width = max(map(len, PROTECTED)) + 2
    if owner:
        return [f"{path:<{width}}{owner}" for path in PROTECTED]
    return [f"# {path:<{width}}{PLACEHOLDER_OWNER}" for path in PROTECTED]


def append_lines(root: Path, name: str, lines: list[str] | tuple[str, ...], *, header: str = "") -> None:
    """Add the lines `name` lacks at its end (creating it if need be); say how many."""
    target = root / name
    text = target.read_text(encoding="utf-8") if target.exists() else ""
    present = {line.strip() for line in text.splitlines()}
    missing = [line for line in lines if line.strip() not in present]
    if not missing:
        say(f"gate init: {name} already has gate's lines")
        return
    separator = "\n" if text and not text.endswith("\n") else ""
    blank = "\n" if text else ""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text + separator + blank + header + "".join(f"{line}\n" for line in missing), encoding="utf-8")
    say(f"gate init: added {len(missing)} line(s) to {name}")


def next_steps(codeowners: str, *, owner: str | None, pin: Pin | None) -> str:
    who = "" if owner else " (name the owners there first: the lines are commented out)"
    source = f"gate {pin.version} from {pin.repository}@{pin.commit[:12]}" if pin else "this repository's gate"
    return "\n".join(
        [
            f"gate init: the workflows call {source}. Next:",
            "  1. Review and commit what was written: git add -A && git commit -m 'Gate the models with gate'; push.",
            f"  2. Protect the default branch as {codeowners} says{who}: require review from Code Owners and "
            "the status check 'gate / report'.",
            "  3. Add a model as models/README.md says, check it with gate validate and gate check, and open a "
            "pull request: the report comes as a comment.",
        ]
    )


def repository_root(directory: Path) -> Path:
    done = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=directory, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ConfigError(
            f"gate init: {directory} is not inside a git repository; run it in your repository's clone "
            "(git init first, for a new one)"
        )
    return Path(done.stdout.strip())


def default_branch(root: Path) -> str:
    """origin's default branch as the clone knows it, else the checked-out branch, else main."""
    for ref, prefix in (("refs/remotes/origin/HEAD", "origin/"), ("HEAD", "")):
        done = subprocess.run(
            ["git", "symbolic-ref", "--quiet", "--short", ref], cwd=root, capture_output=True, text=True, check=False
        )
        name = done.stdout.strip()
        if done.returncode == 0 and name.startswith(prefix):
            return name.removeprefix(prefix)
    return "main"


def check_branch(name: str) -> str:
    # Written into gate.yml's branch filter: no YAML or filter syntax (*, ?, !, [ ... ]) may come with it.
    if not _BRANCH.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"gate init: the branch name {name!r} has characters gate does not write into a workflow; "
            "pass --branch with the default branch's name (letters, digits, . _ / -)"
        )
    return name


def check_owner(owner: str) -> str:
    if not _OWNER.fullmatch(owner):
        raise ConfigError(f"--owner: expected @org/team, @user or an e-mail address (as in CODEOWNERS), got {owner!r}")
    return owner


def parse_pin(text: str) -> Pin:
    repository, _, commit = text.partition("@")
    options.check_repo(repository, option="--pin")
    if not options.SHA.fullmatch(commit):
        raise ConfigError(f"--pin: expected OWNER/NAME@COMMIT with the commit's 40 hex digits, got {text!r}")
    return Pin(repository, commit, __version__)


def installed_release() -> Pin:
    """The release this gate was built from, as tool-release.yml recorded it in the package."""
    record = resources.files("gate").joinpath(RELEASE_RECORD)
    if not record.is_file():
        raise ConfigError(
            f"gate init: this gate {__version__} was not built by a gate release (it has no gate/{RELEASE_RECORD}), "
            "so it cannot name the commit the workflows should call; pass --pin OWNER/NAME@COMMIT, the gate "
            "repository and the commit of a release"
        )
    where = f"gate/{RELEASE_RECORD} of the installed gate"
    try:
        fields = json.loads(record.read_text(encoding="utf-8")[:10_000])
        pin = parse_pin(f"{fields['repository']}@{fields['commit']}")
        version = fields["version"]
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        raise ConfigError(f"{where} is damaged ({exc}); reinstall gate, or pass --pin OWNER/NAME@COMMIT") from None
    if version != __version__:
        raise ConfigError(f"{where} records version {version!r}, but this gate is {__version__}; reinstall gate")
    return pin


def refuse_link(root: Path, target: Path) -> None:
    """Write nothing through a symbolic link: it could lead out of the repository."""
    path = target
    while path != root:
        if path.is_symlink():
            raise ConfigError(f"gate init: {path} is a symbolic link; gate init writes only real files in {root}")
        path = path.parent


def say(text: str) -> None:
    print(terminal(text, lines=True), file=sys.stderr)
