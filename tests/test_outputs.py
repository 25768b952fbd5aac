"""A model with several outputs: which .tflite output is which Keras output (gate.measurement.outputs), proven by
value on the same inputs with the real converter and LiteRT, and refused when ambiguous."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from factories import two_output_result

from gate.errors import ModelError
from gate.frontends.base import Dataset
from gate.measurement.outputs import map_outputs
from gate.quantization.base import Setup
from gate.quantization.convert import convert
from gate.results import DataInfo, FileDigest, Status
from gate.targets.litert import signature_outputs

PROBE = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)


def two_heads(*, identical: bool = False):  # noqa: ANN201 - a Keras model
    """Layer `class` is built first, but Keras lists the outputs as returned: value, then class."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,), name="features")
    hidden = keras.layers.Dense(16, activation="relu", name="trunk")(inputs)
    klass = keras.layers.Dense(3, activation="softmax", name="class")(hidden)
    value = keras.layers.Dense(3 if identical else 1, activation="softmax" if identical else None, name="value")(hidden)
    model = keras.Model(inputs, [value, klass])
    if identical:
        model.get_layer("value").set_weights(model.get_layer("class").get_weights())
    return model


def converted(model, tmp_path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:  # noqa: ANN001
    """The Keras outputs by name, and the float32 and int8 .tflite's by signature name, all on PROBE."""
    import keras

    archive = keras.export.ExportArchive()  # as gate.frontends.keras exports a Keras 3 model: a list endpoint
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        lambda x: model(x, training=False),
        input_signature=[keras.InputSpec(shape=(None, 6), dtype="float32", name="features")],
    )
    archive.write_out(str(tmp_path / "saved_model"), verbose=False)
    data = Dataset({"features": PROBE}, None, DataInfo(FileDigest("eval.npz", 0, ""), len(PROBE)), Path("eval.npz"))
    runs = {}
    for method, setup in (("float32", Setup()), ("int8", Setup(calibration={"features": PROBE}))):
        path = tmp_path / f"{method}.tflite"
        path.write_bytes(convert(tmp_path / "saved_model", method=method, setup=setup).tflite)
        runs[method] = signature_outputs(path, data, threads=1)[0]
    keras_values = dict(zip(model.output_names, (np.asarray(v) for v in model(PROBE, training=False)), strict=True))
    return keras_values, runs["float32"], runs["int8"]


@pytest.mark.slow  # real conversions
def test_outputs_in_another_order_than_keras_are_mapped_by_value(tmp_path: Path) -> None:
    keras_values, float32, int8 = converted(two_heads(), tmp_path)
    assert list(keras_values) == ["value", "class"]
    mapping = map_outputs(keras_values, float32, where="m")
    assert list(mapping) == ["value", "class"] and set(mapping.values()) == {"output_0", "output_1"}
    for keras_name, tflite_name in mapping.items():
        np.testing.assert_allclose(float32[tflite_name], keras_values[keras_name], rtol=1e-4, atol=1e-5)
    # An int8 candidate from the same SavedModel has the same signature names and shapes: the mapping holds for it.
    assert {name: v.shape for name, v in int8.items()} == {name: v.shape for name, v in float32.items()}
    assert np.abs(int8[mapping["class"]] - keras_values["class"]).max() < 0.1


@pytest.mark.slow  # real conversions
def test_two_identical_heads_are_refused(tmp_path: Path) -> None:
    keras_values, float32, _ = converted(two_heads(identical=True), tmp_path)
    with pytest.raises(ModelError) as error:
        map_outputs(keras_values, float32, where="models/two_head/model.keras")
    first = next(iter(float32))
    assert str(error.value) == (
        "models/two_head/model.keras: Keras outputs 'value' and 'class' are equal on all 40 eval samples, so gate "
        f"cannot tell which .tflite output ('{first}') is which; if the heads compute the same thing, export one of "
        "them; otherwise add eval samples on which they differ"
    )


def test_outputs_of_one_shape_are_told_apart_by_value_whatever_the_order_of_their_names() -> None:
    # Twelve outputs: sorted names put output_10 before output_2; the mapping must not depend on that order.
    rng = np.random.default_rng(2)
    keras_values = {f"head{i}": rng.normal(size=(8, 2)) for i in range(12)}
    rotated = {f"output_{(i + 5) % 12}": keras_values[f"head{i}"].astype(np.float32) + 1e-7 for i in range(12)}
    tflite = dict(sorted(rotated.items()))  # as LiteRT lists a signature's outputs: by name
    assert map_outputs(keras_values, tflite, where="m") == {f"head{i}": f"output_{(i + 5) % 12}" for i in range(12)}


@pytest.mark.parametrize(
    ("keras_values", "tflite", "message"),
    [
        (  # equal values of another shape are no match
            {"a": np.ones((4, 3))},
            {"output_0": np.ones((4, 3, 1))},
            "m: float32 .tflite output 'output_0' (3, 1) equals no Keras output on the 4 eval samples (closest: 'a' "
            "(3,), relative difference inf); the conversion changed the model: report it as a gate bug",
        ),
        (
            {"a": np.ones((5, 2)), "b": np.ones((5, 2)) * 3},
            {"output_0": np.ones((5, 2)), "output_1": np.ones((5, 2)) * 2},
            "m: float32 .tflite output 'output_1' (2,) equals no Keras output on the 5 eval samples (closest: 'b' "
            "(2,), relative difference 0.333); the conversion changed the model: report it as a gate bug",
        ),
        (
            {"a": np.ones((5, 2)), "b": np.ones((5, 2)) * 7},
            {"output_0": np.ones((5, 2)), "output_1": np.ones((5, 2))},
            "m: no .tflite output equals Keras output 'b'; several .tflite outputs equal the same Keras output on the "
            "eval samples, so gate cannot map them: report it as a gate bug",
        ),
        (
            {"a": np.ones((2, 1)), "b": np.ones((2, 1))},
            {"output_0": np.ones((2, 1))},
            "m: the Keras model has 2 output(s) (a, b) but its float32 .tflite has 1 (output_0); the conversion "
            "changed the model: report it as a gate bug",
        ),
    ],
)
def test_a_mapping_that_cannot_be_proven_is_refused(keras_values: dict, tflite: dict, message: str) -> None:
    with pytest.raises(ModelError) as error:
        map_outputs(keras_values, tflite, where="m")
    assert str(error.value) == message


@pytest.fixture(scope="module")
def two_head_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("two_head") / "model.keras"
    two_heads().save(path)
    return path


CLASSES = np.array([0, 1, 2, 1] * 10)


@pytest.mark.parametrize(
    ("toml", "arrays", "problems"),
    [
        (
            '[outputs.class]\ntask = "classification"\n[outputs.valeu]\ntask = "regression"\n',
            {"y.class": CLASSES},
            ["{manifest}: [outputs.valeu]: the model has no output 'valeu' (did you mean 'value'?); its outputs are "
             "value, class"],
        ),
        (  # s31: a declared task of a model with several outputs was silently ignored
            'task = "regression"\n',
            {"y.class": CLASSES},
            ['{manifest}: task = "regression": the model file declares 2 outputs, and gate scores each by the task of '
             "its own [outputs.<name>] table (fidelity without one), never by task; move it into a table such as "
             '[outputs.value] task = "regression", or remove it'],
        ),
        (
            '[outputs.class]\ntask = "classification"\n',
            {"y": CLASSES},
            ["{eval}: holds y, but the model has several outputs, whose labels are stored as y.<output name> "
             "(y.class); rename it",
             "{eval}: no array 'y.class'; add the labels the classification task scores output 'class' by: class "
             "indices or one-hot rows"],
        ),
        (
            '[outputs.class]\ntask = "classification"\n[outputs.value]\ntask = "regression"\n',
            {"y.class": CLASSES + 0.5, "y.value": np.zeros((40, 2))},
            ["{eval}: y.value has shape (40, 2); the model has 1 output(s), so expected (samples, 1)",
             "{eval}: y.class holds non-integer values; classification needs class indices (for a regression model "
             'set [outputs.class] task = "regression" in gate.toml)'],
        ),
        (
            '[outputs.class]\ntask = "classification"\n',
            {"y.class": CLASSES, "y.value": np.zeros(40)},
            ["{eval}: holds y.value, but output 'value' is scored by fidelity, which reads no labels; remove it, or "
             "give the output a task in gate.toml's [outputs.value]"],
        ),
        (
            '[outputs.class]\ntask = "classification"\n',
            {"y.class": CLASSES[:30]},
            ["{eval}: arrays hold different numbers of samples (x has 40, y.class has 30); every array needs one row "
             "per sample"],
        ),
    ],
)  # fmt: skip
@pytest.mark.slow  # builds a Keras model
def test_validate_checks_each_output_its_table_and_its_labels(
    workspace: Path, two_head_file: Path, capsys, toml: str, arrays: dict, problems: list[str]
) -> None:
    from gate.commands.validate import validate

    folder = workspace / "models" / "two_head"
    folder.mkdir()
    (folder / "model.keras").write_bytes(two_head_file.read_bytes())
    (folder / "gate.toml").write_text(toml)
    np.savez(folder / "eval.npz", x=PROBE, **arrays)
    np.savez(folder / "calib.npz", x=PROBE)
    assert validate([folder], policies_dir=workspace / "policies") == 2
    where = {"manifest": folder / "gate.toml", "eval": folder / "eval.npz"}
    lines = capsys.readouterr().err.splitlines()
    assert lines[:-1] == [problem.format(**where) for problem in problems]
    # Put right, it is valid: an output without a table (value) is scored by fidelity and needs no labels.
    (folder / "gate.toml").write_text('[outputs.class]\ntask = "classification"\n')
    np.savez(folder / "eval.npz", x=PROBE, **{"y.class": CLASSES})
    assert validate([folder], policies_dir=workspace / "policies") == 0


def test_a_label_problem_of_one_output_says_where_that_outputs_task_is_set(tmp_path: Path) -> None:
    """A task's label messages name `task = ...`: for one of several outputs, it is set in [outputs.<name>]."""
    from gate.frontends.base import InputSpec, OutputSpec
    from gate.frontends.data import load_dataset

    path = tmp_path / "eval.npz"
    np.savez(path, x=PROBE, **{"y.class": CLASSES, "y.value": CLASSES + 0.5})
    specs = (OutputSpec("class", "classification", 3, "softmax"), OutputSpec("value", "classification", 1, "linear"))
    with pytest.raises(ModelError) as error:
        load_dataset(path, model_folder=tmp_path, inputs=(InputSpec("features", (6,), "float32"),),
                     task="classification", output_width=None, need_labels=True, outputs=specs)  # fmt: skip
    assert str(error.value) == (
        f"{path}: y.value holds non-integer values, and the model ends in one linear unit, as a regression model "
        'does: set [outputs.value] task = "regression" in gate.toml (classification needs class indices)'
    )


def test_output_tables_are_refused_for_a_model_with_one_output(workspace: Path, capsys) -> None:
    from gate.commands.validate import validate

    folder = workspace / "models" / "healthy"
    (folder / "gate.toml").write_text('[outputs.class]\ntask = "classification"\n')
    assert validate([folder], policies_dir=workspace / "policies") == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"{folder / 'gate.toml'}: [outputs.class]: [outputs.<name>] tables are for a model file that declares several "
        "outputs, and gate reads none from this one (it has one output, or a Keras model returns its outputs as a "
        "dict, which gate does not read: return a list); set task instead"
    )


@pytest.mark.parametrize(
    ("toml", "problems"),
    [
        ('[outputs.class]\ntask = "clasification"\ncolour = 1\n[outputs.value]\n',
         ["{p}: outputs.class: unknown key 'colour'; allowed keys: task",
          "{p}: outputs.class: task: expected one of classification, regression, anomaly, fidelity, got "
          "'clasification' (did you mean 'classification'?)",
          "{p}: outputs.value: no task; add task = one of classification, regression, anomaly, fidelity"]),
        ('outputs = "class"\n', ["{p}: outputs: expected a table such as [outputs.class] task = \"classification\", "
                                 "got 'class'"]),
        ('[outputs]\nclass = "classification"\n',
         ["{p}: outputs: class: expected a table [outputs.class] with task = \"...\", got 'classification'"]),
        # s31 F8: a name no output can have is said capped, once, without a suggestion drawn from it
        ('[outputs."' + "<img>" + "B" * 20_000 + '"]\ntask = "regression"\n',
         ["{p}: outputs: [outputs.<name>]: '<img>" + "B" * 75 + "' is no name of an output gate gates: letters, "
          "digits, '_', '.' and '-' only (at most 128)"]),
        ('task = "regression"\n[outputs.class]\ntask = "classification"\n',
         ["{p}: task and [outputs.<name>] tables: a model with several outputs names the task of each in its table; "
          "remove task"]),
    ],
)  # fmt: skip
def test_output_tables_are_validated_in_gate_toml(tmp_path: Path, toml: str, problems: list[str]) -> None:
    from gate.policy.manifest import parse_manifest

    path = tmp_path / "gate.toml"
    path.write_text(toml)
    with pytest.raises(ModelError) as error:
        parse_manifest(path, ["default"])
    assert str(error.value).splitlines() == [problem.format(p=path) for problem in problems]


def test_output_tables_become_tasks_by_output_name(tmp_path: Path) -> None:
    from gate.policy.manifest import parse_manifest

    path = tmp_path / "gate.toml"
    path.write_text('[outputs.class]\ntask = "classification"\n[outputs.value]\ntask = "regression"\n')
    assert parse_manifest(path, ["default"]).outputs == {"class": "classification", "value": "regression"}


@pytest.mark.slow  # real conversions
def test_each_output_is_scored_by_its_task_as_numpy_and_scikit_learn_compute_it_from_the_tflite_outputs(
    tmp_path: Path,
) -> None:
    from sklearn.metrics import accuracy_score, mean_absolute_error

    from gate.frontends.base import OutputSpec
    from gate.measurement.outputs import output_changes, score_outputs
    from gate.policy.judge import worst_output

    model = two_heads()
    keras_values, float32, int8 = converted(model, tmp_path)
    mapping = map_outputs(keras_values, float32, where="m")
    rng = np.random.default_rng(3)
    classes, targets = rng.integers(0, 3, len(PROBE)), rng.normal(size=len(PROBE))
    info = DataInfo(FileDigest("eval.npz", 0, ""), len(PROBE))
    data = Dataset({"features": PROBE}, None, info, Path("eval.npz"), {"class": classes, "value": targets})
    specs = (OutputSpec("value", "regression", 1, "linear"), OutputSpec("class", "classification", 3, "softmax"))
    by_keras_name = {name: int8[tensor] for name, tensor in mapping.items()}
    reference = {name: float32[tensor] for name, tensor in mapping.items()}
    value, klass = score_outputs(by_keras_name, specs, data, float32=reference, batch_size=64, tensors=mapping)

    q_class, f_class, q_value = int8[mapping["class"]], float32[mapping["class"]], int8[mapping["value"]]
    assert (klass.output, klass.task, klass.tensor) == ("class", "classification", mapping["class"])
    assert klass.evaluation.value == pytest.approx(accuracy_score(classes, q_class.argmax(axis=1)) * 100)
    assert value.evaluation.value == pytest.approx(mean_absolute_error(targets, q_value[:, 0]))
    agreement = np.mean(q_class.argmax(axis=1) == f_class.argmax(axis=1)) * 100
    assert klass.fidelity is not None and klass.fidelity.top1_agreement == pytest.approx(agreement)
    for score in (value, klass):
        f, q = reference[score.output].astype(np.float64), by_keras_name[score.output].astype(np.float64)
        assert score.fidelity is not None
        assert score.fidelity.snr_db == pytest.approx(10 * np.log10(np.sum(f**2) / np.sum((q - f) ** 2)), abs=1e-5)
    assert value.fidelity is not None and value.fidelity.top1_agreement is None  # a linear unit is no class scores

    # Against the Keras model: each output's change in its task's unit, and the worst in its task's terms.
    float_scores = score_outputs(keras_values, specs, data, float32=reference, batch_size=64)
    assert all(score.fidelity is None for score in float_scores)
    changes = output_changes(float_scores, (value, klass), data, confidence=0.95)
    keras_mae = mean_absolute_error(targets, keras_values["value"][:, 0])
    keras_accuracy = accuracy_score(classes, keras_values["class"].argmax(axis=1)) * 100
    assert changes[0].metric_change == pytest.approx((value.evaluation.value - keras_mae) / keras_mae * 100)
    assert changes[1].metric_change == pytest.approx(klass.evaluation.value - keras_accuracy)
    assert all(c.metric_change_interval is not None for c in changes)
    losses = [changes[0].metric_change, -changes[1].metric_change]  # MAE: a rise is worse; accuracy: a drop
    assert worst_output(changes, {}) == losses.index(max(losses))


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({}, "value"),  # no limits: the larger loss, 4 (% of MAE) against 3 (pts)
        ({"accuracy.max_drop": 2.0, "mae.max_increase": 10.0}, "class"),  # 3/2 of its allowance against 4/10
        ({"accuracy.max_drop": 20.0, "mae.max_increase": 10.0}, "value"),  # 3/20 against 4/10
        ({"accuracy.max_drop": 4.0}, "class"),  # 3 of 4 allowed points against an MAE rise nobody judges
        ({"mae.max_increase": 100.0}, "value"),  # 4 of 100 allowed percent against a drop nobody judges
    ],
)
def test_the_worst_output_is_the_one_that_uses_most_of_what_the_policy_allows(policy: dict, expected: str) -> None:
    from gate.policy.judge import worst_output
    from gate.results import OutputChange

    changes = (OutputChange("value", "regression", 4.0, None), OutputChange("class", "classification", -3.0, None))
    assert changes[worst_output(changes, policy)].output == expected


def test_each_output_is_judged_by_its_task_check_and_the_fidelity_checks_under_its_own_name() -> None:
    from gate.policy.checks import Context
    from gate.policy.judge import relaxed_policy

    result = two_output_result()
    (candidate,) = result.candidates
    assert [(c.name, c.status.value, c.measured) for c in candidate.checks if "(" in c.name] == [
        ("accuracy.max_drop (class)", "FAIL", 3.0),
        ("mae.max_increase (value)", "PASS", 4.0),
        ("fidelity.min_snr_db (value)", "PASS", 25.0),
        # An output without fidelity figures fails a fidelity check the policy sets: gate cannot vouch for it.
        ("fidelity.min_snr_db (class)", "FAIL", None),
    ]
    assert candidate.status.value == "FAIL" and candidate.reason.startswith(
        "accuracy.max_drop (class): accuracy dropped 3.00 pts (allowed drop ≤ 2)"
    )
    assert "accuracy.max_drop" not in [c.name for c in candidate.checks]  # no check of the model as a whole
    assert candidate.metric_change == -3.0  # the worst output's: 3 of 2 allowed points, against 4 of 10 percent
    policy = result.provenance.effective_policy
    relaxed = relaxed_policy(candidate, Context(policy, result.task, result.reference))
    assert relaxed == {"accuracy.max_drop": 3.0}


def test_a_two_output_result_reads_back_and_a_forged_one_is_refused() -> None:
    import dataclasses

    from gate.encoding import load_result
    from gate.reporting.verify import check_result
    from gate.results import ModelResult

    result = two_output_result()
    check_result(load_result(ModelResult, result.to_json()))  # accepted as written
    (candidate,) = result.candidates
    assert candidate.conversion is not None
    forged_name = dataclasses.replace(candidate.conversion.per_output[0], output="../../etc")
    forgeries = {
        r"per_output\[0\]: '\.\./\.\./etc' or 'output_0' is not a plain name": dataclasses.replace(
            result,
            candidates=(dataclasses.replace(candidate, conversion=dataclasses.replace(
                candidate.conversion, per_output=(forged_name, candidate.conversion.per_output[1]))),),
        ),
        "float_per_output: names an output twice": dataclasses.replace(
            result, float_per_output=(result.float_per_output[0],) * 2
        ),
        r"per_output\[1\]: its change does not follow": dataclasses.replace(result, candidates=(dataclasses.replace(
            candidate, per_output=(candidate.per_output[0], dataclasses.replace(candidate.per_output[1],
                                                                                metric_change=0.0))),)),
        r"says PASS \(.*accuracy.max_drop \(class\) FAIL": dataclasses.replace(
            result, status=Status.PASS, candidates=(dataclasses.replace(candidate, status=Status.PASS, reason=""),)
        ),
        "are not its worst output's": dataclasses.replace(result, candidates=(dataclasses.replace(
            candidate, metric_change=candidate.per_output[0].metric_change),)),
        "34 outputs; a model with several has 2 to 32": dataclasses.replace(
            result, float_per_output=result.float_per_output * 17
        ),
    }  # fmt: skip
    for message, forged in forgeries.items():
        with pytest.raises(ValueError, match=message):
            check_result(load_result(ModelResult, forged.to_json()))


def test_each_outputs_figures_are_read_back_as_a_one_output_models_are() -> None:
    """s31 F2: each output's fidelity, intervals, samples and tensor are checked, and the model's summary figures
    are its worst output's; each forgery here was accepted before."""
    import dataclasses

    from test_verify import judged, problem

    from gate.reporting.verify import check_result
    from gate.results import Fidelity, Interval

    replace = dataclasses.replace
    result = two_output_result()
    (candidate,) = result.candidates
    assert candidate.conversion is not None and result.reference is not None

    def scored(index: int, **changes) -> object:
        scores = list(candidate.conversion.per_output)
        scores[index] = replace(scores[index], **changes)
        return judged(replace(result, candidates=(replace(candidate, conversion=replace(
            candidate.conversion, per_output=tuple(scores))),)))  # fmt: skip

    def changed(index: int, interval: Interval | None, **policy) -> object:
        changes = list(candidate.per_output)
        changes[index] = replace(changes[index], metric_change_interval=interval)
        effective = result.provenance.effective_policy | policy
        return judged(replace(result, provenance=replace(result.provenance, effective_policy=effective),
                              candidates=(replace(candidate, per_output=tuple(changes)),)))  # fmt: skip

    ci = Interval(-4.0, -2.0, 0.95, "BCa", 2000)
    fidelity = candidate.conversion.per_output[0].fidelity
    assert fidelity is not None
    identical = Fidelity(fidelity.samples, None, None, fidelity.not_class_scores, None, None, True)
    upper_bound = {"statistics.decide_on": "upper_bound"}
    both = changed(1, ci, **upper_bound).candidates[0]  # the worst output's interval is the candidate's too
    forgeries = {
        "candidates[0].conversion.per_output[0].fidelity: 1000000.0 is out of its figure's range": scored(
            0, fidelity=replace(fidelity, snr_db=1e6)
        ),
        "candidates[0].conversion.per_output[0].fidelity: identical outputs to the float32 .tflite's, but its mae is "
        "0.52 and the float32 file's 0.5": scored(0, fidelity=identical),
        "candidates[0].conversion.per_output[0].fidelity.not_class_scores: 'no', but gate gives no such reason": scored(
            0, fidelity=replace(fidelity, not_class_scores="no")
        ),
        "candidates[0].per_output[0].metric_change_interval: 1e+300 to -1e+300 is not an interval": changed(
            0, Interval(1e300, -1e300, 0.5, "nonsense", 3)
        ),
        "candidates[0].per_output[0].metric_change_interval: missing, but gate draws one for every output, and its "
        "policy judges it": judged(replace(
            result, provenance=replace(result.provenance, effective_policy=result.provenance.effective_policy
                                       | upper_bound),
            candidates=(replace(both, per_output=(candidate.per_output[0], both.per_output[1]),
                                metric_change_interval=ci),))),
        "candidates[0].conversion.per_output: maps two outputs to one .tflite tensor (gate maps each to its own)": (
            scored(1, tensor="output_0")
        ),
        "candidates[0].conversion.per_output[0].evaluation: on 3 samples, but gate evaluates every output on the eval "
        "set's 1000": scored(0, evaluation=replace(candidate.conversion.per_output[0].evaluation, samples=3)),
        "candidates[0].conversion.per_output[1].evaluation.value: 5000.0 is out of its metric's range": scored(
            1, evaluation=replace(candidate.conversion.per_output[1].evaluation, value=5000.0)
        ),
        "output value: its fidelity is measured on some built candidates only": judged(replace(result, candidates=(
            candidate, replace(candidate, method="float16", conversion=replace(
                candidate.conversion, method="float16", artifact=replace(candidate.conversion.artifact,
                                                                         path="artifacts/digits.float16.tflite"),
                per_output=(replace(candidate.conversion.per_output[0], fidelity=None),
                            candidate.conversion.per_output[1])))))),
        "task, float_evaluation and reference.evaluation: not those of output class, the published candidate's worst": (
            replace(result, float_evaluation=replace(result.float_evaluation, value=90.0))
        ),
    }  # fmt: skip
    found = {message: problem(check_result, forged) for message, forged in forgeries.items()}
    assert found == {message: message for message in forgeries}


@pytest.mark.slow  # a real gate run
def test_gate_check_gates_the_bundled_two_output_model_per_output(tmp_path: Path) -> None:
    """Each output's figures in the report equal scikit-learn's on the published .tflite's own outputs, run here."""
    import os
    import shutil
    import subprocess
    import sys

    from ai_edge_litert.interpreter import Interpreter
    from helpers import REPO, run_gate
    from sklearn.metrics import accuracy_score, mean_absolute_error

    shutil.copytree(REPO / "policies", tmp_path / "policies")
    shutil.copytree(REPO / "models" / "two_head", tmp_path / "models" / "two_head")
    run = run_gate("check", "--out", "out", cwd=tmp_path)
    assert run.exit_code == 0, run.stderr
    model = run.model("two_head")
    published = model["candidates"][model["chosen"]]
    names = [check["name"] for check in published["checks"]]
    assert {"accuracy.max_drop (diagnosis)", "mae.max_increase (radius)", "fidelity.min_snr_db (radius)"} <= set(names)
    assert "accuracy.max_drop" not in names and "mae.max_increase" not in names
    assert [o["output"] for o in model["float_per_output"]] == ["radius", "diagnosis"]  # Keras' order

    with np.load(tmp_path / "models" / "two_head" / "eval.npz") as data:
        x, classes, radius = data["x"], data["y.diagnosis"], data["y.radius"]
    runner = Interpreter(
        model_path=str(run.out_dir / published["conversion"]["artifact"]["path"])
    ).get_signature_runner()
    (detail,) = runner.get_input_details().values()
    scale, zero = detail["quantization"]
    outputs = runner(features=np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8))
    dequantized = {}
    for name, values in outputs.items():
        out_scale, out_zero = runner.get_output_details()[name]["quantization"]
        dequantized[values.shape[1]] = (values.astype(np.float64) - out_zero) * out_scale  # radius: 1 wide; 2 classes
    scores = {o["output"]: o["evaluation"]["value"] for o in published["conversion"]["per_output"]}
    assert scores["diagnosis"] == pytest.approx(accuracy_score(classes, dequantized[2].argmax(axis=1)) * 100)
    assert scores["radius"] == pytest.approx(mean_absolute_error(radius, dequantized[1][:, 0]), rel=1e-5)
    tensors = {o["output"]: o["tensor"] for o in published["conversion"]["per_output"]}
    assert outputs[tensors["radius"]].shape[1] == 1 and outputs[tensors["diagnosis"]].shape[1] == 2
    assert "`accuracy.max_drop (diagnosis)`" in run.markdown

    # s31 F1: the comment job (no NumPy) verifies and renders this report: a regression output's change is re-computed
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] in ('numpy', 'tensorflow', 'keras'):\n"
        "            raise ImportError(f'{name} is not installed in the comment job')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from pathlib import Path\n"
        "from gate.reporting.markdown import render_markdown\n"
        "from gate.reporting.verify import read_report\n"
        "print(render_markdown(read_report(Path(sys.argv[1])).models))\n"
    )
    verified = subprocess.run([sys.executable, "-P", "-c", script, str(run.out_dir)], capture_output=True, text=True,
                              check=False, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert "`accuracy.max_drop (diagnosis)`" in verified.stdout


def test_the_report_names_the_worst_output_in_the_summary_and_shows_every_output() -> None:
    import dataclasses

    from gate.reporting.markdown import render_markdown

    result = two_output_result()
    text = render_markdown([result])
    summary = next(line for line in text.splitlines() if line.startswith("| digits |"))
    assert "accuracy (class: the worst of 2 outputs) 96.00% → 93.00% (−3.00 pts)" in summary
    assert "FAIL: accuracy.max_drop (class) 3 pts > 2 pts" in summary  # the failed check, named after its output
    assert "| output value (regression): mae | 0.5 | 0.5 | 0.52 (+4.00% vs float); vs float32: SNR 25.00 dB |" in text
    assert "| output class (classification): accuracy | 96.00% | 96.00% | 93.00% (−3.00 pts vs float); " in text
    # An output's name comes from the model file: escaped where it is written.
    (candidate,) = result.candidates
    assert candidate.conversion is not None
    hostile = "x](https://evil.example)"
    renamed = dataclasses.replace(candidate.conversion.per_output[1], output=hostile)
    conversion = dataclasses.replace(candidate.conversion, per_output=(candidate.conversion.per_output[0], renamed))
    forged = dataclasses.replace(result, candidates=(dataclasses.replace(candidate, conversion=conversion),))
    assert hostile not in render_markdown([forged])


def test_a_worst_output_scored_by_fidelity_shows_its_fidelity_figures_in_the_summary_as_one_output_does() -> None:
    """As a one-output model of the task fidelity shows `vs float32: SNR ...`, not its output error by its JSON name."""
    import dataclasses

    from gate.encoding import load_result
    from gate.reporting.markdown import render_markdown
    from gate.reporting.verify import check_result
    from gate.results import ModelResult

    result = two_output_result(class_accuracy=96.0, value_mae=0.2, value_task="fidelity")
    assert result.task == "fidelity"  # its worst output: 0.2 of 1.0 allowed output error, against no accuracy lost
    check_result(load_result(ModelResult, result.to_json()))  # its fidelity figures are its outputs', none its own
    summary = next(line for line in render_markdown([result]).splitlines() if line.startswith("| digits |"))
    assert "| vs float32 (value: the worst of 2 outputs): SNR 26.99 dB |" in summary
    assert "output_error" not in summary
    (candidate,) = result.candidates
    assert candidate.conversion is not None
    lacking = dataclasses.replace(candidate.conversion.per_output[0], fidelity=None)
    conversion = dataclasses.replace(candidate.conversion, per_output=(lacking, candidate.conversion.per_output[1]))
    forged = dataclasses.replace(result, candidates=(dataclasses.replace(candidate, conversion=conversion),))
    with pytest.raises(ValueError, match=r"conversion.per_output\[0\].fidelity: missing, but the task fidelity"):
        check_result(load_result(ModelResult, forged.to_json()))


@pytest.mark.parametrize(
    ("names", "tasks", "message"),
    [
        (("class head", "value"), {}, "m.keras: output 'class head' has a name gate cannot use as y.<name> and in its "
         "checks' names; name its layer with letters, digits, '_', '.' and '-' only (at most 128)"),
        (tuple(f"head{i}" for i in range(33)), {}, "m.keras: the model has 33 outputs; gate gates at most 32"),
        (("class", "value"), {"valeu": "regression", "klass": "classification"},
         "gate.toml: [outputs.valeu]: the model has no output 'valeu' (did you mean 'value'?); its outputs are class, "
         "value\ngate.toml: [outputs.klass]: the model has no output 'klass' (did you mean 'class'?); its outputs are "
         "class, value"),
    ],
)  # fmt: skip
def test_the_outputs_a_config_declares_are_checked_before_anything_is_loaded(
    names: tuple[str, ...], tasks: dict, message: str
) -> None:
    from gate.gating.data import output_specs
    from gate.inspection import InputInfo, Inspection, Signature
    from gate.inspection.signature import OutputInfo

    signature = Signature((InputInfo("x", (6,), "float32"),), None, None, tuple(OutputInfo(n, 1, None) for n in names))
    inspection = Inspection("keras", "keras", "3.15.1", (), False, (), signature)
    with pytest.raises(ModelError) as error:
        output_specs(inspection, tasks, manifest="gate.toml", model_file="m.keras")
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("tasks", "reason"),
    [
        ({"class": "classification", "value": "regression"}, ""),  # each on its own task's loss
        ({"class": "classification", "embed": "fidelity"}, ""),  # embed distilled towards the float model's outputs
        ({"class": "classification", "score": "anomaly"},
         "output 'score': it trains on labels, and the anomaly task has none it can train on"),
        ({"a": "fidelity", "b": "fidelity"},
         "it trains on labels, and every output is scored by fidelity, which has none it can train on"),
    ],
)  # fmt: skip
def test_qat_trains_every_output_of_a_model_with_several_unless_one_has_no_training_loss(
    tmp_path: Path, tasks: dict[str, str], reason: str
) -> None:
    import factories

    from gate.frontends.base import OutputSpec
    from gate.gating import several
    from gate.gating.search import Workbench, skip_reason
    from gate.measurement.outputs import Outputs
    from gate.quantization.base import Training

    reference = factories.conversion("float32", dtype="float32")
    training = Training(Path("model.keras"), "keras", None, Path("train.npz"), True, {}, tmp_path, 1, 1e-4, 32, 10,
                        True, 60.0)  # fmt: skip
    bench = Workbench(
        policy={}, task="classification", source_bytes=1, float_evaluation=reference.evaluation, reference=reference,
        integer_inputs=False, setup=Setup(training=training), build=None, save=None, describe=None, time_latency=None,
        interval=None,
    )  # type: ignore[arg-type]  # fmt: skip
    outputs = Outputs(tuple(OutputSpec(name, task, 1, None) for name, task in tasks.items()), {}, {}, (), 0.95)
    for_several = several.workbench(bench, outputs, None, None, tmp_path)  # type: ignore[arg-type]
    reasons = {
        method: skip_reason(method, for_several, has_calibration=True, has_training=True)
        for method in ("qat-int8", "int8-float-fallback", "int8-int16-layers", "int8", "int16x8")
    }
    assert reasons == {
        "qat-int8": reason,
        "int8-float-fallback": "",
        "int8-int16-layers": "",
        "int8": "",
        "int16x8": "",
    }
    # The QAT process learns each output's task, in the model's order (gate.quantization.qat.heads).
    assert for_several.setup.training is not None and for_several.setup.training.outputs == tuple(tasks.items())
    assert bench.setup.training is not None and bench.setup.training.outputs == ()  # one output: as it always was


@pytest.mark.parametrize(
    ("changes", "policy", "share"),
    [
        # A drop of 3 of 2 allowed points is 1.5 of the allowance; a rise of 4 of 10 allowed percent 0.4.
        ((("class", "classification", -3.0), ("value", "regression", 4.0)),
         {"accuracy.max_drop": 2.0, "mae.max_increase": 10.0}, 1.5),
        ((("class", "classification", -1.0), ("value", "regression", 4.0)),
         {"accuracy.max_drop": 2.0, "mae.max_increase": 10.0}, 0.5),
        # An output whose task the policy does not judge never keeps the search going.
        ((("class", "classification", -1.0), ("value", "regression", 400.0)), {"accuracy.max_drop": 2.0}, 0.5),
        # Judged by nothing: the largest loss, which the search minimises.
        ((("class", "classification", -1.0), ("value", "regression", 4.0)), {}, 4.0),
        # Nothing allowed: any loss is far beyond it.
        ((("class", "classification", -0.5),), {"accuracy.max_drop": 0.0}, 0.5e9),
    ],
)  # fmt: skip
def test_the_fallback_on_several_outputs_minimises_the_worst_judged_share_of_its_allowance(changes, policy, share):
    from gate.policy.judge import worst_share
    from gate.results import OutputChange

    assert worst_share([OutputChange(*change, None) for change in changes], policy) == pytest.approx(share)


@pytest.mark.slow  # a real gate run
def test_float_fallback_searches_a_two_output_model_by_its_worst_judged_output(tmp_path: Path) -> None:
    """int8 loses more of radius' MAE than a strict override allows: float fallback is tried, keeps layers float one
    more at a time, and is judged per output like any candidate."""
    import shutil

    from helpers import REPO, run_gate

    shutil.copytree(REPO / "policies", tmp_path / "policies")
    folder = tmp_path / "models" / "two_head"
    shutil.copytree(REPO / "models" / "two_head", folder)
    manifest = (folder / "gate.toml").read_text()
    (folder / "gate.toml").write_text(
        'override_reason = "a test: radius may not change"\n' + manifest + "\n[overrides.mae]\nmax_increase = 0.01\n"
    )
    run = run_gate("check", "--out", "out", cwd=tmp_path)
    candidates = {c["method"]: c for c in run.model("two_head")["candidates"]}
    assert candidates["int8"]["status"] == "FAIL" and "mae.max_increase (radius)" in candidates["int8"]["reason"]
    fallback = candidates["int8-float-fallback"]
    assert fallback["conversion"] is not None, fallback["reason"]
    assert fallback["notes"][0].startswith("kept in float: ")
    assert {"accuracy.max_drop (diagnosis)", "mae.max_increase (radius)"} <= {c["name"] for c in fallback["checks"]}
    # int8 lost on an output: the report ranks the layers, by the error each causes at the model's outputs.
    assert run.model("two_head")["layer_errors"], "no layer ranking"


def test_the_base_branch_delta_compares_an_output_with_itself_and_names_it() -> None:
    """Two heads of one metric (two regression heads): when the worst one changes, no delta between the two."""
    import dataclasses

    from gate.reporting.compare import Baseline, Figures, compare
    from gate.reporting.markdown import render_markdown
    from gate.reporting.verify_comparison import check_comparison

    head = two_output_result(class_accuracy=80.0)  # class is the worst output: 16 of 2 points allowed
    base = two_output_result(class_accuracy=95.0, value_mae=0.54)  # value is: 8 % of 10 %, class 1 of 2 points
    assert (Figures.of(head).output, Figures.of(base).output) == ("class", "value")
    # The same metric of another output: as if value were a classifier too.
    (candidate,) = base.candidates
    assert candidate.conversion is not None
    evaluation = dataclasses.replace(candidate.conversion.evaluation, metric="accuracy", value=95.0)
    renamed = dataclasses.replace(candidate.conversion, evaluation=evaluation)
    base = dataclasses.replace(base, candidates=(dataclasses.replace(candidate, conversion=renamed),))

    comparison = compare([head], Baseline("main@3f3f3f3", "3f" * 20, {"digits": base}))
    check_comparison(comparison)
    text = render_markdown([head], comparison)
    assert "| accuracy (class) 80.00% |" in text  # no delta from the other output's 95.00 %

    same = compare([head], Baseline("main@3f3f3f3", "3f" * 20, {"digits": two_output_result(class_accuracy=90.0)}))
    assert "accuracy (class) 90.00% → 80.00% (−10.00 pts vs main@" in render_markdown([head], same)

    forged = dataclasses.replace(same.changes[0], head=dataclasses.replace(same.changes[0].head, output="<b>x</b>"))
    with pytest.raises(ValueError, match=r"changes\[0\].output: '<b>x</b>' is not an output's name"):
        check_comparison(dataclasses.replace(same, changes=(forged,)))


def test_a_check_name_with_an_output_named_with_underscores_reads_as_itself_in_the_report() -> None:
    """A check's name is a code span, where Markdown shows a backslash escape as it is: `(\\_aux)` would show."""
    import dataclasses

    import cmarkgfm

    from gate.reporting.markdown import render_markdown

    result = two_output_result()
    (candidate,) = result.candidates
    checks = tuple(dataclasses.replace(c, name=c.name.replace("(value)", "(_aux_)")) for c in candidate.checks)
    assert any("(_aux_)" in check.name for check in checks)
    result = dataclasses.replace(result, candidates=(dataclasses.replace(candidate, checks=checks),))
    html = cmarkgfm.github_flavored_markdown_to_html(render_markdown([result]))
    assert "<code>mae.max_increase (_aux_)</code>" in html
    assert "\\_" not in html
