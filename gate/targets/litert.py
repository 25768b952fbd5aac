"""The LiteRT target: measure a model honestly: task metric on its own eval data, I/O, ops, latency.

Every .tflite runs in ai_edge_litert (tf.lite.Interpreter is deprecated; LiteRT
has the same API). Evaluation is batched with `resize_tensor_input`: one
Python `invoke` per sample is several times slower (see bench/). A file that
keeps state between invokes (variable tensors) is measured as an app runs it,
one sample per invoke and no reset, and also with a reset before each invoke.
Whatever LiteRT raises on a built file is that file's failure (a ModelError
with LiteRT's message), never gate's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gate.errors import ModelError, translated
from gate.frontends.base import PREDICT_BATCH, Dataset
from gate.results import Evaluation, Latency, State, TensorInfo, must_reset
from gate.targets.base import TARGET_FIGURES, Measured, MeasuredOutputs, Timing
from gate.targets.graph import read_graph
from gate.targets.latency import LatencyCase, measure_latency
from gate.tasks import TASKS

if TYPE_CHECKING:
    from gate.quantization.base import Method

# Samples per invoke when evaluating a .tflite. Chosen with bench/eval_speed.py:
# batched evaluation beats the per-sample loop on every bundled model at 64.
EVAL_BATCH = 64


@contextmanager
def runtime_errors(model_path: Path, doing: str) -> Iterator[None]:
    """Whatever LiteRT raises while it `doing`s a built .tflite, as a ModelError with LiteRT's own message.

    LiteRT raises RuntimeError or ValueError, e.g. "tflite/kernels/kernel_util.cc:349
    no_integer_overflow_from_quantization was not true. Node number 15 (DEPTHWISE_CONV_2D) failed to
    prepare." (an int16x8 MobileNetV2 here): the file's failure, so its candidate's ERROR, not gate's.
    """

    def message(exc: Exception) -> str:  # LiteRT's exception types say nothing more than their message
        said = " ".join(str(exc).split()) or type(exc).__name__
        return f"LiteRT could not {doing} {model_path.name}: {said[:400]}"

    with translated(message):
        yield


def _interpreter(model_path: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(model_path), num_threads=threads)


def variable_tensors(model_path: Path) -> int:
    """How many tensors the file declares variable: what LiteRT keeps from one invoke to the next.

    A tf-keras LSTM converts to UNIDIRECTIONAL_SEQUENCE_LSTM, whose state is two such tensors per
    layer: the next invoke starts from the last one's state unless the app calls
    interpreter.reset_all_variables(). The interpreter does not tell; the file's flatbuffer does.
    """
    from ai_edge_litert import schema_py_generated as schema

    with runtime_errors(model_path, "read"):
        model = schema.Model.GetRootAs(model_path.read_bytes(), 0)
        subgraphs = [model.Subgraphs(i) for i in range(model.SubgraphsLength())]
        return sum(bool(g.Tensors(i).IsVariable()) for g in subgraphs for i in range(g.TensorsLength()))


def _signature_io(interpreter) -> tuple[dict[str, dict], dict[str, dict]]:
    """Input and output details keyed by signature name (the Keras input names)."""
    runner = interpreter.get_signature_runner("serving_default")
    return runner.get_input_details(), runner.get_output_details()


def _tensor_info(name: str, detail: dict) -> TensorInfo:
    scale, zero_point = detail["quantization"]
    return TensorInfo(
        name=name,
        dtype=np.dtype(detail["dtype"]).name,
        shape=tuple(int(d) for d in detail["shape_signature"]),
        scale=float(scale),
        zero_point=int(zero_point),
    )


_FLOAT_TYPES = frozenset({"FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16"})  # the schema's float TensorTypes


def describe(model_path: Path) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...], tuple[str, ...]]:
    """Inputs, outputs, and the ops that read or write a float tensor ("NAME xCOUNT")."""
    with runtime_errors(model_path, "load and prepare"):
        interpreter = _interpreter(model_path, threads=1)
        inputs, outputs = _signature_io(interpreter)
        interpreter.allocate_tensors()  # prepares every op: a file LiteRT cannot run fails here, not in an app

    # Read from the file, not from the prepared interpreter: its op list also holds the XNNPACK delegate's own
    # nodes ("DELEGATE"), which no file has.
    graph = read_graph(model_path.read_bytes())
    counts = Counter(
        op.name
        for op in graph.operators
        if any(
            index >= 0 and graph.tensors[op.subgraph][index].dtype in _FLOAT_TYPES
            for index in (*op.inputs, *op.outputs)
        )
    )
    float_ops = tuple(f"{name} x{count}" for name, count in sorted(counts.items()))
    return (
        tuple(_tensor_info(n, d) for n, d in sorted(inputs.items())),
        tuple(_tensor_info(n, d) for n, d in sorted(outputs.items())),
        float_ops,
    )


def quantized(array: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    """Bring float data into an input's dtype; quantize with its scale and zero point."""
    dtype = np.dtype(tensor.dtype)
    if dtype.kind in "iu" and tensor.scale:
        # Round, then clip: the tutorials' astype() truncates, which was measured
        # to invent a 2.34-point accuracy drop on a breast-cancer MLP.
        limits = np.iinfo(dtype)
        array = np.clip(np.round(array / tensor.scale + tensor.zero_point), limits.min, limits.max)
    return array.astype(dtype)


def dequantized(array: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    """An output's values as floats, with its scale and zero point."""
    if np.dtype(tensor.dtype).kind in "iu" and tensor.scale:
        return (array.astype(np.float32) - tensor.zero_point) * tensor.scale
    return array.astype(np.float32)


def to_model_input(array: np.ndarray, detail: dict) -> np.ndarray:
    return quantized(array, _tensor_info("", detail))


def from_model_output(array: np.ndarray, detail: dict) -> np.ndarray:
    return dequantized(array, _tensor_info("", detail))


def input_names(model_path: Path, tensor_indices: Sequence[int]) -> list[str]:
    """The signature's input names (the eval data's keys) of the given input tensors, in their order."""
    return _signature_names(model_path, tensor_indices, outputs=False)


def output_names(model_path: Path, tensor_indices: Sequence[int]) -> list[str]:
    """The signature's output names (output_0, output_1...) of the given output tensors, in their order."""
    return _signature_names(model_path, tensor_indices, outputs=True)


def _signature_names(model_path: Path, tensor_indices: Sequence[int], *, outputs: bool) -> list[str]:
    with runtime_errors(model_path, "load"):
        details = _signature_io(_interpreter(model_path, threads=1))[outputs]
    by_index = {detail["index"]: name for name, detail in details.items()}
    return [by_index[index] for index in tensor_indices]


def refuse_non_finite_outputs(outputs: np.ndarray, data: Dataset, model: str) -> None:
    """A model whose outputs are NaN or infinite cannot be scored: that is the model's problem, said plainly."""
    bad = ~np.isfinite(outputs.reshape(len(outputs), -1)).all(axis=1)
    if bad.any():
        kinds = " or ".join(
            k for k, m in (("NaN", np.isnan(outputs).any()), ("infinite", np.isinf(outputs).any())) if m
        )
        raise ModelError(
            f"{data.path}: {model}'s output is {kinds} on {int(bad.sum())} of {data.samples} eval samples "
            f"(first: sample {int(np.argmax(bad))}); check the model's weights and the data's scale"
        )


# TensorFlow keeps the memory of the largest batch it ran: 64 ResNet50 samples at 128×128 took the worker from
# 0.93 to 3.96 GiB for good, in batches of 5 (this much input each) to 1.18 GiB. Small inputs keep batches of 256.
PREDICT_BATCH_BYTES = 2**20


def evaluate_float(predict: Callable[[dict[str, np.ndarray]], np.ndarray], data: Dataset, task: str) -> Evaluation:
    """The task metric of the Keras or SavedModel float model itself."""
    outputs, batch = float_model_outputs(predict, data)
    return scored(outputs, data, task, batch)


def float_model_outputs(
    predict: Callable[[dict[str, np.ndarray]], np.ndarray], data: Dataset
) -> tuple[np.ndarray, int]:
    """The float model's outputs on the eval set, and the batch they were predicted in."""
    sample_bytes = sum(array[:1].nbytes for array in data.inputs.values())
    batch = max(1, min(PREDICT_BATCH, PREDICT_BATCH_BYTES // max(1, sample_bytes)))
    outputs = np.concatenate(
        [
            predict({name: array[start : start + batch] for name, array in data.inputs.items()})
            for start in range(0, data.samples, batch)
        ]
    )
    refuse_non_finite_outputs(outputs, data, "the float model")
    return outputs, batch


def scored(outputs: np.ndarray, data: Dataset, task: str, batch_size: int) -> Evaluation:
    """The task's figure of a model's outputs on the eval set; an output the task cannot score names the data."""
    # Eval data has them (gate.gating.data.read_data), or for a task without labels the float32 .tflite's outputs.
    assert data.labels is not None
    try:
        value, per_sample = TASKS[task].score(outputs, data.labels, data.inputs)
    except ModelError as exc:
        raise ModelError(f"{data.path}: {exc}") from None
    return Evaluation(TASKS[task].metric.name, value, data.samples, batch_size, per_sample)


def evaluate_tflite(
    model_path: Path, data: Dataset, task: str, *, threads: int, batch_size: int = EVAL_BATCH, reset: bool = False
) -> Evaluation:
    """The task metric of a .tflite over the whole eval set, `batch_size` samples per invoke, in the set's order.

    `reset`: call interpreter.reset_all_variables() before each invoke, as an app that knows the file keeps
    state must; without it, a stateful file's next invoke starts where the last one ended.
    """
    outputs, batch_size = tflite_outputs(model_path, data, threads=threads, batch_size=batch_size, reset=reset)
    return scored(outputs, data, task, batch_size)


def tflite_outputs(
    model_path: Path, data: Dataset, *, threads: int, batch_size: int = EVAL_BATCH, reset: bool = False
) -> tuple[np.ndarray, int]:
    """The dequantized outputs of a .tflite over the whole eval set (see evaluate_tflite), and the batch size used."""
    by_name, batch_size = signature_outputs(model_path, data, threads=threads, batch_size=batch_size, reset=reset)
    (scores,) = by_name.values()
    return scores, batch_size


def signature_outputs(
    model_path: Path, data: Dataset, *, threads: int, batch_size: int = EVAL_BATCH, reset: bool = False
) -> tuple[dict[str, np.ndarray], int]:
    """Each dequantized output of a .tflite over the whole eval set, by its signature name, and the batch size used.

    A model with several outputs calls them output_0, output_1...: gate.measurement.outputs says which Keras output
    each one is.
    """
    with runtime_errors(model_path, "run"):
        interpreter = _interpreter(model_path, threads)
        inputs, outputs = _signature_io(interpreter)
        if any(detail["shape_signature"][0] != -1 for detail in inputs.values()):
            batch_size = 1  # converted with a fixed batch of one
        results: dict[str, list[np.ndarray]] = {name: [] for name in outputs}
        current = None
        for start in range(0, data.samples, batch_size):
            batch = {name: array[start : start + batch_size] for name, array in data.inputs.items()}
            size = len(next(iter(batch.values())))
            if size != current:
                for detail in inputs.values():
                    interpreter.resize_tensor_input(detail["index"], [size, *detail["shape"][1:]], strict=True)
                interpreter.allocate_tensors()
                current = size
            if reset:
                interpreter.reset_all_variables()
            for name, detail in inputs.items():
                interpreter.set_tensor(detail["index"], to_model_input(batch[name], detail))
            interpreter.invoke()
            for name, output in outputs.items():
                results[name].append(from_model_output(interpreter.get_tensor(output["index"]), output))
    scores = {name: np.concatenate(parts) for name, parts in results.items()}
    for name, values in scores.items():
        refuse_non_finite_outputs(values, data, model_path.name if len(scores) == 1 else f"{model_path.name} ({name})")
    return scores, batch_size


def outputs_as_the_app_runs_it(model_path: Path, data: Dataset, *, threads: int, app_resets: bool) -> np.ndarray:
    """The file's dequantized outputs on the eval set, run as evaluate_as_the_app_runs_it judges it."""
    if not variable_tensors(model_path):
        return tflite_outputs(model_path, data, threads=threads)[0]
    return tflite_outputs(model_path, data, threads=threads, batch_size=1, reset=app_resets)[0]


def evaluate_as_the_app_runs_it(
    model_path: Path, data: Dataset, task: str, *, threads: int, app_resets: bool
) -> tuple[Evaluation, State | None]:
    """The task metric the app gets from the file, and the state it keeps between invokes (None: none).

    A stateless file is evaluated batched. A stateful one is evaluated one sample per invoke, as the
    TFLite tutorials run a model, twice: without a reset (how an app that does not know runs it) and
    with one before each invoke. The first is the figure the checks judge, unless the policy says the
    app resets (`app_resets`, runtime.resets_state). A converted tf-keras LSTM measured here scored
    10.56% without resets and 97.22% with them.
    """
    variables = variable_tensors(model_path)
    if not variables:
        return evaluate_tflite(model_path, data, task, threads=threads), None
    with_resets, without_resets = (
        evaluate_tflite(model_path, data, task, threads=threads, batch_size=1, reset=reset) for reset in (True, False)
    )
    if app_resets:
        return with_resets, State(variables, True, without_resets, must_reset(variables))
    return without_resets, State(variables, False, with_resets, must_reset(variables))


def latency_case(
    label: str, model_path: Path, data: Dataset, *, threads: int, rounds: int, warmup_rounds: int
) -> LatencyCase:
    """Batch-1 inputs from the real eval data, as many distinct samples as rounds allow."""
    with runtime_errors(model_path, "load"):
        interpreter = _interpreter(model_path, threads)
        inputs, _outputs = _signature_io(interpreter)
    count = min(data.samples, rounds + warmup_rounds)
    feeds = tuple(
        {detail["index"]: to_model_input(data.inputs[name][i : i + 1], detail) for name, detail in inputs.items()}
        for i in range(count)
    )
    return LatencyCase(label, model_path, feeds, threads, rounds, warmup_rounds)


def time_on_this_cpu(
    artifacts: Mapping[str, Path],
    data: Dataset,
    timing: Timing,
    *,
    json_path: Path,
    work_dir: Path,
    alone: Callable[[], AbstractContextManager],
) -> dict[str, Latency]:
    """Every artifact timed in LiteRT at batch 1 on this machine: the latency figure of every target."""
    cases = [
        latency_case(
            label, path, data, threads=timing.threads, rounds=timing.rounds, warmup_rounds=timing.warmup_rounds
        )
        for label, path in artifacts.items()
    ]
    return measure_latency(cases, json_path=json_path, work_dir=work_dir, alone=alone)


class LiteRTOnCPU:
    """LiteRT's interpreter on the machine gate runs on (the CI runner's CPU): it runs every candidate."""

    name = "litert"
    description = (
        "LiteRT (ai-edge-litert) on the CPU of the machine gate runs on: every figure is measured with the "
        "interpreter an Android or Linux app uses, latency through pytest-benchmark at batch 1."
    )
    figures = TARGET_FIGURES[name]

    no_int16_kernel: Mapping[str, str] = {}  # the converter makes 16x8 only of operators LiteRT has 16x8 kernels for

    def cannot_run(self, method: Method) -> str:
        return ""

    def measure(self, artifact: Path, data: Dataset, task: str, *, threads: int, app_resets: bool) -> Measured:
        inputs, outputs, float_ops = describe(artifact)
        evaluation, state = evaluate_as_the_app_runs_it(artifact, data, task, threads=threads, app_resets=app_resets)
        return Measured(inputs, outputs, float_ops, evaluation, state)

    def measure_outputs(self, artifact: Path, data: Dataset, *, threads: int) -> MeasuredOutputs:
        return MeasuredOutputs(*signature_outputs(artifact, data, threads=threads))

    time = staticmethod(time_on_this_cpu)


LITERT = LiteRTOnCPU()
