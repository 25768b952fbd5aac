import pytest

from gate.errors import ConfigError, ModelError
from gate.policy.config import load_policies, parse_policy
from gate.policy.manifest import effective_policy, parse_manifest

DEFAULT = "[size]\nmin_reduction = 4.0\n[accuracy]\nmax_drop = 2.0\n"


def write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[accuracy]\nmax_dorp = 2.0\n",
            "{p}: unknown key 'accuracy.max_dorp' (did you mean 'accuracy.max_drop'?); allowed keys in [accuracy]: "
            "max_drop",
        ),
        (
            "[acuracy]\nmax_drop = 2.0\n",
            "{p}: unknown table [acuracy] (did you mean 'accuracy'?); allowed tables: accuracy, auc, custom, fidelity, "
            "io, latency, limits, mae, memory, npu, ops, qat, runtime, search, size, statistics, target",
        ),
        ('[accuracy]\nmax_drop = "2"\n', "{p}: accuracy.max_drop: expected a number from 0 to 100, got '2'"),
        ("[accuracy]\nmax_drop = -1\n", "{p}: accuracy.max_drop: expected a number from 0 to 100, got -1"),
        (
            '[io]\ninput_dtype = "int16"\n',
            "{p}: io.input_dtype: expected one of int8, uint8, float32, got 'int16' (did you mean 'int8'?)",
        ),
        (
            '[io]\ninput_dtype = "unt8"\n',
            "{p}: io.input_dtype: expected one of int8, uint8, float32, got 'unt8' (did you mean 'uint8'?)",
        ),
        ("[ops]\ninteger_only = 1\n", "{p}: ops.integer_only: expected true or false, got 1"),
        ("[latency]\nthreads = 1.5\n", "{p}: latency.threads: expected a whole number from 1 to 64, got 1.5"),
        ("[latency]\nmax_p50_ms = nan\n", "{p}: latency.max_p50_ms: expected a number from 0.0001 to 1000000, got nan"),
        ("size = 4\n", "{p}: size: expected a table [size], got 4"),
        (
            "[size\nmin_reduction = 4\n",
            "Failed to parse {p}: Expected ']' at the end of a table declaration (at line 1, column 6); fix the TOML "
            "syntax",
        ),
        ("description = 3\n", "{p}: description: expected a string, got 3"),
        (
            'descriptoin = "phones"\n',
            "{p}: unknown key 'descriptoin' (did you mean 'description'?); allowed keys and "
            "tables: description, accuracy, auc, custom, fidelity, io, latency, limits, mae, memory, npu, ops, qat, "
            "runtime, search, size, statistics, target",
        ),
        (
            "sise = 4\n",
            "{p}: unknown key 'sise' (did you mean 'size'?); allowed keys and tables: description, "
            "accuracy, auc, custom, fidelity, io, latency, limits, mae, memory, npu, ops, qat, runtime, search, size, "
            "statistics, target",
        ),
    ],
)
def test_policy_problems_name_file_key_value_and_fix(tmp_path, toml, message) -> None:
    path = write(tmp_path / "edge.toml", toml)
    with pytest.raises(ConfigError) as error:
        parse_policy(path)
    assert str(error.value) == message.format(p=path)


def test_every_problem_of_every_policy_is_reported_at_once(tmp_path) -> None:
    write(tmp_path / "default.toml", "[accuracy]\nmax_drop = -1\n[size]\nmin_reducton = 4\n")
    write(tmp_path / "edge.toml", "[io]\ninput_dtype = 8\n")
    with pytest.raises(ConfigError) as error:
        load_policies(tmp_path)
    assert str(error.value).splitlines() == [
        f"{tmp_path / 'default.toml'}: accuracy.max_drop: expected a number from 0 to 100, got -1",
        f"{tmp_path / 'default.toml'}: unknown key 'size.min_reducton' (did you mean 'size.min_reduction'?); "
        "allowed keys in [size]: baseline, min_reduction",
        f"{tmp_path / 'edge.toml'}: io.input_dtype: expected one of int8, uint8, float32, got 8",
    ]


def test_a_default_policy_is_required(tmp_path) -> None:
    write(tmp_path / "edge.toml", DEFAULT)
    with pytest.raises(ConfigError, match="no default.toml"):
        load_policies(tmp_path)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            'task = "clasification"\n',
            "{p}: task: expected one of classification, regression, anomaly, fidelity, custom, got 'clasification' "
            "(did you mean 'classification'?)",
        ),
        (
            'polcy = "default"\n',
            "{p}: unknown key 'polcy' (did you mean 'policy'?); allowed keys: task, metric, direction, policy, method, "
            "calibration_samples, calibrate_on_eval, overrides, override_reason, outputs, allow_custom_objects",
        ),
        ('policy = "edg"\n', "{p}: policy: expected one of default, edge, got 'edg' (did you mean 'edge'?)"),
        (
            'method = "int4"\n',
            "{p}: method: expected one of auto, int8, int8-all-calibration, qat-int8, int8-float-fallback, "
            "int8-int16-layers, int16x8, dynamic_range, float16, got 'int4' (did you mean 'int8'?)",
        ),
        ("calibration_samples = 0\n", "{p}: calibration_samples: expected a whole number from 1 to 100000, got 0"),
        ('calibrate_on_eval = "yes"\n', "{p}: calibrate_on_eval: expected true or false, got 'yes'"),
        (
            "[overrides.size]\nmin_reduction = 10.0\n",
            '{p}: overrides need override_reason = "..." saying why this model may not meet the policy; '
            "the report shows it beside the overrides",
        ),
        (
            'override_reason = "x"\n[overrides.size]\nmin_reducion = 10.0\n',
            "{p}: overrides: unknown key 'size.min_reducion' (did you mean 'size.min_reduction'?); "
            "allowed keys in [size]: baseline, min_reduction",
        ),
        (
            'allow_custom_objects = "MyLayer"\n',
            "{p}: allow_custom_objects: expected a list of class names such as [\"my_pkg>MyLayer\"], got 'MyLayer'",
        ),
        (
            'allow_custom_objects = ["my_layers>Scale", "Lambda"]\n',
            "{p}: allow_custom_objects lists 'Lambda', which can never be allowed: it is a Lambda layer, which runs "
            "arbitrary Python when loaded; remove it from the list and replace it with a built-in layer or a custom "
            "layer "
            "allowed in gate.toml",
        ),
    ],
)
def test_manifest_problems_name_file_key_value_and_fix(tmp_path, toml, message) -> None:
    policies = {
        "default": parse_policy(write(tmp_path / "p" / "default.toml", DEFAULT)),
        "edge": parse_policy(write(tmp_path / "p" / "edge.toml", DEFAULT)),
    }
    path = write(tmp_path / "m" / "gate.toml", toml)
    with pytest.raises(ModelError) as error:
        parse_manifest(path, policies)
    assert str(error.value) == message.format(p=path)


def test_overrides_apply_on_top_of_the_policy_and_defaults(tmp_path) -> None:
    policy = parse_policy(write(tmp_path / "default.toml", DEFAULT))
    manifest = parse_manifest(
        write(tmp_path / "gate.toml", 'override_reason = "tiny model"\n[overrides.size]\nmin_reduction = 2.5\n'),
        {"default": policy},
    )
    values = effective_policy(policy, manifest)
    assert values["size.min_reduction"] == 2.5  # the override
    assert values["accuracy.max_drop"] == 2.0  # the policy
    assert values["latency.threads"] == 1  # the registry's default setting
    assert manifest.overrides == {"size.min_reduction": 2.5}


def test_a_folder_without_gate_toml_gets_the_defaults(tmp_path) -> None:
    manifest = parse_manifest(tmp_path / "gate.toml", {})
    assert (manifest.task, manifest.policy, manifest.method) == ("classification", "default", "auto")


def _number_keys():
    from gate.keys import Number
    from gate.policy.config import POLICY_KEYS
    from gate.policy.manifest import MANIFEST_KEYS

    keys = [(key, "policy") for key in POLICY_KEYS.values()] + [(key, "manifest") for key in MANIFEST_KEYS.values()]
    return [pytest.param(key, where, id=key.name) for key, where in keys if isinstance(key.kind, Number)]


def _toml(key, value, where: str) -> str:
    text = repr(value) if isinstance(value, float) else str(value)
    if where == "manifest":
        return f"{key.name} = {text}\n"
    section, name = key.name.split(".")
    return f"[{section}]\n{name} = {text}\n"


@pytest.mark.parametrize(("key", "where"), _number_keys())
def test_every_number_key_accepts_its_bounds_and_refuses_beyond_them_wherever_it_is_used(key, where, tmp_path) -> None:
    """One range per key: the registry's bounds validate, and every consumer that checks a range again accepts them."""
    import dataclasses

    from gate.quantization.qat.job import REGISTRY_FIELDS, QatRequest

    def parse(value):
        path = write(tmp_path / "file.toml", _toml(key, value, where))
        return parse_policy(path) if where == "policy" else parse_manifest(path, ["default"])

    kind = key.kind
    step = 1 if kind.integer else kind.minimum / 2 or 1e-9
    request = QatRequest("m.keras", "train.npz", ("x",), "classification", "q.tflite", "r.json")
    fields = {field: k for field, k in REGISTRY_FIELDS.items() if k is key}
    for bound in (kind.minimum, kind.maximum):
        value = int(bound) if kind.integer else bound
        parse(value)
        for field in fields:
            assert dataclasses.replace(request, **{field: value}).problems() == []
    for outside in (kind.minimum - step, kind.maximum + (1 if kind.integer else kind.maximum / 2)):
        value = int(outside) if kind.integer else outside
        with pytest.raises((ConfigError, ModelError), match=f"{key.name}: expected {kind.describe()}"):
            parse(value)
        for field in fields:
            assert dataclasses.replace(request, **{field: value}).problems() == [
                f"{field}: expected {kind.describe()}, got {value!r}"
            ]


def test_the_qat_request_reads_its_ranges_from_the_registry() -> None:
    from gate.policy.config import POLICY_KEYS
    from gate.quantization.qat.job import REGISTRY_FIELDS

    assert {f"qat.{field}" for field in REGISTRY_FIELDS} - {"qat.calibration_samples"} == {
        name for name in POLICY_KEYS if name.startswith("qat.")
    }


def test_settings_hold_every_setting_of_the_registry_typed_with_its_default() -> None:
    import dataclasses

    from gate.policy.config import POLICY_KEYS, SETTINGS, Settings

    defaults = Settings.of({})
    assert len(dataclasses.fields(Settings)) == len(SETTINGS)
    assert (defaults.latency_rounds, defaults.max_float_layers, defaults.confidence, defaults.candidates) == (
        POLICY_KEYS["latency.rounds"].default,
        POLICY_KEYS["search.max_float_layers"].default,
        POLICY_KEYS["statistics.confidence"].default,
        (),
    )
    given = Settings.of({"latency.threads": 4, "search.candidates": ("int8",), "runtime.resets_state": True})
    assert (given.latency_threads, given.candidates, given.resets_state) == (4, ("int8",), True)
