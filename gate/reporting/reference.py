"""The README's reference tables, each generated from its registry: the one place scripts/update_readme.py reads.

Each table sits in the README between `<!-- generated: NAME -->` and `<!-- end: NAME -->` (NAME a key of
REFERENCE_TABLES); tests/test_readme.py keeps every table the README holds equal to its registry.
"""

from __future__ import annotations

from collections.abc import Callable

from gate.keys import reference_table
from gate.policy.config import MANIFEST_KEYS, POLICY_KEYS
from gate.quantization.base import AUTO
from gate.quantization.methods import METHODS
from gate.targets import TARGETS
from gate.tasks import TASKS


def policy_reference() -> str:
    """The README's policy reference, from POLICY_KEYS (a test keeps the README in sync)."""
    return reference_table(POLICY_KEYS.values(), kind_column=True)


def manifest_reference() -> str:
    """The README's gate.toml reference, from MANIFEST_KEYS (a test keeps the README in sync)."""
    return reference_table(MANIFEST_KEYS.values(), kind_column=False)


def method_reference() -> str:
    """The README's table of methods, from the registry (a test keeps the README in sync)."""
    rows = ["| Method | Needs calibration data | What it is |", "|---|---|---|",
            f"| `{AUTO}` (default) | when a candidate does | Tries the methods below in this order and keeps the "
            "first that passes every check of the policy (see \"The candidate search\"). |"]  # fmt: skip
    for method in METHODS.values():
        if method.selectable:
            rows.append(f"| `{method.name}` | {'yes' if method.needs_calibration else 'no'} | {method.description} |")
    return "\n".join(rows) + "\n"


def task_reference() -> str:
    """The tasks a manifest's `task` can name, from TASKS."""
    rows = ["| Task | Metric | Judged by | What it is |", "|---|---|---|---|"]
    for task in TASKS.values():
        rows.append(f"| `{task.name}` | {task.metric.name} | `{task.policy_key}` | {task.description} |")
    return "\n".join(rows) + "\n"


def target_reference() -> str:
    """Where candidates are measured, from TARGETS."""
    rows = ["| Target | What it is |", "|---|---|"]
    rows += [f"| `{target.name}` | {target.description} |" for target in TARGETS.values()]
    return "\n".join(rows) + "\n"


REFERENCE_TABLES: dict[str, Callable[[], str]] = {
    "policy_reference": policy_reference,
    "manifest_reference": manifest_reference,
    "method_reference": method_reference,
    "task_reference": task_reference,
    "target_reference": target_reference,
}
