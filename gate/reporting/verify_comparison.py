"""A comparison with the base branch read back (report.json's `comparison`, a baseline's name): checked.

Part of gate.reporting.verify: what gate could not have written is refused with the field it is in.
"""

from __future__ import annotations

import math
import re

from gate.layout import OUTPUT_NAME, name_problem
from gate.quantization.methods import METHODS
from gate.reporting.compare import Comparison
from gate.tasks import METRICS
from gate.tasks.custom import spec_problem

_SHA1 = re.compile(r"[0-9a-f]{40}")
# A branch name as GitHub Actions gives GITHUB_REF_NAME (a pull request's is "<number>/merge"): printable, no spaces,
# short. A baseline's is read from a file written elsewhere and printed in the log and the comment: anything else
# names it "base".
_REF = re.compile(r"[A-Za-z0-9._/+-]{1,100}")


def check_comparison(comparison: Comparison) -> None:
    """Raise ValueError naming the first thing in a comparison read back that gate could not have written."""
    for field in ("base_commit", "planned_base"):
        if not _SHA1.fullmatch(getattr(comparison, field)) and getattr(comparison, field):
            raise ValueError(f"{field}: {getattr(comparison, field)[:50]!r} is not a commit's full SHA")
    ref = comparison.label.partition("@")[0]
    if not _REF.fullmatch(ref) or comparison.label != baseline_label(ref, comparison.base_commit):
        raise ValueError(f"label: {comparison.label[:50]!r} is not a branch name and the baseline's commit")
    for index, change in enumerate(comparison.changes):
        if problem := name_problem(change.name, loose_files=True):
            raise ValueError(f"changes[{index}].name: {problem}")
        for side in (change.base, change.head):
            if side and (side.method not in (*METHODS, "") or side.metric not in (*METRICS, "")
                         or side.custom_metric and spec_problem(side.custom_metric)):  # fmt: skip
                raise ValueError(f"changes[{index}]: method {side.method!r} or metric {side.metric!r} is unknown")
            if side and side.output and not OUTPUT_NAME.fullmatch(side.output):
                raise ValueError(f"changes[{index}].output: {side.output[:50]!r} is not an output's name")
            if side and any(v is not None and v < 0 for v in (side.macs, side.arena_bytes)):
                raise ValueError(f"changes[{index}]: a MAC count or arena size is negative")
            spread = side.p50_spread_ms if side else None
            if spread is not None and not (math.isfinite(spread) and spread >= 0):  # it decides "within noise"
                raise ValueError(f"changes[{index}]: p50 spread {spread!r} is not a duration")
    for index, name in enumerate(comparison.unchanged):
        if problem := name_problem(name, loose_files=True):
            raise ValueError(f"unchanged[{index}]: {problem}")


def baseline_label(ref: str, commit: str) -> str:
    """How the report names a baseline: "main@3f2a1c9", or the branch alone when the baseline records no commit."""
    return f"{ref}@{commit[:7]}" if commit else ref


def branch_name(ref: str) -> str:
    """A baseline's recorded branch, or "base" when it is no short branch name (a ref written elsewhere)."""
    return ref if _REF.fullmatch(ref) else "base"
