"""Build the translated plan in tf-keras (gate.quantization.qat.rebuild translates; this imports TensorFlow).

Each layer is made with tf-keras' own class from its translated config, called on its inputs as the Keras 3
model's config says, and given the weights the parent process saved from the Keras 3 model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gate.errors import ModelError
from gate.quantization.qat.rebuild import LayerPlan, ModelPlan, TensorRef


def keras3_activations() -> dict[str, Any]:
    """Keras 3's formulas for the activations tf-keras lacks or defines differently, for custom_object_scope."""
    import tensorflow as tf

    # keras/src/activations/activations.py: hard_sigmoid is relu6(x + 3) / 6, hard_silu (alias hard_swish) x times that.
    def keras3_hard_sigmoid(x):
        return tf.nn.relu6(x + 3.0) / 6.0

    def keras3_hard_silu(x):
        return x * tf.nn.relu6(x + 3.0) / 6.0

    return {"keras3_hard_sigmoid": keras3_hard_sigmoid, "keras3_hard_silu": keras3_hard_silu}


def build(plan: ModelPlan, weights: Mapping[str, list[np.ndarray]], where: str) -> Any:
    """A tf_keras.Model built from the plan with tf-keras' layer classes, holding each layer's Keras 3 weights."""
    import tensorflow as tf
    import tf_keras

    with tf_keras.utils.custom_object_scope(keras3_activations()):
        inputs = [tf_keras.Input(batch_shape=i.batch_shape, dtype=i.dtype, name=i.name) for i in plan.inputs]
        layers = {p.name: _make_layer(tf_keras, p) for p in plan.layers}
        if plan.kind == "Sequential":
            model = tf_keras.Sequential([*inputs, *layers.values()], name=plan.name)
        else:
            tensors = {(i.name, 0, 0): tensor for i, tensor in zip(plan.inputs, inputs, strict=True)}
            pending = [(p, node, call) for p in plan.layers for node, call in enumerate(p.calls)]
            while pending:
                ready = [item for item in pending if all(_key(r) in tensors for r in _tensor_refs(item[2]))]
                if not ready:
                    missing = sorted(
                        {r.layer for item in pending for r in _tensor_refs(item[2]) if _key(r) not in tensors}
                    )
                    raise ModelError(
                        f"{where}: layers {', '.join(missing)} are called before they exist; re-save the model"
                    )
                for item in ready:
                    layer_plan, node, (args, kwargs) = item
                    outputs = layers[layer_plan.name](*_resolve(args, tensors), **_resolve(kwargs, tensors))
                    for index, tensor in enumerate(tf.nest.flatten(outputs)):
                        tensors[(layer_plan.name, node, index)] = tensor
                    pending.remove(item)
            outputs = [tensors[_key(output)] for output in plan.outputs]  # several: in the Keras 3 model's order
            model = tf_keras.Model(
                inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0], name=plan.name
            )
    _copy_weights(model, plan, weights, where)
    return model


def _make_layer(tf_keras, plan: LayerPlan):
    config = dict(plan.config)
    for key, value in config.items():
        if isinstance(value, LayerPlan):
            config[key] = {"class_name": value.class_name, "config": _make_config(value)}
    if plan.class_name == "MultiHeadAttention":
        # tf-keras' from_config pops these; the layer builds itself on its first call instead.
        config.update(query_shape=None, key_shape=None, value_shape=None)
    return getattr(tf_keras.layers, plan.class_name).from_config(config)


def _make_config(plan: LayerPlan) -> dict[str, Any]:
    return {
        k: ({"class_name": v.class_name, "config": _make_config(v)} if isinstance(v, LayerPlan) else v)
        for k, v in plan.config.items()
    }


def _key(ref: TensorRef) -> tuple[str, int, int]:
    return (ref.layer, ref.node, ref.tensor)


def _tensor_refs(value: Any) -> list[TensorRef]:
    if isinstance(value, TensorRef):
        return [value]
    if isinstance(value, list | tuple):
        return [r for v in value for r in _tensor_refs(v)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _tensor_refs(v)]
    return []


def _resolve(value: Any, tensors: Mapping[tuple[str, int, int], Any]) -> Any:
    if isinstance(value, TensorRef):
        return tensors[_key(value)]
    if isinstance(value, list | tuple):
        return [_resolve(v, tensors) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, tensors) for k, v in value.items()}
    return value


def _copy_weights(model, plan: ModelPlan, weights: Mapping[str, list[np.ndarray]], where: str) -> None:
    problems = []
    for layer_plan in plan.layers:
        layer = model.get_layer(layer_plan.name)
        keras3 = weights.get(layer_plan.name, [])
        current = layer.get_weights()
        have, want = [w.shape for w in keras3], [w.shape for w in current]
        if have != want:
            problems.append(
                f"{where}: layer {layer_plan.name!r} ({layer_plan.class_name}) has weights of shapes {have} in Keras 3 "
                f"but {want} when rebuilt in tf-keras; gate cannot copy them"
            )
        else:
            layer.set_weights(keras3)
    unused = sorted(set(weights) - {p.name for p in plan.layers})
    if unused:
        problems.append(f"{where}: the Keras 3 weights name layers {', '.join(unused)}, which the rebuilt model lacks")
    if problems:
        raise ModelError("\n".join(problems))
