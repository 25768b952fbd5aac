"""Where a candidate runs and what is measured there: LiteRT on the CI machine's CPU today (TARGETS).

A new target is a module with a `Target` (gate.targets.base) and one entry here.
"""

from __future__ import annotations

from gate.targets.base import Target
from gate.targets.litert import LITERT

TARGETS: dict[str, Target] = {target.name: target for target in (LITERT,)}
DEFAULT_TARGET = LITERT.name
