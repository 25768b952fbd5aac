"""The worker process: gates the models the parent (gate.scheduling.scheduler) sends it, one at a time.

`python -m gate.scheduling.worker CONTROL_FD EVENTS_FD` imports TensorFlow once, on its
first model, and then gates model after model: what each model pays for the
import falls from seconds to nothing. Crash isolation is kept by the parent:
a crash ends this process, the parent turns it into that model's ERROR row and
gates the remaining models in a fresh worker. Models that run code of the
repository (allowed custom objects) get a worker of their own.

The protocol is JSON lines. Parent to worker: {"job": {...}} to gate a model,
{"go": true} to answer a request for exclusive use of the machine. Worker to
parent: {"stage": NAME, "seconds": S} (S < 0 when the stage starts),
{"exclusive": true} before measuring latency, {"released": true} after,
{"bug": TRACEBACK} when gate itself failed (the parent shows it with --debug),
{"result": PATH} when a model is done.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from gate.encoding import load_result, to_jsonable
from gate.files import write_atomic
from gate.gating.pipeline import Job, Reporter, encode_result, gate_model
from gate.layout import log_path
from gate.results import Candidate, error_result


class _Channel(Reporter):
    """The worker's side of the pipes: stage events, and exclusive use of the CPU for latency."""

    def __init__(self, control: IO[str], events: int) -> None:
        self._control = control
        self._events = events

    def send(self, message: dict) -> None:
        os.write(self._events, (json.dumps(message) + "\n").encode())

    def receive(self) -> dict | None:
        line = self._control.readline()
        return json.loads(line) if line else None

    def stage(self, name: str, seconds: float) -> None:
        self.send({"stage": name, "seconds": seconds})

    def candidate(self, method: str) -> None:
        self.send({"candidate": method})

    def note(self, line: str) -> None:
        self.send({"note": line})

    def candidate_done(self, candidate: Candidate, search_seconds: float) -> None:
        self.send({"candidate_done": to_jsonable(candidate), "search_seconds": round(search_seconds, 3)})

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Wait until the parent has paused every other worker; a benchmark sharing the CPU measures the neighbour."""
        self.send({"exclusive": True})
        if self.receive() != {"go": True}:
            raise SystemExit(0)  # the parent has gone
        try:
            yield
        finally:
            self.send({"released": True})


def _redirect_output(log: Path, *, append: bool) -> None:
    """Send fd 1 and 2 (TensorFlow's C++ logging writes to fd 2 directly) to this model's log.

    A resumed search appends: the log then still shows what the crashed worker printed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC), 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def main(argv: list[str]) -> int:
    control_fd, events_fd = int(argv[0]), int(argv[1])
    verbose = os.environ.get("GATE_WORKER_VERBOSE") == "1"
    channel = _Channel(os.fdopen(control_fd, "r", encoding="utf-8"), events_fd)
    while (message := channel.receive()) is not None:
        job = load_result(Job, message["job"])
        if not verbose:
            _redirect_output(Path(job.log_path), append=bool(job.done))
        try:
            result = gate_model(job, channel)
        except Exception as exc:  # a bug in gate: still one row, the traceback in the log
            bug = traceback.format_exc()
            print(bug, file=sys.stderr, flush=True)  # into the model's log; on the terminal with --verbose
            if not verbose:
                channel.send({"bug": bug})
            where = "shown above" if verbose else f"in {log_path(job.name)} in the output folder; --debug shows it too"
            result = error_result(
                job.name,
                f"internal error in gate ({type(exc).__name__}: {exc}); this is a bug in gate: please report it with "
                f"its traceback ({where})",
            )
        result_path = Path(job.result_path)
        write_atomic(result_path, encode_result(job, result))
        channel.send({"result": str(result_path)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
