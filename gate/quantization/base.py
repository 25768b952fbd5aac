"""What a quantization method is and what it is given: the interface every method implements.

The methods themselves are in their own modules; gate.quantization.methods names them (METHODS).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.keys import Value
from gate.tasks import DEFAULT_TASK

if TYPE_CHECKING:
    # Only in annotations: `gate comment` reads the registry through gate.cli and must run on the
    # standard library alone (its workflow installs gate with --no-deps).
    import numpy as np


REFERENCE = "float32"  # the unquantized .tflite every candidate is measured against


AUTO = "auto"  # search METHODS in order for the first candidate that passes
# The layer ranking (gate.quantization.ranking), here because the report says how it measured. Each op's variant runs
# on the first RANKING_SAMPLES calibration samples: each op costs one splice and one run, and on 200 samples a
# ResNet50's runs cost more than its calibration; on the bundled outlier model and digits_mobilenetv2, 64 keep what the
# fallback keeps on 200. A model of more than REFINED ops is screened first: every op runs on the first
# SCREEN_SAMPLES, and only the REFINED that harm those most run again on all the ranking samples, which order them.
# A run's time grows with its samples: on issue 26's ResNet50 (75 ops, 32 calibration samples) that is 75 x 4 +
# 12 x 32 sample runs instead of 75 x 32. The fallback keeps at most `search.max_float_layers` (5 by default) and the
# report shows 10: both come from the refined ones. What it costs in ranking quality: bench/ranking_samples.py (on
# digits_mobilenetv2, the same 4 of the top 5 and the same accuracy with two layers float as every op on 64).
RANKING_SAMPLES = 64
SCREEN_SAMPLES = 4
REFINED = 12


DEFAULT_METHOD = AUTO


# What full-integer conversion makes the model's inputs and outputs when the policy does not say.
DEFAULT_IO_DTYPE = "int8"


@dataclass(frozen=True)
class Training:
    """What quantization-aware training needs besides the SavedModel: the model itself, its data and its budget."""

    model_file: Path  # the committed model.keras / model.h5 (a SavedModel cannot be trained)
    model_format: str  # gate.inspection's format: "keras", "h5" or "saved_model"
    model: Any  # the loaded float model (gate.frontends.base.LoadedModel)
    train_file: Path | None  # train.npz
    train_labels: bool  # train.npz holds y
    eval_inputs: Mapping[str, np.ndarray]  # the eval inputs, for the faithfulness reference of a rebuild
    scratch: Path  # a folder of this model's, for the QAT process's files
    epochs: int
    learning_rate: float
    batch_size: int
    calibration_samples: int
    unroll: bool  # recurrent layers unrolled (runtime.resets_state is false)
    candidate_timeout_s: float
    progress: Callable[[str], None] = lambda line: None  # one line per epoch, to the model's log and the terminal
    # A model with several outputs: (Keras output name, task) in the model's order (gate.gating.several sets them).
    outputs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Setup:
    """What building a candidate needs beyond the SavedModel."""

    input_dtype: str = DEFAULT_IO_DTYPE
    output_dtype: str = DEFAULT_IO_DTYPE
    calibration: Mapping[str, np.ndarray] | None = None  # inputs by name, one row per sample (the first N)
    all_calibration: Mapping[str, np.ndarray] | None = None  # every calibration sample there is
    float_tflite: bytes = b""  # the float32 reference, for methods that start from it
    # How much worse than the float model a build is (positive = worse; the task's loss of its metric change, or on a
    # model with several outputs its worst output's share of what the policy allows), and the most the policy
    # allows (None: no limit): a method that searches itself (selective fallback) stops at the first build within it.
    loss: Callable[[bytes], float] | None = None
    allowed_loss: float | None = None
    task: str = DEFAULT_TASK  # a name of gate.tasks' TASKS: what QAT trains for
    max_float_layers: int = 5  # search.max_float_layers: most layers float fallback keeps in float
    training: Training | None = None  # what methods that go back to the model itself need (QAT)
    # Operators the target has no int16-activation kernel for, with why: no layer of them gets int16 activations.
    no_int16_kernel: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Built:
    """A candidate's .tflite bytes and how it was made, for the report."""

    tflite: bytes
    notes: tuple[str, ...] = ()
    # Seconds of the method's own steps besides the conversion itself, e.g. {"ranking": 2.7} or {"QAT training": 12}.
    seconds: dict[str, float] = field(default_factory=dict)


def io_dtypes(policy: Mapping[str, Value]) -> tuple[str, str]:
    """The model I/O dtypes a policy asks of full-integer conversion (its io.* checks), with the default."""
    return str(policy.get("io.input_dtype", DEFAULT_IO_DTYPE)), str(policy.get("io.output_dtype", DEFAULT_IO_DTYPE))


@dataclass(frozen=True)
class Method:
    """A way to convert the float model to .tflite."""

    name: str
    description: str
    needs_calibration: bool  # a representative dataset (calib.npz or train.npz) drives the conversion
    build: Callable[[Path, Setup], Built]  # (SavedModel folder, setup) -> .tflite; TensorFlow is imported by then
    # What model I/O it produces, for ruling it out before it is tried: "policy" (the io.* dtypes) or "float32".
    io: str = "policy"
    float_ops: bool = False  # it leaves ops on float tensors
    needs_training_data: bool = False
    selectable: bool = True  # False for the float32 reference, which is not a way to quantize
    # The checks on which it never does better than an earlier method (check -> that method's name): once that
    # one failed the check, this one cannot pass it, and the search does not try it (gate.gating.search.cannot_pass).
    no_better_than: Mapping[str, str] = field(default_factory=dict)
    # Which layers get int16 activations (16x8): "all", "ranked" (those the fallback ranking picks) or none (""). A
    # target without an operator's int16 kernel rules out "all" when the float model has it, and keeps such layers
    # out of "ranked" (Target.no_int16_kernel).
    int16_activations: str = ""


class NotApplicable(Exception):  # a reason, not a failure
    """A method that does not apply to this model; str() says why (the candidate is skipped with it)."""
