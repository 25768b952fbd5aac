"""What ranking layers on fewer calibration samples costs in ranking quality, and what it saves.

gate.quantization.ranking.rank_layers runs one variant of the model per op (that op alone int8) on the first
RANKING_SAMPLES calibration samples. For the bundled outlier model (digits_outlier_mlp, whose fallback
needs the two ops around its outlier tensor) and digits_mobilenetv2, it ranks on the first N of 200
calibration samples, for each N, and prints the time, the top 5, how many of the top 5 on all 200 it
keeps, whether the order of the ops that matter is the same, and the accuracy with the first 2 ops float.

    python bench/ranking_samples.py
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

SAMPLES = (8, 16, 32, 64, 200)
MODELS = {"digits_outlier_mlp": "pixels", "digits_mobilenetv2": "image"}
TOP = 5


def accuracy(model: bytes, x: np.ndarray, y: np.ndarray, name: str) -> float:
    from gate.quantization.ranking import _run

    outputs, _ = _run(model, {name: x})
    return float(np.mean(np.argmax(outputs, axis=1) == y) * 100)


def main() -> None:
    from gate.frontends.keras import _load_keras3
    from gate.quantization import convert, fallback, ranking

    with tempfile.TemporaryDirectory() as tmp:
        for model_name, input_name in MODELS.items():
            folder = REPO / "models" / model_name
            loaded = _load_keras3(folder / "model.keras", Path(tmp) / model_name, fixed_batch=False)
            saved_model = loaded.saved_model_dir
            with np.load(folder / "train.npz") as train, np.load(folder / "eval.npz") as evaluation:
                calibration = {input_name: train["x"][:200].astype(np.float32)}
                x_eval, y_eval = evaluation["x"].astype(np.float32), evaluation["y"]
            convert.calibrated_model(saved_model, calibration, ranges_only=True)  # noqa: SLF001 - not timed: int8's own
            rankings = {}
            for samples in SAMPLES:
                start = time.perf_counter()
                rankings[samples] = ranking.rank_layers(saved_model, calibration, samples)
                seconds = time.perf_counter() - start
                ranked = rankings[samples]
                kept = fallback.convert_selective(
                    saved_model,
                    calibration,
                    keep_float=[x.tensor for x in ranked[:2]],
                    input_dtype="float32",
                    output_dtype="float32",
                )
                print(
                    f"{model_name} ({len(ranked)} ops), {samples:>3} samples: {seconds:5.1f} s; top {TOP}: "
                    f"{', '.join(layer.name for layer in ranked[:TOP])}; 2 float: "
                    f"{accuracy(kept, x_eval, y_eval, input_name):.2f}%",
                    flush=True,
                )
            full = [layer.name for layer in rankings[SAMPLES[-1]]]
            for samples in SAMPLES[:-1]:
                names = [layer.name for layer in rankings[samples]]
                top = min(TOP, len(full))
                same_top = len(set(names[:top]) & set(full[:top]))
                moved = sum(a != b for a, b in zip(names, full, strict=True))
                print(
                    f"  {samples:>3} samples against 200: {same_top} of the top {top} the same, "
                    f"{moved} of {len(full)} ops at another place"
                )


if __name__ == "__main__":
    main()
