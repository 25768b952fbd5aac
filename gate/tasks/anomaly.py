"""Anomaly detection: ROC AUC in percent of each sample's anomaly score; labels are 0 (normal) or 1 (anomalous).

A model whose output has the shape of one of its inputs is an autoencoder: a sample's anomaly score is the mean
squared error between that input as stored in eval.npz (not its int8 round trip, which would hide part of the
error the deployed model makes) and the dequantized output. A model with one output value per sample gives the
score itself. The per-sample scores are the anomaly scores; ROC AUC is no mean of them, so the bootstrap
resamples normal and anomalous samples apart (`stratified`) and ranks each resample again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.errors import ModelError
from gate.tasks.base import Metric, Task

if TYPE_CHECKING:
    import numpy as np

AUC = Metric("auc", higher_is_better=True, change_unit="pts", highest=100.0, label="AUC")
NORMAL, ANOMALOUS = 0, 1


def anomaly_scores(outputs: np.ndarray, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Each sample's anomaly score (float64): its reconstruction error, or the model's one output value."""
    import numpy as np

    samples = len(outputs)
    if outputs[0].size == 1:
        return outputs.reshape(samples).astype(np.float64)
    shape = outputs.shape[1:]
    matching = [name for name, array in inputs.items() if array.shape[1:] == shape]
    if len(matching) != 1:
        shapes = ", ".join(f"'{name}' {array.shape[1:]}" for name, array in inputs.items())
        why = "several inputs have that shape" if matching else f"the model's inputs are {shapes}"
        raise ModelError(
            f"the model's output has shape {shape} per sample, which is neither one anomaly score nor the shape of "
            f"exactly one input ({why}); an anomaly model outputs a reconstruction of its input or one score per "
            "sample"
        )
    stored = inputs[matching[0]].astype(np.float64)
    return np.square(stored - outputs.astype(np.float64)).reshape(samples, -1).mean(axis=1)


def auc_percent(scores: Any, labels: Any, axis: int = -1) -> Any:
    """ROC AUC in percent along `axis` (vectorised over bootstrap resamples); NaN where one class is missing.

    The Mann-Whitney form with mid-ranks: a tie between a normal and an anomalous sample counts one half, as in
    scikit-learn's roc_auc_score.
    """
    import numpy as np
    from scipy.stats import rankdata

    scores, labels = np.broadcast_arrays(np.asarray(scores, dtype=np.float64), np.asarray(labels))
    anomalous = labels == ANOMALOUS
    positives = anomalous.sum(axis=axis)
    negatives = anomalous.shape[axis] - positives
    rank_sum = np.where(anomalous, rankdata(scores, method="average", axis=axis), 0.0).sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):  # one class only: 0 / 0, NaN
        return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives) * 100


@dataclass(frozen=True)
class Anomaly(Task):
    def score(
        self, outputs: np.ndarray, labels: np.ndarray, inputs: Mapping[str, np.ndarray] | None = None
    ) -> tuple[float, tuple[float, ...]]:
        assert inputs is not None, "the anomaly task scores reconstructions against the inputs"
        scores = anomaly_scores(outputs, inputs)
        return float(auc_percent(scores, labels)), tuple(scores.tolist())

    def value(self, per_sample: np.ndarray, labels: np.ndarray | None = None, axis: int = -1) -> Any:
        return auc_percent(per_sample, labels, axis=axis)

    def change(self, float_value: Any, quantized_value: Any) -> Any:
        """Points of AUC gained (negative = lost)."""
        return quantized_value - float_value

    def check_labels(
        self, y: np.ndarray, *, where: Path, output_width: int | None, output_activation: str | None
    ) -> tuple[np.ndarray, str | None]:
        import numpy as np

        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            return y, f"{where}: y has shape {y.shape}; the anomaly task expects one label per sample, shape (samples,)"
        others = np.setdiff1d(np.unique(y), (NORMAL, ANOMALOUS))
        if others.size:
            return y, (
                f"{where}: y holds {others[0]:g}; the anomaly task labels a sample 0 (normal) or 1 (anomalous), "
                "nothing else"
            )
        labels = y.astype(np.int64)
        normal, anomalous = int((labels == NORMAL).sum()), int((labels == ANOMALOUS).sum())
        if not normal or not anomalous:
            have, missing = ("normal (0)", "anomalous (1)") if normal else ("anomalous (1)", "normal (0)")
            return y, (
                f"{where}: y holds only {have} samples ({len(labels)}); ROC AUC needs both kinds: add {missing} "
                "samples to the eval data"
            )
        return labels, None


ANOMALY = Anomaly(
    "anomaly",
    "ROC AUC, in percent, of each sample's anomaly score: the mean squared error between the input as stored in "
    "eval.npz and the model's reconstruction of it, or the model's one output value per sample. `y` is 0 (normal) "
    "or 1 (anomalous); the drop is in points.",
    AUC,
    labels="0 (normal) or 1 (anomalous) per sample",
    policy_key="auc.max_drop",
    qat_loss="",
    stratified=True,
)
