"""Results as JSON and back: the one encoding gate writes, and validation of what it reads.

`load_result` turns parsed JSON written elsewhere (a shard, a cache entry) into gate's frozen result types
or refuses it naming the field; `to_jsonable` and `dumps` are the way back.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from typing import Any


class InvalidResult(ValueError):
    """Data read back from disk is not a valid result; str() names the field."""


def load_result(annotation: Any, data: Any) -> Any:
    """Validate `data` (parsed JSON written elsewhere: a shard, a cache entry) into `annotation`'s type.

    msgspec checks every field's type, every enum value and every required
    field, and names the field that is wrong (`$.candidates[0].status`). It
    ignores fields it does not know, so the value must also encode back to
    exactly what was read: an unknown or altered field is refused by its path.
    Chosen over pydantic and jsonschema by bench/validated_loading.py (see docs/cache-and-loading.md).
    """
    import msgspec

    try:
        value = msgspec.convert(data, type=annotation, strict=True)
    except msgspec.ValidationError as exc:
        raise InvalidResult(str(exc)) from None
    if difference := _difference(to_jsonable(value), data, "$"):
        raise InvalidResult(difference)
    return value


def _difference(expected: Any, actual: Any, path: str) -> str:
    """Where `actual` (as read) differs from `expected` (as the types encode it), or ""."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if unknown := sorted(set(actual) - set(expected), key=str):
            return f"Object has an unknown field `{unknown[0]}` - at `{path}`"
        # Fields left out were defaulted by msgspec, or it would have refused them as missing.
        return next((d for k in actual if (d := _difference(expected[k], actual[k], f"{path}.{k}"))), "")
    if isinstance(expected, list) and isinstance(actual, list):
        return next(
            (
                d
                for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                if (d := _difference(e, a, f"{path}[{i}]"))
            ),
            "",
        )
    return "" if expected == actual else f"Expected `{expected!r}` as encoded, got `{actual!r}` - at `{path}`"


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def non_finite_fields(value: Any, where: str = "") -> list[str]:
    """The paths of every NaN or infinite float in a result, e.g. ["candidates[0].metric_change"]."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [where or "value"]
    if dataclasses.is_dataclass(value):
        items = [(f".{f.name}" if where else f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
    elif isinstance(value, tuple | list):
        items = [(f"[{i}]", v) for i, v in enumerate(value)]
    elif isinstance(value, dict):
        items = [(f"[{k!r}]", v) for k, v in value.items()]
    else:
        return []
    return [path for suffix, item in items for path in non_finite_fields(item, where + suffix)]


def dumps(data: Any) -> str:
    """The one JSON encoding gate writes: sorted keys, so equal results give equal bytes."""
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"
