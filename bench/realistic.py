"""gate on realistic model sizes: ResNet50 and MobileNetV2 built in code, against the bare work, in one run.

Each case is a repository of its own in a temporary folder: an untrained keras.applications model
(weights=None, 10 classes, seeded), saved without optimizer state, generated inputs (seeded, uniform in
[-1, 1]; no downloads) labelled with the float model's own predictions, and a policy. On each, one after
the other, it runs `gate check --no-cache` and bench/bare_work.py's bare work (load, convert float32 and
int8, evaluate the Keras model and both files, 200 latency rounds each, the interval of the int8 change
and, when int8 lost accuracy, the layer ranking, as gate's report shows them; in one process) and prints
their wall time and peak memory: the resident memory of every process of the run summed (gate's workers and QAT's
process too), sampled every 0.1 s, so pages two processes share count twice. For gate it prints where
the time and the memory went, stage by stage (from its progress lines), and every candidate's time;
for the fallback, the layer ranking's time per layer.

CASES (all by default, or those named):
- resnet50_224, mobilenetv2_224: 224×224, 64 eval and 32 calibration samples, `SIZE_ONLY`: int8 I/O,
  at least 4× smaller than the source, latency timed but with a budget any file meets, and accuracy
  not judged (an untrained model's argmax is noise).
- resnet50_128: issue 26's ResNet50, 128×128, 64 eval and 32 calibration samples, `SIZE_ONLY`
  (targets: gate ≤ 1.5× the bare work's time and ≤ 1.3× its memory).
- resnet50_128_accuracy: the same model under `ACCURACY`: at most 2 points lost, size not judged, so
  int8 fails on accuracy and the fallback searches (target: the fallback ≤ 3× int8's time).

    python bench/realistic.py [CASE ...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SEED = 0
# Seconds are generous: a 224×224 ResNet50's search is minutes on 2 busy cores, and the figures are the point.
LIMITS = "[limits]\ntimeout_s = 7200\n[search]\nmax_seconds = 7200\ncandidate_timeout_s = 3600\n"
SIZE_ONLY = (
    '[size]\nmin_reduction = 4.0\nbaseline = "source"\n[accuracy]\nmax_drop = 100.0\n'
    '[io]\ninput_dtype = "int8"\noutput_dtype = "int8"\n[latency]\nmax_p50_ms = 1000000.0\n' + LIMITS
)
ACCURACY = '[accuracy]\nmax_drop = 2.0\n[io]\ninput_dtype = "int8"\noutput_dtype = "int8"\n' + LIMITS


@dataclass(frozen=True)
class Case:
    name: str
    architecture: str  # a keras.applications class
    side: int  # input height and width
    policy: str
    eval_samples: int = 64
    calibration_samples: int = 32


CASES = {
    case.name: case
    for case in (
        Case("resnet50_224", "ResNet50", 224, SIZE_ONLY),
        Case("mobilenetv2_224", "MobileNetV2", 224, SIZE_ONLY),
        Case("resnet50_128", "ResNet50", 128, SIZE_ONLY),
        Case("resnet50_128_accuracy", "ResNet50", 128, ACCURACY),
    )
}


def build(case: Case, folder: Path) -> None:
    """The model folder: model.keras without optimizer state, eval.npz labelled by the model, calib.npz, gate.toml."""
    import keras

    keras.utils.set_random_seed(SEED)
    model = getattr(keras.applications, case.architecture)(
        weights=None, input_shape=(case.side, case.side, 3), classes=10
    )
    rng = np.random.default_rng(SEED)
    x = rng.uniform(-1, 1, (case.eval_samples + case.calibration_samples, case.side, case.side, 3)).astype(np.float32)
    x_eval, x_calibration = x[: case.eval_samples], x[case.eval_samples :]
    y_eval = np.argmax(model.predict(x_eval, batch_size=16, verbose=0), axis=1)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")  # never compiled: no optimizer state
    np.savez(folder / "eval.npz", x=x_eval, y=y_eval)
    np.savez(folder / "calib.npz", x=x_calibration)
    (folder / "gate.toml").write_text(f'task = "classification"\ncalibration_samples = {case.calibration_samples}\n')
    (folder.parent.parent / "policies").mkdir()
    (folder.parent.parent / "policies" / "default.toml").write_text(case.policy)


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_bytes: int
    samples: list[tuple[float, int]]  # (seconds since start, bytes of every process of the run)
    lines: list[tuple[float, str]]  # (seconds since start, a line of its stderr)


def measured(command: list[str], cwd: Path) -> Run:
    """Run `command`, sampling the summed resident memory of it and every process it starts, every 0.1 s."""
    import psutil

    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(
        target=lambda: lines.extend((time.perf_counter() - start, line.rstrip()) for line in process.stderr)
    )
    reader.start()
    root = psutil.Process(process.pid)
    samples = []
    while process.poll() is None:
        total = 0
        try:
            for member in [root, *root.children(recursive=True)]:
                total += member.memory_info().rss
        except psutil.Error:  # a process ended meanwhile
            pass
        samples.append((time.perf_counter() - start, total))
        time.sleep(0.1)
    reader.join()
    seconds = time.perf_counter() - start
    if process.returncode not in (0, 1):  # 1: a model failed its policy, which a case may mean to show
        sys.exit(f"{' '.join(command)} exited {process.returncode}:\n" + "\n".join(line for _, line in lines[-30:]))
    return Run(seconds, max((b for _, b in samples), default=0), samples, lines)


def stages(run: Run) -> list[tuple[str, float]]:
    """Each of gate's progress lines ('[1/1] m: load 5.5 s') with the peak memory since the line before it."""
    result, since = [], 0.0
    for at, line in run.lines:
        if line.startswith("[1/1] ") and ": " in line:
            during = [b for t, b in run.samples if since <= t <= at] or [b for t, b in run.samples if t <= at][-1:]
            peak = max(during, default=0)
            result.append((line.split(": ", 1)[1][:100], peak / 2**30))
            since = at
    return result


def load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    import json

    names = sys.argv[1:] or list(CASES)
    if unknown := [name for name in names if name not in CASES]:
        sys.exit(f"no case {', '.join(unknown)}; the cases are {', '.join(CASES)}")
    ok = True
    for name in names:
        case = CASES[name]
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "models" / name
            subprocess.run([sys.executable, __file__, "--build", name, str(folder)], check=True, capture_output=True)
            source_mb = (folder / "model.keras").stat().st_size / 2**20
            print(
                f"\n{name}: {case.architecture} {case.side}×{case.side}, {source_mb:.1f} MiB .keras, "
                f"{case.eval_samples} eval / {case.calibration_samples} calibration samples"
            )
            before = load()
            gate = measured([sys.executable, "-P", "-m", "gate.cli", "check", "--no-cache", "--out", "out"], Path(tmp))
            bare = measured([sys.executable, str(REPO / "bench" / "bare_work.py"), str(folder)], REPO)
            print(f"  ({before} before, {load()} after)")
            print(f"  gate check --no-cache   {gate.seconds:7.1f} s  {gate.peak_bytes / 2**30:5.2f} GiB")
            print(f"  bare work               {bare.seconds:7.1f} s  {bare.peak_bytes / 2**30:5.2f} GiB")
            print(
                f"  gate / bare work        {gate.seconds / bare.seconds:7.2f} ×  "
                f"{gate.peak_bytes / bare.peak_bytes:5.2f} ×"
            )
            for stage, peak in stages(gate):
                print(f"    {stage:<70} peak {peak:5.2f} GiB")
            (model,) = json.loads((Path(tmp) / "out" / "report.json").read_text())["models"]
            print(f"  {model['status']}: {model['choice']}")
            seconds = {}
            for candidate in model["candidates"]:
                seconds[candidate["method"]] = candidate["seconds"]
                steps = ", ".join(f"{step} {value:.1f} s" for step, value in candidate["step_seconds"].items())
                print(f"    {candidate['method']:<22} {candidate['status']:<5} {candidate['seconds']:7.1f} s  {steps}")
                layers = next((note for note in candidate["notes"] if " layers, ranked" in note), "")
                if "ranking" in candidate["step_seconds"] and layers:
                    ranked = int(layers.split(" of ")[1].split()[0])
                    print(
                        f"      ranking: {ranked} layers, {candidate['step_seconds']['ranking'] / ranked:.2f} s "
                        f"a layer; {layers.split(',')[0]}"
                    )
            if case.policy is SIZE_ONLY and case.side == 128:
                ok &= gate.seconds <= 1.5 * bare.seconds and gate.peak_bytes <= 1.3 * bare.peak_bytes
                print("  targets: time ≤ 1.5 ×, memory ≤ 1.3 × the bare work's")
            if "int8-float-fallback" in seconds:
                ratio = seconds["int8-float-fallback"] / seconds["int8"]
                ok &= ratio <= 3
                print(f"  fallback / int8: {ratio:.2f} × (target ≤ 3 ×)")
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--build"]:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        build(CASES[sys.argv[2]], Path(sys.argv[3]))
    else:
        raise SystemExit(main())
