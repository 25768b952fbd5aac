"""Where a candidate runs and what is measured there (TARGETS): LiteRT on the CI machine's CPU, or TFLM.

A new target is a module with a `Target` (gate.targets.base) and one entry here.
"""

from __future__ import annotations

from gate.targets.base import Target
from gate.targets.litert import LITERT
from gate.targets.tflm import TFLM

TARGETS: dict[str, Target] = {target.name: target for target in (LITERT, TFLM)}
DEFAULT_TARGET = LITERT.name
