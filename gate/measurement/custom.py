"""The confidence interval of a custom metric's change: exact, by calling the team's function on every resample.

A custom metric need not be the mean of its per-sample scores (F1 is not), so resampling the scores, as the
built-in tasks do, would give the interval of another figure. The paired bootstrap resamples sample indices
instead (seeded, the same indices for the float and the quantized model's outputs and for the labels) and calls
the function on each resample of both. Fast path: when the function's value is the mean of its per-sample scores
for both models (relative 1e-9), the scores are resampled as for the built-in tasks. What the exact path costs is
measured by bench/custom_bootstrap.py.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gate.measurement.stats import DEFAULT_RESAMPLES, bootstrap, change_interval
from gate.results import Evaluation, Interval
from gate.tasks import Task
from gate.tasks.custom import CustomTask, bound_metric, call_metric, is_mean_of_scores


def metric_change_interval(
    task: Task,
    float_evaluation: Evaluation,
    evaluation: Evaluation,
    labels: np.ndarray | None,
    float_outputs: np.ndarray | None,
    quantized_outputs: Callable[[], np.ndarray],
    *,
    confidence: float,
    resamples: int = DEFAULT_RESAMPLES,
) -> Interval:
    """The change's interval. A custom metric's exact path calls its function on resamples of the float model's
    outputs (kept by the reference stage) and the quantized model's, which `quantized_outputs` runs it again for."""
    custom = isinstance(task, CustomTask)
    if not custom or is_mean_of_scores(float_evaluation) and is_mean_of_scores(evaluation):
        return change_interval(float_evaluation.per_sample, evaluation.per_sample, task, labels,
                               confidence=confidence, resamples=resamples)  # fmt: skip
    assert labels is not None and float_outputs is not None, "a custom task has labels; its float outputs are kept"
    quantized = quantized_outputs()
    metric = bound_metric()

    def value(model_outputs: np.ndarray, rows: np.ndarray) -> float:
        # NaN for a resample that gives no number (0/0): the bootstrap's interval is then of those that give one.
        return call_metric(metric, model_outputs[rows], labels[rows], root=metric.root, resample=True)[0]

    def statistic(indices: np.ndarray, axis: int = -1) -> np.ndarray:
        # One resample (or jackknife sample) of indices a row; the same rows for both models keep the pair.
        batch = np.asarray(indices)
        rows = batch.reshape(-1, batch.shape[-1])
        changes = [task.change(value(float_outputs, row), value(quantized, row)) for row in rows]
        return np.asarray(changes, dtype=np.float64).reshape(batch.shape[:-1])

    return bootstrap((np.arange(len(labels), dtype=np.int32),), statistic, confidence, resamples)
