"""gate.errors.translated: the one place a library's exception becomes a model's failure, keeping its cause."""

from __future__ import annotations

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
