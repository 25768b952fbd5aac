"""How gate scales on this machine: a fully cached run, -j 1 against -j 2, and gate against the bare work.

Runs the real commands on the bundled models, each into a fresh temporary folder:

1. `gate check` twice with one cache: the second run reuses every result (target < 3 s);
2. `gate check --no-cache -j 1` and `-j 2` (target: -j 2 at most 0.8 × -j 1 on 2 cores);
3. `gate check --no-cache` (cold, the default -j, isolation kept) against `bench/bare_work.py`,
   the shortest single-process script that computes the figures gate's report shows (target ≤ 1.0 ×),
   both on bare_work's MODELS (the bundled models whose published candidate is plain int8).
   PAIRS runs of each, taken in turn so that both see the same state of the machine; the
   ratio is the median of the pairs' (one pair's ratio ranged from 0.70 to 1.19 × in one run here).
   `bare_work.py --convert-only` (without the interval and the ranking) is printed beside it.

Exits 1 when a target is missed.

    python bench/scale.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from bare_work import MODELS  # noqa: E402

PAIRS = 3


def gate(*args: str | Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-P", "-m", "gate.cli", "check", *map(str, args)], cwd=REPO, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"gate check {' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}")
    return seconds


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        first = gate("--out", tmp / "warm", "--cache", tmp / "cache")
        cached = gate("--out", tmp / "cached", "--cache", tmp / "cache")
        serial = gate("--no-cache", "-j", "1", "--out", tmp / "j1")
        parallel = gate("--no-cache", "-j", "2", "--out", tmp / "j2")
        default = gate("--no-cache", "--out", tmp / "default")
        pairs = [
            (gate("--no-cache", "--out", tmp / f"same{i}", *(REPO / "models" / name for name in MODELS)), bare_work())
            for i in range(PAIRS)
        ]
        convert_only = bare_work("--convert-only")
    ratios = sorted(gated / bare for gated, bare in pairs)
    ratio = ratios[len(ratios) // 2]
    cores = os.cpu_count()
    print(f"fully cached gate check:        {cached:6.2f} s (first run {first:.1f} s; target < 3 s)")
    print(f"gate check -j 1:                {serial:6.1f} s")
    print(f"gate check -j 2:                {parallel:6.1f} s = {parallel / serial:.2f} × -j 1 (target ≤ 0.8 ×)")
    print(f"gate check (default -j {cores}):     {default:6.1f} s")
    print(f"on {', '.join(MODELS)}, {PAIRS} pairs in turn:")
    for gated, bare in pairs:
        print(f"  gate check (default -j) {gated:5.1f} s, bench/bare_work.py {bare:5.1f} s: {gated / bare:.2f} ×")
    print(f"  gate check cold / bare work: {ratio:6.2f} × median (target ≤ 1.0 ×)")
    median_gate = sorted(gated for gated, _ in pairs)[len(pairs) // 2]
    print(f"  bare_work.py --convert-only: {convert_only:6.1f} s (gate median / it: {median_gate / convert_only:.2f})")
    ok = cached < 3 and parallel <= 0.8 * serial and ratio <= 1.0
    return 0 if ok else 1


def bare_work(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, str(REPO / "bench" / "bare_work.py"), *args, *MODELS],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


if __name__ == "__main__":
    raise SystemExit(main())
