"""Gate one model: the stages of gate.gating.stages in order (inspect → load → reference → search → diagnose).

`gate_model` is a function of its job alone (the model folder's files, the
effective policy, the installed tool versions): no state is shared between
models. gate.scheduling.worker runs it in a child process so that a converter crash ends
only that candidate or model (see gate.scheduling.scheduler).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gate.encoding import dumps, non_finite_fields, to_jsonable
from gate.errors import ModelError, log_cause
from gate.gating import several
from gate.gating import stages as gating
from gate.gating.assemble import assemble
from gate.gating.job import Job, Reporter
from gate.layout import ModelOutputs
from gate.policy.config import Settings
from gate.quantization.methods import search_order
from gate.results import ModelResult, error_result
from gate.tasks.custom import bound

# The stages of gating one model, in the order they run (progress lines and stage times use these names).
STAGES = ("inspect", "import tensorflow", "load", "reference", "search", "diagnose")


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
        # A custom task's metric, imported from the repository root (the folder gate runs in), scores this model.
        with bound(job.metric, root=Path.cwd(), where=Path(job.folder) / "gate.toml"):
            return _gate_model(job, stages)
    except gating.NothingBuilt as exc:
        return error_result(
            job.name, f"{job.folder}: {exc}", task=job.task, stage_seconds=stages.seconds, candidates=exc.candidates
        )
    except ModelError as exc:
        log_cause(exc)
        return error_result(job.name, str(exc), task=job.task, stage_seconds=stages.seconds)


def _gate_model(job: Job, stages: _Stages) -> ModelResult:
    settings = Settings.of(job.policy)
    order = search_order(job.method, settings.candidates)
    staged = ModelOutputs(Path(job.out_dir), job.name)
    with stages.stage("inspect"):
        inspected = gating.inspect(job)
    with stages.stage("import tensorflow"):
        import tensorflow  # noqa: F401 - timed on its own so stage times are comparable

        from gate.targets import TARGETS
        from gate.targets.base import Timing

    target = TARGETS[settings.target]
    timing = Timing(settings.latency_threads, settings.latency_rounds, settings.latency_warmup_rounds)
    with tempfile.TemporaryDirectory(prefix="gate-") as scratch:
        with stages.stage("load"):
            loaded = gating.load(job, inspected, settings, order, Path(scratch))
        with stages.stage("reference"):
            if loaded.outputs:  # several outputs, each scored by its task
                referenced = several.reference(inspected, loaded, staged, settings, loaded.outputs)
            else:
                referenced = gating.reference(job, inspected, loaded, target, staged, settings)
            loaded = gating.let_go_of_the_float_model(loaded, order)
        outputs = referenced.outputs
        search_start = time.monotonic() - job.search_seconds
        with stages.stage("search"):
            searched = gating.search(
                job,
                inspected,
                loaded,
                referenced,
                target=target,
                timing=timing,
                settings=settings,
                staged=staged,
                scratch=Path(scratch),
                reporter=stages.reporter,
                search_start=search_start,
                now=time.monotonic,
                bench_for=lambda bench: (
                    several.workbench(bench, outputs, loaded.eval_data, staged, Path(scratch)) if outputs else bench
                ),
            )
        published = searched.published
        if published.method in searched.reference_latencies:  # the published candidate's benchmark is the model's
            staged.benchmark.with_name(f"{job.name}.{published.method}.json").replace(staged.benchmark)
        with stages.stage("diagnose"):
            diagnosed = gating.diagnose(job, loaded, searched)
    result = assemble(job, inspected, loaded, referenced, searched, diagnosed, stages.seconds)
    return several.finished(result, outputs) if outputs else result


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
