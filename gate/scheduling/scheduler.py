"""Supervise the worker processes: hand out jobs, keep every model within its limits, and turn crashes into rows.

Each worker (`python -m gate.scheduling.worker`) runs in its own process group and gates
model after model, importing TensorFlow once. Every model keeps its own
wall-time and memory limits. A converter crash (the TFLite converter has died
with SIGSEGV on a BiLSTM here), an abort, a hang or an out-of-memory ends only
that worker: the model it was gating becomes an ERROR row and the remaining
models go to a fresh worker. Latency is measured while every other worker is
paused (SIGSTOP), so a benchmark never shares the CPU with another model's
conversion.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gate.encoding import InvalidResult, load_result, to_jsonable
from gate.gating.pipeline import Job
from gate.layout import log_path
from gate.policy.config import Settings
from gate.quantization.methods import METHODS
from gate.readback import Refused, read_json
from gate.reporting.verify import check_result
from gate.results import Candidate, ModelResult, Status, error_result

# Its `# fmt: skip`s keep this module under 400 lines (formatted, it goes over): split it before removing them.

POLL_SECONDS = 0.2
# TensorFlow's C++ logging and absl: hidden unless --verbose (the converter's
# own prints go to the model's log file instead of the terminal).
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "3", "ABSL_MIN_LOG_LEVEL": "3"}

Progress = Callable[[str], None]


@dataclass
class _Worker:
    """One worker process and the model it is gating."""

    process: subprocess.Popen
    control: int  # write end: jobs and grants
    events: int  # read end: stages, requests, results
    dedicated: bool  # runs one model's allowed custom code (or custom metric): ends after that model
    pending: bytes = b""
    index: int = -1
    job: Job | None = None
    stage: str = "start"
    started: float = 0.0
    paused_seconds: float = 0.0
    paused_since: float | None = None  # stopped for another's latency, or waiting for its own turn
    stopped: bool = False  # SIGSTOPped
    candidate: str = ""  # the candidate being built: a crash or hang now is that candidate's
    candidate_started: float = 0.0  # elapsed() when it started
    done: list[Candidate] = field(default_factory=list)  # candidates finished in this worker
    search_seconds: float = 0.0

    def send(self, message: dict) -> None:
        os.write(self.control, (json.dumps(message) + "\n").encode())

    def elapsed(self, now: float) -> float:
        """Wall time spent on its model, not counting the time it was paused for another's latency."""
        paused = self.paused_seconds + (now - self.paused_since if self.paused_since is not None else 0.0)
        return now - self.started - paused

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass


@dataclass
class Scheduler:
    """Hands jobs to up to `workers` worker processes and keeps latency measurements alone on the machine."""

    workers: int
    verbose: bool
    progress: Progress
    labels: dict[int, str]
    debug: bool = False  # print the traceback a worker sends when gate itself failed
    pycache: Path | None = None  # where the workers' Python reads and writes bytecode (None: beside the sources)
    _busy: list[_Worker] = field(default_factory=list)
    _idle: list[_Worker] = field(default_factory=list)
    _holder: _Worker | None = None  # the worker measuring latency, while every other one is paused
    _waiting: deque[_Worker] = field(default_factory=deque)

    def run(self, queue: Sequence[tuple[int, Job]], finished: Callable[[int, ModelResult], None]) -> None:
        self._todo = deque(queue)
        self._finished = finished
        try:
            while self._todo or self._busy:
                while self._todo and len(self._busy) < self.workers and self._holder is None:
                    self._start(*self._todo.popleft())
                self._poll()
        finally:
            for worker in self._busy + self._idle:
                worker.signal_group(signal.SIGKILL)
                worker.process.wait()
                os.close(worker.control)
                os.close(worker.events)

    def _start(self, index: int, job: Job) -> None:
        dedicated = bool(job.allow_custom_objects or job.metric)
        worker = self._idle.pop() if self._idle and not dedicated else self._spawn(dedicated)
        worker.index, worker.job, worker.stage = index, job, "start"
        # A resumed model goes on with the wall time its earlier workers used: limits.timeout_s is the model's.
        worker.started, worker.paused_seconds, worker.paused_since = time.monotonic() - job.elapsed_seconds, 0.0, None
        worker.candidate, worker.done, worker.search_seconds = "", list(job.done), job.search_seconds
        Path(job.log_path).parent.mkdir(parents=True, exist_ok=True)
        worker.send({"job": to_jsonable(job)})
        self._busy.append(worker)

    def _spawn(self, dedicated: bool) -> _Worker:
        control_read, control_write = os.pipe()
        events_read, events_write = os.pipe()
        # PYTHONSAFEPATH: `python -m`, here and in any Python the worker starts (pytest-benchmark runs
        # `python -m cpuinfo`), would put the working directory, the pull request's checkout, first on
        # sys.path, where a committed json.py or numpy.py would be imported in place of the real module.
        environment = os.environ | {"PYTHONSAFEPATH": "1"}
        # PYTHONPYCACHEPREFIX: an allowed custom object's module is imported from the checkout, and Python would
        # run a committed __pycache__/<module>.cpython-*.pyc in place of the reviewed <module>.py. With a prefix,
        # it reads and writes bytecode only there: a fresh folder of this run.
        environment |= {"PYTHONPYCACHEPREFIX": str(self.pycache)} if self.pycache else {}
        environment |= {"GATE_WORKER_VERBOSE": "1"} if self.verbose else QUIET_ENVIRONMENT
        process = subprocess.Popen(
            [sys.executable, "-m", "gate.scheduling.worker", str(control_read), str(events_write)],
            pass_fds=(control_read, events_write),
            stdin=subprocess.DEVNULL,
            env=environment,
            start_new_session=True,  # its own process group: a stop or kill reaches anything it started
        )
        os.close(control_read)
        os.close(events_write)
        return _Worker(process, control_write, events_read, dedicated)

    def _poll(self) -> None:
        ready, _, _ = select.select([w.events for w in self._busy], [], [], POLL_SECONDS)
        for worker in [w for w in self._busy if w.events in ready]:
            chunk = os.read(worker.events, 65536)
            if not chunk:
                self._died(worker)
                continue
            worker.pending += chunk
            *lines, worker.pending = worker.pending.split(b"\n")
            for line in lines:
                try:
                    self._handle(worker, json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:  # InvalidResult and JSON errors are ValueErrors
                    # A worker that runs allowed custom code could write anything: its model's failure, no one else's.
                    self._unreadable(worker, f"{type(exc).__name__}: {str(exc)[:200]}")
                    break
                if worker not in self._busy:
                    break
        now = time.monotonic()
        for worker in list(self._busy):
            self._enforce_limits(worker, now)

    def _handle(self, worker: _Worker, message: dict) -> None:
        label = self.labels[worker.index]
        if "stage" in message:
            worker.stage = str(message["stage"])
            if float(message["seconds"]) >= 0:
                self.progress(f"{label}: {message['stage']} {message['seconds']:.1f} s")
        elif "note" in message:
            self.progress(f"{label}: {message['note']}")
        elif "bug" in message:
            if self.debug:  # line by line: each is escaped for the terminal, and the traceback keeps its shape
                self.progress(f"{label}: internal error in gate, in its worker:")
                for line in str(message["bug"]).rstrip().splitlines():
                    self.progress(line)
        elif "candidate" in message:
            if message["candidate"] not in METHODS:
                raise ValueError(f"no method {str(message['candidate'])[:80]!r}")
            worker.candidate, worker.candidate_started = message["candidate"], worker.elapsed(time.monotonic())
        elif "candidate_done" in message:
            candidate = load_result(Candidate, message["candidate_done"])
            if candidate.method not in METHODS:
                raise ValueError(f"no method {candidate.method[:80]!r}")
            if candidate.method not in {c.method for c in worker.done}:
                worker.done.append(candidate)
                self.progress(f"{label}: {_candidate_line(candidate)}")
            worker.candidate, worker.search_seconds = "", float(message["search_seconds"])
        elif "exclusive" in message:
            self._waiting.append(worker)
            worker.paused_since = worker.paused_since or time.monotonic()  # waiting is not the model's time
            if self._holder is None:
                self._grant()
        elif "released" in message:
            self._release()
        elif "result" in message:
            assert worker.job is not None  # a worker reports results of the job it was given
            self._done(worker, _worker_result(worker.job), time.monotonic())

    def _unreadable(self, worker: _Worker, problem: str) -> None:
        job = worker.job
        assert job is not None
        self._done(worker, error_result(job.name, f"{job.folder}: the gate's worker sent a message gate cannot "
                                        f"read ({problem}){self._log_hint(job)}", task=job.task),
                   time.monotonic(), ended=True)  # fmt: skip

    def _grant(self) -> None:
        worker = self._waiting.popleft()
        now = time.monotonic()
        for other in self._busy:
            if other is not worker and not other.stopped:
                other.signal_group(signal.SIGSTOP)
                other.stopped = True
                other.paused_since = other.paused_since or now
        if worker.stopped:  # its request was already in the pipe when it was stopped for another
            worker.signal_group(signal.SIGCONT)
            worker.stopped = False
        worker.paused_seconds += now - (worker.paused_since or now)
        worker.paused_since = None
        self._holder = worker
        worker.send({"go": True})

    def _release(self) -> None:
        now = time.monotonic()
        self._holder = None
        for other in self._busy:
            if other.stopped:
                other.signal_group(signal.SIGCONT)
                other.stopped = False
            if other.paused_since is not None and other not in self._waiting:
                other.paused_seconds += now - other.paused_since
                other.paused_since = None
        if self._waiting:
            self._grant()

    def _enforce_limits(self, worker: _Worker, now: float) -> None:
        assert worker.job is not None
        if worker.paused_since is not None:
            return
        settings = Settings.of(worker.job.policy)
        timeout_s, memory_mb, candidate_timeout_s = settings.timeout_s, settings.memory_mb, settings.candidate_timeout_s
        if worker.candidate and worker.elapsed(now) - worker.candidate_started > candidate_timeout_s:
            worker.signal_group(signal.SIGKILL)
            worker.process.wait()
            limit = f"took longer than its {candidate_timeout_s:g} s limit (search.candidate_timeout_s) and was stopped"
            self._log(worker.job, f"candidate {worker.candidate} {limit}; the search goes on in a fresh worker")
            self._resume(worker, f"it {limit}")
            return
        if worker.elapsed(now) > timeout_s:
            limit = f"took longer than its {timeout_s:g} s wall-time limit (limits.timeout_s)"
        elif (rss_mb := _resident_mb(worker.process.pid)) > memory_mb:  # the worker's group: QAT's process too
            limit = f"used {rss_mb:,} MiB of memory, over its {memory_mb:,} MiB limit (limits.memory_mb)"
        else:
            return
        worker.signal_group(signal.SIGKILL)
        worker.process.wait()
        job = worker.job
        self._log(job, f"gating was stopped {self._where(worker)}: the model {limit}")
        self._done(worker, error_result(
            job.name, f"{job.folder}: gating was stopped {self._where(worker)}: the model {limit}; raise the limit "
            f"in the policy or gate.toml overrides, or shrink the model{self._log_hint(job)}", task=job.task,
        ), now, ended=True)  # fmt: skip

    def _died(self, worker: _Worker) -> None:
        """The worker's end of the pipe closed: it exited or crashed while gating its model."""
        worker.process.wait()
        job = worker.job
        assert job is not None
        code = worker.process.returncode
        death = f"died with {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        # What the worker's own output in the log cannot say: that it died, of what, and on what.
        on = f" while building or measuring candidate {worker.candidate}" if worker.candidate else ""
        self._log(job, f"the worker {death} {self._where(worker)}{on}")
        if worker.candidate:  # the candidate's failure, not the model's: resume the search after it
            crash = " (a crash inside TensorFlow or LiteRT)" if code < 0 else ""
            self._resume(
                worker, f"the gate's worker {death} while building or measuring it{crash}{self._log_hint(job)}"
            )
            return
        if worker.stage == "diagnose" and not job.diagnosis_failure:  # the search is done: keep it, skip diagnosis
            resumed = dataclasses.replace(
                job,
                done=tuple(worker.done),
                search_seconds=worker.search_seconds,
                elapsed_seconds=worker.elapsed(time.monotonic()),
                diagnosis_failure=f"the gate's worker {death} while ranking the layers",
            )
            index = worker.index
            self._retire(worker)
            self._todo.appendleft((index, resumed))
            return
        cause = f"{death} {self._where(worker)}"
        crash = " (a crash inside TensorFlow or LiteRT on this model)" if code < 0 else " without a result"
        self._done(worker, error_result(
            job.name, f"{job.folder}: the gate's worker {cause}{crash}{self._log_hint(job)}", task=job.task
        ), time.monotonic(), ended=True)  # fmt: skip

    def _done(self, worker: _Worker, result: ModelResult, now: float, *, ended: bool = False) -> None:
        self.progress(f"{self.labels[worker.index]}: {result.status.value} in {worker.elapsed(now):.1f} s")
        if ended or worker.dedicated:
            self._retire(worker)
        else:
            self._busy.remove(worker)
            worker.job = None
            self._idle.append(worker)
        self._finished(worker.index, result)

    def _resume(self, worker: _Worker, reason: str) -> None:
        """Record the candidate the worker was on as failed, and gate the model on in a fresh worker."""
        job = worker.job
        assert job is not None
        elapsed = worker.elapsed(time.monotonic())
        failed = Candidate(worker.candidate, Status.ERROR, reason, None, None, None, None, None, None, (),
                           round(elapsed - worker.candidate_started, 3))  # fmt: skip
        self.progress(f"{self.labels[worker.index]}: {_candidate_line(failed)}")
        # The crashed candidate's time counts against search.max_seconds, and the model's against limits.timeout_s.
        resumed = dataclasses.replace(job, done=(*worker.done, failed), elapsed_seconds=elapsed,
                                      search_seconds=worker.search_seconds + failed.seconds)  # fmt: skip
        index = worker.index
        self._retire(worker)
        self._todo.appendleft((index, resumed))

    def _retire(self, worker: _Worker) -> None:
        """Take a worker that has ended (or must) out of the schedule."""
        self._busy.remove(worker)
        if worker in self._waiting:
            self._waiting.remove(worker)
        if self._holder is worker:
            self._release()
        worker.signal_group(signal.SIGKILL)
        worker.process.wait()
        os.close(worker.control)
        os.close(worker.events)

    @staticmethod
    def _where(worker: _Worker) -> str:
        return f"during stage '{worker.stage}'" if worker.stage != "start" else "before its first stage"

    def _log_hint(self, job: Job) -> str:
        return "" if self.verbose else f"; see {log_path(job.name)} in the output folder"

    def _log(self, job: Job, line: str) -> None:
        """Append gate's own line to the model's log, after what the worker wrote there (with --verbose, none)."""
        if not self.verbose:
            with open(job.log_path, "a", encoding="utf-8") as log:
                log.write(f"gate: {job.name}: {line}\n")


def _worker_result(job: Job) -> ModelResult:
    """The result the worker wrote where its job said (never a path from the worker's message), checked."""
    try:
        result = load_result(ModelResult, read_json(Path(job.result_path).parent, Path(job.result_path).name))
        check_result(result)
        if result.name != job.name:
            raise ValueError(f"it is the result of {result.name[:80]!r}")
    except (Refused, ValueError, InvalidResult) as exc:
        return error_result(job.name, f"internal error in gate (unreadable worker result: {exc})", task=job.task)
    return result


def _candidate_line(candidate: Candidate) -> str:
    """One progress line per candidate: `int8: FAIL accuracy.max_drop: accuracy dropped 3.10 pts … (4.2 s)`."""
    reason = f" {candidate.reason.splitlines()[0]}" if candidate.reason else ""
    return f"candidate {candidate.method}: {candidate.status.value}{reason} ({candidate.seconds:.1f} s)"


def _resident_mb(group: int) -> int:
    """Resident memory of every process in a process group, in MiB (0 once they have gone).

    A worker's group holds what it started too: the QAT process (`python -m gate.quantization.qat.train`), which imports
    TensorFlow again and trains, and pytest-benchmark's `python -m cpuinfo`. Pages two processes share
    (the libraries both map) count once per process, so the sum errs on the side of stopping a model.
    One getpgid() per process, five times a second: 0.26 ms for 88 processes here, where reading each
    /proc/N/stat for its group took 3.3 ms.
    """
    total_kb = 0
    for name in os.listdir("/proc"):
        try:
            if not name.isdigit() or os.getpgid(int(name)) != group:
                continue
            with open(f"/proc/{name}/status", encoding="ascii", errors="replace") as status:
                total_kb += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
        except (OSError, ValueError):  # it ended meanwhile
            continue
    return total_kb // 1024
