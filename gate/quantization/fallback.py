"""Float fallback (selective int8): keep the layers int8 hurts most in float, one more at a time, until it passes.

Chosen with bench/selective_quantization.py (see its docstring for the figures):

- Ranking is measured, not read off a per-tensor statistic: each layer is
  quantized alone (every other op float) and the model output is compared
  with the float model's. On an outlier channel (scripts/train_failing_example.py)
  the QuantizationDebugger's RMSE/scale, the TF guide's metric, rates the
  broken tensor 0.27, "healthy": its error is within one step of its own,
  far too coarse, scale. litert-quantizer's lowest-SNR-first ranks the
  consumer and the softmax above it. Both need 3 layers float where this
  ranking needs 2 (the debugger's 3 include the largest layer). Reverting
  one op at a time (NNCF, Neural Compressor) cannot see a tensor that needs
  both its producer and its consumer float: no single revert helps.
- Selective int8 uses TensorFlow's own MLIR quantizer, the one gate's int8
  method runs (`TFLiteConverter` calibrates; `mlir_quantize` quantizes), with
  the `denylisted_nodes` the QuantizationDebugger passes it. Called directly
  it also takes the model I/O types, which the debugger drops: int8, uint8 or
  float32 I/O, and an output op kept float still gets a quantized output.
  With nothing kept float it gives the same ops and scales as the int8 method.
- Each try of the search is spliced from the int8 model and the every-op-float
  one (gate.quantization.splice.KeptFloat: the quantizer's build, bit for bit,
  in tests/test_splice.py), 0.2 s instead of a 1.5 to 5.8 s quantizer call on
  issue 26's ResNet50; the layers the search chooses are then built by the
  quantizer, and that file is the one measured and published.

Imported only in the worker process, where TensorFlow is already imported;
TensorFlow is imported inside the functions.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import numpy as np

from gate.findings import LayerError
from gate.quantization.base import Built, NotApplicable, Setup
from gate.quantization.convert import calibrated_model, mlir_quantize
from gate.quantization.ranking import display_names, every_op_float, ranked_layers, tflite_ops, variable_layers
from gate.quantization.splice import KeptFloat

IO_DTYPES = ("int8", "uint8", "float32")  # what convert_selective's model I/O can be


def convert_selective(
    saved_model_dir: Path,
    calibration: Mapping[str, np.ndarray],
    *,
    keep_float: Sequence[str],
    input_dtype: str,
    output_dtype: str,
) -> bytes:
    """int8 everywhere except the layers named in keep_float, with model I/O of the given dtypes.

    `keep_float` holds `LayerError.name` or `LayerError.tensor` values from
    `rank_layers`. Each kept op gets DEQUANTIZE before and QUANTIZE after it,
    so its tensors are float32 while the model's I/O stays as asked.
    """
    for label, dtype in (("input_dtype", input_dtype), ("output_dtype", output_dtype)):
        if dtype not in IO_DTYPES:
            raise ValueError(f"{label}: expected one of {', '.join(IO_DTYPES)}, got {dtype!r}")
    calibrated = calibrated_model(saved_model_dir, calibration)
    ops = tflite_ops(calibrated)
    tensors = {name for op in ops for name in op.outputs}
    by_name = {}  # layer names: the search passes tensors, and naming every op reads the SavedModel's graph
    if any(name not in tensors for name in keep_float):
        by_name = {name: tensor for tensor, name in display_names(ops, variable_layers(saved_model_dir)).items()}
    unknown = [name for name in keep_float if name not in by_name and name not in tensors]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(by_name), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"keep_float: no layer named {', '.join(map(repr, unknown))}{hint}; rank_layers() lists the names"
        )
    denylist = [by_name.get(name, name) for name in keep_float]
    return mlir_quantize(calibrated, denylist=denylist, input_dtype=input_dtype, output_dtype=output_dtype)


# ---------------------------------------------------------------- TensorFlow's MLIR quantizer


# ---------------------------------------------------------------- litert-quantizer


# ---------------------------------------------------------------- the .tflite's ops, run and named


# ---------------------------------------------------------------- the candidates gate.quantization.methods registers


def build(saved_model_dir: Path, setup: Setup) -> Built:
    """The int8-float-fallback candidate: keep the most harmful layers float, one more at a time, until it passes."""
    assert setup.calibration is not None
    calibration = setup.calibration

    def selective(layers: Sequence[LayerError]) -> bytes:
        return convert_selective(
            saved_model_dir,
            calibration,
            keep_float=[layer.tensor for layer in layers],
            input_dtype=setup.input_dtype,
            output_dtype=setup.output_dtype,
        )

    tries = KeptFloat(selective([]), every_op_float(saved_model_dir, calibration))
    ranked, tflite, kept = grow_until_allowed(
        saved_model_dir, setup, selective, predict=lambda layers: tries.with_float([layer.tensor for layer in layers])
    )
    names = ", ".join(f"{layer.name} ({layer.op})" for layer in kept)
    return Built(
        tflite,
        (
            f"kept in float: {names}",
            f"{len(kept)} of {len(ranked)} layers, ranked by the output error each causes when quantized alone",
        ),
    )


def grow_until_allowed(
    saved_model_dir: Path,
    setup: Setup,
    convert: Callable[[list[LayerError]], bytes],
    leave_out: Collection[str] = (),
    predict: Callable[[list[LayerError]], bytes | None] | None = None,
) -> tuple[list[LayerError], bytes, list[LayerError]]:
    """Treat the most harmful layers apart (`convert` builds the model with them so), one more at a time.

    Layers are taken cumulatively in ranking order (a tensor may need both its producer and its consumer
    treated before anything improves, so one that did not help alone is not undone), and each build is
    measured on the eval set. The first build whose metric change the policy allows wins; if none does
    within `search.max_float_layers`, the best one. Returns the ranking, the build and its layers. Layers of an
    operator in `leave_out` are never treated apart (the target has no kernel for them treated so).

    `predict`, when given, builds each try faster than `convert` (None when it cannot), and `convert` builds only
    the winner, the file gate publishes. When that file does not measure as its prediction did, the search runs
    again with `convert` alone, so the choice is always `convert`'s own.
    """
    assert setup.calibration is not None and setup.loss is not None
    ranked = ranked_layers(saved_model_dir, setup.calibration)
    eligible = [layer for layer in ranked if layer.op not in leave_out]
    if not eligible and ranked:
        ops = ", ".join(sorted({layer.op for layer in ranked}))
        raise NotApplicable(f"the target has no kernel for any of its ranked layers' operators treated so ({ops})")
    if not eligible:
        raise NotApplicable("the model has no layer that int8 quantizes")
    if predict is not None:
        loss, predicted, kept = _grow(eligible, setup, lambda layers: predict(layers) or convert(layers))
        tflite = convert(kept)
        if tflite == predicted or setup.loss(tflite) == loss:
            return ranked, tflite, kept
    _, tflite, kept = _grow(eligible, setup, convert)
    return ranked, tflite, kept


def _grow(
    eligible: Sequence[LayerError], setup: Setup, build: Callable[[list[LayerError]], bytes]
) -> tuple[float, bytes, list[LayerError]]:
    """grow_until_allowed's search: (loss, build, layers) of the first build the policy allows, else the best one."""
    assert setup.loss is not None
    best: tuple[float, bytes, list[LayerError]] | None = None
    for count in range(1, min(setup.max_float_layers, len(eligible)) + 1):
        kept = list(eligible[:count])
        tflite = build(kept)
        loss = setup.loss(tflite)
        if best is None or loss < best[0]:
            best = (loss, tflite, kept)
        if setup.allowed_loss is not None and loss <= setup.allowed_loss:
            break
    assert best is not None  # eligible is not empty, and search.max_float_layers is at least 1
    return best
