"""The policy and manifest keys the quantization methods read, with their ranges and defaults.

gate.policy.config lists them among its keys; the QAT process checks its request against the same ranges.
"""

from __future__ import annotations

from gate.keys import Key, Number

CALIBRATION_SAMPLES = Key(
    "calibration_samples",
    Number(1, 100_000, integer=True),
    200,
    "How many calibration samples (the first N) full-integer conversion uses.",
    role="manifest",
)
# fmt: skip: a key a line, as gate.policy.config.SETTINGS.
QAT_KEYS = (
    Key("qat.epochs", Number(1, 1000, integer=True), 3, "Epochs of quantization-aware training on train.npz."),
    Key("qat.learning_rate", Number(1e-7, 1.0), 1e-4, "Learning rate of quantization-aware training (Adam)."),
    Key("qat.batch_size", Number(1, 65_536, integer=True), 32, "Batch size of quantization-aware training."),
)  # fmt: skip
