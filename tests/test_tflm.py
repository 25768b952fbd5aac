"""The tflm target, against the pinned tflite-micro build itself, and the MAC count every target reports.

One `gate check` run gates tiny real models under a microcontroller policy; the figures its report gives
are then measured again with TFLM's own interpreter on the published files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, keras3_mlp, run_gate

from gate.policy.checks import Context
from gate.policy.judge import CHECKS
from gate.results import Status
from gate.targets import graph, tflm, tflm_ops

MCU = (REPO / "policies" / "mcu.toml").read_text()
TIGHT = MCU.replace("max_arena_kib = 64", "max_arena_kib = 1")


def digits_model(folder: Path, layers: list, manifest: str) -> Path:
    """A Keras 3 model of `layers` on the 64 digit pixels, trained briefly, saved with its data and `manifest`."""
    import keras
    from helpers import digits, write_data

    x_train, y_train, x_eval, y_eval = digits()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,), name="pixels"), *layers, keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=5, batch_size=64, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    write_data(folder, x_train, y_train, x_eval, y_eval)
    (folder / "gate.toml").write_text(manifest)
    return folder


def gelu_mlp(folder: Path) -> Path:
    """A 64-16-10 MLP whose hidden layer is GELU: LiteRT runs it, TFLM has no GELU kernel."""
    import keras

    return digits_model(
        folder, [keras.layers.Dense(16, activation="gelu")],
        'policy = "mcu"\noverride_reason = "two candidates are enough"\n'
        '[overrides.search]\ncandidates = ["int8", "int8-all-calibration"]\n',
    )  # fmt: skip


def bilinear_cnn(folder: Path) -> Path:
    """Digits through a convolution upsampled bilinearly: TFLM's RESIZE_BILINEAR runs int8, not int16 activations.

    Asked for int8 and int16x8 with an unreachable size (so that int8 fails and the search reaches int16x8)."""
    import keras

    layers = keras.layers
    return digits_model(
        folder,
        [layers.Reshape((8, 8, 1)), layers.Conv2D(4, 3, padding="same", activation="relu"),
         layers.UpSampling2D(2, interpolation="bilinear"), layers.MaxPooling2D(4), layers.Flatten()],
        'policy = "mcu"\noverride_reason = "int8 fails, so that the search reaches int16x8"\n'
        '[overrides.search]\ncandidates = ["int8", "int16x8"]\n[overrides.size]\nmin_reduction = 1000\n',
    )  # fmt: skip


@pytest.fixture(scope="module")
def mcu_run(tmp_path_factory, healthy_model: Path):
    """`gate check` on four models: one that fits the MCU policy, the same one over a 1 KiB arena budget, one with an
    operator TFLM lacks, and one with an operator TFLM lacks at int16."""
    root = tmp_path_factory.mktemp("mcu")
    (root / "policies").mkdir()
    (root / "policies" / "default.toml").write_text((REPO / "policies" / "default.toml").read_text())
    (root / "policies" / "mcu.toml").write_text(MCU)
    (root / "policies" / "tight.toml").write_text(TIGHT)
    for name, policy in (("fits", "mcu"), ("tight", "tight")):
        shutil.copytree(healthy_model, root / "models" / name)
        (root / "models" / name / "gate.toml").write_text(f'policy = "{policy}"\nmethod = "int8"\n')
    gelu_mlp(root / "models" / "gelu")
    bilinear_cnn(root / "models" / "bilinear")
    return run_gate("check", "--out", root / "out", cwd=root)


def test_a_model_that_fits_passes_with_tflms_figures_in_the_report(mcu_run) -> None:
    fits = mcu_run.model("fits")
    assert fits["status"] == "PASS", mcu_run.stdout + mcu_run.stderr
    conversion = fits["candidates"][fits["chosen"]]["conversion"]
    device = conversion["device"]
    assert device["target"] == "tflm"
    checks = {c["name"]: c for c in fits["candidates"][fits["chosen"]]["checks"]}
    assert checks["memory.max_arena_kib"]["status"] == "PASS"
    assert checks["memory.max_arena_kib"]["measured"] == round(device["arena_bytes"] / 1024, 3)
    assert checks["memory.max_flash_kib"]["measured"] == round(conversion["artifact"]["size_bytes"] / 1024, 3)
    assert device["operators"] == ["FULLY_CONNECTED x2", "SOFTMAX x1"]
    assert "64-bit host" in device["notes"][0]
    assert "Tensor arena" in mcu_run.markdown and "On the device (tflm)" in mcu_run.markdown


def test_the_arena_is_the_smallest_that_works_and_the_recorded_total_is_tflms_own(mcu_run) -> None:
    artifact = mcu_run.out_dir / "artifacts" / "fits.int8.tflite"
    device = mcu_run.model("fits")["candidates"][0]["conversion"]["device"]
    arena = device["arena_bytes"]
    assert arena % tflm.ALIGNMENT == 0
    assert tflm.probe(artifact, arena).ok
    assert not tflm.probe(artifact, arena - tflm.ALIGNMENT).ok
    printed = subprocess.run(
        [*tflm._CHILD, "probe", str(artifact), str(1 << 20)], capture_output=True, text=True, check=True
    ).stderr
    assert f"Arena allocation total {device['arena_recorded_bytes']} bytes" in printed


def tflm_accuracy(folder: Path, run, method: str) -> float:
    """A published file's accuracy on the model's eval set, run here in TFLM's interpreter, one sample an invoke."""
    from tflite_micro.python.tflite_micro import runtime

    model = run.model(folder.name)
    conversion = next(c["conversion"] for c in model["candidates"] if c["method"] == method)
    (tensor,) = conversion["inputs"]
    eval_npz = np.load(folder / "eval.npz")
    interpreter = runtime.Interpreter.from_file(str(run.out_dir / conversion["artifact"]["path"]), arena_size=1 << 20)
    correct = 0
    for x, y in zip(eval_npz["x"], eval_npz["y"], strict=True):
        quantized = np.clip(np.round(x / tensor["scale"] + tensor["zero_point"]), -128, 127).astype(np.int8)
        interpreter.reset()
        interpreter.set_input(quantized.reshape(1, *tensor["shape"][1:]), 0)
        interpreter.invoke()
        correct += int(np.argmax(interpreter.get_output(0)) == y)
    return 100 * correct / len(eval_npz["y"])


def test_the_judged_metric_is_tflms_own_on_the_published_file_with_litert_beside_it(mcu_run) -> None:
    conversion = mcu_run.model("fits")["candidates"][0]["conversion"]
    fits = mcu_run.out_dir.parent / "models" / "fits"
    assert conversion["evaluation"]["value"] == pytest.approx(tflm_accuracy(fits, mcu_run, "int8"))
    eval_npz = np.load(fits / "eval.npz")
    device = conversion["device"]
    assert device["litert_evaluation"]["metric"] == "accuracy"
    agreement = device["agreement"]
    assert agreement["samples"] == len(eval_npz["y"]) and "XNNPACK" in agreement["litert"]
    assert 0 <= agreement["same_prediction"] <= 100


def test_the_op_resolver_snippet_is_published_beside_the_artifact_with_exactly_its_operators(mcu_run) -> None:
    fits = mcu_run.model("fits")
    (published,) = fits["candidates"][0]["conversion"]["device"]["files"]
    assert published["path"] == "artifacts/fits.int8.ops.h"
    text = (mcu_run.out_dir / published["path"]).read_text()
    assert "tflite::MicroMutableOpResolver<2>" in text
    assert [line.strip() for line in text.splitlines() if "op_resolver.Add" in line] == [
        "TF_LITE_ENSURE_STATUS(op_resolver.AddFullyConnected());",
        "TF_LITE_ENSURE_STATUS(op_resolver.AddSoftmax());",
    ]
    assert "fits.int8.ops.h" in (mcu_run.out_dir / "SHA256SUMS").read_text()


def test_an_arena_over_budget_fails_naming_it(mcu_run) -> None:
    tight = mcu_run.model("tight")
    assert tight["status"] == "FAIL"
    (check,) = [c for c in tight["candidates"][0]["checks"] if c["status"] == "FAIL"]
    assert check["name"] == "memory.max_arena_kib" and "tensor arena" in check["message"]
    assert "memory.max_arena_kib" in mcu_run.markdown


def test_an_operator_tflm_lacks_fails_each_candidate_naming_it_and_the_search_goes_on(mcu_run) -> None:
    """The float32 reference already has GELU: every candidate fails ops.supported naming it (gate measured it: not
    an ERROR), the search tries the next, and the report and the choice line say why."""
    gelu = mcu_run.model("gelu")
    assert gelu["status"] == "FAIL", gelu.get("error")
    assert [c["method"] for c in gelu["candidates"]] == ["int8", "int8-all-calibration"]
    for candidate in gelu["candidates"]:
        (failure,) = [c for c in candidate["checks"] if c["status"] == "FAIL"]
        assert failure["name"] == "ops.supported"
        assert failure["message"] == "tflm cannot run it: TFLM has no kernel for operator GELU"
        device = candidate["conversion"]["device"]
        assert device["unsupported"] == ["TFLM has no kernel for operator GELU"] and device["arena_bytes"] is None
        # What TFLM cannot run is not judged on a TFLM figure: the metric is LiteRT's, and the report says so.
        assert candidate["conversion"]["evaluation"] == device["litert_evaluation"]
    assert (
        gelu["choice"].startswith("no candidate passes")
        and "int8 and int8-all-calibration failed ops.supported (" in gelu["choice"]
    )
    assert "cannot run it: TFLM has no kernel for operator GELU" in mcu_run.markdown
    assert "the metric shown is LiteRT's" in mcu_run.markdown
    assert mcu_run.exit_code == 1


def test_a_result_that_hides_an_operator_tflm_lacks_is_refused_on_read_back(mcu_run) -> None:
    from gate.encoding import load_result
    from gate.layout import resolver_path
    from gate.reporting.verify import check_result
    from gate.results import FileDigest, ModelResult

    result = load_result(ModelResult, mcu_run.model("gelu"))
    check_result(result)  # as gate wrote it
    first = result.candidates[0]
    device = first.conversion.device
    hidden = {
        "says PASS": dataclasses.replace(first, status=Status.PASS, reason=""),
        "drops the check": dataclasses.replace(
            first, checks=tuple(c for c in first.checks if c.name != "ops.supported"), status=Status.PASS, reason=""
        ),
        "drops the operator": dataclasses.replace(
            first, conversion=dataclasses.replace(first.conversion, device=dataclasses.replace(device, unsupported=()))
        ),
        "publishes a resolver TFLM never wrote": dataclasses.replace(
            first,
            conversion=dataclasses.replace(
                first.conversion,
                device=dataclasses.replace(
                    device, files=(FileDigest(resolver_path("gelu", first.method), 1, "0" * 64),)
                ),
            ),
        ),
    }
    for _how, forged in hidden.items():
        changed = dataclasses.replace(result, candidates=(forged, *result.candidates[1:]))
        with pytest.raises(ValueError, match="candidates\\[0\\]"):
            check_result(changed)


def test_a_16x8_candidate_is_not_tried_when_tflm_lacks_an_int16_kernel_of_the_model(mcu_run) -> None:
    """The float32 reference has RESIZE_BILINEAR, which TFLM runs at int8 but not at int16: int8 is tried (and fails
    the size asked for), int16x8 is not, and the candidate table says why."""
    bilinear = mcu_run.model("bilinear")
    int8, int16x8 = bilinear["candidates"]
    assert int8["method"] == "int8" and int8["status"] == "FAIL"
    assert "RESIZE_BILINEAR x1" in int8["conversion"]["device"]["operators"]
    assert (int16x8["method"], int16x8["status"]) == ("int16x8", "SKIP")
    reason = "not tried: every layer gets int16 activations, and tflm has no int16 kernel for RESIZE_BILINEAR"
    assert int16x8["reason"].startswith(reason)
    assert reason in mcu_run.markdown


def sixteen_by_eight(operation: str) -> bytes:
    """A tiny model around one operation, converted with int16 activations (TensorFlow's 16x8 mode)."""
    import tensorflow as tf
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((4, 4, 2), batch_size=1)
    x = tf_keras.layers.Conv2D(2, 1)(inputs)
    x = {
        "FULLY_CONNECTED": lambda: tf_keras.layers.Dense(4)(x),
        "EXP": lambda: tf.exp(x),
        "LOG": lambda: tf.math.log(tf.nn.relu(x) + 1.0),
        "RESIZE_BILINEAR": lambda: tf.image.resize(x, (8, 8)),
    }[operation]()
    converter = tf.lite.TFLiteConverter.from_keras_model(tf_keras.Model(inputs, x))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    samples = np.random.default_rng(0).normal(size=(20, 1, 4, 4, 2)).astype(np.float32)
    converter.representative_dataset = lambda: ([sample] for sample in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return converter.convert()


@pytest.mark.parametrize("operation", [*tflm.NO_INT16_KERNEL, "FULLY_CONNECTED"])
def test_the_operators_said_to_lack_an_int16_kernel_are_those_tflm_refuses_at_int16(operation, tmp_path) -> None:
    path = tmp_path / "model.tflite"
    path.write_bytes(sixteen_by_eight(operation))
    assert operation in graph.read_graph(path.read_bytes()).op_counts()
    probe = tflm.probe(path, 1 << 20)
    if operation in tflm.NO_INT16_KERNEL:
        # TFLM names the type it refuses, or its number: 7 is kTfLiteInt16.
        assert not probe.ok and operation in probe.failure, probe.failure
        assert re.search(r"INT16|type is 7\b", probe.failure), probe.failure
    else:
        assert probe.ok, probe.failure


def test_every_candidate_reports_its_mac_count(mcu_run) -> None:
    """64x16 + 16x10 weights: one multiply-accumulate each per inference, in the reference and the candidate."""
    fits = mcu_run.model("fits")
    assert fits["reference"]["macs"] == fits["candidates"][0]["conversion"]["macs"] == 64 * 16 + 16 * 10


# fmt: skip on this table: a case a row or two, as it reads; ruff format would give each field a line.
@pytest.mark.parametrize(
    ("stderr", "returncode", "reason", "arena"),
    [
        # Each message as the pinned build prints it (measured in /work/proto22's bench/int16_support.py).
        ("Didn't find op for builtin opcode 'GELU'\nFailed to get registration from op code GELU\n",
         1, "TFLM has no kernel for operator GELU", False),
        ("Failed to get registration from op code CUSTOM\n \n", 1,
         "TFLM has no kernel for an operator of op code CUSTOM", False),
        ("tensorflow/lite/micro/kernels/exp.cc:41 input->type != kTfLiteFloat32 (INT16 != FLOAT32)\n"
         "Node EXP (number 0) failed to prepare with status 1\nTraceback (most recent call last):\n"
         '  File "x.py", line 1\nRuntimeError: TFLM failed to allocate tensors\n',
         1, "TFLM cannot prepare operator EXP (#0): tensorflow/lite/micro/kernels/exp.cc:41 input->type != "
            "kTfLiteFloat32 (INT16 != FLOAT32)", False),
        ("Failed to resize buffer. Requested: 192, available 32, missing: 160\nFailed starting model allocation.\n",
         1, "arena too small: Failed to resize buffer", True),
        ("Too many buffers (max is 47)\n", 1, "arena too small: Too many buffers (max is 47)", True),
        ("", -11, "TFLM crashed (signal 11)", True),
    ],
)  # fmt: skip
def test_tflms_stderr_reads_as_a_reason(stderr: str, returncode: int, reason: str, arena: bool) -> None:
    assert tflm.parse_failure(stderr, returncode) == (reason, arena)


def test_the_resolver_snippet_cannot_be_broken_out_of_by_a_model_name() -> None:
    model = graph.Graph(
        operators=(graph.Operator(0, 0, "CONV_2D", 1, (0,), (1,)), graph.Operator(0, 1, "MAX_POOL_2D", 1, (1,), (2,))),
        tensors=((),),
        inputs=(0,),
        outputs=(2,),
    )
    text = tflm_ops.op_resolver_snippet(model, model="9x\n#include <evil>", method="int8", source="a */\n\\ b.tflite")
    assert "#include <evil>" not in text and "\\" not in text
    identifier = "m_9x__include__evil__" + hashlib.sha256(b"9x\n#include <evil>").hexdigest()[:8] + "_int8"
    assert f"using {identifier}_op_resolver = tflite::MicroMutableOpResolver<2>;" in text
    assert f"inline TfLiteStatus Register_{identifier}_ops({identifier}_op_resolver& op_resolver) {{" in text
    assert "AddConv2D()" in text and "AddMaxPool2D()" in text


def test_two_models_resolver_headers_name_different_things_and_can_each_be_included_twice() -> None:
    """kws-v2, kws_v2 and kws.v2 are three folders: one shared name would make the firmware register one's
    operators for the other (found by an attack)."""
    model = graph.Graph(operators=(graph.Operator(0, 0, "SOFTMAX", 1, (0,), (1,)),), tensors=((),), inputs=(0,),
                        outputs=(1,))  # fmt: skip
    names = {tflm_ops.c_identifier(name) for name in ("kws-v2", "kws_v2", "kws.v2", "_kws_v2")}
    assert len(names) == 4 and "kws_v2" in names and all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", n) for n in names)
    text = tflm_ops.op_resolver_snippet(model, model="kws_v2", method="int8-float-fallback", source="kws_v2.tflite")
    lines = text.splitlines()
    assert lines[1:3] == [
        "#ifndef GATE_kws_v2_int8_float_fallback_OPS_H",
        "#define GATE_kws_v2_int8_float_fallback_OPS_H",
    ]
    assert lines[-1] == "#endif"


@pytest.mark.parametrize(
    ("figure", "check", "measured", "limit", "status"),
    [
        ("arena_bytes", "memory.max_arena_kib", 65 * 1024, 64, Status.FAIL),
        ("arena_bytes", "memory.max_arena_kib", 64 * 1024, 64, Status.PASS),
        ("flash_bytes", "memory.max_flash_kib", 300 * 1024, 256, Status.FAIL),
        ("flash_bytes", "memory.max_flash_kib", None, 256, Status.SKIP),
    ],
)
def test_memory_checks_judge_the_device_figures_in_kib(figure, check, measured, limit, status) -> None:
    import dataclasses

    from factories import candidate, conversion

    from gate.results import OnDevice

    device = dataclasses.replace(OnDevice("tflm", None, None, None, (), None, None, (), ()), **{figure: measured})
    built = dataclasses.replace(candidate(), conversion=dataclasses.replace(conversion(), device=device))
    verdict, value, message = CHECKS[check].evaluate(
        built, limit, Context({"target.runtime": "tflm"}, "classification")
    )
    assert verdict is status
    if measured is not None:
        assert value == round(measured / 1024, 3) and f"{measured:,} bytes" in message


def test_memory_checks_skip_on_litert_saying_which_target_measures_them() -> None:
    from factories import candidate

    verdict, value, message = CHECKS["memory.max_arena_kib"].evaluate(
        candidate(), 64, Context({"target.runtime": "litert"}, "classification")
    )
    assert (verdict, value) == (Status.SKIP, None) and "the target (litert) measures no tensor arena or SRAM" in message


GELU, ERF = "TFLM has no kernel for operator GELU", "TFLM has no kernel for operator ERF"


@pytest.mark.parametrize(
    ("target", "unsupported", "limit", "expected"),
    [
        ("tflm", (GELU, ERF), True, (Status.FAIL, False, f"tflm cannot run it: {GELU}; {ERF}")),
        ("tflm", (), True,
         (Status.PASS, True, "tflm has a kernel for every operator (FULLY_CONNECTED x2, SOFTMAX x1)")),
        ("tflm", (GELU,), False,
         (Status.SKIP, None, "the policy does not require a kernel in the target runtime for every operator")),
        ("ethos-u55-128", (GELU,), True,
         (Status.SKIP, None, "judged on the tflm target only, and this one is ethos-u55-128")),
        (None, (), True, (Status.SKIP, None, "judged on the tflm target only, and this one is litert")),
    ],
)  # fmt: skip
def test_the_supported_operators_check_fails_what_tflm_lacks_and_skips_elsewhere(
    target, unsupported, limit, expected
) -> None:
    import dataclasses

    from factories import candidate, conversion

    from gate.results import OnDevice

    operators = ("FULLY_CONNECTED x2", "SOFTMAX x1")
    device = target and OnDevice(target, None, None, None, operators, None, None, (), (), unsupported=unsupported)
    built = dataclasses.replace(candidate(), conversion=dataclasses.replace(conversion(), device=device))
    policy = {"target.runtime": target} if target else {}  # a policy that names no target runs on litert
    assert CHECKS["ops.supported"].evaluate(built, limit, Context(policy, "classification")) == expected


@pytest.mark.slow
def test_keras3_mlp_helper_is_the_model_the_mac_count_assumes(tmp_path) -> None:
    """The count from the graph, on a file converted here: every FULLY_CONNECTED weight once per inference."""
    import keras
    import tensorflow as tf

    model = keras.saving.load_model(keras3_mlp(tmp_path / "m") / "model.keras")
    tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    count = graph.count_macs(graph.read_graph(tflite))
    assert count.total == 64 * 16 + 16 * 10 and count.by_operator == {"FULLY_CONNECTED": 64 * 16 + 16 * 10}


def test_the_target_names_policies_accept_are_the_registrys() -> None:
    from gate.targets import DEFAULT_TARGET, TARGET_NAMES, TARGETS

    assert tuple(TARGETS) == TARGET_NAMES and DEFAULT_TARGET in TARGETS


@pytest.mark.slow
def test_the_integer_only_candidate_recovers_the_outlier_channel_that_int8_loses_in_tflm(tmp_path) -> None:
    """digits_outlier_mlp under the MCU policy: float fallback is ruled out (integer-only), int16 on the two ranked
    layers recovers the outlier channel, integer-only, as TFLM measures it."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "policies", root / "policies")
    for name, method in (("outlier", "int8-int16-layers"), ("int8", "int8")):
        shutil.copytree(REPO / "models" / "digits_outlier_mlp", root / "models" / name)
        (root / "models" / name / "gate.toml").write_text(f'policy = "mcu"\nmethod = "{method}"\n')
    run = run_gate("check", "--out", root / "out", cwd=root)
    # int8 loses the outlier channel, and TFLM and LiteRT disagree on it: the judged figure is TFLM's.
    (int8,) = run.model("int8")["candidates"]
    judged, litert = int8["conversion"]["evaluation"], int8["conversion"]["device"]["litert_evaluation"]
    assert int8["status"] == "FAIL" and judged["value"] != litert["value"]
    assert judged["value"] == pytest.approx(tflm_accuracy(root / "models" / "int8", run, "int8"))
    (published,) = run.model("outlier")["candidates"]
    assert published["status"] == "PASS", run.stdout + run.stderr
    assert published["notes"][0].startswith("int16 activations on: features (FULLY_CONNECTED), classifier")
    conversion = published["conversion"]
    assert conversion["float_ops"] == [] and conversion["evaluation"]["value"] > 96
    assert conversion["device"]["agreement"]["same_prediction"] == 100.0


@pytest.mark.slow
def test_a_layer_left_out_of_int16_is_noted_as_the_built_file_computes_it(tmp_path) -> None:
    """EXP has no int16 kernel in TFLM: int8-int16-layers leaves it out, and its note says the dtype the published
    file computes it in, as LiteRT's own tensor details read it (litert-quantizer leaves it in float32)."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    root = tmp_path / "repo"
    shutil.copytree(REPO / "policies", root / "policies")
    folder = root / "models" / "exp_mlp"
    folder.mkdir(parents=True)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,), name="features")
    hidden = keras.layers.Activation("exponential", name="exp")(keras.layers.Dense(16, name="hidden")(inputs))
    keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="classes")(hidden)).save(
        folder / "model.keras"
    )
    rng = np.random.default_rng(0)
    np.savez(folder / "eval.npz", x=rng.normal(size=(40, 8)).astype(np.float32), y=rng.integers(0, 4, 40))
    np.savez(folder / "train.npz", x=rng.normal(size=(40, 8)).astype(np.float32))
    (folder / "gate.toml").write_text('policy = "mcu"\nmethod = "int8-int16-layers"\n')

    run = run_gate("check", "--out", root / "out", cwd=root)
    (candidate,) = run.model("exp_mlp")["candidates"]
    interpreter = Interpreter(model_path=str(root / "out" / "artifacts" / "exp_mlp.int8-int16-layers.tflite"))
    tensors = interpreter.get_tensor_details()
    dtypes = {np.dtype(tensors[op["outputs"][0]]["dtype"]).name.upper() for op in interpreter._get_ops_details()
              if op["op_name"] == "EXP"}  # fmt: skip
    (dtype,) = dtypes
    assert candidate["notes"][-1].endswith(f"in the built file, EXP computes in {dtype}"), candidate["notes"]
    assert ("ops.integer_only" in {c["name"] for c in candidate["checks"] if c["status"] == "FAIL"}) == (
        dtype == "FLOAT32"
    )


def test_the_resolver_table_names_schema_builtins_and_the_headers_methods() -> None:
    """A typo in the transcribed table would make gate call an operator missing, or emit a method no header has."""
    from ai_edge_litert import schema_py_generated as schema

    builtins = {name for name in vars(schema.BuiltinOperator) if not name.startswith("_")}
    assert set(tflm_ops.RESOLVER_METHODS) <= builtins
    assert all(
        re.fullmatch(r"Add[A-Z][A-Za-z0-9]*", method) and method[3:].lower() == name.replace("_", "").lower()
        for name, method in tflm_ops.RESOLVER_METHODS.items()
    )


@pytest.mark.slow
def test_the_float_ops_are_the_files_not_the_delegates(tmp_path) -> None:
    """XNNPACK adds DELEGATE nodes to the prepared interpreter's op list; the float ops the report shows are those of
    the file, as an interpreter without the default delegates lists them."""
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from gate.targets.litert import describe

    model = keras.saving.load_model(keras3_mlp(tmp_path / "m") / "model.keras")
    path = tmp_path / "m.float32.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    plain = Interpreter(
        model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    plain.allocate_tensors()
    names = sorted(op["op_name"] for op in plain._get_ops_details())
    assert describe(path)[2] == tuple(f"{name} x{names.count(name)}" for name in sorted(set(names)))
    assert not any(name.startswith("DELEGATE") for name in describe(path)[2])
