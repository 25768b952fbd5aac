import json

from factories import model_result

from gate.results import ModelResult, Status, dumps, error_result


def test_model_result_round_trips_through_json_exactly() -> None:
    result = model_result()
    assert ModelResult.from_json(json.loads(dumps(result.to_json()))) == result


def test_error_result_round_trips_and_has_no_candidate() -> None:
    result = error_result("broken", "models/broken/model.keras: not a zip file")
    restored = ModelResult.from_json(json.loads(dumps(result.to_json())))
    assert restored == result
    assert restored.status is Status.ERROR
    assert restored.candidate is None


def test_dumps_is_canonical() -> None:
    assert dumps({"b": 1, "a": [1.5]}) == dumps({"a": [1.5], "b": 1})
