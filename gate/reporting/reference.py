"""The documentation's reference tables, generated from the registries.

`TABLES` names each table: scripts/update_docs.py writes it into the `<!-- generated: NAME -->`
block of a page in docs/, and tests/test_docs.py keeps the pages equal to the registries.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from gate.figures import FIGURES
from gate.keys import Key
from gate.policy.config import POLICY_KEYS, POLICY_TOP_LEVEL
from gate.policy.judge import CHECKS
from gate.policy.manifest import MANIFEST_KEYS
from gate.quantization.base import AUTO
from gate.quantization.methods import METHODS
from gate.targets import TARGETS
from gate.targets.base import measured_on
from gate.tasks import TASKS
from gate.tasks.custom import CustomTask

# As the report's summary row says why a model failed: `size.min_reduction 3.99× < 4×`.
FAILS_WHEN = {"min": "measured < threshold", "max": "measured > threshold", "equal": "measured ≠ threshold"}


def _key_table(keys: Collection[Key]) -> str:
    rows = ["| Key | Allowed values | Default | Meaning |", "|---|---|---|---|"]
    for key in keys:
        rows.append(f"| `{key.name}` | {key.kind.describe()} | {key.default_text()} | {key.description} |")
    return "\n".join(rows) + "\n"


def manifest_reference() -> str:
    """Every key of gate.toml (MANIFEST_KEYS)."""
    return _key_table(MANIFEST_KEYS.values())


def check_reference() -> str:
    """Every check a policy can set (CHECKS): its threshold, when it fails, and what it judges."""
    rows = ["| Check | Threshold | Fails when | Meaning |", "|---|---|---|---|"]
    for check in CHECKS.values():
        unit = f" ({check.unit})" if check.unit else ""
        rows.append(
            f"| `{check.name}` | {check.kind.describe()}{unit} | {FAILS_WHEN[check.bound]} | {check.description} |"
        )
    return "\n".join(rows) + "\n"


def setting_reference() -> str:
    """Every key of a policy file that is not a check (POLICY_TOP_LEVEL, then POLICY_KEYS)."""
    settings = [key for key in POLICY_KEYS.values() if key.role != "check"]
    return _key_table([*POLICY_TOP_LEVEL.values(), *settings])


def method_reference() -> str:
    """Every quantization method `gate.toml` can name (METHODS), in the order `auto` tries them."""
    rows = [
        "| Method | Needs calibration data | What it is |",
        "|---|---|---|",
        f"| `{AUTO}` (default) | when a candidate does | Tries the methods below in this order and keeps the first "
        "that passes every check of the policy (see [the candidate search](#the-candidate-search)). |",
    ]
    for method in METHODS.values():
        if method.selectable:
            rows.append(f"| `{method.name}` | {'yes' if method.needs_calibration else 'no'} | {method.description} |")
    return "\n".join(rows) + "\n"


def task_reference() -> str:
    """The tasks a manifest's `task` can name, from TASKS (docs/tasks.md shows it; a test keeps the page in sync)."""
    rows = [
        "| `task` | Metric | `y` in eval.npz | Judged by | Quantization-aware training | Meaning |",
        "|---|---|---|---|---|---|",
    ]
    for task in TASKS.values():
        qat = f"trains on `y` ({task.qat_loss})" if task.qat_loss else "skipped: no labels it can train on"
        named = f"`{task.name}`"
        if isinstance(task, CustomTask):  # one manifest task, two entries: gate.toml says which by its direction
            qat = "skipped: a metric of its own is no loss it can train with"
            named = f'`custom`, `direction = "{task.name.removeprefix("custom-")}"`'
        rows.append(
            f"| {named} | {task.metric.said} ({'higher' if task.metric.higher_is_better else 'lower'} is "
            f"better) | {task.labels or 'not needed'} | `{task.policy_key}` | {qat} | "
            f"{task.description} |"
        )
    return "\n".join(rows) + "\n"


def target_reference() -> str:
    """Where candidates are measured (TARGETS)."""
    rows = ["| Target | What it is |", "|---|---|"]
    rows += [f"| `{target.name}` | {target.description} |" for target in TARGETS.values()]
    return "\n".join(rows) + "\n"


def figure_reference() -> str:
    """The named figures checks read (FIGURES): which targets measure each, and which checks judge it."""
    rows = ["| Figure | Unit | Measured by | Judged by | What it is |", "|---|---|---|---|---|"]
    for figure in FIGURES.values():
        checks = ", ".join(f"`{check.name}`" for check in CHECKS.values() if figure.name in check.figures)
        rows.append(
            f"| `{figure.name}` | {figure.unit} | {measured_on((figure.name,)) or 'every target'} | {checks} | "
            f"{figure.description} |"
        )
    return "\n".join(rows) + "\n"


TABLES: dict[str, Callable[[], str]] = {
    "manifest_reference": manifest_reference,
    "check_reference": check_reference,
    "setting_reference": setting_reference,
    "method_reference": method_reference,
    "task_reference": task_reference,
    "target_reference": target_reference,
    "figure_reference": figure_reference,
}
