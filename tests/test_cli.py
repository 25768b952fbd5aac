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
            "digits  int8  FAIL  accuracy.max_drop: accuracy dropped 3.00 pts (allowed ≤ 2)",
        ),
        (
            error_result("broken", "models/broken: no eval.npz\nsecond line"),
            "broken  ERROR  models/broken: no eval.npz",
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
        "gate: 2 problem(s) found",
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
