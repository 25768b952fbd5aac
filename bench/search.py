"""The candidate search on each bundled model: what was tried, how long each took, and the final drop.

Runs `gate check --no-cache` on the bundled models (method = "auto"), then prints
each model's candidates from report.json. Exits 1 if any model's search took 5
minutes or more.

    python bench/search.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 300.0


def main() -> int:
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [sys.executable, "-P", "-m", "gate.cli", "check", "--no-cache", "--out", out],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
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
    print(f"\ntarget: every model's search under {TARGET_SECONDS:.0f} s" + (f"; too slow: {slow}" if slow else ""))
    return 1 if slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
