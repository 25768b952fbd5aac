"""Policies (`policies/*.toml`) and model manifests (`models/<name>/gate.toml`).

Both are described once, declaratively: `POLICY_KEYS` (every check of
gate.policy.judge.CHECKS and every setting) and `MANIFEST_KEYS`, each key with its
kind, default and meaning. Validation, the documentation's reference tables
(gate.reporting.reference, tested against these) and `gate validate` read them. Raw TOML becomes frozen
dataclasses here, once; nothing later touches a raw dict. Every problem in a
file is gathered and reported together, each naming the file, the key, the
bad value and what is allowed. Unknown keys are errors: a gate must never
ignore a misspelled threshold.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gate.discover import ModelFolder, find_model_folders, shown
from gate.errors import ConfigError, GateError, ModelError
from gate.inspection import never_allowed_problem
from gate.keys import Choice, Flag, Invalid, Key, Names, Number, Tables, Text, Value, suggest
from gate.layout import MAX_OUTPUTS, OUTPUT_NAME
from gate.policy.judge import CHECKS
from gate.quantization.base import DEFAULT_METHOD
from gate.quantization.methods import METHOD_CHOICES, SELECTABLE
from gate.quantization.settings import CALIBRATION_SAMPLES, QAT_KEYS
from gate.targets import DEFAULT_TARGET, TARGET_NAMES
from gate.tasks import CUSTOM, DEFAULT_TASK, MANIFEST_TASKS
from gate.tasks.custom import DIRECTIONS, custom_task, spec_problem

DEFAULT_POLICY = "default"
MAX_TOML_BYTES = 1024 * 1024

# fmt: skip: a key a row, its name, kind and default on its first line, as the reference table reads.
SETTINGS = (
    Key("target.runtime", Choice(TARGET_NAMES), DEFAULT_TARGET,
        "Where the model runs and is measured: `litert` (LiteRT on the machine gate runs on), `tflm` (TensorFlow "
        "Lite for Microcontrollers: the arena, the operators to register and the metric as TFLM computes it, judged) "
        "or an Ethos-U configuration as Vela names it (Vela's SRAM, flash, cycles and NPU share); see "
        "docs/targets.md."),
    Key("size.baseline", Choice(("source", "float32_tflite")), "source",
        "What `size.min_reduction` compares against: the committed model file(s) or the float32 .tflite."),
    Key("runtime.resets_state", Flag(), False,
        "The app calls `interpreter.reset_all_variables()` before each inference. Recurrent layers are then "
        "converted as they are (a tf-keras LSTM to one fused op that keeps its state in variable tensors: a smaller "
        "file) instead of unrolled over their time steps, and a file that keeps state is measured with a reset "
        "before each invoke."),
    Key("latency.threads", Number(1, 64, integer=True), 1, "Interpreter threads used for latency."),
    Key("latency.rounds", Number(10, 100_000, integer=True), 200, "Timed single-sample invocations per model."),
    Key("latency.warmup_rounds", Number(0, 10_000, integer=True), 20, "Untimed invocations before timing."),
    Key("limits.timeout_s", Number(1, 86_400), 900,
        "Wall-time limit for gating one model, in seconds, over every worker it takes (a search resumed after a "
        "crashed candidate goes on with the time already spent)."),
    Key("limits.memory_mb", Number(256, 1_048_576, integer=True), 8192,
        "Resident-memory limit for gating one model, in MiB: the sum over its worker and every process it started "
        "(the QAT process too)."),
    Key("search.candidates", Names(entries=SELECTABLE), (),
        "The methods `auto` may try, in the registry's order (empty: all of them)."),
    Key("search.max_seconds", Number(1, 86_400), 600,
        "Time budget of `auto`'s search for one model: candidates not started by then are skipped."),
    Key("search.candidate_timeout_s", Number(1, 86_400), 300,
        "Wall-time limit of one candidate: a conversion that hangs longer fails that candidate only."),
    Key("search.max_float_layers", Number(1, 100, integer=True), 5,
        "Most layers `int8-float-fallback` may keep in float."),
    Key("statistics.decide_on", Choice(("estimate", "upper_bound", "lower_bound")), "estimate",
        "What the accuracy, MAE, AUC and fidelity checks compare with their limit: the measured figure, the "
        "pessimistic (`upper_bound`) or the optimistic (`lower_bound`) end of its confidence interval. Pessimistic "
        "judges the worse of the estimate and that end, so that an interval never makes a verdict kinder."),
    Key("statistics.confidence", Number(0.5, 0.999), 0.95, "Confidence level of the paired-bootstrap intervals."),
    *QAT_KEYS,
)  # fmt: skip

POLICY_KEYS: dict[str, Key] = {
    **{name: Key(name, check.kind, None, check.description, role="check") for name, check in CHECKS.items()},
    **{key.name: key for key in SETTINGS},
}
# Keys outside any [table] of a policy file.
POLICY_TOP_LEVEL: dict[str, Key] = {"description": Key("description", Text(), "", "What the policy is for.")}

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
class Policy:
    """A validated policy file: `values` maps "section.key" to its value."""

    name: str
    path: str
    description: str
    values: Mapping[str, Value]


@dataclass(frozen=True)
class Settings:
    """The effective policy's settings (not its checks), typed: read once, with the defaults of POLICY_KEYS."""

    target: str  # a name of gate.targets.TARGETS
    size_baseline: str
    resets_state: bool
    latency_threads: int
    latency_rounds: int
    latency_warmup_rounds: int
    timeout_s: float
    memory_mb: int
    candidates: tuple[str, ...]
    max_seconds: float
    candidate_timeout_s: float
    max_float_layers: int
    decide_on: str
    confidence: float
    qat_epochs: int
    qat_learning_rate: float
    qat_batch_size: int

    @classmethod
    def of(cls, policy: Mapping[str, Value]) -> Settings:
        """From an effective policy (validated already); a setting it lacks takes the registry's default."""

        def value(key: str) -> Any:
            return policy.get(key, POLICY_KEYS[key].default)

        return cls(
            target=str(value("target.runtime")),
            size_baseline=str(value("size.baseline")),
            resets_state=bool(value("runtime.resets_state")),
            latency_threads=int(value("latency.threads")),
            latency_rounds=int(value("latency.rounds")),
            latency_warmup_rounds=int(value("latency.warmup_rounds")),
            timeout_s=float(value("limits.timeout_s")),
            memory_mb=int(value("limits.memory_mb")),
            candidates=tuple(value("search.candidates") or ()),
            max_seconds=float(value("search.max_seconds")),
            candidate_timeout_s=float(value("search.candidate_timeout_s")),
            max_float_layers=int(value("search.max_float_layers")),
            decide_on=str(value("statistics.decide_on")),
            confidence=float(value("statistics.confidence")),
            qat_epochs=int(value("qat.epochs")),
            qat_learning_rate=float(value("qat.learning_rate")),
            qat_batch_size=int(value("qat.batch_size")),
        )


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


def policy_digest(values: Mapping[str, Value]) -> str:
    """sha256 of the effective policy's canonical JSON: equal policies, equal digests."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def _read_toml(path: Path, error: type[GateError]) -> dict[str, Any]:
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_TOML_BYTES + 1)
        if len(raw) > MAX_TOML_BYTES:
            raise error(f"Failed to parse {path}: larger than {MAX_TOML_BYTES:,} bytes; a policy or gate.toml is short")
        return tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise error(f"Failed to parse {path}: {exc}; fix the TOML syntax") from None
    except RecursionError:  # tomllib recurses once per level: tables or arrays nested thousands deep
        raise error(f"Failed to parse {path}: nested too deeply; fix the TOML syntax") from None
    except UnicodeDecodeError:
        raise error(f"Failed to parse {path}: not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise error(f"Failed to read {path}: {exc.strerror}") from None


def _parse(where: str, key: Key, value: object, problems: list[str], options: Collection[str] = ()) -> Any:
    """The validated value, or None with the problem appended."""
    try:
        return key.kind.parse(value, options)
    except Invalid as problem:
        text = str(problem)
        # A kind's own check (e.g. a never-allowed custom object) words its message itself.
        problems.append(f"{where}: {text}" if text.startswith(key.name) else f"{where}: {key.name}: {text}")
        return None


def _unknown(where: str, name: str, allowed: Sequence[str], label: str) -> str:
    return f"{where}: unknown key '{name}'{suggest(name, allowed)}; {label}: {', '.join(allowed)}"


def _policy_values(
    where: str, tables: Mapping[str, Any], problems: list[str], top_level: Collection[str]
) -> dict[str, Value]:
    """Flatten `[section] key = value` tables into validated "section.key" values."""
    sections = sorted({name.split(".")[0] for name in POLICY_KEYS})
    values: dict[str, Value] = {}
    for section, table in tables.items():
        if section not in sections:
            if isinstance(table, dict):
                problems.append(
                    f"{where}: unknown table [{section}]{suggest(section, sections)}; allowed tables: "
                    f"{', '.join(sections)}"
                )
            else:  # a key, not a table: suggest among both
                allowed = [*top_level, *sections]
                problems.append(_unknown(where, section, allowed, "allowed keys and tables"))
            continue
        if not isinstance(table, dict):
            problems.append(f"{where}: {section}: expected a table [{section}], got {table!r}")
            continue
        for key, value in table.items():
            name = f"{section}.{key}"
            if name not in POLICY_KEYS:
                allowed = sorted(k for k in POLICY_KEYS if k.startswith(section + "."))
                problems.append(
                    f"{where}: unknown key '{name}'{suggest(name, allowed)}; "
                    f"allowed keys in [{section}]: {', '.join(k.split('.', 1)[1] for k in allowed)}"
                )
                continue
            checked = _parse(where, POLICY_KEYS[name], value, problems)
            if checked is not None:
                values[name] = checked
    return values


def parse_policy(path: Path) -> Policy:
    """Validate one policy file; raise ConfigError listing every problem in it."""
    raw = _read_toml(path, ConfigError)
    problems: list[str] = []
    description = ""
    if "description" in raw:
        description = _parse(str(path), POLICY_TOP_LEVEL["description"], raw.pop("description"), problems) or ""
    values = _policy_values(str(path), raw, problems, top_level=list(POLICY_TOP_LEVEL))
    if problems:
        raise ConfigError("\n".join(problems))
    return Policy(name=path.stem, path=str(path), description=str(description), values=values)


def load_policies(directory: Path) -> dict[str, Policy]:
    """Every policies/*.toml by name; one ConfigError lists the problems of all files."""
    directory = shown(directory)
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such policies folder; pass --policies DIR or create it")
    policies: dict[str, Policy] = {}
    problems: list[str] = []
    for path in sorted(directory.glob("*.toml")):
        try:
            policies[path.stem] = parse_policy(path)
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
    if DEFAULT_POLICY not in policies:
        raise ConfigError(
            f"{directory}: no {DEFAULT_POLICY}.toml; every run needs a default policy for models whose gate.toml "
            "names none"
        )
    return policies


def parse_manifest(path: Path, policy_names: Collection[str]) -> Manifest:
    """Validate a model's gate.toml against the policies that exist; raise ModelError listing every problem."""
    if not path.exists():
        return Manifest(path="")
    raw = _read_toml(path, ModelError)
    problems: list[str] = []
    fields: dict[str, Any] = {}
    for name, value in raw.items():
        key = MANIFEST_KEYS.get(name)
        if key is None:
            problems.append(_unknown(str(path), name, list(MANIFEST_KEYS), "allowed keys"))
        elif (checked := _parse(str(path), key, value, problems, options=sorted(policy_names))) is not None:
            if name == "outputs":
                checked = _output_tasks(f"{path}: outputs", checked, problems)
            elif isinstance(key.kind, Tables):  # overrides: policy keys, validated as in a policy file
                checked = _policy_values(f"{path}: {name}", checked, problems, top_level=())
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
            problems.append(_unknown(f"{where}.{name}", key, ["task"], "allowed keys"))
        if "task" not in table:
            problems.append(f"{where}.{name}: no task; add task = one of {', '.join(_OUTPUT_TASKS)}")
        elif (task := _parse(f"{where}.{name}", _OUTPUT_TASK, table["task"], problems)) is not None:
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
