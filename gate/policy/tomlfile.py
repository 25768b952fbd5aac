"""Reading a policy or gate.toml file, and the messages its keys' problems are said in (config and manifest)."""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from gate.errors import GateError
from gate.keys import Invalid, Key, suggest

MAX_TOML_BYTES = 1024 * 1024


def read_toml(path: Path, error: type[GateError]) -> dict[str, Any]:
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


def parse_value(where: str, key: Key, value: object, problems: list[str], options: Collection[str] = ()) -> Any:
    """The validated value, or None with the problem appended."""
    try:
        return key.kind.parse(value, options)
    except Invalid as problem:
        text = str(problem)
        # A kind's own check (e.g. a never-allowed custom object) words its message itself.
        problems.append(f"{where}: {text}" if text.startswith(key.name) else f"{where}: {key.name}: {text}")
        return None


def unknown_key(where: str, name: str, allowed: Sequence[str], label: str) -> str:
    return f"{where}: unknown key '{name}'{suggest(name, allowed)}; {label}: {', '.join(allowed)}"
