"""Typed, frozen result objects: everything a report shows, and nothing else.

A model's whole result is one `ModelResult`. It round-trips through JSON
exactly (``gate.encoding.load_result(ModelResult, r.to_json()) == r``) so that a result can be
produced in one process (the per-model worker, a CI shard, a cache) and
rendered in another.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gate.encoding import to_jsonable
from gate.findings import Finding, LayerError
from gate.layout import benchmark_path

# 6: several outputs, per_output; 5: a conversion's fidelity; 4: MACs, device figures; 3: state, step seconds
SCHEMA_VERSION = 6


class Status(enum.StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"
    ERROR = "ERROR"  # the model could not be gated at all


@dataclass(frozen=True)
class CheckResult:
    """One policy check's verdict on one candidate."""

    name: str  # a key of gate.policy.judge.CHECKS, e.g. "accuracy.max_drop"; one output's: "accuracy.max_drop (class)"
    status: Status
    measured: float | str | bool | None  # None when the check was skipped
    limit: float | str | bool
    unit: str
    message: str


@dataclass(frozen=True)
class FileDigest:
    """An input or output file, as it was when gated."""

    path: str  # relative to the model folder (inputs) or the output folder (artifacts)
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output as the .tflite file declares it."""

    name: str
    dtype: str
    shape: tuple[int, ...]  # -1 for a dynamic dimension
    scale: float  # 0.0 when the tensor is not quantized
    zero_point: int


@dataclass(frozen=True)
class Evaluation:
    """The task metric of one model (Keras or .tflite) on the whole eval set.

    `per_sample` keeps each sample's score (1.0/0.0 correct for accuracy,
    absolute error for MAE) so confidence intervals can be computed later
    without running the model again.
    """

    metric: str  # "accuracy" (percent) or "mae"
    value: float
    samples: int
    batch_size: int  # samples per invoke; 1 when the model has a fixed batch of one
    per_sample: tuple[float, ...]


@dataclass(frozen=True)
class Latency:
    """Single-sample latency of one .tflite, measured by pytest-benchmark."""

    threads: int
    rounds: int
    warmup_rounds: int
    p50_ms: float  # from the raw per-round timings
    p95_ms: float
    mean_ms: float
    stddev_ms: float
    min_ms: float


@dataclass(frozen=True)
class State:
    """State a .tflite keeps from one invoke to the next (a fused LSTM's, in variable tensors), and what it costs.

    The conversion's `evaluation` is measured the way the app runs the file: one sample per invoke and no
    reset, unless the policy says the app resets (runtime.resets_state). `other_evaluation` is the other way.
    """

    variable_tensors: int
    app_resets: bool  # the policy says the app calls interpreter.reset_all_variables() before each inference
    other_evaluation: Evaluation  # with a reset before each invoke when the app does not reset; without when it does
    app_must: str  # what an app that runs this file has to do, in a sentence: must_reset(variable_tensors)


def must_reset(variable_tensors: int) -> str:
    """What an app that runs a file keeping state in `variable_tensors` tensors must do (State.app_must)."""
    return (
        f"call interpreter.reset_all_variables() before each inference: the file keeps state in {variable_tensors} "
        "variable tensors, so without a reset each sample starts where the last one ended"
    )


@dataclass(frozen=True)
class Agreement:
    """A device runtime's outputs against LiteRT's on the same file and the same eval inputs (every output tensor)."""

    litert: str  # which LiteRT was compared: the one gate measures, e.g. "LiteRT 2.3.0 (default XNNPACK delegate)"
    samples: int
    max_steps: float  # largest |device - LiteRT| in the output's quantization steps; absolute for a float output
    differing_samples: int  # samples whose outputs differ at all
    same_prediction: float | None  # percent of samples with the same predicted class (classification), else None


@dataclass(frozen=True)
class CpuFallback:
    """An operator an NPU compiler leaves on the CPU, with the compiler's reason."""

    operator: str  # "TOPK_V2"; a fused activation is named on its own ("RELU")
    tensor: str  # its output tensor's name in the .tflite (model-controlled: escaped where shown)
    reason: str  # the compiler's words, e.g. "Unsupported opType"


@dataclass(frozen=True)
class OnDevice:
    """What a device target (gate.targets: tflm) measured on one .tflite besides its metric.

    Byte figures are None where the target has no such figure. The conversion's `evaluation` is the
    device runtime's (the one the checks judge); LiteRT's is beside it with their agreement.
    """

    target: str  # a name of gate.targets.TARGETS
    arena_bytes: int | None  # the smallest tensor arena with which it allocates and invokes (TFLM on this host)
    arena_recorded_bytes: int | None  # TFLM's own record of it (print_allocations' "Arena allocation total")
    flash_bytes: int | None  # what the model takes in flash: the .tflite (TFLM)
    operators: tuple[str, ...]  # the file's operators as "NAME xCOUNT": what the firmware registers
    # LiteRT's metric on the same file, beside the device's; None for several outputs (each has its per_output figure)
    litert_evaluation: Evaluation | None
    agreement: Agreement | None  # several outputs: over all of them, each in its own quantization steps
    files: tuple[FileDigest, ...]  # published beside the artifact (tflm: <model>.<method>.ops.h; Ethos-U: .vela.tflite)
    notes: tuple[str, ...]  # what a reader must know about the figures (a 64-bit host's arena)
    # Ethos-U (Vela's figures for the file; None on other targets)
    sram_bytes: int | None = None  # Vela's "Total SRAM used": the arena (and in Dedicated_Sram modes, a cache)
    npu_cycles: int | None = None  # Vela's estimate of the NPU's cycles per inference
    inference_ms: float | None = None  # Vela's estimate at the configuration's clock: the NPU's part only
    npu_ops_percent: float | None = None  # percent of the .tflite's operators that Vela places on the NPU
    cpu_fallbacks: tuple[CpuFallback, ...] = ()  # every operator Vela leaves on the CPU, with its reason
    # What the runtime cannot run, each naming the operator (and the types it lacks), in its own words: TFLM lacks a
    # kernel or a kernel version. Then no arena, agreement or resolver: the metric is LiteRT's, and ops.supported fails.
    unsupported: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fidelity:
    """A candidate's outputs against the float32 .tflite's on the same eval inputs (gate.tasks.fidelity); no labels.

    Each figure comes with its seeded bootstrap interval over the eval samples (of the figure, not of a change).
    """

    samples: int
    # Percent of samples whose top-1 class is the float32 .tflite's; None when the output is no class scores.
    top1_agreement: float | None
    top1_agreement_interval: Interval | None
    not_class_scores: str  # why top-1 agreement does not apply ("" when it does)
    # Signal-to-noise ratio in dB over every output value; None when the outputs are identical (an infinite SNR,
    # which JSON cannot hold: `identical` says so and the report writes "identical outputs").
    snr_db: float | None
    snr_db_interval: Interval | None
    identical: bool  # every output value equals the float32 .tflite's


@dataclass(frozen=True)
class OutputScore:
    """One output of a model with several, on the Keras model or a .tflite: its task's metric, and its fidelity."""

    output: str  # its Keras name: gate.toml's [outputs.<name>], eval.npz's y.<name>
    task: str  # a name of gate.tasks.TASKS
    tensor: str  # the .tflite signature output it is (gate.measurement.outputs); "" for the Keras model
    evaluation: Evaluation
    fidelity: Fidelity | None  # None on the Keras model and the float32 .tflite


@dataclass(frozen=True)
class OutputChange:
    """One output's metric change on a candidate against the float model, with its paired-bootstrap interval."""

    output: str
    task: str
    metric_change: float  # as Candidate.metric_change, in the output's task's unit
    metric_change_interval: Interval | None


@dataclass(frozen=True)
class Conversion:
    """One .tflite built from the float model, with everything measured on it."""

    method: str  # "float32" (the reference), "int8", "dynamic_range", "float16"
    artifact: FileDigest
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    float_ops: tuple[str, ...]  # ops with a float input or output, as "NAME xCOUNT"
    evaluation: Evaluation  # as the app runs it (see State)
    latency: Latency | None  # None when the policy sets no latency check
    state: State | None = None  # None: the file keeps nothing from one invoke to the next
    # Multiply-accumulates per inference, counted from the graph (gate.targets.graph): deterministic, unlike latency.
    macs: int | None = None
    device: OnDevice | None = None  # a device target's figures; None on LiteRT
    fidelity: Fidelity | None = None  # against the float32 .tflite; None on the float32 .tflite itself
    per_output: tuple[OutputScore, ...] = ()  # several outputs: each one's, in Keras' order; `evaluation`: the worst's


@dataclass(frozen=True)
class Interval:
    """A confidence interval of a metric change, from a paired bootstrap over the eval samples."""

    low: float
    high: float
    confidence: float  # e.g. 0.95
    method: str  # "BCa", or "percentile" where BCa is undefined (both models agree on every sample)
    resamples: int  # drawn; fewer in a percentile interval when only those give a number (gate.measurement.stats)


@dataclass(frozen=True)
class Candidate:
    """One way of quantizing the model, tried (and judged against the policy), skipped, or failed to build.

    PASS and FAIL: built, measured and judged. SKIP: not tried, because it cannot meet
    a hard requirement of the policy or the search ran out of time (`reason` says which).
    ERROR: it could not be built or measured, e.g. the converter crashed (`reason` says how).
    """

    method: str  # a name of gate.quantization.methods.METHODS
    status: Status
    reason: str  # why it was skipped or failed to build; for FAIL, its first failed check
    conversion: Conversion | None  # None unless built
    size_reduction_vs_source: float | None  # source file(s) bytes / quantized .tflite bytes
    size_reduction_vs_float32: float | None  # float32 .tflite bytes / quantized .tflite bytes
    metric_change: float | None  # quantized minus float model; points for accuracy, percent of the float MAE for MAE
    metric_change_interval: Interval | None  # 95% (by default) confidence interval of metric_change
    speedup: float | None  # float32 .tflite p50 / quantized p50, measured in the same run
    checks: tuple[CheckResult, ...]
    seconds: float  # building, evaluating and timing it
    notes: tuple[str, ...] = ()  # how it was built: calibration samples, layers kept in float, QAT epochs
    # What `seconds` went to, in order: e.g. {"ranking": 2.7, "conversion": 30.1, "evaluation": 2.0, "latency": 1.2}.
    step_seconds: dict[str, float] = field(default_factory=dict)
    per_output: tuple[OutputChange, ...] = ()  # several outputs: each judged; metric_change is the worst's (worst())


@dataclass(frozen=True)
class DataInfo:
    """Which data file fed a stage, and how much of it."""

    file: FileDigest
    samples: int


@dataclass(frozen=True)
class Provenance:
    """Where every figure came from, so a reader can reproduce it."""

    tool_versions: dict[str, str]
    inputs: tuple[FileDigest, ...]  # every file of the model folder that was read
    policy_file: str
    policy_sha256: str  # of the effective policy (after overrides), canonical JSON
    effective_policy: dict[str, float | str | bool | int | tuple[str, ...]]
    overrides: dict[str, float | str | bool | int | tuple[str, ...]]
    override_reason: str
    allowed_custom_objects: tuple[str, ...]
    method: str = ""  # what gate.toml's `method` asked for: one method, or "auto" (the search)
    custom_metric: str = ""  # a custom task's metric as gate.toml names it, "module:function" (custom code)
    custom_metric_source: str = ""  # the file that defines it, relative to the repository root


@dataclass(frozen=True)
class Origin:
    """When, where and from what the figures of a result were measured."""

    measured_at: str  # UTC, ISO 8601, when the model's gating ended
    machine: str  # CPU model and core count of the machine that measured it
    cache_key: str  # sha256 over everything the result depends on (gate.scheduling.cache)
    from_cache: bool  # reused from the result cache rather than measured in this run


@dataclass(frozen=True)
class ModelResult:
    """Everything the gate found out about one model folder."""

    name: str
    status: Status
    error: str  # the user-facing message when status is ERROR, else ""
    task: str
    source_format: str  # "keras", "h5", "saved_model", "" when unknown
    source_writer: str  # "keras 3.15.1", "tf_keras 2.21.0", "tensorflow 2.21.0"
    source_bytes: int
    fixed_batch: bool  # converted with a batch of exactly one (recurrent layers need it)
    float_evaluation: Evaluation | None  # the Keras/SavedModel model itself
    reference: Conversion | None  # the float32 .tflite
    candidates: tuple[Candidate, ...]  # in the order they were tried
    chosen: int  # index into candidates of the published one; -1 when none was built
    choice: str  # why that candidate was chosen, e.g. "the first candidate that passes every check"
    calibration: DataInfo | None
    evaluation_data: DataInfo | None
    provenance: Provenance | None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    origin: Origin | None = None  # None for a model that could not be configured
    layer_errors: tuple[LayerError, ...] = ()  # the layers int8 quantization distorts most, worst first
    findings: tuple[Finding, ...] = ()
    float_per_output: tuple[OutputScore, ...] = ()  # a model with several outputs: the float model's, per output

    @property
    def candidate(self) -> Candidate | None:
        """The published candidate: the one that passed, or the closest one when none did."""
        return self.candidates[self.chosen] if self.chosen >= 0 else None

    @property
    def artifacts(self) -> tuple[FileDigest, ...]:
        """The files a gated model publishes: the float32 reference's and the chosen candidate's .tflite, and the
        files a device target wrote beside each (its op resolver snippet)."""
        conversions = [c for c in (self.reference, self.candidate.conversion if self.candidate else None) if c]
        return tuple(f for c in conversions for f in (c.artifact, *(c.device.files if c.device else ())))

    def kept_files(self) -> set[str]:
        """Paths inside --out of every file this result refers to (artifacts, the latency benchmark's JSON)."""
        latency_measured = self.reference is not None and self.reference.latency is not None
        return {a.path for a in self.artifacts} | ({benchmark_path(self.name)} if latency_measured else set())

    def to_json(self) -> dict[str, Any]:
        return to_jsonable(self)


def overall_status(results: Sequence[ModelResult]) -> Status:
    """PASS only when every model passed; ERROR outranks FAIL in the headline."""
    statuses = {r.status for r in results}
    if Status.ERROR in statuses:
        return Status.ERROR
    return Status.FAIL if Status.FAIL in statuses else Status.PASS


def error_result(
    name: str,
    message: str,
    *,
    task: str = "",
    stage_seconds: dict[str, float] | None = None,
    candidates: tuple[Candidate, ...] = (),
) -> ModelResult:
    """The result of a model that could not be gated: one ERROR row with its message."""
    return ModelResult(
        name=name,
        status=Status.ERROR,
        error=message,
        task=task,
        source_format="",
        source_writer="",
        source_bytes=0,
        fixed_batch=False,
        float_evaluation=None,
        reference=None,
        candidates=candidates,
        chosen=-1,
        choice="",
        calibration=None,
        evaluation_data=None,
        provenance=None,
        stage_seconds=stage_seconds or {},
    )
