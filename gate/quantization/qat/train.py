"""Quantization-aware training (method "qat-int8"): `python -m gate.quantization.qat.train REQUEST.json`.

Fine-tunes a model with tfmot's quantization-aware training on its train.npz
(never on the eval set), then converts it to a full-int8 .tflite. tfmot works
only with tf-keras, so this runs in a process of its own, with
TF_USE_LEGACY_KERAS=1 set before anything imports TensorFlow; the parent
builds the request and reads the result with gate.quantization.qat.job.

- A Keras 3 model is rebuilt in tf-keras from its config (gate.quantization.qat.rebuild)
  with the weights the parent saved, and must reproduce the original's outputs
  on the eval inputs within the request's tolerance before it is trained.
- Layers tfmot cannot quantize (LSTM, Conv1D, Rescaling, Attention...) are left
  unannotated and listed; the converter quantizes them from the calibration data.
- Where QAT cannot be done (no train.npz, no labels, a subclassed or nested
  model, a layer gate cannot rebuild) the result says why, and the process exits 0.
- The result is written once before conversion, so that when the TFLite
  converter crashes (it has died with SIGSEGV on a BiLSTM) the parent still
  has the training figures.

Exit codes: 0 with a result (OK or UNAVAILABLE), 1 for a bug in gate (traceback
on stderr), 2 for an unreadable request.
"""

import os

# Before anything imports TensorFlow: tf.keras and tfmot then use tf-keras (Keras 2).
# Nothing gate.quantization.qat.train imports below imports TensorFlow at module level (tests/test_qat.py checks).
os.environ["TF_USE_LEGACY_KERAS"] = "1"

import dataclasses
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gate.discover import digest
from gate.environment import tool_versions
from gate.errors import ModelError, translated
from gate.quantization.qat.job import (
    SCHEMA_VERSION,
    EpochRecord,
    Faithfulness,
    LayerInfo,
    QatRequest,
    QatResult,
    QatStatus,
    read_arrays,
    read_request,
    write_json,
)
from gate.tasks import TASKS

PREDICT_BATCH = 256


def progress(line: str) -> None:
    print(f"qat: {line}", file=sys.stderr, flush=True)


@dataclass
class _Run:
    """What a run has found out so far: enough for a result at any stage."""

    request: QatRequest
    stage: str = "inspect"
    source_writer: str = ""
    rebuilt: bool = False
    faithfulness: Faithfulness | None = None
    annotated: tuple[LayerInfo, ...] = ()
    unannotated: tuple[LayerInfo, ...] = ()
    loss: str = ""
    metric: str = ""
    train_samples: int = 0
    epochs: list[EpochRecord] = field(default_factory=list)
    calibration_samples: int = 0
    fixed_batch: bool = False
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        self.stage = stage
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = round(time.perf_counter() - start, 3)

    def result(self, status: QatStatus, reason: str = "", tflite: Path | None = None) -> QatResult:
        return QatResult(
            schema_version=SCHEMA_VERSION,
            status=status,
            reason=reason,
            stage=self.stage,
            source_writer=self.source_writer,
            rebuilt=self.rebuilt,
            faithfulness=self.faithfulness,
            annotated_layers=self.annotated,
            unannotated_layers=self.unannotated,
            loss=self.loss,
            metric=self.metric,
            train_samples=self.train_samples,
            epochs=tuple(self.epochs),
            calibration_samples=self.calibration_samples,
            fixed_batch=self.fixed_batch,
            tflite=dataclasses.replace(digest(tflite, tflite.parent), path=str(tflite)) if tflite else None,
            seconds=dict(self.seconds),
            tool_versions=tool_versions(),
        )


def run(request: QatRequest) -> QatResult:
    """Train and convert; a reason QAT cannot be done becomes an UNAVAILABLE result, never an exception."""
    state = _Run(request)
    try:
        return _run(request, state)
    except ModelError as exc:
        return state.result(QatStatus.UNAVAILABLE, str(exc))


def _run(request: QatRequest, state: _Run) -> QatResult:
    from gate.inspection import inspect_model

    total = time.perf_counter()
    model_path = Path(request.model_path)
    with state.timed("inspect"):
        inspection = inspect_model(model_path)
        state.source_writer = f"{inspection.writer} {inspection.writer_version}".strip()
        if inspection.format == "saved_model":
            raise ModelError(
                f"{model_path}: a SavedModel has no Keras layers for tfmot to wrap; quantization-aware training "
                "needs the model as model.keras or model.h5"
            )
        train_path = _train_path(request)
        # Translated before TensorFlow is imported: an architecture gate cannot rebuild is refused in a blink.
        plan = _keras3_plan(model_path, request) if inspection.writer == "keras" else None

    with state.timed("import tensorflow"):
        import tensorflow as tf
        import tf_keras

        tf_keras.utils.set_random_seed(request.seed)
        # Same request, same bytes: deterministic kernels (tests/test_qat.py compares two runs).
        tf.config.experimental.enable_op_determinism()

    with state.timed("load"):
        model = _load(model_path, plan, request, state)
        if request.unroll:  # before the faithfulness check, which then covers it too
            model = _unrolled(model)
        inputs = _input_specs(model, request, model_path)
        state.fixed_batch = request.fixed_batch or inspection.has_recurrent_layers
    progress(
        f"{'rebuilt in tf-keras' if state.rebuilt else 'loaded'}: {len(model.layers)} layers, "
        f"{state.seconds['load']:.1f} s"
    )

    with state.timed("faithfulness"):
        state.faithfulness = _faithfulness(model, inputs, request, required=state.rebuilt)
        if state.faithfulness:
            f = state.faithfulness
            progress(
                f"faithful: max |tf-keras - original| {f.max_abs_diff:.3g} <= {f.tolerance:g} on {f.samples} eval "
                "inputs"
            )

    with state.timed("data"):
        from gate.frontends import data

        try:
            train = data.load_dataset(
                train_path,
                model_folder=train_path.parent,
                inputs=inputs,
                task=request.task,
                output_width=int(model.outputs[0].shape[-1]),
                need_labels=True,
            )
        except ModelError as exc:
            raise ModelError(f"quantization-aware training needs labelled training data: {exc}") from None
        state.train_samples = train.samples

    with state.timed("annotate"):
        from gate.quantization.qat.annotate import annotate

        qat_model, state.annotated, state.unannotated = annotate(model, where=str(model_path))
        unannotated = ", ".join(f"{i.name} ({i.class_name})" for i in state.unannotated) or "none"
        progress(f"annotated {len(state.annotated)} layers; left in float: {unannotated}")

    with state.timed("train"):
        _train(qat_model, model, train, request, state)

    state.stage = "convert"
    write_json(Path(request.result_path), state.result(QatStatus.FAILED, "the process ended while converting"))
    with state.timed("convert"):
        blob = _convert(qat_model, inputs, train, request, state)
        tflite = Path(request.tflite_path)
        from gate.files import write_atomic

        write_atomic(tflite, blob)
    progress(f"converted to full-int8 .tflite: {len(blob)} bytes, {state.seconds['convert']:.1f} s")
    state.seconds["total"] = round(time.perf_counter() - total, 3)
    return state.result(QatStatus.OK, tflite=tflite)


def _train_path(request: QatRequest) -> Path:
    if request.train_path is None or not Path(request.train_path).is_file():
        where = request.train_path or str(Path(request.model_path).parent / "train.npz")
        raise ModelError(
            f"{where}: no such file; quantization-aware training fine-tunes the model on its training set, so add "
            "train.npz with the inputs (x) and labels (y)"
        )
    return Path(request.train_path)


def _keras3_plan(path: Path, request: QatRequest):
    from gate.quantization.qat import rebuild

    if path.suffix != ".keras":
        raise ModelError(
            f'{path}: a Keras 3 .h5 file cannot be rebuilt for QAT; re-save it with model.save("model.keras")'
        )
    if request.weights_path is None:
        raise ModelError(f"{path}: a Keras 3 model needs its weights from the parent (weights_path) to be rebuilt")
    return rebuild.translate(rebuild.read_keras3_config(path), str(path))


def _load(path: Path, plan, request: QatRequest, state: _Run):
    """The tf-keras model: a Keras 3 model rebuilt from its plan, a tf-keras file loaded as it is."""
    import tf_keras

    if plan is not None:
        from gate.quantization.qat import construct

        weights: dict[str, list[np.ndarray]] = {}
        assert request.weights_path is not None  # a Keras 3 model's request names them (QatRequest)
        for key, array in sorted(read_arrays(Path(request.weights_path), "weights").items(), key=_weight_order):
            weights.setdefault(key.rpartition("/")[0], []).append(array)
        state.rebuilt = True
        return construct.build(plan, weights, str(path))
    # tf-keras raises anything on a file it cannot read.
    with translated(
        lambda exc: f"{path}: tf-keras could not load it: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    ):
        model = tf_keras.models.load_model(path, compile=False, safe_mode=True)
    if not isinstance(model, tf_keras.Sequential) and not getattr(model, "_is_graph_network", False):
        raise ModelError(
            f"{path}: is a subclassed model ({type(model).__name__}); quantization-aware training needs a Sequential "
            "or "
            "Functional model, whose layers tfmot can wrap"
        )
    if nested := [layer.name for layer in model.layers if isinstance(layer, tf_keras.Model)]:
        raise ModelError(
            f"{path}: layer(s) {', '.join(nested)} are nested models; tfmot cannot quantize a model inside a model, "
            "so flatten it into one Sequential or Functional model"
        )
    return model


def _unrolled(model):
    """The tf-keras model with its recurrent layers unrolled: a fused LSTM would keep state between invokes."""
    import tf_keras

    from gate.frontends import keras
    from gate.quantization.qat import construct

    with tf_keras.utils.custom_object_scope(construct.keras3_activations()):
        return keras.unrolled(model, tf_keras)


def _weight_order(item: tuple[str, np.ndarray]) -> tuple[str, int]:
    layer, _, index = item[0].rpartition("/")
    return layer, int(index) if index.isdigit() else -1


def _model_inputs(model: Any) -> tuple:
    """The inputs of a tf_keras.Model, as gate.frontends.keras describes them."""
    from gate.frontends.base import InputSpec

    return tuple(InputSpec(t.name.split(":")[0], tuple(t.shape[1:]), np.dtype(t.dtype.name).name) for t in model.inputs)


def _input_specs(model, request: QatRequest, path: Path):
    if len(model.outputs) != 1:
        from gate.inspection.signature import several_outputs

        raise several_outputs(str(path), len(model.outputs))
    specs = _model_inputs(model)
    names = tuple(s.name for s in specs)
    if names != request.input_names:
        raise ModelError(
            f"{path}: the model's inputs are {list(names)}, but the request names {list(request.input_names)}"
        )
    return specs


def _predict(model, arrays: Mapping[str, np.ndarray], inputs) -> np.ndarray:
    samples = len(arrays[inputs[0].name])
    outputs = []
    for start in range(0, samples, PREDICT_BATCH):
        batch = [arrays[s.name][start : start + PREDICT_BATCH] for s in inputs]
        outputs.append(np.asarray(model(batch if len(batch) > 1 else batch[0], training=False)))
    return np.concatenate(outputs)


def _faithfulness(model, inputs, request: QatRequest, *, required: bool) -> Faithfulness | None:
    if request.reference_path is None:
        if required:
            raise ModelError(
                "a rebuilt model must be proven faithful before training: the request needs reference_path "
                "(the original model's outputs on the eval inputs)"
            )
        return None
    path = Path(request.reference_path)
    arrays = read_arrays(path, "reference")
    keys = {s.name: f"x.{s.name}" if f"x.{s.name}" in arrays else "x" for s in inputs}
    if missing := [key for key in (*keys.values(), "outputs") if key not in arrays]:
        raise ModelError(f"{path}: the reference file lacks {', '.join(missing)}")
    reference = arrays["outputs"].astype(np.float64)
    outputs = _predict(model, {s.name: arrays[keys[s.name]].astype(s.dtype) for s in inputs}, inputs).astype(np.float64)
    if outputs.shape != reference.shape:
        raise ModelError(f"the tf-keras model's outputs have shape {outputs.shape}, the original's {reference.shape}")
    difference = float(np.max(np.abs(outputs - reference))) if outputs.size else 0.0
    if not difference <= request.tolerance:  # also catches NaN
        raise ModelError(
            f"the tf-keras rebuild is not faithful: its outputs differ from the original Keras 3 model's by up to "
            f"{difference:.3g} on the {len(reference)} eval inputs (tolerance {request.tolerance:g}); gate will not "
            "train a model it cannot show to be the same"
        )
    return Faithfulness(samples=len(reference), max_abs_diff=difference, tolerance=request.tolerance)


def _loss_and_metric(model, train, request: QatRequest):
    """The training objective: cross-entropy on probabilities or logits, as the model outputs them; MAE (regression)."""
    import tf_keras

    if TASKS[request.task].qat_loss == "mae":
        return tf_keras.losses.MeanAbsoluteError(), tf_keras.metrics.MeanAbsoluteError(name="mae"), "mae", "mae"
    sample = {name: array[:PREDICT_BATCH] for name, array in train.inputs.items()}
    scores = _predict(model, sample, _model_inputs(model))
    probabilities = bool(np.all((scores >= 0) & (scores <= 1)))
    if scores.shape[-1] > 1:
        probabilities = probabilities and bool(np.allclose(scores.sum(axis=-1), 1, atol=1e-3))
        loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)
        metric = tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        name = "sparse_categorical_crossentropy"
    else:
        loss = tf_keras.losses.BinaryCrossentropy(from_logits=not probabilities)
        metric = tf_keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.5 if probabilities else 0.0)
        name = "binary_crossentropy"
    return loss, metric, f"{name} ({'probabilities' if probabilities else 'logits'})", "accuracy"


def _train(qat_model, model, train, request: QatRequest, state: _Run) -> None:
    import tf_keras

    loss, metric, state.loss, state.metric = _loss_and_metric(model, train, request)
    qat_model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate=request.learning_rate), loss=loss, metrics=[metric]
    )
    x = [train.inputs[s.name] for s in _model_inputs(qat_model)]
    if TASKS[request.task].qat_loss == "mae":
        y = train.labels.astype(np.float32)
    elif qat_model.outputs[0].shape[-1] == 1:  # one sigmoid unit: binary cross-entropy on 0/1 targets
        y = train.labels.astype(np.float32).reshape(-1, 1)
    else:
        y = train.labels
    scale = 100.0 if state.metric == "accuracy" else 1.0

    class EpochLine(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            seconds = round(time.perf_counter() - self.start, 3)
            record = EpochRecord(epoch + 1, float(logs["loss"]), float(logs[metric.name]) * scale, seconds)
            state.epochs.append(record)
            shown = f"{record.metric:.2f}%" if state.metric == "accuracy" else f"{record.metric:.4g}"
            progress(
                f"epoch {record.epoch}/{request.epochs}  loss {record.loss:.4f}  {state.metric} {shown}  "
                f"{seconds:.1f} s"
            )

    qat_model.fit(
        x if len(x) > 1 else x[0],
        y,
        epochs=request.epochs,
        batch_size=request.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[EpochLine()],
    )


def _convert(qat_model, inputs, train, request: QatRequest, state: _Run) -> bytes:
    import tensorflow as tf

    from gate.quantization import convert
    from gate.quantization.base import Setup

    # Recurrent layers convert only with a static batch: with a dynamic one the
    # converter fails on "'tf.TensorListReserve' op requires element_shape to be static".
    batch = 1 if state.fixed_batch else None
    specs = [tf.TensorSpec((batch, *s.shape), tf.dtypes.as_dtype(s.dtype), name=s.name) for s in inputs]
    serve = tf.function(lambda *xs: qat_model(list(xs) if len(xs) > 1 else xs[0], training=False))
    calibration = {name: array[: request.calibration_samples] for name, array in train.inputs.items()}
    state.calibration_samples = len(next(iter(calibration.values())))
    with tempfile.TemporaryDirectory(prefix="gate-qat-") as scratch:
        tf.saved_model.save(qat_model, scratch, signatures=serve.get_concrete_function(*specs))
        setup = Setup(input_dtype=request.input_dtype, output_dtype=request.output_dtype, calibration=calibration)
        return convert.convert(Path(scratch), method="int8", setup=setup).tflite


def main(argv: list[str] | None = None) -> int:
    """`python -m gate.quantization.qat.train REQUEST.json`: run it, write the result (exit codes: module docstring)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m gate.quantization.qat.train REQUEST.json", file=sys.stderr)
        return 2
    try:
        request = read_request(Path(argv[0]))
    except ModelError as exc:
        print(f"gate.quantization.qat.train: {exc}", file=sys.stderr)
        return 2
    try:
        result = run(request)
    except Exception:  # a bug in gate: the traceback goes to stderr for the parent's log
        traceback.print_exc()
        return 1
    write_json(Path(request.result_path), result)
    if result.status is not QatStatus.OK:
        progress(f"not trained: {result.reason.splitlines()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
