"""The data files a model's gating reads: eval.npz, and the calibration and training data its candidates need.

`gate check` (gate.gating.stages.load) and `gate validate` both read them here, so both refuse the same data with
the same message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gate.discover import ModelFiles
from gate.errors import ModelError
from gate.frontends.base import OutputSpec
from gate.keys import suggest
from gate.layout import MAX_OUTPUTS, OUTPUT_NAME
from gate.quantization.methods import METHODS
from gate.tasks import CUSTOM, DEFAULT_TASK, TASKS
from gate.tasks.fidelity import FIDELITY

if TYPE_CHECKING:
    from gate.inspection import Inspection


def output_specs(
    inspection: Inspection, tasks: Mapping[str, str], *, manifest: str, model_file: object, task: str = DEFAULT_TASK
) -> tuple[OutputSpec, ...]:
    """Each output of a model with several, with the task gate.toml's [outputs.<name>] gives it (else fidelity).

    () for a model with one output (or one whose file does not say): its task is gate.toml's `task` (`task`, as
    TASKS names it). A table that names no output of the model, or a `task` other than the default on a model with
    several (it would be silently ignored), is a ModelError saying so.
    """
    outputs = inspection.signature.outputs if inspection.signature else ()
    if not outputs:
        if tasks:
            raise ModelError(
                f"{manifest}: [outputs.{next(iter(tasks))[:80]}]: [outputs.<name>] tables are for a model file that "
                "declares several outputs, and gate reads none from this one (it has one output, or a Keras model "
                "returns its outputs as a dict, which gate does not read: return a list); set task instead"
            )
        return ()
    names = [output.name for output in outputs]
    if task != DEFAULT_TASK and not tasks:  # gate.toml refuses task beside [outputs] tables
        said = CUSTOM if task.startswith(f"{CUSTOM}-") else task
        fix = (
            "a custom metric scores a model with one output: remove task, metric and direction, and give each output "
            "its task in a table [outputs.<name>]"
            if said == CUSTOM
            else f'move it into a table such as [outputs.{names[0][:80]}] task = "{said}", or remove it'
        )
        raise ModelError(
            f'{manifest}: task = "{said}": the model file declares {len(names)} outputs, and gate scores each by the '
            f"task of its own [outputs.<name>] table (fidelity without one), never by task; {fix}"
        )
    if len(names) > MAX_OUTPUTS:
        raise ModelError(f"{model_file}: the model has {len(names)} outputs; gate gates at most {MAX_OUTPUTS}")
    if odd := [name for name in names if not OUTPUT_NAME.fullmatch(name)]:
        rename = "its key in the serving_default signature" if inspection.format == "saved_model" else "its layer"
        raise ModelError(
            f"{model_file}: output {odd[0][:80]!r} has a name gate cannot use as y.<name> and in its checks' names; "
            f"name {rename} with letters, digits, '_', '.' and '-' only (at most 128)"
        )
    unknown = [
        f"{manifest}: [outputs.{name}]: the model has no output '{name}'{suggest(name, names)}; its outputs are "
        f"{', '.join(names)}"
        for name in tasks
        if name not in names
    ]
    if unknown:
        raise ModelError("\n".join(unknown))
    return tuple(OutputSpec(o.name, tasks.get(o.name, FIDELITY.name), o.width, o.activation) for o in outputs)


def read_data(
    files: ModelFiles, order: Sequence[str], *, calibrate_on_eval: bool, **data_args: Any
) -> tuple[Any, Any, Any]:
    """eval.npz, and the calibration and training data the candidates in `order` need, read and checked.

    Calibration data is calib.npz, else train.npz; the eval set only when gate.toml says so; else None.
    Training data (QAT's) is train.npz, labels and all. `gate validate` reads them with the inputs the
    model file declares.
    """
    from gate.frontends import data

    need_labels = TASKS[data_args["task"]].needs_labels or bool(data_args.get("outputs"))
    eval_data = data.load_dataset(files.eval_data, need_labels=need_labels, min_samples=2, **data_args)
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
