"""Time quantization-aware training (gate.quantization.qat) per model, and compare it with post-training quantization.

For each model: the QAT process's time to rebuild (or load) the model, to
check the rebuild's faithfulness, to train each epoch and to convert; and the
eval-set accuracy of the Keras 3 float model, of gate's own post-training int8
(`gate check` with only the int8 candidate; a converter crash ends only
that candidate) and of the QAT int8 .tflite. Models: the bundled ones under
models/, and three built here with fixed seeds on the scikit-learn digits.

    PYTHONPATH=. python bench/qat_time.py [--epochs N] [--only digits_crnn ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gate.policy.config import POLICY_KEYS
from gate.quantization.qat.job import QatRequest, QatStatus, run_qat, write_keras3_reference
from gate.targets.litert import from_model_output, to_model_input

REPO = Path(__file__).resolve().parent.parent
BUNDLED = tuple(sorted(p.parent.name for p in (REPO / "models").glob("*/model.keras")))
BUILT = ("digits_cnn_small", "digits_conv1d", "digits_bilstm_attention")
# Plain post-training int8 only (no search), and no latency checks, so `gate check` does not benchmark.
POLICY = """
[accuracy]
max_drop = 2.0
[io]
input_dtype = "int8"
output_dtype = "int8"
[search]
candidates = ["int8"]
"""


def build(name: str, folder: Path) -> None:
    """Train one of the BUILT models on the digits (8x8 images, or rows as 8 time steps); save it as gate expects."""
    import keras
    from sklearn.datasets import load_digits

    layers = keras.layers
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    rows = name != "digits_cnn_small"
    x = x if rows else x[..., None]
    keras.utils.set_random_seed(0)
    inputs = keras.Input(x.shape[1:], name="rows" if rows else "image")
    if name == "digits_cnn_small":
        h = layers.MaxPooling2D()(layers.Conv2D(16, 3, activation="relu")(inputs))
        outputs = layers.Dense(10, activation="softmax")(layers.Flatten()(h))
    elif name == "digits_conv1d":
        h = layers.Conv1D(16, 3, activation="relu")(layers.Rescaling(2.0, offset=-1.0)(inputs))
        outputs = layers.Dense(10, activation="softmax")(layers.Flatten()(h))
    else:  # tests/test_isolation.py's model, whose post-training int8 conversion dies with SIGSEGV
        h = layers.Bidirectional(layers.LSTM(8, return_sequences=True))(inputs)
        outputs = layers.Dense(10, activation="softmax")(layers.GlobalAveragePooling1D()(layers.Attention()([h, h])))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:1400], y[:1400], epochs=20, batch_size=32, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    np.savez(folder / "train.npz", x=x[:1400], y=y[:1400])
    np.savez(folder / "eval.npz", x=x[1400:], y=y[1400:])


def tflite_accuracy(path: Path, inputs: dict[str, np.ndarray], labels: np.ndarray) -> float:
    """Accuracy in LiteRT, inputs quantized as gate.targets.litert does; a fixed-batch model one sample at a time."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    runner = interpreter.get_signature_runner("serving_default")
    details, (output,) = runner.get_input_details(), runner.get_output_details().values()
    del runner  # it holds the interpreter's tensors, and resize_tensor_input refuses while anything does
    fixed = any(d["shape_signature"][0] == 1 for d in details.values())
    step = 1 if fixed else len(labels)
    scores = []
    for start in range(0, len(labels), step):
        feed = {name: to_model_input(inputs[name][start : start + step], d) for name, d in details.items()}
        for name, detail in details.items():
            interpreter.resize_tensor_input(detail["index"], list(feed[name].shape), strict=not fixed)
        interpreter.allocate_tensors()
        # A tf-keras LSTM becomes UNIDIRECTIONAL_SEQUENCE_LSTM, whose state tensors are variables:
        # without a reset, each sample starts from the previous sample's state.
        interpreter.reset_all_variables()
        for name, detail in details.items():
            interpreter.set_tensor(detail["index"], feed[name])
        interpreter.invoke()
        scores.append(from_model_output(interpreter.get_tensor(output["index"]), output))
    scores = np.concatenate(scores)
    predicted = (scores[:, 0] > 0.5).astype(np.int64) if scores.shape[1] == 1 else np.argmax(scores, axis=1)
    return float(np.mean(predicted == labels) * 100)


def post_training(folders: list[Path], work: Path) -> dict[str, dict]:
    """gate check on every folder: the float and PTQ int8 accuracy, or the error row."""
    (work / "policies").mkdir()
    for policy in (REPO / "policies").glob("*.toml"):  # the names the bundled gate.toml files use
        (work / "policies" / policy.name).write_text(POLICY)
    start = time.perf_counter()
    # check=False: gate exits 1 when a model fails or errs, which the report says model by model.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "gate.cli",
            "check",
            "--policies",
            str(work / "policies"),
            "--out",
            str(work / "gate-out"),
            *map(str, folders),
        ],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    print(
        f"gate check (post-training int8) on {len(folders)} models: {time.perf_counter() - start:.1f} s",
        file=sys.stderr,
    )
    return {m["name"]: m for m in json.loads((work / "gate-out" / "report.json").read_text())["models"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=POLICY_KEYS["qat.epochs"].default)
    parser.add_argument("--only", nargs="*", default=[], help="model names (default: all)")
    args = parser.parse_args(argv)
    import keras

    names = [n for n in (*BUNDLED, *BUILT) if not args.only or n in args.only]
    rows = []
    with tempfile.TemporaryDirectory(prefix="qat-bench-") as scratch:
        work = Path(scratch)
        folders = []
        for name in names:
            folder = work / "models" / name
            if name in BUNDLED:
                shutil.copytree(REPO / "models" / name, folder)
            else:
                build(name, folder)
            folders.append(folder)
        ptq = post_training(folders, work)
        for name, folder in zip(names, folders, strict=True):
            model = keras.saving.load_model(folder / "model.keras", compile=False, safe_mode=True)
            input_names = tuple(t.name.split(":")[0] for t in model.inputs)
            with np.load(folder / "eval.npz") as data:
                eval_inputs = {n: data["x" if "x" in data else f"x.{n}"].astype(np.float32) for n in input_names}
                labels = data["y"].astype(np.int64)
            write_keras3_reference(
                model,
                eval_inputs,
                weights_path=work / f"{name}.weights.npz",
                reference_path=work / f"{name}.reference.npz",
            )
            request = QatRequest(
                model_path=str(folder / "model.keras"),
                train_path=str(folder / "train.npz"),
                input_names=input_names,
                task="classification",
                tflite_path=str(work / f"{name}.qat-int8.tflite"),
                result_path=str(work / f"{name}.qat.json"),
                weights_path=str(work / f"{name}.weights.npz"),
                reference_path=str(work / f"{name}.reference.npz"),
                epochs=args.epochs,
            )
            print(f"{name}:", file=sys.stderr)
            start = time.perf_counter()
            result = run_qat(
                request,
                request_path=work / f"{name}.request.json",
                progress=lambda line: print(f"  {line}", file=sys.stderr),
            )
            wall = time.perf_counter() - start
            qat = (
                tflite_accuracy(Path(result.tflite.path), eval_inputs, labels)
                if result.status is QatStatus.OK
                else None
            )
            scores = np.asarray(model.predict([eval_inputs[n] for n in input_names], verbose=0))
            float_accuracy = float(np.mean(np.argmax(scores, axis=1) == labels) * 100)
            rows.append((name, result, wall, ptq.get(name, {}), float_accuracy, qat))
    print(f"\nQAT with {args.epochs} epoch(s), lr 1e-4, batch 32, seed 0; seconds measured inside the QAT process\n")
    print(
        f"{'model':<24} {'tf import':>9} {'rebuild':>7} {'faithful':>8} {'annotate':>8} {'train/epoch':>12} "
        f"{'convert':>8} {'QAT wall':>9}  "
        f"{'max |diff|':>10}  {'float':>7} {'PTQ int8':>9} {'QAT int8':>9}  annotated / float layers"
    )
    for name, result, wall, report, float_accuracy, qat in rows:
        s = result.seconds
        per_epoch = "/".join(f"{e.seconds:.1f}" for e in result.epochs) or "-"
        diff = f"{result.faithfulness.max_abs_diff:.2g}" if result.faithfulness else "-"
        candidate = (report.get("candidates") or [{}])[0]
        ptq_accuracy = ((candidate.get("conversion") or {}).get("evaluation") or {}).get("value")

        def cell(value: float | None) -> str:
            return f"{value:.2f}%" if value is not None else "-"

        print(
            f"{name:<24} {s.get('import tensorflow', 0):>8.1f}s {s.get('load', 0):>6.1f}s "
            f"{s.get('faithfulness', 0):>7.2f}s {s.get('annotate', 0):>7.1f}s {per_epoch:>11}s "
            f"{s.get('convert', 0):>7.1f}s {wall:>8.1f}s  {diff:>10}  {cell(float_accuracy):>7} "
            f"{cell(ptq_accuracy):>9} "
            f"{cell(qat):>9}  {len(result.annotated_layers)} / {len(result.unannotated_layers)}"
        )
        if report.get("error"):
            print(f"{'':<24} PTQ: {report['error'].splitlines()[0].split(': ', 1)[-1]}")  # without the folder path
        if result.status is not QatStatus.OK:
            print(f"{'':<24} QAT {result.status}: {result.reason.splitlines()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
