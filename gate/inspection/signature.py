"""A model's inputs and outputs as its file declares them, read without loading it.

`gate validate` checks the data files against them without TensorFlow, and
`gate check` refuses here, before loading, what it cannot gate: a subclassed Keras
model, whose config declares neither inputs nor outputs, and a SavedModel without a
serving_default signature or whose signature returns nothing. Keras configs
(Sequential and Functional, in Keras 3's and tf-keras' formats) and a SavedModel's
`serving_default` signature are read as data; what a file does not say is None, never
a guess. The outputs of a model with several are named as gate.toml's
[outputs.<name>] tables and eval.npz's y.<name> name them: a Keras model's by its
output layers, a SavedModel's by its signature's output keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gate.errors import ModelError

_MODEL_CLASSES = ("Sequential", "Functional", "Model")  # "Model": how tf.keras before 2.4 named a Functional model
# Layers whose output has their input's shape and, but for an activation, its values' kind.
# fmt: skip: a row per kind of layer (dropout and noise; normalization).
_SHAPE_KEEPING = frozenset({
    "Dropout", "GaussianDropout", "GaussianNoise", "AlphaDropout", "ActivityRegularization", "Identity",
    "BatchNormalization", "LayerNormalization", "UnitNormalization",
})  # fmt: skip
_ACTIVATION_LAYERS = {"Softmax": "softmax", "ReLU": "relu", "LeakyReLU": "leaky_relu", "ELU": "elu", "PReLU": "prelu"}
# tensorflow/core/framework/types.proto: DataType values of the dtypes a model input can have.
# fmt: skip: a lookup table in two rows, not twelve lines.
_DTYPES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 9: "int64", 10: "bool",
           17: "uint16", 19: "float16", 22: "uint32", 23: "uint64"}  # fmt: skip


@dataclass(frozen=True)
class InputInfo:
    """One model input: its name, its shape without the batch dimension (None: any size) and its dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


@dataclass(frozen=True)
class OutputInfo:
    """One output of a Keras model: its Keras name (its output layer's), its last dimension and activation."""

    name: str
    width: int | None  # None when the config does not say
    activation: str | None


@dataclass(frozen=True)
class Signature:
    """What the model takes and gives, as far as its file says."""

    inputs: tuple[InputInfo, ...]
    output_width: int | None  # the size of the (single) output's last dimension; None when the file does not say
    output_activation: str | None  # the last layer's activation, e.g. "softmax" or "linear"; None when unknown
    # Every output of a Keras model with several, in Keras' order; () for a model with one (output_width says it).
    outputs: tuple[OutputInfo, ...] = ()


def several_outputs(where: str, count: int) -> ModelError:
    """The one message for a model with several outputs whose file does not declare them: their names, which
    gate.toml and eval.npz use, cannot be checked before it is loaded."""
    return ModelError(
        f"{where}: the model has {count} outputs, but its file does not declare them where gate reads them before "
        "loading it (a Keras config's input and output layers; a SavedModel's serving_default inputs, of known "
        "rank), so gate.toml's [outputs.<name>] tables cannot be checked against them; save it with model.save() "
        "from keras.Model(inputs, outputs) or with model.export(), or export one model per output"
    )


def keras_signature(where: str, config: object) -> Signature | None:
    """The signature a Keras model config declares; a ModelError for a model gate cannot gate.

    None when the config does not say (no input layer, an odd shape): gating then learns it by loading.
    """
    if not isinstance(config, dict):
        return None
    kind, body = config.get("class_name"), config.get("config")
    if kind not in _MODEL_CLASSES:
        name = config.get("registered_name") or kind
        raise ModelError(
            f"{where}: is a subclassed model ({name!r}), whose config declares neither its inputs nor its outputs, "
            "so gate can neither check its data nor convert it; build it with keras.Sequential or keras.Model(inputs, "
            "outputs), or export it as a SavedModel with model.export()"
        )
    layers = body.get("layers") if isinstance(body, dict) else None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        return None
    assert isinstance(body, dict)  # it holds the layers
    by_name = {_name(layer): layer for layer in layers}
    if kind == "Sequential":
        inputs = [layer for layer in layers[:1] if layer.get("class_name") == "InputLayer"]
        output = layers[-1] if len(layers) > len(inputs) else None
    else:
        input_names, output_names = (_layer_names(body.get(key)) for key in ("input_layers", "output_layers"))
        if len(output_names) > 1:
            return _named_outputs(where, [_input_info(by_name.get(name)) for name in input_names], output_names,
                                    layers, by_name)  # fmt: skip
        inputs = [by_name.get(name) for name in input_names]
        output = by_name.get(output_names[0]) if output_names else None
    specs = [_input_info(layer) for layer in inputs]
    if not specs or None in specs or output is None:
        return None
    width, activation = _output(output, layers, by_name, sequential=kind == "Sequential")
    return Signature(tuple(specs), width, activation)  # type: ignore[arg-type]


def _named_outputs(
    where: str, specs: list[InputInfo | None], names: list[str], layers: list[dict], by_name: dict
) -> Signature | None:
    """A Functional model's outputs, each named as Keras names it (its layer's name), which must be unique."""
    if len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise ModelError(
            f"{where}: the model returns layer {', '.join(map(repr, repeated))} as more than one output, so its "
            "outputs have no names of their own; return each once, or give each output a layer of its own"
        )
    if not specs or None in specs or any(name not in by_name for name in names):
        return None
    outputs = tuple(OutputInfo(name, *_output(by_name[name], layers, by_name, sequential=False)) for name in names)
    return Signature(tuple(specs), None, None, outputs)  # type: ignore[arg-type]


def _name(layer: dict) -> object:
    config = layer.get("config")
    return config.get("name") if isinstance(config, dict) and "name" in config else layer.get("name")


def _layer_names(value: object) -> list[str]:
    """input_layers / output_layers: ["name", 0, 0] for one (Keras 3), [["name", 0, 0], ...] for several."""
    entries = [value] if isinstance(value, list) and value and isinstance(value[0], str) else value
    if not isinstance(entries, list):
        return []
    return [entry[0] for entry in entries if isinstance(entry, list) and entry and isinstance(entry[0], str)]


def _input_info(layer: dict | None) -> InputInfo | None:
    config = layer.get("config") if isinstance(layer, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("name"), str):
        return None
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    dtype = config.get("dtype", "float32")
    if isinstance(dtype, dict):  # Keras 3: a DTypePolicy
        dtype = dtype.get("config", {}).get("name") if isinstance(dtype.get("config"), dict) else None
    if not isinstance(shape, list) or not shape or not all(d is None or type(d) is int for d in shape):
        return None
    return InputInfo(config["name"], tuple(shape[1:]), dtype) if isinstance(dtype, str) else None


def _output(output: dict, layers: list[dict], by_name: dict, *, sequential: bool) -> tuple[int | None, str | None]:
    """The output's width and activation, read back through layers that keep the shape (Dropout, Softmax...)."""
    activation = None
    layer: dict | None = output
    for _ in range(len(layers)):
        if layer is None:
            break
        kind, config = layer.get("class_name"), layer.get("config")
        config = config if isinstance(config, dict) else {}
        if kind == "Dense":
            units = config.get("units")
            return (units if type(units) is int else None), activation or _activation_name(config.get("activation"))
        if kind == "Activation":
            activation = activation or _activation_name(config.get("activation"))
        elif kind in _ACTIVATION_LAYERS:
            activation = activation or _ACTIVATION_LAYERS[kind]
        elif kind not in _SHAPE_KEEPING:
            break
        layer = _previous(layer, layers, by_name, sequential=sequential)
    return None, activation


def _activation_name(value: object) -> str | None:
    if isinstance(value, dict) and value.get("class_name") == "function":  # Keras 3's serialized function
        value = value.get("config")
    if value is None:
        return "linear"
    return value if isinstance(value, str) else None


def _previous(layer: dict, layers: list[dict], by_name: dict, *, sequential: bool) -> dict | None:
    """The layer whose output `layer` takes, when it takes one."""
    if sequential:
        index = next(i for i, candidate in enumerate(layers) if candidate is layer)
        return layers[index - 1] if index > 0 else None
    nodes = layer.get("inbound_nodes")
    if not isinstance(nodes, list) or len(nodes) != 1:
        return None
    names = _history_names(nodes[0])
    return by_name.get(names[0]) if len(names) == 1 else None


def _history_names(node: Any) -> list[str]:
    """The layers a call's tensors come from: Keras 3 keras_history entries, tf-keras [name, node, tensor, kwargs]."""
    if isinstance(node, dict):
        if node.get("class_name") == "__keras_tensor__":
            history = node.get("config", {}).get("keras_history") if isinstance(node.get("config"), dict) else None
            return [history[0]] if isinstance(history, list) and history and isinstance(history[0], str) else []
        return [name for value in node.values() for name in _history_names(value)]
    if isinstance(node, list):
        if len(node) >= 3 and isinstance(node[0], str) and type(node[1]) is int:  # tf-keras
            return [node[0]]
        return [name for value in node for name in _history_names(value)]
    return []


def saved_model_signature(where: str, serving: dict[str, Any] | None) -> Signature | None:
    """The signature of a SavedModel's serving_default, as gate.inspection.saved_model parsed it.

    `serving` holds "inputs" and "outputs": {name: (DataType, dims or None)}; None when there is no
    serving_default, which gate cannot convert. None when an input's rank is unknown.
    """
    if serving is None:
        raise ModelError(
            f"{where}: has no serving_default signature; export it with model.export() or a signatures= argument"
        )
    inputs = []
    for name, (dtype, dims) in sorted(serving["inputs"].items()):  # gate.frontends.keras orders them so too
        if not dims or dtype not in _DTYPES:
            return None
        inputs.append(InputInfo(name, tuple(None if d < 0 else d for d in dims[1:]), _DTYPES[dtype]))
    if not serving["outputs"]:
        raise ModelError(f"{where}: its serving_default signature returns nothing; export the model's outputs")
    # Several outputs are named by their keys in the signature (what the loaded signature returns them under), in
    # sorted order; the signature does not say their activations.
    widths = {name: dims[-1] if dims and dims[-1] >= 0 else None for name, (_dtype, dims) in serving["outputs"].items()}
    if len(widths) == 1:
        (width,) = widths.values()
        return Signature(tuple(inputs), width, None)
    return Signature(tuple(inputs), None, None, tuple(OutputInfo(name, widths[name], None) for name in sorted(widths)))
