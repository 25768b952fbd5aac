"""Property-based tests: no policy, manifest or .npz file makes the gate crash with a traceback.

Whatever the input, parsing either succeeds or raises the one user-facing
error type (ConfigError for policies, ModelError for a model's files).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gate.errors import ConfigError, ModelError
from gate.frontends.base import InputSpec
from gate.frontends.data import load_dataset
from gate.policy.config import POLICY_KEYS, load_policies, parse_policy
from gate.policy.manifest import parse_manifest

# Slow: 150 drawn files a test, 20 s of the fast suite's time; `.ci/run` runs them on every change.
pytestmark = pytest.mark.slow

# Derandomized: every run draws the same examples, so a failure in CI is a failure on every machine.
SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Keys near the real ones reach the validator's deeper branches; random text covers the rest.
SECTIONS = sorted({name.split(".")[0] for name in POLICY_KEYS}) + ["overrides", "acuracy"]
KEYS = sorted({name.split(".")[1] for name in POLICY_KEYS}) + [
    "task",
    "policy",
    "method",
    "calibration_samples",
    "calibrate_on_eval",
    "override_reason",
    "allow_custom_objects",
    "description",
    "max_dorp",
]
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["int8", "uint8", "float32", "source", "classification", "regression", "default", "dynamic_range"]),
    st.text(max_size=20),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=5)
keys = st.one_of(st.sampled_from(KEYS), st.text(min_size=1, max_size=12))
tables = st.dictionaries(keys, values, max_size=5)
documents = st.dictionaries(
    st.one_of(st.sampled_from(SECTIONS + KEYS), st.text(min_size=1, max_size=12)),
    st.one_of(values, tables, st.dictionaries(st.sampled_from(SECTIONS), tables, max_size=3)),
    max_size=6,
)


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)  # int, str: JSON's escapes are valid TOML basic-string escapes


def toml(document: dict) -> str:
    return "".join(f"{json.dumps(key)} = {toml_value(value)}\n" for key, value in document.items())


@SETTINGS
@given(document=documents)
def test_any_policy_parses_or_gives_a_config_error(tmp_path: Path, document: dict) -> None:
    path = tmp_path / "default.toml"
    path.write_text(toml(document), encoding="utf-8")
    try:
        policy = parse_policy(path)
    except ConfigError as error:
        assert str(path) in str(error)
    else:
        assert all(name in POLICY_KEYS for name in policy.values)
    try:
        load_policies(tmp_path)
    except ConfigError:
        pass


@SETTINGS
@given(document=documents)
def test_any_manifest_parses_or_gives_a_model_error(tmp_path: Path, document: dict) -> None:
    path = tmp_path / "gate.toml"
    path.write_text(toml(document), encoding="utf-8")
    try:
        parse_manifest(path, ["default", "mcu"])
    except ModelError as error:
        assert str(path) in str(error)


@SETTINGS
@given(blob=st.binary(max_size=200))
def test_any_bytes_as_toml_give_a_clear_error(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "gate.toml"
    path.write_bytes(blob)
    try:
        parse_manifest(path, ["default"])
    except ModelError as error:
        assert str(path) in str(error)


SPEC = (InputSpec("image", (4, 3), "float32"),)
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)
arrays = st.one_of(
    hnp.arrays(dtype=hnp.scalar_dtypes(), shape=shapes),
    # object arrays: np.savez pickles them, and unpickling could run code
    hnp.arrays(dtype=object, shape=shapes, elements=st.one_of(st.integers(), st.text(max_size=5))),
)
npz_contents = st.dictionaries(st.sampled_from(["x", "y", "x.image", "x.other", "z"]), arrays, max_size=3)
# Inputs of every kind a model has (token ids are int32, images often uint8), with stored arrays of every
# numeric dtype: NaN, infinity, fractions and values outside the input's range are what a cast would change.
INPUT_DTYPES = ("float32", "int32", "uint8", "int8")
STORED_DTYPES = (np.float64, np.float32, np.int64, np.int32, np.uint8, np.int8)


def stored_values(dtype: type) -> st.SearchStrategy:
    if np.dtype(dtype).kind == "f":
        beyond_float32 = [1e39] if np.dtype(dtype) == np.float64 else []
        special = st.sampled_from([np.nan, np.inf, -np.inf, 3.7, -0.5, 255.0, 300.0, -129.0, *beyond_float32])
        return st.one_of(st.integers(-200, 300).map(float), special)
    info = np.iinfo(dtype)
    return st.integers(max(info.min, -200), min(info.max, 300))


@st.composite
def model_inputs(draw: st.DrawFn) -> tuple[tuple[InputSpec, ...], dict[str, np.ndarray]]:
    """One or two inputs of random dtypes, and an .npz holding an array of a random dtype for each."""
    count, samples = draw(st.integers(1, 2)), draw(st.integers(1, 4))
    specs = tuple(InputSpec(f"in{i}", (3,), draw(st.sampled_from(INPUT_DTYPES))) for i in range(count))
    contents = {}
    for spec in specs:
        dtype = draw(st.sampled_from(STORED_DTYPES))
        key = "x" if count == 1 else f"x.{spec.name}"
        contents[key] = draw(hnp.arrays(dtype, (samples, 3), elements=stored_values(dtype)))
    return specs, contents | {"y": np.zeros(samples, np.int64)}


def valid_features(samples: int) -> st.SearchStrategy:
    return hnp.arrays(np.float32, (samples, 4, 3), elements=st.floats(width=32, allow_nan=True, allow_infinity=True))


@SETTINGS
@given(
    contents=st.one_of(
        npz_contents,
        st.integers(0, 4).flatmap(
            lambda n: st.fixed_dictionaries(
                {"x": valid_features(n), "y": hnp.arrays(np.int64, (n,), elements=st.integers(-2, 12))}
            )
        ),
    ),
    task=st.sampled_from(["classification", "regression"]),
)
def test_any_npz_loads_or_gives_a_model_error(tmp_path: Path, contents: dict, task: str) -> None:
    path = tmp_path / "eval.npz"
    np.savez(path, **contents)  # object arrays are pickled here; the gate must refuse them
    try:
        data = load_dataset(path, model_folder=tmp_path, inputs=SPEC, task=task, output_width=10, need_labels=True)
    except ModelError as error:
        assert "eval.npz" in str(error)
    else:
        assert np.isfinite(data.inputs["image"]).all()
        assert data.inputs["image"].shape[1:] == (4, 3)
        if task == "classification":
            assert data.labels.min() >= 0 and data.labels.max() < 10


@SETTINGS
@given(drawn=model_inputs())
def test_loaded_inputs_hold_exactly_the_stored_values_or_are_refused(tmp_path: Path, drawn: tuple) -> None:
    """What the model is fed is what the file holds: a cast that changes a value is refused, not done."""
    specs, contents = drawn
    path = tmp_path / "eval.npz"
    np.savez(path, **contents)
    try:
        data = load_dataset(
            path, model_folder=tmp_path, inputs=specs, task="classification", output_width=10, need_labels=True
        )
    except ModelError as error:
        assert str(error).startswith(f"{path}: x")
        return
    for spec in specs:
        loaded, stored = data.inputs[spec.name], contents["x" if len(specs) == 1 else f"x.{spec.name}"]
        assert loaded.dtype == np.dtype(spec.dtype)
        assert np.isfinite(loaded.astype(np.float64)).all()
        if loaded.dtype.kind == "f":  # float64 → float32 rounds, as the model's own input layer would
            assert np.allclose(loaded, stored, rtol=1e-6, atol=0)
        else:
            assert np.array_equal(loaded.astype(np.float64), stored.astype(np.float64))


@SETTINGS
@given(blob=st.binary(max_size=300))
def test_any_bytes_as_npz_give_a_clear_error(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "eval.npz"
    path.write_bytes(blob)
    try:
        load_dataset(path, model_folder=tmp_path, inputs=SPEC, task="classification", output_width=10, need_labels=True)
    except ModelError as error:
        assert "eval.npz" in str(error)
