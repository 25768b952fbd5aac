"""Rebuild a Keras 3 model in tf-keras, so that tfmot can train it.

tfmot 0.8 quantizes only tf-keras (Keras 2) models: `quantize_model` on a
Keras 3 model fails with "to_quantize can only either be a keras Sequential or
Functional model" (tfmot #1119, #1140). So the architecture is read from the
`.keras` archive's `config.json` as plain JSON, translated layer by layer into
tf-keras configs (`translate`, no TensorFlow), and built with tf-keras' own
layer classes (gate.quantization.qat.construct). Only the layer classes in `LAYERS` are translated:
anything else is a reason, never a guess.

The weights come from the parent process, which loads the model with Keras 3
anyway and saves each layer's `get_weights()` (`gate.quantization.qat.job.write_keras3_reference`).
Reading `model.weights.h5` here would mean guessing: Keras 3 names its groups
after layer classes in order (`layers/input_layer` holds the input named
"rows"), not after the layers' names.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from gate.errors import ModelError
from gate.quantization.qat.layers import (
    ANY,
    CONSTRAINTS,
    LAYER_MODULES,
    LAYERS,
    NESTED_MODELS,
    REGULARIZERS,
    holds_object,
    keras_object,
    translated_activation,
)


@dataclass(frozen=True)
class TensorRef:
    """The output `tensor` of call `node` of layer `layer` (Keras' keras_history)."""

    layer: str
    node: int
    tensor: int


@dataclass(frozen=True)
class InputPlan:
    name: str
    batch_shape: tuple[int | None, ...]
    dtype: str


@dataclass(frozen=True)
class LayerPlan:
    """One layer as tf-keras builds it: a class of LAYERS and its translated config."""

    name: str
    class_name: str
    config: dict[str, Any]  # nested layers (wrappers) are LayerPlans
    calls: tuple[tuple[Any, dict[str, Any]], ...]  # (args, kwargs) of each call, TensorRefs in place of tensors


@dataclass(frozen=True)
class ModelPlan:
    """A whole model, translated: what `build` needs and nothing from the file besides."""

    kind: str  # "Sequential" or "Functional"
    name: str
    inputs: tuple[InputPlan, ...]
    layers: tuple[LayerPlan, ...]
    outputs: tuple[TensorRef, ...]  # Functional only

    @property
    def has_recurrent_layers(self) -> bool:
        def recurrent(plan: LayerPlan) -> bool:
            nested = [v for v in plan.config.values() if isinstance(v, LayerPlan)]
            return LAYERS[plan.class_name].recurrent or any(recurrent(n) for n in nested)

        return any(recurrent(plan) for plan in self.layers)


def read_keras3_config(path: Path) -> object:
    """The architecture of a `.keras` archive that gate.inspection has accepted."""
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def translate(config: object, where: str) -> ModelPlan:
    """Translate a Keras 3 model config; raise ModelError naming every layer that cannot be rebuilt."""
    problems: list[str] = []
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise ModelError(f"{where}: config.json does not describe a model; re-save it with model.save()")
    kind = config.get("class_name")
    if kind not in ("Sequential", "Functional") or config.get("registered_name") not in (None, kind):
        name = config.get("registered_name") or kind
        raise ModelError(
            f"{where}: is a subclassed model ({name!r}); quantization-aware training needs a Sequential or "
            "Functional model, whose layers tfmot can wrap; rebuild it with keras.Sequential or keras.Model(inputs, "
            "outputs)"
        )
    body = config["config"]
    raw_layers = body.get("layers")
    if not isinstance(raw_layers, list):
        raise ModelError(f"{where}: config.json lists no layers; re-save it with model.save()")
    inputs: list[InputPlan] = []
    layers: list[LayerPlan] = []
    for raw in raw_layers:
        if isinstance(raw, dict) and raw.get("class_name") == "InputLayer":
            inputs.append(_input_plan(raw, where, problems))
        else:
            plan = _layer_plan(raw, where, problems, functional=kind == "Functional")
            if plan is not None:
                layers.append(plan)
    outputs: tuple[TensorRef, ...] = ()
    if kind == "Sequential" and not inputs:
        shape = body.get("build_input_shape")
        if isinstance(shape, list) and shape:
            inputs.append(InputPlan("input_layer", tuple(shape), "float32"))
        else:
            problems.append(f"{where}: the Sequential model has no input shape; build it with keras.Input(shape) first")
    if kind == "Functional":
        order = _refs(body.get("input_layers"), where, "input_layers", problems)
        by_name = {plan.name: plan for plan in inputs}
        inputs = [by_name[ref.layer] for ref in order if ref.layer in by_name]
        outputs = _refs(body.get("output_layers"), where, "output_layers", problems)
        if not outputs:
            problems.append(f"{where}: config.json: output_layers names no output; re-save the model with model.save()")
    if problems:
        raise ModelError("\n".join(problems))
    return ModelPlan(kind, str(body.get("name", "model")), tuple(inputs), tuple(layers), outputs)


def _refs(value: object, where: str, key: str, problems: list[str]) -> tuple[TensorRef, ...]:
    # One input is written as ["name", 0, 0], several as [["a", 0, 0], ["b", 0, 0]].
    entries = [value] if isinstance(value, list) and value and isinstance(value[0], str) else value
    if not isinstance(entries, list) or not all(_is_history(e) for e in entries):
        problems.append(f"{where}: config.json: {key} is {value!r}, not a list of [layer, node, tensor]")
        return ()
    return tuple(TensorRef(*entry) for entry in entries)


def _is_history(entry: object) -> TypeGuard[list]:
    return (
        isinstance(entry, list)
        and len(entry) == 3
        and isinstance(entry[0], str)
        and all(isinstance(i, int) and not isinstance(i, bool) for i in entry[1:])
    )


def _input_plan(raw: dict, where: str, problems: list[str]) -> InputPlan:
    config: dict = raw["config"] if isinstance(raw.get("config"), dict) else {}
    name = str(config.get("name", raw.get("name", "input")))
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    for option in ("sparse", "ragged", "optional"):
        if config.get(option):
            problems.append(
                f"{where}: input {name!r} is {option}; quantization-aware training needs dense, required inputs"
            )
    if not isinstance(shape, list) or not all(d is None or isinstance(d, int) for d in shape):
        problems.append(f"{where}: input {name!r} has batch_shape {shape!r}, not a list of sizes")
        shape = [None]
    dtype = _dtype_name(config.get("dtype", "float32"))
    if dtype is None:
        problems.append(f"{where}: input {name!r} has dtype {config.get('dtype')!r}, which tf-keras cannot build")
    return InputPlan(name, tuple(shape), dtype or "float32")


def _dtype_name(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
        name = value.get("config", {}).get("name") if isinstance(value.get("config"), dict) else None
        return name if isinstance(name, str) else None
    return None


def _layer_plan(raw: object, where: str, problems: list[str], *, functional: bool) -> LayerPlan | None:
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("class_name"), str)
        or not isinstance(raw.get("config"), dict)
    ):
        problems.append(f"{where}: config.json holds a layer entry that is not a Keras layer config: {str(raw)[:80]}")
        return None
    class_name, config = raw["class_name"], raw["config"]
    name = str(config.get("name", raw.get("name", class_name)))
    subject = f"{where}: layer {name!r} ({class_name})"
    if class_name in NESTED_MODELS:
        problems.append(
            f"{subject} is a nested model; tfmot cannot quantize a model inside a model, so flatten it into one "
            "Sequential or Functional model"
        )
        return None
    if raw.get("module") not in LAYER_MODULES or raw.get("registered_name") not in (None, class_name):
        custom = raw.get("registered_name") not in (None, class_name)
        what = raw["registered_name"] if custom else f"{raw.get('module')}.{class_name}"
        problems.append(
            f"{subject} is {what!r}, not a keras.layers class ({'a custom layer' if custom else 'a keras.ops call'}), "
            "which gate cannot rebuild in tf-keras; replace it with a built-in Keras layer"
        )
        return None
    if class_name not in LAYERS:
        problems.append(
            f"{subject}: gate does not rebuild {class_name} layers in tf-keras for quantization-aware training; "
            f"it rebuilds {', '.join(sorted(LAYERS))}"
        )
        return None
    translated = _layer_config(subject, class_name, config, where, problems)
    calls: list[tuple[Any, dict[str, Any]]] = []
    if functional:
        nodes = raw.get("inbound_nodes", [])
        for node in nodes if isinstance(nodes, list) else [nodes]:
            if (
                not isinstance(node, dict)
                or not isinstance(node.get("args", []), list)
                or not isinstance(node.get("kwargs", {}), dict)
            ):
                problems.append(f"{subject}: inbound node {str(node)[:80]} is not in Keras 3's format")
                continue
            calls.append(
                (
                    _call_value(node.get("args", []), subject, problems),
                    _call_value(node.get("kwargs", {}), subject, problems),
                )
            )
    return LayerPlan(name, class_name, translated, tuple(calls))


def _call_value(value: Any, subject: str, problems: list[str]) -> Any:
    """A call's arguments, with a TensorRef for each Keras tensor."""
    if isinstance(value, list):
        return [_call_value(v, subject, problems) for v in value]
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            history = value.get("config", {}).get("keras_history") if isinstance(value.get("config"), dict) else None
            if _is_history(history):
                return TensorRef(*history)
            problems.append(f"{subject}: a call argument has keras_history {history!r}, not [layer, node, tensor]")
            return None
        if "class_name" in value:
            problems.append(
                f"{subject}: a call argument is a {value['class_name']!r} object, which gate cannot rebuild"
            )
            return None
        return {k: _call_value(v, subject, problems) for k, v in value.items()}
    return value


def _layer_config(subject: str, class_name: str, config: dict, where: str, problems: list[str]) -> dict[str, Any]:
    translation = LAYERS[class_name]
    translated: dict[str, Any] = {}
    for key, value in config.items():
        if key in translation.dropped:
            allowed = translation.dropped[key]
            if allowed != ANY and value not in allowed:
                problems.append(
                    f"{subject}: option {key}={value!r} has no tf-keras equivalent (only {allowed[0]!r} has); "
                    "gate cannot rebuild the layer faithfully"
                )
            continue
        if key.endswith("_initializer"):
            continue  # the weights are copied over whatever an initializer would draw
        if key == "dtype":
            dtype = _dtype_name(value)
            if dtype != "float32":
                problems.append(
                    f"{subject}: dtype policy {dtype or value!r}; quantization-aware training needs float32 layers"
                )
            value = "float32"
        elif key in translation.nested:
            if value is not None:
                value = _layer_plan(value, where, problems, functional=False)
        elif key == "activation" or key.endswith("translated_activation"):
            value = translated_activation(subject, key, value, problems)
        elif key.endswith("_regularizer"):
            value = keras_object(subject, key, value, REGULARIZERS, problems)
        elif key.endswith("_constraint"):
            value = keras_object(subject, key, value, CONSTRAINTS, problems)
        elif holds_object(value):
            problems.append(f"{subject}: option {key} holds a serialized Keras object, which gate cannot rebuild")
            continue
        translated[translation.renamed.get(key, key)] = value
    return translated
