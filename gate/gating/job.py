"""What gating one model is given (Job) and whom it tells how it goes (Reporter)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from gate.keys import Value
from gate.results import Candidate


@dataclass(frozen=True)
class Job:
    """Everything that determines one model's result."""

    name: str
    folder: str
    task: str  # a name of gate.tasks' TASKS
    method: str
    calibration_samples: int
    calibrate_on_eval: bool
    allow_custom_objects: tuple[str, ...]
    policy_file: str
    policy: dict[str, Value]  # the effective policy: defaults, policy file, overrides
    overrides: dict[str, Value]
    override_reason: str
    out_dir: str
    log_path: str  # where the worker sends TensorFlow's and the converter's output
    result_path: str  # where the worker writes the result
    metric: str = ""  # a custom task's "module:function" ("" for the others)
    # Candidates a worker finished (or crashed on) before it died, the search time they took, and the model's
    # wall time so far: a fresh worker resumes the search after them, within what is left of both limits
    # (gate.scheduling.scheduler).
    done: tuple[Candidate, ...] = ()
    search_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    diagnosis_failure: str = ""  # why an earlier worker died while diagnosing: this one skips the diagnosis
    outputs: dict[str, str] = field(default_factory=dict)  # gate.toml's [outputs.<Keras output name>] task = "..."


class Reporter:
    """What gating a model tells the process that runs it; this base tells nobody (one process, no neighbours)."""

    def stage(self, name: str, seconds: float) -> None:
        """A stage started (seconds < 0) or ended after `seconds`."""

    def candidate(self, method: str) -> None:
        """The search starts building this candidate (a crash from now on is this candidate's)."""

    def candidate_done(self, candidate: Candidate, search_seconds: float) -> None:
        """A candidate is finished: tried, skipped or failed."""

    def note(self, line: str) -> None:
        """A progress line from inside a candidate (e.g. one per QAT epoch)."""

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the machine alone: no other gate worker runs inside this block."""
        yield
