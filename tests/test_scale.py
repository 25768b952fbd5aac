"""Parallel workers, merged shards and the result cache give the report a single plain run gives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import run_gate

TIMINGS = {"stage_seconds", "step_seconds", "latency", "speedup", "measured_at", "from_cache", "seconds"}


def without_timings(value: object) -> object:
    """A report with every figure that depends on timing removed (latency checks included)."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [
            without_timings(v) for v in value if not (isinstance(v, dict) and str(v.get("name")).startswith("latency."))
        ]
    return value


@pytest.fixture(scope="module")
def two_models(tmp_path_factory, healthy_model) -> Path:
    root = tmp_path_factory.mktemp("scale")
    (root / "policies").mkdir()
    shutil.copy(Path(__file__).parent.parent / "policies" / "default.toml", root / "policies")
    for name in ("alpha", "beta"):
        shutil.copytree(healthy_model, root / "models" / name)
    (root / "models" / "beta" / "gate.toml").write_text("calibration_samples = 100\n")
    return root


@pytest.fixture(scope="module")
def serial(two_models):
    run = run_gate("check", "-j", "1", "--no-cache", "--out", "serial", cwd=two_models)
    assert run.exit_code == 0, run.stderr
    return run


def test_two_workers_give_the_report_of_one(two_models, serial) -> None:
    parallel = run_gate("check", "-j", "2", "--no-cache", "--out", "parallel", cwd=two_models)
    assert parallel.exit_code == 0, parallel.stderr
    assert without_timings(parallel.report) == without_timings(serial.report)
    assert (parallel.out_dir / "SHA256SUMS").read_text() == (serial.out_dir / "SHA256SUMS").read_text()
    assert "Every other gate worker was paused while each `.tflite` was timed" in parallel.markdown


def test_only_the_timed_cases_hold_the_machine_alone(two_models, serial, tmp_path) -> None:
    """The window in which every other worker is paused: one per timed .tflite, nothing of pytest's own outside it."""
    from contextlib import contextmanager

    import numpy as np

    from gate import measure
    from gate.load import Dataset
    from gate.results import DataInfo, FileDigest

    artifacts = serial.out_dir / "artifacts"
    with np.load(two_models / "models" / "alpha" / "eval.npz") as npz:
        x = npz["x"]
    name = serial.report["models"][0]["reference"]["inputs"][0]["name"]
    data = Dataset({name: x}, None, DataInfo(FileDigest("eval.npz", 0, ""), len(x)), two_models / "eval.npz")
    cases = [measure.latency_case(label, artifacts / f"alpha.{label}.tflite", data, threads=1, rounds=5,
                                  warmup_rounds=1) for label in ("float32", "int8")]  # fmt: skip
    windows = []

    @contextmanager
    def alone():
        windows.append("entered")
        yield
        windows[-1] = "left"

    latencies = measure.measure_latency(cases, json_path=tmp_path / "bench.json", work_dir=tmp_path, alone=alone)

    assert windows == ["left", "left"]
    assert {label: latency.rounds for label, latency in latencies.items()} == {"float32": 5, "int8": 5}


def test_merging_two_shards_gives_the_report_of_one_run(two_models, serial) -> None:
    for name in ("alpha", "beta"):
        entry = json.dumps({"model": name, "path": f"models/{name}"})
        shard = run_gate("check", "--entry", entry, "--no-cache", "--out", f"shard-{name}", cwd=two_models)
        assert shard.exit_code == 0, shard.stderr
    merged = run_gate("merge", "shard-beta", "shard-alpha", "--out", "merged", cwd=two_models)
    assert merged.exit_code == 0, merged.stderr
    assert without_timings(merged.report) == without_timings(serial.report)
    for name in ("SHA256SUMS", "artifacts/alpha.int8.tflite", "artifacts/beta.float32.tflite"):
        assert (merged.out_dir / name).read_bytes() == (serial.out_dir / name).read_bytes()
    assert (merged.out_dir / "benchmarks" / "alpha.json").is_file()


def tamper(shard: Path, how: str) -> None:
    report = json.loads((shard / "report.json").read_text())
    model = report["models"][0]
    if how == "digest":
        (shard / "artifacts" / "alpha.int8.tflite").write_bytes(b"not the gated model")
    elif how == "missing":
        (shard / "artifacts" / "alpha.float32.tflite").unlink()
    elif how == "schema":
        report["schema_version"] = 99
    elif how == "field":
        model["candidates"][0]["status"] = "MAYBE"
    elif how == "path":
        model["reference"]["artifact"]["path"] = "../../etc/passwd"
    (shard / "report.json").write_text(json.dumps(report))


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("digest", "alpha: artifacts/alpha.int8.tflite does not match the sha256 its result records"),
        ("missing", "alpha: artifact artifacts/alpha.float32.tflite is missing"),
        ("schema", "schema_version 99, but this gate reads 3; a newer gate wrote it: use that version here too"),
        ("field", "models[0]: Invalid enum value 'MAYBE' - at `$.candidates[0].status`"),
        ("path", "alpha: artifact path '../../etc/passwd' is not 'artifacts/alpha.float32.tflite'"),
    ],
)
def test_a_tampered_shard_is_refused_naming_the_shard_and_the_problem(
    two_models, serial, tmp_path, how, message
) -> None:
    shard = tmp_path / "shard"
    shutil.copytree(serial.out_dir, shard)
    report = json.loads((shard / "report.json").read_text())
    report["models"] = report["models"][:1]  # alpha only
    (shard / "report.json").write_text(json.dumps(report))
    tamper(shard, how)
    merged = run_gate("merge", shard, "--out", tmp_path / "merged", cwd=two_models)
    assert merged.exit_code == 2
    assert merged.stderr.startswith(f"gate: error: gate merge: refusing shard {shard}: "), merged.stderr
    assert message in merged.stderr
    assert "Traceback" not in merged.stderr


def test_a_model_gated_in_two_shards_is_refused(two_models, serial, tmp_path) -> None:
    merged = run_gate("merge", serial.out_dir, serial.out_dir, "--out", tmp_path / "merged", cwd=two_models)
    assert merged.exit_code == 2
    assert f"model alpha was gated in {serial.out_dir} too; each model belongs to exactly one shard" in merged.stderr


def test_a_planned_model_without_a_result_is_an_error_row(two_models, serial, tmp_path) -> None:
    (tmp_path / "plan.json").write_text(json.dumps({"models": ["alpha", "beta", "gamma"], "removed": ["old"]}))
    merged = run_gate(
        "merge", serial.out_dir, "--plan", tmp_path / "plan.json", "--out", tmp_path / "m", cwd=two_models
    )
    assert merged.exit_code == 1
    assert merged.model("gamma")["error"].startswith("no shard holds a result for gamma")


def test_nothing_planned_is_a_passing_report(two_models, tmp_path) -> None:
    merged = run_gate("merge", "--out", tmp_path / "empty", cwd=two_models)
    assert merged.exit_code == 0
    assert merged.markdown.startswith("## ✅ gate: no model to gate")


def test_a_second_run_reuses_every_result_without_importing_tensorflow(two_models, tmp_path) -> None:
    first = run_gate("check", "--out", "cached-1", "--cache", tmp_path / "cache", cwd=two_models)
    assert first.exit_code == 0, first.stderr
    blocker = tmp_path / "no-tensorflow"
    (blocker / "tensorflow").mkdir(parents=True)
    (blocker / "tensorflow" / "__init__.py").write_text("raise ImportError('TensorFlow was imported')\n")
    second = run_gate(
        "check", "--out", "cached-2", "--cache", tmp_path / "cache", cwd=two_models, env={"PYTHONPATH": str(blocker)}
    )
    assert second.exit_code == 0, second.stderr
    assert without_timings(second.report) == without_timings(first.report)
    assert all(m["origin"]["from_cache"] for m in second.report["models"])
    assert "**reused from the result cache**" in second.markdown
    assert "(cached)" in second.markdown.splitlines()[4]
    assert (second.out_dir / "SHA256SUMS").read_text() == (first.out_dir / "SHA256SUMS").read_text()

    # A corrupt entry is ignored with one warning and that model is gated again.
    (entry,) = list((tmp_path / "cache").glob("*/*/artifacts/alpha.int8.tflite"))
    entry.write_bytes(b"corrupt")
    third = run_gate("check", "--out", "cached-3", "--cache", tmp_path / "cache", cwd=two_models)
    assert third.exit_code == 0, third.stderr
    warnings = [line for line in third.stderr.splitlines() if "ignoring cache entry" in line]
    assert len(warnings) == 1 and "artifacts/alpha.int8.tflite is missing or does not match its sha256" in warnings[0]
    assert not third.model("alpha")["origin"]["from_cache"] and third.model("beta")["origin"]["from_cache"]

    # A change to the model's files is a miss.
    (two_models / "models" / "beta" / "gate.toml").write_text("calibration_samples = 101\n")
    try:
        fourth = run_gate("check", "--out", "cached-4", "--cache", tmp_path / "cache", cwd=two_models)
        assert fourth.model("alpha")["origin"]["from_cache"] and not fourth.model("beta")["origin"]["from_cache"]
    finally:
        (two_models / "models" / "beta" / "gate.toml").write_text("calibration_samples = 100\n")
