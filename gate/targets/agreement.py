"""A device runtime's outputs against LiteRT's on the same file and the same eval inputs (results.Agreement).

TFLM's reference kernels and LiteRT's XNNPACK ones may round differently: the report says by how many quantization
steps, on how many samples, and (for class scores) whether the predicted class is the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import version

import numpy as np

from gate.results import Agreement
from gate.tasks import TASKS
from gate.tasks.classification import Classification


def agreement(device: np.ndarray, litert_outputs: np.ndarray, *, scale: float, task: str) -> Agreement:
    """Compare dequantized outputs (samples first): in quantization steps of `scale`, absolute when it is 0."""
    device = device.reshape(len(device), -1).astype(np.float64)
    litert_outputs = litert_outputs.reshape(len(litert_outputs), -1).astype(np.float64)
    judged = TASKS[task]
    same = None
    if isinstance(judged, Classification) and len(device):
        same = float(np.mean(judged.predicted(device) == judged.predicted(litert_outputs)) * 100)
    return _agreement(_steps(device, litert_outputs, scale), same)


def agreement_of_outputs(
    device: Mapping[str, np.ndarray], litert_outputs: Mapping[str, np.ndarray], scales: Mapping[str, float]
) -> Agreement:
    """Compare every output of a file (by signature name), each in its own quantization steps: a sample differs when
    any of its outputs does. No predicted class: which output holds classes is the task's, per Keras output."""
    steps = [_steps(values, litert_outputs[name], scales[name]) for name, values in device.items()]
    return _agreement(np.concatenate(steps, axis=1), None)


def _steps(device: np.ndarray, litert_outputs: np.ndarray, scale: float) -> np.ndarray:
    """|device - LiteRT| per sample (a row each), in quantization steps of `scale`, absolute when it is 0."""
    rows = len(device)
    return np.abs(device.reshape(rows, -1).astype(np.float64) - litert_outputs.reshape(rows, -1)) / (scale or 1.0)


def _agreement(difference: np.ndarray, same_prediction: float | None) -> Agreement:
    return Agreement(
        litert=f"LiteRT {version('ai-edge-litert')} as gate measures it (its default XNNPACK delegate)",
        samples=len(difference),
        max_steps=round(float(difference.max()), 3) if difference.size else 0.0,
        differing_samples=int(np.count_nonzero(difference.max(axis=1))) if difference.size else 0,
        same_prediction=same_prediction,
    )
