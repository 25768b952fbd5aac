"""A custom metric (gate.tasks.custom): loaded from the repository, its return checked, every failure one message."""

from __future__ import annotations

import importlib.machinery
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
    assert metric.source == "my_metrics.py" and str(root) not in sys.path  # imported by its file, never via sys.path
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
        ("(float('nan'), np.ones(4))", "returned the value nan on the eval set's 4 samples"),
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


def test_the_metrics_own_imports_never_look_in_the_repository(tmp_path: Path, monkeypatch) -> None:
    """s31 F4: with the root first on sys.path while the metric was imported, a root `colorsys.py` (any module
    Python had not imported yet: sklearn, statistics) ran in place of the real one, unseen by plan and cache key;
    and a metric that put its folder on sys.path left it there for the rest of the model."""
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)  # a module of the standard library nothing imports
    ran = tmp_path / "ran"
    (tmp_path / "colorsys.py").write_text(f"open({str(ran)!r}, 'w').close()\n")
    (tmp_path / "my_metrics.py").write_text(
        "import colorsys\nimport os\nimport sys\n\nsys.path.insert(0, os.path.dirname(__file__))  # an idiom\n"
        "def f(outputs, labels):\n    return colorsys.__file__\n"
    )
    path = list(sys.path)
    metric = load_metric("my_metrics:f", root=tmp_path, where=WHERE)
    assert not ran.exists() and metric.function(None, None) != str(tmp_path / "colorsys.py")
    assert sys.path == path


@pytest.mark.parametrize("init", [True, False], ids=["package", "namespace package"])
def test_a_metric_in_a_package_imports_its_own_submodules(tmp_path: Path, init: bool) -> None:
    package = tmp_path / "my_metrics"
    package.mkdir()
    if init:
        (package / "__init__.py").write_text("SCALE = 100.0\n")
    (package / "helpers.py").write_text("def mean(values):\n    return float(sum(values)) / len(values)\n")
    (package / "scores.py").write_text(
        "from . import helpers\nimport my_metrics.helpers\n"
        "def f(outputs, labels):\n    return helpers.mean(labels), my_metrics.helpers.mean(labels)\n"
    )
    metric = load_metric("my_metrics.scores:f", root=tmp_path, where=WHERE)
    assert metric.source == "my_metrics/scores.py" and metric.function(None, [1.0, 3.0]) == (2.0, 2.0)


@pytest.mark.parametrize(
    ("compiled", "problem"),
    [
        ("my_metrics/scores.pyc", "my_metrics/scores.pyc is compiled code"),  # imported when there is no scores.py
        (f"my_metrics/scores{importlib.machinery.EXTENSION_SUFFIXES[0]}", "is compiled code"),  # before scores.py
        (f"my_metrics/__init__{importlib.machinery.EXTENSION_SUFFIXES[-1]}", "is compiled code"),
        ("my_metrics/__pycache__/scores.cpython-311.pyc", ""),  # never read: the workers' PYTHONPYCACHEPREFIX
    ],
)
def test_compiled_code_inside_a_metric_package_is_refused_before_it_runs(tmp_path: Path, compiled, problem) -> None:
    """s31 F5: only compiled code beside the package was refused; inside it, it ran, then was "a bug in gate"."""
    from gate.tasks.custom import source_problem

    (tmp_path / "my_metrics").mkdir()
    (tmp_path / "my_metrics" / "__init__.py").write_text("")
    (tmp_path / compiled).parent.mkdir(exist_ok=True)
    (tmp_path / compiled).write_bytes(b"\x7fELF or bytecode")
    found = source_problem("my_metrics.scores:f", tmp_path)
    assert (problem in found) if problem else found == ""
    if problem:
        assert found.startswith(compiled) and found.endswith(
            "which Python would import in place of a reviewed module of the package; remove it from the repository"
        )
        with pytest.raises(ModelError, match="is compiled code"):
            load_metric("my_metrics.scores:f", root=tmp_path, where=WHERE)


ODD = """
import numpy as np

class Value(float):
    def __float__(self):
        raise RuntimeError("__float__ of the metric's value raised")

class Scores:
    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("__array__ raised")

def cleans(outputs, labels):
    labels[:] = 0
    return 1.0, np.ones(len(labels))

def interrupts(outputs, labels):
    raise KeyboardInterrupt

def closes(outputs, labels):
    raise GeneratorExit

def subclass(outputs, labels):
    return Value(1.0), np.ones(len(labels))

def scores(outputs, labels):
    return 1.0, Scores()

def huge(outputs, labels):
    return 10 ** 400, np.ones(len(labels))
"""


@pytest.mark.parametrize(
    ("function", "problem"),
    [
        ("cleans", "raised ValueError: assignment destination is read-only (my_metrics.py, line 13)"),
        ("interrupts", "raised KeyboardInterrupt:  (my_metrics.py, line 17)"),
        ("closes", "raised GeneratorExit:  (my_metrics.py, line 20)"),
        ("subclass", "returned what gate cannot read as numbers: RuntimeError: __float__ of the metric's value raised "
                     "(my_metrics.py, line 6)"),
        ("scores", "returned what gate cannot read as numbers: RuntimeError: __array__ raised "
                   "(my_metrics.py, line 10)"),
        ("huge", "returned what gate cannot read as numbers: OverflowError: int too large to convert to float"),
    ],
)  # fmt: skip
def test_whatever_the_metric_does_is_one_message_naming_it_and_gates_arrays_stay_as_they_were(
    tmp_path: Path, function: str, problem: str
) -> None:
    """s31 F6, F7: a metric that edits `labels` in place changed every later figure; one that raised a
    BaseException, or returned a value whose reading raised, was "a bug in gate" or "a crash inside TensorFlow"."""
    (tmp_path / "my_metrics.py").write_text(ODD)
    metric = load_metric(f"my_metrics:{function}", root=tmp_path, where=WHERE)
    labels, outputs = np.arange(4), np.ones((4, 2))
    with pytest.raises(ModelError) as error:
        call_metric(metric, outputs, labels, root=tmp_path)
    assert str(error.value).startswith(f"metric 'my_metrics:{function}' (my_metrics.py) {problem}")
    np.testing.assert_array_equal(labels, np.arange(4))


def test_a_ratio_metric_on_a_rare_class_gets_its_interval_from_the_resamples_that_give_a_number(
    tmp_path: Path,
) -> None:
    """s31 F10: the docs' F1 on 2 positives in 200: many resamples hold no positive (0/0), which made the model an
    ERROR; they are resamples that give no number, as for the built-in bootstrap's SNR."""
    from gate.measurement.custom import metric_change_interval
    from gate.results import Evaluation
    from gate.tasks import TASKS
    from gate.tasks.custom import bound

    (tmp_path / "my_metrics.py").write_text(
        "import numpy as np\n\ndef f1(outputs, labels):\n    predicted = np.argmax(outputs, axis=1)\n"
        "    tp = np.sum((predicted == 1) & (labels == 1))\n"
        "    return float(200 * tp / (np.sum(predicted == 1) + np.sum(labels == 1))), (predicted == labels) * 1.0\n"
    )
    rng = np.random.default_rng(0)
    labels = np.zeros(200, np.int64)
    labels[[3, 150]] = 1
    float_outputs = np.eye(2)[labels] + rng.normal(0, 0.1, (200, 2))
    quantized = np.eye(2)[labels] + rng.normal(0, 0.1, (200, 2))
    quantized[7] = [0.0, 1.0]  # one false positive: F1 = 2·2 / (3 + 2)
    with bound("my_metrics:f1", root=tmp_path, where=WHERE) as metric:
        assert metric is not None
        evaluations = []
        for outputs in (float_outputs, quantized):
            value, scores = call_metric(metric, outputs, labels, root=tmp_path)
            evaluations.append(Evaluation("custom-higher", value, 200, 32, tuple(scores.tolist())))
        assert [e.value for e in evaluations] == pytest.approx([100.0, 80.0])
        interval = metric_change_interval(TASKS["custom-higher"], *evaluations, labels, float_outputs,
                                          lambda: quantized, confidence=0.95)  # fmt: skip
    # About one resample in 7 holds no positive (0/0 F1): the interval is of the others, and says how many gave one.
    assert interval.method == "percentile" and 1500 < interval.resamples < 2000
    assert -100 <= interval.low < -20 < interval.high <= 0
