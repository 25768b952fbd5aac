"""Parallel workers, merged shards and the result cache give the report a single plain run gives."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import run_gate

pytestmark = pytest.mark.slow  # end-to-end: real TensorFlow conversions or gate runs

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

    from gate.frontends.base import Dataset
    from gate.results import DataInfo, FileDigest
    from gate.targets.latency import measure_latency
    from gate.targets.litert import latency_case

    artifacts = serial.out_dir / "artifacts"
    with np.load(two_models / "models" / "alpha" / "eval.npz") as npz:
        x = npz["x"]
    name = serial.report["models"][0]["reference"]["inputs"][0]["name"]
    data = Dataset({name: x}, None, DataInfo(FileDigest("eval.npz", 0, ""), len(x)), two_models / "eval.npz")
    cases = [
        latency_case(label, artifacts / f"alpha.{label}.tflite", data, threads=1, rounds=5, warmup_rounds=1)
        for label in ("float32", "int8")
    ]
    windows = []

    @contextmanager
    def alone():
        windows.append("entered")
        yield
        windows[-1] = "left"

    latencies = measure_latency(cases, json_path=tmp_path / "bench.json", work_dir=tmp_path, alone=alone)

    assert windows == ["left", "left"]
    assert {label: latency.rounds for label, latency in latencies.items()} == {"float32": 5, "int8": 5}


# A stand-in for a worker process: it starts a child (as a worker starts the QAT process) and waits.
WORKER_WITH_A_CHILD = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(600)\n"
)


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _wait_for_state(pids: list[int], stopped: bool) -> bool:
    """Whether every process reaches the state (a signal takes effect a moment after kill() returns)."""
    for _ in range(200):
        if all((_state(pid) == "T") is stopped for pid in pids):
            return True
        time.sleep(0.05)
    return False


def test_while_a_worker_times_a_tflite_every_other_worker_and_its_children_are_stopped() -> None:
    """The scheduler's side of the window test_only_the_timed_cases_hold_the_machine_alone checks in the worker."""
    from gate.scheduling.scheduler import Scheduler, _Worker

    workers, children, controls = [], [], []
    scheduler = Scheduler(2, verbose=False, progress=lambda line: None, labels={0: "[1/2] a", 1: "[2/2] b"})
    try:
        for index in range(2):
            control_read, control_write = os.pipe()
            events_read, events_write = os.pipe()
            os.close(events_write)
            process = subprocess.Popen(
                [sys.executable, "-c", WORKER_WITH_A_CHILD], stdout=subprocess.PIPE, start_new_session=True, text=True
            )
            children.append(int(process.stdout.readline()))
            worker = _Worker(process, control_write, events_read, dedicated=False, index=index)
            worker.started = time.monotonic()
            workers.append(worker)
            controls.append(control_read)
        timing, other = workers
        scheduler._busy.extend(workers)

        scheduler._handle(timing, {"exclusive": True})
        assert os.read(controls[0], 100) == b'{"go": true}\n'  # the worker that asked may time its .tflite now
        assert _wait_for_state([other.process.pid, children[1]], stopped=True), "the other worker kept running"
        assert _state(timing.process.pid) != "T" and _state(children[0]) != "T"
        assert other.paused_since is not None and timing.paused_since is None

        scheduler._handle(timing, {"released": True})
        assert _wait_for_state([other.process.pid, children[1]], stopped=False)
        assert other.paused_since is None and other.paused_seconds > 0  # not counted against its limits
    finally:
        for worker in workers:
            worker.signal_group(signal.SIGKILL)
            worker.process.wait()
            os.close(worker.control)
            os.close(worker.events)
        for fd in controls:
            os.close(fd)


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
        ("digest", "alpha: artifacts/alpha.int8.tflite: does not match the sha256 and size its result records"),
        ("missing", "alpha: artifacts/alpha.float32.tflite: missing"),
        ("schema", "schema_version 99, but this gate reads 6; a newer gate wrote it: use that version here too"),
        ("field", "report.json: Invalid enum value 'MAYBE' - at `$.models[0].candidates[0].status`"),
        (
            "path",
            "report.json: models[0] ('alpha'): reference.artifact.path: '../../etc/passwd' is not "
            "'artifacts/alpha.float32.tflite'",
        ),
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
    for name in ("alpha", "beta"):  # the report's pointers to a model's log hold after a cached run too
        assert (second.out_dir / "logs" / f"{name}.log").read_bytes() == (
            first.out_dir / "logs" / f"{name}.log"
        ).read_bytes()

    # A corrupt entry is ignored with one warning and that model is gated again.
    (entry,) = list((tmp_path / "cache").glob("*/*/artifacts/alpha.int8.tflite"))
    entry.write_bytes(b"corrupt")
    third = run_gate("check", "--out", "cached-3", "--cache", tmp_path / "cache", cwd=two_models)
    assert third.exit_code == 0, third.stderr
    warnings = [line for line in third.stderr.splitlines() if "ignoring cache entry" in line]
    assert len(warnings) == 1 and "artifacts/alpha.int8.tflite: " in warnings[0], warnings
    assert not third.model("alpha")["origin"]["from_cache"] and third.model("beta")["origin"]["from_cache"]

    # A change to the bytes of a model's file (not a setting) is a miss: here eval.npz, its samples reordered.
    eval_npz = two_models / "models" / "beta" / "eval.npz"
    original = eval_npz.read_bytes()
    with np.load(eval_npz) as npz:
        np.savez(eval_npz, x=npz["x"][::-1], y=npz["y"][::-1])
    try:
        fourth = run_gate("check", "--out", "cached-4", "--cache", tmp_path / "cache", cwd=two_models)
        assert fourth.model("alpha")["origin"]["from_cache"] and not fourth.model("beta")["origin"]["from_cache"]
    finally:
        eval_npz.write_bytes(original)


def test_the_float_model_is_evaluated_in_batches_of_a_bounded_size() -> None:
    """TensorFlow keeps the memory of its largest batch: 64 ResNet50 images at once held 3 GiB for good."""
    from gate.frontends.base import Dataset
    from gate.results import DataInfo, FileDigest
    from gate.targets.litert import PREDICT_BATCH_BYTES, evaluate_float

    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (23, 128, 128, 3)).astype(np.float32)  # 192 KiB a sample
    labels = (images.mean(axis=(1, 2, 3)) > 0).astype(np.int64)
    data = Dataset({"image": images}, labels, DataInfo(FileDigest("eval.npz", 0, ""), 23), Path("eval.npz"))
    batches = []

    def brightness(inputs: dict[str, np.ndarray]) -> np.ndarray:
        batches.append(len(inputs["image"]))
        bright = inputs["image"].mean(axis=(1, 2, 3)) > 0
        return np.stack([~bright, bright], axis=1).astype(np.float32)

    evaluation = evaluate_float(brightness, data, "classification")
    assert batches == [5, 5, 5, 5, 3] and evaluation.batch_size == 5 == PREDICT_BATCH_BYTES // images[0].nbytes
    assert evaluation.value == 100.0 and evaluation.samples == 23
