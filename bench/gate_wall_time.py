"""Wall time of `gate check` on the bundled models, in total and per model and stage.

Runs the real command (TensorFlow import included, one worker process per
model) into a temporary folder, then reads each model's stage times from the
report.json it wrote. Exits 1 if the whole run takes 60 s or more.

    python bench/gate_wall_time.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gate.pipeline import STAGES

REPO = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 60.0


def main() -> int:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "gate.cli", "check", "--out", out], cwd=REPO, capture_output=True, text=True
        )
        total = time.perf_counter() - start
        if done.returncode != 0:
            print(done.stdout + done.stderr, file=sys.stderr)
            return 1
        models = json.loads((Path(out) / "report.json").read_text())["models"]
    stages = [stage for stage in STAGES if any(stage in m["stage_seconds"] for m in models)]
    print(f"{'model':<20} " + " ".join(f"{s:>17}" for s in stages) + f" {'sum':>7}")
    for model in models:
        seconds = model["stage_seconds"]
        print(
            f"{model['name']:<20} "
            + " ".join(f"{seconds.get(s, 0):>15.1f} s" for s in stages)
            + f" {sum(seconds.values()):>5.1f} s"
        )
    print(f"\ngate check on {len(models)} bundled models: {total:.1f} s wall time (target < {TARGET_SECONDS:.0f} s)")
    return 0 if total < TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
