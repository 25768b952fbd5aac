"""The data files a model's gating reads: eval.npz, and the calibration and training data its candidates need.

`gate check` (gate.gating.stages.load) and `gate validate` both read them here, so both refuse the same data with
the same message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gate.discover import ModelFiles
from gate.quantization.methods import METHODS
from gate.tasks import TASKS


def read_data(
    files: ModelFiles, order: Sequence[str], *, calibrate_on_eval: bool, **data_args: Any
) -> tuple[Any, Any, Any]:
    """eval.npz, and the calibration and training data the candidates in `order` need, read and checked.

    Calibration data is calib.npz, else train.npz; the eval set only when gate.toml says so; else None.
    Training data (QAT's) is train.npz, labels and all. `gate validate` reads them with the inputs the
    model file declares.
    """
    from gate.frontends import data

    eval_data = data.load_dataset(
        files.eval_data, need_labels=TASKS[data_args["task"]].needs_labels, min_samples=2, **data_args
    )
    calibration = train = None
    if any(METHODS[name].needs_calibration for name in order):
        source = files.calib_data or files.train_data
        if source is not None:
            calibration = data.load_dataset(source, need_labels=False, **data_args)
        elif calibrate_on_eval:
            calibration = eval_data
    if any(METHODS[name].needs_training_data for name in order) and files.train_data:
        reuse = calibration is not None and calibration.path == files.train_data
        train = calibration if reuse else data.load_dataset(files.train_data, need_labels=False, **data_args)
    return eval_data, calibration, train
