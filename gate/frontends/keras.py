"""The Keras frontend: load an inspected .keras, .h5 or SavedModel and export the SavedModel the methods convert.

Only called after `gate.inspection` has accepted the model file: loading a Keras
or SavedModel file can run code. TensorFlow and Keras are imported here, in
the per-model worker, never at `import gate`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gate.discover import MODEL_FILES, import_from_repository
from gate.errors import ModelError, translated
from gate.frontends.base import InputSpec, LoadedModel
from gate.inspection.signature import several_outputs

if TYPE_CHECKING:
    from gate.inspection import Inspection


def load_model(
    path: Path, inspection: Inspection, *, export_dir: Path, fixed_batch: bool, unroll: bool = True
) -> LoadedModel:
    """Load `path` with the Keras that wrote it (or TensorFlow for a SavedModel).

    `unroll`: export recurrent layers unrolled over their time steps (see `unrolled`).
    """
    # Keras raises anything on a file it cannot read.
    with translated(
        lambda exc: f"{path}: could not be loaded: {_first_line(exc)}; re-save the model with model.save()"
    ):
        _import_allowed_custom_objects(path, inspection.allowed_custom_objects)
        # Its file declares several outputs (gate.inspection), which are gated one by one.
        named_outputs = bool(inspection.signature and inspection.signature.outputs)
        if inspection.format == "saved_model":
            return _load_saved_model(path, named_outputs=named_outputs)
        unroll = unroll and inspection.has_recurrent_layers
        if inspection.writer == "keras":
            return _load_keras3(path, export_dir, fixed_batch, unroll, named_outputs=named_outputs)
        return _load_tf_keras(path, export_dir, fixed_batch, unroll, named_outputs=named_outputs)


def _import_allowed_custom_objects(path: Path, names: tuple[str, ...]) -> None:
    """Import the package of each custom object gate.toml allowed, so that it registers itself.

    Keras 3 never imports a module a file names (only registered objects are
    found), so the package named before ">" in the registered name is imported
    from the repository (the worker's working directory) by its file: the worker
    runs with PYTHONSAFEPATH set, and the repository is never put on sys.path
    (gate.discover.import_from_repository). gate.inspection has checked that the
    config names no module outside them.
    """
    for name in names:
        package = name.split(">", 1)[0]
        try:
            import_from_repository(package, Path.cwd())
        except ImportError as exc:
            # "cannot import name 'X' from 'pkg' (/home/runner/work/.../pkg/__init__.py)": keep the disk out.
            reason = str(exc).replace(f"{Path.cwd()}{os.sep}", "")
            raise ModelError(
                f"{path}: the allowed custom object {name!r} is registered in package {package!r}, which cannot "
                f"be imported from the folder gate runs in ({reason}); run gate from the repository root that "
                "holds it"
            ) from None


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


def _keras_specs(model, path: Path, *, several: bool = False) -> tuple[InputSpec, ...]:  # a Keras 2 or 3 model
    # Several outputs are gated when the config names them (gate.inspection); this is for configs that do not say.
    if len(model.outputs) != 1 and not several:
        raise several_outputs(str(path), len(model.outputs))
    return tuple(
        InputSpec(tensor.name.split(":")[0], tuple(tensor.shape[1:]), np.dtype(_dtype_name(tensor.dtype)).name)
        for tensor in model.inputs
    )


def _dtype_name(dtype) -> str:  # str in Keras 3, tf.DType in tf-keras
    return getattr(dtype, "name", dtype)


def _tensor_specs(specs: tuple[InputSpec, ...], fixed_batch: bool):
    import tensorflow as tf

    # Recurrent layers only convert with a static batch: with a dynamic one the
    # converter fails with "'tf.TensorListReserve' op requires element_shape to be static".
    batch = 1 if fixed_batch else None
    return [tf.TensorSpec((batch, *s.shape), tf.dtypes.as_dtype(s.dtype), name=s.name) for s in specs]


def _batched_predict(model, specs: tuple[InputSpec, ...]) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        ordered = [inputs[s.name] for s in specs]
        output = model(ordered if len(ordered) > 1 else ordered[0], training=False)
        return np.asarray(output)

    return predict


def _predict_each(model, specs: tuple[InputSpec, ...]) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """A Keras 3 or tf-keras model with several outputs: each output on one batch, by its Keras name."""

    def predict(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ordered = [inputs[s.name] for s in specs]
        outputs = model(ordered if len(ordered) > 1 else ordered[0], training=False)
        return {name: np.asarray(output) for name, output in zip(model.output_names, outputs, strict=True)}

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


def _load_keras3(
    path: Path, export_dir: Path, fixed_batch: bool, unroll: bool = False, *, named_outputs: bool = False
) -> LoadedModel:
    import keras

    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    refuse_non_finite_weights(path, ((w.path, w.numpy()) for w in model.weights))
    specs = _keras_specs(model, path, several=named_outputs)
    several = len(model.outputs) > 1

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
    return LoadedModel(
        specs,
        int(model.outputs[0].shape[-1]),
        export(model, export_dir),
        fixed_batch,
        _batched_predict(model, specs),
        model,
        calibrated,
        predict_each=_predict_each(model, specs) if several else None,
    )


def _load_tf_keras(
    path: Path, export_dir: Path, fixed_batch: bool, unroll: bool = False, *, named_outputs: bool = False
) -> LoadedModel:
    import tensorflow as tf
    import tf_keras

    model = tf_keras.models.load_model(path, compile=False, safe_mode=True)
    refuse_non_finite_weights(path, ((w.name, w.numpy()) for w in model.weights))
    if unroll:
        model = unrolled(model, tf_keras)
    specs = _keras_specs(model, path, several=named_outputs)
    # Several outputs export as a list: the signature calls them output_0, output_1... (gate.measurement.outputs).
    serve = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    tf.saved_model.save(
        model, str(export_dir), signatures=serve.get_concrete_function(*_tensor_specs(specs, fixed_batch))
    )
    return LoadedModel(
        specs,
        int(model.outputs[0].shape[-1]),
        export_dir,
        fixed_batch,
        _batched_predict(model, specs),
        predict_each=_predict_each(model, specs) if len(model.outputs) > 1 else None,
    )


def _load_saved_model(path: Path, *, named_outputs: bool = False) -> LoadedModel:
    """`named_outputs`: its signature's several outputs are gated one by one, each named by its key."""
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
    if len(outputs) != 1 and not named_outputs:
        raise several_outputs(str(path), len(outputs))
    names = sorted(outputs)  # as gate.inspection.signature orders them
    specs = tuple(InputSpec(name, tuple(spec.shape[1:]), spec.dtype.name) for name, spec in sorted(kwargs.items()))

    # Converted as it is: the gate cannot re-trace a SavedModel, so its signature's batch dimension stands.
    fixed_batch = all(spec.shape[0] == 1 for spec in kwargs.values())

    def predict_each(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        samples = len(next(iter(inputs.values())))
        step = 1 if fixed_batch else samples
        batches = [
            serve(**{name: tf.constant(array[start : start + step]) for name, array in inputs.items()})
            for start in range(0, samples, step)
        ]
        return {name: np.concatenate([batch[name].numpy() for batch in batches]) for name in names}

    return LoadedModel(
        specs,
        int(outputs[names[0]].shape[-1]),
        path,
        fixed_batch,
        lambda inputs: predict_each(inputs)[names[0]],
        predict_each=predict_each if len(names) > 1 else None,
    )


class KerasFrontend:
    """Keras 3 and tf-keras files and SavedModels: inspected by gate.inspection, loaded by the Keras that wrote them."""

    name = "keras"
    formats = MODEL_FILES

    def inspect(self, path: Path, *, allowed_custom_objects: tuple[str, ...]) -> Inspection:
        from gate.inspection import inspect_model

        return inspect_model(path, allowed_custom_objects=allowed_custom_objects)

    def load(
        self, path: Path, inspection: Inspection, *, export_dir: Path, fixed_batch: bool, unroll: bool
    ) -> LoadedModel:
        return load_model(path, inspection, export_dir=export_dir, fixed_batch=fixed_batch, unroll=unroll)


KERAS = KerasFrontend()
