"""The Keras 3 layer classes gate rebuilds in tf-keras, and how each one's config is translated.

tf-keras 2.21's from_config rejects some of keras 3.15's get_config options: `LAYERS` says which may be dropped
(and at which values dropping them changes nothing) or renamed; tests/test_qat_rebuild.py checks the table
against the installed versions. Plain JSON only: no TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ANY = "any value"  # a Keras 3-only option that may be dropped whatever its value


@dataclass(frozen=True)
class LayerTranslation:
    """How one Keras 3 layer class becomes the tf-keras class of the same name."""

    # Keras 3-only options tf-keras rejects, with the values at which leaving them out changes nothing.
    dropped: Mapping[str, Sequence[Any] | str] = field(default_factory=dict)
    renamed: Mapping[str, str] = field(default_factory=dict)  # Keras 3 option -> tf-keras option
    nested: tuple[str, ...] = ()  # options holding a layer config (wrappers)
    recurrent: bool = False  # the converter needs a static batch (tf.TensorListReserve)


_LORA = {"quantization_config": (None,), "lora_rank": (None,), "lora_alpha": ANY}


_SEEDED = {"seed": ANY}  # dropout seeds: tf-keras draws from the global seed QAT sets instead


# The layer classes gate rebuilds. "dropped" lists what tf-keras 2.21's from_config
# rejects from keras 3.15's get_config (tests/test_qat_rebuild.py checks the table
# against the installed versions). Everything else is passed on unchanged.
LAYERS: dict[str, LayerTranslation] = {
    "Dense": LayerTranslation(dropped=_LORA),
    "Embedding": LayerTranslation(dropped=_LORA),
    "Conv1D": LayerTranslation(),
    "Conv2D": LayerTranslation(),
    "Conv1DTranspose": LayerTranslation(),
    "Conv2DTranspose": LayerTranslation(),
    "DepthwiseConv1D": LayerTranslation(),
    "DepthwiseConv2D": LayerTranslation(),
    "SeparableConv1D": LayerTranslation(),
    "SeparableConv2D": LayerTranslation(),
    "BatchNormalization": LayerTranslation(),
    "LayerNormalization": LayerTranslation(dropped={"rms_scaling": (False,)}),
    "UnitNormalization": LayerTranslation(),
    "MaxPooling1D": LayerTranslation(),
    "MaxPooling2D": LayerTranslation(),
    "AveragePooling1D": LayerTranslation(),
    "AveragePooling2D": LayerTranslation(),
    "GlobalAveragePooling1D": LayerTranslation(),
    "GlobalAveragePooling2D": LayerTranslation(),
    "GlobalMaxPooling1D": LayerTranslation(),
    "GlobalMaxPooling2D": LayerTranslation(),
    "Flatten": LayerTranslation(),
    "Reshape": LayerTranslation(),
    "Permute": LayerTranslation(),
    "RepeatVector": LayerTranslation(),
    "Cropping1D": LayerTranslation(),
    "Cropping2D": LayerTranslation(),
    "ZeroPadding1D": LayerTranslation(dropped={"data_format": ("channels_last",)}),
    "ZeroPadding2D": LayerTranslation(),
    "UpSampling1D": LayerTranslation(),
    "UpSampling2D": LayerTranslation(),
    "Dropout": LayerTranslation(),
    "SpatialDropout1D": LayerTranslation(),
    "SpatialDropout2D": LayerTranslation(),
    "GaussianNoise": LayerTranslation(),
    "GaussianDropout": LayerTranslation(),
    "Activation": LayerTranslation(),
    "ReLU": LayerTranslation(),
    "Softmax": LayerTranslation(),
    "ELU": LayerTranslation(),
    "PReLU": LayerTranslation(),
    "LeakyReLU": LayerTranslation(renamed={"negative_slope": "alpha"}),
    "Add": LayerTranslation(),
    "Subtract": LayerTranslation(),
    "Multiply": LayerTranslation(),
    "Average": LayerTranslation(),
    "Maximum": LayerTranslation(),
    "Minimum": LayerTranslation(),
    "Concatenate": LayerTranslation(),
    "Dot": LayerTranslation(),
    "Rescaling": LayerTranslation(),
    "Normalization": LayerTranslation(),
    "Masking": LayerTranslation(),
    "LSTM": LayerTranslation(dropped=_SEEDED, recurrent=True),
    "GRU": LayerTranslation(dropped=_SEEDED, recurrent=True),
    "SimpleRNN": LayerTranslation(dropped=_SEEDED, recurrent=True),
    "Bidirectional": LayerTranslation(nested=("layer", "backward_layer"), recurrent=True),
    "TimeDistributed": LayerTranslation(nested=("layer",)),
    "Attention": LayerTranslation(dropped=_SEEDED),
    "AdditiveAttention": LayerTranslation(dropped=_SEEDED),
    "MultiHeadAttention": LayerTranslation(dropped=_SEEDED | {"use_gate": (False,), "sliding_window": (None,)}),
}


# Activations that tf-keras 2.21 computes exactly as keras 3.15 does (tested on a grid).
SAME_ACTIVATIONS = frozenset(
    {
        "elu",
        "exponential",
        "gelu",
        "leaky_relu",
        "linear",
        "log_softmax",
        "mish",
        "relu",
        "relu6",
        "selu",
        "sigmoid",
        "silu",
        "softmax",
        "softplus",
        "softsign",
        "swish",
        "tanh",
    }
)


# Keras 3 activations tf-keras lacks or defines differently (its hard_sigmoid is
# clip(0.2x + 0.5); Keras 3's is relu6(x + 3) / 6): built from gate's own
# implementation of the Keras 3 formula, registered under these names.
KERAS3_ACTIVATIONS = {
    "hard_sigmoid": "keras3_hard_sigmoid",
    "hard_silu": "keras3_hard_silu",
    "hard_swish": "keras3_hard_silu",
}


REGULARIZERS = frozenset({"L1", "L2", "L1L2", "OrthogonalRegularizer"})


CONSTRAINTS = frozenset({"MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"})


NESTED_MODELS = frozenset({"Functional", "Sequential", "Model"})


LAYER_MODULES = frozenset({"keras.layers"})


def holds_object(value: Any) -> bool:
    if isinstance(value, dict):
        return "class_name" in value or any(holds_object(v) for v in value.values())
    if isinstance(value, list):
        return any(holds_object(v) for v in value)
    return False


def translated_activation(subject: str, key: str, value: Any, problems: list[str]) -> str | None:
    if isinstance(value, dict) and value.get("class_name") == "function":
        value = value.get("config")
    if value is None:
        return None
    if isinstance(value, str) and value in SAME_ACTIVATIONS:
        return value
    if isinstance(value, str) and value in KERAS3_ACTIVATIONS:
        return KERAS3_ACTIVATIONS[value]
    problems.append(
        f"{subject}: {key} {value!r} is not an activation gate can rebuild in tf-keras; use one of "
        f"{', '.join(sorted(SAME_ACTIVATIONS | set(KERAS3_ACTIVATIONS)))}"
    )
    return None


def keras_object(subject: str, key: str, value: Any, allowed: frozenset[str], problems: list[str]) -> dict | None:
    if value is None:
        return None
    class_name = value.get("class_name") if isinstance(value, dict) else value
    config = value.get("config", {}) if isinstance(value, dict) else {}
    if class_name not in allowed or not isinstance(config, dict) or holds_object(config):
        problems.append(
            f"{subject}: {key} {class_name!r} is not one gate can rebuild; use one of {', '.join(sorted(allowed))}"
        )
        return None
    return {"class_name": class_name, "config": config}  # tf-keras' own lookup: no module is imported
