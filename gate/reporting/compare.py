"""Compare a run's results with the base branch's: what the pull request changed, model by model.

The base branch's report.json (kept by the default branch's run) is read like
any other file written elsewhere: bounded, validated and re-judged, and when
it is missing or cannot be trusted the report simply has no comparison, after
one warning line. The comparison is labelled with the commit the baseline
itself records, and says so when that is not the commit the change was planned
against (a cache restore can fall back to an older baseline).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gate.results import ModelResult, OnDevice, Status

_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Figures:
    """The figures of one model that a reviewer compares between the base branch and the pull request."""

    status: Status
    method: str
    size_bytes: int | None  # of the chosen .tflite
    metric: str
    metric_value: float | None
    p50_ms: float | None
    p50_spread_ms: float | None = None  # the standard deviation of the timed rounds: how far p50 moves run to run
    machine: str = ""  # the CPU model and core count it was measured on ("" when unknown)
    macs: int | None = None  # multiply-accumulates per inference: deterministic, so any change is the model's
    arena_bytes: int | None = None  # a device target's tensor arena (tflm) or SRAM (Ethos-U)
    npu_cycles: int | None = None  # Vela's NPU cycles per inference (Ethos-U)
    custom_metric: str = ""  # a custom task's "module:function": another function is another metric
    output: str = ""  # a model with several outputs: the Keras output whose metric this is (its worst); another is
    # another metric, even of the same name

    @classmethod
    def of(cls, result: ModelResult) -> Figures:
        candidate = result.candidate
        conversion = candidate.conversion if candidate else None
        latency = conversion.latency if conversion else None
        return cls(
            status=result.status,
            method=conversion.method if conversion else "",
            size_bytes=conversion.artifact.size_bytes if conversion else None,
            metric=conversion.evaluation.metric if conversion else "",
            metric_value=conversion.evaluation.value if conversion else None,
            p50_ms=latency.p50_ms if latency else None,
            p50_spread_ms=latency.stddev_ms if latency else None,
            machine=result.origin.machine if result.origin else "",
            macs=conversion.macs if conversion else None,
            arena_bytes=_arena_or_sram(conversion.device) if conversion and conversion.device else None,
            npu_cycles=conversion.device.npu_cycles if conversion and conversion.device else None,
            custom_metric=result.provenance.custom_metric if result.provenance else "",
            output=next((s.output for s in conversion.per_output if s.evaluation == conversion.evaluation), "")
            if conversion
            else "",
        )


def _arena_or_sram(device: OnDevice) -> int | None:
    return device.arena_bytes if device.arena_bytes is not None else device.sram_bytes


def latency_change(base: Figures, head: Figures) -> float | None:
    """The p50 change from `base` to `head`, or None when it is within noise.

    A change is shown only between runs on the same kind of CPU, and only when it exceeds both runs'
    spread: a microsecond latency measured on two runners moved from 0.84 µs to 1.6 µs with no change
    to the model (issue 20).
    """
    if base.p50_ms is None or head.p50_ms is None or not base.machine or base.machine != head.machine:
        return None
    change = head.p50_ms - base.p50_ms
    return change if abs(change) > max(base.p50_spread_ms or 0.0, head.p50_spread_ms or 0.0) else None


@dataclass(frozen=True)
class ModelChange:
    name: str
    base: Figures | None  # None: the model is new
    head: Figures | None  # None: the model was removed


@dataclass(frozen=True)
class Baseline:
    """The base branch's results, the commit they were gated at, and how the report names them ("main@3f2a1c9")."""

    label: str
    commit: str  # the full SHA the baseline records; "" when it records none
    results: dict[str, ModelResult]


@dataclass(frozen=True)
class Comparison:
    label: str  # the baseline as the report names it, from the commit it records
    base_commit: str  # that commit; "" when the baseline records none
    planned_base: str  # the commit `gate plan` compared the change with; "" without a plan
    changes: tuple[ModelChange, ...]  # every gated model, then every removed one
    unchanged: tuple[str, ...]  # on the base branch, neither gated now nor removed

    @property
    def stale(self) -> bool:
        """The baseline is not the report of the commit the change was planned against."""
        return bool(self.planned_base) and self.base_commit != self.planned_base

    def to_json(self) -> dict[str, object]:
        from gate.encoding import to_jsonable

        return to_jsonable(self)


def compare(
    results: Sequence[ModelResult], baseline: Baseline, *, removed: Sequence[str] = (), planned_base: str = ""
) -> Comparison:
    gated = {r.name for r in results}
    changes = [
        ModelChange(r.name, Figures.of(baseline.results[r.name]) if r.name in baseline.results else None, Figures.of(r))
        for r in results
    ]
    changes += [
        ModelChange(name, Figures.of(baseline.results[name]) if name in baseline.results else None, None)
        for name in sorted(set(removed) - gated)
    ]
    unchanged = tuple(sorted(set(baseline.results) - gated - set(removed)))
    return Comparison(baseline.label, baseline.commit, planned_base, tuple(changes), unchanged)


def stale_warning(comparison: Comparison) -> str:
    """The warning line when the baseline is not the planned base's report, else ""."""
    if not comparison.stale:
        return ""
    return (
        f"gate: warning: the baseline is the report of {comparison.label}, not of {comparison.planned_base[:7]}, "
        "the commit the change was planned against; the report compares with it and says so"
    )
