"""Run the gate over model folders: plan a job per model, reuse cached results, let the scheduler gate the rest.

The workers and their limits are gate.scheduling.scheduler's; here is what comes before and after them:
the plan (a broken gate.toml makes only its model an ERROR row), the result cache, the published outputs
and the reports.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from gate.discover import unreviewable_custom_code
from gate.environment import machine
from gate.gating.pipeline import Job
from gate.layout import ModelOutputs, clear_outputs, log_path
from gate.policy.manifest import Configuration, ModelConfig, configure
from gate.reporting.compare import Baseline
from gate.reporting.report import write_reports
from gate.results import ModelResult, Origin, Status, error_result
from gate.scheduling.cache import Cache, cache_key, regular_files
from gate.scheduling.scheduler import Progress, Scheduler
from gate.tasks.custom import source_problem


def plan(configuration: Configuration, out_dir: Path, job_dir: Path) -> list[Job | ModelResult]:
    """A job per model folder; a broken gate.toml makes only its own model an ERROR result."""
    planned: list[Job | ModelResult] = []
    for model in configuration.models:
        if not isinstance(model, ModelConfig):
            planned.append(error_result(model[0].name, model[1]))
        elif problem := custom_code_problem(model):
            planned.append(error_result(model.folder.name, problem))
        else:
            planned.append(job_for(model, out_dir, job_dir))
    return planned


def custom_code_problem(model: ModelConfig) -> str:
    """Why the custom code the model's gate.toml names is not reviewed source at the repository root ("" if it is);
    `gate validate` says it too."""
    for entry in model.manifest.allow_custom_objects:
        if problem := unreviewable_custom_code(entry, Path.cwd()):
            return f"{model.folder.path / 'gate.toml'}: allow_custom_objects: {problem}"
    if model.manifest.metric and (problem := source_problem(model.manifest.metric, Path.cwd())):
        return f"{model.folder.path / 'gate.toml'}: metric: {problem}"
    return ""


def job_for(model: ModelConfig, out_dir: Path, job_dir: Path) -> Job:
    manifest = model.manifest
    name = model.folder.name
    return Job(
        name=name,
        folder=str(model.folder.path),
        task=manifest.registered_task,
        metric=manifest.metric,
        method=manifest.method,
        calibration_samples=manifest.calibration_samples,
        calibrate_on_eval=manifest.calibrate_on_eval,
        allow_custom_objects=manifest.allow_custom_objects,
        policy_file=model.policy.path,
        policy=model.values,
        overrides=dict(manifest.overrides),
        override_reason=manifest.override_reason,
        outputs=dict(manifest.outputs),
        out_dir=str(out_dir),
        log_path=str(out_dir / log_path(name)),
        result_path=str(job_dir / f"{len(name)}-{name}.result.json"),
    )


def gate_all(
    model_dirs: Sequence[Path],
    *,
    policies_dir: Path,
    out_dir: Path,
    jobs: int | None = None,
    cache_dir: Path | None = None,
    verbose: bool = False,
    progress: Progress = lambda line: None,
    baseline: Baseline | None = None,
    step_summary: bool = True,
    debug: bool = False,
) -> list[ModelResult]:
    """Gate every model under `model_dirs` and write the reports into `out_dir`.

    `jobs` workers run at once (default: one per core); `cache_dir` None disables the result cache.
    `debug` prints the traceback of a bug in gate inside a worker (it is always in the model's log).
    Raises ConfigError (before touching any model) for a broken policy or command line.
    """
    configuration = configure(model_dirs, policies_dir=policies_dir)
    clear_outputs(out_dir)  # refuses an --out folder behind a link before deleting anything
    cache = Cache(cache_dir, warn=progress) if cache_dir else None
    with tempfile.TemporaryDirectory(prefix="gate-jobs-") as job_dir:
        planned = plan(configuration, out_dir, Path(job_dir))
        total = len(planned)
        results: dict[int, ModelResult] = {}
        keys: dict[int, str] = {}
        queue: list[tuple[int, Job]] = []
        for index, job in enumerate(planned):
            label = f"[{index + 1}/{total}] {job.name}"
            if isinstance(job, ModelResult):
                progress(f"{label}: ERROR before gating: {'; '.join(job.error.splitlines())}")  # every problem
                results[index] = job
                continue
            keys[index] = cache_key(job, root=Path.cwd())
            cached = cache.load(keys[index], job.name, out_dir) if cache else None
            if cached is not None:
                assert cached.origin is not None
                progress(f"{label}: {cached.status.value} (cached, measured {cached.origin.measured_at})")
                results[index] = cached
            else:
                queue.append((index, job))

        def finished(index: int, result: ModelResult) -> None:
            outputs = ModelOutputs(out_dir, result.name)
            if result.status is Status.ERROR:
                outputs.discard()
            else:
                origin = Origin(datetime.now(UTC).isoformat(timespec="seconds"), machine(), keys[index], False)
                result = dataclasses.replace(result, origin=origin)
                outputs.publish(result.kept_files())
                if cache:
                    cache.store(keys[index], result, out_dir)
            results[index] = result

        labels = {index: f"[{index + 1}/{total}] {job.name}" for index, job in queue}
        # Largest models first: the longest jobs start at once, and the small ones fill the other workers.
        queue.sort(key=lambda item: -_folder_bytes(Path(item[1].folder)))
        workers = jobs or os.cpu_count() or 1
        scheduler = Scheduler(
            workers, verbose=verbose, progress=progress, labels=labels, debug=debug, pycache=Path(job_dir) / "pycache"
        )
        scheduler.run(queue, finished)
    ordered = [results[index] for index in range(total)]
    write_reports(out_dir, ordered, baseline=baseline, step_summary=step_summary)
    return ordered


def _folder_bytes(folder: Path) -> int:
    """Only the scheduling order depends on it, so a file that vanished since the cache key read it counts as 0."""
    total = 0
    for path in regular_files(folder):
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total
