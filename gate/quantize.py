"""Convert the float model to .tflite with a method of gate.methods: the float32 reference and each candidate.

The same SavedModel, method and calibration data give byte-identical output
(tested), so an artifact's sha256 identifies how it was made; except for an
unrolled recurrent graph, which TF 2.21's MLIR quantizer does not quantize the
same way twice (README, "Recurrent layers").
"""

from __future__ import annotations

from pathlib import Path

from gate.errors import ModelError
from gate.methods import METHODS, Built, NotApplicable, Setup


def convert(saved_model_dir: Path, *, method: str, setup: Setup = Setup()) -> Built:
    """Build a .tflite with one method of the registry; a converter failure is a ModelError saying why."""
    try:
        return METHODS[method].build(saved_model_dir, setup)
    except (ModelError, NotApplicable):
        raise
    except Exception as exc:  # noqa: BLE001 - the converter raises many types, all meaning "cannot convert"
        raise ModelError(f"TFLite conversion ({method}) failed: {converter_error(exc)}") from None


def converter_error(exc: Exception) -> str:
    """The converter's first error, without the MLIR location that precedes it."""
    lines = (
        [line for line in str(exc).splitlines() if "error:" in line] or str(exc).splitlines() or [type(exc).__name__]
    )
    message = lines[0].split("error:", 1)[-1].strip()
    if message.startswith("loc("):  # loc(callsite(fused[...] at ...)): message
        depth = 0
        for position, char in enumerate(message):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if char == ")" and depth == 0:
                message = message[position + 1 :].lstrip(": ")
                break
    if "TensorListReserve" in message:
        # Only a SavedModel gets here: for a Keras file the gate fixes the batch itself.
        message += "; recurrent layers need a static batch: export the SavedModel with a signature of batch 1"
    return message[:400]
