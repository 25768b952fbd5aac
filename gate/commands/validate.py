"""`gate validate`: check everything `gate check` would refuse that can be seen without loading a model or TensorFlow.

Every policy and gate.toml; then each model folder as `gate check` reads it, with
the same functions, so both refuse with the same message: the contract's files
(gate.discover), the model file's inspection, custom objects and declared
signature (gate.inspection), gate.toml's [outputs.<name>] tables against the outputs
it declares, and the data files against the inputs and outputs the model file
declares (gate.gating.data.read_data). What only loading the model shows (its
weights, the conversion, the eval run) is named as not checked.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gate.commands import options
from gate.discover import find_model_folders
from gate.errors import ConfigError, ModelError
from gate.escape import terminal
from gate.policy.config import load_policies
from gate.policy.manifest import ModelConfig, configure_model

HELP = "check every policy, gate.toml, model file and data file that can be checked without TensorFlow"
NOT_CHECKED = "loading the model, its conversion and the eval run are not checked (gate check does them)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.model_dirs(parser)
    options.policies(parser)


def run(args: argparse.Namespace) -> int:
    return validate(options.chosen_model_dirs(args), policies_dir=args.policies)


def validate(model_dirs: Sequence[Path], *, policies_dir: Path) -> int:
    """List every problem in the policies, manifests and model folders; exit 2 if there is any."""
    # Not at import: `gate comment` imports every command, and its job installs no NumPy.
    from gate.scheduling.run import custom_code_problem

    problems: list[str] = []
    notes: list[str] = []
    try:
        policies = load_policies(policies_dir)
        policy_names = list(policies)
    except ConfigError as exc:
        problems.append(str(exc))
        # Check the manifests anyway, against the policy files that exist, so one run lists every problem.
        policies = {}
        policy_names = [path.stem for path in policies_dir.glob("*.toml")]
    try:
        folders = find_model_folders(model_dirs)
    except ConfigError as exc:
        problems.append(str(exc))
        folders = []
    for folder in folders:
        configured = configure_model(folder, policies, policy_names=policy_names)
        if isinstance(configured, ModelConfig):
            try:
                if problem := custom_code_problem(configured):
                    raise ModelError(problem)
                if note := check_model_folder(configured):
                    notes.append(note)
            except ModelError as exc:
                problems.append(str(exc))
        elif configured[1]:
            problems.append(configured[1])
    for note in notes:
        print(terminal(f"gate: note: {note}"), file=sys.stderr)
    if problems:
        text = "\n".join(problems)
        print(terminal(text, lines=True), file=sys.stderr)
        print(f"gate: {len(text.splitlines())} problem(s) found; {NOT_CHECKED}", file=sys.stderr)
        return options.EXIT_CONFIG
    print(
        f"gate: {len(policy_names)} policies and {len(folders)} model folders are valid as far as can be seen without "
        f"TensorFlow; {NOT_CHECKED}",
        file=sys.stderr,
    )
    return options.EXIT_PASS


def check_model_folder(model: ModelConfig) -> str:
    """Raise the ModelError `gate check` would raise for a reason visible without loading; a note of what was not seen.

    The files (exactly one model file, eval.npz), the model file's inspection and signature, then the data
    `gate check` reads for the candidates it would try, against the model's declared inputs and output.
    """
    from gate.discover import model_files
    from gate.frontends import frontend_for
    from gate.frontends.base import InputSpec
    from gate.gating.data import output_specs, read_data
    from gate.quantization.methods import search_order

    files = model_files(model.folder)
    inspection = frontend_for(files.format).inspect(
        files.model, allowed_custom_objects=model.manifest.allow_custom_objects
    )
    signature = inspection.signature
    order = search_order(model.manifest.method, tuple(model.values.get("search.candidates", ()) or ()))  # type: ignore[arg-type]
    outputs = output_specs(inspection, model.manifest.outputs, manifest=str(model.folder.manifest),
                           model_file=files.model, task=model.manifest.registered_task)  # fmt: skip
    if signature is None:
        return f"{files.model}: the file does not declare the model's inputs, so its data is checked by gate check"
    read_data(
        files,
        order,
        calibrate_on_eval=model.manifest.calibrate_on_eval,
        model_folder=model.folder.path,
        inputs=tuple(InputSpec(i.name, i.shape, i.dtype) for i in signature.inputs),
        task=model.manifest.registered_task,
        output_width=signature.output_width,
        output_activation=signature.output_activation,
        outputs=outputs,
    )
    return ""
