"""What each target's measurement costs per model: the MAC count (every target), TFLM's arena search, Vela.

Runs on the .tflite files a `gate check --out DIR` run published (`DIR/artifacts/*.tflite`), so the files are
exactly the ones gate measured:

    gate check --out gate-out && python bench/targets.py gate-out [--repeats 2]

For each file it prints the MAC count and the seconds reading the graph took, then TFLM's smallest arena, its
recorded total, how many processes the search started and its seconds, and Vela's compile for an ethos-u55-128
with its seconds (each repeat: the byte figures must not move between repeats; the seconds do, with the
machine's load). The TFLM eval run is not included: it is one process over the eval set (its seconds are the
candidate's `evaluation` step in report.json). Vela-optimised files (*.vela.tflite) are skipped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from gate.targets import ethos_u, graph, tflm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    files = sorted(p for p in (args.out_dir / "artifacts").glob("*.tflite") if not p.name.endswith(".vela.tflite"))
    if not files:
        print(f"{args.out_dir}/artifacts holds no .tflite: run gate check --out {args.out_dir} first", file=sys.stderr)
        return 2
    print(
        f"{'file':44} {'MACs':>12} {'graph s':>8} {'arena B':>9} {'recorded B':>10} {'procs':>5} {'arena s':>8} "
        f"{'U55 SRAM B':>10} {'vela s':>7}"
    )
    for path in files:
        for _ in range(args.repeats):
            started = time.perf_counter()
            macs = graph.count_macs(graph.read_graph(path.read_bytes())).total
            read_seconds = time.perf_counter() - started
            started = time.perf_counter()
            try:
                arena = tflm.find_arena(path)
            except tflm.TflmError as exc:
                print(f"{path.name:44} {macs:>12,} {read_seconds:>8.3f}  TFLM: {exc}")
                continue
            seconds = time.perf_counter() - started
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as folder:
                try:
                    report = ethos_u.compile_model(path, Path(folder) / "v.tflite", accelerator="ethos-u55-128")
                    sram = f"{report.sram_bytes:,}"
                except ethos_u.VelaError as exc:
                    sram = f"Vela: {exc}"[:60]
            vela_seconds = time.perf_counter() - started
            print(
                f"{path.name:44} {macs:>12,} {read_seconds:>8.3f} {arena.smallest:>9,} {arena.recorded_total:>10,} "
                f"{arena.processes:>5} {seconds:>8.2f} {sram:>10} {vela_seconds:>7.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
