"""What a frontend hands on: the loaded float model (LoadedModel, its inputs) and validated data (Dataset)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from gate.results import DataInfo

if TYPE_CHECKING:
    from gate.inspection import Inspection

PREDICT_BATCH = 256


@dataclass(frozen=True)
class InputSpec:
    """One model input: data for it comes from `x` (single input) or `x.<name>`."""

    name: str
    shape: tuple[int | None, ...]  # without the batch dimension
    dtype: str


@dataclass(frozen=True)
class OutputSpec:
    """One output of a model with several: its Keras name, the task that scores it, what its config says of it."""

    name: str  # eval.npz holds its labels as y.<name>
    task: str  # a name of gate.tasks.TASKS: gate.toml's [outputs.<name>] task, else fidelity
    width: int | None  # its last dimension; None when the config does not say
    activation: str | None


@dataclass(frozen=True)
class LoadedModel:
    """The float model, ready to evaluate and to convert."""

    inputs: tuple[InputSpec, ...]
    output_width: int
    saved_model_dir: Path  # a SavedModel with a serving_default signature, for the converter
    fixed_batch: bool  # that signature takes a batch of exactly one
    predict: Callable[[dict[str, np.ndarray]], np.ndarray]  # one batch, inputs by name
    keras_model: Any = None  # the Keras 3 model itself (QAT rebuilds it in tf-keras from its weights); else None
    # The export that methods calibrating the model convert: a Keras 3 recurrent model's unrolled copy (int8
    # calibration crashes TensorFlow 2.21 on its WHILE loop, which keeps no state anyway); else saved_model_dir.
    calibrated_saved_model_dir: Path | None = None
    # A Keras 3 model with several outputs: each output on one batch, by its Keras name (`predict` is for one).
    predict_each: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None

    def export_for(self, calibrated: bool) -> Path:
        """The SavedModel a method converts: one that calibrates the model, or one that does not."""
        return (self.calibrated_saved_model_dir or self.saved_model_dir) if calibrated else self.saved_model_dir


@dataclass(frozen=True)
class Dataset:
    """Validated arrays from one .npz file."""

    inputs: dict[str, np.ndarray]  # by model input name, already in the input's dtype
    # class indices (classification), targets (regression), 0/1 (anomaly); for a task without labels, the float32
    # .tflite's outputs once the reference stage has them
    labels: np.ndarray | None
    info: DataInfo
    path: Path  # as the user names it, e.g. models/<name>/eval.npz
    # A model with several outputs: each labelled output's labels (y.<name>), by Keras output name; `labels` is None.
    output_labels: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def samples(self) -> int:
        return self.info.samples


class Frontend(Protocol):
    """A model format family: Keras (.keras, .h5, SavedModel) today."""

    name: str

    @property
    def formats(self) -> Mapping[str, str]:
        """The file or folder names it reads in a model folder, each with its format, e.g. "model.h5" -> "h5"."""
        ...

    def inspect(self, path: Path, *, allowed_custom_objects: tuple[str, ...]) -> Inspection:
        """Show that `path` is safe to load without loading it, or raise ModelError saying what to change."""
        ...

    def load(
        self, path: Path, inspection: Inspection, *, export_dir: Path, fixed_batch: bool, unroll: bool
    ) -> LoadedModel:
        """Load the inspected model and export what the methods convert (under `export_dir`)."""
        ...
