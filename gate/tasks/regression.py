"""Regression: mean absolute error, labels are target values; the rise is in percent of the float model's MAE."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.tasks.base import Metric, Task, percent_change

if TYPE_CHECKING:
    import numpy as np

MAE = Metric("mae", higher_is_better=False, change_unit="%", label="MAE")


@dataclass(frozen=True)
class Regression(Task):
    def score(
        self, outputs: np.ndarray, labels: np.ndarray, inputs: Mapping[str, np.ndarray] | None = None
    ) -> tuple[float, tuple[float, ...]]:
        import numpy as np

        outputs = outputs.reshape(len(outputs), -1)
        per_sample = np.abs(outputs.astype(np.float64) - labels.reshape(len(labels), -1)).mean(axis=1)
        return float(per_sample.mean()), tuple(per_sample.tolist())

    def value(self, per_sample: np.ndarray, labels: np.ndarray | None = None, axis: int = -1) -> Any:
        return per_sample.mean(axis=axis)

    def change(self, float_value: Any, quantized_value: Any) -> Any:
        """Percent change of the float model's MAE (positive = worse)."""
        return percent_change(float_value, quantized_value)

    def check_labels(
        self, y: np.ndarray, *, where: Path, output_width: int | None, output_activation: str | None
    ) -> tuple[np.ndarray, str | None]:
        import numpy as np

        if output_width is None or y.ndim == 1 and output_width == 1 or y.ndim == 2 and y.shape[1] == output_width:
            return y.astype(np.float64).reshape(len(y), -1), None
        return (
            y,
            f"{where}: y has shape {y.shape}; the model has {output_width} output(s), so expected (samples, "
            f"{output_width})",
        )


REGRESSION = Regression(
    "regression",
    "Mean absolute error on eval.npz: `y` holds the targets, one column per output unit; the rise is in "
    "percent of the float model's MAE.",
    MAE,
    labels="the targets, one column per output unit",
    policy_key="mae.max_increase",
    qat_loss="mae",
)
