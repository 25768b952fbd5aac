"""A model with several outputs gated on the device targets: every output as TFLM's interpreter computes it (each
named through the subgraph's output tensors, not assumed in the signature's order), with TFLM's and Vela's figures.

The model's two heads have the same shape and come out of the converter swapped (the subgraph lists `first`'s tensor
first, the signature calls `second`'s output_0): a mapping that assumed either order would score each head against
the other's labels, which the independent computations here (TFLM's interpreter run by hand, scikit-learn) catch.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, run_gate

from gate.frontends.base import Dataset
from gate.quantization.base import Setup
from gate.quantization.convert import convert
from gate.results import DataInfo, FileDigest
from gate.targets import TARGETS
from gate.targets.agreement import agreement_of_outputs
from gate.targets.graph import read_graph
from gate.targets.litert import output_names, signature_outputs

HEADS = ("second", "first")  # Keras' order: the model returns `second` first


def swapped_heads(folder: Path, *, activation: str = "relu") -> Path:
    """Two 3-class heads on 6 features, `first` easy (its class is the largest of three features) and `second` hard
    (a noisy rule), on a trunk of `activation`, trained briefly; saved with its data and an MCU manifest."""
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(700, 6)).astype(np.float32)
    first = x[:, :3].argmax(axis=1)
    second = (x[:, 3:] + rng.normal(scale=1.5, size=(700, 3))).argmax(axis=1)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,), name="features")
    trunk = keras.layers.Dense(16, activation=activation, name="trunk")(inputs)
    first_head = keras.layers.Dense(3, activation="softmax", name="first")(trunk)  # built first, returned second
    second_head = keras.layers.Dense(3, activation="softmax", name="second")(trunk)
    model = keras.Model(inputs, [second_head, first_head])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
    model.fit(x[:500], [second[:500], first[:500]], epochs=30, batch_size=50, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    for name, rows in (("train", slice(0, 500)), ("eval", slice(500, None))):
        np.savez(folder / f"{name}.npz", x=x[rows], **{"y.first": first[rows], "y.second": second[rows]})
    (folder / "gate.toml").write_text(
        'policy = "mcu"\nmethod = "int8"\n[outputs.first]\ntask = "classification"\n'
        '[outputs.second]\ntask = "classification"\n'
    )
    return folder


@pytest.fixture(scope="module")
def on_device(tmp_path_factory) -> tuple[Path, object]:
    """The model gated under policies/mcu.toml and policies/ethos-u55.toml, and one with a GELU trunk (which TFLM has
    no kernel for) under policies/mcu.toml."""
    root = tmp_path_factory.mktemp("several-on-device")
    shutil.copytree(REPO / "policies", root / "policies")
    folder = swapped_heads(root / "models" / "heads")
    shutil.copytree(folder, root / "models" / "heads_npu")
    manifest = (folder / "gate.toml").read_text().replace('policy = "mcu"', 'policy = "ethos-u55"')
    (root / "models" / "heads_npu" / "gate.toml").write_text(manifest)
    swapped_heads(root / "models" / "heads_gelu", activation="gelu")
    return folder, run_gate("check", "--out", root / "out", cwd=root)


def keras_outputs(folder: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    import keras

    model = keras.saving.load_model(folder / "model.keras")
    return dict(zip(model.output_names, (np.asarray(v) for v in model(x, training=False)), strict=True))


def micro_outputs(artifact: Path, x: np.ndarray) -> list[np.ndarray]:
    """Each output of the file as TFLM's interpreter gives it (get_output(i)), dequantized, one sample an invoke."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(str(artifact), arena_size=1 << 20)
    quantization = interpreter.get_input_details(0)["quantization_parameters"]
    scale, zero = quantization["scales"][0], quantization["zero_points"][0]
    outputs: list[list[np.ndarray]] = [[], []]
    for sample in x:
        interpreter.reset()
        interpreter.set_input(np.clip(np.round(sample / scale + zero), -128, 127).astype(np.int8).reshape(1, 6), 0)
        interpreter.invoke()
        for index in range(2):
            outputs[index].append(np.array(interpreter.get_output(index)[0], dtype=np.float64))
    dequantized = []
    for index, values in enumerate(outputs):
        detail = interpreter.get_output_details(index)["quantization_parameters"]
        dequantized.append((np.stack(values) - detail["zero_points"][0]) * detail["scales"][0])
    return dequantized


def litert_outputs(artifact: Path, x: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Each output of the file in LiteRT, dequantized, by signature name; and each one's scale (0: float)."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(artifact)).get_signature_runner()
    scale, zero = runner.get_input_details()["features"]["quantization"]
    outputs = runner(features=np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8) if scale else x)
    quantization = {name: detail["quantization"] for name, detail in runner.get_output_details().items()}
    dequantized = {
        name: (v.astype(np.float64) - quantization[name][1]) * (quantization[name][0] or 1)
        for name, v in outputs.items()
    }
    return dequantized, {name: scale for name, (scale, _zero) in quantization.items()}


def assert_scored_as_litert_runs_it(conversion: dict, folder: Path, run) -> None:  # noqa: ANN001
    """Each output's accuracy in the report is scikit-learn's on LiteRT's output of its signature name."""
    from sklearn.metrics import accuracy_score

    with np.load(folder / "eval.npz") as data:
        x, labels = data["x"], {name: data[f"y.{name}"] for name in HEADS}
    outputs, _scales = litert_outputs(run.out_dir / conversion["artifact"]["path"], x)
    for score in conversion["per_output"]:
        expected = accuracy_score(labels[score["output"]], outputs[score["tensor"]].argmax(axis=1)) * 100
        assert score["evaluation"]["value"] == pytest.approx(expected)


@pytest.mark.slow  # a real gate run
def test_each_output_is_scored_as_tflms_interpreter_computes_it_with_tflms_figures(on_device) -> None:
    from sklearn.metrics import accuracy_score

    folder, run = on_device
    assert run.exit_code in (0, 1), run.stderr
    model = run.model("heads")
    published = model["candidates"][model["chosen"]]
    conversion = published["conversion"]
    assert conversion is not None, published["reason"]
    with np.load(folder / "eval.npz") as data:
        x, labels = data["x"], {name: data[f"y.{name}"] for name in HEADS}
    # Which TFLM output is which head, by value against the Keras model: independent of gate's route to it.
    keras_values = keras_outputs(folder, x)
    micro = micro_outputs(run.out_dir / conversion["artifact"]["path"], x)
    by_head = {name: min(micro, key=lambda values: float(np.abs(values - keras_values[name]).mean())) for name in HEADS}
    expected = {name: accuracy_score(labels[name], by_head[name].argmax(axis=1)) * 100 for name in HEADS}
    scores = {o["output"]: o["evaluation"] for o in conversion["per_output"]}
    assert {name: scores[name]["value"] for name in HEADS} == pytest.approx(expected)
    assert abs(expected["first"] - expected["second"]) > 10  # the heads' scores tell a swap apart
    assert {score["batch_size"] for score in scores.values()} == {1}  # TFLM runs one sample an invoke

    # Each head's fidelity: TFLM's outputs against the float32 .tflite's in LiteRT, the same head of it.
    float32, _ = litert_outputs(run.out_dir / model["reference"]["artifact"]["path"], x)
    for score in conversion["per_output"]:
        same = np.mean(by_head[score["output"]].argmax(axis=1) == float32[score["tensor"]].argmax(axis=1)) * 100
        assert score["fidelity"]["top1_agreement"] == pytest.approx(same)

    device = conversion["device"]
    assert device["target"] == "tflm" and device["litert_evaluation"] is None
    assert device["operators"] == ["FULLY_CONNECTED x3", "SOFTMAX x2"]
    assert [file["path"] for file in device["files"]] == ["artifacts/heads.int8.ops.h"]
    # Its agreement with LiteRT: each head in its own quantization steps, a sample differing when either head does.
    litert, scales = litert_outputs(run.out_dir / conversion["artifact"]["path"], x)
    tensors = {o["output"]: o["tensor"] for o in conversion["per_output"]}
    steps = np.hstack([np.abs(by_head[name] - litert[tensors[name]]) / scales[tensors[name]] for name in HEADS])
    said = device["agreement"]
    assert (said["samples"], said["differing_samples"]) == (len(x), int(np.count_nonzero(steps.max(axis=1))))
    assert said["max_steps"] == pytest.approx(steps.max(), abs=1e-3)
    checks = {check["name"]: check for check in published["checks"]}
    assert checks["memory.max_arena_kib"]["measured"] == round(device["arena_bytes"] / 1024, 3)
    assert checks["memory.max_flash_kib"]["measured"] == round(conversion["artifact"]["size_bytes"] / 1024, 3)
    assert {"accuracy.max_drop (first)", "accuracy.max_drop (second)", "ops.supported"} <= set(checks)
    worst = max(HEADS, key=lambda name: checks[f"accuracy.max_drop ({name})"]["measured"])
    assert conversion["evaluation"] == scores[worst]  # the summary's figure is the worst output's
    assert "Every output's figures above are as tflm computes them" in run.markdown


@pytest.mark.slow  # a real gate run
def test_ethos_u_gates_each_output_with_velas_figures_for_the_published_file(on_device) -> None:
    folder, run = on_device
    model = run.model("heads_npu")
    conversion = model["candidates"][model["chosen"]]["conversion"]
    assert conversion is not None, model["candidates"][model["chosen"]]["reason"]
    device = conversion["device"]
    assert device["target"] == "ethos-u55-128" and device["npu_ops_percent"] == 100.0
    assert device["sram_bytes"] > 0 and device["npu_cycles"] > 0
    assert [file["path"] for file in device["files"]] == ["artifacts/heads_npu.int8.vela.tflite"]
    checks = {check["name"] for check in model["candidates"][model["chosen"]]["checks"]}
    assert {"accuracy.max_drop (first)", "accuracy.max_drop (second)", "npu.min_ops_on_npu"} <= checks
    # The metric on an NPU target is LiteRT's on the int8 file Vela compiled: each output by its signature name.
    assert_scored_as_litert_runs_it(conversion, folder, run)


@pytest.mark.slow  # a real gate run
def test_a_two_output_file_tflm_cannot_run_fails_naming_the_operator_with_each_output_scored_in_litert(on_device):
    _folder, run = on_device
    model = run.model("heads_gelu")
    (candidate,) = model["candidates"]
    assert candidate["status"] == "FAIL", candidate["reason"]
    checks = {check["name"]: check for check in candidate["checks"]}
    assert checks["ops.supported"]["status"] == "FAIL" and "GELU" in checks["ops.supported"]["message"]
    conversion = candidate["conversion"]
    assert conversion["device"]["unsupported"] == ["TFLM has no kernel for operator GELU"]
    assert conversion["device"]["arena_bytes"] is None and conversion["device"]["files"] == []
    assert_scored_as_litert_runs_it(conversion, run.out_dir.parent / "models" / "heads_gelu", run)


@pytest.mark.slow  # real conversions
def test_tflms_outputs_are_named_through_the_subgraphs_output_tensors_not_the_signatures_order(tmp_path) -> None:
    """The precondition first: this model's subgraph lists its output tensors in another order than the signature's
    output_0, output_1. TFLM's get_output(i) follows the subgraph; each comes back under its signature name."""
    folder = swapped_heads(tmp_path / "heads")
    import keras

    model = keras.saving.load_model(folder / "model.keras")
    export = tmp_path / "saved_model"
    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = keras.InputSpec(shape=(None, 6), dtype="float32", name="features")
    archive.add_endpoint("serving_default", lambda x: model(x, training=False), input_signature=[spec])
    archive.write_out(str(export), verbose=False)
    with np.load(folder / "eval.npz") as data:
        x = data["x"]
    artifact = tmp_path / "heads.int8.tflite"
    artifact.write_bytes(convert(export, method="int8", setup=Setup(calibration={"features": x})).tflite)
    assert output_names(artifact, read_graph(artifact.read_bytes()).outputs) == ["output_1", "output_0"]

    data = Dataset({"features": x}, None, DataInfo(FileDigest("eval.npz", 0, ""), len(x)), Path("eval.npz"))
    measured = TARGETS["tflm"].measure_outputs(artifact, data, threads=1)
    litert, _ = signature_outputs(artifact, data, threads=1)
    assert list(measured.outputs) == ["output_1", "output_0"]
    # TFLM's first output is the subgraph's first tensor, which the signature calls output_1: exactly, by hand.
    micro = micro_outputs(artifact, x)
    np.testing.assert_allclose(measured.outputs["output_1"], micro[0], atol=1e-6)
    np.testing.assert_allclose(measured.outputs["output_0"], micro[1], atol=1e-6)
    # And each is LiteRT's output of that name (TFLM's SOFTMAX rounds a few steps apart), not the other head's.
    for name, other in (("output_0", "output_1"), ("output_1", "output_0")):
        values = measured.outputs[name]
        assert np.abs(values - litert[name]).mean() < 0.01 < np.abs(values - litert[other]).mean()


def test_the_agreement_of_several_outputs_counts_each_in_its_own_quantization_steps() -> None:
    litert = {"output_0": np.zeros((4, 2)), "output_1": np.zeros((4, 1))}
    device = {"output_0": np.array([[0.0, 0.0], [0.5, 0.0], [0.0, 0.0], [0.0, 0.0]]),
              "output_1": np.array([[0.0], [0.0], [0.05], [0.0]])}  # fmt: skip
    said = agreement_of_outputs(device, litert, {"output_0": 0.25, "output_1": 0.01})
    assert (said.samples, said.max_steps, said.differing_samples, said.same_prediction) == (4, 5.0, 2, None)


def test_a_two_output_file_tflm_cannot_run_reads_back_with_no_one_litert_evaluation() -> None:
    """Each output's metric is then LiteRT's, in its per_output figures: the device has no one evaluation beside."""
    from test_outputs import two_output_result
    from test_target_results import on_device as measured_on

    from gate.encoding import load_result
    from gate.reporting.verify import check_result
    from gate.results import ModelResult

    unsupported = ("TFLM has no kernel for operator GELU",)
    result = measured_on(two_output_result(), macs=10, arena_bytes=None, arena_recorded_bytes=None, files=(),
                         agreement=None, operators=("FULLY_CONNECTED x2", "GELU x1"),
                         unsupported=unsupported)  # fmt: skip
    assert result.candidates[0].conversion.device.litert_evaluation is None
    check_result(load_result(ModelResult, result.to_json()))  # accepted as gate writes it
