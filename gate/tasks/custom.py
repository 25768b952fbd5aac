"""A metric of the team's own (`task = "custom"`, `metric = "module:function"`): loaded, called and checked.

Two entries of TASKS, one per `direction` (`custom-higher`, `custom-lower`): every reader of a result (the
reports, the checks, the search) takes the direction from the task's name alone, as for the built-in tasks; the
metric's spec is in the result's provenance. The worker loads the function once per model and binds it
(`bound`) while it gates that model: the tasks' `score` calls it. The contract, as docs/tasks.md states it:

    def my_metric(outputs: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        '''outputs: the model's outputs, dequantized, one row per sample; labels: eval.npz's y.
        Returns the metric's value and each sample's score (one finite number per sample).'''

The module is a reviewed file of the repository, trusted exactly as an allowed custom object's package is
(gate.frontends.keras): imported by its file from the folder gate runs in (the repository root), which is never
put on sys.path (gate.discover.import_from_repository), and refused when the name resolves to an installed module
instead. Anything the function raises, and anything it returns that is not a finite value and one finite score per
sample, is one ModelError naming the function, its file and line where it raised, and the fix; never a traceback.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.discover import custom_object_sources, import_from_repository, unreviewable_custom_code
from gate.errors import ModelError
from gate.tasks.base import Metric, Task, percent_change

if TYPE_CHECKING:
    import numpy as np

    from gate.results import Evaluation

RETURNS = "return (value, per_sample_scores): a finite number, and one finite number per sample"
DIRECTIONS = ("higher", "lower")
MAX_SPEC = 100


def is_mean_of_scores(evaluation: Evaluation) -> bool:
    """The metric's value is the mean of its per-sample scores (relative 1e-9): resampling the scores is exact.

    Plain Python: the report asks it too, and the comment job that renders the report has no NumPy."""
    scores = evaluation.per_sample
    if not scores:
        return False
    mean = math.fsum(scores) / len(scores)
    return abs(evaluation.value - mean) <= 1e-9 * abs(mean)


@dataclass(frozen=True)
class CustomMetric:
    """A loaded metric: its spec as gate.toml wrote it, the function, and the file it is defined in."""

    spec: str  # "module:function"
    function: Callable[..., Any]
    source: str  # the module's file, relative to the repository root: what the messages and the report name
    root: Path  # the repository root it was imported from (messages name paths relative to it)


def spec_problem(spec: str) -> str:
    """What is wrong with a `metric` value ("" when it is "module:function" in Python names); imports nothing."""
    module, colon, function = spec.partition(":")
    if len(spec) > MAX_SPEC:  # it is shown in every report, and a PR writes it
        return f'{spec[:MAX_SPEC]!r}... is longer than {MAX_SPEC} characters; name a shorter "module:function"'
    if not colon or not module or not function:
        return f'expected "module:function" (e.g. "my_metrics:f1"), got {spec!r}'
    if not all(part.isidentifier() for part in module.split(".")) or not function.isidentifier():
        return f'{spec!r} is not "module:function" in Python names (a dotted module, then a function)'
    return ""


def metric_sources(spec: str) -> tuple[str, ...]:
    """The repository paths the metric's import may run: its top package's module file or folder (as for an allowed
    custom object's package)."""
    return custom_object_sources(spec.partition(":")[0])


def load_metric(spec: str, *, root: Path, where: Path) -> CustomMetric:
    """Import the metric's module from the repository root `root` and return its function; ModelError if not."""
    if problem := spec_problem(spec):
        raise ModelError(f"{where}: metric: {problem}")
    module_name, _, function_name = spec.partition(":")
    if problem := source_problem(spec, root):  # no file, a link, compiled code: refused before anything runs
        raise ModelError(f"{where}: metric {problem}")
    top = module_name.split(".")[0]
    # A name an installed module (or the standard library) has: imported from the repository, the repository's
    # module would stay in sys.modules and be what gate itself imports by that name later (ai_edge_litert, msgspec).
    imported = sys.modules.get(top)
    if imported is not None:  # imported before: from this repository (a model gated before in this process), or not
        installed = not Path(getattr(imported, "__file__", None) or "/").resolve().is_relative_to(root.resolve())
    else:
        installed = top in sys.builtin_module_names or importlib.util.find_spec(top) is not None
    if installed:
        raise ModelError(
            f"{where}: metric {spec!r}: {top!r} is also the name of an installed module, which the repository's "
            "would hide; rename the repository's module"
        )
    try:
        module = import_from_repository(module_name, root)
    except ImportError as exc:  # "No module named 'x'", or "cannot import name ... (/home/runner/...)": no disk paths
        reason = str(exc).replace(f"{root}{os.sep}", "")
        raise ModelError(
            f"{where}: metric {spec!r}: module {module_name!r} cannot be imported from the repository root "
            f"({reason}); run gate from the repository root that holds it"
        ) from None
    except BaseException as exc:  # noqa: BLE001 - the module's own code ran and failed (KeyboardInterrupt too)
        raise ModelError(f"{where}: metric {spec!r}: importing {module_name!r} raised {_raised(exc, root)}") from None
    source = Path(getattr(module, "__file__", None) or "/").resolve()
    if not source.is_relative_to(root.resolve()):  # a name Python had imported already: numpy, json, ...
        raise ModelError(
            f"{where}: metric {spec!r}: {module_name!r} is the installed module of that name, not the repository's; "
            "rename the repository's module"
        )
    function = getattr(module, function_name, None)
    if not callable(function):
        what = "is not callable" if function is not None else "does not exist"
        raise ModelError(
            f"{where}: metric {spec!r}: {function_name} {what} in {source.relative_to(root.resolve()).as_posix()}; "
            "name a function (outputs, labels) -> (value, per-sample scores) of that module"
        )
    return CustomMetric(spec, function, source.relative_to(root.resolve()).as_posix(), root)


def source_problem(spec: str, root: Path) -> str:
    """Why the metric's module is not a reviewed file at the repository root ("" if it is); imports nothing.

    `gate validate` and the plan of `gate check` refuse what the worker's import would refuse, and what the cache
    key could not see (a link, compiled code), as for allow_custom_objects' packages.
    """
    if problem := spec_problem(spec):
        return problem
    file, folder = metric_sources(spec)
    if not any((root / path).exists() or (root / path).is_symlink() for path in (file, folder)):
        return (
            f"{spec!r}: the repository has no {file} or {folder} at its root; a custom metric is a reviewed file of "
            "the repository (run gate from the repository root)"
        )
    return unreviewable_custom_code(spec.partition(":")[0], root)


def call_metric(
    metric: CustomMetric, outputs: np.ndarray, labels: np.ndarray, *, root: Path, resample: bool = False
) -> tuple[float, Any]:
    """The function's value and per-sample scores (float64, one per sample), checked; ModelError naming it if not.

    It is given read-only views: gate's own outputs and labels, which a metric that edited them in place would
    change for every later figure. On a `resample` of the eval set (the exact bootstrap) a value that is no finite
    number is NaN, a resample that gives no number (an F1 of a resample without positives is 0/0); on the eval set
    itself it is the model's ERROR.
    """
    named = f"metric {metric.spec!r} ({metric.source})"
    # The repository's code: whatever it raises (KeyboardInterrupt, GeneratorExit too) is its failure, and so is
    # what the value it returned raises when read (its own __float__ or __array__, an int no float holds). A worker
    # is stopped by SIGKILL, never by an exception, so nothing of gate's own is caught here.
    try:
        returned = metric.function(_read_only(outputs), _read_only(labels))
    except BaseException as exc:  # noqa: BLE001
        raise ModelError(f"{named} raised {_raised(exc, root)}") from None
    try:
        return _checked(returned, len(outputs), named, resample=resample)
    except ModelError:
        raise
    except BaseException as exc:  # noqa: BLE001
        raise ModelError(
            f"{named} returned what gate cannot read as numbers: {_raised(exc, root)}; {RETURNS}"
        ) from None


def _checked(returned: object, samples: int, named: str, *, resample: bool) -> tuple[float, Any]:
    import numpy as np

    if not isinstance(returned, tuple | list) or len(returned) != 2:
        raise ModelError(f"{named} returned {_kind(returned)}; {RETURNS}")
    value, per_sample = returned
    number = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)
    if not number and not (isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "iuf"):
        raise ModelError(f"{named} returned a value of type {_kind(value)}; {RETURNS}")
    value = float(value)
    if not math.isfinite(value) and not resample:
        raise ModelError(f"{named} returned the value {value} on the eval set's {samples} samples; {RETURNS}")
    try:
        scores = np.asarray(per_sample, dtype=np.float64)
    except (TypeError, ValueError):
        raise ModelError(f"{named} returned per-sample scores of type {_kind(per_sample)}; {RETURNS}") from None
    if scores.shape not in ((samples,), (samples, 1)):
        raise ModelError(
            f"{named} returned per-sample scores of shape {scores.shape} for {samples} samples; expected ({samples},): "
            f"{RETURNS}"
        )
    if not np.isfinite(scores).all():
        first = int(np.argmax(~np.isfinite(scores.reshape(-1))))
        raise ModelError(f"{named} returned a per-sample score that is not finite (sample {first}); {RETURNS}")
    return value if math.isfinite(value) else math.nan, scores.reshape(samples)


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


_bound: CustomMetric | None = None  # the metric of the model this worker is gating (`bound`)


@contextmanager
def bound(spec: str, *, root: Path, where: Path) -> Iterator[CustomMetric | None]:
    """Load `spec`'s function and let the custom tasks score with it while one model is gated ("": no metric).

    A worker gates one model at a time, and one whose manifest names a metric runs in a worker of its own (custom
    code: gate.scheduling.scheduler), so the binding never outlives its model; nor do its modules, which are
    forgotten with it (another repository's module of that name is another module).
    """
    global _bound
    if not spec:
        yield None
        return
    _bound = load_metric(spec, root=root, where=where)
    try:
        yield _bound
    finally:
        _bound = None
        top = spec.partition(":")[0].split(".")[0]
        for name in [name for name in sys.modules if name.split(".")[0] == top]:
            del sys.modules[name]


def bound_metric() -> CustomMetric:
    assert _bound is not None, "a custom task scores only while its metric is bound (custom.bound)"
    return _bound


@dataclass(frozen=True)
class CustomTask(Task):
    @property
    def untrainable(self) -> str:
        return (
            "it trains the model to minimise cross-entropy or MAE on its labels, and a custom metric is neither: "
            "gate cannot tell which loss would serve it"
        )

    def score(
        self, outputs: np.ndarray, labels: np.ndarray, inputs: Mapping[str, np.ndarray] | None = None
    ) -> tuple[float, tuple[float, ...]]:
        metric = bound_metric()
        value, per_sample = call_metric(metric, outputs, labels, root=metric.root)
        return value, tuple(per_sample.tolist())

    def value(self, per_sample: np.ndarray, labels: np.ndarray | None = None, axis: int = -1) -> Any:
        """The mean of the per-sample scores: the metric only when it is their mean (the bootstrap checks that)."""
        return per_sample.mean(axis=axis)

    def change(self, float_value: Any, quantized_value: Any) -> Any:
        """Higher is better: points of the metric gained (negative = lost). Lower is better: percent of the float
        model's value (its magnitude) added, as regression's MAE; positive = worse."""
        if self.metric.higher_is_better:
            return quantized_value - float_value
        return percent_change(float_value, quantized_value)

    def check_labels(
        self, y: np.ndarray, *, where: Path, output_width: int | None, output_activation: str | None
    ) -> tuple[np.ndarray, str | None]:
        return y, None  # the metric reads them as they are stored: what it accepts is its own contract


def custom_task(direction: str) -> str:
    """The TASKS entry of `task = "custom"` with this `direction`."""
    return f"custom-{direction}"


_LABELS = "whatever the metric reads, one entry per sample (passed to it as stored)"
_DESCRIPTION = (
    'Your own metric: `metric = "module:function"` names a function of a reviewed module at the repository root, '
    "called with the outputs and `y`; `direction` says which way is better. "
)
CUSTOM_HIGHER = CustomTask(
    custom_task("higher"),
    _DESCRIPTION + "Higher is better: the drop is in points of the metric.",
    Metric("custom-higher", higher_is_better=True, change_unit="pts", in_percent=False, lowest=-math.inf,
           label="custom metric"),
    labels=_LABELS,
    policy_key="custom.max_drop",
    qat_loss="",
)  # fmt: skip
CUSTOM_LOWER = CustomTask(
    custom_task("lower"),
    _DESCRIPTION + "Lower is better: the rise is in percent of the float model's value, as regression's MAE.",
    Metric("custom-lower", higher_is_better=False, change_unit="%", lowest=-math.inf, label="custom metric"),
    labels=_LABELS,
    policy_key="custom.max_increase",
    qat_loss="",
)


def recorded_problem(task: str, spec: str, source: str) -> str:
    """What is wrong with the metric a result read back records ("" when gate could have written it)."""
    if task.startswith("custom-") != bool(spec):
        return f"custom_metric: {spec[:50]!r} goes with a custom task, and a custom task ({task!r}) with one"
    if spec and (spec_problem(spec) or source not in [f"{path}.py" for path in _module_paths(spec)]):
        return f'custom_metric: {spec[:50]!r} in {source[:50]!r} is no "module:function" and its module\'s file'
    return ""


def _module_paths(spec: str) -> tuple[str, ...]:
    """The files a dotted module may be: my_metrics.py, or pkg/mod.py and pkg/mod/__init__.py."""
    path = spec.partition(":")[0].replace(".", "/")
    return path, f"{path}/__init__"


def _kind(value: object) -> str:
    shape = getattr(value, "shape", None)
    return f"an array of shape {shape}" if shape is not None else type(value).__name__


def _raised(exc: BaseException, root: Path) -> str:
    """'TypeError: message (my_metrics.py, line 12)': the innermost frame in the repository, without disk paths."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300].replace(f"{root}{os.sep}", "")
    inside = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).is_relative_to(root)]
    if inside:
        text += f" ({Path(inside[-1].filename).relative_to(root).as_posix()}, line {inside[-1].lineno})"
    return text
