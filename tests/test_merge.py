"""gate.merge: each refusal of a report, a plan or a set of shards at its edge, with its exact message.

The attacks through whole shards (`gate merge` on the command line, nothing written outside --out) are in
test_attacks.py. No TensorFlow: shards are built from result objects (tests/factories.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import COMPARISON, model_result, shard

from gate.ci import merge
from gate.ci.merge import merge_shards, read_plan
from gate.encoding import dumps
from gate.errors import ConfigError
from gate.reporting.report import report_json
from gate.reporting.verify import read_report
from gate.results import SCHEMA_VERSION, error_result

LONG = "b" * 100  # a model name longer than a message shows of it (80 characters)


def report(change=lambda document: None, results=(model_result("alpha"),), comparison=None) -> str:
    """A report.json as gate writes it, changed by `change`."""
    document = report_json(list(results), comparison)
    change(document)
    return dumps(document)


def first_model(**changes):
    return lambda document: document["models"][0].update(changes)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        (report(), ""),
        (report(comparison=COMPARISON), ""),
        ("[]", "report.json: expected a JSON object, got list"),
        (report(lambda d: d.pop("schema_version")), "report.json: schema_version is missing or not a number ('None')"),
        (
            report(lambda d: d.update(schema_version="2" * 50)),
            f"report.json: schema_version is missing or not a number ({'2' * 40!r})",
        ),
        (
            report(lambda d: d.update(schema_version=SCHEMA_VERSION + 1)),
            f"report.json: schema_version {SCHEMA_VERSION + 1}, but this gate reads {SCHEMA_VERSION}; a newer gate "
            "wrote it: use that version here too",
        ),
        (
            report(lambda d: d.update(schema_version=SCHEMA_VERSION - 1)),
            f"report.json: schema_version {SCHEMA_VERSION - 1}, but this gate reads {SCHEMA_VERSION}; an older gate "
            "wrote it: gate the models again with this version",
        ),
        (
            report(first_model(chosen=5), results=[model_result(LONG)]),
            f"report.json: models[0] ({'b' * 80!r}): chosen: 5 is not the index of one of its 1 candidates",
        ),
        (
            report(results=[model_result(LONG), model_result(LONG)]),
            f"report.json: model {'b' * 80!r} appears twice",
        ),
        (
            report(lambda d: d["comparison"].update(base_commit="main"), comparison=COMPARISON),
            "report.json: comparison: base_commit: 'main' is not a commit's full SHA",
        ),
    ],
)
def test_a_report_read_back_is_refused_naming_the_field(tmp_path, written, message) -> None:
    (tmp_path / "report.json").write_text(written)
    try:
        read = read_report(tmp_path)
    except ValueError as exc:
        assert str(exc) == message
    else:
        assert message == "" and read.models[0].name == "alpha"


BASE = "3f" * 20


@pytest.mark.parametrize(
    ("plan", "read"),
    [
        ({"base": BASE, "models": ["alpha"], "removed": ["beta"]}, (["alpha"], ["beta"], BASE)),
        ({"base": "", "models": [], "removed": []}, ([], [], "")),  # gate plan found no change
        ({"models": ["alpha"], "removed": []}, (["alpha"], [], "")),  # written by a gate that kept no base
        ([], "expected a JSON object"),
        ({"base": BASE, "models": ["../x"], "removed": []}, "models: expected a list of model folder names"),
        ({"base": BASE, "models": [], "removed": "beta"}, "removed: expected a list of model folder names"),
        (
            {"base": "main", "models": [], "removed": []},
            "base: expected the full SHA of the commit gate plan compared with, or nothing",
        ),
        (
            {"base": None, "models": [], "removed": []},
            "base: expected the full SHA of the commit gate plan compared with, or nothing",
        ),
    ],
)
def test_a_plan_is_read_or_refused_naming_the_field(tmp_path, plan, read) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    try:
        assert read_plan(path) == read
    except ConfigError as exc:
        assert str(exc) == f"{path}: not a plan written by gate plan --save ({read})"


def test_a_plan_larger_than_64_mib_is_refused(tmp_path) -> None:
    path = tmp_path / "plan.json"
    with path.open("wb") as plan:
        plan.truncate(64 * 1024 * 1024 + 1)  # sparse: no disk used
    with pytest.raises(ConfigError) as refused:
        read_plan(path)
    assert str(refused.value) == (
        f"{path}: not a plan written by gate plan --save (plan.json: larger than 67,108,864 bytes)"
    )


@pytest.fixture
def shards(tmp_path) -> tuple[Path, Path]:
    first, second = tmp_path / "shard-1", tmp_path / "shard-2"
    shard(first, [model_result("alpha")])
    shard(second, [model_result("beta")])
    return first, second


def test_a_planned_model_no_shard_holds_is_an_error_row(shards, tmp_path) -> None:
    results = merge_shards(shards[:1], out_dir=tmp_path / "out", planned=["alpha", "beta"])
    assert [r.name for r in results] == ["alpha", "beta"]
    assert results[1] == error_result(
        "beta", "no shard holds a result for beta: its check job failed before uploading one; see that job's log"
    )


def test_a_model_in_two_shards_or_not_in_the_plan_is_refused(shards, tmp_path) -> None:
    first, second = shards
    shard(second, [model_result("beta"), model_result("alpha")])
    with pytest.raises(ConfigError) as twice:
        merge_shards([first, second], out_dir=tmp_path / "out")
    assert str(twice.value) == (
        f"gate merge: refusing shard {second}: model alpha was gated in {first} too; each model belongs to exactly "
        "one shard"
    )
    with pytest.raises(ConfigError) as unplanned:
        merge_shards([first], out_dir=tmp_path / "out", planned=["beta"])
    assert str(unplanned.value) == f"gate merge: refusing shard {first}: model alpha is not in the plan"


def test_a_benchmark_larger_than_64_mib_is_refused(shards, tmp_path) -> None:
    with (shards[0] / "benchmarks" / "alpha.json").open("r+b") as benchmark:
        benchmark.truncate(64 * 1024 * 1024 + 1)  # sparse: no disk used
    with pytest.raises(ConfigError) as refused:
        merge_shards(shards[:1], out_dir=tmp_path / "out")
    assert str(refused.value) == (
        f"gate merge: refusing shard {shards[0]}: alpha: benchmarks/alpha.json: larger than 67,108,864 bytes"
    )


def test_an_artifact_swapped_after_the_shard_was_checked_is_refused_as_it_is_copied(
    shards, tmp_path, monkeypatch
) -> None:
    """A shard's folder can change while gate merges it: every artifact is checked again as it is copied."""
    artifact = shards[0] / "artifacts" / "alpha.int8.tflite"

    def clear_then_swap(out_dir: Path) -> None:  # between reading every shard and copying their files
        clear_outputs(out_dir)
        artifact.write_bytes(b"x" * artifact.stat().st_size)

    clear_outputs = merge.clear_outputs
    monkeypatch.setattr(merge, "clear_outputs", clear_then_swap)
    with pytest.raises(ConfigError) as refused:
        merge_shards(shards[:1], out_dir=tmp_path / "out")
    assert str(refused.value) == (
        f"gate merge: refusing shard {shards[0]}: alpha: artifacts/alpha.int8.tflite: does not match the sha256 its "
        "result records"
    )
    assert not (tmp_path / "out" / "artifacts" / "alpha.int8.tflite").exists()
