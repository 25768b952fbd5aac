"""Peak memory of `gate check` (every process it starts) against the bare work, on a 9 MB MobileNetV2.

The model: Keras' MobileNetV2 at 96x96x3, 10 classes, seeded random weights (2.24 M parameters, 9 MB as
model.keras), with 300 eval and 200 training samples, gated with `method = "int8"` under the default policy.
`gate check --no-cache -j 1` runs in a fresh process; its peak is the largest sum, over one sampling instant,
of the resident memory of the command and every process under it (the worker, pytest-benchmark's run).
The bare work is `bench/bare_work.py` on the same folder (one process: load, convert float32 and int8,
evaluate, time, interval, ranking), sampled the same way. Prints both peaks and their ratio (target ≤ 1.2x).

    python bench/memory.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
TARGET = 1.2
SAMPLE_SECONDS = 0.05


def build_model(folder: Path) -> None:
    """The model folder: model.keras, eval.npz, train.npz and a gate.toml asking for int8 only."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=1.0, weights=None, classes=10)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    rng = np.random.default_rng(0)
    for name, samples in (("eval", 300), ("train", 200)):
        x = rng.uniform(-1, 1, (samples, 96, 96, 3)).astype(np.float32)
        # The float model's own answers as labels: it scores 100%, int8 loses some, and both sides rank the layers.
        np.savez(folder / f"{name}.npz", x=x, y=np.argmax(model.predict(x, verbose=0), axis=1))
    (folder / "gate.toml").write_text('method = "int8"\n')


def peak_rss(command: list[str], cwd: Path) -> tuple[int, float, str]:
    """(peak summed RSS in bytes of `command` and all its descendants, wall seconds, its output); exits on failure."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        total = 0
        try:
            for member in (root, *root.children(recursive=True)):
                try:
                    total += member.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            break
        peak = max(peak, total)
        time.sleep(SAMPLE_SECONDS)
    output = process.stdout.read() if process.stdout else ""
    if process.returncode not in (0, 1):  # 1: a check failed, which the random weights may well make it
        sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{output}")
    return peak, time.perf_counter() - start, output


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "policies").mkdir()
        (root / "policies" / "default.toml").write_text((REPO / "policies" / "default.toml").read_text())
        folder = root / "models" / "mobilenetv2_96"
        build_model(folder)
        size = (folder / "model.keras").stat().st_size
        gate_peak, gate_seconds, _ = peak_rss(
            [
                sys.executable,
                "-P",
                "-m",
                "gate.cli",
                "check",
                "--no-cache",
                "-j",
                "1",
                "--out",
                str(root / "out"),
                str(folder),
            ],
            root,
        )
        bare_peak, bare_seconds, bare_output = peak_rss(
            [sys.executable, str(REPO / "bench" / "bare_work.py"), str(folder)], REPO
        )
        report = json.loads((root / "out" / "report.json").read_text())
        gate_ranked = bool(report["models"][0]["layer_errors"])
        bare_ranked = "worst layer" in bare_output
    ratio = gate_peak / bare_peak
    mib = 1024 * 1024
    print(f"model.keras {size / mib:.1f} MiB (MobileNetV2 96x96, int8 only)")
    print(f"gate check  peak {gate_peak / mib:7.0f} MiB over all its processes  ({gate_seconds:.0f} s)")
    print(f"bare work   peak {bare_peak / mib:7.0f} MiB in one process           ({bare_seconds:.0f} s)")
    print(f"ratio {ratio:.2f}x (target <= {TARGET}x)")
    print(f"layers ranked: by gate {gate_ranked}, by the bare work {bare_ranked} (the same work when both are)")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
