"""Latency through pytest-benchmark: each .tflite timed at batch 1 in one run, alone on the machine.

gate.targets.litert builds the cases (batch-1 inputs from the real eval data); this module runs
gate/targets/latency_bench.py on them with `pytest.main` and reads the raw per-round timings back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from gate.errors import ModelError
from gate.results import Latency

LATENCY_BENCH = Path(__file__).with_name("latency_bench.py")


@dataclass(frozen=True)
class LatencyCase:
    """One .tflite to time in the pytest-benchmark run."""

    label: str
    model_path: Path
    feeds: tuple[dict[int, np.ndarray], ...]  # batch-1 inputs by tensor index, already in the input dtype
    threads: int
    rounds: int
    warmup_rounds: int


class _LatencyCases:
    """A pytest plugin that hands the cases to gate/latency_bench.py and runs each one alone on the machine."""

    def __init__(self, cases: Sequence[LatencyCase], alone: Callable[[], AbstractContextManager]) -> None:
        self.cases = cases
        self.alone = alone

    def pytest_generate_tests(self, metafunc) -> None:
        if "latency_case" in metafunc.fixturenames:
            metafunc.parametrize("latency_case", self.cases, ids=[c.label for c in self.cases])

    # Only the test itself (the interpreter, its warm-up and timed rounds) needs the machine alone.
    # pytest's start, its summary and the JSON with pytest-benchmark's machine_info took 0.6 s of
    # the 0.9 s a two-case run lasts on a small model, and every other worker would wait through them.
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        with self.alone():
            return (yield)


def measure_latency(
    cases: Sequence[LatencyCase],
    *,
    json_path: Path,
    work_dir: Path,
    alone: Callable[[], AbstractContextManager] = nullcontext,
) -> dict[str, Latency]:
    """Time every case in one pytest-benchmark run; keep its JSON at `json_path`.

    `alone` gives the context each case runs in: gate.scheduling.worker's pauses every other worker.
    p50 and p95 come from the raw per-round timings (pytest-benchmark reports
    no percentiles of its own).
    """
    ini = work_dir / "pytest.ini"
    ini.write_text("[pytest]\n")
    # Autoloaded third-party plugins could change the run; load only pytest-benchmark.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    args = [
        str(LATENCY_BENCH),
        "-q",
        "-c",
        str(ini),
        "--rootdir",
        str(work_dir),
        "-p",
        "no:cacheprovider",
        "-p",
        "pytest_benchmark.plugin",
        "--benchmark-json",
        str(json_path),
        "--benchmark-disable-gc",
        "--benchmark-timer",
        "time.perf_counter",
    ]
    exit_code = pytest.main(args, plugins=[_LatencyCases(cases, alone)])
    if exit_code != 0:
        raise ModelError(
            f"the latency benchmark failed (pytest exit code {int(exit_code)}); run with --verbose to see its output"
        )
    report = json.loads(json_path.read_text())
    latencies = {}
    by_label = {c.label: c for c in cases}
    for bench in report["benchmarks"]:
        case = by_label[bench["param"]]
        timings_ms = np.asarray(bench["stats"]["data"]) * 1000
        latencies[case.label] = Latency(
            threads=case.threads,
            rounds=len(timings_ms),
            warmup_rounds=case.warmup_rounds,
            p50_ms=float(np.percentile(timings_ms, 50)),
            p95_ms=float(np.percentile(timings_ms, 95)),
            mean_ms=float(timings_ms.mean()),
            stddev_ms=float(timings_ms.std(ddof=1)) if len(timings_ms) > 1 else 0.0,
            min_ms=float(timings_ms.min()),
        )
    return latencies
