"""The QAT process seen from outside: its request, its result, and how to run it.

Quantization-aware training runs in a process of its own (`python -m gate.quantization.qat.train
REQUEST.json`, see gate/quantization/qat/train.py) because tfmot needs tf-keras, which TensorFlow
only uses when `TF_USE_LEGACY_KERAS=1` is set before it is imported. This
module imports neither TensorFlow nor Keras at import time, so the parent (a
Keras 3 process) can build requests and read results. The request and the
result are files, so each is validated field by field when read.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gate.encoding import InvalidResult, dumps, load_result, to_jsonable
from gate.errors import ModelError
from gate.keys import Invalid, Key
from gate.quantization.base import Built, NotApplicable, Setup
from gate.quantization.settings import CALIBRATION_SAMPLES, QAT_KEYS
from gate.results import FileDigest
from gate.tasks import TASKS

# Its `# fmt: skip`s keep this module under 400 lines (formatted, it goes over): split it before removing them.

SCHEMA_VERSION = 1
IO_DTYPES = ("int8", "uint8", "float32")
# The stages of one QAT run, in order; a result names the last one begun.
STAGES = ("inspect", "import tensorflow", "load", "faithfulness", "data", "annotate", "train", "convert")
# Request fields a policy or gate.toml sets: their range is the registry's, so whatever validates there runs here.
REGISTRY_FIELDS: dict[str, Key] = {
    **{key.name.removeprefix("qat."): key for key in QAT_KEYS},
    "calibration_samples": CALIBRATION_SAMPLES,
}


@dataclass(frozen=True)
class QatRequest:
    """One quantization-aware training run: what to train, how, and where to write."""

    model_path: str  # a .keras or .h5 file gate.inspection accepts
    train_path: str | None  # train.npz (x or x.<input>, y); QAT never sees the eval labels
    input_names: tuple[str, ...]  # the model's inputs, in order
    task: str  # "classification" (class indices, cross-entropy) or "regression" (MAE)
    tflite_path: str  # where the full-int8 .tflite goes
    result_path: str  # where the QatResult JSON goes
    weights_path: str | None = None  # Keras 3 models: each layer's get_weights() (write_keras3_reference)
    reference_path: str | None = None  # eval inputs and the original model's float outputs on them
    # Largest |rebuilt - original| output allowed on the reference inputs. tf-keras' BatchNormalization
    # rounds differently from Keras 3's (2e-7 relative per layer): 1.2e-5 after MobileNetV2's 52 of them.
    tolerance: float = 1e-4
    epochs: int = 3
    learning_rate: float = 1e-4  # QAT fine-tunes a trained model: far below a from-scratch rate
    batch_size: int = 32
    seed: int = 0
    calibration_samples: int = 200  # first N training inputs feed the converter's representative dataset
    input_dtype: str = "int8"
    output_dtype: str = "int8"
    fixed_batch: bool = False  # export with a batch of one (recurrent layers need it; gate also forces it for them)
    # Unroll recurrent layers, so that the .tflite keeps no state between invokes (gate.frontends.keras.unrolled).
    unroll: bool = True
    outputs: tuple[tuple[str, str], ...] = ()  # several: (Keras output name, task) in the model's order (qat.heads)
    schema_version: int = SCHEMA_VERSION

    def problems(self) -> list[str]:
        """What is wrong with the values (their types are checked when read)."""
        rules = [
            (self.schema_version == SCHEMA_VERSION, "schema_version", f"expected {SCHEMA_VERSION}"),
            (self.task in TASKS, "task", f"expected one of {', '.join(TASKS)}"),
            (self.input_dtype in IO_DTYPES, "input_dtype", f"expected one of {', '.join(IO_DTYPES)}"),
            (self.output_dtype in IO_DTYPES, "output_dtype", f"expected one of {', '.join(IO_DTYPES)}"),
            (0 <= self.seed < 2**31, "seed", "expected a whole number from 0 to 2**31 - 1"),
            (0 <= self.tolerance <= 1, "tolerance", "expected a number from 0 to 1"),
            (len(self.input_names) > 0, "input_names", "expected at least one input name"),
            ({task for _, task in self.outputs} <= set(TASKS), "outputs", f"expected tasks of {', '.join(TASKS)}"),
        ]
        problems = [f"{name}: {message}, got {getattr(self, name)!r}" for ok, name, message in rules if not ok]
        for name, key in REGISTRY_FIELDS.items():
            try:
                key.kind.parse(getattr(self, name))
            except Invalid as problem:
                problems.append(f"{name}: {problem}")
        return problems


class QatStatus(enum.StrEnum):
    OK = "OK"  # trained and converted: the .tflite is at tflite_path
    UNAVAILABLE = "UNAVAILABLE"  # QAT cannot be done for this model or data: `reason` says why
    FAILED = "FAILED"  # the process crashed, timed out or hit a bug in gate: `reason` says which


@dataclass(frozen=True)
class LayerInfo:
    """A layer of the model, and why tfmot does not quantize it ("" when it does)."""

    name: str
    class_name: str
    note: str


@dataclass(frozen=True)
class Faithfulness:
    """How closely the tf-keras model reproduces the original's outputs on the eval inputs."""

    samples: int
    max_abs_diff: float
    tolerance: float


@dataclass(frozen=True)
class EpochRecord:
    """One training epoch: the training loss and metric (accuracy in percent, or MAE)."""

    epoch: int
    loss: float
    metric: float
    seconds: float


@dataclass(frozen=True)
class QatResult:
    """What one QAT run did; written atomically by the QAT process."""

    schema_version: int
    status: QatStatus
    reason: str  # "" when OK
    stage: str  # the last stage begun (one of STAGES)
    source_writer: str  # "keras 3.15.1", "tf_keras 2.21.0"
    rebuilt: bool  # a Keras 3 model rebuilt in tf-keras
    faithfulness: Faithfulness | None
    annotated_layers: tuple[LayerInfo, ...]
    unannotated_layers: tuple[LayerInfo, ...]  # trained in float; the converter quantizes them from calibration
    loss: str
    metric: str  # "accuracy" (percent), "mae", or with several outputs "loss" (the sum of theirs)
    train_samples: int
    epochs: tuple[EpochRecord, ...]
    calibration_samples: int
    fixed_batch: bool
    tflite: FileDigest | None  # path as the request gave it
    seconds: dict[str, float]  # by stage
    tool_versions: dict[str, str]


# --- reading and writing the two files --------------------------------------


def read_request(path: Path) -> QatRequest:
    """Read and validate a request; raise ModelError naming the file and every bad field."""
    request = _read_checked(QatRequest, path)
    if problems := request.problems():
        raise ModelError("\n".join(f"{path}: {problem}" for problem in problems))
    return request


def read_result(path: Path) -> QatResult:
    """Read a result the QAT process wrote; validate it and the digest of the .tflite it names."""
    result = _read_checked(QatResult, path)
    if result.schema_version != SCHEMA_VERSION:
        raise ModelError(f"{path}: schema_version: expected {SCHEMA_VERSION}, got {result.schema_version}")
    if result.stage not in STAGES:
        raise ModelError(f"{path}: stage: expected one of {', '.join(STAGES)}, got {result.stage!r}")
    if result.status is QatStatus.OK:
        if result.tflite is None:
            raise ModelError(f"{path}: tflite: an OK result must name its .tflite")
        tflite = Path(result.tflite.path)
        actual = hashlib.sha256(tflite.read_bytes()).hexdigest() if tflite.is_file() else "missing"
        if actual != result.tflite.sha256:
            raise ModelError(f"{path}: tflite.sha256: {tflite} has sha256 {actual}, not {result.tflite.sha256}")
    return result


def write_json(path: Path, value: Any) -> None:
    from gate.files import write_atomic

    write_atomic(path, dumps(to_jsonable(value)))


def _read_checked(cls: type, path: Path) -> Any:
    """A request or result file, validated like every result read back from disk (gate.encoding.load_result)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{path}: is not a readable JSON file ({type(exc).__name__}: {exc})") from None
    try:
        return load_result(cls, data)
    except InvalidResult as exc:
        raise ModelError(f"{path}: {exc}") from None


def read_arrays(path: Path, what: str) -> dict[str, np.ndarray]:
    """The numeric arrays of an .npz file gate wrote (never unpickled)."""
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: the {what} file is missing or not an .npz archive")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    if bad := [key for key, array in arrays.items() if array.dtype.kind not in "biuf"]:
        raise ModelError(f"{path}: the {what} file holds non-numeric arrays {bad}")
    return arrays


# --- the parent's side ------------------------------------------------------


def write_keras3_reference(
    model: Any,
    eval_inputs: Mapping[str, np.ndarray],
    *,
    weights_path: Path,
    reference_path: Path,
    batch_size: int = 256,
) -> None:
    """Save a Keras 3 model's weights, and its float outputs on the eval inputs, for the QAT process.

    `weights_path` gets each layer's `get_weights()` as "<layer name>/<index>";
    `reference_path` gets the inputs as "x.<input name>" and the outputs as
    "outputs" (several: "outputs.<Keras output name>"). The QAT process rebuilds the model in tf-keras from these
    weights and must reproduce these outputs before it trains.
    """
    np.savez(
        weights_path, **{f"{layer.name}/{i}": w for layer in model.layers for i, w in enumerate(layer.get_weights())}
    )
    names = [tensor.name.split(":")[0] for tensor in model.inputs]
    samples = len(eval_inputs[names[0]])
    keys = [f"outputs.{name}" for name in model.output_names] if (several := len(model.outputs) > 1) else ["outputs"]
    outputs: list[list[np.ndarray]] = []
    for start in range(0, samples, batch_size):
        batch = [np.asarray(eval_inputs[name][start : start + batch_size]) for name in names]
        values = model(batch if len(batch) > 1 else batch[0], training=False)
        outputs.append([np.asarray(value) for value in values] if several else [np.asarray(values)])
    arrays: dict[str, Any] = {f"x.{name}": eval_inputs[name] for name in names}
    arrays |= {key: np.concatenate([batch[i] for batch in outputs]) for i, key in enumerate(keys)}
    np.savez(reference_path, **arrays)


def run_qat(
    request: QatRequest,
    *,
    request_path: Path,
    timeout_seconds: float = 1800,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    python: str = sys.executable,
) -> QatResult:
    """Run `python -m gate.quantization.qat.train` on `request`; a crash or a timeout becomes a FAILED result.

    It never raises.

    Lines the QAT process prints starting with "qat:" go to `progress` as they
    come; the rest of its stderr (TensorFlow's logs, a traceback) is kept for
    the reason of a FAILED result.
    """
    write_json(request_path, request)
    result_path = Path(request.result_path)
    result_path.unlink(missing_ok=True)
    environment = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "3", "ABSL_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [python, "-P", "-m", "gate.quantization.qat.train", str(request_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        # The worker's process group: when gate.scheduling.scheduler kills the worker (a limit, an interrupted run),
        # this ends too.
        # The converter runs inside this process, so a kill of the process ends it.
    )
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        try:
            process.kill()
        except ProcessLookupError:  # it ended just now
            pass

    timer = threading.Timer(timeout_seconds, stop)
    timer.start()
    log: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            line = line.rstrip("\n")
            if line.startswith("qat:"):
                progress(line)
            else:
                log.append(line)
        code = process.wait()
    finally:
        timer.cancel()
    if code == 0 and result_path.is_file():
        return read_result(result_path)
    partial = _partial(result_path)
    stage = partial.stage if partial else "unknown"
    if timed_out.is_set():
        reason = f"QAT took longer than {timeout_seconds:g} s (stopped during the {stage} stage)"
    elif code < 0:
        name = signal.Signals(-code).name
        culprit = "the TFLite converter" if stage == "convert" else "the QAT process"
        reason = f"{culprit} crashed with {name} during the {stage} stage"
    else:
        last = next((line for line in reversed(log) if line.strip()), "no output")
        reason = f"internal error in gate.quantization.qat.train (exit code {code}): {last[:300]}"
    base = partial or _empty_result(stage if stage in STAGES else "inspect")
    return dataclasses.replace(base, status=QatStatus.FAILED, reason=reason, tflite=None)


def _partial(path: Path) -> QatResult | None:
    """The result the QAT process wrote before converting, if it got that far."""
    try:
        return read_result(path) if path.is_file() else None
    except ModelError:
        return None


def _empty_result(stage: str) -> QatResult:
    return QatResult(
        schema_version=SCHEMA_VERSION, status=QatStatus.FAILED, reason="", stage=stage, source_writer="", rebuilt=False,
        faithfulness=None, annotated_layers=(), unannotated_layers=(), loss="", metric="", train_samples=0, epochs=(),
        calibration_samples=0, fixed_batch=False, tflite=None, seconds={}, tool_versions={},
    )  # fmt: skip


# --- the qat-int8 candidate of gate.quantization.methods ---------------------------------


def build(saved_model_dir: Path, setup: Setup) -> Built:
    """Train with QAT in its own process and return its full-int8 .tflite, with how it was made.

    Runs in gate's worker; `setup.training` holds what the pipeline loaded. A model QAT cannot
    be done for is NotApplicable (its candidate is skipped with the reason); a run that
    crashed or timed out is a ModelError (its candidate fails with the reason).
    """
    training = setup.training
    assert training is not None  # the pipeline always gives it
    model = training.model
    scratch = training.scratch / "qat"
    scratch.mkdir(exist_ok=True)
    if training.model_format == "saved_model":
        raise NotApplicable("QAT trains a Keras model, and a SavedModel is not one: commit model.keras to train it")
    if training.train_file is None or not training.train_labels:
        labels = ", ".join(f"y.{name}" for name, task in training.outputs if TASKS[task].needs_labels) or "y"
        raise NotApplicable(f"QAT trains on train.npz with labels (x and {labels}), and the model folder has none")
    references: dict[str, Any] = {}
    if model.keras_model is not None:  # Keras 3: the QAT process rebuilds it in tf-keras from these
        references = {"weights_path": str(scratch / "weights.npz"), "reference_path": str(scratch / "reference.npz")}
        write_keras3_reference(model.keras_model, training.eval_inputs, weights_path=scratch / "weights.npz",
                               reference_path=scratch / "reference.npz")  # fmt: skip
    request = QatRequest(
        model_path=str(training.model_file), train_path=str(training.train_file),
        input_names=tuple(s.name for s in model.inputs), task=setup.task, tflite_path=str(scratch / "qat.tflite"),
        result_path=str(scratch / "result.json"), epochs=training.epochs, learning_rate=training.learning_rate,
        batch_size=training.batch_size, calibration_samples=training.calibration_samples,
        input_dtype=setup.input_dtype, output_dtype=setup.output_dtype, fixed_batch=model.fixed_batch,
        unroll=training.unroll, outputs=training.outputs, **references,
    )  # fmt: skip
    # Below the candidate's own limit, so that a hang is reported with its stage rather than as a killed worker.
    timeout = max(1.0, training.candidate_timeout_s - 5)
    result = run_qat(request, request_path=scratch / "request.json", timeout_seconds=timeout,
                     progress=training.progress)  # fmt: skip
    if result.status is QatStatus.UNAVAILABLE:
        raise NotApplicable(result.reason)
    if result.status is QatStatus.FAILED:
        raise ModelError(result.reason)
    return Built(Path(request.tflite_path).read_bytes(), notes(result))


def notes(result: QatResult) -> tuple[str, ...]:
    """How the QAT candidate was made, for the report: faithfulness, epochs, layers left float."""
    lines = []
    if result.rebuilt and result.faithfulness:
        f = result.faithfulness
        lines.append(f"rebuilt in tf-keras from the Keras 3 model: outputs on {f.samples} eval samples at most "
                     f"{f.max_abs_diff:.2g} from the original's (tolerance {f.tolerance:g})")  # fmt: skip
    if result.epochs:
        last = result.epochs[-1]
        unit = "%" if result.metric == "accuracy" else ""
        figure = "" if result.metric == "loss" else f", {result.metric} {last.metric:.4g}{unit}"
        lines.append(f"{len(result.epochs)} epoch(s) of QAT on {result.train_samples} training samples (last epoch, "
                     f"on them: loss {last.loss:.4g}{figure})")  # fmt: skip
    if result.metric == "loss":
        lines.append(f"trained on every output at once: {result.loss}")
    if result.unannotated_layers:
        left = ", ".join(f"{layer.name} ({layer.class_name})" for layer in result.unannotated_layers[:8])
        more = f" and {len(result.unannotated_layers) - 8} more" if len(result.unannotated_layers) > 8 else ""
        lines.append(f"trained in float, not quantization-aware (tfmot cannot quantize them here): {left}{more}")
    lines.append(f"full-int8 conversion calibrated on the first {result.calibration_samples} training samples")
    return tuple(lines)
