"""A built candidate's fidelity to the float model: its outputs against the float32 .tflite's (results.Fidelity).

Compared with the float32 .tflite, not the Keras model: both files run in the same runtime on the same eval
inputs, fed the same way, so the figures measure what quantization changed and nothing else (the Keras model's
own distance to its conversion is the reference row's metric). The float32 file's outputs are computed once, in
the reference stage, and outlive the Keras model, which is let go of before the search.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gate.measurement.stats import DEFAULT_RESAMPLES, value_interval
from gate.results import Fidelity
from gate.targets.litert import outputs_as_the_app_runs_it
from gate.tasks.fidelity import agreement_per_sample, class_scores_problem, energies, snr_db

if TYPE_CHECKING:
    from gate.frontends.base import Dataset


@dataclass(frozen=True)
class FloatOutputs:
    """The float32 .tflite's dequantized outputs on the eval set, and whether they are class scores."""

    values: np.ndarray
    not_class_scores: str  # why top-1 agreement does not apply ("" when it does: gate.tasks.fidelity)


def measure_fidelity(
    quantized: np.ndarray, reference: FloatOutputs, *, confidence: float, resamples: int = DEFAULT_RESAMPLES
) -> Fidelity:
    """Top-1 agreement (class scores only) and SNR of `quantized` against the float32 outputs, with intervals.

    The float outputs are not zero everywhere (`float_outputs` says None then): the SNR is finite or, for
    identical outputs, None.
    """
    agreement = interval = None
    if not reference.not_class_scores:
        agrees = agreement_per_sample(quantized, reference.values)
        agreement = round(float(agrees.mean() * 100), 6)
        interval = value_interval(agrees[np.newaxis], lambda table: table[0].mean(axis=-1) * 100,
                                  confidence=confidence, resamples=resamples)  # fmt: skip
    energy = energies(quantized, reference.values)
    identical = not energy[1].any()
    snr = None if identical else float(snr_db(energy))
    snr_interval = None if identical else value_interval(energy, snr_db, confidence=confidence, resamples=resamples)
    return Fidelity(
        samples=len(quantized),
        top1_agreement=agreement,
        top1_agreement_interval=interval,
        not_class_scores=reference.not_class_scores,
        snr_db=None if snr is None else round(snr, 6),
        snr_db_interval=snr_interval,
        identical=identical,
    )


def float_outputs(
    path: Path, data: Dataset, *, task: str, activation: str | None, threads: int, app_resets: bool
) -> tuple[np.ndarray, FloatOutputs | None]:
    """The float32 .tflite's outputs on the eval set, and what candidates are compared with: None when the outputs
    are zero on every sample (no SNR exists against them)."""
    values = outputs_as_the_app_runs_it(path, data, threads=threads, app_resets=app_resets)
    return values, FloatOutputs(values, class_scores_problem(task, activation, values)) if values.any() else None


def fidelity_of(
    path: Path, data: Dataset, compared_with: FloatOutputs | None, *, threads: int, app_resets: bool, confidence: float
) -> Fidelity | None:
    """A built file's fidelity: LiteRT's outputs of it, run as the app runs it, against the float32 file's (None
    when there is nothing to compare with: the float32 file itself, or float outputs that are zero everywhere)."""
    if compared_with is None:
        return None
    outputs = outputs_as_the_app_runs_it(path, data, threads=threads, app_resets=app_resets)
    return measure_fidelity(outputs, compared_with, confidence=confidence)
