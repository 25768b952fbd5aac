"""Read a model's .npz data (eval, calib, train) and check it against the model's inputs and its task.

np.load runs no pickle here (allow_pickle=False) and every array is checked before it is cast.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from gate.discover import digest
from gate.errors import ModelError
from gate.frontends.base import Dataset, InputSpec, OutputSpec
from gate.results import DataInfo
from gate.tasks import TASKS


def load_dataset(
    path: Path,
    *,
    model_folder: Path,
    inputs: tuple[InputSpec, ...],
    task: str,
    output_width: int | None,
    need_labels: bool,
    output_activation: str | None = None,
    outputs: tuple[OutputSpec, ...] = (),
    min_samples: int = 1,
) -> Dataset:
    """Read and validate an .npz file against the model; raise ModelError naming every problem.

    `output_width` None: the model file does not say it (gate validate), so labels are not checked against it.
    `output_activation` (the model's last, when known) lets a label problem suggest what the model is.
    `outputs`: a model with several outputs, whose labels are y.<output name>, each checked by its output's task.
    """
    where = path  # as the user named it: models/<name>/eval.npz
    arrays = _read_npz(path, where)
    problems: list[str] = []
    if len(inputs) == 1:
        allowed_x = {"x": inputs[0], f"x.{inputs[0].name}": inputs[0]}
    else:
        allowed_x = {f"x.{spec.name}": spec for spec in inputs}
    # A model with several outputs holds y.<output name>; _output_labels words the problem of a y or y.<name> it has.
    allowed = set(allowed_x) | {"y"} | {f"y.{spec.name}" for spec in outputs}
    for key in sorted(set(arrays) - allowed):
        problems.append(f"{where}: unexpected array '{key}'; expected {', '.join(sorted(allowed))}")

    features: dict[str, np.ndarray] = {}
    in_file: dict[str, str] = {}  # model input name -> the array's name in the file
    for spec in inputs:
        keys = [k for k, s in allowed_x.items() if s is spec and k in arrays]
        if not keys:
            expected = " or ".join(k for k, s in allowed_x.items() if s is spec)
            problems.append(f"{where}: no array for model input '{spec.name}'; add it as {expected}")
            continue
        array, problem = _check_features(where, keys[0], arrays[keys[0]], spec)
        if problem:
            problems.append(problem)
        else:
            features[spec.name], in_file[spec.name] = array, keys[0]

    output_labels = _output_labels(where, arrays, outputs, problems, need_labels=need_labels) if outputs else {}
    labels = None
    if "y" in arrays and not outputs:
        checked, problem = _check_labels(where, arrays["y"], task, output_width, output_activation)
        if problem:
            problems.append(problem)
        else:
            labels = checked
    elif need_labels and not outputs:
        problems.append(f"{where}: no array 'y'; add the labels the {task} task scores: {TASKS[task].labels}")

    counts = (
        {in_file[name]: len(a) for name, a in features.items()}
        | ({"y": len(labels)} if labels is not None else {})
        | {f"y.{name}": len(a) for name, a in output_labels.items()}
    )
    if not problems and len(set(counts.values())) > 1:
        held = ", ".join(f"{key} has {count}" for key, count in counts.items())
        problems.append(
            f"{where}: arrays hold different numbers of samples ({held}); every array needs one row per sample"
        )
    count = next(iter(counts.values()), 0)
    if not problems and not count:
        problems.append(f"{where}: holds no samples; add at least one")
    elif not problems and count < min_samples:  # the eval set: its intervals resample it
        held = f"{count} sample" if count == 1 else f"{count} samples"
        problems.append(
            f"{where}: holds {held}; gate's confidence intervals resample the eval set and need at least "
            f"{min_samples}: add more"
        )
    if problems:
        raise ModelError("\n".join(problems))
    samples = len(next(iter(features.values())))
    return Dataset(features, labels, DataInfo(file=digest(path, model_folder), samples=samples), path, output_labels)


def _output_labels(
    where: Path, arrays: dict[str, np.ndarray], outputs: tuple[OutputSpec, ...], problems: list[str], *,
    need_labels: bool,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Each labelled output's y.<name>, checked by its task as y is for a model with one output."""
    labelled = [spec for spec in outputs if TASKS[spec.task].needs_labels]
    if "y" in arrays and labelled:
        problems.append(
            f"{where}: holds y, but the model has several outputs, whose labels are stored as y.<output name> "
            f"({', '.join(f'y.{spec.name}' for spec in labelled)}); rename it"
        )
    elif "y" in arrays:
        problems.append(
            f"{where}: holds y, but the model has several outputs ({', '.join(spec.name for spec in outputs)}) and "
            'gate.toml gives none a task that reads labels: add [outputs.<name>] task = "..." tables to gate.toml and '
            "store each output's labels as y.<name>"
        )
    for spec in outputs:
        if spec not in labelled and f"y.{spec.name}" in arrays:
            problems.append(
                f"{where}: holds y.{spec.name}, but output '{spec.name}' is scored by {spec.task}, which reads no "
                f"labels; remove it, or give the output a task in gate.toml's [outputs.{spec.name}]"
            )
    checked: dict[str, np.ndarray] = {}
    for spec in labelled:
        key = f"y.{spec.name}"
        if key not in arrays:
            if need_labels:
                problems.append(
                    f"{where}: no array '{key}'; add the labels the {spec.task} task scores output '{spec.name}' "
                    f"by: {TASKS[spec.task].labels}"
                )
            continue
        labels, problem = _check_labels(where, arrays[key], spec.task, spec.width, spec.activation)
        if problem:
            # The tasks word their problems for y and a model's one task: say which y, and where this output's task is
            # set (every message starts with "<where>: y "; classification's suggests `task = "regression"`).
            problem = problem.replace(f"{where}: y ", f"{where}: {key} ", 1)
            problems.append(problem.replace("set task = ", f"set [outputs.{spec.name}] task = "))
        else:
            checked[spec.name] = labels
    return checked


def _read_npz(path: Path, where: Path) -> dict[str, np.ndarray]:
    unreadable = f"{where}: is not a readable .npz file ({{}}); write it with numpy.savez"
    # np.load treats anything that is neither a zip nor an .npy as a pickle: rule that out first.
    if not zipfile.is_zipfile(path):
        raise ModelError(unreadable.format("not a zip archive"))
    try:
        # allow_pickle=False: an object array in an .npz is a pickle, and unpickling runs code.
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise ModelError(
                f"{where}: holds a pickled (object) array, which could run code when loaded; save only numeric arrays"
            ) from None
        raise ModelError(unreadable.format(exc)) from None
    except Exception as exc:  # a damaged archive raises zlib, struct, OSError, EOFError...
        raise ModelError(unreadable.format(f"{type(exc).__name__}: {exc}")) from None
    # np.load hands back the raw bytes of a member that is not an .npy file.
    not_arrays = [key for key, value in arrays.items() if not isinstance(value, np.ndarray)]
    if not_arrays:
        raise ModelError(
            f"{where}: entry {', '.join(map(repr, not_arrays))} is not a NumPy array; write the file with numpy.savez"
        )
    return arrays


def _check_features(where: Path, key: str, array: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, str | None]:
    if array.dtype.kind not in "biuf":
        return array, f"{where}: {key} has dtype {array.dtype}; expected numbers (int, uint or float)"
    if array.ndim != len(spec.shape) + 1 or any(
        want is not None and have != want for have, want in zip(array.shape[1:], spec.shape, strict=False)
    ):
        expected = "(samples, " + ", ".join("any" if d is None else str(d) for d in spec.shape) + ")"
        return array, f"{where}: {key} has shape {array.shape}; model input '{spec.name}' expects {expected}"
    # Checked on the stored values, before the cast to the input's dtype: a cast to an integer dtype turns NaN
    # and infinity into -2147483648 (int32) or 0 (uint8), 3.7 into 3 and 300 into 44 (uint8), all silently.
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        return array, f"{where}: {key} contains NaN or infinite values; remove or impute them"
    target = np.dtype(spec.dtype)
    takes = f"model input '{spec.name}' takes {target.name}"
    if target.kind in "iu" and array.dtype.kind == "f" and (fractional := array[np.mod(array, 1) != 0]).size:
        return array, (
            f"{where}: {key} holds {fractional.size} value(s) that are not whole numbers (e.g. {fractional[0]:g}); "
            f"{takes}, so they would be truncated: store the whole numbers the model expects (token ids, indices)"
        )
    limits = np.iinfo(target) if target.kind in "iu" else np.finfo(target) if target.kind == "f" else None
    if limits is not None and array.size and (array.min() < limits.min or array.max() > limits.max):
        outside = array.min() if array.min() < limits.min else array.max()
        return array, (
            f"{where}: {key} holds {outside:g}, outside the range of {target.name} ({limits.min:g} to "
            f"{limits.max:g}); {takes}, so it would wrap around or overflow: store values in that range"
        )
    return array.astype(target), None


def _check_labels(
    where: Path, y: np.ndarray, task: str, output_width: int | None, output_activation: str | None
) -> tuple[np.ndarray, str | None]:
    if y.dtype.kind not in "biuf":
        return y, f"{where}: y has dtype {y.dtype}; expected numbers"
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        return y, f"{where}: y contains NaN or infinite values; remove those samples"
    return TASKS[task].check_labels(y, where=where, output_width=output_width, output_activation=output_activation)
