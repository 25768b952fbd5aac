"""Policies (`policies/*.toml`): every check and setting they may hold, and the files read and validated.

Described once, declaratively: `POLICY_KEYS` (every check of gate.policy.judge.CHECKS and every setting), each key
with its kind, default and meaning. Validation, the documentation's reference tables (gate.reporting.reference,
tested against these) and `gate validate` read them. Raw TOML becomes frozen dataclasses here, once; nothing later
touches a raw dict. Every problem in a file is gathered and reported together, each naming the file, the key, the
bad value and what is allowed. Unknown keys are errors: a gate must never ignore a misspelled threshold. A model's
gate.toml, and the model's configuration, are gate.policy.manifest's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.discover import shown
from gate.errors import ConfigError
from gate.keys import Choice, Flag, Key, Names, Number, Text, Value, suggest
from gate.policy.judge import CHECKS
from gate.policy.tomlfile import parse_value, read_toml, unknown_key
from gate.quantization.methods import SELECTABLE
from gate.quantization.settings import QAT_KEYS
from gate.targets import DEFAULT_TARGET, TARGET_NAMES

DEFAULT_POLICY = "default"

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


def policy_digest(values: Mapping[str, Value]) -> str:
    """sha256 of the effective policy's canonical JSON: equal policies, equal digests."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def policy_values(
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
                problems.append(unknown_key(where, section, allowed, "allowed keys and tables"))
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
            checked = parse_value(where, POLICY_KEYS[name], value, problems)
            if checked is not None:
                values[name] = checked
    return values


def parse_policy(path: Path) -> Policy:
    """Validate one policy file; raise ConfigError listing every problem in it."""
    raw = read_toml(path, ConfigError)
    problems: list[str] = []
    description = ""
    if "description" in raw:
        description = parse_value(str(path), POLICY_TOP_LEVEL["description"], raw.pop("description"), problems) or ""
    values = policy_values(str(path), raw, problems, top_level=list(POLICY_TOP_LEVEL))
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
