"""What unrolling recurrent layers does to a .tflite: state between invokes, size, accuracy and conversion time.

For the bundled digits_crnn (conv, BiLSTM, attention) and the CRNN of
tests/test_qat.py (conv, BiLSTM, built here with its seed), each export form
(as it is, and unrolled over the time steps, as gate does unless the policy
says the app resets the state) and each way to full int8 (post-training int8
as gate's `int8` candidate converts it, and quantization-aware training as
`qat-int8` does): the file's bytes, the conversion's seconds, its variable
tensors, and its accuracy run one sample per invoke without a reset (as an app
that does not know runs it) and with interpreter.reset_all_variables() before
each invoke. Each conversion runs in a child process: as it is, a Keras 3
LSTM's int8 calibration dies with SIGSEGV.

`--repeat N` converts digits_crnn's unrolled export to int8 N times, each in a
process of its own, and prints each file's bytes, digest and float ops: TF
2.21's MLIR quantizer does not give the same file twice for an unrolled graph.

    PYTHONPATH=. python bench/recurrent_export.py [--repeat N]
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

REPO = Path(__file__).resolve().parent.parent
FORMS = {"as it is": False, "unrolled": True}


def build_test_crnn(folder: Path) -> None:
    """tests/test_qat.py's CRNN: Reshape, Conv2D(4), Reshape, Bidirectional(LSTM(8)), pooling, Dense; 10 epochs."""
    import keras
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8), name="rows"),
            keras.layers.Reshape((8, 8, 1)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
            keras.layers.Reshape((8, 32)),
            keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True)),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x[:1400], y[:1400], epochs=10, batch_size=32, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    np.savez(folder / "train.npz", x=x[:1400], y=y[:1400])
    np.savez(folder / "eval.npz", x=x[1400:], y=y[1400:])


def convert_int8(folder: Path, unroll: bool, out: Path) -> None:
    """The child process: load and export as gate does, then the `int8` candidate's conversion."""
    from gate.frontends.keras import load_model
    from gate.inspection import inspect_model
    from gate.quantization.base import Setup
    from gate.quantization.convert import convert

    model_file = folder / "model.keras"
    model = load_model(
        model_file, inspect_model(model_file), export_dir=out.parent / "export", fixed_batch=True, unroll=unroll
    )
    with np.load(folder / "train.npz") as train:
        setup = Setup(calibration={model.inputs[0].name: train["x"][:200]})
    start = time.perf_counter()
    tflite = convert(model.export_for(calibrated=True), method="int8", setup=setup).tflite
    seconds = time.perf_counter() - start
    out.write_bytes(tflite)
    print(json.dumps({"seconds": seconds}))


def post_training(folder: Path, unroll: bool, scratch: Path) -> tuple[Path | None, float, str]:
    out = scratch / f"ptq-{unroll}" / "model.tflite"
    out.parent.mkdir(parents=True)
    child = subprocess.run(
        [sys.executable, __file__, "--convert", str(folder), str(unroll), str(out)],
        capture_output=True,
        text=True,
        env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if child.returncode != 0:
        import signal

        why = f"died with {signal.Signals(-child.returncode).name}" if child.returncode < 0 else child.stderr[-200:]
        return None, 0.0, why
    return out, json.loads(child.stdout.splitlines()[-1])["seconds"], ""


def quantization_aware(folder: Path, unroll: bool, scratch: Path) -> tuple[Path | None, float, str]:
    import keras

    from gate.quantization.qat.job import QatRequest, QatStatus, run_qat, write_keras3_reference

    work = scratch / f"qat-{unroll}"
    work.mkdir()
    model = keras.saving.load_model(folder / "model.keras", compile=False)
    with np.load(folder / "eval.npz") as data:
        write_keras3_reference(
            model, {"rows": data["x"]}, weights_path=work / "weights.npz", reference_path=work / "reference.npz"
        )
    request = QatRequest(
        model_path=str(folder / "model.keras"),
        train_path=str(folder / "train.npz"),
        input_names=("rows",),
        task="classification",
        tflite_path=str(work / "model.tflite"),
        result_path=str(work / "result.json"),
        weights_path=str(work / "weights.npz"),
        reference_path=str(work / "reference.npz"),
        fixed_batch=True,
        unroll=unroll,
    )
    result = run_qat(request, request_path=work / "request.json", progress=lambda line: None)
    if result.status is not QatStatus.OK:
        return None, 0.0, result.reason
    return Path(request.tflite_path), result.seconds["convert"], ""


def accuracies(path: Path, folder: Path) -> tuple[float, float]:
    """Accuracy one sample per invoke, without and with a reset before each invoke."""
    from gate.frontends.base import InputSpec
    from gate.frontends.data import load_dataset
    from gate.targets.litert import evaluate_tflite

    rows = (InputSpec("rows", (8, 8), "float32"),)
    data = load_dataset(
        folder / "eval.npz", model_folder=folder, inputs=rows, task="classification", output_width=10, need_labels=True
    )
    without, with_resets = (
        evaluate_tflite(path, data, "classification", threads=1, batch_size=1, reset=r) for r in (False, True)
    )
    return without.value, with_resets.value


def main() -> None:
    from gate.targets.litert import variable_tensors

    print(
        f"{'model':<14} {'export':<9} {'method':<8} {'bytes':>8} {'convert':>8} {'variables':>9} "
        f"{'no reset':>9} {'reset':>8}"
    )
    with tempfile.TemporaryDirectory(prefix="recurrent-") as scratch:
        crnn_test = Path(scratch) / "test_crnn"
        build_test_crnn(crnn_test)
        for name, folder in (("digits_crnn", REPO / "models" / "digits_crnn"), ("test_crnn", crnn_test)):
            for form, unroll in FORMS.items():
                for method, convert in (("int8", post_training), ("qat-int8", quantization_aware)):
                    work = Path(scratch) / name / form.replace(" ", "-") / method
                    work.mkdir(parents=True)
                    path, seconds, failure = convert(folder, unroll, work)
                    if path is None:
                        print(f"{name:<14} {form:<9} {method:<8} {failure}")
                        continue
                    no_reset, reset = accuracies(path, folder)
                    print(
                        f"{name:<14} {form:<9} {method:<8} {path.stat().st_size:>8,} {seconds:>7.1f}s "
                        f"{variable_tensors(path):>9} {no_reset:>8.2f}% {reset:>7.2f}%",
                        flush=True,
                    )


def repeat(times: int) -> None:
    import hashlib

    from gate.targets.litert import describe

    with tempfile.TemporaryDirectory(prefix="recurrent-") as scratch:
        for run in range(times):
            work = Path(scratch) / str(run)
            work.mkdir()
            path, _seconds, failure = post_training(REPO / "models" / "digits_crnn", True, work)
            if path is None:
                print(f"run {run + 1}: {failure}")
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            float_ops = ", ".join(describe(path)[2]) or "none: integer-only"
            print(f"run {run + 1}: {path.stat().st_size:,} bytes, sha256 {digest}…, float ops: {float_ops}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--convert"]:
        convert_int8(Path(sys.argv[2]), sys.argv[3] == "True", Path(sys.argv[4]))
    elif sys.argv[1:2] == ["--repeat"]:
        repeat(int(sys.argv[2]))
    else:
        main()
