"""What a task is: how a model's outputs are scored, what its labels must be, and how a change is judged.

A task is one entry of gate.tasks' TASKS. Everything the gate does differently for a classifier and a
regressor (checking labels, scoring, the metric change the bootstrap resamples, which way is worse, which
policy check judges it, what QAT trains with) is here, so that a new task is a module and an entry.
Imports only the standard library: `gate comment` reads the registry (NumPy is imported where scores are made).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# The change reported when the float model's MAE is exactly zero and the quantized one's is not: the largest
# increase a policy can allow (an infinite percentage is neither JSON nor a number a person reads).
UNBOUNDED_CHANGE = 1000.0


def percent_change(float_value: Any, quantized_value: Any) -> Any:
    """The change in percent of the float model's value (of its magnitude: a negative value's rise is positive too),
    for a metric where lower is better (MAE); vectorised. UNBOUNDED_CHANGE when the float value is zero and the
    quantized one is not. Two numbers are computed in pure Python: `gate comment` re-computes a report's changes
    where NumPy is not installed."""
    if isinstance(float_value, Real) and isinstance(quantized_value, Real):
        before, after = float(float_value), float(quantized_value)
        if before == 0:
            return 0.0 if after == 0 else UNBOUNDED_CHANGE
        return (after - before) / abs(before) * 100
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        change = (np.asarray(quantized_value) - float_value) / np.abs(float_value) * 100
    zero = np.where(np.asarray(quantized_value) == 0, 0.0, UNBOUNDED_CHANGE)
    result = np.where(np.asarray(float_value) == 0, zero, change)
    return float(result) if result.ndim == 0 else result


@dataclass(frozen=True)
class Metric:
    """A task's figure: its name in results, how it is written, and which way is better."""

    name: str  # "accuracy" or "mae": Evaluation.metric
    higher_is_better: bool
    # How a change is expressed: in points of the metric ("pts") or in percent of the float model's value ("%").
    change_unit: str
    highest: float = math.inf  # the largest value the metric can take (accuracy: 100%)
    lowest: float = 0.0  # the smallest (a custom metric: any number)
    in_percent: bool = True  # a value in points is a percentage (accuracy), not a number of the team's own metric
    label: str = ""  # how a sentence names it ("MAE"); the name when empty

    @property
    def said(self) -> str:
        return self.label or self.name

    def show(self, value: float) -> str:
        """'97.22%' or '0.0123': a value as the reports write it."""
        return f"{value:.2f}%" if self.change_unit == "pts" and self.in_percent else f"{value:.4g}"

    def loss(self, change: float) -> float:
        """How much worse a change makes the model (positive = worse), for ranking candidates and stopping searches."""
        return -change if self.higher_is_better else change


@dataclass(frozen=True)
class Task:
    """One kind of model: its metric, its labels and the check that judges it."""

    name: str  # the manifest's `task`
    description: str  # for the docs' task table
    metric: Metric
    labels: str | None  # what y must hold, as the messages and the docs say it; None for a task scored without labels
    policy_key: str  # the check that judges the metric change, e.g. "accuracy.max_drop"
    # What quantization-aware training minimises: "cross-entropy" (on classes), "mae", or "" (QAT cannot train for
    # this task: its labels are no training targets).
    qat_loss: str
    # The metric reads each sample's label besides its score (ROC AUC ranks anomalous against normal samples), so
    # the bootstrap carries the labels and resamples each label's samples apart: every resample needs every label.
    stratified: bool = False

    @property
    def needs_labels(self) -> bool:
        return self.labels is not None

    @property
    def untrainable(self) -> str:
        """Why quantization-aware training cannot train a model of this task ("" when it can): the search's row."""
        return "" if self.qat_loss else f"it trains on labels, and the {self.name} task has none it can train on"

    def score(
        self, outputs: np.ndarray, labels: np.ndarray, inputs: Mapping[str, np.ndarray] | None = None
    ) -> tuple[float, tuple[float, ...]]:
        """The metric over the samples, and each sample's part in it (what the bootstrap resamples).

        `inputs` are the eval inputs as stored (by model input name), for a task that compares outputs with them.
        """
        raise NotImplementedError

    def value(self, per_sample: np.ndarray, labels: np.ndarray | None = None, axis: int = -1) -> Any:
        """The metric from per-sample scores and their labels (vectorised over `axis`)."""
        raise NotImplementedError

    def change(self, float_value: Any, quantized_value: Any) -> Any:
        """The metric change of a quantized model against the float one (vectorised: the bootstrap passes arrays)."""
        raise NotImplementedError

    def check_labels(
        self, y: np.ndarray, *, where: Path, output_width: int | None, output_activation: str | None
    ) -> tuple[np.ndarray, str | None]:
        """y as the task scores it, or y and the problem with it (a sentence naming `where` and the fix)."""
        raise NotImplementedError

    def allowed_change(self, limit: float) -> float:
        """The policy's limit (a drop or a rise, as a positive number) as a bound on `change`."""
        return -limit if self.metric.higher_is_better else limit

    def loss(self, change: float) -> float:
        return self.metric.loss(change)
