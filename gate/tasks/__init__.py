"""What a model does and how it is scored: classification, regression, anomaly detection (TASKS).

A new task is a module with a `Task` (gate.tasks.base) and one entry here; the manifest's `task`, the scoring,
the search, the judge and the reports read it.
"""

from __future__ import annotations

from gate.tasks.anomaly import ANOMALY
from gate.tasks.base import Metric, Task
from gate.tasks.classification import CLASSIFICATION
from gate.tasks.regression import REGRESSION

TASKS: dict[str, Task] = {task.name: task for task in (CLASSIFICATION, REGRESSION, ANOMALY)}
METRICS: dict[str, Metric] = {task.metric.name: task.metric for task in TASKS.values()}
DEFAULT_TASK = CLASSIFICATION.name


def task_reference() -> str:
    """The task table of docs/tasks.md, from TASKS (a test keeps the page in sync)."""
    rows = ["| `task` | Metric | `y` in eval.npz | Judged by | Quantization-aware training | Meaning |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for task in TASKS.values():
        qat = f"trains on `y` ({task.qat_loss})" if task.qat_loss else "skipped: no labels it can train on"
        rows.append(
            f"| `{task.name}` | {task.metric.said} ({'higher' if task.metric.higher_is_better else 'lower'} is "
            f"better) | {task.labels or 'not needed'} | `{task.policy_key}` | {qat} | "
            f"{task.description} |"
        )
    return "\n".join(rows) + "\n"
