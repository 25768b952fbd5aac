"""gate.errors.translated: the one place a library's exception becomes a model's failure, keeping its cause."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.errors import ModelError, log_cause, translated


def test_a_library_failure_becomes_one_model_error_that_keeps_its_cause_for_the_log(capsys) -> None:
    with pytest.raises(ModelError, match=r"^could not convert: boom$") as caught:
        with translated(lambda exc: f"could not convert: {exc}"):
            raise ValueError("boom")
    assert isinstance(caught.value.__cause__, ValueError)
    log_cause(caught.value)
    assert "ValueError: boom" in capsys.readouterr().err


@pytest.mark.parametrize("error", [ModelError("the model's own message"), LookupError("a reason, not a failure")])
def test_model_errors_and_the_passing_types_go_through_unchanged(error: Exception) -> None:
    with pytest.raises(type(error)) as caught:
        with translated(lambda exc: "translated", passing=(LookupError,)):
            raise error
    assert caught.value is error


def test_a_brace_in_a_models_name_stays_text_in_the_non_finite_output_message() -> None:
    """`inf{x}` is a valid folder name: formatting the message twice made it an internal error (found by an attack)."""
    import numpy as np

    from gate.frontends.base import Dataset
    from gate.results import DataInfo, FileDigest
    from gate.targets.litert import refuse_non_finite_outputs

    path = Path("models/inf{x}/eval.npz")
    data = Dataset({"x": np.zeros((2, 1), np.float32)}, np.zeros(2), DataInfo(FileDigest("eval.npz", 0, ""), 2), path)
    with pytest.raises(ModelError) as raised:
        refuse_non_finite_outputs(np.array([[1.0], [np.nan]]), data, "inf{x}")
    assert str(raised.value) == (
        f"{path}: inf{{x}}'s output is NaN on 1 of 2 eval samples (first: sample 1); check the model's weights and "
        "the data's scale"
    )


def test_every_tool_whose_version_changes_a_figure_is_in_the_provenance_and_the_cache_key() -> None:
    """Vela's version decides the Ethos-U figures: a new Vela must not reuse a cached result (found by an attack)."""
    from gate.environment import tool_versions

    assert {"tensorflow", "ai-edge-litert", "litert-quantizer", "tflite-micro", "ethos-u-vela"} <= set(tool_versions())
