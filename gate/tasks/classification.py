"""Classification: top-1 accuracy in percent, labels are class indices (or one-hot); the drop is in points."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.tasks.base import Metric, Task

if TYPE_CHECKING:
    import numpy as np

ACCURACY = Metric("accuracy", higher_is_better=True, change_unit="pts", highest=100.0)


@dataclass(frozen=True)
class Classification(Task):
    def score(
        self, outputs: np.ndarray, labels: np.ndarray, inputs: Mapping[str, np.ndarray] | None = None
    ) -> tuple[float, tuple[float, ...]]:
        import numpy as np

        per_sample = (self.predicted(outputs) == labels).astype(np.float64)
        return float(per_sample.mean() * 100), tuple(per_sample.tolist())

    def predicted(self, outputs: np.ndarray) -> np.ndarray:
        """The class each sample's outputs predict."""
        import numpy as np

        outputs = outputs.reshape(len(outputs), -1)
        # One output unit is a sigmoid probability of class 1 (docs: the model contract).
        return (outputs[:, 0] > 0.5).astype(np.int64) if outputs.shape[1] == 1 else np.argmax(outputs, axis=1)

    def value(self, per_sample: np.ndarray, labels: np.ndarray | None = None, axis: int = -1) -> Any:
        return per_sample.mean(axis=axis) * 100

    def change(self, float_value: Any, quantized_value: Any) -> Any:
        """Points of accuracy gained (negative = lost)."""
        return quantized_value - float_value

    def check_labels(
        self, y: np.ndarray, *, where: Path, output_width: int | None, output_activation: str | None
    ) -> tuple[np.ndarray, str | None]:
        import numpy as np

        one_hot_width = max(output_width or 0, 2)
        if y.ndim == 2 and y.shape[1] > 1 and (output_width is None or y.shape[1] == one_hot_width):
            y = np.argmax(y, axis=1)  # one-hot
        elif y.ndim != 1:
            return (
                y,
                f"{where}: y has shape {y.shape}; expected class indices (samples,) or one-hot (samples, "
                f"{output_width or 'classes'})",
            )
        # A model that ends in one linear unit predicts a number: labels that are no classes of it mean a regression
        # model.
        regression = output_width == 1 and output_activation == "linear"
        if not np.all(np.equal(np.mod(y, 1), 0)):
            if regression:
                return y, (
                    f"{where}: y holds non-integer values, and the model ends in one linear unit, as a regression "
                    'model does: set task = "regression" in gate.toml (classification needs class indices)'
                )
            return (
                y,
                f"{where}: y holds non-integer values; classification needs class indices (for a regression model "
                'set task = "regression" in gate.toml)',
            )
        labels = y.astype(np.int64)
        if output_width is None:
            return labels, None
        classes = max(output_width, 2)  # one sigmoid unit scores two classes
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            label = labels.max() if labels.max() >= classes else labels.min()
            if regression:
                return y, (
                    f"{where}: y holds class {label}, but the model scores classes 0..{classes - 1} and ends in one "
                    'linear unit, as a regression model does: if it predicts a number, set task = "regression" in '
                    "gate.toml; if it is a classifier, fix the labels or the model's output layer"
                )
            return (
                y,
                f"{where}: y holds class {label}, but the model scores classes 0..{classes - 1}; fix the labels or "
                "the model's output layer",
            )
        return labels, None


CLASSIFICATION = Classification(
    "classification",
    "Top-1 accuracy on eval.npz: `y` holds class indices (or one-hot rows); one sigmoid unit scores two "
    "classes; the drop is in points.",
    ACCURACY,
    labels="class indices or one-hot rows",
    policy_key="accuracy.max_drop",
    qat_loss="cross-entropy",
)
