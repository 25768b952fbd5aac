"""The layer ranking's per-op models: spliced (gate.quantization.splice) against the quantizer's, op by op.

For every op the ranking measures, builds the model with that op alone int8 both ways, TensorFlow's MLIR
quantizer with every other op denylisted and `OneOpInt8.alone`, runs both on the first 64 calibration
samples and prints whether their outputs are identical, and the time each way took in all. The bundled
models by default (their first 200 training or calibration samples calibrate, as gate does); `resnet50_128`
is issue 26's ResNet50 (untrained keras.applications, seeded, 128×128, 32 generated calibration samples
uniform in [-1, 1]; minutes).

    python bench/ranking_splice.py [MODEL ...]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

BUNDLED = (
    "digits_cnn",
    "digits_outlier_mlp",
    "digits_mobilenetv2",
    "digits_wide_cnn",
    "breast_cancer_mlp",
    "machine_ad",
)


def load(name: str, folder: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """The model's SavedModel and its calibration samples."""
    import keras

    from gate.frontends.keras import _load_keras3

    if name == "resnet50_128":
        keras.utils.set_random_seed(0)
        keras.applications.ResNet50(weights=None, input_shape=(128, 128, 3), classes=10).save(folder / "r.keras")
        loaded = _load_keras3(folder / "r.keras", folder / "r", fixed_batch=False)
        x = np.random.default_rng(0).uniform(-1, 1, (32, 128, 128, 3)).astype(np.float32)
        return loaded.saved_model_dir, {loaded.inputs[0].name: x}
    source = REPO / "models" / name
    loaded = _load_keras3(source / "model.keras", folder / name, fixed_batch=False)
    data = source / "train.npz" if (source / "train.npz").exists() else source / "calib.npz"
    with np.load(data) as stored:
        return loaded.saved_model_dir, {loaded.inputs[0].name: stored["x"][:200].astype(np.float32)}


def main() -> None:
    from gate.quantization.convert import calibrated_model, mlir_quantize
    from gate.quantization.ranking import RANKING_SAMPLES, _rankable, _run, tflite_ops
    from gate.quantization.splice import OneOpInt8

    header = ("model", "ops", "identical", "differ", "not spliced", "quantizer s", "splice s")
    print(f"{header[0]:<20} " + " ".join(f"{column:>{max(len(column), 4)}}" for column in header[1:]))
    for name in sys.argv[1:] or BUNDLED:
        with tempfile.TemporaryDirectory() as tmp:
            saved_model, calibration = load(name, Path(tmp))
            calibrated = calibrated_model(saved_model, calibration)
            ops = tflite_ops(calibrated)
            every_tensor = [tensor for op in ops for tensor in op.outputs]

            def quantized(denylist: list[str], calibrated: bytes = calibrated) -> bytes:
                return mlir_quantize(calibrated, denylist=denylist, input_dtype="float32", output_dtype="float32")

            probe = {input_name: array[:RANKING_SAMPLES] for input_name, array in calibration.items()}
            start = time.perf_counter()
            one_op_int8 = OneOpInt8(quantized(every_tensor), quantized([]))  # what the ranking builds anyway
            splice_seconds, quantizer_seconds = time.perf_counter() - start, 0.0
            identical = differ = not_spliced = 0
            ranked = [op for op in ops if _rankable(op)]
            for op in ranked:
                start = time.perf_counter()
                spliced = one_op_int8.alone(op.outputs[0])
                splice_seconds += time.perf_counter() - start
                start = time.perf_counter()
                by_quantizer = quantized([tensor for tensor in every_tensor if tensor not in op.outputs])
                quantizer_seconds += time.perf_counter() - start
                if spliced is None:
                    not_spliced += 1
                elif all(
                    np.array_equal(ours, theirs)
                    for ours, theirs in zip(
                        _run(spliced, probe)[0].values(), _run(by_quantizer, probe)[0].values(), strict=True
                    )
                ):
                    identical += 1
                else:
                    differ += 1
            print(
                f"{name:<20} {len(ranked):>4} {identical:>9} {differ:>6} {not_spliced:>11} {quantizer_seconds:>11.2f} "
                f"{splice_seconds:>8.2f}",
                flush=True,
            )
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
