"""Each model is gated in its own process: a crash, hang or memory blow-up ends only that model,
and an interrupted run leaves nothing that looks complete."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import planted, run_gate

pytestmark = pytest.mark.slow  # end-to-end: real TensorFlow conversions or gate runs

# As it is (not unrolled: the app resets the state), a Keras 3 LSTM's int8 calibration dies with SIGSEGV in TF 2.21.
AS_IT_IS = 'override_reason = "test a converter crash"\n[overrides.runtime]\nresets_state = true\n'


def bilstm_attention(folder: Path) -> None:
    """The BiLSTM + attention model whose full-int8 conversion, not unrolled, dies with SIGSEGV in TF 2.21."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8), name="rows")
    sequence = keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True))(inputs)
    attended = keras.layers.Attention()([sequence, sequence])
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.GlobalAveragePooling1D()(attended))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((200, 8, 8), dtype=np.float32)
    y = np.arange(200) % 10
    model.fit(x, y, epochs=1, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    np.savez(folder / "train.npz", x=x, y=y)
    np.savez(folder / "eval.npz", x=x[:50], y=y[:50])


def with_limit(workspace: Path, name: str, limit: str) -> None:
    shutil.copytree(workspace / "models" / "healthy", workspace / "models" / name)
    (workspace / "models" / name / "gate.toml").write_text(f'override_reason = "test"\n[overrides.limits]\n{limit}\n')


def test_a_converter_crash_fails_that_candidate_and_a_model_with_no_other_is_an_error_row(workspace) -> None:
    bilstm_attention(workspace / "models" / "bilstm")
    (workspace / "models" / "bilstm" / "gate.toml").write_text('method = "int8"\n' + AS_IT_IS)
    run = run_gate("check", cwd=workspace)
    assert run.exit_code == 1
    crash = (
        "the gate's worker died with SIGSEGV while building or measuring it (a crash inside TensorFlow or "
        f"LiteRT); see {Path('logs/bilstm.log')} in the output folder"
    )
    assert run.model("bilstm")["error"] == f"{Path('models/bilstm')}: no candidate could be built: int8: {crash}"
    assert [(c["method"], c["status"], c["reason"]) for c in run.model("bilstm")["candidates"]] == [
        ("int8", "ERROR", crash)
    ]
    assert "candidate int8: ERROR the gate's worker died with SIGSEGV" in run.stderr
    # The model's log says what killed it, and where, after TensorFlow's own last words.
    log = (run.out_dir / "logs" / "bilstm.log").read_text()
    assert (
        "\ngate: bilstm: the worker died with SIGSEGV during stage 'search' while building or measuring candidate "
        "int8\n"
    ) in log
    assert run.model("healthy")["status"] == "PASS"
    # The float32 .tflite was written before the crash: a model that was not gated publishes nothing.
    assert sorted(p.name for p in (run.out_dir / "artifacts").iterdir()) == [
        "healthy.float32.tflite",
        "healthy.int8.tflite",
    ]


def test_after_a_candidate_crashes_the_search_goes_on_with_the_next(workspace) -> None:
    bilstm_attention(workspace / "models" / "bilstm")
    (workspace / "models" / "bilstm" / "gate.toml").write_text(
        'policy = "float_io"\n' + AS_IT_IS + '[overrides.search]\ncandidates = ["int8", "dynamic_range"]\n'
    )
    run = run_gate("check", cwd=workspace)
    model = run.model("bilstm")
    assert [(c["method"], c["status"]) for c in model["candidates"]][0] == ("int8", "ERROR")
    assert "died with SIGSEGV" in model["candidates"][0]["reason"]
    assert model["candidates"][1]["method"] == "dynamic_range" and model["candidates"][1]["conversion"]
    assert model["status"] in ("PASS", "FAIL") and model["chosen"] == 1
    assert (run.out_dir / "artifacts" / "bilstm.dynamic_range.tflite").is_file()
    assert "| `int8` | — | — | — | — | — | ⚠️ ERROR: the gate's worker died with SIGSEGV" in run.markdown


def test_wall_time_and_memory_limits_stop_a_model_and_name_the_limit(workspace) -> None:
    with_limit(workspace, "slow", "timeout_s = 1")
    with_limit(workspace, "hungry", "memory_mb = 256")  # importing TensorFlow alone takes more
    # Measured here: the worker peaks at 725 MiB, the worker with its QAT process at 1,507 MiB.
    with_limit(workspace, "hungry_qat", "memory_mb = 1024")
    manifest = workspace / "models" / "hungry_qat" / "gate.toml"
    manifest.write_text('method = "qat-int8"\n' + manifest.read_text())
    run = run_gate("check", cwd=workspace)
    assert run.exit_code == 1
    assert "took longer than its 1 s wall-time limit (limits.timeout_s)" in run.model("slow")["error"]
    assert ", over its 256 MiB limit (limits.memory_mb)" in run.model("hungry")["error"]
    assert re.fullmatch(
        rf"{re.escape(str(Path('models/hungry_qat')))}: gating was stopped during stage 'search': the model used "
        r"1,\d\d\d MiB of memory, over its 1,024 MiB limit \(limits\.memory_mb\); .*",
        run.model("hungry_qat")["error"],
    ), run.model("hungry_qat")["error"]
    assert run.model("healthy")["status"] == "PASS"
    assert "Traceback" not in run.stdout + run.stderr


# A stand-in for a worker: it starts a child, as a worker starts the QAT process, and both fill memory.
WORKER_AND_CHILD_FILLING_MEMORY = (
    "import subprocess, sys, time\n"
    "held = b'w' * (150 << 20)\n"
    "child = subprocess.Popen([sys.executable, '-c', \"held = b'c' * (300 << 20); print(flush=True); "
    'import time; time.sleep(600)"], stdout=subprocess.PIPE)\n'
    "child.stdout.readline()\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(600)\n"
)


def test_the_memory_of_a_model_counts_every_process_its_worker_started() -> None:
    from gate.scheduling.scheduler import _resident_mb

    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER_AND_CHILD_FILLING_MEMORY],
        stdout=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    try:
        child = int(worker.stdout.readline())
        assert os.getpgid(child) == worker.pid
        assert _resident_mb(worker.pid) >= 450  # 150 MiB held by the worker, 300 MiB by its child
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    assert _resident_mb(worker.pid) == 0


HANGING_INT8_CONVERTER = """
import time
import gate.quantization.convert

convert = gate.quantization.convert.convert


def hanging(saved_model_dir, *, method, **kwargs):
    if method == "int8":  # hangs, as TFLiteConverter has on some graphs
        time.sleep(600)
    return convert(saved_model_dir, method=method, **kwargs)


gate.quantization.convert.convert = hanging
"""


def test_a_hung_candidate_is_stopped_and_its_time_counts_against_the_search_and_the_model(workspace) -> None:
    """search.candidate_timeout_s stops it; its seconds stay spent in search.max_seconds and limits.timeout_s."""
    shutil.copytree(workspace / "models" / "healthy", workspace / "models" / "hangs")
    (workspace / "models" / "hangs" / "gate.toml").write_text(
        'policy = "float_io"\noverride_reason = "a converter that hangs"\n'
        '[overrides.search]\ncandidates = ["int8", "dynamic_range"]\ncandidate_timeout_s = 2\nmax_seconds = 1\n'
    )
    env = planted(workspace / "planted", HANGING_INT8_CONVERTER)
    run = run_gate("check", str(Path("models/hangs")), cwd=workspace, env=env)
    model = run.model("hangs")
    stopped = "it took longer than its 2 s limit (search.candidate_timeout_s) and was stopped"
    used_up = "not tried: the search's time budget (search.max_seconds = 1 s) was used up"
    assert [(c["method"], c["status"], c["reason"]) for c in model["candidates"]] == [
        ("int8", "ERROR", stopped),
        ("dynamic_range", "SKIP", used_up),  # the fresh worker starts with the 2+ s the hung candidate took
    ]
    assert (
        model["error"]
        == f"{Path('models/hangs')}: no candidate could be built: int8: {stopped}; dynamic_range: {used_up}"
    )
    # Both workers' time is the model's: the last line adds the first worker's (its stages and the 2 s
    # candidate) to the second's, where a clock restarted by the resume would show the second's alone.
    stages = [float(m[1]) for m in re.finditer(r"^\[1/1\] hangs: [a-z ]+ (\d+\.\d) s$", run.stderr, re.MULTILINE)]
    total = float(re.search(r"^\[1/1\] hangs: ERROR in (\d+\.\d) s$", run.stderr, re.MULTILINE)[1])
    assert len(stages) >= 8 and total >= 2 + sum(stages) - 0.1 * len(stages), run.stderr


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status is left to collect


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_interrupted_run_leaves_no_report_and_the_next_run_recovers(workspace, jobs) -> None:
    shutil.copytree(workspace / "models" / "healthy", workspace / "models" / "second")
    out = workspace / "gate-out"
    out.mkdir()
    (out / "report.json").write_text('{"stale": "a report from an earlier run"}')
    gate = subprocess.Popen(
        [sys.executable, "-P", "-m", "gate.cli", "check", "-j", str(jobs)],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in gate.stderr:
        if line.startswith("[2/2] second: "):  # the first model is done, the second is being gated
            workers = subprocess.run(["pgrep", "-P", str(gate.pid)], capture_output=True, text=True).stdout.split()
            gate.send_signal(signal.SIGTERM)
            break
    gate.communicate(timeout=60)
    assert gate.returncode == 128 + signal.SIGTERM
    assert not (out / "report.json").exists() and not (out / "report.md").exists()
    assert not list(out.rglob(".*.tmp"))
    assert len(workers) == jobs  # with -j 2, both models are being gated
    assert not any(_running(int(pid)) for pid in workers), "the running workers must be killed with the run"

    rerun = run_gate("check", cwd=workspace)
    assert rerun.exit_code == 0
    assert [m["name"] for m in rerun.report["models"]] == ["healthy", "second"]
