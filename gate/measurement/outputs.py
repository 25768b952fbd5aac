"""Which .tflite output is which Keras output, proven on the eval inputs (a model with several outputs).

The converted .tflite does not keep the Keras names of a model whose endpoint returns a list: its signature says
output_0, output_1..., and the interpreter lists the tensors in yet another order (issue 23's prototype,
bench/output_order.py, on a two-head and a three-head model). So the mapping is proven, not assumed: the float32
.tflite and the Keras model run on the same eval inputs, and each .tflite output must equal exactly one Keras
output (shapes included) within RELATIVE_TOLERANCE, and each Keras output exactly one .tflite output. When two Keras
outputs are equal on those inputs (two identical heads), values cannot tell them apart and the model is refused.

Every candidate is converted from the same SavedModel, so its signature has the same output names (tested): the
mapping found on the float32 .tflite holds for each of them.

Then each output is scored by its own task (results.OutputScore), its change gets its own paired-bootstrap interval
(results.OutputChange), and what needs one number per candidate (the search's ranking and stopping rule, the
summary row) takes the worst output's (gate.policy.judge.worst_output).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gate.errors import ModelError
from gate.results import Evaluation, OutputChange, OutputScore
from gate.tasks import TASKS

if TYPE_CHECKING:
    from gate.frontends.base import Dataset, OutputSpec

# Keras against its float32 .tflite on the same inputs differs by at most 1.3e-5 of an output's largest magnitude on
# the bundled models (digits_mobilenetv2's; the prototype's bench/output_order.py); a swapped head by its range.
RELATIVE_TOLERANCE = 1e-3


def difference(tflite: np.ndarray, keras: np.ndarray) -> float:
    """Largest absolute difference, relative to the Keras output's largest magnitude (inf for another shape)."""
    if tflite.shape != keras.shape:
        return np.inf
    scale = max(float(np.abs(keras).max(initial=0.0)), 1e-12)
    return float(np.abs(tflite.astype(np.float64) - keras.astype(np.float64)).max(initial=0.0)) / scale


@dataclass(frozen=True)
class Outputs:
    """What every file of a model with several outputs is scored against: found in the reference stage."""

    specs: tuple[OutputSpec, ...]
    tensors: dict[str, str]  # Keras output name -> .tflite signature output (the same in every candidate)
    float32: dict[str, np.ndarray]  # the float32 .tflite's outputs on the eval set, by Keras output name
    float_scores: tuple[OutputScore, ...]  # the Keras model's
    confidence: float
    target: str = "litert"  # where every file is run and scored (a name of gate.targets.TARGETS)


def map_outputs(keras: Mapping[str, np.ndarray], tflite: Mapping[str, np.ndarray], *, where: str) -> dict[str, str]:
    """Keras output name -> float32 .tflite signature output name, in Keras' order; a ModelError when not proven.

    `keras` and `tflite` are each model's outputs on the same eval inputs (samples first).
    """
    if len(keras) != len(tflite):
        raise ModelError(
            f"{where}: the Keras model has {len(keras)} output(s) ({', '.join(keras)}) but its float32 .tflite has "
            f"{len(tflite)} ({', '.join(tflite)}); the conversion changed the model: report it as a gate bug"
        )
    samples = len(next(iter(keras.values())))
    mapping: dict[str, str] = {}
    for signature_name, value in tflite.items():
        matches = [name for name, expected in keras.items() if difference(value, expected) <= RELATIVE_TOLERANCE]
        if not matches:
            closest = min(keras, key=lambda name: difference(value, keras[name]))
            raise ModelError(
                f"{where}: float32 .tflite output '{signature_name}' {value.shape[1:]} equals no Keras output on the "
                f"{samples} eval samples (closest: '{closest}' {keras[closest].shape[1:]}, relative difference "
                f"{difference(value, keras[closest]):.3g}); the conversion changed the model: report it as a gate bug"
            )
        if len(matches) > 1:
            raise ModelError(
                f"{where}: Keras outputs {' and '.join(map(repr, matches))} are equal on all {samples} eval samples, "
                f"so gate cannot tell which .tflite output ('{signature_name}') is which; if the heads compute the "
                "same thing, export one of them; otherwise add eval samples on which they differ"
            )
        mapping[matches[0]] = signature_name
    if len(mapping) != len(keras):  # two .tflite outputs equal the same Keras output, another Keras output none
        missing = [name for name in keras if name not in mapping]
        raise ModelError(
            f"{where}: no .tflite output equals Keras output {', '.join(map(repr, missing))}; several .tflite outputs "
            "equal the same Keras output on the eval samples, so gate cannot map them: report it as a gate bug"
        )
    return {name: mapping[name] for name in keras}


def score_outputs(
    outputs: Mapping[str, np.ndarray],
    specs: Sequence[OutputSpec],
    data: Dataset,
    *,
    float32: Mapping[str, np.ndarray],
    batch_size: int,
    tensors: Mapping[str, str] | None = None,
    confidence: float = 0.95,
) -> tuple[OutputScore, ...]:
    """Each output's task metric, and its fidelity, from a model's outputs by Keras name (a .tflite's mapped).

    `float32`: the float32 .tflite's outputs by Keras name: what an unlabelled (fidelity) output is scored against
    and a candidate's fidelity is measured against. `tensors`: Keras name -> .tflite signature output for a
    candidate (then its fidelity is measured); None for the Keras model and the float32 .tflite.
    """
    from gate.measurement.fidelity import FloatOutputs, measure_fidelity
    from gate.tasks.fidelity import class_scores_problem

    scores = []
    for spec in specs:
        task, values, reference = TASKS[spec.task], outputs[spec.name], float32[spec.name]
        labels = data.output_labels[spec.name] if task.needs_labels else reference
        try:
            value, per_sample = task.score(values, labels, data.inputs)
        except ModelError as exc:
            raise ModelError(f"{data.path}: output '{spec.name}': {exc}") from None
        evaluation = Evaluation(task.metric.name, value, data.samples, batch_size, per_sample)
        fidelity = None
        if tensors is not None and reference.any():  # no SNR against outputs that are zero everywhere
            against = FloatOutputs(reference, class_scores_problem(spec.task, spec.activation, reference))
            fidelity = measure_fidelity(values, against, confidence=confidence)
        scores.append(OutputScore(spec.name, spec.task, tensors[spec.name] if tensors else "", evaluation, fidelity))
    return tuple(scores)


def output_changes(
    float_scores: Sequence[OutputScore], scores: Sequence[OutputScore], data: Dataset, *, confidence: float
) -> tuple[OutputChange, ...]:
    """Each output's metric change against the float model's, with its paired-bootstrap interval."""
    from gate.measurement.stats import change_interval

    changes = []
    for before, after in zip(float_scores, scores, strict=True):
        task = TASKS[after.task]
        labels = data.output_labels.get(after.output)
        interval = change_interval(before.evaluation.per_sample, after.evaluation.per_sample, task, labels,
                                   confidence=confidence)  # fmt: skip
        change = float(task.change(before.evaluation.value, after.evaluation.value))
        changes.append(OutputChange(after.output, after.task, change, interval))
    return tuple(changes)
