"""The candidate search: what it skips, what it keeps, and the causes it names, on real tiny models."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from factories import candidate
from helpers import TEST_POLICIES, digits, run_gate, write_data

from gate.gating.search import NO_BETTER_THAN, Hopeless, cannot_pass, closest, skipped
from gate.policy.judge import hard_requirement_problem
from gate.quantization.methods import search_order
from gate.results import Status

pytestmark = pytest.mark.slow  # end-to-end: real TensorFlow conversions or gate runs


def test_auto_tries_every_method_in_registry_order_or_the_ones_the_policy_allows() -> None:
    assert search_order("auto") == (
        "int8",
        "int8-all-calibration",
        "qat-int8",
        "int8-float-fallback",
        "int8-int16-layers",
        "int16x8",
        "dynamic_range",
        "float16",
    )
    assert search_order("auto", ("float16", "int8")) == ("int8", "float16")
    assert search_order("float16", ("int8",)) == ("float16",)  # a method gate.toml names is tried as it is


@pytest.mark.parametrize(
    ("policy", "float_io", "float_ops", "integer_inputs", "reason"),
    [
        (
            {"io.input_dtype": "int8"},
            True,
            True,
            False,
            "its model input is float32, and the policy requires io.input_dtype = int8",
        ),
        (
            {"io.input_dtype": "int8", "io.output_dtype": "int8"},
            True,
            True,
            True,
            "its model output is float32, and the policy requires io.output_dtype = int8",
        ),
        (
            {"io.input_dtype": "float32", "ops.integer_only": True},
            False,
            True,
            False,
            "it keeps ops on float tensors, and the policy requires ops.integer_only = true",
        ),
        (
            {"io.output_dtype": "int8"},
            True,
            False,
            False,
            "its model output is float32, and the policy requires io.output_dtype = int8",
        ),
        ({"io.input_dtype": "float32"}, True, True, False, ""),
        ({"ops.integer_only": True}, False, False, False, ""),
    ],
)
def test_a_candidate_that_cannot_meet_a_hard_requirement_is_skipped_untried(
    policy, float_io, float_ops, integer_inputs, reason
) -> None:
    assert (
        hard_requirement_problem(policy, float_io=float_io, float_ops=float_ops, integer_inputs=integer_inputs)
        == reason
    )


def test_the_first_passing_candidate_is_published_else_the_closest() -> None:
    fails_twice = candidate(accuracy=80.0, size_bytes=30_000)  # accuracy and size fail
    fails_once = candidate(accuracy=90.0)  # accuracy fails, by less
    passes = candidate(accuracy=95.5)
    assert closest([skipped("int8", "not tried"), fails_twice, passes, fails_once]) == 2
    assert closest([fails_twice, fails_once, skipped("float16", "not tried")]) == 1
    worse_drop = candidate(accuracy=85.0)
    assert closest([worse_drop, fails_once]) == 1  # same number of failed checks: the smaller loss
    assert closest([skipped("int8", "x"), dataclasses.replace(fails_once, conversion=None, status=Status.ERROR)]) == -1


def test_a_method_is_not_tried_when_an_earlier_one_failed_a_check_it_never_does_better_on() -> None:
    too_big = candidate(size_bytes=25_000)  # 3.2× smaller than the source: size fails, accuracy passes
    (size,) = [check for check in too_big.checks if check.status is Status.FAIL]
    assert cannot_pass("int16x8", [too_big]) == Hopeless(size, "int8")  # 16x8 is never smaller than int8
    assert cannot_pass("dynamic_range", [too_big]) is None  # it can come out a few bytes smaller
    inaccurate = candidate(accuracy=90.0)
    assert cannot_pass("int8-float-fallback", [inaccurate]) is None  # it can move the metric
    # A target adds its own: on an integer-only MCU, say, the float fallback cannot help what int8 failed.
    mcu = {**NO_BETTER_THAN, "int8-float-fallback": {"accuracy.max_drop": "int8"}}
    assert cannot_pass("int8-float-fallback", [inaccurate], mcu).earlier == "int8"


# ---------------------------------------------------------------- real models


def raw_units_mlp(folder: Path) -> None:
    """A breast-cancer MLP fed raw physical units, normalizing them inside itself (a Normalization layer)."""
    import keras
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    x_train, x_eval, y_train, y_eval = train_test_split(
        data.data.astype(np.float32), data.target, test_size=0.2, stratify=data.target, random_state=0
    )
    keras.utils.set_random_seed(0)
    normalize = keras.layers.Normalization(name="normalize")
    normalize.adapt(x_train)
    model = keras.Sequential(
        [
            keras.Input((30,), name="features"),
            normalize,
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=60, batch_size=32, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    np.savez(folder / "train.npz", x=x_train, y=y_train)
    np.savez(folder / "eval.npz", x=x_eval, y=y_eval)


def token_classifier(folder: Path) -> None:
    """A classifier of int32 token ids: does token 7 occur in the sequence?"""
    import keras

    rng = np.random.default_rng(0)
    x = rng.integers(0, 50, size=(1200, 12)).astype(np.int32)
    y = (x == 7).any(axis=1).astype(np.int64)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((12,), dtype="int32", name="ids"),
            keras.layers.Embedding(50, 8),
            keras.layers.GlobalMaxPooling1D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:1000], y[:1000], epochs=20, batch_size=32, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    np.savez(folder / "train.npz", x=x[:1000], y=y[:1000])
    np.savez(folder / "eval.npz", x=x[1000:], y=y[1000:])


def weights_only_mlp(folder: Path) -> None:
    """A 64-512-512-10 digits MLP saved without its optimizer state: its .keras file is its float32 weights."""
    import keras

    x_train, y_train, x_eval, y_eval = digits()
    keras.utils.set_random_seed(0)
    layers = [keras.layers.Dense(512, activation="relu"), keras.layers.Dense(512, activation="relu")]
    model = keras.Sequential([keras.Input((64,), name="pixels"), *layers, keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=10, batch_size=64, verbose=0)
    weights_only = keras.Sequential.from_config(model.get_config())  # uncompiled: saved with no optimizer
    weights_only.set_weights(model.get_weights())
    folder.mkdir(parents=True)
    weights_only.save(folder / "model.keras")
    write_data(folder, x_train, y_train, x_eval, y_eval)


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    (root / "policies").mkdir()
    for name, text in TEST_POLICIES.items():
        (root / "policies" / f"{name}.toml").write_text(text)
    raw_units_mlp(root / "models" / "raw_units")
    shutil.copytree(root / "models" / "raw_units", root / "models" / "raw_units_float_io")
    (root / "models" / "raw_units_float_io" / "gate.toml").write_text(
        'policy = "float_io"\noverride_reason = "keep the test short"\n'
        '[overrides.search]\ncandidates = ["int8", "int8-float-fallback", "dynamic_range"]\n'
    )
    shutil.copytree(root / "models" / "raw_units", root / "models" / "raw_units_one_float_layer")
    (root / "models" / "raw_units_one_float_layer" / "gate.toml").write_text(
        'policy = "float_io"\noverride_reason = "keep the test short"\n'
        '[overrides.search]\ncandidates = ["int8-float-fallback"]\nmax_float_layers = 1\n'
    )
    (root / "models" / "raw_units" / "gate.toml").write_text(
        'override_reason = "keep the test short"\n[overrides.search]\ncandidates = ["int8", "int16x8"]\n'
    )
    token_classifier(root / "models" / "tokens")
    (root / "models" / "tokens" / "gate.toml").write_text('method = "int8"\n')
    weights_only_mlp(root / "models" / "weights_only")  # the default policy: at least 4× smaller than the source
    shutil.copytree(root / "models" / "tokens", root / "models" / "tokens_nan")
    with np.load(root / "models" / "tokens" / "eval.npz") as data:
        x, y = data["x"].astype(np.float64), data["y"]
    x[3, 5] = np.nan  # a missing token id, as pandas stores one
    np.savez(root / "models" / "tokens_nan" / "eval.npz", x=x, y=y)
    return run_gate("check", "--no-cache", cwd=root)


def test_raw_unit_inputs_are_named_as_the_cause_under_an_int8_input_policy(search_run) -> None:
    model = search_run.model("raw_units")
    assert model["status"] == "FAIL"
    int8 = model["candidates"][0]
    assert int8["method"] == "int8" and -int8["metric_change"] > 2
    (finding,) = model["findings"]
    assert finding["kind"] == "input_range"
    assert finding["title"] == "The input 'features' cannot be represented in int8"
    assert "normalize the features" in finding["detail"] and 'io.input_dtype = "float32"' in finding["detail"]
    assert "> [!IMPORTANT]\n> **raw_units: The input 'features' cannot be represented in int8.**" in search_run.markdown


def test_under_a_float_input_policy_auto_recovers_the_raw_unit_model(search_run) -> None:
    model = search_run.model("raw_units_float_io")
    assert model["status"] == "PASS", model["choice"]
    assert model["candidates"][0]["status"] == "FAIL"  # plain int8 (float I/O) still collapses the input
    assert model["candidates"][model["chosen"]]["method"] == "int8-float-fallback"
    assert model["choice"].endswith("the search stops at the first pass, so dynamic_range was not tried)")


def test_search_max_float_layers_bounds_the_layers_kept_in_float(search_run) -> None:
    (fallback,) = search_run.model("raw_units_one_float_layer")["candidates"]
    assert fallback["notes"][1].startswith("1 of 5 layers")  # the same model passes with 2 (above)
    passing = search_run.model("raw_units_float_io")
    assert passing["candidates"][passing["chosen"]]["notes"][1].startswith("2 of 5 layers")


def test_an_integer_token_input_is_not_failed_by_the_int8_input_check(search_run) -> None:
    model = search_run.model("tokens")
    (check,) = [c for c in model["candidates"][0]["checks"] if c["name"] == "io.input_dtype"]
    assert check["status"] == "SKIP"
    assert check["message"] == (
        "every input is an integer tensor in the float model (int32), which quantization leaves as it is"
    )


def test_nan_among_token_ids_is_the_models_error_naming_the_file(search_run) -> None:
    # Cast to int32 before the check, the NaN became -2147483648: "internal error in gate (... Embedding.call())".
    assert search_run.model("tokens_nan")["error"] == (
        f"{Path('models/tokens_nan/eval.npz')}: x contains NaN or infinite values; remove or impute them"
    )


def test_every_drop_is_printed_with_its_interval(search_run) -> None:
    for model in search_run.report["models"]:
        for tried in model["candidates"]:
            if tried["conversion"]:
                interval = tried["metric_change_interval"]
                assert interval["low"] <= tried["metric_change"] <= interval["high"]
                assert interval["confidence"] == 0.95 and interval["method"] in ("BCa", "percentile")
    assert "95% CI" in search_run.markdown.splitlines()[4]


# ---------------------------------------------------------------- a file LiteRT refuses


def refused_by_litert(tflite: bytes) -> bytes:
    """`tflite` with its depthwise convolution's output scale set so small that LiteRT cannot prepare the op.

    The fused ReLU6 bound, 6 / scale, no longer fits an int32: the same "no_integer_overflow_from_quantization"
    failure an int16x8 MobileNetV2 at 96x96 met in LiteRT, made here by editing the flatbuffer.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(tflite, 0)
    graph = model.subgraphs[0]
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.DEPTHWISE_CONV_2D:
            graph.tensors[op.outputs[0]].quantization.scale = [1e-30]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_a_file_litert_refuses_to_prepare_is_that_candidates_error_and_the_search_goes_on(
    tmp_path, monkeypatch
) -> None:
    import keras

    from gate.gating.pipeline import gate_model
    from gate.policy.manifest import configure
    from gate.quantization.base import Built
    from gate.quantization.methods import METHODS
    from gate.reporting.markdown import render_markdown
    from gate.scheduling.run import job_for

    x_train, y_train, x_eval, y_eval = digits("rows")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x_train[..., None], y_train, epochs=5, verbose=0)
    folder = tmp_path / "models" / "depthwise"
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    write_data(folder, x_train[..., None], y_train, x_eval[..., None], y_eval)
    (folder / "gate.toml").write_text(
        'policy = "float_io"\noverride_reason = "keep the test short"\n'
        '[overrides.search]\ncandidates = ["int16x8", "dynamic_range"]\n'
    )
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "default.toml").write_text(TEST_POLICIES["default"])
    (tmp_path / "policies" / "float_io.toml").write_text(TEST_POLICIES["float_io"])
    int16x8 = METHODS["int16x8"]

    def build(saved_model_dir: Path, setup) -> Built:
        built = int16x8.build(saved_model_dir, setup)  # the real 16x8 conversion, then its scale broken
        return dataclasses.replace(built, tflite=refused_by_litert(built.tflite))

    monkeypatch.setitem(METHODS, "int16x8", dataclasses.replace(int16x8, build=build))
    (configured,) = configure([folder], policies_dir=tmp_path / "policies").models
    result = gate_model(job_for(configured, tmp_path / "out", tmp_path))

    refused, fallback = result.candidates
    assert refused.status is Status.ERROR
    assert refused.reason == (
        "LiteRT could not load and prepare depthwise.int16x8.tflite: tflite/kernels/kernel_util.cc:349 "
        "no_integer_overflow_from_quantization was not true.Node number 1 (DEPTHWISE_CONV_2D) failed to prepare."
    )
    assert list(refused.step_seconds) == ["conversion", "evaluation"]  # what its time went to, up to the failure
    assert (fallback.method, fallback.conversion is not None) == ("dynamic_range", True)
    assert result.status is Status.PASS and result.chosen == 1
    assert list(fallback.step_seconds) == ["conversion", "evaluation"]  # the float_io policy times no latency
    markdown = render_markdown([result])
    refused_row = "| `int16x8` | — | — | — | — | — | ⚠️ ERROR: LiteRT could not load and prepare depthwise.int16x8."
    assert refused_row in markdown
    steps = fallback.step_seconds
    assert f"<br>conversion {steps['conversion']:.1f} s, evaluation {steps['evaluation']:.1f} s |" in markdown


def test_when_no_candidate_left_can_pass_what_int8_failed_none_is_tried(search_run) -> None:
    """int8 fails only on size; nothing after it is smaller than int8, so the search stops there and says so."""
    model = search_run.model("weights_only")
    (int8,) = model["candidates"]  # not int8-all-calibration, qat-int8, int8-float-fallback or int16x8
    assert [check["name"] for check in int8["checks"] if check["status"] == "FAIL"] == ["size.min_reduction"]
    assert model["choice"] == (
        "no candidate passes; int8 is the closest (fewest failed checks, 1, then the smallest metric loss) and is "
        "kept so you can see how far off it is; size.min_reduction failed at 3.69×; no later candidate is smaller "
        "than int8, so none was tried"
    )
    assert int8["reason"].startswith(
        "size.min_reduction: 3.69× smaller than the source model file (need ≥ 4×): int8 weights are a quarter of "
        "float32 ones"
    )
