"""gate.inspection.hdf5: .h5 configs, and HDF5 objects whose data lives outside the file, are refused."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from inspection_models import CONFIG, keras_file, put, refused

import gate
from gate.inspection import hdf5, inspect_model

GATE_ROOT = Path(gate.__file__).resolve().parent.parent  # the gate these tests import, for child processes


def h5_file(path: Path, **attributes: object) -> Path:
    with h5py.File(path, "w") as h5:
        for name, value in attributes.items():
            h5.attrs[name] = value
    return path


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"keras_version": "2.21.0"}, r"has no model_config attribute, so it holds only weights"),
        ({"keras_version": "2.21.0", "model_config": "{"}, r"model_config: is not valid JSON"),
        ({"keras_version": "2.21.0", "model_config": np.arange(3)}, r"attribute model_config is not UTF-8 text"),
        ({"keras_version": "2.21.0", "model_config": b"\xff\xfe"}, r"model_config: is not valid JSON"),
        ({"keras_version": "2.21.0", "model_config": "[]"}, r"model_config: expected a JSON object describing"),
        (
            {"keras_version": "2.21.0", "model_config": json.dumps(CONFIG), "training_config": "[1]"},
            r"training_config: expected a JSON object of training settings",
        ),
        (
            {
                "keras_version": "2.21.0",
                "model_config": json.dumps(CONFIG),
                "training_config": json.dumps(
                    {"loss": "evil_pkg>loss", "optimizer_config": {"class_name": "Custom>Adam"}}
                ),
            },
            r"training_config: loss is the custom object 'evil_pkg>loss'",
        ),
        ({"keras_version": "0.3", "model_config": json.dumps(CONFIG)}, r"keras_version: written by Keras 0\.3"),
        (
            {
                "model_config": json.dumps(
                    put(
                        CONFIG,
                        "config.layers",
                        [
                            {
                                "class_name": "TFOpLambda",
                                "config": {"name": "tf.io.write_file", "function": "io.write_file"},
                            }
                        ],
                    )
                )
            },
            r"model_config: layer 'tf\.io\.write_file' \(config\.layers\[0\]\) is a TFOpLambda layer",
        ),
    ],
)
def test_bad_h5_files_are_refused(tmp_path, attributes, message) -> None:
    path = h5_file(tmp_path / "model.h5", **attributes)
    refused(path, rf"^{re.escape(str(path))}: " + message)


def test_an_h5_file_without_keras_version_is_read_as_keras_2(tmp_path) -> None:
    inspection = inspect_model(h5_file(tmp_path / "model.h5", model_config=json.dumps(CONFIG)))
    assert (inspection.format, inspection.writer, inspection.writer_version) == ("h5", "tf_keras", "")


@pytest.mark.parametrize("content", ["empty", "random", "truncated"])
def test_unreadable_h5_files_are_refused(tf_keras_models, garbage, tmp_path, content) -> None:
    valid = tf_keras_models["cnn.h5"].read_bytes()
    data = {"empty": b"", "random": garbage, "truncated": valid[: len(valid) // 2]}[content]
    path = tmp_path / "model.h5"
    path.write_bytes(data)
    refused(path, r"is not a readable HDF5 file \(OSError: .*\); re-save the model with model\.save\(")


# Each writes an object whose data lives outside the file; `secret` stands for /proc/self/environ.
HDF5_INDIRECTIONS: dict[str, tuple[Callable[[h5py.File, Path], None], str]] = {
    "external dataset": (
        lambda h5, secret: h5.create_dataset("leak", shape=(8,), dtype="u1", external=[(str(secret), 0, 8)]),
        r"dataset 'leak' keeps its data in the outside file .*secret, so loading would read that file into the weights",
    ),
    "external link": (
        lambda h5, secret: h5.__setitem__("leak", h5py.ExternalLink(str(secret), "/data")),
        r"'leak' is an HDF5 external link to .*secret:/data, so loading would read another file",
    ),
    "soft link": (
        lambda h5, secret: h5.__setitem__("leak", h5py.SoftLink("/elsewhere")),
        r"'leak' is an HDF5 soft link to /elsewhere, which Keras never writes",
    ),
    "virtual dataset": (
        lambda h5, secret: h5.create_virtual_dataset("leak", virtual_layout(secret)),
        r"dataset 'leak' is a virtual dataset that maps data from other files",
    ),
    "reference in an attribute": (  # tf-keras follows weight_names references to data that no link reaches
        lambda h5, secret: h5.attrs.create("leak", [h5.ref], dtype=h5py.ref_dtype),
        r"attribute 'leak' of '/' holds HDF5 object references, which Keras never writes",
    ),
    "references in a dataset": (
        lambda h5, secret: h5.create_dataset(
            "leak", data=np.array([(h5.ref, 1)], dtype=[("r", h5py.ref_dtype), ("n", "i4")])
        ),
        r"dataset 'leak' holds HDF5 object references, which Keras never writes",
    ),
    "shape bomb": (  # 8 GiB declared, nothing stored: reading it allocates it all
        lambda h5, secret: h5.create_dataset(
            "leak", shape=(1 << 31,), dtype="f4", chunks=(1 << 16,), compression="gzip"
        ),
        r"dataset 'leak' declares 8589934592 bytes but stores 0 \(a decompression bomb\?\)",
    ),
}


def virtual_layout(secret: Path) -> h5py.VirtualLayout:
    layout = h5py.VirtualLayout(shape=(8,), dtype="u1")
    layout[:] = h5py.VirtualSource(str(secret), "data", shape=(8,))
    return layout


@pytest.mark.parametrize("indirection", sorted(HDF5_INDIRECTIONS))
def test_hdf5_objects_that_read_other_files_are_refused(tf_keras_models, healthy_config, tmp_path, indirection) -> None:
    write, message = HDF5_INDIRECTIONS[indirection]
    secret = tmp_path / "secret"
    with h5py.File(secret, "w") as h5:
        h5["data"] = np.frombuffer(b"GITHUB_TOKEN", dtype="u1")
    path = tmp_path / "h5" / "model.h5"
    path.parent.mkdir()
    path.write_bytes(tf_keras_models["cnn.h5"].read_bytes())
    with h5py.File(path, "a") as h5:
        write(h5, secret)
    refused(path, rf"^{re.escape(str(path))}: " + message)

    weights = io.BytesIO(healthy_config[1])
    with h5py.File(weights, "a") as h5:
        write(h5, secret)
    path = keras_file(tmp_path / "keras", healthy_config[0], weights.getvalue())
    refused(path, rf"^{re.escape(str(path))}: model\.weights\.h5: " + message)


def test_unreadable_weights_in_an_archive_are_refused(healthy_config, tmp_path) -> None:
    path = keras_file(tmp_path, healthy_config[0], b"not hdf5")
    refused(
        path, r"model\.weights\.h5: is not a readable HDF5 file \(OSError: .*\); re-save the model with model\.save"
    )


# --- damaged files ------------------------------------------------------------------------------------


def zeroed(data: bytes, start: int, count: int) -> bytes:
    return data[:start] + bytes(count) + data[start + count :]


def model_with_a_dataset(path: Path) -> tuple[Path, int]:
    """An .h5 model file with one dataset, and the address of that dataset's object header."""
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(CONFIG)
        dataset = h5.create_dataset("model_weights/dense/kernel", data=np.ones((4, 2), "f4"))
        address = h5py.h5o.get_info(dataset.id).addr
    return path, address


def test_a_damaged_object_header_is_refused(tmp_path) -> None:
    """h5py raises inside the visit of the file's links, which surfaced as SystemError before."""
    path, address = model_with_a_dataset(tmp_path / "model.h5")
    path.write_bytes(zeroed(path.read_bytes(), address, 32))
    refused(
        path,
        rf"^{re.escape(str(path))}: is not a readable HDF5 file \(KeyError: Unable to synchronously open object "
        r"\([a-z ]+\)\); re-save the model with model\.save\(\"model\.keras\"\)",
    )


def test_damaged_weights_in_an_archive_are_refused(healthy_config, tmp_path) -> None:
    _, address = model_with_a_dataset(tmp_path / "weights.h5")
    path = keras_file(tmp_path, healthy_config[0], zeroed((tmp_path / "weights.h5").read_bytes(), address, 32))
    refused(path, r"model\.weights\.h5: is not a readable HDF5 file \(KeyError: Unable to synchronously open object")


def test_a_link_name_that_is_not_utf8_is_refused(tmp_path) -> None:
    path = h5_file(tmp_path / "model.h5", model_config=json.dumps(CONFIG))
    with h5py.File(path, "a") as h5:
        h5.create_group(b"model_weights/\xff")
    refused(path, r"is not a readable HDF5 file \(UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff")


INSPECT = (
    "import sys; from pathlib import Path; from gate.inspection import inspect_model; inspect_model(Path(sys.argv[1]))"
)


def looping_heap(path: Path) -> tuple[bytes, int]:
    """An .h5 model whose config's global heap object is zeroed: HDF5 1.14.6 loops forever reading it."""
    h5_file(path, keras_version="3.15.1", model_config=json.dumps(CONFIG))
    data = path.read_bytes()
    heap = data.index(b"GCOL\x01")
    return zeroed(data, heap + 16, 16), heap  # the collection's first object, after its 16-byte header


def test_a_global_heap_object_hdf5_would_loop_on_is_found(tmp_path) -> None:
    data, heap = looping_heap(tmp_path / "model.h5")
    assert hdf5._global_heap_problem(data) == (
        f"the global heap at byte {heap} holds an empty object at byte {heap + 16}, which HDF5 loops on"
    )
    assert hdf5._global_heap_problem(h5_file(tmp_path / "fine.h5", model_config="{}").read_bytes()) is None


@pytest.mark.parametrize("container", ["model.h5", "model.keras"])
def test_a_global_heap_hdf5_would_loop_on_is_refused(healthy_config, tmp_path, container) -> None:
    data, heap = looping_heap(tmp_path / "source.h5")
    if container == "model.h5":
        path = tmp_path / "models" / "x" / "model.h5"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        where = str(path)
    else:
        path = keras_file(tmp_path, healthy_config[0], data)
        where = f"{path}: model.weights.h5"
    # In a child process: should the check ever miss the loop, the test fails instead of hanging.
    child = subprocess.run(
        [sys.executable, "-c", INSPECT, str(path)],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env=os.environ | {"PYTHONPATH": str(GATE_ROOT)},
    )
    assert child.stderr.strip().endswith(
        f"gate.errors.ModelError: {where}: is not a readable HDF5 file (the global heap at byte {heap} holds an "
        f'empty object at byte {heap + 16}, which HDF5 loops on); re-save the model with model.save("model.keras")'
        + (' (or model.save("model.h5"))' if container == "model.h5" else "")
    ), child.stderr
