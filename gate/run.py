"""Run the gate over model folders: one isolated worker process per model.

Each model is gated by `python -m gate.pipeline` in its own process group,
with the wall-time and memory limits of its policy. A converter crash (the
TFLite converter has died with SIGSEGV on a BiLSTM here), an abort, a hang or
an out-of-memory ends only that worker and becomes that model's ERROR row.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from gate.config import Configuration, ModelConfig, configure
from gate.discover import refuse_links
from gate.layout import ModelOutputs, clear_outputs, log_path
from gate.pipeline import Job
from gate.report import write_reports
from gate.results import ModelResult, Status, error_result, to_jsonable

POLL_SECONDS = 0.2
# TensorFlow's C++ logging and absl: hidden unless --verbose (the converter's
# own prints go to the model's log file instead of the terminal).
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "3", "ABSL_MIN_LOG_LEVEL": "3"}

Progress = Callable[[str], None]


def plan(configuration: Configuration, out_dir: Path) -> list[Job | ModelResult]:
    """A job per model folder; a broken gate.toml makes only its own model an ERROR result."""
    return [
        job_for(model, out_dir) if isinstance(model, ModelConfig) else error_result(model[0].name, model[1])
        for model in configuration.models
    ]


def job_for(model: ModelConfig, out_dir: Path) -> Job:
    manifest = model.manifest
    return Job(
        name=model.folder.name,
        folder=str(model.folder.path),
        task=manifest.task,
        method=manifest.method,
        calibration_samples=manifest.calibration_samples,
        calibrate_on_eval=manifest.calibrate_on_eval,
        allow_custom_objects=manifest.allow_custom_objects,
        policy_file=model.policy.path,
        policy=model.values,
        overrides=dict(manifest.overrides),
        override_reason=manifest.override_reason,
        out_dir=str(out_dir),
    )


def gate_all(
    model_dirs: Sequence[Path],
    *,
    policies_dir: Path,
    out_dir: Path,
    verbose: bool = False,
    progress: Progress = lambda line: None,
) -> list[ModelResult]:
    """Gate every model under `model_dirs` and write the reports into `out_dir`.

    Raises ConfigError (before touching any model) for a broken policy or command line.
    """
    configuration = configure(model_dirs, policies_dir=policies_dir)
    refuse_links(out_dir, "pass a real folder with --out (gate deletes its earlier outputs there)")
    jobs = plan(configuration, out_dir)
    clear_outputs(out_dir)
    results = []
    with tempfile.TemporaryDirectory(prefix="gate-jobs-") as job_dir:
        for number, job in enumerate(jobs, start=1):
            label = f"[{number}/{len(jobs)}] {job.name}"
            if isinstance(job, ModelResult):
                progress(f"{label}: ERROR before gating: {job.error.splitlines()[0]}")
                results.append(job)
                continue
            result = run_worker(job, job_dir=Path(job_dir), verbose=verbose, progress=lambda line: progress(f"{label}: {line}"))
            outputs = ModelOutputs(out_dir, job.name)
            if result.status is Status.ERROR:
                outputs.discard()
            else:
                outputs.publish(result.kept_files())
            results.append(result)
    write_reports(out_dir, results)
    return results


def run_worker(job: Job, *, job_dir: Path, verbose: bool, progress: Progress) -> ModelResult:
    """Gate one model in a child process; whatever happens to it, return its result."""
    job_path = job_dir / f"{job.name}.json"
    job_path.write_text(json.dumps(to_jsonable(job)))
    result_path = job_path.with_suffix(".result.json")
    log = Path(job.out_dir) / log_path(job.name)
    log.parent.mkdir(parents=True, exist_ok=True)
    timeout_s = float(job.policy["limits.timeout_s"])
    memory_mb = int(job.policy["limits.memory_mb"])

    read_fd, write_fd = os.pipe()
    # PYTHONSAFEPATH: `python -m`, here and in any Python the worker starts (pytest-benchmark runs
    # `python -m cpuinfo`), would put the working directory, the pull request's checkout, first on
    # sys.path, where a committed json.py or numpy.py would be imported in place of the real module.
    environment = os.environ | {"PYTHONSAFEPATH": "1"} | ({} if verbose else QUIET_ENVIRONMENT)
    start = time.monotonic()
    with open(log, "wb") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "gate.pipeline", str(job_path), str(write_fd)],
            pass_fds=(write_fd,),
            stdin=subprocess.DEVNULL,
            stdout=None if verbose else log_file,
            stderr=None if verbose else subprocess.STDOUT,
            env=environment,
            start_new_session=True,  # its own process group: a kill reaches anything it started
        )
    os.close(write_fd)
    stage, limit_hit = "start", ""
    try:
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            pending = b""
            while True:
                ready, _, _ = select.select([pipe], [], [], POLL_SECONDS)
                if ready:
                    chunk = pipe.read(4096)
                    if not chunk:
                        break  # the worker closed its end: it has exited
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        stage, seconds = line.decode().split("\t")
                        if float(seconds) >= 0:
                            progress(f"{stage} {float(seconds):.1f} s")
                elapsed = time.monotonic() - start
                if elapsed > timeout_s:
                    limit_hit = f"took longer than its {timeout_s:g} s wall-time limit (limits.timeout_s)"
                    break
                rss_mb = _resident_mb(worker.pid)
                if rss_mb > memory_mb:
                    limit_hit = f"used {rss_mb:,} MiB of memory, over its {memory_mb:,} MiB limit (limits.memory_mb)"
                    break
    finally:
        if worker.poll() is None:
            _kill_group(worker)
    worker.wait()
    elapsed = time.monotonic() - start
    where = f"during stage '{stage}'" if stage != "start" else "before its first stage"
    log_hint = f"; see {log}" if not verbose else ""
    if limit_hit:
        result = error_result(job.name, f"{job.folder}: gating was stopped {where}: the model {limit_hit}; raise the limit in the policy or gate.toml overrides, or shrink the model{log_hint}", task=job.task)
    elif worker.returncode < 0:
        name = signal.Signals(-worker.returncode).name
        result = error_result(job.name, f"{job.folder}: the gate's worker died with {name} {where} (a crash inside TensorFlow or LiteRT on this model){log_hint}", task=job.task)
    elif not result_path.is_file():
        result = error_result(job.name, f"{job.folder}: the gate's worker exited with code {worker.returncode} {where} without a result{log_hint}", task=job.task)
    else:
        result = ModelResult.from_json(json.loads(result_path.read_text()))
    progress(f"{result.status.value} in {elapsed:.1f} s")
    return result


def _resident_mb(pid: int) -> int:
    """Resident memory of a process in MiB (0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _kill_group(worker: subprocess.Popen) -> None:
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
