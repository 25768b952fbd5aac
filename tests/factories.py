"""Result objects built in code, for tests of the stages that need no TensorFlow.

They are results gate could have written (gate.reporting.verify accepts them): artifacts at the layout's paths,
checks judged against the effective policy the provenance records, with the eval set's sample count.
"""

from __future__ import annotations

import dataclasses
import math

from gate.layout import artifact_path, resolver_path, vela_path
from gate.policy.checks import Context
from gate.policy.judge import judge
from gate.reporting.compare import Comparison, Figures, ModelChange
from gate.results import (
    Agreement,
    Candidate,
    Conversion,
    DataInfo,
    Evaluation,
    FileDigest,
    Latency,
    ModelResult,
    OnDevice,
    Provenance,
    State,
    Status,
    TensorInfo,
    must_reset,
)
from gate.targets import TARGET_NAMES

LITERT = "LiteRT 2.1.0 as gate measures it (its default XNNPACK delegate)"  # an agreement's other runtime
EVAL_SAMPLES = 1000  # per_sample below keeps 4 of them: enough to judge, few enough to read


def conversion(
    method: str = "int8",
    *,
    model: str = "digits",
    size_bytes: int = 10_000,
    accuracy: float = 95.0,
    p50_ms: float = 1.0,
    dtype: str = "int8",
    float_ops: tuple[str, ...] = (),
) -> Conversion:
    quantized = dtype in ("int8", "uint8")
    tensor = TensorInfo("image", dtype, (-1, 8, 8, 1), 0.0039 if quantized else 0.0, -128 if quantized else 0)
    return Conversion(
        method=method,
        artifact=FileDigest(artifact_path(model, method), size_bytes, "ab" * 32),
        inputs=(tensor,),
        outputs=(dataclasses.replace(tensor, name="output_0", shape=(-1, 10)),),
        float_ops=float_ops,
        evaluation=Evaluation("accuracy", accuracy, EVAL_SAMPLES, 64, (1.0, 1.0, 1.0, 0.0)),
        latency=Latency(
            threads=1,
            rounds=200,
            warmup_rounds=20,
            p50_ms=p50_ms,
            p95_ms=p50_ms * 1.5,
            mean_ms=p50_ms,
            stddev_ms=0.1,
            min_ms=p50_ms / 2,
        ),
    )


def candidate(
    *,
    source_bytes: int = 80_000,
    float_accuracy: float = 96.0,
    policy: dict | None = None,
    task: str = "classification",
    **conversion_args,
) -> Candidate:
    model = conversion_args.get("model", "digits")
    reference = conversion(
        "float32", model=model, size_bytes=40_000, accuracy=float_accuracy, p50_ms=2.0, dtype="float32"
    )
    quantized = conversion(**conversion_args)
    unjudged = Candidate(
        method=quantized.method,
        status=Status.PASS,
        reason="",
        conversion=quantized,
        size_reduction_vs_source=source_bytes / quantized.artifact.size_bytes,
        size_reduction_vs_float32=reference.artifact.size_bytes / quantized.artifact.size_bytes,
        metric_change=quantized.evaluation.value - float_accuracy,
        metric_change_interval=None,
        speedup=reference.latency.p50_ms / quantized.latency.p50_ms,
        checks=(),
        seconds=1.0,
    )
    return judge(unjudged, Context(policy or DEFAULT_POLICY, task, reference))


DEFAULT_POLICY = {
    "size.min_reduction": 4.0,
    "size.baseline": "source",
    "accuracy.max_drop": 2.0,
    "io.input_dtype": "int8",
    "io.output_dtype": "int8",
    "latency.max_p50_ms": 5.0,
}


def model_result(
    name: str = "digits", *, overrides: dict | None = None, policy: dict | None = None, **candidate_args
) -> ModelResult:
    effective = (policy or DEFAULT_POLICY) | (overrides or {})
    judged = candidate(model=name, policy=effective, **candidate_args)
    reference = conversion("float32", model=name, size_bytes=40_000, accuracy=96.0, p50_ms=2.0, dtype="float32")
    data = DataInfo(FileDigest("eval.npz", 1234, "cd" * 32), EVAL_SAMPLES)
    return ModelResult(
        name=name,
        status=judged.status,
        error="",
        task="classification",
        source_format="keras",
        source_writer="keras 3.15.1",
        source_bytes=80_000,
        fixed_batch=False,
        float_evaluation=Evaluation("accuracy", 96.0, EVAL_SAMPLES, 256, (1.0, 1.0, 1.0, 1.0)),
        reference=reference,
        candidates=(judged,),
        chosen=0,
        choice="int8: the first candidate in the search order that passes every check",
        calibration=DataInfo(FileDigest("train.npz", 5678, "ef" * 32), 200),
        evaluation_data=data,
        provenance=Provenance(
            tool_versions={"gate": "0.1.0", "tensorflow": "2.21.0"},
            inputs=(FileDigest("model.keras", 80_000, "01" * 32), data.file),
            policy_file="policies/default.toml",
            policy_sha256="23" * 32,
            effective_policy=effective,
            overrides=overrides or {},
            override_reason="measured on device" if overrides else "",
            allowed_custom_objects=(),
        ),
        stage_seconds={"inspect": 0.01, "quantize": 1.5},
    )


def two_output_result(
    *, class_accuracy: float = 93.0, value_mae: float = 0.52, policy: dict | None = None, value_task: str = "regression"
) -> ModelResult:
    """A two-output model's result as gate could have written it: each output scored, changed and judged (`value` by
    regression, its MAE `value_mae`, or by fidelity, its output error `value_mae`)."""
    from gate.policy.judge import worst_output
    from gate.results import Fidelity, OutputChange, OutputScore

    policy = policy or {**DEFAULT_POLICY, "mae.max_increase": 10.0, "fidelity.min_snr_db": 20.0}
    samples = EVAL_SAMPLES
    fidelity_task = value_task == "fidelity"
    snr = -10 * math.log10(value_mae / 100) if fidelity_task else 25.0  # an output error is an SNR: the same figure
    fidelity = Fidelity(samples, None, None, "its last activation is linear, not softmax or sigmoid", snr, None, False)

    def scores(mae: float, accuracy: float, *, built: bool) -> tuple[OutputScore, ...]:
        value = Evaluation(
            "output_error" if fidelity_task else "mae", mae, samples, 64, (mae if fidelity_task else 0.5,) * 4
        )
        klass = Evaluation("accuracy", accuracy, samples, 64, (1.0, 1.0, 1.0, 0.0))
        return (
            OutputScore("value", value_task, "output_0" if built else "", value, fidelity if built else None),
            OutputScore("class", "classification", "output_1" if built else "", klass, None),
        )

    result = model_result(policy=policy)
    float_value = 0.0 if fidelity_task else 0.5  # fidelity: the float32 .tflite against itself
    float_scores = scores(float_value, 96.0, built=False)
    candidate = result.candidates[0]
    assert candidate.conversion is not None and result.reference is not None
    quantized = scores(value_mae, class_accuracy, built=True)
    value_change = value_mae if fidelity_task else (value_mae - 0.5) / 0.5 * 100
    changes = (
        OutputChange("value", value_task, value_change, None),
        OutputChange("class", "classification", class_accuracy - 96.0, None),
    )
    at = worst_output(changes, policy)
    conversion = dataclasses.replace(candidate.conversion, per_output=quantized, evaluation=quantized[at].evaluation)
    candidate = dataclasses.replace(
        candidate, conversion=conversion, per_output=changes, metric_change=changes[at].metric_change
    )
    reference = dataclasses.replace(result.reference, per_output=float_scores, evaluation=float_scores[at].evaluation)
    judged = judge(candidate, Context(policy, quantized[at].task, reference))
    return dataclasses.replace(
        result, task=quantized[at].task, float_evaluation=float_scores[at].evaluation, reference=reference,
        candidates=(judged,), status=judged.status, float_per_output=float_scores,
    )  # fmt: skip


def regression_result() -> ModelResult:
    """A one-output regression model's result: its figures are MAEs and its change a percent of the float one's."""
    from gate.tasks import TASKS

    policy = {**DEFAULT_POLICY, "mae.max_increase": 10.0}
    result = model_result("radius", policy=policy)
    (unjudged,) = result.candidates
    assert unjudged.conversion is not None and result.reference is not None

    def mae(value: float) -> Evaluation:
        return Evaluation("mae", value, EVAL_SAMPLES, 64, (0.5, 0.5, 0.5, 0.5))

    reference = dataclasses.replace(result.reference, evaluation=mae(0.5))
    measured = dataclasses.replace(
        unjudged,
        conversion=dataclasses.replace(unjudged.conversion, evaluation=mae(0.52)),
        metric_change=TASKS["regression"].change(0.5, 0.52),
    )
    judged = judge(measured, Context(policy, "regression", reference))
    return dataclasses.replace(
        result, task="regression", float_evaluation=mae(0.5), reference=reference, candidates=(judged,),
        status=judged.status,
    )  # fmt: skip


PASSED = Figures(Status.PASS, "int8", 10_000, "accuracy", 95.0, 1.0)
NOT_GATED = Figures(Status.ERROR, "", None, "", None, None)
# A comparison with the base branch: one model changed, an ERROR row new, and one model and one ERROR row unchanged.
COMPARISON = Comparison(
    label="main@3f3f3f3",
    base_commit="3f" * 20,
    planned_base="",
    changes=(ModelChange("alpha", PASSED, NOT_GATED), ModelChange("files/", None, NOT_GATED)),
    unchanged=("beta", "loose/"),
)


def stateful(result: ModelResult, *, app_resets: bool = False) -> ModelResult:
    """`result`, its published file one that keeps state in 2 variable tensors (10.56% the other way), as gate
    measures such a file: one sample per invoke; its candidate's time split into steps."""
    published = result.candidates[result.chosen]
    conversion = published.conversion
    assert conversion is not None
    other = Evaluation("accuracy", 10.56, EVAL_SAMPLES, 1, (0.0, 0.0, 1.0, 0.0))
    conversion = dataclasses.replace(
        conversion,
        evaluation=dataclasses.replace(conversion.evaluation, batch_size=1),
        state=State(2, app_resets, other, must_reset(2)),
    )
    steps = {"conversion": 0.5, "evaluation": 0.3, "latency": 0.1}
    published = dataclasses.replace(published, conversion=conversion, step_seconds=steps)
    candidates = list(result.candidates)
    candidates[result.chosen] = published
    return dataclasses.replace(result, candidates=tuple(candidates))


def with_files(folder, result: ModelResult) -> ModelResult:
    """`result`, with its artifacts and benchmark written under `folder` (bytes of the recorded sizes) and its
    digests those of the files: what a `gate check --out folder` shard holds for it."""
    import hashlib

    from gate.layout import benchmark_path

    def written(artifact: FileDigest) -> FileDigest:
        data = (artifact.path.encode() * (artifact.size_bytes // len(artifact.path) + 1))[: artifact.size_bytes]
        (folder / artifact.path).parent.mkdir(parents=True, exist_ok=True)
        (folder / artifact.path).write_bytes(data)
        return dataclasses.replace(artifact, sha256=hashlib.sha256(data).hexdigest())

    def converted(conversion: Conversion) -> Conversion:
        return dataclasses.replace(conversion, artifact=written(conversion.artifact))

    candidates = tuple(
        dataclasses.replace(c, conversion=converted(c.conversion)) if c.conversion else c for c in result.candidates
    )
    result = dataclasses.replace(
        result, reference=converted(result.reference) if result.reference else None, candidates=candidates
    )
    if benchmark_path(result.name) in result.kept_files():
        (folder / benchmark_path(result.name)).parent.mkdir(parents=True, exist_ok=True)
        (folder / benchmark_path(result.name)).write_text('{"benchmarks": []}\n')
    return result


def shard(folder, results) -> list[ModelResult]:
    """A `gate check --out folder` shard of `results` (see with_files), its reports written; the results."""
    from gate.reporting.report import write_reports

    folder.mkdir(parents=True, exist_ok=True)
    results = [with_files(folder, r) for r in results]
    write_reports(folder, results, step_summary=False)
    return results


def job(folder, **changes):
    """A pipeline Job for the model folder `folder`, as gate.scheduling.run makes one (its outputs beside it)."""
    from gate.gating.pipeline import Job

    name = folder.name
    fields = {
        "name": name,
        "folder": str(folder),
        "task": "classification",
        "method": "auto",
        "calibration_samples": 200,
        "calibrate_on_eval": False,
        "allow_custom_objects": ("my_pkg.layers>Scale",),
        "policy_file": "policies/default.toml",
        "policy": {
            "accuracy.max_drop": 2.0,
            "limits.timeout_s": 60,
            "limits.memory_mb": 8192,
            "search.candidate_timeout_s": 60,
        },
        "overrides": {},
        "override_reason": "",
        "out_dir": str(folder.parent.parent / "gate-out"),
        "log_path": str(folder.parent.parent / "gate-out" / "logs" / f"{name}.log"),
        "result_path": str(folder.parent.parent / f"{name}.result.json"),
    }
    return Job(**(fields | changes))


def on_device(result: ModelResult, *, macs: int, **figures) -> ModelResult:
    """`result` measured on a device target (tflm unless `figures` say): its published conversion's MAC count and
    device figures, the file the target publishes, the target in its effective policy (and ops.supported, which gate
    sets for tflm), judged again."""
    candidate = result.candidates[0]
    target = figures.get("target", "tflm")
    if target == "tflm":
        # TFLM's outputs are LiteRT's on every sample (a predicted class only for one classification output)
        one_classifier = result.task == "classification" and not candidate.conversion.per_output
        same = Agreement(LITERT, candidate.conversion.evaluation.samples, 0.0, 0, 100.0 if one_classifier else None)
        device = OnDevice(
            target,
            3_680,
            3_328,
            candidate.conversion.artifact.size_bytes,  # TFLM's flash is the .tflite
            ("FULLY_CONNECTED x2",),
            None,
            same,
            (FileDigest(resolver_path(result.name, "int8"), 10, "ab" * 32),),
            (),
        )
    else:
        device = OnDevice(
            target,
            None,
            None,
            None,
            ("FULLY_CONNECTED x2",),
            None,
            None,
            (FileDigest(vela_path(result.name, "int8"), 10, "ab" * 32),),
            (),
            sram_bytes=1_280,
            npu_cycles=90_000,
            inference_ms=0.2,  # at least 90,000 cycles at 500 MHz
            npu_ops_percent=100.0,
        )
    conversion = dataclasses.replace(candidate.conversion, macs=macs, device=dataclasses.replace(device, **figures))
    assert result.provenance is not None
    provenance = dataclasses.replace(
        result.provenance,
        effective_policy={
            **result.provenance.effective_policy,
            "target.runtime": target if target in TARGET_NAMES else "tflm",
            **({"ops.supported": True} if target == "tflm" else {}),
        },
    )
    context = Context(provenance.effective_policy, result.task, result.reference)
    judged = judge(dataclasses.replace(candidate, conversion=conversion), context)
    return dataclasses.replace(result, candidates=(judged,), provenance=provenance, status=judged.status)
