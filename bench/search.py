"""`gate check` on the bundled models: each model's candidates, its stage times, and the wall time.

Runs `gate check --no-cache` (method = "auto", default -j, TensorFlow imported once
per worker) into a temporary folder, then prints from report.json what each
model's search tried, with the seconds each candidate took and its change against
the float model, and each model's stage times. Exits 1 if any model's search took
5 minutes or more.

    python bench/search.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gate.gating.pipeline import STAGES

REPO = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 300.0


def main() -> int:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        # check=False: gate exits 1 when a model fails, which the report says model by model.
        subprocess.run(
            [sys.executable, "-P", "-m", "gate.cli", "check", "--no-cache", "--out", out],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
        models = json.loads((Path(out) / "report.json").read_text())["models"]
    slow = []
    for model in models:
        search = model["stage_seconds"].get("search", 0.0)
        slow += [model["name"]] if search >= TARGET_SECONDS else []
        print(f"{model['name']}: {model['status']}, search {search:.1f} s; {model['choice'] or model['error'][:100]}")
        for index, candidate in enumerate(model["candidates"]):
            change = candidate["metric_change"]
            drop = "" if change is None else f"change {change:+.2f}"
            mark = "->" if index == model["chosen"] else "  "
            print(f"  {mark} {candidate['method']:<22} {candidate['status']:<5} {candidate['seconds']:6.1f} s  {drop}")
    stages = [stage for stage in STAGES if any(stage in m["stage_seconds"] for m in models)]
    print(f"\n{'stage seconds':<20} " + " ".join(f"{s:>10}" for s in stages) + f" {'sum':>7}")
    for model in models:
        seconds = model["stage_seconds"]
        cells = " ".join(f"{seconds.get(s, 0):>10.1f}" for s in stages)
        print(f"{model['name']:<20} {cells} {sum(seconds.values()):>7.1f}")
    print(f"\ngate check on {len(models)} bundled models: {wall:.1f} s wall time")
    print(f"target: every model's search under {TARGET_SECONDS:.0f} s" + (f"; too slow: {slow}" if slow else ""))
    return 1 if slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
