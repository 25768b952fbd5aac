"""Build models/machine_ad: MLPerf Tiny's anomaly detector on generated machine sound (task = "anomaly").

The model is the Dense autoencoder of mlcommons/tiny (benchmark/training/anomaly_detection/keras_model.py:
640-128-128-128-128-8-128-128-128-128-640, each hidden Dense followed by BatchNormalization and ReLU), trained as
the reference trains it (Adam, mean squared error, on normal sound only; batch 256 here for a smaller set). The
data come from the seeded synthesizer in scripts/machine_sound.py: log-mel vectors of a small electric machine,
40 % of the eval samples carrying one fault at a severity drawn wide enough that some hide under the normal
variation, so the float model's AUC is well below 100 %. Features are stored as float16: every figure reads
the input as stored.

Usage, from the repository root (about a minute on two cores):

    python scripts/train_anomaly_example.py [--out DIR]

It writes DIR/machine_ad/ (DIR defaults to models/): model.keras, eval.npz (x, y), calib.npz (the first 300
training inputs: train.npz would be too large to commit, and QAT cannot train an anomaly detector on labels)
and gate.toml, and prints the float model's AUC (scikit-learn's roc_auc_score) overall and per fault.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402 - after the log level, which TensorFlow reads on import
import machine_sound  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
SEED = 0
TRAIN_SAMPLES = 4000  # normal machine sound only, as an anomaly detector is trained
EVAL_SAMPLES = 1000
EVAL_ANOMALOUS_SHARE = 0.4
EPOCHS = 100
CALIB_SAMPLES = 300
MANIFEST = """\
task = "anomaly"
policy = "default"
method = "auto"
calibration_samples = 200
"""


def mlperf_tiny_autoencoder(features: int = machine_sound.FEATURES) -> keras.Model:
    """MLPerf Tiny AD's reference architecture (keras_model.get_model), with names for its input and output."""
    inputs = keras.Input((features,), name="log_mel")
    h = inputs
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        h = keras.layers.Dense(units)(h)
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.Activation("relu")(h)
    outputs = keras.layers.Dense(features, name="reconstruction")(h)
    return keras.Model(inputs, outputs, name="machine_ad")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODELS_DIR)
    folder = parser.parse_args().out / "machine_ad"
    train = machine_sound.record(TRAIN_SAMPLES, 0.0, seed=1)
    evaluation = machine_sound.record(EVAL_SAMPLES, EVAL_ANOMALOUS_SHARE, seed=2)
    keras.utils.set_random_seed(SEED)
    model = mlperf_tiny_autoencoder()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mean_squared_error")
    x = train.x.astype(np.float32)
    start = time.perf_counter()
    model.fit(x, x, epochs=EPOCHS, batch_size=256, shuffle=True, verbose=0)
    seconds = time.perf_counter() - start

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("model.keras", "eval.npz", "train.npz", "calib.npz", "gate.toml"):
        (folder / name).unlink(missing_ok=True)
    model.save(folder / "model.keras")
    np.savez_compressed(folder / "eval.npz", x=evaluation.x, y=evaluation.y)
    np.savez_compressed(folder / "calib.npz", x=train.x[:CALIB_SAMPLES])
    (folder / "gate.toml").write_text(MANIFEST, encoding="utf-8")

    reconstruction = model.predict(evaluation.x.astype(np.float32), batch_size=256, verbose=0)
    scores = np.square(evaluation.x.astype(np.float64) - reconstruction).mean(axis=1)
    print(f"machine_ad: {model.count_params():,} parameters, {seconds:.1f} s ({EPOCHS} epochs)")
    print(f"  eval: {EVAL_SAMPLES} samples, {int(evaluation.y.sum())} anomalous")
    print(f"  float AUC (scikit-learn roc_auc_score): {roc_auc_score(evaluation.y, scores) * 100:.2f} %")
    faults = np.array(evaluation.fault)
    for fault in machine_sound.FAULTS:
        keep = (faults == fault) | (evaluation.y == 0)
        auc = roc_auc_score(evaluation.y[keep], scores[keep]) * 100
        print(f"    {fault:<10} {auc:6.2f} % ({int((faults == fault).sum())} samples)")
    for path in sorted(folder.iterdir()):
        print(f"  {path.name:<12} {path.stat().st_size / 1024:8.1f} KiB")


if __name__ == "__main__":
    main()
