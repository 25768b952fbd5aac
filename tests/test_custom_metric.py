"""A custom metric (gate.tasks.custom): loaded from the repository, its return checked, every failure one message."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from gate.errors import ModelError
from gate.tasks.custom import call_metric, load_metric

WHERE = Path("models/m/gate.toml")
METRICS = """
import numpy as np

def f1(outputs, labels):
    predicted = np.argmax(outputs, axis=1)
    tp = np.sum((predicted == 1) & (labels == 1))
    return float(2 * tp / (np.sum(predicted == 1) + np.sum(labels == 1)) * 100), (predicted == labels) * 1.0

def raises(outputs, labels):
    return outputs[len(outputs) + 5]

def returns(outputs, labels):
    return RETURNED

def reads(outputs, labels):
    return open(__file__ + ".missing").read()
"""


@pytest.fixture(autouse=True)
def _forget_the_test_modules():  # noqa: ANN202 - each test's my_metrics.py is another module
    yield
    for name in [n for n in sys.modules if n.split(".")[0] == "my_metrics"]:
        del sys.modules[name]


def repository(tmp_path: Path, returned: str = "None") -> Path:
    (tmp_path / "my_metrics.py").write_text(textwrap.dedent(METRICS).replace("RETURNED", returned))
    return tmp_path


def test_a_metric_of_the_repository_is_loaded_and_scores(tmp_path: Path) -> None:
    root = repository(tmp_path)
    metric = load_metric("my_metrics:f1", root=root, where=WHERE)
    assert metric.source == "my_metrics.py" and str(root) not in sys.path  # on sys.path only while imported
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    outputs = rng.normal(size=(200, 2)) + np.eye(2)[labels]
    value, per_sample = call_metric(metric, outputs, labels, root=root)
    assert value == pytest.approx(f1_score(labels, np.argmax(outputs, axis=1)) * 100)
    np.testing.assert_array_equal(per_sample, np.argmax(outputs, axis=1) == labels)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("my_metrics", 'expected "module:function" (e.g. "my_metrics:f1"), got \'my_metrics\''),
        ("my-metrics:f1", "'my-metrics:f1' is not \"module:function\" in Python names"),
        ("elsewhere:f1", "the repository has no elsewhere.py or elsewhere/ at its root"),
        ("my_metrics:f2", "f2 does not exist in my_metrics.py"),
        ("my_metrics:np", "np is not callable in my_metrics.py"),
    ],
)
def test_a_metric_that_cannot_be_loaded_is_one_message_naming_it(tmp_path: Path, spec: str, problem: str) -> None:
    root = repository(tmp_path)
    (root / "my_metrics.py").write_text((root / "my_metrics.py").read_text() + "np = 3\n")
    with pytest.raises(ModelError) as error:
        load_metric(spec, root=root, where=WHERE)
    assert str(error.value).startswith(f"{WHERE}: metric") and problem in str(error.value)


@pytest.mark.parametrize("imported", [True, False])
def test_an_installed_modules_name_is_refused_before_the_repositorys_module_runs(tmp_path: Path, imported) -> None:
    # Not yet imported, the repository's module would have stayed in sys.modules, and gate's own later import of
    # the installed one (ai_edge_litert, msgspec, ...) would have got it instead.
    import importlib.util

    candidates = ("json",) if imported else ("cmarkgfm", "jsonschema", "hypothesis", "zizmor", "mkdocs")
    name = next(c for c in candidates if (c in sys.modules) == imported and importlib.util.find_spec(c))
    ran = tmp_path / "ran"
    (tmp_path / f"{name}.py").write_text(f"open({str(ran)!r}, 'w').close()\ndef f(outputs, labels):\n    pass\n")
    with pytest.raises(ModelError, match=f"'{name}' is also the name of an installed module"):
        load_metric(f"{name}:f", root=tmp_path, where=WHERE)
    assert not ran.exists() and getattr(sys.modules.get(name), "__file__", "") != str(tmp_path / f"{name}.py")


def test_a_metric_that_exits_is_one_message(tmp_path: Path) -> None:
    root = repository(tmp_path, returned="__import__('sys').exit(3)")
    metric = load_metric("my_metrics:returns", root=root, where=WHERE)
    with pytest.raises(ModelError, match="raised SystemExit: 3"):
        call_metric(metric, np.zeros((4, 2)), np.zeros(4), root=root)


@pytest.mark.parametrize(
    ("returned", "problem"),
    [
        ("None", "returned NoneType"),
        ("(1.0, np.ones(3))", "returned per-sample scores of shape (3,) for 4 samples; expected (4,)"),
        ("(True, np.ones(4))", "returned a value of type bool"),
        ("(float('nan'), np.ones(4))", "returned the value nan on 4 samples"),
        ("(1.0, np.array([1.0, np.inf, 1.0, 1.0]))", "returned a per-sample score that is not finite (sample 1)"),
        ("(1.0, 'abcd')", "returned per-sample scores of type str"),
    ],
)
def test_a_bad_return_is_one_message_naming_the_function_and_its_file(tmp_path: Path, returned, problem) -> None:
    root = repository(tmp_path, returned)
    metric = load_metric("my_metrics:returns", root=root, where=WHERE)
    with pytest.raises(ModelError) as error:
        call_metric(metric, np.zeros((4, 2)), np.zeros(4), root=root)
    assert str(error.value).startswith("metric 'my_metrics:returns' (my_metrics.py) ") and problem in str(error.value)
    assert "return (value, per_sample_scores): a finite number, and one finite number per sample" in str(error.value)


def test_what_the_metric_raises_names_its_line_without_the_disk(tmp_path: Path) -> None:
    root = repository(tmp_path)
    metric = load_metric("my_metrics:raises", root=root, where=WHERE)
    with pytest.raises(ModelError) as error:
        call_metric(metric, np.zeros((4, 2)), np.zeros(4), root=root)
    assert str(error.value) == (
        "metric 'my_metrics:raises' (my_metrics.py) raised IndexError: index 9 is out of bounds for axis 0 with size 4 "
        "(my_metrics.py, line 10)"
    )
    assert str(root) not in str(error.value)


def test_a_path_the_metric_raises_with_is_told_relative_to_the_repository(tmp_path: Path) -> None:
    root = repository(tmp_path)
    metric = load_metric("my_metrics:reads", root=root, where=WHERE)
    with pytest.raises(ModelError) as error:
        call_metric(metric, np.zeros((4, 2)), np.zeros(4), root=root)
    assert "No such file or directory: 'my_metrics.py.missing' (my_metrics.py, line 16)" in str(error.value)
    assert str(root) not in str(error.value)
