"""The kinds of value a configuration key can take, and what a key is.

Policies and manifests are both described as tables of `Key`s (see
gate.policy.config): each key's kind validates a raw TOML value and describes what it
allows, so the validator, the docs' reference tables and `gate validate`
read the same words. `plain` and `duration` write numbers as those words and
the reports do.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection
from dataclasses import dataclass

Value = float | int | str | bool | tuple[str, ...]


class Invalid(ValueError):
    """A raw value does not fit its kind; str() is what follows "key: " in the message."""


def suggest(word: object, options: Collection[str]) -> str:
    """' (did you mean 'x'?)' for the closest option, or ''."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def plain(number: float) -> str:
    """2.0 -> "2", 1048576 -> "1048576", 0.0001 -> "0.0001": as a person would write it in TOML."""
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def duration(milliseconds: float) -> str:
    """A latency in the unit that suits it: 0.84 µs, 41 µs, 3.2 ms, 1.5 s (two significant digits below 10)."""
    for unit, scale in (("µs", 1e-3), ("ms", 1.0), ("s", 1e3)):
        value = milliseconds / scale
        text = f"{value:.0f}" if abs(value) >= 9.95 else f"{value:.2g}"
        if abs(float(text)) < 1000 or unit == "s":  # 999.6 µs is "1 ms", not "1000 µs"
            return f"{text} {unit}"
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Number:
    """A number in [minimum, maximum]; `integer` allows whole numbers only."""

    minimum: float
    maximum: float
    integer: bool = False

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        return f"{kind} from {plain(self.minimum)} to {plain(self.maximum)}"

    def parse(self, value: object, options: Collection[str] = ()) -> Value:
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if (
            not is_number
            or (self.integer and not isinstance(value, int))
            or value != value  # NaN
            or not self.minimum <= value <= self.maximum  # type: ignore[operator]  # a number: is_number
        ):
            raise Invalid(f"expected {self.describe()}, got {value!r}")
        return value  # type: ignore[return-value]


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of strings; with `options_from`, the set is known only when validating."""

    options: tuple[str, ...] = ()
    options_from: str = ""  # e.g. "the policy files in policies/", for the README

    def describe(self) -> str:
        return self.options_from or "one of " + ", ".join(self.options)

    def parse(self, value: object, options: Collection[str] = ()) -> Value:
        allowed = tuple(options) if self.options_from else self.options
        if isinstance(value, str) and value in allowed:
            return value
        raise Invalid(f"expected one of {', '.join(allowed)}, got {value!r}{suggest(value, allowed)}")


@dataclass(frozen=True)
class Flag:
    def describe(self) -> str:
        return "true or false"

    def parse(self, value: object, options: Collection[str] = ()) -> Value:
        if isinstance(value, bool):
            return value
        raise Invalid(f"expected true or false, got {value!r}")


@dataclass(frozen=True)
class Text:
    """A string; `required` refuses an empty or blank one."""

    required: bool = False

    def describe(self) -> str:
        return "a non-empty string" if self.required else "a string"

    def parse(self, value: object, options: Collection[str] = ()) -> Value:
        if not isinstance(value, str) or (self.required and not value.strip()):
            raise Invalid(f"expected {self.describe()}, got {value!r}")
        return value


@dataclass(frozen=True)
class Names:
    """A list of strings; `entries` lists allowed ones (empty: any non-empty string), `check` refuses one by name."""

    example: str = ""
    noun: str = "names"
    entries: tuple[str, ...] = ()
    check: Callable[[str], str | None] | None = None  # a problem with one entry, or None

    def describe(self) -> str:
        if self.entries:
            return "a list of " + ", ".join(self.entries)
        return f"a list of {self.noun} such as {self.example}"

    def parse(self, value: object, options: Collection[str] = ()) -> Value:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise Invalid(f"expected {self.describe()}, got {value!r}")
        for entry in value:
            if self.entries and entry not in self.entries:
                raise Invalid(f"{entry!r} is not one of {', '.join(self.entries)}{suggest(entry, self.entries)}")
            if self.check and (problem := self.check(entry)):
                raise Invalid(problem)
        return tuple(value)


@dataclass(frozen=True)
class Tables:
    """TOML tables of other keys, such as a manifest's `[overrides.size]`; their keys are validated by the caller."""

    example: str
    of: str = "policy keys"

    def describe(self) -> str:
        return f"tables of {self.of}, such as `{self.example}`"

    def parse(self, value: object, options: Collection[str] = ()) -> dict:
        if not isinstance(value, dict):
            raise Invalid(f"expected a table such as {self.example}, got {value!r}")
        return value


Kind = Number | Choice | Flag | Text | Names | Tables


@dataclass(frozen=True)
class Key:
    """One configuration key: its kind, its default (None: unset) and what it means."""

    name: str
    kind: Kind
    default: Value | None
    description: str
    role: str = "setting"  # "check" (a threshold that judges), "setting", or "manifest"

    def default_text(self) -> str:
        if self.default is None:
            return "not checked" if self.role == "check" else "none"
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        if isinstance(self.default, tuple):
            return "`[" + ", ".join(f'"{v}"' for v in self.default) + "]`" if self.default else "`[]`"
        if isinstance(self.default, str):
            return f'`"{self.default}"`' if self.role == "manifest" or not self.default else f"`{self.default}`"
        return f"`{self.default}`"
