"""How to load results written elsewhere (shards, cache entries): msgspec, pydantic or jsonschema.

Builds a report of 200 models (each with 360 per-sample scores, as the bundled
models have) and times loading it into the result types, then checks what each
refuses: a wrong type, a bad enum value, a missing field, an unknown field, and
a number given as a string.

    python bench/validated_loading.py
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import json
import sys
import time
import types
import typing
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from factories import model_result  # noqa: E402

from gate.encoding import load_result
from gate.reporting.report import dumps, report_json, report_schema  # noqa: E402
from gate.results import ModelResult

MODELS = 200


# What gate used before validated loading: builds the result types from JSON, trusting its shape.
def from_jsonable(annotation: Any, data: Any) -> Any:
    """Rebuild a value of type `annotation` from its JSON form, guided by the type hints."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        # JSON keeps None, bool, int, float and str apart by itself; only a
        # dataclass member of the union needs rebuilding.
        for option in typing.get_args(annotation):
            if dataclasses.is_dataclass(option) and isinstance(data, dict):
                return from_jsonable(option, data)
        return data
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(annotation)
        return tuple(from_jsonable(item_type, v) for v in data)
    if origin is dict:
        _key_type, value_type = typing.get_args(annotation)
        return {k: from_jsonable(value_type, v) for k, v in data.items()}
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        hints = typing.get_type_hints(annotation)
        return annotation(
            **{f.name: from_jsonable(hints[f.name], data[f.name]) for f in dataclasses.fields(annotation)}
        )
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation(data)
    return data


def loaders() -> dict:
    import jsonschema
    import msgspec
    from pydantic import TypeAdapter

    adapter = TypeAdapter(ModelResult)
    schema = report_schema()
    validator = jsonschema.Draft202012Validator(schema)

    def with_schema(document: dict) -> list:
        validator.validate(document)
        return [from_jsonable(ModelResult, m) for m in document["models"]]

    return {
        "msgspec.convert": lambda d: [msgspec.convert(m, type=ModelResult) for m in d["models"]],
        "gate: msgspec + round trip": lambda d: [load_result(ModelResult, m) for m in d["models"]],
        "pydantic TypeAdapter": lambda d: [adapter.validate_python(m) for m in d["models"]],
        "jsonschema + from_jsonable": with_schema,
    }


def document() -> dict:
    results = []
    for index in range(MODELS):
        result = model_result(f"model_{index}")
        scores = tuple(float(i % 10 != 0) for i in range(360))
        evaluation = dataclasses.replace(result.float_evaluation, samples=360, per_sample=scores)
        results.append(dataclasses.replace(result, float_evaluation=evaluation))
    return json.loads(dumps(report_json(results)))


def tampered(base: dict) -> dict[str, dict]:
    cases = {}
    for name, change in {
        "wrong type": lambda m: m.update(source_bytes="80000"),
        "bad enum": lambda m: m["candidates"][0].update(status="MAYBE"),
        "missing field": lambda m: m.pop("task"),
        "unknown field": lambda m: m.update(injected=True),
        "nested wrong type": lambda m: m["float_evaluation"].update(value="96.0"),
    }.items():
        doc = copy.deepcopy(base)
        doc["models"] = doc["models"][:1]
        change(doc["models"][0])
        cases[name] = doc
    return cases


def main() -> int:
    base = document()
    print(f"{'loader':<28} {'200 models':>11}  refuses: " + ", ".join(tampered(base)))
    for name, load in loaders().items():
        start = time.perf_counter()
        loaded = load(base)
        seconds = time.perf_counter() - start
        assert loaded[0] == load_result(ModelResult, base["models"][0])
        refused = []
        for case, doc in tampered(base).items():
            try:
                load(doc)
                refused.append("no")
            except Exception as exc:  # whatever each library raises
                refused.append(f"yes ({str(exc).splitlines()[0][:60]})" if case == "bad enum" else "yes")
        print(f"{name:<28} {seconds * 1000:>8.0f} ms  " + ", ".join(refused))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
