from pathlib import Path

import pytest
from factories import model_result
from helpers import planted, run_gate

from gate import cli
from gate.commands import check
from gate.errors import ConfigError
from gate.results import error_result


@pytest.mark.parametrize(
    ("version", "refused"), [("3.13.1", True), ("2.15.0", True), ("3.13.2", False), ("3.15.1", False)]
)
def test_keras_older_than_3_13_2_is_refused_at_start_up(monkeypatch, version, refused) -> None:
    monkeypatch.setattr(check.metadata, "version", lambda name: version)
    if refused:
        with pytest.raises(ConfigError, match=f"Keras {version} is installed; gate needs keras>=3.13.2"):
            check.check_keras_version()
    else:
        check.check_keras_version()


def test_gate_check_refuses_an_old_keras_before_it_reads_or_deletes_anything(tmp_path, monkeypatch, capsys) -> None:
    """Through the command itself: the check is worth nothing if `gate check` never calls it."""
    monkeypatch.setattr(check.metadata, "version", lambda name: "3.13.1")
    out = tmp_path / "gate-out"
    (out / "logs").mkdir(parents=True)
    models, policies = tmp_path / "models", tmp_path / "policies"
    assert cli.main(["check", str(models), "--policies", str(policies), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "gate: error: Keras 3.13.1 is installed; gate needs keras>=3.13.2, which fixes known safe_mode bypasses: "
        "pip install 'keras>=3.13.2'\n"
    )
    assert (out / "logs").is_dir()


@pytest.mark.parametrize(
    ("result", "line"),
    [
        (model_result("digits"), "digits  int8  PASS  5 checks passed, 0 skipped"),
        (
            model_result("digits", accuracy=93.0),
            "digits  int8  FAIL  accuracy.max_drop: accuracy dropped 3.00 pts (allowed drop ≤ 2)",
        ),
        (
            error_result("broken", "models/broken/gate.toml: task: expected ...\nmodels/broken/gate.toml: policy: ..."),
            "broken  ERROR  models/broken/gate.toml: task: expected ...; models/broken/gate.toml: policy: ...",
        ),
    ],
)
def test_one_verdict_line_per_model(result, line) -> None:
    assert check.verdict_line(result) == line


def test_validate_reports_a_missing_default_policy_and_models_folder_together(tmp_path, capsys) -> None:
    assert cli.main(["validate", str(tmp_path / "nowhere"), "--policies", str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{tmp_path}: no default.toml; every run needs a default policy for models whose gate.toml names none",
        f"{tmp_path / 'nowhere'}: no such folder; pass model folders or the folder that holds them",
        "gate: 2 problem(s) found; loading the model, its conversion and the eval run are not checked (gate check "
        "does them)",
    ]


def test_an_output_folder_behind_a_symbolic_link_is_refused_before_anything_is_deleted(workspace) -> None:
    from gate.run import gate_all

    victim = workspace / "victim"
    (victim / "logs").mkdir(parents=True)
    (victim / "logs" / "keep.txt").write_text("keep")
    (workspace / "gate-out").symlink_to(victim)
    with pytest.raises(
        ConfigError,
        match=r"gate-out is a symbolic link, which could point anywhere .*; pass a real "
        r"folder with --out",
    ):
        gate_all([workspace / "models"], policies_dir=workspace / "policies", out_dir=workspace / "gate-out")
    assert (victim / "logs" / "keep.txt").read_text() == "keep"


def test_gate_merge_refuses_an_output_folder_behind_a_symbolic_link(tmp_path, capsys) -> None:
    victim = tmp_path / "victim"
    (victim / "logs").mkdir(parents=True)
    (victim / "logs" / "keep.txt").write_text("keep")
    (tmp_path / "merged").symlink_to(victim)
    assert cli.main(["merge", "--out", str(tmp_path / "merged")]) == 2  # zero shards: it would write a report
    assert capsys.readouterr().err == (
        f"gate: error: {tmp_path / 'merged'}: {tmp_path / 'merged'} is a symbolic link, which could point anywhere on "
        "the machine that runs the gate; pass a real folder with --out (gate deletes its earlier outputs there)\n"
    )
    assert sorted(p.name for p in victim.rglob("*")) == ["keep.txt", "logs"]


# A bug in gate on demand: every worker's gating of a model raises at once, before TensorFlow is imported.
PLANTED_WORKER_BUG = """
import gate.pipeline


def planted(job, stages):
    raise ZeroDivisionError("a planted bug")


gate.pipeline._gate_model = planted
"""


@pytest.mark.parametrize("debug", [False, True], ids=["without --debug", "with --debug"])
def test_a_bug_in_a_worker_is_that_models_error_row_with_its_traceback_in_the_log(workspace, debug) -> None:
    env = planted(workspace / "planted", PLANTED_WORKER_BUG)
    run = run_gate(*["--debug"] * debug, "check", "models/healthy", cwd=workspace, env=env)
    assert run.exit_code == 1
    assert run.model("healthy")["error"] == (
        "internal error in gate (ZeroDivisionError: a planted bug); this is a bug in gate: please report it with its "
        f"traceback (in {Path('logs/healthy.log')} in the output folder; --debug shows it too)"
    )
    log = (run.out_dir / "logs" / "healthy.log").read_text()
    assert "Traceback (most recent call last):" in log and "ZeroDivisionError: a planted bug" in log
    if debug:
        shown = run.stderr.split("[1/1] healthy: internal error in gate, in its worker:\n", 1)[1]
        assert shown.startswith("Traceback (most recent call last):\n")
        assert "\nZeroDivisionError: a planted bug\n" in shown
    else:
        assert "Traceback" not in run.stderr + run.stdout


@pytest.mark.parametrize("debug", [False, True], ids=["without --debug", "with --debug"])
def test_a_bug_in_the_main_process_exits_2_with_its_traceback_only_under_debug(monkeypatch, capsys, debug) -> None:
    import gate.plan

    def planted_bug(**kwargs: object) -> None:
        raise ZeroDivisionError("a planted bug")

    monkeypatch.setattr(gate.plan, "plan_changes", planted_bug)
    assert cli.main([*["--debug"] * debug, "plan", "--base", "HEAD"]) == 2
    error = capsys.readouterr().err
    if debug:
        assert error.startswith("Traceback (most recent call last):\n")
        assert error.endswith("\nZeroDivisionError: a planted bug\n")
    else:
        assert error == "gate: internal error (a bug in gate); run again with --debug for the traceback\n"


@pytest.mark.parametrize(
    "argv", [["--debug", "validate", "nowhere"], ["validate", "nowhere", "--debug"], ["validate", "nowhere"]]
)
def test_debug_is_accepted_before_and_after_the_command(argv, monkeypatch, capsys) -> None:
    def bug(args) -> int:
        raise RuntimeError("a bug in gate")

    monkeypatch.setattr(cli.COMMANDS["validate"], "run", bug)
    assert cli.main(argv) == 2
    traceback_shown = "RuntimeError: a bug in gate" in capsys.readouterr().err
    assert traceback_shown == ("--debug" in argv)
