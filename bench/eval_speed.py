"""Batched LiteRT evaluation (what the gate does) against the per-sample loop tutorials use.

For every bundled model gate evaluates batched (a model with recurrent layers
has a fixed batch of one, so it is skipped): convert it to full-int8 exactly as the gate does,
then evaluate the whole eval set (1) with one `invoke` per sample, as in the
TFLite tutorials, and (2) with `gate.targets.litert.evaluate_tflite` at several batch
sizes. Both must give the same accuracy; the script prints samples/s and the
ratio, and exits 1 if batched evaluation at gate's EVAL_BATCH is not faster
on every model.

    python bench/eval_speed.py [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from gate.discover import find_model_folders, model_files  # noqa: E402
from gate.frontends.base import Dataset
from gate.frontends.data import load_dataset
from gate.frontends.keras import load_model
from gate.inspection import inspect_model  # noqa: E402
from gate.policy.config import load_policies  # noqa: E402
from gate.policy.manifest import parse_manifest  # noqa: E402
from gate.quantization.convert import full_integer  # noqa: E402
from gate.targets.litert import EVAL_BATCH, evaluate_tflite, from_model_output, to_model_input  # noqa: E402
from gate.tasks import TASKS  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BATCH_SIZES = (16, 64, 256)


def per_sample_loop(model_path: Path, data: Dataset, task: str, threads: int) -> float:
    """The tutorial loop: one set_tensor/invoke/get_tensor per sample. Returns the metric."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path), num_threads=threads)
    runner_inputs = interpreter.get_signature_runner("serving_default").get_input_details()
    for detail in runner_inputs.values():
        interpreter.resize_tensor_input(detail["index"], [1, *detail["shape"][1:]], strict=True)
    interpreter.allocate_tensors()
    output = interpreter.get_output_details()[0]
    outputs = []
    for i in range(data.samples):
        for name, detail in runner_inputs.items():
            interpreter.set_tensor(detail["index"], to_model_input(data.inputs[name][i : i + 1], detail))
        interpreter.invoke()
        outputs.append(from_model_output(interpreter.get_tensor(output["index"]), output))
    return TASKS[task].score(np.concatenate(outputs), data.labels)[0]


def best_of(repeats: int, run) -> tuple[float, object]:
    """Fastest of `repeats` runs (the least disturbed by other work on the machine)."""
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = run()
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    policies = load_policies(REPO / "policies")
    slower = []
    print(
        f"{'model':<20} {'samples':>7} {'per-sample loop':>17} "
        + " ".join(f"{f'batch {b}':>12}" for b in BATCH_SIZES)
        + f" {'ratio @' + str(EVAL_BATCH):>10}"
    )
    for folder in find_model_folders([REPO / "models"]):
        manifest = parse_manifest(folder.manifest, policies)
        files = model_files(folder)
        inspection = inspect_model(files.model)
        if inspection.has_recurrent_layers:
            print(f"{folder.name:<20} skipped: recurrent layers, evaluated one sample per invoke")
            continue
        with tempfile.TemporaryDirectory() as scratch:
            model = load_model(files.model, inspection, export_dir=Path(scratch) / "export", fixed_batch=False)
            data_args = {
                "model_folder": folder.path,
                "inputs": model.inputs,
                "task": manifest.task,
                "output_width": model.output_width,
            }
            data = load_dataset(files.eval_data, need_labels=True, **data_args)
            calibration = load_dataset(files.calib_data or files.train_data, need_labels=False, **data_args)
            artifact = Path(scratch) / "model.tflite"
            first = {n: a[: manifest.calibration_samples] for n, a in calibration.inputs.items()}
            artifact.write_bytes(full_integer(model.saved_model_dir, first, input_dtype="int8", output_dtype="int8"))
            loop_seconds, loop_metric = best_of(
                args.repeats, lambda: per_sample_loop(artifact, data, manifest.task, args.threads)
            )
            batched = {}
            for batch in BATCH_SIZES:
                seconds, evaluation = best_of(
                    args.repeats,
                    lambda b=batch: evaluate_tflite(artifact, data, manifest.task, threads=args.threads, batch_size=b),
                )
                assert abs(evaluation.value - loop_metric) < 1e-9, "batched and per-sample evaluation disagree"
                batched[batch] = seconds
        rate = lambda seconds: data.samples / seconds  # noqa: E731
        ratio = loop_seconds / batched[EVAL_BATCH]
        if ratio <= 1:
            slower.append(folder.name)
        print(
            f"{folder.name:<20} {data.samples:>7} {rate(loop_seconds):>11,.0f} smp/s "
            + " ".join(f"{rate(batched[b]):>6,.0f} smp/s" for b in BATCH_SIZES)
            + f" {ratio:>9.1f}×"
        )
    print(f"\n{args.threads} thread(s), best of {args.repeats}; same accuracy from both methods on every model.")
    if slower:
        print(f"batched evaluation is NOT faster on: {', '.join(slower)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
