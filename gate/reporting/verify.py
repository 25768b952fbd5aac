"""Check a result read back from elsewhere (a shard, a cache entry, a baseline, an artifact, a worker) before use.

Validating the types (gate.encoding.load_result) says a result is well formed; this says it is one gate could
have written, so that nothing downstream trusts a string or a verdict it was merely handed:

- every name is what it may be: the model a plain folder name, each method one of `METHODS`, each check one of
  `CHECKS` with its unit, each policy key one of `POLICY_KEYS` with a value its kind allows, each digest 64 hex
  digits, a custom metric a "module:function" of a custom task;
- every path a result records is the path gate's layout gives it;
- what a stateful file keeps is told as gate tells it: the app resets it exactly when the effective policy says so
  (runtime.resets_state), the sentence of what the app must do is gate's own, the other figure (with or without
  resets) is of the same eval set, one sample per invoke; the time a candidate's steps took adds up to no more
  than its own;
- its verdict follows from its figures: each built candidate is judged again against the effective policy the
  result records, and must come out exactly as recorded (checks, messages, status); its size ratios and metric
  change follow from the sizes and metrics it records; the published candidate is the one the search rule picks;
  the model's status is that candidate's;
- figures one measurement gives together agree (gate.reporting.verify_figures; a device target's,
  gate.reporting.verify_device).

A result that says PASS while one of its checks fails is refused, not re-judged into something else: it was not
written by a gate that works, so nothing else in it is worth showing either. Every problem is a ValueError naming
the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gate.encoding import InvalidResult, load_result
from gate.gating.search import closest
from gate.keys import Invalid, Key, Value
from gate.layout import REPORT_JSON, artifact_path, name_problem, resolver_path, vela_path
from gate.policy.checks import Context
from gate.policy.config import POLICY_KEYS
from gate.policy.fidelity import read_back_problem
from gate.policy.judge import judge
from gate.policy.manifest import MANIFEST_KEYS
from gate.quantization.base import REFERENCE
from gate.quantization.methods import METHODS
from gate.readback import Refused, read_json
from gate.reporting.compare import Baseline, Comparison
from gate.reporting.verify_comparison import baseline_label, branch_name, check_comparison
from gate.reporting.verify_device import device_problem
from gate.reporting.verify_figures import built_problem, fidelity_presence_problem, in_range
from gate.reporting.verify_outputs import check_outputs
from gate.results import (
    SCHEMA_VERSION,
    Candidate,
    Conversion,
    FileDigest,
    ModelResult,
    Status,
    must_reset,
    overall_status,
)
from gate.targets import DEFAULT_TARGET
from gate.tasks import METRICS, TASKS
from gate.tasks.custom import recorded_problem

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHA1 = re.compile(r"[0-9a-f]{40}")
# A step of a candidate's time: "conversion", "evaluation", "latency", or a method's own ("QAT training").
_STEP = re.compile(r"[A-Za-z][A-Za-z0-9 -]{0,39}")


def check_result(result: ModelResult) -> None:
    """Raise ValueError naming the first thing in `result` that gate could not have written."""
    if problem := name_problem(result.name, loose_files=result.status is Status.ERROR):
        raise ValueError(f"name: {problem}")
    if result.task not in (*TASKS, ""):
        raise ValueError(f"task: {result.task!r} is not one of {', '.join(TASKS)}")
    if (p := result.provenance) and (problem := recorded_problem(result.task, p.custom_metric, p.custom_metric_source)):
        raise ValueError(f"provenance.{problem}")
    if not -1 <= result.chosen < len(result.candidates):
        raise ValueError(f"chosen: {result.chosen} is not the index of one of its {len(result.candidates)} candidates")
    _check_digests(result)
    _check_policy(result)
    check_outputs(result)
    methods = [c.method for c in result.candidates]
    for index, candidate in enumerate(result.candidates):
        where = f"candidates[{index}]"
        if candidate.method not in METHODS or methods.count(candidate.method) > 1:
            raise ValueError(f"{where}.method: {candidate.method!r} is not one method of the registry, tried once")
        _check_steps(candidate, where)
        if candidate.conversion is None:
            if candidate.status not in (Status.SKIP, Status.ERROR) or candidate.checks:
                raise ValueError(f"{where}: a candidate that was not built is SKIP or ERROR, without checks")
        else:
            _check_built(result, candidate, where)
    if problem := fidelity_presence_problem(result):
        raise ValueError(problem)
    if result.status is Status.ERROR:
        if result.chosen != -1 or result.reference is not None:
            raise ValueError("status: ERROR, but it publishes a candidate")
        return
    if None in (result.reference, result.float_evaluation, result.evaluation_data, result.provenance):
        raise ValueError(f"status: {result.status.value}, but its reference, evaluation or provenance is missing")
    assert result.float_evaluation is not None  # checked just above
    if result.float_evaluation.metric not in METRICS or not in_range(result.float_evaluation):
        raise ValueError("float_evaluation: not a figure of one of gate's metrics, in its range")
    _check_conversion(result, result.reference, REFERENCE, "reference")  # type: ignore[arg-type]
    if result.chosen != closest(result.candidates):
        raise ValueError(f"chosen: {result.chosen}, but the search publishes candidate {closest(result.candidates)}")
    published = result.candidates[result.chosen]
    if result.status is not published.status:
        raise ValueError(f"status: {result.status.value}, but its published candidate is {published.status.value}")


def _check_built(result: ModelResult, candidate: Candidate, where: str) -> None:
    conversion = candidate.conversion
    assert conversion is not None
    if result.reference is None or result.float_evaluation is None or result.provenance is None:
        raise ValueError(f"{where}: built, but the result has no reference, float evaluation or provenance")
    _check_conversion(result, conversion, candidate.method, f"{where}.conversion")
    _check_target(result, conversion, f"{where}.conversion.device")
    if problem := built_problem(result, candidate):
        raise ValueError(f"{where}.{problem}")
    if candidate.status not in (Status.PASS, Status.FAIL):
        raise ValueError(f"{where}.status: a built candidate is PASS or FAIL, not {candidate.status.value}")
    if (conversion.latency is None) != (candidate.speedup is None):
        raise ValueError(f"{where}.speedup: given exactly when its latency was measured")
    if (task := TASKS.get(result.task)) is None:
        raise ValueError(f"{where}: built, but the result names no task")
    size = conversion.artifact.size_bytes
    figures = {
        "size_reduction_vs_source": result.source_bytes / size,
        "size_reduction_vs_float32": result.reference.artifact.size_bytes / size,
    }
    if not candidate.per_output:  # several outputs: gate.reporting.verify_outputs checks each and the worst
        figures["metric_change"] = task.change(result.float_evaluation.value, conversion.evaluation.value)
    for field, value in figures.items():  # as computed, but for the last bits of a float evaluated again
        recorded = getattr(candidate, field)
        if recorded is None or not math.isclose(recorded, value, rel_tol=1e-9, abs_tol=1e-9):
            raise ValueError(f"{where}.{field}: {getattr(candidate, field)!r} does not follow from its figures")
    context = Context(result.provenance.effective_policy, result.task, result.reference)
    judged = judge(candidate, context)  # its checks, status and reason, made afresh from its figures
    if (judged.checks, judged.status, judged.reason) != (candidate.checks, candidate.status, candidate.reason):
        recorded = "; ".join(f"{c.name} {c.status.value}" for c in candidate.checks) or "no checks"
        found = "; ".join(f"{c.name} {c.status.value}" for c in judged.checks) or "no checks"
        raise ValueError(
            f"{where}: says {candidate.status.value} ({recorded}), but its figures judged against its effective "
            f"policy give {judged.status.value} ({found})"
        )


def _check_conversion(result: ModelResult, conversion: Conversion, method: str, where: str) -> None:
    if conversion.method != method:
        raise ValueError(f"{where}.method: {conversion.method!r} is not {method!r}")
    if conversion.artifact.path != artifact_path(result.name, method):
        raise ValueError(
            f"{where}.artifact.path: {conversion.artifact.path!r} is not {artifact_path(result.name, method)!r}"
        )
    if conversion.artifact.size_bytes <= 0:
        raise ValueError(f"{where}.artifact.size_bytes: a .tflite file is not empty")
    if conversion.evaluation.metric not in METRICS:
        raise ValueError(
            f"{where}.evaluation.metric: {conversion.evaluation.metric!r} is not one of {', '.join(METRICS)}"
        )
    if not in_range(conversion.evaluation):
        raise ValueError(f"{where}.evaluation.value: {conversion.evaluation.value!r} is out of the range of its metric")
    if problem := read_back_problem(conversion.fidelity, reference=method == REFERENCE,
                                    samples=conversion.evaluation.samples):  # fmt: skip
        raise ValueError(f"{where}.fidelity: {problem}")
    if conversion.state is not None:
        _check_state(result, conversion, f"{where}.state")
    if conversion.macs is not None and conversion.macs < 0:
        raise ValueError(f"{where}.macs: {conversion.macs} is not a count")
    if conversion.device is not None and (problem := device_problem(result, conversion)):
        raise ValueError(f"{where}.device.{problem}")


def _check_target(result: ModelResult, conversion: Conversion, where: str) -> None:
    """A built candidate was measured where its effective policy says, with that target's figures and files."""
    assert result.provenance is not None  # checked by _check_built before
    target = str(result.provenance.effective_policy.get("target.runtime", DEFAULT_TARGET))
    device = conversion.device
    if device is None or target == DEFAULT_TARGET:
        if (device is None) != (target == DEFAULT_TARGET):
            measured_on = "none" if device is None else repr(device.target[:50])
            raise ValueError(f"{where}: {measured_on}, but the effective policy's target.runtime is {target!r}")
        return
    if device.target != target:
        raise ValueError(
            f"{where}.target: {device.target[:50]!r}, but the effective policy's target.runtime is {target!r}"
        )
    tflm = target == "tflm"
    if device.unsupported:  # TFLM cannot run the file: nothing measured in it, nothing published for it
        if not tflm or device.arena_bytes is not None or device.agreement is not None or device.files:
            raise ValueError(f"{where}.unsupported: only a file TFLM cannot run has it, with no TFLM figures or files")
        return
    needed = ("arena_bytes", "flash_bytes") if tflm else ("sram_bytes", "npu_ops_percent")
    if missing := [field for field in needed if getattr(device, field) is None]:
        raise ValueError(f"{where}: a file measured on {target} has {' and '.join(missing)}")
    published = resolver_path(result.name, conversion.method) if tflm else vela_path(result.name, conversion.method)
    if [file.path for file in device.files] != [published]:
        raise ValueError(f"{where}.files: a file measured on {target} publishes {published!r} alone")


def _check_state(result: ModelResult, conversion: Conversion, where: str) -> None:
    state = conversion.state
    assert state is not None
    if state.variable_tensors < 1:
        raise ValueError(f"{where}.variable_tensors: {state.variable_tensors}, but a file that keeps state has some")
    assert result.provenance is not None  # checked by _check_built before
    policy = result.provenance.effective_policy
    resets = bool(policy.get("runtime.resets_state", POLICY_KEYS["runtime.resets_state"].default))
    if state.app_resets != resets:
        raise ValueError(
            f"{where}.app_resets: {state.app_resets}, but its effective policy's runtime.resets_state "
            f"is {str(resets).lower()}"
        )
    if state.app_must != must_reset(state.variable_tensors):
        raise ValueError(f"{where}.app_must: {state.app_must[:80]!r} is not what gate tells the app")
    judged, other = conversion.evaluation, state.other_evaluation
    if (other.metric, other.samples, other.batch_size) != (judged.metric, judged.samples, 1) or judged.batch_size != 1:
        raise ValueError(
            f"{where}.other_evaluation: {other.metric} on {other.samples} samples at {other.batch_size} per invoke, "
            f"but a stateful file is measured both ways as its evaluation is ({judged.metric} on {judged.samples} "
            "samples), one sample per invoke"
        )
    if not in_range(other):
        raise ValueError(f"{where}.other_evaluation.value: {other.value!r} is out of the range of {other.metric}")


def _check_steps(candidate: Candidate, where: str) -> None:
    steps = candidate.step_seconds
    for step, seconds in steps.items():
        if not _STEP.fullmatch(step) or not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"{where}.step_seconds: {step[:50]!r}: {seconds!r} is not a step's time")
    # Each step is rounded to the millisecond, as the candidate's own time is.
    if steps and sum(steps.values()) > candidate.seconds + 0.001 * (len(steps) + 1):
        raise ValueError(
            f"{where}.step_seconds: its steps took {sum(steps.values()):.3f} s, more than the candidate's "
            f"{candidate.seconds:.3f} s"
        )


def _check_digests(result: ModelResult) -> None:
    files: list[tuple[str, FileDigest]] = [
        (f"{where}.artifact", c.artifact)
        for where, c in [("reference", result.reference)]
        + [(f"candidates[{i}].conversion", k.conversion) for i, k in enumerate(result.candidates)]
        if c is not None
    ]
    files += [
        (f"{name}.file", info.file)
        for name, info in (("calibration", result.calibration), ("evaluation_data", result.evaluation_data))
        if info
    ]
    if result.provenance:
        files += [(f"provenance.inputs[{i}]", f) for i, f in enumerate(result.provenance.inputs)]
    files += [
        (f"candidates[{i}].conversion.device.files[{j}]", f)
        for i, k in enumerate(result.candidates)
        if k.conversion and k.conversion.device
        for j, f in enumerate(k.conversion.device.files)
    ]
    for where, file in files:
        if not _SHA256.fullmatch(file.sha256) or file.size_bytes < 0:
            raise ValueError(f"{where}: sha256 {file.sha256!r} or size {file.size_bytes} is not a file's")
    sums = {
        "provenance.policy_sha256": result.provenance.policy_sha256 if result.provenance else None,
        "origin.cache_key": result.origin.cache_key if result.origin else None,
    }
    for where, value in sums.items():
        if value is not None and not _SHA256.fullmatch(value):
            raise ValueError(f"{where}: {value!r} is not a sha256")


def _check_policy(result: ModelResult) -> None:
    if result.provenance is None:
        return
    if result.provenance.method and (problem := _value_problem(MANIFEST_KEYS["method"], result.provenance.method)):
        raise ValueError(f"provenance.method: {problem}")
    for field in ("effective_policy", "overrides"):
        for key, value in getattr(result.provenance, field).items():
            if problem := _policy_value_problem(key, value):
                raise ValueError(f"provenance.{field}: {problem}")


def _policy_value_problem(key: str, value: Value) -> str:
    if key not in POLICY_KEYS:
        return f"{key!r} is not a policy key"
    return _value_problem(POLICY_KEYS[key], value)


def _value_problem(key: Key, value: Value) -> str:
    try:
        key.kind.parse(list(value) if isinstance(value, tuple) else value)
    except Invalid as exc:
        return f"{key.name}: {exc}"
    return ""


@dataclass(frozen=True)
class Source:
    """The commit a report was made from, as GitHub Actions named it (GITHUB_SHA, GITHUB_REF_NAME)."""

    commit: str
    ref: str


@dataclass(frozen=True)
class Report:
    """report.json, as gate.reporting.report writes it."""

    schema_version: int
    gate_version: str
    status: Status
    source: Source | None
    comparison: Comparison | None
    models: tuple[ModelResult, ...]


def read_report(root: Path, name: str = REPORT_JSON) -> Report:
    """`root/name`, a report.json written elsewhere, validated, every result checked; ValueError says why not."""
    try:
        document = read_json(root, name)
    except Refused as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(document, dict):
        raise ValueError(f"{name}: expected a JSON object, got {type(document).__name__}")
    version = document.get("schema_version")
    if type(version) is not int:
        raise ValueError(f"{name}: schema_version is missing or not a number ({str(version)[:40]!r})")
    if version != SCHEMA_VERSION:
        fix = (
            "a newer gate wrote it: use that version here too"
            if version > SCHEMA_VERSION
            else "an older gate wrote it: gate the models again with this version"
        )
        raise ValueError(f"{name}: schema_version {version}, but this gate reads {SCHEMA_VERSION}; {fix}")
    try:
        report: Report = load_result(Report, document)
    except InvalidResult as exc:
        raise ValueError(f"{name}: {exc}") from None
    names = [r.name for r in report.models]
    for index, result in enumerate(report.models):
        try:
            check_result(result)
        except ValueError as exc:
            raise ValueError(f"{name}: models[{index}] ({result.name[:80]!r}): {exc}") from None
        if names.count(result.name) > 1:
            raise ValueError(f"{name}: model {result.name[:80]!r} appears twice")
    if report.status is not overall_status(report.models):
        raise ValueError(f"{name}: status {report.status.value}, but its models give {overall_status(report.models)}")
    if report.comparison is not None:
        try:
            check_comparison(report.comparison)
        except ValueError as exc:
            raise ValueError(f"{name}: comparison: {exc}") from None
    return report


def load_baseline(path: Path, *, warn: Callable[[str], None]) -> Baseline | None:
    """The base branch's report; None, after one warning line, when it cannot be read or trusted."""
    try:
        report = read_report(path.parent, path.name)
    except ValueError as exc:
        warn(f"gate: warning: ignoring the baseline: {exc}; the report shows no changes against the base branch")
        return None
    commit = report.source.commit if report.source and _SHA1.fullmatch(report.source.commit) else ""
    ref = branch_name(report.source.ref) if report.source else "base"
    return Baseline(baseline_label(ref, commit), commit, {r.name: r for r in report.models})
