"""The steps of a quantization-aware training run in tf-keras: load or rebuild, prove faithful, train, convert.

gate.quantization.qat.train runs them in order, in its own process, after it has set TF_USE_LEGACY_KERAS;
`Run` records what they found out, so that a result can be written at any step. Nothing here imports
TensorFlow at module level.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gate.discover import digest
from gate.environment import tool_versions
from gate.errors import ModelError, translated
from gate.quantization.qat.heads import PREDICT_BATCH, objective, objectives, predict_each, targets
from gate.quantization.qat.job import (
    SCHEMA_VERSION,
    EpochRecord,
    Faithfulness,
    LayerInfo,
    QatRequest,
    QatResult,
    QatStatus,
    read_arrays,
)
from gate.tasks import TASKS


def progress(line: str) -> None:
    print(f"qat: {line}", file=sys.stderr, flush=True)


@dataclass
class Run:
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


def train_file(request: QatRequest) -> Path:
    if request.train_path is None or not Path(request.train_path).is_file():
        where = request.train_path or str(Path(request.model_path).parent / "train.npz")
        raise ModelError(
            f"{where}: no such file; quantization-aware training fine-tunes the model on its training set, so add "
            "train.npz with the inputs (x) and labels (y)"
        )
    return Path(request.train_path)


def keras3_plan(path: Path, request: QatRequest):
    from gate.quantization.qat import rebuild

    if path.suffix != ".keras":
        raise ModelError(
            f'{path}: a Keras 3 .h5 file cannot be rebuilt for QAT; re-save it with model.save("model.keras")'
        )
    if request.weights_path is None:
        raise ModelError(f"{path}: a Keras 3 model needs its weights from the parent (weights_path) to be rebuilt")
    return rebuild.translate(rebuild.read_keras3_config(path), str(path))


def load_model(path: Path, plan, request: QatRequest, state: Run):
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


def unrolled(model):
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


def input_specs(model, request: QatRequest, path: Path):
    if len(model.outputs) != 1 and not request.outputs:
        from gate.inspection.signature import several_outputs

        raise several_outputs(str(path), len(model.outputs))
    if request.outputs and (wanted := [name for name, _task in request.outputs]) != list(model.output_names):
        raise ModelError(f"{path}: the model's outputs are {list(model.output_names)}, but the request names {wanted}")
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


def prove_faithful(model, inputs, request: QatRequest, *, required: bool) -> Faithfulness | None:
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
    wanted = [f"outputs.{name}" for name, _task in request.outputs] or ["outputs"]
    if missing := [key for key in (*keys.values(), *wanted) if key not in arrays]:
        raise ModelError(f"{path}: the reference file lacks {', '.join(missing)}")
    given = {s.name: arrays[keys[s.name]].astype(s.dtype) for s in inputs}
    if request.outputs:
        produced = {f"outputs.{name}": values for name, values in predict_each(model, given, inputs).items()}
    else:
        produced = {"outputs": _predict(model, given, inputs)}
    differences = []
    for key in wanted:
        reference, outputs = arrays[key].astype(np.float64), produced[key].astype(np.float64)
        if outputs.shape != reference.shape:
            named = f"output {key.removeprefix('outputs.')!r} has" if request.outputs else "outputs have"
            raise ModelError(f"the tf-keras model's {named} shape {outputs.shape}, the original's {reference.shape}")
        differences.append(float(np.max(np.abs(outputs - reference))) if outputs.size else 0.0)
    difference = float(np.max(differences))  # NaN stays NaN
    if not difference <= request.tolerance:  # also catches NaN
        raise ModelError(
            f"the tf-keras rebuild is not faithful: its outputs differ from the original Keras 3 model's by up to "
            f"{difference:.3g} on the {len(reference)} eval inputs (tolerance {request.tolerance:g}); gate will not "
            "train a model it cannot show to be the same"
        )
    return Faithfulness(samples=len(reference), max_abs_diff=difference, tolerance=request.tolerance)


def fit(qat_model, model, train, request: QatRequest, state: Run) -> None:
    import tf_keras

    y: Any  # the training targets: one array, or a list of one per output
    if request.outputs:  # several: every output at once, each with its own loss
        loss, y, state.loss = objectives(model, train, request, _model_inputs(model))
        metric, state.metric = None, "loss"
    else:
        task = TASKS[request.task]
        sample = {name: array[:PREDICT_BATCH] for name, array in train.inputs.items()}
        scores = None if task.qat_loss == "mae" else _predict(model, sample, _model_inputs(model))
        loss, metric, state.loss, state.metric = objective(task, scores)
        y = targets(task, train.labels, width=qat_model.outputs[0].shape[-1])
    qat_model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate=request.learning_rate),
        loss=loss,
        metrics=[metric] if metric else None,
    )
    x = [train.inputs[s.name] for s in _model_inputs(qat_model)]
    scale = 100.0 if state.metric == "accuracy" else 1.0

    class EpochLine(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            seconds = round(time.perf_counter() - self.start, 3)
            figure = float(logs[metric.name] if metric else logs["loss"]) * scale
            record = EpochRecord(epoch + 1, float(logs["loss"]), figure, seconds)
            state.epochs.append(record)
            shown = f"{record.metric:.2f}%" if state.metric == "accuracy" else f"{record.metric:.4g}"
            beside = "" if state.metric == "loss" else f"  {state.metric} {shown}"  # several outputs: the loss is it
            progress(f"epoch {record.epoch}/{request.epochs}  loss {record.loss:.4f}{beside}  {seconds:.1f} s")

    qat_model.fit(
        x if len(x) > 1 else x[0],
        y,
        epochs=request.epochs,
        batch_size=request.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[EpochLine()],
    )


def convert_to_int8(qat_model, inputs, train, request: QatRequest, state: Run) -> bytes:
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
