"""What a target is: where a built candidate runs, and what is measured there.

A target measures each built .tflite (its I/O, the ops left float, the task metric as an app gets it,
the state it keeps) and times it against the float32 reference. It also says which candidates it cannot
run at all (an integer-only accelerator cannot run a float fallback), so the search skips them untried.
A device target (TFLM, Ethos-U through Vela) adds its own figures (arena size, SRAM, cycles), which it names in
`figures` for the checks that read them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gate.results import Evaluation, Latency, OnDevice, State, TensorInfo

if TYPE_CHECKING:
    import numpy as np

    from gate.frontends.base import Dataset
    from gate.quantization.base import Method


# The Ethos-U configurations, as Vela 5.2.0's --accelerator-config names them (tests/test_ethos_u.py asks Vela).
# fmt: skip: a row per NPU family.
ETHOS_U_ACCELERATORS = (
    "ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256",
    "ethos-u65-256", "ethos-u65-512",
    "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024", "ethos-u85-2048",
)  # fmt: skip

# The NPU clock Vela estimates the inference time at: the core_clock of the system config Vela 5.2.0 picks for each
# family when given none, as gate gives none (its vela.ini; tests/test_ethos_u.py reads it from Vela's summary). Its
# time is its total cycles at this clock, and the total is at least the NPU's cycles.
ETHOS_U_CLOCK_HZ = {"ethos-u55": 500e6, "ethos-u65": 1e9, "ethos-u85": 1e9}

# Each target's name and the named figures (gate.figures.FIGURES) it adds to those every target measures: a
# target's `figures` is its entry here, where what judges a report without NumPy or LiteRT (gate comment) reads it.
TARGET_FIGURES: dict[str, tuple[str, ...]] = {
    "litert": (),
    "tflm": ("arena_kib", "flash_kib"),
    **dict.fromkeys(ETHOS_U_ACCELERATORS, ("sram_kib", "flash_kib", "npu_ops_percent", "npu_inference_ms")),
}


def measured_on(figures: tuple[str, ...]) -> str:
    """The targets that add any of `figures`, as a sentence says them: "tflm and the Ethos-U targets"."""
    names = [name for name, added in TARGET_FIGURES.items() if set(figures) & set(added)]
    if set(ETHOS_U_ACCELERATORS) <= set(names):
        names = [name for name in names if name not in ETHOS_U_ACCELERATORS] + ["the Ethos-U targets"]
    return " and ".join(names)


@dataclass(frozen=True)
class Measured:
    """What a target measured on one built file, before any latency run."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    float_ops: tuple[str, ...]  # ops that read or write a float tensor
    evaluation: Evaluation  # the task metric, as an app runs the file (the one the checks judge)
    state: State | None  # what it keeps between invokes; None when nothing
    device: OnDevice | None = None  # a device target's figures (its files not yet digested: see `files`)
    files: tuple[Path, ...] = ()  # what the target wrote beside the artifact, to publish with it


@dataclass(frozen=True)
class MeasuredOutputs:
    """A file of a model with several outputs, run on the eval data as the target runs it (gate.gating.several)."""

    outputs: dict[str, np.ndarray]  # each output, dequantized, samples first, by signature name (output_0, ...)
    batch_size: int  # samples per invoke
    device: OnDevice | None = None  # a device target's figures (its files not yet digested: see `files`)
    files: tuple[Path, ...] = ()  # what the target wrote beside the artifact, to publish with it


@dataclass(frozen=True)
class Timing:
    """How latency is timed: the policy's latency.* settings."""

    threads: int
    rounds: int
    warmup_rounds: int


def no_int16_kernel_reason(target: Target, method: Method, operators: Collection[str]) -> str:
    """Why `method` cannot run on `target` when the float32 reference has `operators` ("" when it can): every layer of
    an int16x8 candidate has int16 activations, so an operator the target lacks an int16 kernel for rules it out.
    (int8-int16-layers picks its layers itself, leaving such operators' out: Setup.no_int16_kernel.)"""
    if method.int16_activations != "all":
        return ""
    blocked = sorted(set(operators) & set(target.no_int16_kernel))
    if not blocked:
        return ""
    said = "; ".join(f"{op} ({target.no_int16_kernel[op]})" for op in blocked)
    return f"every layer gets int16 activations, and {target.name} has no int16 kernel for {said}"


class Target(Protocol):
    """A place a candidate runs: LiteRT on the CI machine's CPU today."""

    name: str
    description: str
    figures: tuple[str, ...]  # the named figures (gate.figures.FIGURES) it adds: its TARGET_FIGURES entry
    # Operators it has no int16-activation (16x8) kernel for, with why: a 16x8 candidate of a model that has one is
    # not tried, and int8-int16-layers leaves their layers at int8 (no_int16_kernel_reason).
    no_int16_kernel: Mapping[str, str]

    def cannot_run(self, method: Method) -> str:
        """Why no candidate of `method` can run here ("" when it can)."""
        ...

    def measure(self, artifact: Path, data: Dataset, task: str, *, threads: int, app_resets: bool) -> Measured:
        """Describe and evaluate a built file on the eval data, as the app runs it."""
        ...

    def measure_outputs(self, artifact: Path, data: Dataset, *, threads: int) -> MeasuredOutputs:
        """Run a built file of several outputs (one that keeps no state) on the eval data, as the app runs it: each
        output by its signature name, which gate.measurement.outputs maps to a Keras output; no task scores them."""
        ...

    def time(
        self,
        artifacts: Mapping[str, Path],
        data: Dataset,
        timing: Timing,
        *,
        json_path: Path,
        work_dir: Path,
        alone: Callable[[], AbstractContextManager],
    ) -> dict[str, Latency]:
        """Time every file (by label) in one run, on batch-1 inputs from the eval data."""
        ...
