"""Choose the layers tfmot quantizes, and wrap them for quantization-aware training.

`quantize_model` refuses a whole model when one layer is unsupported, so the
layers tfmot can quantize are annotated one by one (`quantize_annotate_layer`)
and the rest stay float during training; the TFLite converter quantizes those
from the calibration data. Which layers tfmot supports is read from tfmot's own
8-bit registry and activation lists, not copied here; a layer `quantize_apply`
still refuses is left out and the model annotated again.
"""

from __future__ import annotations

from typing import Any

from gate.errors import ModelError
from gate.quantization.qat.job import LayerInfo

# tfmot folds a BatchNormalization into the convolution or Dense layer before it
# (default_8bit_transforms.py: Conv2DBatchNormFold and friends), although its
# registry has no entry for BatchNormalization itself.
_FOLDED_INTO = ("Conv2D", "DepthwiseConv2D", "Dense")


def annotate(model: Any, *, where: str) -> tuple[Any, tuple[LayerInfo, ...], tuple[LayerInfo, ...]]:
    """The QAT model, the annotated layers and the unannotated ones (each with why)."""
    import tensorflow_model_optimization as tfmot
    import tf_keras
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    from gate.quantization.qat.construct import keras3_activations

    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    layers = [layer for layer in model.layers if not isinstance(layer, tf_keras.layers.InputLayer)]
    notes = {layer.name: _unsupported(layer, registry) for layer in layers}
    notes |= _around_recurrent(tf_keras, layers, notes)
    quantize = tfmot.quantization.keras
    for _attempt in range(len(layers) + 1):
        chosen = {name for name, note in notes.items() if not note}
        if not chosen:
            raise ModelError(
                f"{where}: tfmot can quantize none of the model's layers "
                f"({', '.join(f'{layer.name} ({type(layer).__name__})' for layer in layers)}), so QAT has nothing to "
                "train"
            )

        def clone(layer: Any, chosen: set[str] = chosen) -> Any:
            return quantize.quantize_annotate_layer(layer) if layer.name in chosen else layer

        annotated = tf_keras.models.clone_model(model, clone_function=clone)
        try:
            # quantize_apply rebuilds layers from their configs: gate's Keras 3 activations must resolve.
            with quantize.quantize_scope(keras3_activations()):
                qat_model = quantize.quantize_apply(annotated)
        except (ValueError, RuntimeError, TypeError, KeyError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            named = sorted((name for name in chosen if name in message), key=len)
            if not named:
                raise ModelError(
                    f"{where}: tfmot could not quantize the model: {type(exc).__name__}: {message[:300]}"
                ) from None
            notes[named[-1]] = f"quantize_apply refused it: {message[:200]}"
            continue
        infos = {layer.name: type(layer).__name__ for layer in layers}
        return (
            qat_model,
            tuple(LayerInfo(name, infos[name], "") for name in infos if not notes[name]),
            tuple(LayerInfo(name, infos[name], notes[name]) for name in infos if notes[name]),
        )
    raise ModelError(f"{where}: tfmot refused every way of annotating the model")


def _unsupported(layer: Any, registry: Any) -> str:
    """Why tfmot cannot quantize `layer`, or "" when it can."""
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_aware_activation import (
        QuantizeAwareActivation,
    )

    class_name = type(layer).__name__
    if not registry.supports(layer):
        if class_name == "BatchNormalization" and _follows(layer, _FOLDED_INTO):
            return ""
        return f"tfmot's 8-bit scheme has no quantize config for {class_name}"
    config = registry.get_quantize_config(layer)
    # What QuantizeAwareActivation accepts (tfmot publishes no list of its own, so its private sets are read);
    # anything else fails inside quantize_apply without naming the layer.
    quantizable = (
        QuantizeAwareActivation._PRE_QUANT_ACTIVATIONS
        | QuantizeAwareActivation._POST_QUANT_ACTIVATIONS
        | QuantizeAwareActivation._NO_QUANTIZE_ACTIVATIONS
    )
    for attribute in getattr(config, "activation_attrs", ()):
        function = getattr(layer, attribute, None)
        name = getattr(function, "__name__", type(function).__name__)
        if function is not None and name not in quantizable:
            return f"tfmot does not quantize the activation {name!r} ({attribute})"
    try:
        config.get_output_quantizers(layer)  # an Activation layer's config refuses unsupported functions here
    except ValueError as exc:
        return f"tfmot does not quantize it: {str(exc).splitlines()[0][:200]}"
    return ""


def _inbound(layer: Any) -> list[Any]:
    found: list[Any] = []
    for node in getattr(layer, "_inbound_nodes", []):
        inbound = node.inbound_layers
        found += inbound if isinstance(inbound, list | tuple) else [inbound]
    return found


def _follows(layer: Any, classes: tuple[str, ...]) -> bool:
    inbound = _inbound(layer)
    return len(inbound) == 1 and type(inbound[0]).__name__ in classes


def _around_recurrent(tf_keras: Any, layers: list[Any], notes: dict[str, str]) -> dict[str, str]:
    """Supported layers that must stay float because of a recurrent layer next to them, with why.

    Measured with TF 2.21 on a CNN + BiLSTM + attention model (digits rows):
    - upstream: any fake-quant before the LSTM (the Conv2D, or the input) made
      the converter's int8 LSTM collapse: 85.6% for the QAT Keras model, 26.9%
      for its int8 .tflite; with only the Dense head annotated, 86.6%;
    - downstream: with Concatenate or GlobalAveragePooling1D annotated after the
      BiLSTM, conversion fails ("Failed to duplicate values for the stateful op").
      A quantized Dense or convolution starts from a fresh range, so it ends that chain.
    """
    by_name = {layer.name: layer for layer in layers}

    def recurrent(layer: Any) -> bool:
        inner = getattr(layer, "forward_layer", None) or getattr(layer, "layer", None)
        return isinstance(layer, tf_keras.layers.RNN) or isinstance(inner, tf_keras.layers.RNN)

    found: dict[str, str] = {}
    for layer in layers:
        if not recurrent(layer):
            continue
        pending = [node for node in _inbound(layer) if node.name in by_name]
        while pending:
            ancestor = pending.pop()
            if ancestor.name not in found and not recurrent(ancestor):
                found[ancestor.name] = (
                    f"feeds recurrent layer {layer.name!r}; with a fake-quant before an LSTM the int8 .tflite lost "
                    "most of its accuracy (TF 2.21: 85.6% -> 26.9% on a CRNN)"
                )
                pending += [node for node in _inbound(ancestor) if node.name in by_name]
    source: dict[str, str] = {}  # layer -> the recurrent layer whose float output reaches it
    for layer in layers:  # model.layers is in topological order
        origins = [node.name if recurrent(node) else source.get(node.name) for node in _inbound(layer)]
        origin = next((o for o in origins if o), None)
        if origin is None or recurrent(layer) or (not notes[layer.name] and layer.weights):
            continue
        source[layer.name] = origin
        found.setdefault(
            layer.name,
            (
                f"reads the output of recurrent layer {origin!r} through float layers; with a fake-quant here the "
                "converter fails ('Failed to duplicate values for the stateful op', TF 2.21)"
            ),
        )
    return {name: note for name, note in found.items() if not notes[name]}
