import json

from factories import model_result

from gate.encoding import dumps, load_result
from gate.results import ModelResult, Status, error_result


def test_model_result_round_trips_through_json_exactly() -> None:
    result = model_result()
    assert load_result(ModelResult, json.loads(dumps(result.to_json()))) == result


def test_error_result_round_trips_and_has_no_candidate() -> None:
    result = error_result("broken", "models/broken/model.keras: not a zip file")
    restored = load_result(ModelResult, json.loads(dumps(result.to_json())))
    assert restored == result
    assert restored.status is Status.ERROR
    assert restored.candidate is None


def test_dumps_is_canonical() -> None:
    assert dumps({"b": 1, "a": [1.5]}) == dumps({"a": [1.5], "b": 1})


def test_a_non_finite_figure_becomes_an_error_result_not_a_report_crash(tmp_path) -> None:
    import dataclasses

    from gate.gating.pipeline import Job, encode_result
    from gate.reporting.report import write_reports

    healthy = model_result("healthy")
    broken = model_result("broken")
    latency = dataclasses.replace(broken.candidates[0].conversion.latency, p95_ms=float("inf"))
    conversion = dataclasses.replace(broken.candidates[0].conversion, latency=latency)
    broken = dataclasses.replace(broken, candidates=(dataclasses.replace(broken.candidates[0], conversion=conversion),))
    job = Job(
        "broken",
        "models/broken",
        "classification",
        "int8",
        200,
        False,
        (),
        "policies/default.toml",
        {},
        {},
        "",
        str(tmp_path),
        str(tmp_path / "broken.log"),
        str(tmp_path / "broken.result.json"),
    )
    decoded = load_result(ModelResult, json.loads(encode_result(job, broken)))
    assert decoded.status is Status.ERROR
    assert decoded.error == (
        "models/broken: a measured figure is not a finite number "
        "(candidates[0].conversion.latency.p95_ms); the model or its data produce NaN or infinity"
    )
    for artifact in healthy.artifacts:
        (tmp_path / artifact.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / artifact.path).write_bytes(b"tflite")
    write_reports(tmp_path, [healthy, decoded])  # both models reported; no ValueError from allow_nan=False
    assert [m["status"] for m in json.loads((tmp_path / "report.json").read_text())["models"]] == ["PASS", "ERROR"]
