"""Policies (`policies/*.toml`) and model manifests (`models/<name>/gate.toml`).

Raw TOML becomes frozen dataclasses here, once; nothing later touches a raw
dict. Every problem in a file is gathered and reported together, each naming
the file, the key, the bad value and what is allowed. Unknown keys are errors:
a gate must never ignore a misspelled threshold.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.errors import ConfigError, ModelError
from gate.inspection import never_allowed_problem
from gate.judge import POLICY_KEYS, SETTINGS, Choice, Flag, Number, PolicyValue

DEFAULT_POLICY = "default"
TASKS = ("classification", "regression")
METHODS = ("int8", "dynamic_range", "float16")


@dataclass(frozen=True)
class Policy:
    """A validated policy file: `values` maps "section.key" to its value."""

    name: str
    path: str
    description: str
    values: Mapping[str, PolicyValue]


@dataclass(frozen=True)
class Manifest:
    """A validated `gate.toml` (or the defaults when a model folder has none)."""

    path: str  # "" when the folder has no gate.toml
    task: str = "classification"
    policy: str = DEFAULT_POLICY
    method: str = "int8"
    calibration_samples: int = 200
    calibrate_on_eval: bool = False
    overrides: Mapping[str, PolicyValue] = field(default_factory=dict)
    override_reason: str = ""
    allow_custom_objects: tuple[str, ...] = ()


def effective_policy(policy: Policy, manifest: Manifest) -> dict[str, PolicyValue]:
    """The policy a model is judged by: defaults, then the policy file, then the manifest's overrides."""
    values: dict[str, PolicyValue] = {name: s.default for name, s in SETTINGS.items()}
    values.update(policy.values)
    values.update(manifest.overrides)
    return dict(sorted(values.items()))


def policy_digest(values: Mapping[str, PolicyValue]) -> str:
    """sha256 of the effective policy's canonical JSON: equal policies, equal digests."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def _suggest(word: str, options: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _read_toml(path: Path, error: type[Exception]) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise error(f"Failed to parse {path}: {exc}; fix the TOML syntax") from None
    except UnicodeDecodeError:
        raise error(f"Failed to parse {path}: not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise error(f"Failed to read {path}: {exc.strerror}") from None


def _check_value(where: str, key: str, value: Any) -> tuple[PolicyValue | None, str | None]:
    """Validate one policy value against the registry: (value, None) or (None, problem)."""
    kind = POLICY_KEYS[key].kind
    if isinstance(kind, Flag):
        if isinstance(value, bool):
            return value, None
        return None, f"{where}: {key}: expected true or false, got {value!r}"
    if isinstance(kind, Choice):
        if isinstance(value, str) and value in kind.options:
            return value, None
        hint = _suggest(value, kind.options) if isinstance(value, str) else ""
        return None, f"{where}: {key}: expected {kind.describe()}, got {value!r}{hint}"
    assert isinstance(kind, Number)
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or (kind.integer and not isinstance(value, int)) or value != value:  # noqa: PLR0124 (NaN)
        return None, f"{where}: {key}: expected {kind.describe()}, got {value!r}"
    if not kind.minimum <= value <= kind.maximum:
        return None, f"{where}: {key}: expected {kind.describe()}, got {value!r}"
    return value, None


def _policy_values(where: str, tables: Mapping[str, Any], problems: list[str]) -> dict[str, PolicyValue]:
    """Flatten `[section] key = value` tables into validated "section.key" values."""
    sections = sorted({name.split(".")[0] for name in POLICY_KEYS})
    values: dict[str, PolicyValue] = {}
    for section, table in tables.items():
        if section not in sections:
            problems.append(
                f"{where}: unknown table [{section}]{_suggest(section, sections)}; "
                f"allowed tables: {', '.join(sections)}"
            )
            continue
        if not isinstance(table, dict):
            problems.append(f"{where}: {section}: expected a table [{section}], got {table!r}")
            continue
        for key, value in table.items():
            name = f"{section}.{key}"
            if name not in POLICY_KEYS:
                allowed = sorted(k for k in POLICY_KEYS if k.startswith(section + "."))
                problems.append(
                    f"{where}: unknown key '{name}'{_suggest(name, allowed)}; "
                    f"allowed keys in [{section}]: {', '.join(k.split('.', 1)[1] for k in allowed)}"
                )
                continue
            checked, problem = _check_value(where, name, value)
            if problem:
                problems.append(problem)
            else:
                values[name] = checked  # type: ignore[assignment]
    return values


def parse_policy(path: Path) -> Policy:
    """Validate one policy file; raise ConfigError listing every problem in it."""
    raw = _read_toml(path, ConfigError)
    problems: list[str] = []
    description = raw.pop("description", "")
    if not isinstance(description, str):
        problems.append(f"{path}: description: expected a string, got {description!r}")
    values = _policy_values(str(path), raw, problems)
    if problems:
        raise ConfigError("\n".join(problems))
    return Policy(name=path.stem, path=str(path), description=str(description), values=values)


def load_policies(directory: Path) -> dict[str, Policy]:
    """Every policy in `directory`, validated; one ConfigError lists the problems of all files."""
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
            f"{directory}: no {DEFAULT_POLICY}.toml; every run needs a default policy for models whose gate.toml names none"
        )
    return policies


_MANIFEST_KEYS = (
    "task",
    "policy",
    "method",
    "calibration_samples",
    "calibrate_on_eval",
    "overrides",
    "override_reason",
    "allow_custom_objects",
)


def parse_manifest(path: Path, policy_names: Collection[str]) -> Manifest:
    """Validate a model's gate.toml against the policies that exist; raise ModelError listing every problem."""
    if not path.exists():
        return Manifest(path="")
    raw = _read_toml(path, ModelError)
    problems: list[str] = []
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _MANIFEST_KEYS:
            problems.append(
                f"{path}: unknown key '{key}'{_suggest(key, _MANIFEST_KEYS)}; allowed keys: {', '.join(_MANIFEST_KEYS)}"
            )
            continue
        problem = _manifest_field(path, key, value, policy_names, fields, problems)
        if problem:
            problems.append(problem)
    if fields.get("overrides") and not fields.get("override_reason"):
        problems.append(
            f"{path}: overrides need override_reason = \"...\" saying why this model may not meet the policy; "
            "the report shows it beside the overrides"
        )
    if problems:
        raise ModelError("\n".join(problems))
    return Manifest(path=str(path), **fields)


def _manifest_field(
    path: Path,
    key: str,
    value: Any,
    policy_names: Collection[str],
    fields: dict[str, Any],
    problems: list[str],
) -> str | None:
    """Validate one manifest key into `fields`; return a problem or None."""
    if key in ("task", "method", "policy"):
        options = {"task": TASKS, "method": METHODS, "policy": tuple(sorted(policy_names))}[key]
        if not isinstance(value, str) or value not in options:
            hint = _suggest(value, options) if isinstance(value, str) else ""
            return f"{path}: {key}: expected one of {', '.join(options)}, got {value!r}{hint}"
    elif key == "calibration_samples":
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100_000:
            return f"{path}: calibration_samples: expected a whole number from 1 to 100000, got {value!r}"
    elif key == "calibrate_on_eval":
        if not isinstance(value, bool):
            return f"{path}: calibrate_on_eval: expected true or false, got {value!r}"
    elif key == "override_reason":
        if not isinstance(value, str) or not value.strip():
            return f"{path}: override_reason: expected a non-empty string, got {value!r}"
    elif key == "allow_custom_objects":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            return f"{path}: allow_custom_objects: expected a list of class names such as [\"my_pkg>MyLayer\"], got {value!r}"
        if never := [problem for entry in value if (problem := never_allowed_problem(entry))]:
            return f"{path}: {never[0]}"
        value = tuple(value)
    elif key == "overrides":
        if not isinstance(value, dict):
            return f"{path}: overrides: expected a table such as [overrides.accuracy], got {value!r}"
        value = _policy_values(f"{path}: overrides", value, problems)
    fields[key] = value
    return None
