import pytest
from factories import model_result

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
