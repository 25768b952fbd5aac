"""What the diagnosis finds when quantization hurts: each layer's error when it alone is int8 (`LayerError`) and
why, with what to do (`Finding`); frozen, as every result type is (gate.results holds them in a ModelResult)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LayerError:
    """How much one layer hurts the model when it alone is quantized to int8 (gate.quantization.ranking.rank_layers)."""

    name: str  # the Keras layer(s) the op computes, e.g. "features" or "Conv1_relu+bn_Conv1+Conv1"; unique
    op: str  # the TFLite op, e.g. "FULLY_CONNECTED", "CONV_2D"
    error: float  # output noise-to-signal ratio, sum((q - f)^2) / sum(f^2), with only this op int8 (the worst output)
    tensor: str  # the op's output tensor in the .tflite (what the MLIR quantizer's denylist names)
    scale: float  # the int8 scale of that output tensor
    channel_range_ratio: float  # widest channel's float range / the median channel's: ~1-10 normal, 100+ an outlier

    @property
    def snr_db(self) -> float:
        """The same error as a signal-to-noise ratio in dB (higher is better)."""
        return math.inf if self.error <= 0 else -10 * math.log10(self.error)


@dataclass(frozen=True)
class Finding:
    """Something the gate found out about why quantization fails, with what to do about it."""

    kind: str  # e.g. "input_range"
    title: str
    detail: str
