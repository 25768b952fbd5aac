"""The one registry of quantization methods, as gate.policy.judge's CHECKS is for checks.

Each method carries its name, what it is, the data it needs, what it produces
(integer or float model I/O, float ops left or not, so that a policy that
cannot be met rules it out before it is tried) and how it is built. The
manifest's `method` key, the search (`method = "auto"` tries them in this
order, from the most to the least deployable), the pipeline and the docs'
method table (tested against `METHODS`) all read it: adding a method is one
entry here, and its builder in a module of its own that imports gate.quantization.base.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path

from gate.quantization.base import AUTO, REFERENCE, Built, Method, Setup


def implemented_in(where: str) -> Callable[[Path, Setup], Built]:
    """The builder `module:function`, imported when a candidate is built (in the worker, where TensorFlow is).

    Reading the registry (gate comment, gate plan, gate validate) then needs the standard library alone:
    the builders import NumPy and TensorFlow.
    """
    module, _, function = where.partition(":")

    def build(saved_model_dir: Path, setup: Setup) -> Built:
        return getattr(importlib.import_module(module), function)(saved_model_dir, setup)

    return build


# Each of these stores every weight int8 does in at least as many bytes (int8 again, with more calibration or
# after QAT; float32 for layers kept in float; int16 activations' int64 biases; float16): never a smaller file. Dynamic
# range is not among them: it stores no activation scales, so nothing keeps its file above int8's. Each also keeps every
# activation int8 keeps in at least as many bytes (int8 again; int16; float32), so none needs a smaller tensor arena.
NEVER_SMALLER_THAN_INT8 = {"size.min_reduction": "int8", "memory.max_arena_kib": "int8"}

METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method(
            REFERENCE,
            "float32 .tflite: no quantization; the reference every method is measured against",
            needs_calibration=False,
            build=implemented_in("gate.quantization.post_training:float32"),
            io="float32",
            float_ops=True,
            selectable=False,
        ),
        Method(
            "int8",
            "Full-integer int8 post-training quantization: int8 weights and activations, calibrated on "
            "the first `calibration_samples` of the calibration data; model I/O as `io.input_dtype`/"
            "`io.output_dtype` say (int8 by default).",
            needs_calibration=True,
            build=implemented_in("gate.quantization.post_training:int8"),
        ),
        Method(
            "int8-all-calibration",
            "As `int8`, calibrated on every calibration sample there is: helps when "
            "the first samples miss part of the activations' range.",
            needs_calibration=True,
            build=implemented_in("gate.quantization.post_training:int8_all_calibration"),
            no_better_than=NEVER_SMALLER_THAN_INT8,
        ),
        Method(
            "qat-int8",
            "Quantization-aware training (tensorflow-model-optimization) on train.npz for "
            "`qat.epochs`, then full-int8 conversion; Keras 3 models are rebuilt in tf-keras first, and the "
            "rebuild is shown to be faithful before training.",
            needs_calibration=True,
            build=implemented_in("gate.quantization.qat.job:build"),
            no_better_than=NEVER_SMALLER_THAN_INT8,
            needs_training_data=True,
        ),
        Method(
            "int8-float-fallback",
            "Selective quantization: int8 everywhere except the fewest layers that "
            "quantization harms most, found by measurement (layers ranked by their quantization error, then "
            "kept in float one by one until the metric is within the policy); model I/O as for `int8`.",
            needs_calibration=True,
            build=implemented_in("gate.quantization.fallback:build"),
            no_better_than=NEVER_SMALLER_THAN_INT8,
            float_ops=True,
        ),
        Method(
            "int8-int16-layers",
            "Integer-only selective quantization: int8 everywhere except the layers `int8-float-fallback` would "
            "keep in float (the same ranking, one more at a time until the metric is within the policy), which get "
            "int16 activations instead; int8 I/O (litert-quantizer). For integer-only microcontrollers and NPUs.",
            needs_calibration=True,
            build=implemented_in("gate.quantization.int16x8:build_on_ranked_layers"),
            no_better_than=NEVER_SMALLER_THAN_INT8,
            int16_activations="ranked",
        ),
        Method(
            "int16x8",
            "int16 activations with int8 weights (16x8): 256 times finer activations where int8 "
            "ones collapse; int8 I/O by requantizing at the edges (litert-quantizer), or float32 I/O when the "
            "policy asks for it; slower reference kernels.",
            needs_calibration=True,
            build=implemented_in("gate.quantization.int16x8:build"),
            no_better_than=NEVER_SMALLER_THAN_INT8,
            int16_activations="all",
        ),
        Method(
            "dynamic_range",
            "Dynamic-range quantization: int8 weights, float activations and float I/O.",
            needs_calibration=False,
            build=implemented_in("gate.quantization.post_training:dynamic_range"),
            io="float32",
            float_ops=True,
        ),
        Method(
            "float16",
            "float16 weights; float32 activations and I/O.",
            needs_calibration=False,
            build=implemented_in("gate.quantization.post_training:float16"),
            no_better_than=NEVER_SMALLER_THAN_INT8,
            io="float32",
            float_ops=True,
        ),
    )
}

SELECTABLE = tuple(name for name, method in METHODS.items() if method.selectable)
METHOD_CHOICES = (AUTO, *SELECTABLE)


def search_order(method: str, restrict: Sequence[str] = ()) -> tuple[str, ...]:
    """The candidates a manifest's `method` asks for: one method, or for "auto" every one in order (or `restrict`'s)."""
    if method != AUTO:
        return (method,)
    return tuple(name for name in SELECTABLE if not restrict or name in restrict)
