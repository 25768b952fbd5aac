"""Gate one model: inspect → load → the float32 reference → the candidate search, in a worker process.

`gate_model` is a function of its job alone (the model folder's files, the
effective policy, the installed tool versions): no state is shared between
models. gate.scheduling.worker runs it in a child process so that a converter crash ends
only that candidate or model (see gate.scheduling.run).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.discover import ModelFiles, ModelFolder, digest, digest_tree, model_files
from gate.environment import tool_versions
from gate.errors import ModelError, log_cause
from gate.files import write_atomic
from gate.keys import Value
from gate.layout import ModelOutputs
from gate.policy.config import Settings, policy_digest
from gate.quantization.base import REFERENCE, Setup, Training, io_dtypes
from gate.quantization.methods import METHODS, search_order
from gate.results import (
    Candidate,
    Conversion,
    ModelResult,
    Provenance,
    Status,
    dumps,
    error_result,
    non_finite_fields,
    to_jsonable,
)
from gate.tasks import TASKS

# The stages of gating one model, in the order they run (progress lines and stage times use these names).
STAGES = ("inspect", "import tensorflow", "load", "reference", "search", "diagnose")


@dataclass(frozen=True)
class Job:
    """Everything that determines one model's result."""

    name: str
    folder: str
    task: str
    method: str
    calibration_samples: int
    calibrate_on_eval: bool
    allow_custom_objects: tuple[str, ...]
    policy_file: str
    policy: dict[str, Value]  # the effective policy: defaults, policy file, overrides
    overrides: dict[str, Value]
    override_reason: str
    out_dir: str
    log_path: str  # where the worker sends TensorFlow's and the converter's output
    result_path: str  # where the worker writes the result
    # Candidates a worker finished (or crashed on) before it died, the search time they took, and the model's
    # wall time so far: a fresh worker resumes the search after them, within what is left of both limits
    # (gate.scheduling.run).
    done: tuple[Candidate, ...] = ()
    search_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    diagnosis_failure: str = ""  # why an earlier worker died while diagnosing: this one skips the diagnosis


class Reporter:
    """What gating a model tells the process that runs it; this base tells nobody (one process, no neighbours)."""

    def stage(self, name: str, seconds: float) -> None:
        """A stage started (seconds < 0) or ended after `seconds`."""

    def candidate(self, method: str) -> None:
        """The search starts building this candidate (a crash from now on is this candidate's)."""

    def candidate_done(self, candidate: Candidate, search_seconds: float) -> None:
        """A candidate is finished: tried, skipped or failed."""

    def note(self, line: str) -> None:
        """A progress line from inside a candidate (e.g. one per QAT epoch)."""

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the machine alone: no other gate worker runs inside this block."""
        yield


class _Stages:
    """Times each stage and reports it as it starts and ends."""

    def __init__(self, reporter: Reporter) -> None:
        self.seconds: dict[str, float] = {}
        self.reporter = reporter

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        self.reporter.stage(name, -1.0)
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)
            self.reporter.stage(name, self.seconds[name])


def gate_model(job: Job, reporter: Reporter | None = None) -> ModelResult:
    """Gate one model; a problem with the model becomes an ERROR result, never an exception."""
    stages = _Stages(reporter or Reporter())
    try:
        return _gate_model(job, stages)
    except _NothingBuilt as exc:
        return error_result(job.name, f"{job.folder}: {exc}", task=job.task, stage_seconds=stages.seconds,
                            candidates=exc.candidates)  # fmt: skip
    except ModelError as exc:
        log_cause(exc)
        return error_result(job.name, str(exc), task=job.task, stage_seconds=stages.seconds)


def _gate_model(job: Job, stages: _Stages) -> ModelResult:
    from gate.frontends import frontend_for

    folder = ModelFolder(job.name, Path(job.folder))
    staged = ModelOutputs(Path(job.out_dir), job.name)
    policy = job.policy
    settings = Settings.of(policy)
    order = search_order(job.method, settings.candidates)
    with stages.stage("inspect"):
        files = model_files(folder)
        frontend = frontend_for(files.format)
        inspection = frontend.inspect(files.model, allowed_custom_objects=job.allow_custom_objects)

    with stages.stage("import tensorflow"):
        import tensorflow  # noqa: F401 - timed on its own so stage times are comparable

        from gate.gating import search
        from gate.quantization import convert
        from gate.targets import TARGETS
        from gate.targets.base import Timing
        from gate.targets.graph import macs_of
        from gate.targets.litert import evaluate_float

        target = TARGETS[settings.target]

    with tempfile.TemporaryDirectory(prefix="gate-") as scratch:
        app_resets = settings.resets_state
        with stages.stage("load"):
            # The converter needs a static batch for recurrent layers ('tf.TensorListReserve' ... must be static).
            # Unrolled, they keep no state between invokes; as they are, a tf-keras LSTM does (gate.frontends.keras).
            model = frontend.load(
                files.model,
                inspection,
                export_dir=Path(scratch) / "export",
                fixed_batch=inspection.has_recurrent_layers,
                unroll=not app_resets,
            )
            signature = inspection.signature
            eval_data, calibration, train = read_data(
                files, order, calibrate_on_eval=job.calibrate_on_eval, model_folder=folder.path, inputs=model.inputs,
                task=job.task, output_width=model.output_width,
                output_activation=signature.output_activation if signature else None,
            )  # fmt: skip

        threads = os.cpu_count() or 1
        timing = Timing(settings.latency_threads, settings.latency_rounds, settings.latency_warmup_rounds)

        def save(method: str, tflite: bytes) -> Path:
            write_atomic(staged.artifact(method), tflite)
            return staged.artifact(method)

        def describe(method: str, path: Path) -> Conversion:
            measured = target.measure(path, eval_data, job.task, threads=threads, app_resets=app_resets)
            device = measured.device and dataclasses.replace(
                measured.device, files=tuple(digest(file, staged.root) for file in measured.files)
            )
            return Conversion(method, digest(path, staged.root), measured.inputs, measured.outputs, measured.float_ops,
                              measured.evaluation, None, measured.state, macs_of(path), device)  # fmt: skip

        with stages.stage("reference"):
            float_evaluation = evaluate_float(model.predict, eval_data, job.task)
            reference_path = save(REFERENCE, convert.convert(model.saved_model_dir, method=REFERENCE).tflite)
            reference = describe(REFERENCE, reference_path)
        reference_latencies = {}

        def time_latency(method: str, path: Path) -> tuple[Any, Any] | None:
            if not search.judges_latency(policy):
                return None
            # Timed in one pytest-benchmark run with the float32 reference, so the speedup compares like with like.
            json_path = staged.benchmark.with_name(f"{job.name}.{method}.json")
            json_path.parent.mkdir(parents=True, exist_ok=True)
            latencies = target.time({REFERENCE: reference_path, method: path}, eval_data, timing, json_path=json_path,
                                    work_dir=Path(scratch), alone=stages.reporter.exclusive)  # fmt: skip
            reference_latencies[method] = latencies[REFERENCE]
            return latencies[method], latencies[REFERENCE]

        input_dtype, output_dtype = io_dtypes(policy)
        first = {n: a[: job.calibration_samples] for n, a in calibration.inputs.items()} if calibration else None
        setup = Setup(
            input_dtype=input_dtype,
            output_dtype=output_dtype,
            calibration=first,
            all_calibration=calibration.inputs if calibration else None,
            float_tflite=reference_path.read_bytes(),
            allowed_change=search.allowed_change(policy, job.task),
            metric_change=lambda tflite: _metric_change_of(tflite, Path(scratch), eval_data, job.task, threads,
                                                           app_resets, float_evaluation.value, target),
            task=job.task,
            max_float_layers=settings.max_float_layers,
            training=Training(
                model_file=files.model, model_format=inspection.format, model=model,
                train_file=files.train_data if train is not None else None,
                train_labels=train is not None and train.labels is not None, eval_inputs=eval_data.inputs,
                scratch=Path(scratch), epochs=settings.qat_epochs, learning_rate=settings.qat_learning_rate,
                batch_size=settings.qat_batch_size, calibration_samples=job.calibration_samples,
                unroll=not settings.resets_state, candidate_timeout_s=settings.candidate_timeout_s,
                progress=stages.reporter.note,
            ),
        )  # fmt: skip
        source_files = digest_tree(files.model, folder.path)
        source_bytes = sum(f.size_bytes for f in source_files)
        bench = search.Workbench(
            policy=policy,
            task=job.task,
            source_bytes=source_bytes,
            float_evaluation=float_evaluation,
            reference=reference,
            integer_inputs=all(t.dtype.startswith(("int", "uint")) for t in reference.inputs),
            cannot_run=lambda method: target.cannot_run(METHODS[method]),
            setup=setup,
            build=lambda method, setup: convert.convert(
                model.export_for(METHODS[method].needs_calibration), method=method, setup=setup
            ),  # fmt: skip
            save=save,
            describe=describe,
            time_latency=time_latency,
            interval=lambda evaluation: _interval(float_evaluation, evaluation, settings.confidence, job.task),
        )
        search_start = time.monotonic() - job.search_seconds
        with stages.stage("search"):
            candidates, chosen, choice = search.search(
                job.method, bench,
                has_calibration=calibration is not None,
                has_training=train is not None and train.labels is not None,
                done=job.done, elapsed=job.search_seconds,
                started=stages.reporter.candidate,
                finished=lambda c: stages.reporter.candidate_done(c, time.monotonic() - search_start),
            )  # fmt: skip
        if chosen < 0:
            raise _NothingBuilt(candidates)
        published = candidates[chosen]
        assert published.conversion is not None
        if published.method in reference_latencies:  # the published candidate's benchmark is the model's
            staged.benchmark.with_name(f"{job.name}.{published.method}.json").replace(staged.benchmark)
        reference = dataclasses.replace(reference, latency=reference_latencies.get(published.method))
        with stages.stage("diagnose"):
            from gate.gating import diagnose

            if job.diagnosis_failure:
                layer_errors, findings = (), (diagnose.failed(job.diagnosis_failure),)
            else:
                layer_errors, findings = diagnose.diagnose(
                    candidates, published, setup, model.export_for(calibrated=True), eval_data, policy, job.task
                )

    input_files = [*source_files, eval_data.info.file]
    if calibration and calibration.info.file != eval_data.info.file:
        input_files.append(calibration.info.file)
    if files.train_data and (not calibration or calibration.info.file.path != files.train_data.name):
        input_files.append(digest(files.train_data, folder.path))
    if folder.manifest.is_file():
        input_files.append(digest(folder.manifest, folder.path))
    return ModelResult(
        name=job.name,
        status=Status.PASS if published.status is Status.PASS else Status.FAIL,
        error="",
        task=job.task,
        source_format=inspection.format,
        source_writer=f"{inspection.writer} {inspection.writer_version}".strip(),
        source_bytes=source_bytes,
        fixed_batch=model.fixed_batch,
        float_evaluation=float_evaluation,
        reference=reference,
        candidates=candidates,
        chosen=chosen,
        choice=choice,
        calibration=dataclasses.replace(calibration.info, samples=min(calibration.samples, job.calibration_samples))
        if calibration
        else None,
        evaluation_data=eval_data.info,
        provenance=Provenance(
            tool_versions=tool_versions(),
            inputs=tuple(sorted(set(input_files), key=lambda f: f.path)),
            policy_file=job.policy_file,
            policy_sha256=policy_digest(policy),
            effective_policy=policy,
            overrides=job.overrides,
            override_reason=job.override_reason,
            allowed_custom_objects=inspection.allowed_custom_objects,
            method=job.method,
        ),
        stage_seconds=stages.seconds,
        layer_errors=layer_errors,
        findings=findings,
    )


class _NothingBuilt(ModelError):
    """No candidate could be built: the model is an ERROR row that lists what happened to each."""

    def __init__(self, candidates: tuple[Candidate, ...]) -> None:
        self.candidates = candidates
        by_reason: dict[str, list[str]] = {}
        for candidate in candidates:
            by_reason.setdefault(candidate.reason, []).append(candidate.method)
        outcomes = "; ".join(f"{', '.join(methods)}: {reason}" for reason, methods in by_reason.items())
        super().__init__(f"no candidate could be built: {outcomes}")


def _metric_change_of(tflite: bytes, scratch: Path, eval_data: Any, task: str, threads: int, app_resets: bool,
                      float_value: float, target: Any) -> float:  # fmt: skip
    """The metric change of a .tflite not yet staged (for methods that search themselves)."""
    path = scratch / "probe.tflite"
    path.write_bytes(tflite)
    measured = target.measure(path, eval_data, task, threads=threads, app_resets=app_resets)
    return TASKS[task].change(float_value, measured.evaluation.value)


def _interval(float_evaluation: Any, evaluation: Any, confidence: float, task: str) -> Any:
    from gate.measurement.stats import change_interval

    return change_interval(float_evaluation.per_sample, evaluation.per_sample, TASKS[task],
                           confidence=confidence)  # fmt: skip


def read_data(
    files: ModelFiles, order: Sequence[str], *, calibrate_on_eval: bool, **data_args: Any
) -> tuple[Any, Any, Any]:
    """eval.npz, and the calibration and training data the candidates in `order` need, read and checked.

    Calibration data is calib.npz, else train.npz; the eval set only when gate.toml says so; else None.
    Training data (QAT's) is train.npz, labels and all. `gate validate` reads them with this too, with the
    inputs the model file declares, so both commands refuse the same data with the same message.
    """
    from gate.frontends import data

    eval_data = data.load_dataset(files.eval_data, need_labels=True, **data_args)
    calibration = train = None
    if any(METHODS[name].needs_calibration for name in order):
        source = files.calib_data or files.train_data
        if source is not None:
            calibration = data.load_dataset(source, need_labels=False, **data_args)
        elif calibrate_on_eval:
            calibration = eval_data
    if any(METHODS[name].needs_training_data for name in order) and files.train_data:
        reuse = calibration is not None and calibration.path == files.train_data
        train = calibration if reuse else data.load_dataset(files.train_data, need_labels=False, **data_args)
    return eval_data, calibration, train


def encode_result(job: Job, result: ModelResult) -> str:
    """The result as the reports will encode it; a figure that is NaN or infinite makes it an ERROR result.

    JSON has neither NaN nor infinity, and the reports refuse them: encoding them here would
    leave the whole run without a report. Say which figure instead; the other models' rows stand.
    """
    if bad := non_finite_fields(result):
        result = error_result(
            job.name,
            f"{job.folder}: a measured figure is not a finite number ({', '.join(bad[:5])}); "
            "the model or its data produce NaN or infinity",
            task=job.task,
            stage_seconds=result.stage_seconds,
        )
    return dumps(to_jsonable(result))
