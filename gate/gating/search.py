"""The candidate search: build, measure and judge candidates until one passes the policy.

`method = "auto"` tries every method of gate.quantization.methods in the registry's order,
from the most to the least deployable, and keeps the first candidate that
passes every check. A candidate that cannot meet a hard requirement of the
policy (its I/O dtype, float ops under `ops.integer_only`) is skipped with that
reason, untried; so is one that can do no better than an earlier candidate on
a check that one failed (each method's `no_better_than`: nothing after int8 is
smaller than int8), and when that holds of every candidate left the search
stops, saying why. A candidate that fails to build is that candidate's failure:
a converter error is recorded as its ERROR and the search goes on; a crash or
hang of the worker process is turned into the same by gate.scheduling.scheduler, which resumes
the search in a fresh worker with the candidates already done. When nothing
passes, the closest candidate (fewest failed checks, then the smallest metric
loss) is kept and published as the model's FAIL, so the user sees how far off it is.

Runs inside the worker, where TensorFlow is imported.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gate.errors import ModelError, log_cause
from gate.keys import Value
from gate.policy.checks import Context
from gate.policy.config import Settings
from gate.policy.judge import CHECKS, LATENCY_CHECKS, hard_requirement_problem, judge, worst_output
from gate.quantization.base import AUTO, Built, NotApplicable, Setup
from gate.quantization.methods import METHODS, search_order
from gate.results import Candidate, CheckResult, Conversion, Evaluation, Latency, OutputChange, Status
from gate.tasks import METRICS, TASKS

# Per method, the checks on which it never does better than an earlier method (gate.quantization.methods). A
# target that rules out more (an integer-only MCU runs no float fallback) passes its own, merged into these, to
# `search`.
NO_BETTER_THAN: Mapping[str, Mapping[str, str]] = {name: method.no_better_than for name, method in METHODS.items()}


@dataclass(frozen=True)
class Workbench:
    """What every candidate is built from and measured against, for one model (set up by gate.gating.pipeline)."""

    policy: Mapping[str, Value]
    task: str
    source_bytes: int
    float_evaluation: Evaluation
    reference: Conversion  # the float32 .tflite, measured (latency of its first pairing, if any)
    integer_inputs: bool  # every input of the float model is integer (token ids): no candidate quantizes it
    setup: Setup
    build: Callable[[str, Setup], Built]  # method name, setup -> the candidate's .tflite
    save: Callable[[str, bytes], Path]  # method name, .tflite bytes -> where it is staged
    describe: Callable[[str, Path], Conversion]  # I/O, ops, state and the metric on the eval set; no latency
    # The candidate's and the float32 reference's latency, timed in one run; None when the policy judges none.
    time_latency: Callable[[str, Path], tuple[Latency, Latency] | None]
    interval: Callable[[str, Evaluation], object]  # a method's metric change's confidence interval against the float
    cannot_run: Callable[[str], str] = lambda method: ""  # why the target cannot run a method's candidates ("")
    # A model with several outputs: each output's change on a conversion (gate.gating.several); None for one output.
    output_changes: Callable[[Conversion], tuple[OutputChange, ...]] | None = None


def allowed_change(policy: Mapping[str, Value], task: str) -> float | None:
    """The metric change the task's check in the policy allows, as a bound on the task's `change`."""
    judged_by = TASKS[task].policy_key
    limit = policy.get(judged_by)
    return TASKS[task].allowed_change(float(limit)) if isinstance(limit, int | float) else None


def skipped(method: str, reason: str) -> Candidate:
    return Candidate(method, Status.SKIP, reason, None, None, None, None, None, None, (), 0.0)


def failed(
    method: str, reason: str, seconds: float = 0.0, step_seconds: Mapping[str, float] | None = None
) -> Candidate:
    return Candidate(
        method,
        Status.ERROR,
        reason,
        None,
        None,
        None,
        None,
        None,
        None,
        (),
        round(seconds, 3),
        step_seconds=dict(step_seconds or {}),
    )


@contextmanager
def _step(steps: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        steps[name] = round(time.perf_counter() - start, 3)


def skip_reason(method: str, bench: Workbench, *, has_calibration: bool, has_training: bool) -> str:
    """Why `method` cannot pass this policy or cannot run on this model, or "" when it should be tried."""
    definition = METHODS[method]
    if definition.needs_calibration and not has_calibration:
        return (
            "it needs calibration data: add calib.npz (x) or train.npz (x, y), or set calibrate_on_eval = true in "
            "gate.toml to calibrate on the eval set (the report will say so)"
        )
    if definition.needs_training_data and (untrainable := TASKS[bench.task].untrainable):
        return untrainable
    if definition.needs_training_data and not has_training:
        return "it trains on train.npz with labels, and the model folder has none"
    if reason := bench.cannot_run(method):
        return reason
    return hard_requirement_problem(
        bench.policy,
        float_io=definition.io == "float32",
        float_ops=definition.float_ops,
        integer_inputs=bench.integer_inputs,
    )


@dataclass(frozen=True)
class Hopeless:
    """Why a method cannot pass: `earlier` failed `failure`'s check, and the method never does better on it."""

    failure: CheckResult
    earlier: str


def cannot_pass(
    method: str, tried: Sequence[Candidate], no_better_than: Mapping[str, Mapping[str, str]] = NO_BETTER_THAN
) -> Hopeless | None:
    """Whether a check an earlier candidate failed is one `method` never does better on, and which."""
    for check, earlier in no_better_than.get(method, {}).items():
        for candidate in tried:
            failure = next((r for r in candidate.checks if r.name == check and r.status is Status.FAIL), None)
            if candidate.method == earlier and failure:
                return Hopeless(failure, earlier)
    return None


def _figure(result: CheckResult) -> str:
    """'3.94×', '3.10 pts': a check's measured figure as a person says it."""
    measured = f"{result.measured:.2f}" if isinstance(result.measured, float) else str(result.measured)
    return measured + (f" {result.unit}" if result.unit.isalpha() else result.unit)


def _hopeless_text(reasons: Sequence[Hopeless], subject: str) -> str:
    """'size.min_reduction failed at 3.94×; {subject} smaller than int8', subject 'no later candidate is'."""
    failed = dict.fromkeys(f"{r.failure.name} failed at {_figure(r.failure)}" for r in reasons)
    better = dict.fromkeys(
        f"{CHECKS[r.failure.name].better or 'better on ' + r.failure.name} than {r.earlier}" for r in reasons
    )
    return f"{' and '.join(failed)}; {subject} {' or '.join(better)}"


def build_candidate(method: str, bench: Workbench) -> Candidate:
    """Build, measure and judge one candidate; one that fails to build, load, prepare or run is that candidate's ERROR.

    Its `step_seconds` say what the time went to: the method's own steps (ranking, QAT training), the
    conversion, the evaluation on the eval set and the latency run.
    """
    start = time.perf_counter()
    steps: dict[str, float] = {}
    try:
        with _step(steps, "conversion"):
            built = bench.build(method, bench.setup)
        # The method's own steps came first; what remains of the build is the conversion.
        steps = {**built.seconds, "conversion": round(max(0.0, steps["conversion"] - sum(built.seconds.values())), 3)}
        path = bench.save(method, built.tflite)
        with _step(steps, "evaluation"):
            conversion = bench.describe(method, path)
        with _step(steps, "latency"):
            latencies = bench.time_latency(method, path)
    except NotApplicable as reason:
        return skipped(method, str(reason))
    except ModelError as exc:
        log_cause(exc)
        return failed(method, str(exc), time.perf_counter() - start, steps)
    reference = bench.reference
    speedup = None
    if latencies:
        latency, reference_latency = latencies
        conversion = dataclasses.replace(conversion, latency=latency)
        speedup = reference_latency.p50_ms / latency.p50_ms
    else:
        del steps["latency"]
    task, changes = bench.task, bench.output_changes(conversion) if bench.output_changes else ()
    if changes:  # several outputs: the candidate's change, interval and evaluation are its worst output's
        at = worst_output(changes, bench.policy)
        task, metric_change, interval = changes[at].task, changes[at].metric_change, changes[at].metric_change_interval
        conversion = dataclasses.replace(conversion, evaluation=conversion.per_output[at].evaluation)
    else:
        metric_change = TASKS[task].change(bench.float_evaluation.value, conversion.evaluation.value)
        interval = bench.interval(method, conversion.evaluation)  # type: ignore[assignment]
    candidate = Candidate(
        method=method,
        status=Status.PASS,
        reason="",
        conversion=conversion,
        size_reduction_vs_source=bench.source_bytes / conversion.artifact.size_bytes,
        size_reduction_vs_float32=reference.artifact.size_bytes / conversion.artifact.size_bytes,
        metric_change=metric_change,
        metric_change_interval=interval,
        speedup=speedup,
        checks=(),
        seconds=0.0,
        notes=built.notes,
        step_seconds=steps,
        per_output=changes,
    )
    context = Context(bench.policy, task, reference)
    judged = judge(candidate, context)
    return dataclasses.replace(judged, seconds=round(time.perf_counter() - start, 3))


def closest(candidates: Sequence[Candidate]) -> int:
    """The index of the candidate to publish: the first that passed, else the closest built one, else -1."""
    for index, candidate in enumerate(candidates):
        if candidate.status is Status.PASS:
            return index
    built = [(i, c) for i, c in enumerate(candidates) if c.conversion is not None]
    if not built:
        return -1

    def distance(item: tuple[int, Candidate]) -> tuple[int, float, int]:
        index, candidate = item
        failures = sum(check.status is Status.FAIL for check in candidate.checks)
        assert candidate.conversion is not None  # built
        loss = METRICS[candidate.conversion.evaluation.metric].loss(candidate.metric_change or 0.0)
        return failures, loss, index

    return min(built, key=distance)[0]


def choice_text(
    candidates: Sequence[Candidate],
    chosen: int,
    searched: bool,
    untried: Sequence[str] = (),
    hopeless: Sequence[Hopeless] = (),
) -> str:
    """Why the published candidate was chosen; `untried` are the methods after a passing one, never tried.

    `hopeless` are why the search stopped before the candidates left: none could pass.
    """
    if chosen < 0:
        return ""
    candidate = candidates[chosen]
    if candidate.status is Status.PASS:
        if not searched:
            return f"{candidate.method}, the method gate.toml names, passes every check"
        earlier = len([c for c in candidates[:chosen] if c.status is not Status.SKIP])
        notes = [f"{earlier} tried before it did not"] if earlier else []
        notes += _unsupported_notes(candidates[:chosen])
        if untried:
            names = ", ".join(untried[:-1]) + (" and " if len(untried) > 1 else "") + untried[-1]
            notes.append(
                f"the search stops at the first pass, so {names} {'were' if len(untried) > 1 else 'was'} not tried"
            )
        return f"{candidate.method}: the first candidate in the search order that passes every check" + (
            f" ({'; '.join(notes)})" if notes else ""
        )
    failures = sum(check.status is Status.FAIL for check in candidate.checks)
    stopped = f"; {_hopeless_text(hopeless, 'no later candidate is')}, so none was tried" if hopeless else ""
    unsupported = "".join(f"; {note}" for note in _unsupported_notes(candidates))
    return (
        f"no candidate passes; {candidate.method} is the closest (fewest failed checks, {failures}, then the "
        f"smallest metric loss) and is kept so you can see how far off it is{unsupported}{stopped}"
    )


def _unsupported_notes(candidates: Sequence[Candidate]) -> list[str]:
    """'int8 and int8-all-calibration failed ops.supported (tflm cannot run it: ...), so the search went on': a runtime
    that lacks an operator fails those candidates, not the model."""
    methods: dict[str, list[str]] = {}
    for candidate in candidates:
        for check in candidate.checks:
            if check.name == "ops.supported" and check.status is Status.FAIL:
                methods.setdefault(check.message, []).append(candidate.method)
    return [f"{' and '.join(names)} failed ops.supported ({message}), so the search went on"
            for message, names in methods.items()]  # fmt: skip


def search(
    method: str,
    bench: Workbench,
    *,
    has_calibration: bool,
    has_training: bool,
    done: Sequence[Candidate] = (),
    elapsed: float = 0.0,
    started: Callable[[str], None] = lambda method: None,
    finished: Callable[[Candidate], None] = lambda candidate: None,
    no_better_than: Mapping[str, Mapping[str, str]] = NO_BETTER_THAN,
) -> tuple[tuple[Candidate, ...], int, str]:
    """Try the candidates `method` asks for; return them all, the index of the one to publish, and why.

    `done` are candidates an earlier worker finished (or crashed on) before it died: they are
    reused as they are, not tried again. `elapsed` is the search time those took.
    """

    def should_try(name: str) -> bool:
        return not skip_reason(name, bench, has_calibration=has_calibration, has_training=has_training)

    settings = Settings.of(bench.policy)
    restrict = settings.candidates
    order = search_order(method, restrict)
    budget = settings.max_seconds
    earlier = {candidate.method: candidate for candidate in done}
    start = time.monotonic() - elapsed
    candidates: list[Candidate] = []
    stopped: list[Hopeless] = []  # why none of the candidates left could pass, when the search stopped for it
    for position, name in enumerate(order):
        left = [cannot_pass(n, candidates, no_better_than) for n in order[position:] if should_try(n)]
        if name not in earlier and left and all(left):
            stopped = left  # type: ignore[assignment]  # all() saw no None
            break
        if name in earlier:
            candidate = earlier[name]
        elif reason := skip_reason(name, bench, has_calibration=has_calibration, has_training=has_training):
            candidate = skipped(name, f"not tried: {reason}")
        elif hopeless := cannot_pass(name, candidates, no_better_than):
            candidate = skipped(name, f"not tried: {_hopeless_text([hopeless], f'{name} is never')}")
        elif candidates and time.monotonic() - start > budget:
            candidate = skipped(
                name, f"not tried: the search's time budget (search.max_seconds = {budget:g} s) was used up"
            )
        else:
            started(name)
            candidate = build_candidate(name, bench)
        candidates.append(candidate)
        finished(candidate)
        if candidate.status is Status.PASS:
            break
    chosen = closest(candidates)
    # Only those the search would have tried: a method the policy rules out was never a candidate.
    untried = [name for name in order[len(candidates) :] if should_try(name)]
    choice = choice_text(candidates, chosen, searched=method == AUTO, untried=untried, hopeless=stopped)
    return tuple(candidates), chosen, choice


def judges_latency(policy: Mapping[str, Value]) -> bool:
    return any(name in policy for name in LATENCY_CHECKS)
