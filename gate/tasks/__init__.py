"""What a model does and how it is scored: classification, regression, anomaly detection, fidelity, custom (TASKS).

A new task is a module with a `Task` (gate.tasks.base) and one entry here; the manifest's `task`, the scoring,
the search, the judge and the reports read it.
"""

from __future__ import annotations

from gate.tasks.anomaly import ANOMALY
from gate.tasks.base import Metric, Task
from gate.tasks.classification import CLASSIFICATION
from gate.tasks.custom import CUSTOM_HIGHER, CUSTOM_LOWER
from gate.tasks.fidelity import FIDELITY
from gate.tasks.regression import REGRESSION

TASKS: dict[str, Task] = {
    task.name: task for task in (CLASSIFICATION, REGRESSION, ANOMALY, FIDELITY, CUSTOM_HIGHER, CUSTOM_LOWER)
}
METRICS: dict[str, Metric] = {task.metric.name: task.metric for task in TASKS.values()}
DEFAULT_TASK = CLASSIFICATION.name
CUSTOM = "custom"  # the manifest's task for both custom entries, with `direction` (gate.tasks.custom.custom_task)
MANIFEST_TASKS = (*(name for name in TASKS if not name.startswith(f"{CUSTOM}-")), CUSTOM)
