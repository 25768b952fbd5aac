"""Load an inspected model and its data.

Only called after `gate.inspection` has accepted the model file: loading a Keras
or SavedModel file can run code. TensorFlow and Keras are imported here, in
the per-model worker, never at `import gate`.
"""

from __future__ import annotations

import os
import sys
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gate.discover import digest
from gate.errors import ModelError
from gate.inspection.signature import several_outputs
from gate.results import DataInfo

if TYPE_CHECKING:
    from gate.inspection import Inspection

PREDICT_BATCH = 256


@dataclass(frozen=True)
class InputSpec:
    """One model input: data for it comes from `x` (single input) or `x.<name>`."""

    name: str
    shape: tuple[int | None, ...]  # without the batch dimension
    dtype: str


@dataclass(frozen=True)
class LoadedModel:
    """The float model, ready to evaluate and to convert."""

    inputs: tuple[InputSpec, ...]
    output_width: int
    saved_model_dir: Path  # a SavedModel with a serving_default signature, for the converter
    fixed_batch: bool  # that signature takes a batch of exactly one
    predict: Callable[[dict[str, np.ndarray]], np.ndarray]  # one batch, inputs by name
    keras_model: Any = None  # the Keras 3 model itself (QAT rebuilds it in tf-keras from its weights); else None
    # The export that methods calibrating the model convert: a Keras 3 recurrent model's unrolled copy (int8
    # calibration crashes TensorFlow 2.21 on its WHILE loop, which keeps no state anyway); else saved_model_dir.
    calibrated_saved_model_dir: Path | None = None

    def export_for(self, calibrated: bool) -> Path:
        """The SavedModel a method converts: one that calibrates the model, or one that does not."""
        return (self.calibrated_saved_model_dir or self.saved_model_dir) if calibrated else self.saved_model_dir


@dataclass(frozen=True)
class Dataset:
    """Validated arrays from one .npz file."""

    inputs: dict[str, np.ndarray]  # by model input name, already in the input's dtype
    labels: np.ndarray | None  # class indices (classification) or targets (regression)
    info: DataInfo
    path: Path  # as the user names it, e.g. models/<name>/eval.npz

    @property
    def samples(self) -> int:
        return self.info.samples


def load_model(
    path: Path, inspection: Inspection, *, export_dir: Path, fixed_batch: bool, unroll: bool = True
) -> LoadedModel:
    """Load `path` with the Keras that wrote it (or TensorFlow for a SavedModel).

    `unroll`: export recurrent layers unrolled over their time steps (see `unrolled`).
    """
    try:
        _import_allowed_custom_objects(path, inspection.allowed_custom_objects)
        if inspection.format == "saved_model":
            return _load_saved_model(path)
        unroll = unroll and inspection.has_recurrent_layers
        if inspection.writer == "keras":
            return _load_keras3(path, export_dir, fixed_batch, unroll)
        return _load_tf_keras(path, export_dir, fixed_batch, unroll)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - Keras raises anything on a file it cannot read
        raise ModelError(
            f"{path}: could not be loaded: {_first_line(exc)}; re-save the model with model.save()"
        ) from None


def _import_allowed_custom_objects(path: Path, names: tuple[str, ...]) -> None:
    """Import the package of each custom object gate.toml allowed, so that it registers itself.

    Keras 3 never imports a module a file names (only registered objects are
    found), so the package named before ">" in the registered name is imported
    from the repository (the worker's working directory). The worker runs with
    PYTHONSAFEPATH set, so the repository is on sys.path only while the packages the
    manifest names are imported. gate.inspection has checked that the config
    names no module outside them.
    """
    import importlib

    if not names:
        return
    sys.path.insert(0, str(Path.cwd()))
    try:
        for name in names:
            package = name.split(">", 1)[0]
            try:
                importlib.import_module(package)
            except ImportError as exc:
                # "cannot import name 'X' from 'pkg' (/home/runner/work/.../pkg/__init__.py)": keep the disk out.
                reason = str(exc).replace(f"{Path.cwd()}{os.sep}", "")
                raise ModelError(
                    f"{path}: the allowed custom object {name!r} is registered in package {package!r}, which cannot "
                    f"be imported from the folder gate runs in ({reason}); run gate from the repository root that "
                    "holds it"
                ) from None
    finally:
        sys.path.remove(str(Path.cwd()))


def refuse_non_finite_weights(path: Path, weights: Iterable[tuple[str, np.ndarray]]) -> None:
    """Raise ModelError naming the first weight that holds NaN or infinity.

    Such a model cannot be quantized (no scale covers infinity; XNNPACK then fails with
    "unsupported scale value (inf)") and its float outputs are meaningless, so it is bad input.
    """
    for name, values in weights:
        if values.dtype.kind != "f" or np.isfinite(values).all():
            continue
        layer, _, weight = name.removesuffix(":0").rpartition("/")
        nan, infinite = int(np.isnan(values).sum()), int(np.isinf(values).sum())
        raise ModelError(
            f"{path}: weight '{weight}' of layer '{layer or '?'}' holds {nan} NaN and {infinite} infinite value(s) "
            f"among its {values.size}; the float model itself is broken: retrain it or fix that weight, then re-save"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _keras_specs(model, path: Path) -> tuple[InputSpec, ...]:  # noqa: ANN001 - a Keras 2 or 3 model
    if (
        len(model.outputs) != 1
    ):  # gate.inspection refuses it from the config already; this is for configs that do not say
        raise several_outputs(str(path), len(model.outputs))
    return tuple(
        InputSpec(tensor.name.split(":")[0], tuple(tensor.shape[1:]), np.dtype(_dtype_name(tensor.dtype)).name)
        for tensor in model.inputs
    )


def _dtype_name(dtype) -> str:  # noqa: ANN001 - str in Keras 3, tf.DType in tf-keras
    return getattr(dtype, "name", dtype)


def _tensor_specs(specs: tuple[InputSpec, ...], fixed_batch: bool):  # noqa: ANN202
    import tensorflow as tf

    # Recurrent layers only convert with a static batch: with a dynamic one the
    # converter fails with "'tf.TensorListReserve' op requires element_shape to be static".
    batch = 1 if fixed_batch else None
    return [tf.TensorSpec((batch, *s.shape), tf.dtypes.as_dtype(s.dtype), name=s.name) for s in specs]


def _batched_predict(model, specs: tuple[InputSpec, ...]) -> Callable[[dict[str, np.ndarray]], np.ndarray]:  # noqa: ANN001
    def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        ordered = [inputs[s.name] for s in specs]
        output = model(ordered if len(ordered) > 1 else ordered[0], training=False)
        return np.asarray(output)

    return predict


# Keras' recurrent layers with an `unroll` option; Bidirectional and TimeDistributed hold them in their configs.
UNROLLABLE = frozenset({"LSTM", "GRU", "SimpleRNN", "RNN"})


def unrolled(model: Any, keras_module: Any) -> Any:
    """A copy of a Keras 3 or tf-keras model with every recurrent layer unrolled; the model itself if none can be.

    As they are, recurrent layers convert to one fused op or a loop. A tf-keras LSTM becomes
    UNIDIRECTIONAL_SEQUENCE_LSTM, which keeps its state in variable tensors from one invoke to the next
    (digits_crnn's QAT file scored 10.56% run without resets, 97.22% with them). A Keras 3 one becomes a
    WHILE loop, which keeps no state, but whose int8 calibration crashes TensorFlow 2.21's converter
    (SIGSEGV, on every LSTM and GRU tried). Unrolled over a fixed number of time steps they are plain ops:
    no state, and int8 converts, in a larger file (digits_crnn int8: 92.8 KB against 20.8 KB fused).
    A layer that is stateful keeps its state on purpose and stays as it is; a layer whose number of time
    steps is not fixed cannot be unrolled, and the model stays as it is.
    """

    def unroll(config: Any) -> bool:
        """Mark every stateless recurrent layer of a config to be unrolled; whether there was one."""
        found = False
        if isinstance(config, dict):
            inner = config.get("config")
            if config.get("class_name") in UNROLLABLE and isinstance(inner, dict) and not inner.get("stateful"):
                inner["unroll"] = found = True
            children = list(config.values())
        else:
            children = config if isinstance(config, list) else []
        for child in children:
            found = unroll(child) or found
        return found

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        unroll({"class_name": type(layer).__name__, "config": config})
        return type(layer).from_config(config)

    if not unroll(model.get_config()):
        return model
    try:
        copy = keras_module.models.clone_model(model, clone_function=clone)
    except ValueError:  # "Cannot unroll a RNN if the time dimension is undefined"
        return model
    copy.set_weights(model.get_weights())
    return copy


def _load_keras3(path: Path, export_dir: Path, fixed_batch: bool, unroll: bool = False) -> LoadedModel:
    import keras

    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    refuse_non_finite_weights(path, ((w.path, w.numpy()) for w in model.weights))
    specs = _keras_specs(model, path)

    def export(exported: Any, folder: Path) -> Path:
        # keras' own ExportArchive freezes Keras 3 variables correctly; a hand-built
        # tf.Module around the model leaves READ_VARIABLE ops the calibrator cannot run.
        archive = keras.export.ExportArchive()
        archive.track(exported)
        archive.add_endpoint(
            "serving_default",
            lambda *xs: exported(list(xs) if len(xs) > 1 else xs[0], training=False),
            input_signature=_tensor_specs(specs, fixed_batch),
        )
        archive.write_out(str(folder), verbose=False)
        return folder

    # As it is, a Keras 3 recurrent layer is a WHILE loop: no state, a compact file, but no int8 calibration.
    copy = unrolled(model, keras) if unroll else model
    calibrated = export(copy, export_dir.with_name(f"{export_dir.name}-unrolled")) if copy is not model else None
    return LoadedModel(specs, int(model.outputs[0].shape[-1]), export(model, export_dir), fixed_batch,
                       _batched_predict(model, specs), model, calibrated)  # fmt: skip


def _load_tf_keras(path: Path, export_dir: Path, fixed_batch: bool, unroll: bool = False) -> LoadedModel:
    import tensorflow as tf
    import tf_keras

    model = tf_keras.models.load_model(path, compile=False, safe_mode=True)
    refuse_non_finite_weights(path, ((w.name, w.numpy()) for w in model.weights))
    if unroll:
        model = unrolled(model, tf_keras)
    specs = _keras_specs(model, path)
    serve = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    tf.saved_model.save(
        model, str(export_dir), signatures=serve.get_concrete_function(*_tensor_specs(specs, fixed_batch))
    )
    return LoadedModel(specs, int(model.outputs[0].shape[-1]), export_dir, fixed_batch, _batched_predict(model, specs))


def _load_saved_model(path: Path) -> LoadedModel:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    refuse_non_finite_weights(path, ((v.name, v.numpy()) for v in getattr(loaded, "variables", ())))
    if "serving_default" not in loaded.signatures:
        raise ModelError(
            f"{path}: has no serving_default signature; export it with model.export() or a signatures= argument"
        )
    serve = loaded.signatures["serving_default"]
    _args, kwargs = serve.structured_input_signature
    outputs = serve.structured_outputs
    if len(outputs) != 1:
        raise several_outputs(str(path), len(outputs))
    (output_spec,) = outputs.values()
    specs = tuple(InputSpec(name, tuple(spec.shape[1:]), spec.dtype.name) for name, spec in sorted(kwargs.items()))

    # Converted as it is: the gate cannot re-trace a SavedModel, so its signature's batch dimension stands.
    fixed_batch = all(spec.shape[0] == 1 for spec in kwargs.values())

    def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        samples = len(next(iter(inputs.values())))
        step = 1 if fixed_batch else samples
        batches = [
            serve(**{name: tf.constant(array[start : start + step]) for name, array in inputs.items()})
            for start in range(0, samples, step)
        ]
        return np.concatenate([next(iter(batch.values())).numpy() for batch in batches])

    return LoadedModel(specs, int(output_spec.shape[-1]), path, fixed_batch, predict)


def load_dataset(
    path: Path,
    *,
    model_folder: Path,
    inputs: tuple[InputSpec, ...],
    task: str,
    output_width: int | None,
    need_labels: bool,
    output_activation: str | None = None,
) -> Dataset:
    """Read and validate an .npz file against the model; raise ModelError naming every problem.

    `output_width` None: the model file does not say it (gate validate), so labels are not checked against it.
    `output_activation` (the model's last, when known) lets a label problem suggest what the model is.
    """
    where = path  # as the user named it: models/<name>/eval.npz
    arrays = _read_npz(path, where)
    problems: list[str] = []
    if len(inputs) == 1:
        allowed_x = {"x": inputs[0], f"x.{inputs[0].name}": inputs[0]}
    else:
        allowed_x = {f"x.{spec.name}": spec for spec in inputs}
    allowed = set(allowed_x) | {"y"}
    for key in sorted(set(arrays) - allowed):
        problems.append(f"{where}: unexpected array '{key}'; expected {', '.join(sorted(allowed))}")

    features: dict[str, np.ndarray] = {}
    in_file: dict[str, str] = {}  # model input name -> the array's name in the file
    for spec in inputs:
        keys = [k for k, s in allowed_x.items() if s is spec and k in arrays]
        if not keys:
            expected = " or ".join(k for k, s in allowed_x.items() if s is spec)
            problems.append(f"{where}: no array for model input '{spec.name}'; add it as {expected}")
            continue
        array, problem = _check_features(where, keys[0], arrays[keys[0]], spec)
        if problem:
            problems.append(problem)
        else:
            features[spec.name], in_file[spec.name] = array, keys[0]

    labels = None
    if "y" in arrays:
        checked, problem = _check_labels(where, arrays["y"], task, output_width, output_activation)
        if problem:
            problems.append(problem)
        else:
            labels = checked
    elif need_labels:
        problems.append(
            f"{where}: no array 'y'; add the labels (class indices or one-hot for classification, targets for "
            "regression)"
        )

    counts = {in_file[name]: len(a) for name, a in features.items()} | (
        {"y": len(labels)} if labels is not None else {}
    )
    if not problems and len(set(counts.values())) > 1:
        held = ", ".join(f"{key} has {count}" for key, count in counts.items())
        problems.append(
            f"{where}: arrays hold different numbers of samples ({held}); every array needs one row per sample"
        )
    if not problems and not next(iter(counts.values()), 0):
        problems.append(f"{where}: holds no samples; add at least one")
    if problems:
        raise ModelError("\n".join(problems))
    samples = len(next(iter(features.values())))
    return Dataset(features, labels, DataInfo(file=digest(path, model_folder), samples=samples), path)


def _read_npz(path: Path, where: Path) -> dict[str, np.ndarray]:
    unreadable = f"{where}: is not a readable .npz file ({{}}); write it with numpy.savez"
    # np.load treats anything that is neither a zip nor an .npy as a pickle: rule that out first.
    if not zipfile.is_zipfile(path):
        raise ModelError(unreadable.format("not a zip archive"))
    try:
        # allow_pickle=False: an object array in an .npz is a pickle, and unpickling runs code.
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise ModelError(
                f"{where}: holds a pickled (object) array, which could run code when loaded; save only numeric arrays"
            ) from None
        raise ModelError(unreadable.format(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a damaged archive raises zlib, struct, OSError, EOFError...
        raise ModelError(unreadable.format(f"{type(exc).__name__}: {exc}")) from None
    # np.load hands back the raw bytes of a member that is not an .npy file.
    not_arrays = [key for key, value in arrays.items() if not isinstance(value, np.ndarray)]
    if not_arrays:
        raise ModelError(
            f"{where}: entry {', '.join(map(repr, not_arrays))} is not a NumPy array; write the file with numpy.savez"
        )
    return arrays


def _check_features(where: Path, key: str, array: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, str | None]:
    if array.dtype.kind not in "biuf":
        return array, f"{where}: {key} has dtype {array.dtype}; expected numbers (int, uint or float)"
    if array.ndim != len(spec.shape) + 1 or any(
        want is not None and have != want for have, want in zip(array.shape[1:], spec.shape, strict=False)
    ):
        expected = "(samples, " + ", ".join("any" if d is None else str(d) for d in spec.shape) + ")"
        return array, f"{where}: {key} has shape {array.shape}; model input '{spec.name}' expects {expected}"
    # Checked on the stored values, before the cast to the input's dtype: a cast to an integer dtype turns NaN
    # and infinity into -2147483648 (int32) or 0 (uint8), 3.7 into 3 and 300 into 44 (uint8), all silently.
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        return array, f"{where}: {key} contains NaN or infinite values; remove or impute them"
    target = np.dtype(spec.dtype)
    takes = f"model input '{spec.name}' takes {target.name}"
    if target.kind in "iu" and array.dtype.kind == "f" and (fractional := array[np.mod(array, 1) != 0]).size:
        return array, (
            f"{where}: {key} holds {fractional.size} value(s) that are not whole numbers (e.g. {fractional[0]:g}); "
            f"{takes}, so they would be truncated: store the whole numbers the model expects (token ids, indices)"
        )
    limits = np.iinfo(target) if target.kind in "iu" else np.finfo(target) if target.kind == "f" else None
    if limits is not None and array.size and (array.min() < limits.min or array.max() > limits.max):
        outside = array.min() if array.min() < limits.min else array.max()
        return array, (
            f"{where}: {key} holds {outside:g}, outside the range of {target.name} ({limits.min:g} to "
            f"{limits.max:g}); {takes}, so it would wrap around or overflow: store values in that range"
        )
    return array.astype(target), None


def _check_labels(
    where: Path, y: np.ndarray, task: str, output_width: int | None, output_activation: str | None
) -> tuple[np.ndarray, str | None]:
    if y.dtype.kind not in "biuf":
        return y, f"{where}: y has dtype {y.dtype}; expected numbers"
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        return y, f"{where}: y contains NaN or infinite values; remove those samples"
    if task == "regression":
        if output_width is None or y.ndim == 1 and output_width == 1 or y.ndim == 2 and y.shape[1] == output_width:
            return y.astype(np.float64).reshape(len(y), -1), None
        return (
            y,
            f"{where}: y has shape {y.shape}; the model has {output_width} output(s), so expected (samples, "
            f"{output_width})",
        )
    one_hot_width = max(output_width or 0, 2)
    if y.ndim == 2 and y.shape[1] > 1 and (output_width is None or y.shape[1] == one_hot_width):
        y = np.argmax(y, axis=1)  # one-hot
    elif y.ndim != 1:
        return (
            y,
            f"{where}: y has shape {y.shape}; expected class indices (samples,) or one-hot (samples, "
            f"{output_width or 'classes'})",
        )
    # A model that ends in one linear unit predicts a number: labels that are no classes of it mean a regression model.
    regression = output_width == 1 and output_activation == "linear"
    if not np.all(np.equal(np.mod(y, 1), 0)):
        if regression:
            return y, (
                f"{where}: y holds non-integer values, and the model ends in one linear unit, as a regression model "
                'does: set task = "regression" in gate.toml (classification needs class indices)'
            )
        return (
            y,
            f"{where}: y holds non-integer values; classification needs class indices (for a regression model set "
            'task = "regression" in gate.toml)',
        )
    labels = y.astype(np.int64)
    if output_width is None:
        return labels, None
    classes = max(output_width, 2)  # one sigmoid unit scores two classes
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        label = labels.max() if labels.max() >= classes else labels.min()
        if regression:
            return y, (
                f"{where}: y holds class {label}, but the model scores classes 0..{classes - 1} and ends in one "
                'linear unit, as a regression model does: if it predicts a number, set task = "regression" in '
                "gate.toml; if it is a classifier, fix the labels or the model's output layer"
            )
        return (
            y,
            f"{where}: y holds class {label}, but the model scores classes 0..{classes - 1}; fix the labels or the "
            "model's output layer",
        )
    return labels, None
