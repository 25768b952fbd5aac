"""gate.frontends.data.load_dataset: a model is fed exactly the values its .npz holds, or the file is refused."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gate.errors import ModelError
from gate.frontends.base import InputSpec
from gate.frontends.data import load_dataset

TOKENS = InputSpec("ids", (3,), "int32")
PIXELS = InputSpec("pixels", (3,), "uint8")


def load(tmp_path, x: np.ndarray, spec: InputSpec):
    np.savez(tmp_path / "eval.npz", x=x, y=np.zeros(len(x), np.int64))
    return load_dataset(
        tmp_path / "eval.npz",
        model_folder=tmp_path,
        inputs=(spec,),
        task="classification",
        output_width=2,
        need_labels=True,
    )


@pytest.mark.parametrize(
    ("x", "spec", "message"),
    [
        # Cast to int32, NaN became -2147483648 and Embedding.call() failed inside TensorFlow.
        (np.array([[1, 2, np.nan]]), TOKENS, "x contains NaN or infinite values; remove or impute them"),
        (np.array([[1, np.inf, 2]], np.float32), PIXELS, "x contains NaN or infinite values; remove or impute them"),
        (
            np.array([[1.0, 3.7, 2.0], [0.5, 1.0, 1.0]]),
            TOKENS,
            "x holds 2 value(s) that are not whole numbers (e.g. 3.7); model input 'ids' takes int32, so they would "
            "be truncated: store the whole numbers the model expects (token ids, indices)",
        ),
        (
            np.array([[1, 300, 2]], np.int64),
            PIXELS,
            "x holds 300, outside the range of uint8 (0 to 255); model input 'pixels' takes uint8, so it would wrap "
            "around or overflow: store values in that range",
        ),
        (
            np.array([[-1.0, 0.0, 2.0]]),
            PIXELS,
            "x holds -1, outside the range of uint8 (0 to 255); model input 'pixels' takes uint8, so it would wrap "
            "around or overflow: store values in that range",
        ),
        (
            np.array([[1e39, 0.0, 2.0]]),
            InputSpec("features", (3,), "float32"),
            "x holds 1e+39, outside the range of float32 (-3.40282e+38 to 3.40282e+38); model input 'features' takes "
            "float32, so it would wrap around or overflow: store values in that range",
        ),
    ],
    ids=["NaN for int32", "infinity for uint8", "fractions for int32", "300 for uint8", "-1 for uint8", "1e39 float32"],
)
def test_a_value_the_inputs_dtype_cannot_hold_is_refused_before_any_cast(tmp_path, x, spec, message) -> None:
    with pytest.raises(ModelError) as refused:
        load(tmp_path, x, spec)
    assert str(refused.value) == f"{tmp_path / 'eval.npz'}: {message}"


@pytest.mark.parametrize(
    ("x", "spec"),
    [
        (np.array([[1.0, 49.0, 0.0]]), TOKENS),  # whole numbers stored as floats: token ids saved by pandas
        (np.array([[0, 255, 7]], np.int64), PIXELS),
        (np.array([[0.25, -3.5, 1e30]]), InputSpec("features", (3,), "float32")),
    ],
    ids=["float token ids", "int64 pixels", "float64 features"],
)
def test_values_the_inputs_dtype_holds_are_loaded_unchanged(tmp_path, x, spec) -> None:
    loaded = load(tmp_path, x, spec).inputs[spec.name]
    assert loaded.dtype == np.dtype(spec.dtype)
    assert np.array_equal(loaded, x.astype(spec.dtype)) and np.allclose(loaded, x, rtol=1e-7)


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({}, "No module named 'my_layers'"),
        # Python names the file that lacks the name by its absolute path
        ({"my_layers/__init__.py": "from my_layers.helpers import scale\n", "my_layers/helpers.py": "offset = 1\n"},
         "cannot import name 'scale' from 'my_layers.helpers' (my_layers/helpers.py))"),
        ({"my_layers.py": "import my_layers.missing\n"},
         "No module named 'my_layers.missing'; 'my_layers' is not a package"),
        # s31 F4: the repository is never on sys.path, so another of its modules is not imported from the package
        ({"my_layers.py": "from my_helpers import offset\n"}, "No module named 'my_helpers'"),
    ],
    ids=["missing module", "import error inside it", "not a package", "another module of the repository"],
)  # fmt: skip
def test_a_custom_object_module_that_cannot_be_imported_is_named_without_the_runners_disk(
    tmp_path, monkeypatch, files, reason
) -> None:
    from gate.frontends.keras import _import_allowed_custom_objects

    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_helpers.py").write_text("offset = 1\n")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    for name in ("my_layers", "my_layers.helpers", "my_helpers"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ModelError) as refused:
        _import_allowed_custom_objects(Path("models/m/model.keras"), ("my_layers>Scale",))
    message = str(refused.value)
    assert message.startswith(
        f"{Path('models/m/model.keras')}: the allowed custom object 'my_layers>Scale' is registered in package "
        f"'my_layers', which cannot be imported from the folder gate runs in ({reason}"
    ), message
    assert message.endswith("; run gate from the repository root that holds it")
    assert str(tmp_path) not in message and "/tmp" not in message
