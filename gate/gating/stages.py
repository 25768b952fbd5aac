"""The stages of gating one model, each a function from typed inputs to a typed, frozen output.

inspect → load → reference → search → diagnose → assemble (gate.gating.assemble), run in this order by
gate.gating.pipeline. A stage reads only what the earlier ones hand it, so a target or a task adds a figure or a
stage without editing the others; and what a stage no longer needs is let go (the Keras model once the float
figures and the exports exist, unless quantization-aware training rebuilds it), so that a model's worker holds one
model at a time.
"""

from __future__ import annotations

import dataclasses
import gc
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.discover import ModelFiles, ModelFolder, digest, digest_tree, model_files
from gate.errors import ModelError
from gate.files import write_atomic
from gate.findings import Finding, LayerError
from gate.gating.data import output_specs, read_data
from gate.gating.job import Job, Reporter
from gate.layout import ModelOutputs
from gate.policy.config import Settings
from gate.quantization.base import REFERENCE, Setup, Training, io_dtypes
from gate.quantization.methods import METHODS
from gate.results import (
    Candidate,
    Conversion,
    Evaluation,
    FileDigest,
    Latency,
)
from gate.tasks import TASKS
from gate.tasks.custom import CustomTask

# Its `# fmt: skip`s keep this module under 400 lines (formatted, it goes over): split it before removing them.

if TYPE_CHECKING:
    from gate.frontends.base import Dataset, Frontend, LoadedModel, OutputSpec
    from gate.inspection import Inspection
    from gate.measurement.fidelity import FloatOutputs
    from gate.measurement.outputs import Outputs
    from gate.targets.base import Target, Timing


@dataclass(frozen=True)
class Inspected:
    """The inspect stage: the model folder's files, the frontend that reads them, what inspection established."""

    folder: ModelFolder
    files: ModelFiles
    frontend: Frontend
    inspection: Inspection
    source_files: tuple[FileDigest, ...]

    @property
    def source_bytes(self) -> int:
        return sum(f.size_bytes for f in self.source_files)


@dataclass(frozen=True)
class Loaded:
    """The load stage: the float model and the data, checked against it."""

    model: LoadedModel
    eval_data: Dataset
    calibration: Dataset | None
    train: Dataset | None
    outputs: tuple[OutputSpec, ...] = ()  # a model with several outputs: each with its task (gate.gating.several)


@dataclass(frozen=True)
class Referenced:
    """The reference stage: the float model's metric and the float32 .tflite, measured on the target."""

    float_evaluation: Evaluation
    reference: Conversion
    reference_path: Path
    # The float32 .tflite's outputs, which every candidate's fidelity is measured against (None: zero everywhere).
    float_outputs: FloatOutputs | None
    eval_data: Dataset  # as every model is scored on it: a task without labels scores against the float outputs
    outputs: Outputs | None = None  # a model with several outputs: what each output is scored against
    float_model_outputs: Any = None  # np.ndarray: the float model's outputs, kept for a custom task only


@dataclass(frozen=True)
class Searched:
    """The search stage: every candidate tried, the one published and why."""

    candidates: tuple[Candidate, ...]
    chosen: int
    choice: str
    reference_latencies: dict[str, Latency]  # the float32 file's latency, timed with each candidate
    setup: Setup  # what the candidates were built from (the diagnosis ranks layers on the same calibration)

    @property
    def published(self) -> Candidate:
        return self.candidates[self.chosen]


@dataclass(frozen=True)
class Diagnosed:
    """The diagnose stage: why quantization hurt, when it did."""

    layer_errors: tuple[LayerError, ...]
    findings: tuple[Finding, ...]


class NothingBuilt(ModelError):
    """No candidate could be built: the model is an ERROR row that lists what happened to each."""

    def __init__(self, candidates: Sequence[Candidate]) -> None:
        self.candidates = tuple(candidates)
        by_reason: dict[str, list[str]] = {}
        for candidate in candidates:
            by_reason.setdefault(candidate.reason, []).append(candidate.method)
        outcomes = "; ".join(f"{', '.join(methods)}: {reason}" for reason, methods in by_reason.items())
        super().__init__(f"no candidate could be built: {outcomes}")


def inspect(job: Job) -> Inspected:
    from gate.frontends import frontend_for

    folder = ModelFolder(job.name, Path(job.folder))
    files = model_files(folder)
    frontend = frontend_for(files.format)
    inspection = frontend.inspect(files.model, allowed_custom_objects=job.allow_custom_objects)
    return Inspected(folder, files, frontend, inspection, digest_tree(files.model, folder.path))


def load(job: Job, inspected: Inspected, settings: Settings, order: Sequence[str], scratch: Path) -> Loaded:
    inspection = inspected.inspection
    outputs = output_specs(inspection, job.outputs, manifest=str(inspected.folder.manifest),
                           model_file=inspected.files.model, task=job.task)  # fmt: skip
    # The converter needs a static batch for recurrent layers ('tf.TensorListReserve' ... must be static).
    # Unrolled, they keep no state between invokes; as they are, a tf-keras LSTM does (gate.frontends.keras).
    model = inspected.frontend.load(
        inspected.files.model, inspection, export_dir=scratch / "export",
        fixed_batch=inspection.has_recurrent_layers, unroll=not settings.resets_state,
    )  # fmt: skip
    signature = inspection.signature
    eval_data, calibration, train = read_data(
        inspected.files, order, calibrate_on_eval=job.calibrate_on_eval, model_folder=inspected.folder.path,
        inputs=model.inputs, task=job.task, output_width=model.output_width,
        output_activation=signature.output_activation if signature else None, outputs=outputs,
    )  # fmt: skip
    return Loaded(model, eval_data, calibration, train, outputs)


def reference(
    job: Job, inspected: Inspected, loaded: Loaded, target: Target, staged: ModelOutputs, settings: Settings
) -> Referenced:
    from gate.measurement.fidelity import float_outputs
    from gate.quantization.convert import convert
    from gate.targets.litert import evaluate_float, float_model_outputs, scored

    # The float model first, so that its own NaN outputs are said to be its own, not its conversion's; a task without
    # labels scores it against the float32 .tflite's outputs (its fidelity), which come after the conversion.
    labelled = TASKS[job.task].needs_labels
    outputs, batch = float_model_outputs(loaded.model.predict, loaded.eval_data) if labelled else (None, 0)
    float_evaluation = scored(outputs, loaded.eval_data, job.task, batch) if outputs is not None else None
    path = _save(staged, REFERENCE, convert(loaded.model.saved_model_dir, method=REFERENCE).tflite)
    signature = inspected.inspection.signature
    activation = signature.output_activation if signature else None
    values, compared_with = float_outputs(path, loaded.eval_data, task=job.task, activation=activation,
                                          threads=_threads(), app_resets=settings.resets_state)  # fmt: skip
    data = loaded.eval_data if labelled else dataclasses.replace(loaded.eval_data, labels=values)
    float_evaluation = float_evaluation or evaluate_float(loaded.model.predict, data, job.task)
    measured = _describe(target, staged, data, job.task, settings, REFERENCE, path)
    kept = outputs if isinstance(TASKS[job.task], CustomTask) else None  # a custom metric's interval resamples them
    return Referenced(float_evaluation, measured, path, compared_with, data, float_model_outputs=kept)


def let_go_of_the_float_model(loaded: Loaded, order: Sequence[str]) -> Loaded:
    """The float model itself, once its figures and exports exist: only quantization-aware training rebuilds it."""
    if any(METHODS[name].needs_training_data for name in order):
        return loaded
    model = dataclasses.replace(loaded.model, predict=_released, keras_model=None)
    loaded = dataclasses.replace(loaded, model=model)
    import keras

    keras.backend.clear_session()  # the layers' graphs and variables that Keras keeps for the session
    gc.collect()
    return loaded


def _released(inputs: Any) -> Any:
    raise AssertionError("the float model was let go of after the reference stage")


def search(
    job: Job,
    inspected: Inspected,
    loaded: Loaded,
    referenced: Referenced,
    *,
    target: Target,
    timing: Timing,
    settings: Settings,
    staged: ModelOutputs,
    scratch: Path,
    reporter: Reporter,
    search_start: float,
    now: Callable[[], float],
    bench_for: Callable[[Any], Any] = lambda bench: bench,  # a model with several outputs: gate.gating.several's
) -> Searched:
    from gate.gating import search as searching
    from gate.quantization.convert import convert
    from gate.targets.base import no_int16_kernel_reason
    from gate.targets.graph import read_graph

    policy, task, eval_data, model = job.policy, job.task, referenced.eval_data, loaded.model
    calibration, train = loaded.calibration, loaded.train
    float_value = referenced.float_evaluation.value
    reference_latencies: dict[str, Latency] = {}

    def time_latency(method: str, path: Path) -> tuple[Latency, Latency] | None:
        if not searching.judges_latency(policy):
            return None
        # Timed in one pytest-benchmark run with the float32 reference, so the speedup compares like with like.
        json_path = staged.benchmark.with_name(f"{job.name}.{method}.json")
        json_path.parent.mkdir(parents=True, exist_ok=True)
        latencies = target.time({REFERENCE: referenced.reference_path, method: path}, eval_data, timing,
                                json_path=json_path, work_dir=scratch, alone=reporter.exclusive)  # fmt: skip
        reference_latencies[method] = latencies[REFERENCE]
        return latencies[method], latencies[REFERENCE]

    def loss(tflite: bytes) -> float:
        """How much worse than the float model a .tflite not yet staged is (for methods that search themselves)."""
        path = scratch / "probe.tflite"
        path.write_bytes(tflite)
        measured = target.measure(path, eval_data, task, threads=_threads(), app_resets=settings.resets_state)
        return TASKS[task].loss(TASKS[task].change(float_value, measured.evaluation.value))

    def interval(method: str, evaluation: Evaluation) -> object:
        from gate.measurement.custom import metric_change_interval
        from gate.targets.litert import outputs_as_the_app_runs_it

        run = partial(outputs_as_the_app_runs_it, staged.artifact(method), eval_data, threads=_threads(),
                      app_resets=settings.resets_state)  # fmt: skip
        return metric_change_interval(TASKS[task], referenced.float_evaluation, evaluation, eval_data.labels,
                                      referenced.float_model_outputs, run, confidence=settings.confidence)  # fmt: skip

    # The float32 reference's operators: what a 16x8 candidate of it runs at int16.
    reference_operators = read_graph(referenced.reference_path.read_bytes()).op_counts()
    input_dtype, output_dtype = io_dtypes(policy)
    first = {n: a[: job.calibration_samples] for n, a in calibration.inputs.items()} if calibration else None
    setup = Setup(
        input_dtype=input_dtype,
        output_dtype=output_dtype,
        calibration=first,
        all_calibration=calibration.inputs if calibration else None,
        float_tflite=referenced.reference_path.read_bytes(),
        loss=loss,
        allowed_loss=None if (allowed := searching.allowed_change(policy, task)) is None else TASKS[task].loss(allowed),
        task=task,
        max_float_layers=settings.max_float_layers,
        no_int16_kernel=target.no_int16_kernel,
        training=Training(
            model_file=inspected.files.model, model_format=inspected.inspection.format, model=model,
            train_file=inspected.files.train_data if train is not None else None,
            train_labels=train is not None and (train.labels is not None or bool(train.output_labels)),
            eval_inputs=eval_data.inputs,
            scratch=scratch, epochs=settings.qat_epochs, learning_rate=settings.qat_learning_rate,
            batch_size=settings.qat_batch_size, calibration_samples=job.calibration_samples,
            unroll=not settings.resets_state, candidate_timeout_s=settings.candidate_timeout_s,
            progress=reporter.note,
        ),
    )  # fmt: skip
    bench = searching.Workbench(
        policy=policy,
        task=task,
        source_bytes=inspected.source_bytes,
        float_evaluation=referenced.float_evaluation,
        reference=referenced.reference,
        integer_inputs=all(t.dtype.startswith(("int", "uint")) for t in referenced.reference.inputs),
        setup=setup,
        build=lambda method, setup: convert(
            model.export_for(METHODS[method].needs_calibration), method=method, setup=setup
        ),
        save=lambda method, tflite: _save(staged, method, tflite),
        describe=lambda method, path: _describe(
            target, staged, eval_data, task, settings, method, path, compared_with=referenced.float_outputs
        ),
        time_latency=time_latency,
        interval=interval,
        cannot_run=lambda method: (
            target.cannot_run(METHODS[method]) or no_int16_kernel_reason(target, METHODS[method], reference_operators)
        ),
    )
    bench = bench_for(bench)
    candidates, chosen, choice = searching.search(
        job.method, bench,
        has_calibration=calibration is not None,
        has_training=train is not None and (train.labels is not None or bool(train.output_labels)),
        done=job.done, elapsed=job.search_seconds,
        started=reporter.candidate,
        finished=lambda c: reporter.candidate_done(c, now() - search_start),
    )  # fmt: skip
    if chosen < 0:
        raise NothingBuilt(candidates)
    # The diagnosis needs the calibration, not the model: QAT's inputs go with the search.
    return Searched(candidates, chosen, choice, reference_latencies, dataclasses.replace(setup, training=None))


def diagnose(job: Job, loaded: Loaded, searched: Searched) -> Diagnosed:
    from gate.gating import diagnose as diagnosing

    if job.diagnosis_failure:
        return Diagnosed((), (diagnosing.failed(job.diagnosis_failure),))
    layer_errors, findings = diagnosing.diagnose(
        searched.candidates, searched.published, searched.setup, loaded.model.export_for(calibrated=True),
        loaded.eval_data, job.policy, job.task,
    )  # fmt: skip
    return Diagnosed(layer_errors, findings)


def _threads() -> int:
    return os.cpu_count() or 1


def _save(staged: ModelOutputs, method: str, tflite: bytes) -> Path:
    write_atomic(staged.artifact(method), tflite)
    return staged.artifact(method)


def _describe(
    target: Target, staged: ModelOutputs, data: Dataset, task: str, settings: Settings, method: str, path: Path,
    *, compared_with: FloatOutputs | None = None,
) -> Conversion:  # fmt: skip
    """A built file as the target measures it (no latency yet), and its fidelity to `compared_with` (LiteRT's)."""
    from gate.measurement.fidelity import fidelity_of
    from gate.targets.graph import macs_of

    measured = target.measure(path, data, task, threads=_threads(), app_resets=settings.resets_state)
    files = tuple(digest(file, staged.root) for file in measured.files)
    device = measured.device and dataclasses.replace(measured.device, files=files)
    fidelity = fidelity_of(path, data, compared_with, threads=_threads(), app_resets=settings.resets_state,
                           confidence=settings.confidence)  # fmt: skip
    return Conversion(method, digest(path, staged.root), measured.inputs, measured.outputs, measured.float_ops,
                      measured.evaluation, None, measured.state, macs_of(path), device, fidelity)  # fmt: skip
