"""A metric of the team's own (`task = "custom"`, `metric = "module:function"`): loaded, called and checked.

Not yet a task of TASKS (docs/tasks.md says what remains): this module is how the worker will load the function
and refuse what it returns. The contract, as docs/tasks.md states it to users:

    def my_metric(outputs: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        '''outputs: the model's outputs, dequantized, one row per sample; labels: eval.npz's y.
        Returns the metric's value and each sample's score (one finite number per sample).'''

The module is a reviewed file of the repository, trusted exactly as an allowed custom object's package is
(gate.frontends.keras): imported from the folder gate runs in (the repository root), which is on sys.path only
while it is imported, and refused when the name resolves to an installed module instead. Anything the function
raises, and anything it returns that is not a finite value and one finite score per sample, is one ModelError
naming the function, its file and line where it raised, and the fix; never a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.errors import ModelError

if TYPE_CHECKING:
    import numpy as np

RETURNS = "return (value, per_sample_scores): a finite number, and one finite number per sample"


@dataclass(frozen=True)
class CustomMetric:
    """A loaded metric: its spec as gate.toml wrote it, the function, and the file it is defined in."""

    spec: str  # "module:function"
    function: Callable[..., Any]
    source: str  # the module's file, relative to the repository root: what the messages and the report name


def spec_problem(spec: str) -> str:
    """What is wrong with a `metric` value ("" when it is "module:function" in Python names); imports nothing."""
    module, colon, function = spec.partition(":")
    if not colon or not module or not function:
        return f'expected "module:function" (e.g. "my_metrics:f1"), got {spec!r}'
    if not all(part.isidentifier() for part in module.split(".")) or not function.isidentifier():
        return f'{spec!r} is not "module:function" in Python names (a dotted module, then a function)'
    return ""


def metric_sources(spec: str) -> tuple[str, str]:
    """The repository paths the metric's import may run: its top package's module file or folder."""
    top = spec.partition(":")[0].split(".")[0]
    return f"{top}.py", top


def load_metric(spec: str, *, root: Path, where: Path) -> CustomMetric:
    """Import the metric's module from the repository root `root` and return its function; ModelError if not."""
    if problem := spec_problem(spec):
        raise ModelError(f"{where}: metric: {problem}")
    module_name, _, function_name = spec.partition(":")
    if not any((root / path).exists() and not (root / path).is_symlink() for path in metric_sources(spec)):
        file, folder = metric_sources(spec)
        raise ModelError(
            f"{where}: metric {spec!r}: the repository has no {file} or {folder}/ at its root; a custom metric is a "
            "reviewed file of the repository, not an installed module"
        )
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # "No module named 'x'", or "cannot import name ... (/home/runner/...)": no disk paths
        reason = str(exc).replace(f"{root}{os.sep}", "")
        raise ModelError(
            f"{where}: metric {spec!r}: module {module_name!r} cannot be imported from the repository root "
            f"({reason}); run gate from the repository root that holds it"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the module's own code ran and failed
        raise ModelError(f"{where}: metric {spec!r}: importing {module_name!r} raised {_raised(exc, root)}") from None
    finally:
        sys.path.remove(str(root))
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
    return CustomMetric(spec, function, source.relative_to(root.resolve()).as_posix())


def call_metric(metric: CustomMetric, outputs: np.ndarray, labels: np.ndarray, *, root: Path) -> tuple[float, Any]:
    """The function's value and per-sample scores (float64, one per sample), checked; ModelError naming it if not."""
    import numpy as np

    samples = len(outputs)
    named = f"metric {metric.spec!r} ({metric.source})"
    try:
        returned = metric.function(outputs, labels)
    except Exception as exc:  # noqa: BLE001 - the repository's code: whatever it raises is its failure
        raise ModelError(f"{named} raised {_raised(exc, root)}") from None
    if not isinstance(returned, tuple | list) or len(returned) != 2:
        raise ModelError(f"{named} returned {_kind(returned)}; {RETURNS}")
    value, per_sample = returned
    number = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)
    if not number and not (isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "iuf"):
        raise ModelError(f"{named} returned a value of type {_kind(value)}; {RETURNS}")
    if not np.isfinite(float(value)):
        raise ModelError(f"{named} returned the value {float(value)} on {samples} samples; {RETURNS}")
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
    return float(value), scores.reshape(samples)


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
