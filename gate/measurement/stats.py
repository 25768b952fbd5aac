"""Confidence intervals for a metric change: a paired bootstrap over the eval samples (scipy.stats.bootstrap).

Paired, because both models score the same samples: resampling samples (not
each model's scores apart) keeps what they share and narrows the interval to
what quantization changed. Seeded, so a rerun on the same data gives the same
interval. BCa is undefined when every resample gives the same change (the two
models agree on every sample, or differ on all in the same way): the
percentile method is used then, and the interval says which.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from gate.results import Interval
from gate.tasks import Task

SEED = 20261202  # any fixed number: reruns must agree
DEFAULT_RESAMPLES = 2000


def change_interval(
    float_scores: Sequence[float],
    quantized_scores: Sequence[float],
    task: Task,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
) -> Interval:
    """The `confidence` interval of the task's metric change, from a seeded paired bootstrap of per-sample scores."""
    from scipy import stats

    data = (np.asarray(float_scores, dtype=np.float64), np.asarray(quantized_scores, dtype=np.float64))

    def statistic(f: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray:
        return task.change(task.value(f, axis=axis), task.value(q, axis=axis))

    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns, then returns NaN, where BCa is degenerate
            result = stats.bootstrap(
                data, statistic, paired=True, vectorized=True, n_resamples=resamples, confidence_level=confidence,
                method=method, rng=np.random.default_rng(SEED),
            )  # fmt: skip
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            return Interval(round(low, 6), round(high, 6), confidence, method, resamples)
    point = float(statistic(*data))  # every resample the same: the interval is the point
    return Interval(point, point, confidence, "percentile", resamples)
