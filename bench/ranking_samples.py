"""What ranking layers on fewer calibration samples costs in ranking quality, and what it saves.

gate.quantization.ranking.rank_layers runs one variant of the model per op (that op alone int8) on the first
RANKING_SAMPLES calibration samples; a model of more than REFINED ops is screened first (every op on the first
SCREEN_SAMPLES, the REFINED worst again on all). For the bundled outlier model (digits_outlier_mlp, whose fallback
needs the two ops around its outlier tensor) and digits_mobilenetv2, it ranks every op on the first N of 200
calibration samples, for each N, and as gate does (screened, on 32 and 64), and prints the time, the top 5, how
many of the top 5 on all 200 it keeps, how many ops are at another place, and the accuracy with the first 2 ops
float.

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
SCREENED = (32, 64)  # as gate ranks: screened, then the worst measured again on these
SCREENS = (4, 8)  # the samples every op is screened on
MODELS = {"digits_outlier_mlp": "pixels", "digits_mobilenetv2": "image"}
TOP = 5


def accuracy(model: bytes, x: np.ndarray, y: np.ndarray, name: str) -> float:
    from gate.quantization.ranking import _run

    (outputs,) = _run(model, {name: x})[0].values()
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
            convert.calibrated_model(saved_model, calibration)  # noqa: SLF001 - not timed: int8's own
            rankings = {}
            # (label, samples, screen, refined): every op on all samples, then screened as gate ranks
            variants = [(f"every op on {n:>3}", n, n, 10**6) for n in SAMPLES]
            variants += [
                (f"screened on {screen}, worst {ranking.REFINED} on {n}", n, screen, ranking.REFINED)
                for n in SCREENED
                for screen in SCREENS
            ]
            for label, samples, screen, refined in variants:
                start = time.perf_counter()
                rankings[label] = ranking.rank_layers(saved_model, calibration, samples, screen=screen, refined=refined)
                seconds = time.perf_counter() - start
                ranked = rankings[label]
                kept = fallback.convert_selective(
                    saved_model,
                    calibration,
                    keep_float=[x.tensor for x in ranked[:2]],
                    input_dtype="float32",
                    output_dtype="float32",
                )
                print(
                    f"{model_name} ({len(ranked)} ops), {label}: {seconds:5.1f} s; top {TOP}: "
                    f"{', '.join(layer.name for layer in ranked[:TOP])}; 2 float: "
                    f"{accuracy(kept, x_eval, y_eval, input_name):.2f}%",
                    flush=True,
                )
            full = [layer.name for layer in rankings[variants[len(SAMPLES) - 1][0]]]
            for label, *_ in variants:
                names = [layer.name for layer in rankings[label]]
                top = min(TOP, len(full))
                same_top = len(set(names[:top]) & set(full[:top]))
                moved = sum(a != b for a, b in zip(names, full, strict=True))
                print(
                    f"  {label} against every op on 200: {same_top} of the top {top} the same, "
                    f"{moved} of {len(full)} ops at another place"
                )


if __name__ == "__main__":
    main()
