"""The tflm target: the .tflite in TensorFlow Lite for Microcontrollers, as a microcontroller's firmware runs it.

Everything runs the pinned `tflite-micro` nightly's Python interpreter (TFLM's reference kernels, built
for the host) in a child process (gate/targets/_tflm_child.py): TFLM reports every error on the C-level
stderr with MicroPrintf (the Python exception says only "TFLM failed to allocate tensors"), and an arena
that is too small can crash the process (SIGSEGV) instead of failing. What it measures, per file:

- the operators it needs, and the ones TFLM lacks (the candidate's failure, naming them);
- the smallest tensor arena with which the model allocates and invokes (what a firmware sets
  kTensorArenaSize to), found by trying sizes, and TFLM's own recorded total beside it;
- the task metric over the eval set run in TFLM (the judged one), LiteRT's beside it and their agreement; for a
  model with several outputs, every output (measure_outputs), named by its tensor: TFLM numbers outputs in the
  subgraph's order, not the signature's;
- a MicroMutableOpResolver snippet registering exactly its operators, published as <model>.<method>.ops.h.

The host build has 64-bit pointers and no CMSIS-NN: its TfLiteEvalTensor is 24 bytes and its
NodeAndRegistration 64 where a 32-bit Cortex-M has smaller ones, and optimized kernels ask for scratch
buffers the reference kernels do not. The arena figures are the host's, and the report says so.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gate.errors import ModelError
from gate.files import write_atomic
from gate.results import Agreement, Evaluation, OnDevice, TensorInfo
from gate.targets import litert
from gate.targets.agreement import agreement, agreement_of_outputs
from gate.targets.base import TARGET_FIGURES, Measured, MeasuredOutputs
from gate.targets.graph import Graph, GraphError, read_graph
from gate.targets.tflm_ops import RUNTIME_REFUSALS, missing_operators, no_kernel, op_resolver_snippet

# Its `# fmt: skip`s keep this module under 400 lines (formatted, it goes over): split it before removing them.

if TYPE_CHECKING:
    from gate.frontends.base import Dataset
    from gate.quantization.base import Method

ALIGNMENT = 16  # TFLM aligns the arena's start up and its tail down to 16 bytes: sizes are multiples of it
FIRST_ARENA = 1 << 20  # the first probe's arena: 1 MiB, or ten times the model's size when that is more
MAX_ARENA = 64 << 20
MAX_PROCESSES = 24
PROBE_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 600.0
HOST_NOTE = (
    "TFLM's figures are measured on this 64-bit host with its reference kernels: on a 32-bit microcontroller "
    "TFLM's own structures are smaller, and optimized kernels (CMSIS-NN) may ask for scratch buffers, so the "
    "arena a device needs differs; leave a margin"
)
# The child by its path, in isolated mode (-I): `-m` would put the working directory first on sys.path,
# and gate runs in a checkout a pull request controls (a numpy.py there would be imported).
_CHILD = (sys.executable, "-I", str(Path(__file__).with_name("_tflm_child.py")))

# TFLM's own messages (MicroPrintf), as the pinned build prints them (micro_op_resolver.cc,
# micro_interpreter.cc). A builtin it lacks is named; a custom operator it lacks is not, only
# "Failed to get registration from op code CUSTOM".
_NO_KERNEL = re.compile(r"Didn't find op for builtin opcode '([^']+)'")
_NO_REGISTRATION = re.compile(r"Failed to get registration from op code (\S+)")
_OUT_OF_RANGE = re.compile(r"Op builtin_code out of range: (\d+)")
_ARENA = re.compile(
    r"Failed to (?:resize buffer|allocate (?:tail |temp )?memory)|Arena size is too small|"
    r"Failed starting model allocation|Failed to allocate memory for|Too many buffers \(max is \d+\)"
)
_NODE_FAILED = re.compile(r"Node (\S+) \(number (\d+)f?\) failed to (prepare|invoke)")
# The child's own Python traceback, printed after TFLM's lines when the wrapper raises.
_PYTHON_TRACE = re.compile(r"^(Traceback |  |\s*\^|RuntimeError: |SystemExit)")
_RECORDED_TOTAL = re.compile(r"\[RecordingMicroAllocator\] Arena allocation total (\d+) bytes")


# Operators TFLM has a kernel for, but not with int16 activations: each a tiny 16x8 model (one operator, converted by
# TensorFlow's 16x8 mode) run in the pinned build, which refused it so (tests/test_tflm.py runs them again). The others
# tried, with int16 activations: ADD, AVERAGE_POOL_2D, BATCH_MATMUL, CONCATENATION, CONV_2D, DEPTHWISE_CONV_2D,
# FULLY_CONNECTED, LEAKY_RELU, LOGISTIC, MAX_POOL_2D, MAXIMUM, MEAN, MINIMUM, MUL, PAD, RSQRT, SOFTMAX,
# SQUARED_DIFFERENCE, STRIDED_SLICE, SUB, SUM, TANH, TRANSPOSE, TRANSPOSE_CONV run.
NO_INT16_KERNEL = {
    "EXP": "TFLM's EXP kernel takes float32 only",
    "LOG": "TFLM's LOG kernel takes float32 only",
    "RESIZE_BILINEAR": "TFLM's RESIZE_BILINEAR kernel takes float32 or int8 only",
}


class TflmError(ModelError):
    """gate could not measure the file in TFLM, for the reason in the message (a timeout, no recorded total, ...)."""


class UnsupportedOperator(TflmError):
    """TFLM lacks an operator the file uses, or that operator's version (its types): the message names it.

    Not gate's failure to measure but the file's, on this target: the candidate fails ops.supported with it.
    """


# parse_failure's reasons that name an operator TFLM lacks (or lacks for these types), rather than the arena or gate.
_OPERATOR_REASONS = ("TFLM has no kernel for operator ", *RUNTIME_REFUSALS)


def refusal(failure: str) -> TflmError:
    """The error for a reason of parse_failure: UnsupportedOperator when it names an operator TFLM lacks."""
    return UnsupportedOperator(failure) if failure.startswith(_OPERATOR_REASONS) else TflmError(failure)


# ---------------------------------------------------------------- one child process


@dataclass(frozen=True)
class Probe:
    """One try: the file allocated and invoked once (zeros in) with `arena_size` bytes, or why not."""

    arena_size: int
    ok: bool
    failure: str  # why not, in TFLM's words where it gave some ("" when ok)
    arena_failure: bool  # the failure is the arena's size (a larger one may work)
    recorded_total: int | None  # print_allocations()' "Arena allocation total", when it printed one


def probe(model_path: Path, arena_size: int) -> Probe:
    """Allocate and invoke once with `arena_size` bytes, in a process of its own (the probe must invoke:
    some kernels lacking a type fail only there)."""
    try:
        done = subprocess.run([*_CHILD, "probe", str(model_path), str(arena_size)], capture_output=True,
                              text=True, errors="replace", timeout=PROBE_TIMEOUT_S, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return Probe(arena_size, False, f"TFLM did not finish within {PROBE_TIMEOUT_S:.0f} s", False, None)
    if done.returncode == 0:
        found = _RECORDED_TOTAL.search(done.stderr)
        return Probe(arena_size, True, "", False, int(found.group(1)) if found else None)
    failure, arena_failure = parse_failure(done.stderr, done.returncode)
    return Probe(arena_size, False, failure, arena_failure, None)


def parse_failure(stderr: str, returncode: int) -> tuple[str, bool]:
    """A reason a person can act on, from TFLM's stderr; and whether a larger arena might help.

    TFLM names a missing kernel at load ("Didn't find op for builtin opcode 'GELU'"); a kernel that
    exists but not for the operator's types (its version) fails in Prepare or, for some kernels, only
    in Invoke, after a line of its own: "Node EXP (number 0) failed to prepare with status 1".
    """
    if found := _NO_KERNEL.search(stderr):
        return f"TFLM has no kernel for operator {found.group(1)}", False
    if found := _NO_REGISTRATION.search(stderr):
        return f"TFLM has no kernel for an operator of op code {found.group(1)}", False
    if found := _OUT_OF_RANGE.search(stderr):
        return f"the model uses builtin operator code {found.group(1)}, newer than this TFLM build knows", False
    if found := _ARENA.search(stderr):
        return f"arena too small: {found.group(0)}", True
    messages = [line.strip() for line in stderr.splitlines() if line.strip() and not _PYTHON_TRACE.match(line)]
    if found := _NODE_FAILED.search(stderr):
        before = [m for m in messages if not _NODE_FAILED.search(m)][:2]
        detail = f": {'; '.join(before)}" if before else ""
        return f"TFLM cannot {found.group(3)} operator {found.group(1)} (#{found.group(2)}){detail}"[:400], False
    if returncode < 0:
        # A crash without a message: seen only with arenas too small, so a larger one may work.
        return f"TFLM crashed (signal {-returncode})", True
    return f"TFLM failed: {'; '.join(messages[:3]) or f'exit status {returncode}'}"[:400], False


# ---------------------------------------------------------------- the arena


@dataclass(frozen=True)
class Arena:
    """The smallest tensor arena with which the file allocates and invokes, and TFLM's own record."""

    smallest: int  # bytes: what a firmware sets kTensorArenaSize to (on this 64-bit host)
    recorded_total: int  # print_allocations() after an invoke with a generous arena
    exact: bool  # `smallest` - ALIGNMENT failed: no smaller size works
    processes: int


def find_arena(model_path: Path, *, max_processes: int = MAX_PROCESSES) -> Arena:
    """Search the smallest working arena, each size tried in a process of its own.

    One probe with a generous arena gives TFLM's recorded total R (and any reason the file cannot run
    at all: TflmError). The smallest arena lies near R, so the search steps from R by R/8 until the
    outcome changes, then bisects to ALIGNMENT bytes. Once the generous arena has worked, any failure
    with a smaller one is the arena's size, whatever TFLM printed. With max_processes reached first,
    `exact` is False and `smallest` is the smallest size that worked.
    """
    processes = 0

    def works(size: int) -> bool:
        nonlocal processes
        processes += 1
        return probe(model_path, size).ok

    size = max(FIRST_ARENA, _aligned(model_path.stat().st_size * 10))
    while True:
        processes += 1
        first = probe(model_path, size)
        if first.ok:
            break
        if not first.arena_failure:
            raise refusal(first.failure)
        if size >= MAX_ARENA:
            raise TflmError(f"does not run in TFLM with a {MAX_ARENA >> 20} MiB arena: {first.failure}")
        size *= 4
    if first.recorded_total is None:
        raise TflmError("TFLM printed no arena allocation total (print_allocations)")
    total = first.recorded_total
    passing, failing = size, 0  # an arena of 0 bytes is taken as failing without trying it
    step = max(_aligned(total // 8), ALIGNMENT)
    candidate = min(_aligned(total), passing)
    if candidate < passing and works(candidate):
        passing = candidate
        while processes < max_processes and passing - step > 0:  # step down from R until a size fails
            if not works(passing - step):
                failing = passing - step
                break
            passing -= step
    elif candidate < passing:
        failing = candidate
        while processes < max_processes and failing + step < passing:  # step up, doubling, until a size works
            if works(failing + step):
                passing = failing + step
                break
            failing += step
            step *= 2
    while passing - failing > ALIGNMENT and processes < max_processes:
        middle = failing + max((passing - failing) // 2 // ALIGNMENT, 1) * ALIGNMENT
        if works(middle):
            passing = middle
        else:
            failing = middle
    return Arena(passing, total, passing - failing <= ALIGNMENT, processes)


def _aligned(size: int) -> int:
    return -(-size // ALIGNMENT) * ALIGNMENT


# ---------------------------------------------------------------- running the eval set


def run_tflm(model_path: Path, feeds: Sequence[np.ndarray], *, arena_size: int, reset: bool) -> list[np.ndarray]:
    """The raw output tensors for each sample (one per invoke), in a child process.

    `feeds` holds one array per model input in the file's input order, samples first, already in the
    input's dtype. `reset`: interpreter.reset() before each invoke (a file that keeps state starts fresh).
    """
    with tempfile.TemporaryDirectory(prefix="gate-tflm-") as folder:
        for index, array in enumerate(feeds):
            np.save(Path(folder) / f"input_{index}.npy", np.ascontiguousarray(array), allow_pickle=False)
        command = [*_CHILD, "run", str(model_path), str(arena_size), folder, "reset" if reset else "keep"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=RUN_TIMEOUT_S,
                                  check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise TflmError(f"TFLM did not finish the eval set within {RUN_TIMEOUT_S:.0f} s") from None
        if done.returncode != 0:
            raise refusal(parse_failure(done.stderr, done.returncode)[0])
        count = len(json.loads(done.stdout)["outputs"])
        return [np.load(Path(folder) / f"output_{index}.npy", allow_pickle=False) for index in range(count)]


class TflmTarget:
    """TensorFlow Lite for Microcontrollers' interpreter (the tflite-micro package), on this host."""

    name = "tflm"
    description = (
        "TensorFlow Lite for Microcontrollers (tflite-micro, its reference kernels on the machine gate runs on): "
        "the operators the firmware must register, the tensor arena the model needs, and the task metric as TFLM "
        "computes it (the one judged), with LiteRT's beside it."
    )
    figures = TARGET_FIGURES[name]

    no_int16_kernel: Mapping[str, str] = NO_INT16_KERNEL

    def cannot_run(self, method: Method) -> str:
        return ""  # TFLM has float, int8 and most int16 kernels: measuring a file names what it lacks

    def measure(self, artifact: Path, data: Dataset, task: str, *, threads: int, app_resets: bool) -> Measured:
        on_litert = litert.LITERT.measure(artifact, data, task, threads=threads, app_resets=app_resets)
        graph = _graph(artifact)
        # A file that keeps state is run as the app runs it (reset before each invoke only when it resets).
        reset = on_litert.state is None or app_resets
        try:
            (raw,), arena = _run(artifact, graph, data, on_litert.inputs, reset=reset)
        except UnsupportedOperator as exc:
            device = _cannot_run(artifact, graph, exc, on_litert.evaluation)
            return Measured(on_litert.inputs, on_litert.outputs, on_litert.float_ops, on_litert.evaluation,
                            on_litert.state, device=device)  # fmt: skip
        (output,) = on_litert.outputs
        outputs = litert.dequantized(raw, output)
        litert.refuse_non_finite_outputs(outputs, data, f"{artifact.name} in TFLM")
        evaluation = litert.scored(outputs, data, task, batch_size=1)
        litert_outputs, _ = litert.tflite_outputs(
            artifact, data, threads=threads, reset=reset, batch_size=1 if on_litert.state else litert.EVAL_BATCH
        )
        same = agreement(outputs, litert_outputs, scale=output.scale, task=task)
        device, resolver = _device(artifact, graph, arena, on_litert.evaluation, same)
        return Measured(on_litert.inputs, on_litert.outputs, on_litert.float_ops, evaluation, on_litert.state,
                        device=device, files=(resolver,))  # fmt: skip

    def measure_outputs(self, artifact: Path, data: Dataset, *, threads: int) -> MeasuredOutputs:
        on_litert, batch_size = litert.signature_outputs(artifact, data, threads=threads)
        inputs, outputs, _float_ops = litert.describe(artifact)
        graph = _graph(artifact)
        try:
            raw, arena = _run(artifact, graph, data, inputs, reset=True)  # gate.gating.several refuses a stateful file
        except UnsupportedOperator as exc:
            return MeasuredOutputs(on_litert, batch_size, _cannot_run(artifact, graph, exc, None))
        # TFLM numbers the outputs as the subgraph lists their tensors (get_output(i) is its i-th), which need not be
        # the signature's order (output_0 came second on a two-head model): each is named by its tensor, as LiteRT is.
        tensors = {tensor.name: tensor for tensor in outputs}
        by_name = {}
        for name, values in zip(litert.output_names(artifact, graph.outputs), raw, strict=True):
            # One sample an invoke: (samples, 1, ...) as TFLM gives a batch-1 output, (samples, ...) as LiteRT's is.
            by_name[name] = litert.dequantized(values, tensors[name]).reshape(on_litert[name].shape)
            litert.refuse_non_finite_outputs(by_name[name], data, f"{artifact.name} ({name}) in TFLM")
        same = agreement_of_outputs(by_name, on_litert, {name: tensor.scale for name, tensor in tensors.items()})
        device, resolver = _device(artifact, graph, arena, None, same)
        return MeasuredOutputs(by_name, 1, device, (resolver,))

    # TFLM's host build says nothing about a microcontroller's speed: the latency checks time LiteRT, as the
    # report says; the deterministic cost is the MAC count.
    time = staticmethod(litert.time_on_this_cpu)


def _graph(artifact: Path) -> Graph:
    try:
        return read_graph(artifact.read_bytes())
    except GraphError as exc:
        raise TflmError(f"{artifact.name}: {exc}") from None


def _operators(graph: Graph) -> tuple[str, ...]:
    return tuple(f"{name} x{count}" for name, count in sorted(graph.op_counts().items()))


def _run(
    artifact: Path, graph: Graph, data: Dataset, inputs: Sequence[TensorInfo], *, reset: bool
) -> tuple[list[np.ndarray], Arena]:
    """The file's raw outputs on the eval set in TFLM, in its subgraph's output order, and the arena they ran in;
    UnsupportedOperator when TFLM lacks an operator of it."""
    by_name = {tensor.name: tensor for tensor in inputs}
    feeds = [litert.quantized(data.inputs[name], by_name[name]) for name in litert.input_names(artifact, graph.inputs)]
    if missing := missing_operators(graph):
        raise UnsupportedOperator(no_kernel(missing))
    arena = find_arena(artifact)
    return run_tflm(artifact, feeds, arena_size=arena.smallest, reset=reset), arena


def _cannot_run(
    artifact: Path, graph: Graph, exc: UnsupportedOperator, litert_evaluation: Evaluation | None
) -> OnDevice:
    """The file's failure on this target, not gate's: the candidate fails ops.supported, naming the operator."""
    note = f"TFLM cannot run this file ({exc}): the metric shown is LiteRT's, and no arena was measured"
    return OnDevice(TflmTarget.name, None, None, artifact.stat().st_size, _operators(graph), litert_evaluation, None,
                    (), (note,), unsupported=(str(exc),))  # fmt: skip


def _device(
    artifact: Path, graph: Graph, arena: Arena, litert_evaluation: Evaluation | None, same: Agreement
) -> tuple[OnDevice, Path]:
    """The figures of a file TFLM ran, and the op resolver snippet written beside it (<model>.<method>.ops.h)."""
    resolver = artifact.with_name(artifact.name.removesuffix(".tflite") + ".ops.h")
    model, _, method = resolver.name.removesuffix(".ops.h").rpartition(".")  # method names hold no "."
    write_atomic(resolver, op_resolver_snippet(graph, model=model, method=method, source=artifact.name).encode())
    device = OnDevice(
        target=TflmTarget.name,
        arena_bytes=arena.smallest,
        arena_recorded_bytes=arena.recorded_total,
        flash_bytes=artifact.stat().st_size,
        operators=_operators(graph),
        litert_evaluation=litert_evaluation,
        agreement=same,
        files=(),
        notes=(HOST_NOTE,) if arena.exact else (HOST_NOTE, f"the arena search stopped after {arena.processes} "
                                                "tries: the figure is the smallest size that worked"),
    )  # fmt: skip
    return device, resolver


TFLM = TflmTarget()
