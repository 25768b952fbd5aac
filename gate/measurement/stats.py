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
from collections.abc import Callable, Sequence

import numpy as np

from gate.results import Interval
from gate.tasks import Task

SEED = 20261202  # any fixed number: reruns must agree
DEFAULT_RESAMPLES = 2000


def change_interval(
    float_scores: Sequence[float],
    quantized_scores: Sequence[float],
    task: Task,
    labels: np.ndarray | None = None,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
) -> Interval:
    """The `confidence` interval of the task's metric change, from a seeded paired bootstrap of per-sample scores.

    A `stratified` task's metric reads the `labels` (ROC AUC): they go with their samples into each resample, and
    each label's samples are resampled apart, so that every resample holds each label as often as the eval set.
    """
    # One row per quantity, one column per sample: a resample draws columns, so a sample's float score, quantized
    # score and label stay together (paired). One block per label when stratified, each resampled on its own.
    reads_labels = task.stratified and labels is not None
    table = np.stack(
        [
            np.asarray(float_scores, dtype=np.float64),
            np.asarray(quantized_scores, dtype=np.float64),
            np.asarray(labels, dtype=np.float64) if reads_labels else np.zeros(len(float_scores)),
        ]
    )
    blocks = tuple(table[:, table[2] == label] for label in np.unique(table[2])) if reads_labels else (table,)

    def statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        f, q, y = np.concatenate(resampled, axis=-1)  # each (..., samples)
        y = y if reads_labels else None  # the other tasks' per-sample scores hold all their metric reads
        return task.change(task.value(f, y, axis=-1), task.value(q, y, axis=-1))

    return bootstrap(blocks, statistic, confidence, resamples)


def value_interval(
    table: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
) -> Interval | None:
    """The `confidence` interval of a figure of one model (not a change), from a seeded bootstrap of its samples.

    `table` has one row per quantity and one column per sample (a resample draws columns); `statistic` maps a
    table (or a stack of resampled ones, samples on the last axis) to the figure. None when no resample gives a
    finite figure and the point is not finite either (an SNR of identical outputs).
    """

    def on_columns(resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        return statistic(resampled)

    interval = bootstrap((table,), on_columns, confidence, resamples)
    return interval if np.isfinite(interval.low) and np.isfinite(interval.high) else None


def bootstrap(
    blocks: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray], confidence: float, resamples: int
) -> Interval:
    """BCa where it is defined, else percentile, else the percentiles of the resamples that give a number, else
    (every resample the same) the point.

    A resample can give no number: an SNR of samples whose outputs are all zero, float and quantized, is 0/0. scipy
    then returns no interval at all; the point would claim a certainty the resamples do not have (padding an eval set
    with such samples made a 33-39 dB interval a point), so the resamples that give a number decide.
    """
    from scipy import stats

    # Resamples (and BCa's jackknife) are made this many at a time: all at once, their arrays grow with the square of
    # the samples (10,000 samples took 2.8 GiB, 20,000 10 GiB); batched, about a million values. Same interval.
    batch = max(1, 1_000_000 // sum(block.shape[-1] for block in blocks))
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns, then returns NaN, where BCa is degenerate
            result = stats.bootstrap(
                blocks,
                statistic,
                paired=False,
                vectorized=True,
                axis=-1,
                n_resamples=resamples,
                confidence_level=confidence,
                method=method,
                rng=np.random.default_rng(SEED),
                batch=batch,
            )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            return Interval(round(low, 6), round(high, 6), confidence, method, resamples)
    numbers = result.bootstrap_distribution[~np.isnan(result.bootstrap_distribution)]
    # The interval is of the resamples that give a number, and records how many did (not the ones drawn).
    gave = numbers.size or resamples
    if numbers.size and numbers.min() < numbers.max():
        low, high = (float(end) for end in np.percentile(numbers, [50 * (1 - confidence), 50 * (1 + confidence)]))
        if np.isfinite(low) and np.isfinite(high):
            return Interval(round(low, 6), round(high, 6), confidence, "percentile", gave)
    with np.errstate(divide="ignore", invalid="ignore"):
        point = float(statistic(*blocks))  # every resample the same: the interval is the point
    return Interval(point, point, confidence, "percentile", gave)
