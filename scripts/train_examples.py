"""Train the example models under models/ that the gate is demonstrated and tested on.

Each example is a small Keras classifier trained from scratch, written to
`models/<name>/` following the model contract:

    model.keras   saved with model.save() after compile + fit (optimizer state included)
    eval.npz      x, y: the held-out 20% of the data set
    train.npz     x, y: the training 80%; or, when that file would be too big to
                  commit, calib.npz with only x for the first training samples
    gate.toml     the manifest: classification, the example's policy, method auto, 200 samples

And `two_head`, a model with two outputs (`radius` first, then `diagnosis`, in Keras' order):
the breast cancer data without its size features, predicting the diagnosis (softmax over
2 classes: classification) and the standardized mean radius (one linear unit: regression);
its gate.toml gives each output its task and its .npz files hold `y.diagnosis` and `y.radius`.

The data sets ship with scikit-learn (`load_digits`, `load_breast_cancer`), so
nothing is downloaded. Every run is seeded and splits the data the same way,
so re-running reproduces the same models.

Usage, from the repository root:

    python scripts/train_examples.py [--only NAME]   (NAME: an example's, or two_head)
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402 - after the log level, which TensorFlow reads on import
import numpy as np  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
SEED = 0
# Above this size train.npz is replaced by a calib.npz holding CALIB_SAMPLES
# training inputs, which is all the gate needs from the training data.
MAX_TRAIN_NPZ_BYTES = 1_500_000
CALIB_SAMPLES = 300
# Every file the script writes: stale ones from an earlier run are removed first.
OUTPUT_FILES = ("model.keras", "eval.npz", "train.npz", "calib.npz", "gate.toml")
MANIFEST = """\
task = "classification"
policy = "{policy}"
method = "auto"
calibration_samples = 200
"""
TWO_HEAD_MANIFEST = """\
policy = "default"
method = "auto"
calibration_samples = 200

[outputs.diagnosis]
task = "classification"

[outputs.radius]
task = "regression"
"""


@dataclass(frozen=True)
class Split:
    """Training and evaluation arrays; y holds integer class labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray


@dataclass(frozen=True)
class Example:
    """One example model: its data, its architecture and how long to train it."""

    name: str
    load_data: Callable[[], Split]
    build: Callable[[tuple[int, ...]], keras.Model]
    epochs: int
    batch_size: int
    learning_rate: float = 1e-3
    policy: str = "default"  # the policies/*.toml its gate.toml names


# ---------------------------------------------------------------- data


def split(x: np.ndarray, y: np.ndarray) -> Split:
    """The one 80/20 split every example uses: stratified and fixed by random_state."""
    x_train, x_eval, y_train, y_eval = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return Split(x_train, y_train.astype(np.int64), x_eval, y_eval.astype(np.int64))


def digits_8x8() -> Split:
    """Digits as 8x8x1 float32 images scaled from 0..16 to 0..1."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    return split(x, digits.target)


def digits_rows() -> Split:
    """Digits as 8 time steps (the rows) of 8 features, scaled to 0..1: what a line-reading CRNN sees."""
    digits = load_digits()
    return split((digits.images / 16.0).astype(np.float32), digits.target)


def digits_32x32_uint8() -> Split:
    """Digits as 32x32x3 uint8 images: the 8x8 pixels scaled to 0..255, each repeated 4x4 and 3 times.

    uint8 keeps the .npz files small; the model rescales to 0..1 itself.
    """
    digits = load_digits()
    pixels = np.round(digits.images * 255.0 / 16.0).astype(np.uint8)
    upsampled = pixels.repeat(4, axis=1).repeat(4, axis=2)  # nearest neighbour
    x = np.repeat(upsampled[..., np.newaxis], 3, axis=3)
    return split(x, digits.target)


def breast_cancer_standardized() -> Split:
    """The 30 breast cancer features, standardized with the training set's mean and std only.

    Using only training statistics keeps the evaluation set truly unseen.
    """
    data = load_breast_cancer()
    raw = split(data.data, data.target)
    mean = raw.x_train.mean(axis=0)
    std = raw.x_train.std(axis=0)

    def standardize(x: np.ndarray) -> np.ndarray:
        return ((x - mean) / std).astype(np.float32)

    return Split(standardize(raw.x_train), raw.y_train, standardize(raw.x_eval), raw.y_eval)


# ---------------------------------------------------------------- models


def digits_cnn(shape: tuple[int, ...]) -> keras.Model:
    inputs = keras.Input(shape, name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def breast_cancer_mlp(shape: tuple[int, ...]) -> keras.Model:
    inputs = keras.Input(shape, name="features")
    x = keras.layers.Dense(16, activation="relu")(inputs)
    x = keras.layers.Dense(8, activation="relu")(x)
    # Two softmax units rather than one sigmoid: the gate scores classes by argmax.
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="breast_cancer_mlp")


def digits_mobilenetv2(shape: tuple[int, ...]) -> keras.Model:
    inputs = keras.Input(shape, name="image")
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    # input_tensor grafts the backbone onto the rescaled input, so the result is
    # one flat Functional model (image -> Rescaling -> MobileNetV2 -> softmax).
    model = keras.applications.MobileNetV2(alpha=0.35, weights=None, input_tensor=x, classes=10)
    # The application's BatchNormalization momentum (0.999) is tuned for ImageNet's
    # many steps; with ~20 steps per epoch here the moving statistics would stay
    # close to their initial values and the inference-mode model would be poor.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    return model


def digits_crnn(shape: tuple[int, ...]) -> keras.Model:
    """In the spirit of a handwriting CRNN (MobileNetV3 + BiLSTM + attention): convolutions, a BiLSTM over the
    rows, self-attention, a softmax. Its full-int8 conversion crashes TF 2.21's converter (SIGSEGV)."""
    layers = keras.layers
    inputs = keras.Input(shape, name="rows")
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(layers.Reshape((*shape, 1))(inputs))
    x = layers.Bidirectional(layers.LSTM(16, return_sequences=True))(layers.Reshape((shape[0], -1))(x))
    x = layers.Concatenate()([x, layers.Attention()([x, x])])
    outputs = layers.Dense(10, activation="softmax")(layers.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, outputs)


def digits_wide_cnn(shape: tuple[int, ...]) -> keras.Model:
    """Two 32-channel convolutions at the full 32x32 resolution before any pooling: nothing for a phone, but two
    32 KiB activations live at once, more than a 64 KiB microcontroller arena (policies/mcu.toml) holds."""
    inputs = keras.Input(shape, name="image")
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D(4)(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="digits_wide_cnn")


EXAMPLES = (
    Example("digits_cnn", digits_8x8, digits_cnn, epochs=40, batch_size=32, policy="mcu"),
    Example("breast_cancer_mlp", breast_cancer_standardized, breast_cancer_mlp, epochs=40, batch_size=32),
    Example("digits_mobilenetv2", digits_32x32_uint8, digits_mobilenetv2, epochs=30, batch_size=64),
    Example("digits_crnn", digits_rows, digits_crnn, epochs=20, batch_size=32, learning_rate=3e-3),
    # Passes the default (LiteRT) policy; fails policies/mcu.toml on its tensor arena (README: device targets).
    Example("digits_wide_cnn", digits_32x32_uint8, digits_wide_cnn, epochs=15, batch_size=32, learning_rate=3e-3),
)


# ---------------------------------------------------------------- training and writing


def train(example: Example, data: Split) -> tuple[keras.Model, float]:
    """Build, compile and fit the model; return it with the training time in seconds."""
    # Seeding right before building makes `--only NAME` train the same model as a full run.
    keras.utils.set_random_seed(SEED)
    model = example.build(data.x_train.shape[1:])
    model.compile(
        optimizer=keras.optimizers.Adam(example.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(data.x_train, data.y_train, epochs=example.epochs, batch_size=example.batch_size, verbose=0)
    return model, time.perf_counter() - start


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    predictions = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(predictions, axis=1) == y))


def write_folder(folder: Path, model: keras.Model, data: Split, policy: str) -> None:
    """Write the model, its data and its manifest, following the model contract."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in OUTPUT_FILES:
        (folder / name).unlink(missing_ok=True)
    model.save(folder / "model.keras")
    np.savez_compressed(folder / "eval.npz", x=data.x_eval, y=data.y_eval)
    np.savez_compressed(folder / "train.npz", x=data.x_train, y=data.y_train)
    if (folder / "train.npz").stat().st_size > MAX_TRAIN_NPZ_BYTES:
        (folder / "train.npz").unlink()
        np.savez_compressed(folder / "calib.npz", x=data.x_train[:CALIB_SAMPLES])
    (folder / "gate.toml").write_text(MANIFEST.format(policy=policy), encoding="utf-8")


def report(example: Example, model: keras.Model, data: Split, seconds: float, folder: Path) -> None:
    print(f"\n{example.name}")
    print(f"  parameters:     {model.count_params():,}")
    print(f"  training:       {seconds:.1f} s ({example.epochs} epochs, batch {example.batch_size})")
    print(f"  train accuracy: {accuracy(model, data.x_train, data.y_train):.4f} ({len(data.y_train)} samples)")
    print(f"  eval accuracy:  {accuracy(model, data.x_eval, data.y_eval):.4f} ({len(data.y_eval)} samples)")
    total = 0
    for name in OUTPUT_FILES:
        path = folder / name
        if path.exists():
            size = path.stat().st_size
            total += size
            print(f"  {name:<14}  {size / 1024:8.1f} KiB")
    print(f"  {'total':<14}  {total / 1024:8.1f} KiB")


# ---------------------------------------------------------------- two_head: a model with two outputs


def two_head_data() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Breast cancer without the size features; labels: the diagnosis (0/1) and the standardized mean radius."""
    data = load_breast_cancer()
    size = [i for i, name in enumerate(data.feature_names) if any(w in name for w in ("radius", "perimeter", "area"))]
    features = np.delete(data.data, size, axis=1)
    radius = data.data[:, list(data.feature_names).index("mean radius")]
    split = train_test_split(features, data.target, radius, test_size=0.2, random_state=SEED, stratify=data.target)
    x_train, x_eval, y_train, y_eval, r_train, r_eval = split
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)  # the training set's only
    r_mean, r_std = r_train.mean(), r_train.std()

    def arrays(x: np.ndarray, y: np.ndarray, r: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "x": ((x - mean) / std).astype(np.float32),
            "y.diagnosis": y.astype(np.int64),
            "y.radius": ((r - r_mean) / r_std).astype(np.float32),
        }

    return arrays(x_train, y_train, r_train), arrays(x_eval, y_eval, r_eval)


def two_head_model(features: int) -> keras.Model:
    inputs = keras.Input((features,), name="features")
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    hidden = keras.layers.Dense(16, activation="relu")(hidden)
    diagnosis = keras.layers.Dense(2, activation="softmax", name="diagnosis")(hidden)
    radius = keras.layers.Dense(1, name="radius")(hidden)
    return keras.Model(inputs, [radius, diagnosis], name="two_head")


def train_two_head(folder: Path) -> None:
    train_data, eval_data = two_head_data()
    keras.utils.set_random_seed(SEED)
    model = two_head_model(train_data["x"].shape[1])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=["mean_squared_error", "sparse_categorical_crossentropy"])
    start = time.perf_counter()
    model.fit(train_data["x"], [train_data["y.radius"], train_data["y.diagnosis"]], epochs=60, batch_size=32, verbose=0)
    seconds = time.perf_counter() - start
    folder.mkdir(parents=True, exist_ok=True)
    for name in OUTPUT_FILES:
        (folder / name).unlink(missing_ok=True)
    model.save(folder / "model.keras")
    np.savez_compressed(folder / "eval.npz", **eval_data)
    np.savez_compressed(folder / "train.npz", **train_data)
    (folder / "gate.toml").write_text(TWO_HEAD_MANIFEST, encoding="utf-8")
    radius, diagnosis = model.predict(eval_data["x"], verbose=0)
    print(f"\ntwo_head: {model.count_params():,} parameters, {seconds:.1f} s; Keras outputs {model.output_names}")
    print(f"  eval diagnosis accuracy {np.mean(np.argmax(diagnosis, axis=1) == eval_data['y.diagnosis']):.4f}, "
          f"radius MAE {np.abs(radius[:, 0] - eval_data['y.radius']).mean():.4f} (standard units)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [e.name for e in EXAMPLES]
    parser.add_argument("--only", choices=[*names, "two_head"], help="train just this example")
    args = parser.parse_args()
    for example in EXAMPLES:
        if args.only and example.name != args.only:
            continue
        data = example.load_data()
        model, seconds = train(example, data)
        folder = MODELS_DIR / example.name
        write_folder(folder, model, data, example.policy)
        report(example, model, data, seconds, folder)
    if args.only in (None, "two_head"):
        train_two_head(MODELS_DIR / "two_head")


if __name__ == "__main__":
    main()
