"""Gating a model with several outputs: each output scored by its own task, and judged under its own name.

The reference stage maps each .tflite output to its Keras output (gate.measurement.outputs) and scores the Keras
model per output; every file (the float32 .tflite and each candidate) is then scored per output (a Conversion's
`per_output`), each candidate's change per output gets its interval, and the search ranks and stops on the worst
output's (gate.policy.judge.worst_output). gate.gating.pipeline calls this module in place of the one-output steps.

The methods that measure their own builds (int8-float-fallback, int8-int16-layers) judge each build by its worst
judged output's share of what the policy allows (gate.policy.judge.worst_share). QAT trains every output at once
(qat.heads).

Every file is run where the policy's target runs it (Target.measure_outputs: TFLM's interpreter for tflm, LiteRT on
the file Vela compiles for Ethos-U), with that target's device figures; its outputs come by signature name, so the
mapping proven on the float32 file holds on every target. Not yet: a file that keeps state between invokes is
refused.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

import numpy as np

from gate.errors import ModelError
from gate.files import write_atomic
from gate.frontends.base import PREDICT_BATCH, OutputSpec
from gate.measurement.outputs import Outputs, map_outputs, output_changes, score_outputs
from gate.policy.judge import worst_output, worst_share
from gate.quantization.base import REFERENCE
from gate.quantization.methods import METHODS
from gate.results import Conversion, ModelResult, OutputChange, OutputScore
from gate.tasks import TASKS
from gate.tasks.fidelity import FIDELITY

if TYPE_CHECKING:
    from pathlib import Path

    from gate.frontends.base import Dataset, LoadedModel
    from gate.gating.search import Workbench
    from gate.gating.stages import Inspected, Loaded, Referenced
    from gate.layout import ModelOutputs
    from gate.policy.config import Settings
    from gate.targets.base import MeasuredOutputs

NOT_YET = "the model has several outputs, and gate does not {} for several yet"


def keras_outputs(model: LoadedModel, data: Dataset, *, where: str) -> dict[str, np.ndarray]:
    """The Keras model's outputs on the eval set, by Keras output name; each must have the batch as its first
    dimension (a SavedModel's signature may return one without: it would be scored as that many samples)."""
    from gate.targets.litert import refuse_non_finite_outputs

    assert model.predict_each is not None  # a model whose file declares several outputs (gate.frontends.keras)
    batches = []
    for start in range(0, data.samples, PREDICT_BATCH):
        batch = model.predict_each({name: array[start : start + PREDICT_BATCH] for name, array in data.inputs.items()})
        size = min(PREDICT_BATCH, data.samples - start)
        for name, values in batch.items():
            if np.shape(values)[:1] != (size,):
                raise ModelError(
                    f"{where}: output '{name}' has shape {np.shape(values)} on a batch of {size} eval samples: every "
                    "output must have the batch as its first dimension (one row per sample); return the output for "
                    "each sample"
                )
        batches.append(batch)
    outputs = {name: np.concatenate([batch[name] for batch in batches]) for name in batches[0]}
    for name, values in outputs.items():
        refuse_non_finite_outputs(values, data, f"the float model (output '{name}')")
    return outputs


def reference(
    inspected: Inspected, loaded: Loaded, staged: ModelOutputs, settings: Settings, specs: tuple[OutputSpec, ...]
) -> Referenced:
    """The reference stage of a model with several outputs: the mapping, the Keras model's and the float32 file's
    scores per output."""
    from gate.gating.stages import Referenced
    from gate.quantization.convert import convert
    from gate.targets.litert import signature_outputs

    data = loaded.eval_data
    keras = keras_outputs(loaded.model, data, where=str(inspected.files.model))
    if list(keras) != [spec.name for spec in specs]:
        raise ModelError(
            f"{inspected.files.model}: Keras names its outputs {', '.join(keras)}, but its config "
            f"{', '.join(spec.name for spec in specs)}; re-save the model with model.save()"
        )
    path = staged.artifact(REFERENCE)
    write_atomic(path, convert(loaded.model.saved_model_dir, method=REFERENCE).tflite)
    by_tensor, _batch = signature_outputs(path, data, threads=_threads())
    tensors = map_outputs(keras, by_tensor, where=str(inspected.files.model))
    float32 = {name: by_tensor[tensor] for name, tensor in tensors.items()}
    float_scores = score_outputs(keras, specs, data, float32=float32, batch_size=PREDICT_BATCH)
    outputs = Outputs(specs, tensors, float32, float_scores, settings.confidence, settings.target)
    conversion = describe(outputs, REFERENCE, path, data, staged)
    return Referenced(float_scores[0].evaluation, conversion, path, None, data, outputs)


def describe(outputs: Outputs, method: str, path: Path, data: Dataset, staged: ModelOutputs) -> Conversion:
    """A file as the target runs it, scored per output, with the target's device figures; its `evaluation` is its
    first output's until the search knows which is its worst."""
    from gate.discover import digest
    from gate.targets.graph import macs_of
    from gate.targets.litert import describe as describe_file
    from gate.targets.litert import variable_tensors

    if variable_tensors(path):
        raise ModelError(f"{path.name}: keeps state between invokes; {NOT_YET.format('measure such a file')}")
    inputs, tensor_info, float_ops = describe_file(path)
    measured = _run(outputs, path, data)
    scores = _scored(outputs, measured, data, fidelity=method != REFERENCE)
    files = tuple(digest(file, staged.root) for file in measured.files)
    device = measured.device and dataclasses.replace(measured.device, files=files)
    return Conversion(method, digest(path, staged.root), inputs, tensor_info, float_ops, scores[0].evaluation, None,
                      macs=macs_of(path), device=device, per_output=scores)  # fmt: skip


def _scores(outputs: Outputs, path: Path, data: Dataset, *, fidelity: bool) -> tuple[OutputScore, ...]:
    """A file's outputs as the target runs it, each scored by its task (a candidate's also against the float32 file)."""
    return _scored(outputs, _run(outputs, path, data), data, fidelity=fidelity)


def _run(outputs: Outputs, path: Path, data: Dataset) -> MeasuredOutputs:
    from gate.targets import TARGETS

    return TARGETS[outputs.target].measure_outputs(path, data, threads=_threads())


def _scored(outputs: Outputs, measured: MeasuredOutputs, data: Dataset, *, fidelity: bool) -> tuple[OutputScore, ...]:
    values = {name: measured.outputs[tensor] for name, tensor in outputs.tensors.items()}
    return score_outputs(values, outputs.specs, data, float32=outputs.float32, batch_size=measured.batch_size,
                         tensors=outputs.tensors if fidelity else None, confidence=outputs.confidence)  # fmt: skip


def workbench(bench: Workbench, outputs: Outputs, data: Dataset, staged: ModelOutputs, scratch: Path) -> Workbench:
    """The search's workbench for a model with several outputs: files scored per output, changes per output, the
    methods that search themselves (float fallback) judging a build by its worst output, and QAT on every output."""

    def changes(conversion: Conversion) -> tuple[OutputChange, ...]:
        return output_changes(outputs.float_scores, conversion.per_output, data, confidence=outputs.confidence)

    def loss(tflite: bytes) -> float:
        path = scratch / "probe.tflite"
        write_atomic(path, tflite)
        scores = _scores(outputs, path, data, fidelity=False)
        return worst_share(
            output_changes(outputs.float_scores, scores, data, confidence=outputs.confidence), bench.policy
        )

    def cannot_run(method: str) -> str:
        if METHODS[method].needs_training_data and (reason := _untrainable(outputs.specs)):
            return reason
        return bench.cannot_run(method)

    tasks = {spec.task for spec in outputs.specs}
    judged = any(isinstance(bench.policy.get(TASKS[task].policy_key), int | float) for task in tasks)
    training = bench.setup.training
    if training is not None:  # QAT trains every output at once, each by its task (gate.quantization.qat.heads)
        training = dataclasses.replace(training, outputs=tuple((spec.name, spec.task) for spec in outputs.specs))
    return dataclasses.replace(
        bench,
        setup=dataclasses.replace(bench.setup, loss=loss, allowed_loss=1.0 if judged else None, training=training),
        describe=lambda method, path: describe(outputs, method, path, data, staged),
        output_changes=changes,
        cannot_run=cannot_run,
    )


def _untrainable(specs: tuple[OutputSpec, ...]) -> str:
    """Why QAT cannot train the model's outputs at once ("" when it can): each labelled output trains on its task's
    loss, and a fidelity output towards the float model's outputs; another task without a loss stops it."""
    for spec in specs:
        if spec.task != FIDELITY.name and (reason := TASKS[spec.task].untrainable):
            return f"output '{spec.name}': {reason}"
    if all(spec.task == FIDELITY.name for spec in specs):
        return "it trains on labels, and every output is scored by fidelity, which has none it can train on"
    return ""


def finished(result: ModelResult, outputs: Outputs) -> ModelResult:
    """The model's result, its summary figures (task, float metric) those of the published candidate's worst output."""
    published = result.candidate
    assert published is not None and result.reference is not None and result.provenance is not None
    at = worst_output(published.per_output, result.provenance.effective_policy)
    reference = dataclasses.replace(result.reference, evaluation=result.reference.per_output[at].evaluation)
    float_evaluation = outputs.float_scores[at].evaluation
    return dataclasses.replace(result, task=outputs.specs[at].task, float_evaluation=float_evaluation,
                               reference=reference, float_per_output=outputs.float_scores)  # fmt: skip


def _threads() -> int:
    return os.cpu_count() or 1
