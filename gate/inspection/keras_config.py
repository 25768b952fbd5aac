"""The Keras config walker: every object a config names must be Keras' own, or allowed in gate.toml.

A Keras config (`config.json` in a .keras archive, the `model_config` and
`training_config` attributes of an .h5 file) is JSON that Keras turns into
objects when loading: a `class_name` with a `module` is imported and built,
a string under `activation` is looked up as a function. The walker reads it as
plain JSON, never deserializing anything, and refuses every name Keras would
resolve that is not one of Keras' own classes and functions (KERAS_NAMES).
"""

from __future__ import annotations

import builtins
import json
import re
from dataclasses import dataclass
from pathlib import Path

from gate.errors import ModelError
from gate.inspection.keras_names import KERAS_MODULES, KERAS_NAMES
from gate.inspection.problems import raise_problems
from gate.inspection.signature import Signature, keras_signature


@dataclass(frozen=True)
class _Never:
    """Why a name is refused even when gate.toml lists it, and what to do instead."""

    reason: str
    fix: str


_REBUILD = "rebuild it from Keras layers"
_DENSE_INPUTS = "use dense inputs; ragged, sparse and composite inputs are not supported"
# Loading these runs code from the file or reads other files, whatever safe_mode says.
NEVER_ALLOWED = {
    "Lambda": _Never(
        "is a Lambda layer, which runs arbitrary Python when loaded",
        "replace it with a built-in layer or a custom layer allowed in gate.toml",
    ),
    "__lambda__": _Never(
        "holds a serialized Python lambda, which runs arbitrary Python when loaded",
        "replace it with a built-in Keras function",
    ),
    "TFSMLayer": _Never(
        "is a TFSMLayer, which loads and runs another SavedModel from a path when loaded (CVE-2026-1462)",
        "rebuild the model from Keras layers, or gate that SavedModel on its own",
    ),
    "TFOpLambda": _Never(
        "is a TFOpLambda layer (a raw TensorFlow call in a tf.keras model), which can call any TensorFlow function",
        "replace the tf.* call with a Keras layer",
    ),
    "SlicingOpLambda": _Never(
        "is a SlicingOpLambda layer (raw slicing in a tf.keras model), which can call any TensorFlow function",
        "replace the slicing with a Keras layer such as Cropping1D",
    ),
    "JaxLayer": _Never("wraps a JAX function, which runs arbitrary Python when loaded", _REBUILD),
    "FlaxLayer": _Never("wraps a Flax module, which runs arbitrary Python when loaded", _REBUILD),
    "TorchModuleWrapper": _Never("holds a pickled PyTorch module, which runs arbitrary Python when loaded", _REBUILD),
    "DenseFeatures": _Never(
        "holds feature columns, which read vocabulary files when loaded", "preprocess the features outside the model"
    ),
    "__typespec__": _Never("names a TensorFlow type spec, which the loader imports by name", _DENSE_INPUTS),
    "TypeSpec": _Never("names a TensorFlow type spec, which the loader looks up by name", _DENSE_INPUTS),
    "CompositeTensor": _Never("is a composite tensor, rebuilt from a type spec named in the file", _DENSE_INPUTS),
}

# fmt: off
# `class_name` values that mark a serialized value, not a class: Keras builds
# them without looking anything up (keras/src/saving/serialization_lib.py,
# tf_keras/src/saving/legacy/saved_model/json_utils.py).
_VALUE_MARKERS = frozenset({
    "__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__", "__slice__", "__tuple__",
    "TensorShape",
})

# Metric names that compile() understands without a lookup (keras/src/trainers/compile_utils.py).
_COMPILE_ALIASES = frozenset({"acc", "accuracy", "ce", "crossentropy"})

# Keys whose string values Keras resolves to a function or class ("relu",
# "glorot_uniform", "sparse_categorical_crossentropy", "my_pkg>my_fn").
_REFERENCE_KEYS = frozenset({"activation", "loss", "metrics", "weighted_metrics", "optimizer", "fn"})
_REFERENCE_SUFFIXES = ("_activation", "_initializer", "_regularizer", "_constraint")

# Keys under which a config nests layers, so their classes are the model's layer classes.
_LAYER_KEYS = frozenset({"layers", "layer", "forward_layer", "backward_layer", "cell", "cells"})
RECURRENT_LAYERS = frozenset({
    "RNN", "LSTM", "GRU", "SimpleRNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
    "LSTMCell", "GRUCell", "SimpleRNNCell", "StackedRNNCells",
})
# fmt: on

# A function entry with module "builtins" is looked up in Keras' modules first,
# but tf-keras then takes the name from Python's builtins module.
_PYTHON_BUILTINS = frozenset(dir(builtins))
VERSION = re.compile(r"(\d+)\.\d+(\.\d+)?([.+\-\w]*)")


@dataclass(frozen=True)
class ConfigFindings:
    """What walking one JSON config found."""

    problems: tuple[str, ...]
    layer_classes: frozenset[str]
    custom_objects: frozenset[str]


@dataclass(frozen=True)
class KerasFindings:
    """What the configs of a Keras file say, once none of them has a problem."""

    writer: str  # "keras" (Keras 3) or "tf_keras" (tf.keras / tf-keras 2.x)
    writer_version: str  # "" if the file does not say
    layer_classes: frozenset[str]
    custom_objects: frozenset[str]  # custom objects the model uses that gate.toml allowed
    signature: Signature | None  # the inputs and output the model config declares (None: it does not say)


def never_allowed_problem(entry: str) -> str | None:
    """Why an allow_custom_objects entry can never be allowed, or None; gate validate reports it too."""
    name = entry.rsplit(">", 1)[-1].rsplit(".", 1)[-1]
    if name not in NEVER_ALLOWED:
        return None
    never = NEVER_ALLOWED[name]
    return (
        f"allow_custom_objects lists {entry!r}, which can never be allowed: it {never.reason}; remove it from the list "
        f"and {never.fix}"
    )


def keras_findings(
    path: Path, writer: tuple[str, str], findings: list[ConfigFindings], model_config: object
) -> KerasFindings:
    """The findings of every config of one file together; raise one ModelError listing every problem in them.

    Then the model config's signature, which refuses what gate cannot gate (gate.inspection.signature).
    """
    raise_problems([problem for finding in findings for problem in finding.problems])
    return KerasFindings(
        writer=writer[0],
        writer_version=writer[1],
        layer_classes=frozenset().union(*(finding.layer_classes for finding in findings)),
        custom_objects=frozenset().union(*(finding.custom_objects for finding in findings)),
        signature=keras_signature(str(path), model_config),
    )


def check_config(
    path: Path, source: str, document: object, allowed: frozenset[str], *, is_model: bool
) -> ConfigFindings:
    """Walk a config as plain JSON; every object it names must be Keras' own or allowed in gate.toml."""
    if not isinstance(document, dict) or (is_model and "class_name" not in document):
        expected = "describing the model (with a class_name)" if is_model else "of training settings"
        refused = f"{path}: {source}: expected a JSON object {expected}; re-save the model with model.save()"
        return ConfigFindings((refused,), frozenset(), frozenset())
    problems: list[str] = []
    layers: set[str] = set()
    customs: set[str] = set()
    # An explicit stack instead of recursion: a hostile config may nest thousands of levels deep.
    # Items: value, path inside the config, enclosing layer name, key it sits under, whether it is a reference.
    stack: list[tuple[object, str, str | None, str | None, bool]] = [(document, "", None, None, False)]
    layer: str | None
    while stack:
        value, where, layer, key, reference = stack.pop()
        if isinstance(value, dict):
            if "class_name" in value:
                is_layer = key in _LAYER_KEYS
                layer = _object_name(value) if is_layer else layer
                identity, problem = _check_object(value, allowed)
                if problem:
                    problems.append(f"{path}: {source}: {_subject(layer, where)} {problem}")
                    continue  # what a refused object holds is not worth reporting
                if identity and is_layer:
                    layers.add(identity)
                if identity in allowed:
                    customs.add(identity)
                reference = False
            children = []
            for child_key, child in value.items():
                if child_key == "vocabulary" and isinstance(child, str):
                    problems.append(
                        f"{path}: {source}: {_subject(layer, _join(where, child_key))} names the vocabulary file "
                        f"{child!r}, which would be read when loaded; pass the vocabulary as a list so it is saved "
                        "in the model"
                    )
                    continue
                is_reference = reference or child_key in _REFERENCE_KEYS or child_key.endswith(_REFERENCE_SUFFIXES)
                children.append((child, _join(where, child_key), layer, child_key, is_reference))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend(reversed([(item, f"{where}[{i}]", layer, key, reference) for i, item in enumerate(value)]))
        elif reference and isinstance(value, str):
            identity, problem = _check_name(value, None, allowed, function=True)
            if problem:
                problems.append(f"{path}: {source}: {_subject(layer, where)} {problem}")
            elif identity in allowed:
                customs.add(identity)
    return ConfigFindings(tuple(problems), frozenset(layers), frozenset(customs))


def _check_object(node: dict, allowed: frozenset[str]) -> tuple[str | None, str | None]:
    """The identity of one serialized object (class or function), or why it is refused."""
    class_name, module, registered = node["class_name"], node.get("module"), node.get("registered_name")
    for field, value in (("class_name", class_name), ("module", module), ("registered_name", registered)):
        if not isinstance(value, str) and (value is not None or field == "class_name"):
            return None, f"has {field} {value!r}, which is not a string; re-save the model with model.save()"
    if class_name in NEVER_ALLOWED:
        never = NEVER_ALLOWED[class_name]
        return None, f"{never.reason}; {never.fix}"
    if class_name in _VALUE_MARKERS:
        return None, None
    if class_name == "function":
        # Keras looks a function up by its name alone (`config`); registered_name is just "function".
        function_name = node.get("config")
        if not isinstance(function_name, str):
            return None, f"is a function named {function_name!r}, not a string; re-save the model with model.save()"
        return _check_name(function_name, module, allowed, function=True)
    if registered is not None and registered != class_name:
        # Keras resolves registered_name before class_name and module: it decides what gets built.
        return _check_custom(registered, module, allowed)
    return _check_name(class_name, module, allowed, function=False)


def _check_name(name: str, module: str | None, allowed: frozenset[str], *, function: bool) -> tuple[str, str | None]:
    builtin_module = function and module == "builtins"
    if ">" in name and name not in KERAS_NAMES:
        return _check_custom(name, module, allowed)
    if module is not None and module not in KERAS_MODULES and not builtin_module:
        return name, (
            f"names module {module!r}, which is not part of Keras, so loading would import it; use Keras' own "
            "layers and functions (or a registered custom object listed in allow_custom_objects in gate.toml)"
        )
    if builtin_module and name in _PYTHON_BUILTINS:
        return (
            name,
            f"names Python's builtins.{name}, which is not a Keras function; use Keras' own layers and functions",
        )
    if name in KERAS_NAMES or (function and name in _COMPILE_ALIASES):
        return name, None
    if name in allowed:
        return name, None
    kind = "function" if function else "class"
    return name, (
        f"uses the {kind} {name!r}, which is not one of Keras' own; use Keras' own layers and functions, or "
        "register it and list its registered name in allow_custom_objects in gate.toml"
    )


def _check_custom(name: str, module: str | None, allowed: frozenset[str]) -> tuple[str, str | None]:
    if name not in allowed:
        return name, (
            f"is the custom object {name!r}, which runs code from outside Keras when loaded; if you trust it, "
            f'add "{name}" to allow_custom_objects in gate.toml'
        )
    package = name.split(">", 1)[0]
    if module in (None, "builtins", "__main__") or module.split(".", 1)[0] == package:
        return name, None
    # tf-keras imports `module` when the registered class is missing, so the file must not be able to name just any
    # module: only one of the package that gate.toml trusted.
    return name, (
        f"is the allowed custom object {name!r} but names module {module!r}, which is not in its package "
        f"{package!r} and which tf-keras would import; register the class with package={module.split('.')[0]!r}, "
        "the Python package it lives in, and allow that registered name"
    )


def _object_name(node: dict) -> str | None:
    config = node.get("config")
    name = config.get("name") if isinstance(config, dict) else node.get("name")
    return name if isinstance(name, str) else None


def _subject(layer: str | None, where: str) -> str:
    if layer is not None:
        return f"layer {layer!r} ({where or 'top level'})"
    return where or "the top level"


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def writer_of(path: Path, source: str, version: object) -> tuple[str, str]:
    """Keras 3 or tf-keras, from the keras_version the saving Keras recorded."""
    if not isinstance(version, str) or len(version) > 64 or not VERSION.fullmatch(version):
        raise ModelError(
            f'{path}: {source}: keras_version is {version!r}, expected a version such as "3.15.1"; '
            "re-save the model with model.save()"
        )
    major = version.split(".", 1)[0]
    if major not in ("2", "3"):
        raise ModelError(
            f"{path}: {source}: written by Keras {version}; the gate loads files of Keras 3 and tf-keras 2, "
            "re-save the model with one of them"
        )
    return ("keras" if major == "3" else "tf_keras"), version


def parse_json(path: Path, source: str, text: bytes | str) -> object:
    """A config's JSON; a ModelError naming the file when it is not JSON (or nests deeper than json can follow)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError includes UnicodeDecodeError
        raise ModelError(
            f"{path}: {source}: is not valid JSON ({type(exc).__name__}: {str(exc)[:200]}); "
            "re-save the model with model.save()"
        ) from None
