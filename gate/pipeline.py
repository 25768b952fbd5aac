"""Gate one model: inspect → load → quantize → measure → judge, in a worker process.

`gate_model` is a function of its job alone (the model folder's files, the
effective policy, the installed tool versions): no state is shared between
models. `python -m gate.pipeline JOB PROGRESS_FD` runs it in a child process
so that a converter crash ends only that model (see gate.run).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from gate import __version__
from gate.config import policy_digest
from gate.discover import ModelFolder, digest, digest_tree, model_files
from gate.errors import ModelError
from gate.judge import LATENCY_CHECKS, PolicyValue, judge
from gate.report import write_atomic
from gate.results import (
    Candidate,
    Conversion,
    ModelResult,
    Provenance,
    Status,
    error_result,
    from_jsonable,
    to_jsonable,
)

# The stages of gating one model, in the order they run (progress lines and stage times use these names).
STAGES = ("inspect", "import tensorflow", "load", "quantize", "evaluate", "latency", "judge")
TOOL_DISTRIBUTIONS = ("tensorflow", "keras", "tf-keras", "ai-edge-litert", "numpy", "pytest-benchmark")


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
    policy: dict[str, PolicyValue]  # the effective policy: defaults, policy file, overrides
    overrides: dict[str, PolicyValue]
    override_reason: str
    out_dir: str


def tool_versions() -> dict[str, str]:
    versions = {"gate": __version__, "python": sys.version.split()[0]}
    for distribution in TOOL_DISTRIBUTIONS:
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[distribution] = "not installed"
    return versions


class _Stages:
    """Times each stage and reports it to the parent as it ends."""

    def __init__(self, report: Callable[[str, float], None]) -> None:
        self.seconds: dict[str, float] = {}
        self._report = report

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        self._report(name, -1.0)
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)
            self._report(name, self.seconds[name])


def gate_model(job: Job, report: Callable[[str, float], None] = lambda stage, seconds: None) -> ModelResult:
    """Gate one model; a problem with the model becomes an ERROR result, never an exception."""
    stages = _Stages(report)
    try:
        return _gate_model(job, stages)
    except ModelError as exc:
        return error_result(job.name, str(exc), task=job.task, stage_seconds=stages.seconds)


def _gate_model(job: Job, stages: _Stages) -> ModelResult:
    from gate.inspection import inspect_model

    folder = ModelFolder(job.name, Path(job.folder))
    out_dir = Path(job.out_dir)
    policy = job.policy
    with stages.stage("inspect"):
        files = model_files(folder)
        inspection = inspect_model(files.model, allowed_custom_objects=job.allow_custom_objects)

    with stages.stage("import tensorflow"):
        import tensorflow  # noqa: F401 - timed on its own so stage times are comparable

        from gate import load, measure, quantize

    with tempfile.TemporaryDirectory(prefix="gate-") as scratch:
        with stages.stage("load"):
            # The converter needs a static batch for recurrent layers ('tf.TensorListReserve' ... must be static).
            model = load.load_model(
                files.model, inspection, export_dir=Path(scratch) / "export", fixed_batch=inspection.has_recurrent_layers
            )
            data_args = {"model_folder": folder.path, "inputs": model.inputs, "task": job.task, "output_width": model.output_width}
            eval_data = load.load_dataset(files.eval_data, need_labels=True, **data_args)
            calibration = _calibration(job, files, eval_data, data_args) if job.method == "int8" else None

        with stages.stage("quantize"):
            artifacts = out_dir / "artifacts"
            reference_path = _write_artifact(
                artifacts / f"{job.name}.float32.tflite", quantize.convert(model.saved_model_dir, method="float32")
            )
            candidate_path = _write_artifact(
                artifacts / f"{job.name}.{job.method}.tflite",
                quantize.convert(
                    model.saved_model_dir,
                    method=job.method,
                    input_dtype=str(policy.get("io.input_dtype", "int8")),
                    output_dtype=str(policy.get("io.output_dtype", "int8")),
                    calibration={n: a[: job.calibration_samples] for n, a in calibration.inputs.items()} if calibration else None,
                ),
            )

        with stages.stage("evaluate"):
            threads = os.cpu_count() or 1
            float_evaluation = measure.evaluate_float(model.predict, eval_data, job.task)
            evaluations = {
                path: measure.evaluate_tflite(path, eval_data, job.task, threads=threads)
                for path in (reference_path, candidate_path)
            }

        latencies = {}
        if any(name in policy for name in LATENCY_CHECKS):
            with stages.stage("latency"):
                settings = {
                    "threads": int(policy["latency.threads"]),
                    "rounds": int(policy["latency.rounds"]),
                    "warmup_rounds": int(policy["latency.warmup_rounds"]),
                }
                cases = [
                    measure.latency_case(label, path, eval_data, **settings)
                    for label, path in (("float32", reference_path), (job.method, candidate_path))
                ]
                benchmarks = out_dir / "benchmarks"
                benchmarks.mkdir(parents=True, exist_ok=True)
                latencies = measure.measure_latency(cases, json_path=benchmarks / f"{job.name}.json", work_dir=Path(scratch))

    def conversion(method: str, path: Path) -> Conversion:
        inputs, outputs, float_ops = measure.describe(path)
        return Conversion(
            method=method,
            artifact=digest(path, out_dir),
            inputs=inputs,
            outputs=outputs,
            float_ops=float_ops,
            evaluation=evaluations[path],
            latency=latencies.get(method),
        )

    reference = conversion("float32", reference_path)
    quantized = conversion(job.method, candidate_path)
    source_files = digest_tree(files.model, folder.path)
    source_bytes = sum(f.size_bytes for f in source_files)
    with stages.stage("judge"):
        candidate = judge(
            Candidate(
                conversion=quantized,
                size_reduction_vs_source=source_bytes / quantized.artifact.size_bytes,
                size_reduction_vs_float32=reference.artifact.size_bytes / quantized.artifact.size_bytes,
                metric_change=_metric_change(job.task, float_evaluation.value, quantized.evaluation.value),
                speedup=(reference.latency.p50_ms / quantized.latency.p50_ms) if quantized.latency and reference.latency else None,
                checks=(),
                status=Status.PASS,
            ),
            policy=policy,
            task=job.task,
        )

    input_files = [*source_files, eval_data.info.file]
    if calibration and calibration.info.file != eval_data.info.file:
        input_files.append(calibration.info.file)
    if folder.manifest.is_file():
        input_files.append(digest(folder.manifest, folder.path))
    return ModelResult(
        name=job.name,
        status=candidate.status,
        error="",
        task=job.task,
        source_format=inspection.format,
        source_writer=f"{inspection.writer} {inspection.writer_version}".strip(),
        source_bytes=source_bytes,
        fixed_batch=model.fixed_batch,
        float_evaluation=float_evaluation,
        reference=reference,
        candidates=(candidate,),
        chosen=0,
        calibration=dataclasses.replace(
            calibration.info, samples=min(calibration.samples, job.calibration_samples)
        ) if calibration else None,
        evaluation_data=eval_data.info,
        provenance=Provenance(
            tool_versions=tool_versions(),
            inputs=tuple(sorted(input_files, key=lambda f: f.path)),
            policy_file=job.policy_file,
            policy_sha256=policy_digest(policy),
            effective_policy=policy,
            overrides=job.overrides,
            override_reason=job.override_reason,
            allowed_custom_objects=inspection.allowed_custom_objects,
        ),
        stage_seconds=stages.seconds,
    )


def _calibration(job: Job, files, eval_data, data_args: Mapping) -> object:  # noqa: ANN001
    """Calibration data: calib.npz, else train.npz; the eval set only when gate.toml says so."""
    from gate import load

    source = files.calib_data or files.train_data
    if source is not None:
        return load.load_dataset(source, need_labels=False, **data_args)
    if job.calibrate_on_eval:
        return eval_data
    raise ModelError(
        f"{job.folder}: int8 quantization needs calibration data: add calib.npz (x) or train.npz (x, y), "
        "or set calibrate_on_eval = true in gate.toml to calibrate on the eval set (the report will say so)"
    )


def _metric_change(task: str, float_value: float, quantized_value: float) -> float:
    """Accuracy: points gained (negative = lost). MAE: percent change of the float model's MAE."""
    if task == "classification":
        return quantized_value - float_value
    if float_value == 0:
        return 0.0 if quantized_value == 0 else 1000.0  # the largest increase a policy can allow
    return (quantized_value - float_value) / float_value * 100


def _write_artifact(path: Path, blob: bytes) -> Path:
    write_atomic(path, blob)
    return path


def main(argv: list[str]) -> int:
    """Worker entry point: gate the job in argv[0], report stages on fd argv[1], write the result."""
    job_path, progress_fd = Path(argv[0]), int(argv[1])
    job = from_jsonable(Job, json.loads(job_path.read_text()))

    def report(stage: str, seconds: float) -> None:
        os.write(progress_fd, f"{stage}\t{seconds}\n".encode())

    try:
        result = gate_model(job, report)
    except Exception as exc:  # noqa: BLE001 - a bug in gate: still one row, traceback in the log
        traceback.print_exc()
        result = error_result(job.name, f"internal error in gate ({type(exc).__name__}: {exc}); please report it with the log")
    write_atomic(job_path.with_suffix(".result.json"), json.dumps(to_jsonable(result)).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
