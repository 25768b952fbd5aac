"""Fidelity: how far a quantized model's outputs are from the float model's, on the same inputs; no labels.

The float model's outputs here are the float32 .tflite's (gate.measurement.fidelity says why). Two figures,
measured on every built candidate of every task (results.Fidelity), and judged by `fidelity.min_top1_agreement`
and `fidelity.min_snr_db`:

- top-1 agreement, in percent, for an output of class scores: the share of samples on which both models pick
  the same class, as classification picks it (argmax; one sigmoid unit: above 0.5);
- signal-to-noise ratio in dB, for any output: 10·log10(Σ f² / Σ (q − f)²) over every value of every sample,
  as the layer ranking measures a layer (results.LayerError). A ratio of sums, not a mean of per-sample ratios:
  its bootstrap resamples each sample's signal and noise energy together.

The task `fidelity` scores each model by its output error, Σ (q − f)² / Σ f² in percent: the SNR's finite,
additive twin (SNR = 10·log10(100 / error)), zero for identical outputs, where the SNR is infinite and JSON
holds no infinity. It is what the search ranks candidates by and what the float-fallback method minimises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.errors import ModelError
from gate.tasks.base import Metric, Task
from gate.tasks.classification import CLASSIFICATION

if TYPE_CHECKING:
    import numpy as np

OUTPUT_ERROR = Metric("output_error", higher_is_better=False, change_unit="pts", label="output error")
CLASS_SCORE_ACTIVATIONS = frozenset({"softmax", "sigmoid"})
PROBABILITY_TOLERANCE = 1e-3  # how far from 1 a row of softmax scores may sum (float32 rounding, int8 steps)
# Why an output is no class scores (Fidelity.not_class_scores): one of these two sentences, as read back too.
NOT_CLASS_SCORE_ACTIVATION = re.compile(r"its last activation is (.+), not softmax or sigmoid")
NO_PROBABILITIES = "gate cannot read its last activation, and its values are no probabilities (rows summing to 1)"


def top1(outputs: np.ndarray) -> np.ndarray:
    """Each sample's class, as classification picks it: argmax, or for one unit (a sigmoid) above 0.5."""
    return CLASSIFICATION.predicted(outputs)


def agreement_per_sample(quantized: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """1.0 where both outputs pick the same top-1 class, else 0.0; the agreement is their mean, in percent."""
    import numpy as np

    return (top1(quantized) == top1(reference)).astype(np.float64)


def energies(quantized: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(2, samples): each sample's signal energy Σ f² and noise energy Σ (q − f)², in float64."""
    import numpy as np

    samples = len(reference)
    f = reference.reshape(samples, -1).astype(np.float64)
    q = quantized.reshape(samples, -1).astype(np.float64)
    return np.stack([np.square(f).sum(axis=1), np.square(q - f).sum(axis=1)])


def snr_db(energy: Any, axis: int = -1) -> Any:
    """The SNR in dB of (signal, noise) energies along the first axis, summed along `axis` (vectorised).

    Infinite where the noise is zero (identical outputs), NaN where both are; the caller says what that means.
    """
    import numpy as np

    signal, noise = np.asarray(energy)[0].sum(axis=axis), np.asarray(energy)[1].sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10 * np.log10(signal / noise)


def class_scores_problem(task: str, activation: str | None, reference: np.ndarray) -> str:
    """Why top-1 agreement does not apply to an output ("" when it is class scores).

    A classifier's output is class scores whatever its last activation (logits too: classification argmaxes
    them); so is a softmax or sigmoid output. When gate cannot read the last activation (a SavedModel), the float
    outputs decide: rows of probabilities (non-negative, more than one, summing to 1). Width alone does not say it:
    an autoencoder's reconstruction is 640 wide, a multi-target regression 3 wide.
    """
    import numpy as np

    if task == "classification" or activation in CLASS_SCORE_ACTIVATIONS:
        return ""
    if activation is not None:
        return f"its last activation is {activation}, not softmax or sigmoid"
    rows = reference.reshape(len(reference), -1)
    sums_to_one = np.allclose(rows.sum(axis=1), 1, atol=PROBABILITY_TOLERANCE)
    if rows.shape[1] > 1 and bool((rows >= 0).all()) and sums_to_one:
        return ""
    return NO_PROBABILITIES


def could_be_class_scores_problem(task: str, reason: str) -> bool:
    """Whether class_scores_problem could have given `reason` for an output of `task` (a result read back)."""
    said = NOT_CLASS_SCORE_ACTIVATION.fullmatch(reason)
    return task != "classification" and (
        reason == NO_PROBABILITIES or bool(said and said[1] not in CLASS_SCORE_ACTIVATIONS)
    )


@dataclass(frozen=True)
class FidelityTask(Task):
    def score(
        self, outputs: np.ndarray, labels: np.ndarray, inputs: Mapping[str, np.ndarray] | None = None
    ) -> tuple[float, tuple[float, ...]]:
        """`labels` are the float32 .tflite's outputs. Each sample's part is its noise energy in percent of the
        mean signal energy of a sample, so that their mean is the output error (the signal is the float model's:
        the bootstrap resamples the noise against it)."""
        signal, noise = energies(outputs, labels)
        if not signal.sum():
            raise ModelError(
                "the float model's outputs are zero on every eval sample, so no error can be measured against them; "
                "use eval inputs on which the model outputs something"
            )
        per_sample = noise * 100 / signal.mean()
        return float(per_sample.mean()), tuple(per_sample.tolist())

    def value(self, per_sample: np.ndarray, labels: np.ndarray | None = None, axis: int = -1) -> Any:
        return per_sample.mean(axis=axis)

    def change(self, float_value: Any, quantized_value: Any) -> Any:
        """Points of output error added (positive = worse)."""
        return quantized_value - float_value

    def allowed_change(self, limit: float) -> float:
        """The output error of `fidelity.min_snr_db`'s limit: what the float-fallback method searches down to."""
        return 100 * math.pow(10, -limit / 10)

    def check_labels(
        self, y: np.ndarray, *, where: Path, output_width: int | None, output_activation: str | None
    ) -> tuple[np.ndarray, str | None]:
        return y, None  # not read: the float32 .tflite's outputs are what the task compares with


FIDELITY = FidelityTask(
    "fidelity",
    "The quantized model's outputs against the float32 .tflite's on the same eval inputs, no labels: top-1 "
    "agreement in percent (class-score outputs) and SNR in dB (any output). The search ranks by the output "
    "error, Σ(q − f)² / Σf² in percent.",
    OUTPUT_ERROR,
    labels=None,
    policy_key="fidelity.min_snr_db",
    qat_loss="",
)
