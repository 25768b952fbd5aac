"""The registries a new task, target or frontend is one entry of, and what the rest of gate reads from them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from gate.discover import MODEL_FILES
from gate.gating.search import skip_reason
from gate.tasks import TASKS
from gate.tasks.base import UNBOUNDED_CHANGE


def test_a_method_the_target_cannot_run_is_skipped_untried_with_the_targets_reason() -> None:
    integer_only = SimpleNamespace(
        policy={},
        integer_inputs=False,
        cannot_run=lambda method: "the NPU runs integer ops only" if method == "int8-float-fallback" else "",
    )
    assert skip_reason("int8-float-fallback", integer_only, has_calibration=True, has_training=False) == (
        "the NPU runs integer ops only"
    )
    assert skip_reason("int8", integer_only, has_calibration=True, has_training=False) == ""


@pytest.mark.parametrize(
    ("task", "float_value", "quantized_value", "change", "loss"),
    [
        ("classification", 97.5, 95.0, -2.5, 2.5),  # points lost: worse
        ("classification", 90.0, 91.0, 1.0, -1.0),
        ("regression", 0.5, 0.55, 10.0, 10.0),  # MAE rose 10 % of the float model's: worse
        ("regression", 0.0, 0.0, 0.0, 0.0),
        ("regression", 0.0, 0.1, UNBOUNDED_CHANGE, UNBOUNDED_CHANGE),
    ],
)
def test_a_tasks_change_and_loss_say_which_way_is_worse(task, float_value, quantized_value, change, loss) -> None:
    assert TASKS[task].change(float_value, quantized_value) == pytest.approx(change)
    assert TASKS[task].loss(TASKS[task].change(float_value, quantized_value)) == pytest.approx(loss)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_the_bootstrap_and_the_search_use_one_formula(task) -> None:
    """The change from per-sample scores (resampled by the bootstrap, vectorised) is the change of the values."""
    rng = np.random.default_rng(0)
    float_scores, quantized_scores = rng.random((2, 3, 50))  # three resamples of 50 samples
    labels = np.arange(50) % 2  # what a metric that reads labels besides the scores (ROC AUC) ranks by
    vectorised = TASKS[task].change(
        TASKS[task].value(float_scores, labels), TASKS[task].value(quantized_scores, labels)
    )
    one_by_one = [
        TASKS[task].change(float(TASKS[task].value(f, labels)), float(TASKS[task].value(q, labels)))
        for f, q in zip(float_scores, quantized_scores, strict=True)
    ]
    assert vectorised == pytest.approx(one_by_one)


def test_the_frontends_read_every_model_file_discovery_finds() -> None:
    from gate.frontends import FRONTENDS

    assert {name for frontend in FRONTENDS.values() for name in frontend.formats} == set(MODEL_FILES)


# A custom metric need not be a mean of its per-sample scores: its interval calls it again (tests/test_custom_task.py).
@pytest.mark.parametrize("task", sorted(name for name in TASKS if not name.startswith("custom-")))
def test_the_value_from_per_sample_scores_is_the_tasks_score(task) -> None:
    rng = np.random.default_rng(1)
    outputs = rng.random((40, 3))
    labels = {"classification": rng.integers(0, 3, 40), "anomaly": np.arange(40) % 2}.get(task, rng.random((40, 3)))
    value, per_sample = TASKS[task].score(outputs, labels, {"x": rng.random((40, 3))})  # an autoencoder's input
    assert TASKS[task].value(np.asarray(per_sample), labels) == pytest.approx(value)
