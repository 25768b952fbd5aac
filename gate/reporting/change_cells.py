"""The comparison's cells: each model's verdict, size, metric, latency, MACs and device figures against the base
branch's (`FILTERS`, the filters summary.md.j2's comparison table calls on a `ModelChange`)."""

from __future__ import annotations

from collections.abc import Callable

from gate.keys import duration
from gate.reporting.cells import STATUS_ICONS, _change, _duration_change, _macs, _metric, _size, _size_change
from gate.reporting.compare import ModelChange, latency_change
from gate.tasks import METRICS


def _verdict_cell(change: ModelChange) -> str:
    base, head = change.base, change.head
    if head is None:
        return "removed" + (f" (was {STATUS_ICONS[base.status]} {base.status.value})" if base else "")
    now = f"{STATUS_ICONS[head.status]} {head.status.value}"
    return f"new: {now}" if base is None else f"{STATUS_ICONS[base.status]} {base.status.value} → {now}"


def _size_cell(change: ModelChange) -> str:
    base, head = change.base, change.head
    if head is None or head.size_bytes is None:
        return "—"
    if base is None or base.size_bytes is None:
        return _size(head.size_bytes)
    return f"{_size(base.size_bytes)} → {_size(head.size_bytes)} ({_size_change(head.size_bytes - base.size_bytes)})"


def _metric_cell(change: ModelChange, label: str) -> str:
    base, head = change.base, change.head
    if head is None or head.metric_value is None:
        return "—"
    name = head.custom_metric or head.metric  # a custom metric by its spec
    name += f" ({head.output})" if head.output else ""  # of one of several outputs: the worst
    now = f"{name} {_metric(head.metric_value, head.metric)}"
    if (
        base is None
        or base.metric_value is None
        or (base.metric, base.custom_metric, base.output) != (head.metric, head.custom_metric, head.output)
    ):
        return now
    delta = head.metric_value - base.metric_value
    if METRICS[head.metric].change_unit == "%":  # MAE: percent of the base's (a custom metric's may be negative)
        delta = delta / abs(base.metric_value) * 100 if base.metric_value else 0.0
    return (
        f"{name} {_metric(base.metric_value, base.metric)} → {_metric(head.metric_value, head.metric)} "
        f"({_change(delta, head.metric)} vs {label})"
    )


def _latency_cell(change: ModelChange) -> str:
    base, head = change.base, change.head
    if head is None or head.p50_ms is None:
        return "—"
    if base is None or base.p50_ms is None:
        return duration(head.p50_ms)
    delta = latency_change(base, head)
    if delta is None:
        why = "" if base.machine == head.machine else ", measured on different CPUs"
        return f"{duration(base.p50_ms)} → {duration(head.p50_ms)} (within noise{why})"
    return f"{duration(base.p50_ms)} → {duration(head.p50_ms)} ({_duration_change(delta)})"


def _count_change(base: int, head: int, show: Callable[[int], str]) -> str:
    """'25,600 → 26,112 (+512, +2.0%)': a count that does not move between runs, so any change is the model's."""
    delta = head - base
    sign = "+" if delta > 0 else "−" if delta < 0 else "±"
    percent = f", {delta / base * 100:+.1f}%".replace("-", "−") if base else ""
    return f"{show(base)} → {show(head)} ({sign}{show(abs(delta))}{percent})"


def _macs_cell(change: ModelChange) -> str:
    base, head = change.base, change.head
    if head is None or head.macs is None:
        return "—"
    return _macs(head.macs) if base is None or base.macs is None else _count_change(base.macs, head.macs, _macs)


def _device_change_cell(change: ModelChange) -> str:
    """The target's arena (tflm) or SRAM (Ethos-U), and its NPU cycles, against the base branch's."""
    base, head = change.base, change.head
    if head is None:
        return "—"
    parts = []
    for label, field, show in (("arena", "arena_bytes", _size), ("NPU cycles", "npu_cycles", "{:,}".format)):
        now, was = getattr(head, field), getattr(base, field) if base else None
        if now is not None:
            parts.append(f"{label} {show(now) if was is None else _count_change(was, now, show)}")
    return "; ".join(parts) or "—"


# The comparison's filters, by the name a template calls them.
FILTERS: dict[str, Callable[..., object]] = {
    "verdict_cell": _verdict_cell,
    "size_cell": _size_cell,
    "metric_cell": _metric_cell,
    "latency_cell": _latency_cell,
    "macs_cell": _macs_cell,
    "device_change_cell": _device_change_cell,
}
