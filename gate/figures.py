"""The named figures of a built candidate (FIGURES): what a policy check reads, by name.

A figure says how it is read from a judged `Candidate` (None: not measured for it, e.g. latency when no
latency check is set, or an arena on a target that has none) and how a message says a value of it. Every
target measures the figures no target names; a target adds its own by naming them in its `figures`
(gate.targets.TARGET_FIGURES). A new device figure is a field the target fills, one entry here, and a
check in gate.policy.judge.CHECKS that names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gate.keys import duration
from gate.results import Candidate, OnDevice


@dataclass(frozen=True)
class Figure:
    """A figure of a candidate: its name, its unit, what it is, and how to read and say it."""

    name: str
    unit: str  # the unit of what `read` returns, as a check's limit is written: "KiB", "ms", "×", "%"
    said: str  # what a message calls it: "tensor arena"
    description: str
    read: Callable[[Candidate], float | None]  # None: not measured for this candidate
    # The measured value as a limit check says it: "tensor arena 3,680 bytes = 3.59 KiB". None for a figure whose
    # checks word their own message (the size reductions, the metric change).
    says: Callable[[float, Candidate], str] | None = None
    digits: int = 3  # decimals of the measured value a limit check reports
    missing: str = ""  # why it is absent on a target that measures it ("latency was not measured")


def _device(candidate: Candidate) -> OnDevice | None:
    return candidate.conversion.device if candidate.conversion is not None else None


def _fidelity_figure(field: str) -> Callable[[Candidate], float | None]:
    """A figure of the candidate's outputs against the float32 .tflite's (results.Fidelity)."""

    def read(candidate: Candidate) -> float | None:
        fidelity = candidate.conversion.fidelity if candidate.conversion is not None else None
        return getattr(fidelity, field) if fidelity is not None else None

    return read


def _kib(field: str) -> Callable[[Candidate], float | None]:
    """A byte figure of OnDevice, in KiB (exact: a whole number of bytes / 1024 is a float with no rounding)."""

    def read(candidate: Candidate) -> float | None:
        device = _device(candidate)
        value = getattr(device, field) if device is not None else None
        return None if value is None else value / 1024

    return read


def _bytes(said: str) -> Callable[[float, Candidate], str]:
    return lambda kib, _candidate: f"{said} {round(kib * 1024):,} bytes = {kib:.2f} KiB"


def _latency(percentile: str) -> Callable[[Candidate], float | None]:
    def read(candidate: Candidate) -> float | None:
        latency = candidate.conversion.latency if candidate.conversion is not None else None
        return None if latency is None else getattr(latency, f"{percentile}_ms")

    return read


def _timed(percentile: str) -> Callable[[float, Candidate], str]:
    def says(milliseconds: float, candidate: Candidate) -> str:
        assert candidate.conversion is not None and candidate.conversion.latency is not None
        return f"{percentile} {duration(milliseconds)} at batch 1, {candidate.conversion.latency.threads} thread(s)"

    return says


def _on_npu(share: float, candidate: Candidate) -> str:
    device = _device(candidate)
    on_cpu = ", ".join(sorted({f.operator for f in device.cpu_fallbacks})) if device is not None else ""
    return f"{share:.1f}% of the operators run on the NPU" + (f" (on the CPU: {on_cpu})" if on_cpu else "")


def _npu_share(candidate: Candidate) -> float | None:
    return device.npu_ops_percent if (device := _device(candidate)) is not None else None


def _npu_time(candidate: Candidate) -> float | None:
    # Vela estimates the NPU's part only: with nothing on the NPU it says 0 ms, which is no figure (nor a pass).
    device = _device(candidate)
    return device.inference_ms if device is not None and device.npu_ops_percent else None


def _estimated(milliseconds: float, candidate: Candidate) -> str:
    device = _device(candidate)
    part = "" if device is not None and device.npu_ops_percent == 100 else ", the NPU's part only"
    return f"Vela estimates {duration(milliseconds)}{part}"


NOT_TIMED = "latency was not measured"

FIGURES: dict[str, Figure] = {
    figure.name: figure
    for figure in (
        Figure(
            "size_reduction_vs_source",
            "×",
            "size reduction against the source model file",
            "The source model's file(s) bytes / the quantized .tflite's bytes.",
            lambda candidate: candidate.size_reduction_vs_source,
        ),
        Figure(
            "size_reduction_vs_float32",
            "×",
            "size reduction against the float32 .tflite",
            "The float32 .tflite's bytes / the quantized .tflite's bytes.",
            lambda candidate: candidate.size_reduction_vs_float32,
        ),
        Figure(
            "metric_change",
            "pts or %",
            "change of the task metric",
            "The quantized .tflite's task metric minus the float model's: points of accuracy or AUC, percent of "
            "the float model's MAE.",
            lambda candidate: candidate.metric_change,
        ),
        Figure(
            "latency_p50_ms",
            "ms",
            "p50 latency",
            "Median single-sample latency of the quantized .tflite, at batch 1.",
            _latency("p50"),
            _timed("p50"),
            digits=6,
            missing=NOT_TIMED,
        ),
        Figure(
            "latency_p95_ms",
            "ms",
            "p95 latency",
            "95th-percentile single-sample latency of the quantized .tflite, at batch 1.",
            _latency("p95"),
            _timed("p95"),
            digits=6,
            missing=NOT_TIMED,
        ),
        Figure(
            "speedup",
            "×",
            "speedup over float32",
            "The float32 .tflite's p50 latency / the quantized .tflite's, measured in the same run.",
            lambda candidate: candidate.speedup,
            lambda speedup, _candidate: f"{speedup:.2f}× faster than float32 at p50",
            missing=NOT_TIMED,
        ),
        Figure(
            "arena_kib",
            "KiB",
            "tensor arena",
            "The smallest tensor arena with which TFLM allocates and invokes the file, on this 64-bit host.",
            _kib("arena_bytes"),
            _bytes("tensor arena"),
        ),
        Figure(
            "sram_kib",
            "KiB",
            "SRAM",
            'Vela\'s "Total SRAM used": the arena (and in Dedicated_Sram modes, a cache).',
            _kib("sram_bytes"),
            _bytes("SRAM"),
        ),
        Figure(
            "flash_kib",
            "KiB",
            "flash",
            "What the model takes in flash: the .tflite (TFLM); Vela's flash figure, where the configuration keeps "
            "weights in flash (Ethos-U).",
            _kib("flash_bytes"),
            _bytes("flash"),
            missing="no flash was measured for this file (an Ethos-U configuration that keeps the weights "
            "elsewhere: its notes say where)",
        ),
        Figure(
            "npu_ops_percent",
            "%",
            "NPU share",
            "Percent of the .tflite's operators that Vela places on the NPU.",
            _npu_share,
            _on_npu,
        ),
        Figure(
            "npu_inference_ms",
            "ms",
            "NPU inference time",
            "Vela's estimate of an inference at the configuration's clock: the NPU's part only.",
            _npu_time,
            _estimated,
            digits=6,
            missing="nothing runs on the NPU, so Vela estimates no inference time (0% on the NPU)",
        ),
        Figure(
            "top1_agreement",
            "%",
            "top-1 agreement",
            "Percent of eval samples on which the quantized .tflite picks the float32 .tflite's top-1 class "
            "(class-score outputs; no labels needed).",
            _fidelity_figure("top1_agreement"),
        ),
        Figure(
            "snr_db",
            "dB",
            "SNR",
            "Signal-to-noise ratio of the quantized .tflite's outputs against the float32 .tflite's on the same eval "
            "inputs (no labels needed); none when they are identical.",
            _fidelity_figure("snr_db"),
        ),
    )
}
