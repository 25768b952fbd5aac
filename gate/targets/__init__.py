"""Where a candidate runs and what is measured there (TARGETS): LiteRT on the CI machine's CPU, TFLM, or Ethos-U.

A new target is a module with a `Target` (gate.targets.base), one entry in TARGETS, and its name and the figures
it adds in TARGET_FIGURES.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gate.targets.base import TARGET_FIGURES

if TYPE_CHECKING:
    from gate.targets.base import Target

DEFAULT_TARGET = "litert"
# The names alone, for what validates a policy or reads a report without NumPy or LiteRT (gate validate, gate
# comment); tests/test_tflm.py keeps them TARGETS' names.
TARGET_NAMES = tuple(TARGET_FIGURES)


def __getattr__(name: str) -> dict[str, Target]:
    """TARGETS, imported when first asked for: its modules import NumPy and LiteRT."""
    if name != "TARGETS":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from gate.targets.ethos_u import ETHOS_U
    from gate.targets.litert import LITERT
    from gate.targets.tflm import TFLM

    targets: tuple[Target, ...] = (LITERT, TFLM, *ETHOS_U)
    return {target.name: target for target in targets}
