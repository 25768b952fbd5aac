"""What quantization-aware training minimises: one output's loss and targets, and a model with several outputs'.

Every output trains at once, each with its own loss, summed:
- an output whose task has labels trains on train.npz's y.<output name> with the loss one-output QAT uses for that task
  (cross-entropy on class indices, MAE on targets: `objective`, `targets`);
- an output scored by fidelity has no labels: it trains towards the float model's own outputs on the training inputs
  (distillation, mean squared error), which keeps it where it was while the other outputs learn around the
  fake-quant steps.
Runs in the QAT process (TF_USE_LEGACY_KERAS=1); nothing here imports TensorFlow at module level.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gate.quantization.qat.job import QatRequest
from gate.tasks import TASKS
from gate.tasks.base import Task

PREDICT_BATCH = 256
DISTILLED = "MSE to the float model's outputs (distillation: no labels)"


def objective(task: Task, scores: np.ndarray | None):
    """One output's training objective: cross-entropy on probabilities or logits, as `scores` (the float model's
    outputs on training inputs) show the model gives them; MAE (regression, which reads no scores)."""
    import tf_keras

    if task.qat_loss == "mae":
        return tf_keras.losses.MeanAbsoluteError(), tf_keras.metrics.MeanAbsoluteError(name="mae"), "mae", "mae"
    assert scores is not None
    probabilities = bool(np.all((scores >= 0) & (scores <= 1)))
    if scores.shape[-1] > 1:
        probabilities = probabilities and bool(np.allclose(scores.sum(axis=-1), 1, atol=1e-3))
        loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)
        metric = tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        name = "sparse_categorical_crossentropy"
    else:
        loss = tf_keras.losses.BinaryCrossentropy(from_logits=not probabilities)
        metric = tf_keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.5 if probabilities else 0.0)
        name = "binary_crossentropy"
    return loss, metric, f"{name} ({'probabilities' if probabilities else 'logits'})", "accuracy"


def targets(task: Task, labels: np.ndarray, *, width: int | None) -> np.ndarray:
    """One output's labels as its loss reads them."""
    if task.qat_loss == "mae":
        return labels.astype(np.float32)
    if width == 1:  # one sigmoid unit: binary cross-entropy on 0/1 targets
        return labels.astype(np.float32).reshape(-1, 1)
    return labels


def predict_each(model: Any, arrays: Mapping[str, np.ndarray], inputs: tuple) -> dict[str, np.ndarray]:
    """A tf-keras model's outputs on `arrays` (by input name), by output name."""
    samples = len(arrays[inputs[0].name])
    batches = []
    for start in range(0, samples, PREDICT_BATCH):
        batch = [arrays[s.name][start : start + PREDICT_BATCH] for s in inputs]
        batches.append([np.asarray(value) for value in model(batch if len(batch) > 1 else batch[0], training=False)])
    return {name: np.concatenate([b[i] for b in batches]) for i, name in enumerate(model.output_names)}


def objectives(model: Any, train: Any, request: QatRequest, inputs: tuple) -> tuple[list, list[np.ndarray], str]:
    """Each output's loss and training targets, in the model's order, and how the report says what it trained on.

    `model` is the float tf-keras model (before annotation): its outputs on the training inputs are what an output
    without labels is distilled towards, and what says whether a classifier outputs probabilities or logits.
    """
    import tf_keras

    float_outputs = predict_each(model, train.inputs, inputs)
    losses, wanted, said = [], [], []
    for name, task in request.outputs:
        if TASKS[task].qat_loss:
            loss, _metric, description, _name = objective(TASKS[task], float_outputs[name])
            wanted.append(targets(TASKS[task], train.output_labels[name], width=float_outputs[name].shape[-1]))
        else:  # fidelity: gate.gating.several refuses QAT for any other task without a training loss
            loss, description = tf_keras.losses.MeanSquaredError(), DISTILLED
            wanted.append(float_outputs[name].astype(np.float32))
        losses.append(loss)
        said.append(f"{name} by {description}")
    return losses, wanted, "; ".join(said)
