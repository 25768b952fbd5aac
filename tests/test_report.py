import json
from importlib import resources

import jsonschema
import pytest
from factories import model_result

from gate.encoding import dumps
from gate.files import write_atomic
from gate.reporting.markdown import GITHUB_COMMENT_LIMIT, markdown_for_comment, render_markdown
from gate.reporting.report import os, report_json, report_schema, write_reports
from gate.results import error_result


def shipped_schema() -> dict:
    return json.loads(resources.files("gate").joinpath("schema/report.schema.json").read_text())


def test_shipped_schema_is_generated_from_the_result_types() -> None:
    # Regenerate with: python -m gate.reporting.report > gate/schema/report.schema.json
    assert shipped_schema() == report_schema()


@pytest.mark.parametrize(
    "results",
    [
        [model_result()],
        [model_result("a"), model_result("b", accuracy=80.0), error_result("c", "models/c: no eval.npz")],
        [],
    ],
)
def test_report_json_validates_against_the_shipped_schema(results) -> None:
    jsonschema.validate(json.loads(dumps(report_json(results))), shipped_schema())


def test_schema_rejects_a_report_missing_a_figure() -> None:
    data = json.loads(dumps(report_json([model_result()])))
    del data["models"][0]["candidates"][0]["size_reduction_vs_source"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, shipped_schema())


@pytest.mark.parametrize(
    ("results", "first_line"),
    [
        ([model_result("a"), model_result("b")], "## ✅ gate: all 2 models pass"),
        ([model_result("a"), model_result("b", accuracy=80.0)], "## ❌ gate: 1 of 2 models failed, 1 passed"),
        ([model_result("a"), error_result("c", "boom")], "## ⚠️ gate: 1 of 2 models could not be gated, 1 passed"),
        ([model_result("a")], "## ✅ gate: the model passes"),
        ([model_result("b", accuracy=80.0)], "## ❌ gate: the model failed"),
        (
            [model_result("b", accuracy=80.0), error_result("c", "boom"), model_result("a")],
            "## ⚠️ gate: 1 of 3 models failed, 1 could not be gated, 1 passed",
        ),
    ],
)
def test_markdown_starts_with_the_verdict(results, first_line) -> None:
    assert render_markdown(results).splitlines()[0] == first_line


def test_markdown_names_the_failed_check_with_threshold_and_measurement() -> None:
    text = render_markdown([model_result("digits", accuracy=93.0)])
    assert "| `accuracy.max_drop` | 2 pts | 3 pts | ❌ FAIL | accuracy dropped 3.00 pts (allowed drop ≤ 2) |" in text
    assert "| digits | int8 | 78.1 KiB → 9.8 KiB (8.00×) | accuracy 96.00% → 93.00% (−3.00 pts) |" in text


def test_markdown_shows_overrides_prominently() -> None:
    text = render_markdown([model_result(overrides={"size.min_reduction": 2.0})])
    assert "> **digits: overrides in force** (from gate.toml): <code>size.min_reduction = 2</code>." in text
    assert "Reason given: measured on device" in text


def test_untrusted_text_cannot_break_the_comment() -> None:
    hostile = error_result("x|y", "models/x: <img src=x onerror=alert(1)> | @everyone\nsecond line")
    text = render_markdown([hostile])
    assert "<img" not in text
    assert "| x\\|y |" in text
    assert "&lt;img src=x onerror=alert(1)&gt; \\| @\u200beveryone" in text


def test_markdown_is_fitted_under_githubs_comment_limit() -> None:
    results = [model_result(f"model_{i}") for i in range(60)]
    assert len(render_markdown(results)) > GITHUB_COMMENT_LIMIT
    text = markdown_for_comment(results)
    assert len(text) <= GITHUB_COMMENT_LIMIT
    assert "| model_59 |" in text  # the summary table keeps every model


def test_write_reports_writes_every_output_and_the_step_summary(tmp_path, monkeypatch) -> None:
    result = model_result()
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "digits.int8.tflite").write_bytes(b"int8")
    (artifacts / "digits.float32.tflite").write_bytes(b"float")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    assert write_reports(tmp_path, [result]) is None  # no baseline: no comparison
    markdown = render_markdown([result])

    assert (tmp_path / "report.md").read_text() == markdown
    assert json.loads((tmp_path / "report.json").read_text())["models"][0]["name"] == "digits"
    assert summary.read_text() == "earlier step\n" + markdown
    assert (tmp_path / "SHA256SUMS").read_text() == (
        # from: printf float | sha256sum; printf int8 | sha256sum
        "76a7e234dc54e9c605b2cc9fdf71279526150df48c574bdfa69e436e0b3d5c18  artifacts/digits.float32.tflite\n"
        "cb1525bced78da2c03c42fe15bf15663b584566ef6244ff91d892caa011fec1e  artifacts/digits.int8.tflite\n"
    )


def test_write_atomic_never_leaves_a_partial_file(tmp_path, monkeypatch) -> None:
    target = tmp_path / "report.json"
    target.write_text("complete old report")

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt  # as if Ctrl-C arrived after the bytes were written, before the rename

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "new report")
    assert target.read_text() == "complete old report"
    assert list(tmp_path.iterdir()) == [target]  # no temporary left behind


def test_reports_are_written_readable_by_everyone_like_any_tools_output(tmp_path) -> None:
    result = model_result("digits")
    for artifact in result.artifacts:
        (tmp_path / artifact.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / artifact.path).write_bytes(b"tflite")
    write_reports(tmp_path, [result])
    for name in ("report.md", "report.json", "comment.md", "SHA256SUMS"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_files_gate_copies_are_readable_by_everyone_too(tmp_path) -> None:
    """What a cached run, gate merge and gate release copy (artifacts, logs) as well as what they write."""
    from gate.readback import copy_inside

    (tmp_path / "shard" / "artifacts").mkdir(parents=True)
    (tmp_path / "shard" / "artifacts" / "digits.int8.tflite").write_bytes(b"tflite")
    copy_inside(tmp_path / "shard", "artifacts/digits.int8.tflite", tmp_path / "release" / "digits.int8.tflite")
    assert (tmp_path / "release" / "digits.int8.tflite").stat().st_mode & 0o777 == 0o644
