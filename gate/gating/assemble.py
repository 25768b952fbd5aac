"""The last stage: a model's result, from what the stages before it found (gate.gating.stages)."""

from __future__ import annotations

import dataclasses

from gate.discover import digest
from gate.environment import tool_versions
from gate.gating.job import Job
from gate.gating.stages import Diagnosed, Inspected, Loaded, Referenced, Searched
from gate.policy.config import policy_digest
from gate.results import ModelResult, Provenance, Status
from gate.tasks.custom import bound_metric


def assemble(
    job: Job,
    inspected: Inspected,
    loaded: Loaded,
    referenced: Referenced,
    searched: Searched,
    diagnosed: Diagnosed,
    stage_seconds: dict[str, float],
) -> ModelResult:
    """The model's result, from what the stages found."""
    folder, files, inspection = inspected.folder, inspected.files, inspected.inspection
    eval_data, calibration = loaded.eval_data, loaded.calibration
    published = searched.published
    input_files = [*inspected.source_files, eval_data.info.file]
    if calibration and calibration.info.file != eval_data.info.file:
        input_files.append(calibration.info.file)
    if files.train_data and (not calibration or calibration.info.file.path != files.train_data.name):
        input_files.append(digest(files.train_data, folder.path))
    if folder.manifest.is_file():
        input_files.append(digest(folder.manifest, folder.path))
    reference = dataclasses.replace(referenced.reference, latency=searched.reference_latencies.get(published.method))
    return ModelResult(
        name=job.name,
        status=Status.PASS if published.status is Status.PASS else Status.FAIL,
        error="",
        task=job.task,
        source_format=inspection.format,
        source_writer=f"{inspection.writer} {inspection.writer_version}".strip(),
        source_bytes=inspected.source_bytes,
        fixed_batch=loaded.model.fixed_batch,
        float_evaluation=referenced.float_evaluation,
        reference=reference,
        candidates=searched.candidates,
        chosen=searched.chosen,
        choice=searched.choice,
        calibration=dataclasses.replace(calibration.info, samples=min(calibration.samples, job.calibration_samples))
        if calibration
        else None,
        evaluation_data=eval_data.info,
        provenance=Provenance(
            tool_versions=tool_versions(),
            inputs=tuple(sorted(set(input_files), key=lambda f: f.path)),
            policy_file=job.policy_file,
            policy_sha256=policy_digest(job.policy),
            effective_policy=job.policy,
            overrides=job.overrides,
            override_reason=job.override_reason,
            allowed_custom_objects=inspection.allowed_custom_objects,
            method=job.method,
            custom_metric=job.metric,
            custom_metric_source=bound_metric().source if job.metric else "",
        ),
        stage_seconds=stage_seconds,
        layer_errors=diagnosed.layer_errors,
        findings=diagnosed.findings,
    )
