"""A model's `models/<name>/gate.toml` (`MANIFEST_KEYS`, `Manifest`), and the model's configuration: its
validated manifest with the policy it is judged by (`configure`).

Validated as the policies are (gate.policy.config): every problem in a file gathered and reported together, and
unknown keys are errors.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gate.discover import ModelFolder, find_model_folders
from gate.errors import ModelError
from gate.inspection import never_allowed_problem
from gate.keys import Choice, Flag, Key, Names, Tables, Text, Value
from gate.layout import MAX_OUTPUTS, OUTPUT_NAME
from gate.policy.config import DEFAULT_POLICY, SETTINGS, Policy, load_policies, policy_values
from gate.policy.tomlfile import parse_value, read_toml, unknown_key
from gate.quantization.base import DEFAULT_METHOD
from gate.quantization.methods import METHOD_CHOICES
from gate.quantization.settings import CALIBRATION_SAMPLES
from gate.tasks import CUSTOM, DEFAULT_TASK, MANIFEST_TASKS
from gate.tasks.custom import DIRECTIONS, custom_task, spec_problem

# fmt: skip: a key a row, as SETTINGS.
MANIFEST_KEYS: dict[str, Key] = {
    key.name: key
    for key in (
        Key("task", Choice(MANIFEST_TASKS), DEFAULT_TASK, "What the model does, and so its metric: top-1 accuracy "
            "(classification), mean absolute error (regression), ROC AUC (anomaly), without labels the outputs' "
            "fidelity to the float model's (fidelity), or your own (custom); see the task table.",
            role="manifest"),
        Key("metric", Text(), "", 'With task = "custom" only: the metric, `"module:function"`, a function of a '
            "reviewed module at the repository root (see docs/tasks.md).", role="manifest"),
        Key("direction", Choice(DIRECTIONS), "", 'With task = "custom" only: which way the metric is better, '
            '`"higher"` or `"lower"`.', role="manifest"),
        Key("policy", Choice(options_from="the name of a policy file in policies/, without .toml"), DEFAULT_POLICY,
            "The policy the model is judged by.", role="manifest"),
        Key("method", Choice(METHOD_CHOICES), DEFAULT_METHOD, "The quantization method, or `auto` to search for "
            "the first that passes (see the method table).", role="manifest"),
        CALIBRATION_SAMPLES,
        Key("calibrate_on_eval", Flag(), False, "Calibrate on eval.npz when there is no calib.npz or train.npz "
            "(the report then says so in bold).", role="manifest"),
        Key("overrides", Tables("[overrides.accuracy]"), None, "Policy values that replace the policy's for this "
            "model; need `override_reason`.", role="manifest"),
        Key("override_reason", Text(required=True), "", "Why the overrides are needed; shown beside them in the "
            "report.", role="manifest"),
        Key("outputs", Tables('[outputs.class] task = "classification"', "tasks"), None, "For a model with several "
            "outputs: the task of each, in a table named after its output (a Keras output's layer name, a "
            "SavedModel signature's output key; `eval.npz` holds its labels as `y.<name>`); an output without a "
            "table is scored by `fidelity`. Replaces `task`.", role="manifest"),
        Key("allow_custom_objects", Names('["my_pkg>MyLayer"]', "class names", check=never_allowed_problem), (),
            "Custom Keras objects this model may use, as registered (see the security model).", role="manifest"),
    )
}  # fmt: skip


@dataclass(frozen=True)
class Manifest:
    """A validated `gate.toml` (or the defaults when a model folder has none)."""

    path: str  # "" when the folder has no gate.toml
    task: str = str(MANIFEST_KEYS["task"].default)
    policy: str = DEFAULT_POLICY
    method: str = DEFAULT_METHOD
    calibration_samples: int = int(MANIFEST_KEYS["calibration_samples"].default)  # type: ignore[arg-type]
    calibrate_on_eval: bool = False
    overrides: Mapping[str, Value] = field(default_factory=dict)
    override_reason: str = ""
    allow_custom_objects: tuple[str, ...] = ()
    outputs: Mapping[str, str] = field(default_factory=dict)  # [outputs.<Keras output name>] task = "..."
    metric: str = ""  # task = "custom": "module:function"
    direction: str = ""  # task = "custom": "higher" or "lower"

    @property
    def registered_task(self) -> str:
        """The name of the task in gate.tasks' TASKS: a custom metric's says its direction."""
        return custom_task(self.direction) if self.task == CUSTOM else self.task


@dataclass(frozen=True)
class ModelConfig:
    """A model folder with its validated manifest and the policy it is judged by."""

    folder: ModelFolder
    manifest: Manifest
    policy: Policy
    values: dict[str, Value]  # the effective policy: defaults, then the policy file, then the overrides


def effective_policy(policy: Policy, manifest: Manifest) -> dict[str, Value]:
    """The policy a model is judged by: defaults, then the policy file, then the manifest's overrides."""
    values: dict[str, Value] = {key.name: key.default for key in SETTINGS if key.default is not None}
    values.update(policy.values)
    values.update(manifest.overrides)
    if values.get("target.runtime") == "tflm":
        # The metric judged is TFLM's: a file TFLM cannot run fails, unless the policy says otherwise.
        values.setdefault("ops.supported", True)
    return dict(sorted(values.items()))


def parse_manifest(path: Path, policy_names: Collection[str]) -> Manifest:
    """Validate a model's gate.toml against the policies that exist; raise ModelError listing every problem."""
    if not path.exists():
        return Manifest(path="")
    raw = read_toml(path, ModelError)
    problems: list[str] = []
    fields: dict[str, Any] = {}
    for name, value in raw.items():
        key = MANIFEST_KEYS.get(name)
        if key is None:
            problems.append(unknown_key(str(path), name, list(MANIFEST_KEYS), "allowed keys"))
        elif (checked := parse_value(str(path), key, value, problems, options=sorted(policy_names))) is not None:
            if name == "outputs":
                checked = _output_tasks(f"{path}: outputs", checked, problems)
            elif isinstance(key.kind, Tables):  # overrides: policy keys, validated as in a policy file
                checked = policy_values(f"{path}: {name}", checked, problems, top_level=())
            fields[name] = checked
    if "task" in fields and fields.get("outputs"):
        problems.append(
            f"{path}: task and [outputs.<name>] tables: a model with several outputs names the task of each in its "
            "table; remove task"
        )
    if fields.get("overrides") and not fields.get("override_reason"):
        problems.append(
            f'{path}: overrides need override_reason = "..." saying why this model may not meet the policy; '
            "the report shows it beside the overrides"
        )
    problems += _custom_metric_problems(path, raw, fields)
    if problems:
        raise ModelError("\n".join(problems))
    return Manifest(path=str(path), **fields)


# An output's task: a custom metric scores a whole model, so not "custom".
_OUTPUT_TASKS = tuple(task for task in MANIFEST_TASKS if task != CUSTOM)
_OUTPUT_TASK = replace(MANIFEST_KEYS["task"], kind=Choice(_OUTPUT_TASKS))


def _output_tasks(where: str, tables: Mapping[str, Any], problems: list[str]) -> dict[str, str]:
    """`[outputs.<name>] task = "..."` tables as {output name: task}; which names exist, the model file says."""
    tasks: dict[str, str] = {}
    if len(tables) > MAX_OUTPUTS:
        problems.append(f"{where}: {len(tables)} tables; gate gates at most {MAX_OUTPUTS} outputs of a model")
    for name, table in list(tables.items())[:MAX_OUTPUTS]:
        if not OUTPUT_NAME.fullmatch(name):  # said capped: the name is the pull request's, of any length
            problems.append(
                f"{where}: [outputs.<name>]: {name[:80]!r} is no name of an output gate gates: letters, digits, '_', "
                "'.' and '-' only (at most 128)"
            )
            continue
        if not isinstance(table, dict):
            problems.append(f'{where}: {name}: expected a table [outputs.{name}] with task = "...", got {table!r}')
            continue
        for key in sorted(set(table) - {"task"}):
            problems.append(unknown_key(f"{where}.{name}", key, ["task"], "allowed keys"))
        if "task" not in table:
            problems.append(f"{where}.{name}: no task; add task = one of {', '.join(_OUTPUT_TASKS)}")
        elif (task := parse_value(f"{where}.{name}", _OUTPUT_TASK, table["task"], problems)) is not None:
            tasks[name] = task
    return tasks


def _custom_metric_problems(path: Path, raw: Mapping[str, Any], fields: Mapping[str, Any]) -> list[str]:
    """`metric` and `direction` go with task = "custom", both of them, and with no other task."""
    given = [name for name in ("metric", "direction") if name in raw]
    if not given and fields.get("task") != CUSTOM or "task" in raw and "task" not in fields:  # or a bad task, said
        return []
    if fields.get("task") != CUSTOM:
        verb, them = ("apply", "them") if len(given) > 1 else ("applies", "it")
        return [f'{path}: {" and ".join(given)} {verb} to task = "custom" only; remove {them}, or set task = "custom"']
    if len(given) < 2:
        return [
            f'{path}: task = "custom" needs metric = "module:function" and direction = "higher" or "lower"; add '
            f"{' and '.join(name for name in ('metric', 'direction') if name not in given)}"
        ]
    problem = spec_problem(fields.get("metric", "module:function"))  # a metric that is no string says so already
    return [f"{path}: metric: {problem}"] if problem else []


@dataclass(frozen=True)
class Configuration:
    """Everything `gate check` and `gate validate` read before touching a model."""

    policies: dict[str, Policy]
    models: list[ModelConfig | tuple[ModelFolder, str]]  # a configured model, or a folder with its problem


def configure(model_dirs: Sequence[Path], *, policies_dir: Path) -> Configuration:
    """Read the policies, find the model folders and validate each manifest.

    A broken policy or a missing folder raises ConfigError (nothing can be
    gated); a broken gate.toml is that model's problem only.
    """
    policies = load_policies(policies_dir)
    folders = find_model_folders(model_dirs)
    return Configuration(policies, [configure_model(folder, policies) for folder in folders])


def configure_model(
    folder: ModelFolder, policies: Mapping[str, Policy], *, policy_names: Collection[str] | None = None
) -> ModelConfig | tuple[ModelFolder, str]:
    """The model's configuration, or its folder with the problem that stops it from being gated.

    `policy_names` (for `gate validate` when a policy file is broken) are the names a manifest may use.
    """
    if folder.problem:
        return folder, folder.problem
    try:
        manifest = parse_manifest(folder.manifest, policies if policy_names is None else policy_names)
    except ModelError as exc:
        return folder, str(exc)
    policy = policies.get(manifest.policy)
    if policy is None:  # only with policy_names: the policy file exists but is broken, and says so itself
        return folder, ""
    return ModelConfig(folder, manifest, policy, effective_policy(policy, manifest))
