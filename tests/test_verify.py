"""gate.verify: a result read back from elsewhere is one gate could have written, or refused naming the field.

One row a field: a result gate writes, changed as a shard, cache entry or baseline could change it, and the
exact message it is refused with ("" when it must be accepted). No TensorFlow: results from tests/factories.py.
The attacks through whole shards and cache entries are in test_attacks.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from factories import COMPARISON, DEFAULT_POLICY, PASSED, candidate, model_result, stateful

from gate.encoding import dumps
from gate.gating.search import closest
from gate.policy.checks import Context
from gate.policy.judge import judge
from gate.reporting.compare import Baseline, ModelChange
from gate.reporting.report import report_json
from gate.reporting.verify import check_result, load_baseline
from gate.reporting.verify_comparison import check_comparison
from gate.results import (
    Candidate,
    Conversion,
    Evaluation,
    FileDigest,
    ModelResult,
    Origin,
    Status,
    error_result,
    must_reset,
)
from gate.tasks import TASKS

replace = dataclasses.replace


def problem(check: Callable[[object], None], value: object) -> str:
    try:
        check(value)
    except ValueError as exc:
        return str(exc)
    return ""


def judged(result: ModelResult) -> ModelResult:
    """`result` with its built candidates judged afresh against its own figures and policy, as gate judges them,
    and the candidate the search publishes chosen."""
    assert result.provenance and result.float_evaluation
    context = Context(result.provenance.effective_policy, result.task, result.reference)
    candidates = tuple(judge(c, context) if c.conversion else c for c in result.candidates)
    chosen = closest(candidates)
    return replace(result, candidates=candidates, chosen=chosen, status=candidates[chosen].status)


def first(result: ModelResult, **changes) -> ModelResult:
    """`result` with its first candidate changed."""
    return replace(result, candidates=(replace(result.candidates[0], **changes), *result.candidates[1:]))


def built(result: ModelResult, **changes) -> ModelResult:
    """`result` with its first candidate's conversion changed."""
    return first(result, conversion=replace(result.candidates[0].conversion, **changes))


def artifact(result: ModelResult, **changes) -> ModelResult:
    conversion = result.candidates[0].conversion
    return built(result, artifact=replace(conversion.artifact, **changes))


def provenance(result: ModelResult, **changes) -> ModelResult:
    return replace(result, provenance=replace(result.provenance, **changes))


def also(result: ModelResult, *more: Candidate) -> ModelResult:
    """`result` with more candidates after its own."""
    return replace(result, candidates=(*result.candidates, *more))


def state(result: ModelResult, **changes) -> ModelResult:
    """`result` with the state of its first candidate's file changed."""
    return built(result, state=replace(result.candidates[0].conversion.state, **changes))


def other(result: ModelResult, value: float) -> ModelResult:
    """`result` with its stateful file's figure the other way (with resets or without) set to `value`."""
    kept = result.candidates[0].conversion.state
    return state(result, other_evaluation=replace(kept.other_evaluation, value=value))


def as_regression(result: ModelResult, float_mae: float, mae: float, other_mae: float) -> ModelResult:
    """`result`, a stateful classifier's, as a regression model's with these MAEs, judged again."""

    def in_mae(evaluation: Evaluation, value: float) -> Evaluation:
        return replace(evaluation, metric="mae", value=value)

    conversion = result.candidates[0].conversion
    regression = replace(
        result,
        task="regression",
        float_evaluation=in_mae(result.float_evaluation, float_mae),
        reference=replace(result.reference, evaluation=in_mae(result.reference.evaluation, float_mae)),
    )
    stateful_file = replace(
        conversion,
        evaluation=in_mae(conversion.evaluation, mae),
        state=replace(conversion.state, other_evaluation=in_mae(conversion.state.other_evaluation, other_mae)),
    )
    return judged(first(regression, conversion=stateful_file, metric_change=TASKS["regression"].change(float_mae, mae)))


def steps(result: ModelResult, **seconds: float) -> ModelResult:
    """`result` with its first candidate's steps (its time is 1.000 s) taking these seconds."""
    return first(result, step_seconds=seconds)


def token_ids(conversion: Conversion) -> Conversion:
    """`conversion` with int32 inputs: a model of token ids, whose inputs no quantization changes."""
    return replace(conversion, inputs=tuple(replace(t, dtype="int32") for t in conversion.inputs))


ALPHA = model_result("alpha")
ERROR = error_result("alpha", "alpha: model.keras: not a zip file")
# Its method, status and reason; nothing built, measured or judged.
UNBUILT_SKIP = Candidate(
    "float16", Status.SKIP, "the search ran out of time", None, None, None, None, None, None, (), 0
)
FLOAT16 = candidate(model="alpha", method="float16", dtype="float32", size_bytes=20_000)  # FAILs the int8 I/O checks
ALL_PASS = "size.min_reduction PASS; accuracy.max_drop PASS; io.input_dtype PASS; io.output_dtype PASS; " + (
    "latency.max_p50_ms PASS"
)

STATEFUL = stateful(ALPHA)
RESETS = provenance(
    stateful(ALPHA, app_resets=True),
    effective_policy=ALPHA.provenance.effective_policy | {"runtime.resets_state": True},
)

ACCEPTED = {
    "as_gate_writes_it": ALPHA,
    "method_asked_for": provenance(ALPHA, method="int8"),
    # The edges of what gate writes for a file that keeps state, and for a candidate's steps.
    "stateful": STATEFUL,
    "stateful_in_one_variable_tensor": state(STATEFUL, variable_tensors=1, app_must=must_reset(1)),
    "stateful_reset_by_the_app_as_its_policy_says": RESETS,
    "stateful_scoring_0_the_other_way": other(STATEFUL, 0.0),
    "stateful_scoring_100_the_other_way": other(STATEFUL, 100.0),
    "stateful_regression_of_an_mae_above_100": as_regression(STATEFUL, 120.0, 125.0, 150.0),
    "step_of_no_time": steps(STATEFUL, conversion=0.5, evaluation=0.3, latency=0.0),
    "steps_within_their_rounding": steps(STATEFUL, conversion=0.603, evaluation=0.3, latency=0.1),
    "error": ERROR,
    "error_of_the_files_beside_the_model_folders": error_result("files/", "files/x.npz: not in a model folder"),
    "error_with_a_candidate_it_did_not_build": replace(ERROR, candidates=(UNBUILT_SKIP,)),
    "a_candidate_skipped_untried": also(ALPHA, UNBUILT_SKIP),
    "two_candidates_the_first_passing": also(ALPHA, FLOAT16),
    "artifact_of_one_byte": model_result("alpha", size_bytes=1),
    "graph_of_no_multiply_accumulate": built(ALPHA, macs=0),
    "empty_input_file": provenance(ALPHA, inputs=(FileDigest("__init__.py", 0, "e3" * 32),)),
    # Figures a reader computes again may differ in their last bits: 0.0 recorded as 1e-10 is the same change.
    "metric_change_within_rounding": first(model_result("alpha", accuracy=96.0), metric_change=1e-10),
    "list_in_the_policy": provenance(
        ALPHA, effective_policy=ALPHA.provenance.effective_policy | {"search.candidates": ("int8", "float16")}
    ),
    # Judged again with the float model's inputs: integer there, so no dtype check applies to them.
    "token_ids": judged(
        built(
            replace(ALPHA, reference=token_ids(ALPHA.reference)),
            inputs=token_ids(ALPHA.candidates[0].conversion).inputs,
        )
    ),
    # Judged again with the eval set's size: the message notes that the limit is under three samples.
    "limit_finer_than_the_eval_set": model_result("alpha", policy=DEFAULT_POLICY | {"accuracy.max_drop": 0.2}),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_a_result_gate_could_have_written_is_accepted(name) -> None:
    assert problem(check_result, ACCEPTED[name]) == ""


REFUSED = {
    "stateful_scoring_above_100_the_other_way": (
        other(STATEFUL, 100.5),
        "candidates[0].conversion.state.other_evaluation.value: 100.5 is out of the range of accuracy",
    ),
    "stateful_without_saying_the_app_must_reset": (
        state(STATEFUL, app_must="a" * 100),
        f"candidates[0].conversion.state.app_must: {'a' * 80!r} is not what gate tells the app",
    ),
    "steps_beyond_their_rounding": (
        steps(STATEFUL, conversion=0.6046, evaluation=0.3, latency=0.1),
        "candidates[0].step_seconds: its steps took 1.005 s, more than the candidate's 1.000 s",
    ),
    "step_of_a_long_name": (
        steps(STATEFUL, **{"x" * 60: 0.1}),
        f"candidates[0].step_seconds: {'x' * 50!r}: 0.1 is not a step's time",
    ),
    "name_of_a_path": (replace(ALPHA, name="../x"), "name: '../x' is not a folder name"),
    "name_of_loose_files_that_passes": (replace(ALPHA, name="files/"), "name: 'files/' is not a folder name"),
    "task": (
        replace(ALPHA, task="clasification"),
        "task: 'clasification' is not one of classification, regression, anomaly, fidelity, custom-higher, "
        "custom-lower",
    ),
    "chosen_below": (replace(ERROR, chosen=-2), "chosen: -2 is not the index of one of its 0 candidates"),
    "chosen_beyond": (replace(ALPHA, chosen=1), "chosen: 1 is not the index of one of its 1 candidates"),
    "method_tried_twice": (
        also(ALPHA, ALPHA.candidates[0]),
        "candidates[0].method: 'int8' is not one method of the registry, tried once",
    ),
    "unbuilt_that_passes": (
        also(ALPHA, replace(UNBUILT_SKIP, status=Status.PASS)),
        "candidates[1]: a candidate that was not built is SKIP or ERROR, without checks",
    ),
    "unbuilt_with_checks": (
        also(ALPHA, replace(UNBUILT_SKIP, checks=ALPHA.candidates[0].checks)),
        "candidates[1]: a candidate that was not built is SKIP or ERROR, without checks",
    ),
    "built_that_was_skipped": (
        first(ALPHA, status=Status.SKIP),
        "candidates[0].status: a built candidate is PASS or FAIL, not SKIP",
    ),
    "built_without_reference": (
        replace(ALPHA, reference=None),
        "candidates[0]: built, but the result has no reference, float evaluation or provenance",
    ),
    "built_without_float_evaluation": (
        replace(ALPHA, float_evaluation=None),
        "candidates[0]: built, but the result has no reference, float evaluation or provenance",
    ),
    "built_without_provenance": (
        replace(ALPHA, provenance=None),
        "candidates[0]: built, but the result has no reference, float evaluation or provenance",
    ),
    "speedup_without_latency": (
        first(ALPHA, speedup=None),
        "candidates[0].speedup: given exactly when its latency was measured",
    ),
    "metric_change_that_does_not_follow": (
        first(ALPHA, metric_change=-0.5),
        "candidates[0].metric_change: -0.5 does not follow from its figures",
    ),
    "conversion_of_another_method": (
        built(ALPHA, method="float16"),
        "candidates[0].conversion.method: 'float16' is not 'int8'",
    ),
    "artifact_of_another_model": (
        artifact(ALPHA, path="artifacts/beta.int8.tflite"),
        "candidates[0].conversion.artifact.path: 'artifacts/beta.int8.tflite' is not 'artifacts/alpha.int8.tflite'",
    ),
    "negative_mac_count": (built(ALPHA, macs=-1), "candidates[0].conversion.macs: -1 is not a count"),
    "built_without_a_task": (replace(ALPHA, task=""), "candidates[0]: built, but the result names no task"),
    "empty_artifact": (
        artifact(ALPHA, size_bytes=0),
        "candidates[0].conversion.artifact.size_bytes: a .tflite file is not empty",
    ),
    "unknown_metric": (
        built(ALPHA, evaluation=replace(ALPHA.candidates[0].conversion.evaluation, metric="f1")),
        "candidates[0].conversion.evaluation.metric: 'f1' is not one of accuracy, mae, auc, output_error, "
        "custom-higher, custom-lower",
    ),
    "error_that_publishes_a_candidate": (
        replace(ERROR, candidates=(UNBUILT_SKIP,), chosen=0),
        "status: ERROR, but it publishes a candidate",
    ),
    "error_with_a_reference": (
        replace(ERROR, reference=ALPHA.reference),
        "status: ERROR, but it publishes a candidate",
    ),
    "without_evaluation_data": (
        replace(ALPHA, evaluation_data=None),
        "status: PASS, but its reference, evaluation or provenance is missing",
    ),
    "chosen_that_the_search_would_not_publish": (
        replace(also(ALPHA, FLOAT16), chosen=1, status=FLOAT16.status),
        "chosen: 1, but the search publishes candidate 0",
    ),
    "checks_left_out": (
        first(ALPHA, checks=()),
        f"candidates[0]: says PASS (no checks), but its figures judged against its effective policy give PASS "
        f"({ALL_PASS})",
    ),
    "checks_the_policy_does_not_set": (
        provenance(ALPHA, effective_policy={}),
        f"candidates[0]: says PASS ({ALL_PASS}), but its figures judged against its effective policy give PASS "
        "(no checks)",
    ),
    "digest_of_the_reference": (
        replace(ALPHA, reference=replace(ALPHA.reference, artifact=replace(ALPHA.reference.artifact, sha256="x"))),
        "reference.artifact: sha256 'x' or size 40000 is not a file's",
    ),
    "digest_of_a_candidate": (
        artifact(ALPHA, sha256="AB" * 32),
        f"candidates[0].conversion.artifact: sha256 {'AB' * 32!r} or size 10000 is not a file's",
    ),
    "digest_of_the_calibration_data": (
        replace(ALPHA, calibration=replace(ALPHA.calibration, file=FileDigest("train.npz", 5678, "x"))),
        "calibration.file: sha256 'x' or size 5678 is not a file's",
    ),
    "digest_of_the_eval_data": (
        replace(ALPHA, evaluation_data=replace(ALPHA.evaluation_data, file=FileDigest("eval.npz", 1234, "x"))),
        "evaluation_data.file: sha256 'x' or size 1234 is not a file's",
    ),
    "size_of_an_input": (
        provenance(ALPHA, inputs=(FileDigest("model.keras", -1, "01" * 32),)),
        f"provenance.inputs[0]: sha256 {'01' * 32!r} or size -1 is not a file's",
    ),
    "digest_of_the_policy": (provenance(ALPHA, policy_sha256="x"), "provenance.policy_sha256: 'x' is not a sha256"),
    "cache_key": (
        replace(ALPHA, origin=Origin("2026-12-06T12:00:00+00:00", "a CPU", "x", False)),
        "origin.cache_key: 'x' is not a sha256",
    ),
    "override_of_no_policy_key": (
        provenance(ALPHA, overrides={"run.command": "id"}),
        "provenance.overrides: 'run.command' is not a policy key",
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_result_gate_could_not_have_written_is_refused_naming_the_field(name) -> None:
    result, message = REFUSED[name]
    assert problem(check_result, result) == message


@pytest.mark.parametrize(
    ("comparison", "message"),
    [
        (COMPARISON, ""),
        # A spread of 0 (every timed round alike) or under a millisecond is one gate measures.
        (replace(COMPARISON, changes=(ModelChange("alpha", replace(PASSED, p50_spread_ms=0.0), None),)), ""),
        (replace(COMPARISON, changes=(ModelChange("alpha", None, replace(PASSED, p50_spread_ms=0.5)),)), ""),
        # A graph without multiply-accumulates, and an Ethos-U file that needs no SRAM, are counted as 0.
        (replace(COMPARISON, changes=(ModelChange("alpha", replace(PASSED, macs=0, arena_bytes=0), None),)), ""),
        (replace(COMPARISON, label="main", base_commit="", planned_base="c3" * 20), ""),
        (replace(COMPARISON, label="pr/12/merge@3f3f3f3"), ""),
        # The label is printed in the log and the comment: a branch name and the commit the baseline records, only.
        (
            replace(COMPARISON, label="main\n::error::forged@3f3f3f3"),
            "label: 'main\\n::error::forged@3f3f3f3' is not a branch name and the baseline's commit",
        ),
        (
            replace(COMPARISON, label="main@c3c3c3c"),
            "label: 'main@c3c3c3c' is not a branch name and the baseline's commit",
        ),
        (replace(COMPARISON, label="main"), "label: 'main' is not a branch name and the baseline's commit"),
        (
            replace(COMPARISON, label="m" * 101 + "@3f3f3f3"),
            f"label: {'m' * 50!r} is not a branch name and the baseline's commit",
        ),
        (replace(COMPARISON, base_commit="x" * 60), f"base_commit: {'x' * 50!r} is not a commit's full SHA"),
        (replace(COMPARISON, planned_base="main"), "planned_base: 'main' is not a commit's full SHA"),
        (
            replace(COMPARISON, changes=(*COMPARISON.changes, ModelChange("a/b", None, PASSED))),
            "changes[2].name: 'a/b' is not a folder name",
        ),
        (
            replace(COMPARISON, changes=(ModelChange("alpha", replace(PASSED, method="x"), None),)),
            "changes[0]: method 'x' or metric 'accuracy' is unknown",
        ),
        (
            replace(COMPARISON, changes=(ModelChange("alpha", None, replace(PASSED, metric="f1")),)),
            "changes[0]: method 'int8' or metric 'f1' is unknown",
        ),
        (
            replace(COMPARISON, changes=(ModelChange("alpha", None, replace(PASSED, macs=-1)),)),
            "changes[0]: a MAC count or arena size is negative",
        ),
        (replace(COMPARISON, unchanged=("beta", "a/b")), "unchanged[1]: 'a/b' is not a folder name"),
    ],
)
def test_a_comparison_names_only_models_methods_and_commits(comparison, message) -> None:
    assert problem(check_comparison, comparison) == message


@pytest.mark.parametrize(
    ("source", "label", "commit"),
    [
        ({"commit": "3f" * 20, "ref": "main"}, "main@3f3f3f3", "3f" * 20),
        ({"commit": "3f" * 20, "ref": ""}, "base@3f3f3f3", "3f" * 20),
        # Not a full SHA (a forged or older report): no commit to compare with, and none in its name.
        ({"commit": "3f3f3f3", "ref": "main"}, "main", ""),
        (None, "base", ""),  # written outside GitHub Actions
        # Written elsewhere, and printed in the log and the comment: a ref that is no short branch name is not shown.
        ({"commit": "3f" * 20, "ref": "main\n::error::forged"}, "base@3f3f3f3", "3f" * 20),
        ({"commit": "", "ref": "b" * 101}, "base", ""),
    ],
)
def test_a_baseline_is_named_by_the_branch_and_commit_it_records(tmp_path, source, label, commit) -> None:
    document = report_json([ALPHA])
    document["source"] = source
    (tmp_path / "baseline.json").write_text(dumps(document))
    warnings: list[str] = []
    assert load_baseline(tmp_path / "baseline.json", warn=warnings.append) == Baseline(label, commit, {"alpha": ALPHA})
    assert warnings == []


def test_a_baseline_that_is_not_a_report_is_ignored_with_one_warning(tmp_path) -> None:
    (tmp_path / "baseline.json").write_text("[]")
    warnings: list[str] = []
    assert load_baseline(tmp_path / "baseline.json", warn=warnings.append) is None
    assert warnings == [
        "gate: warning: ignoring the baseline: baseline.json: expected a JSON object, got list; the report shows no "
        "changes against the base branch"
    ]
