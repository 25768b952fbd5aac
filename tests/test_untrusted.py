"""The catalogue of malicious and malformed inputs, gated in one run beside a healthy model.

Every payload that could run does something observable if it ever executes:
it creates a file in `markers/`. Each case must be refused with its exact
message, no marker may appear, and the healthy model must still pass.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import TEST_POLICIES, run_gate

CASES: dict[str, Callable[[Path, Path], None]] = {}  # name -> build(folder, marker)


def case(build: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
    CASES[build.__name__] = build
    return build


def noise(size: int) -> bytes:
    """Random bytes from a fixed seed: the parser's message must be the same in every run."""
    return random.Random(size).randbytes(size)


def rewrite_keras(folder: Path, change: Callable[[dict[str, bytes]], None]) -> None:
    """Rewrite the entries of folder/model.keras (a copy of the healthy model)."""
    path = folder / "model.keras"
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    change(entries)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def edit_config(folder: Path, edit: Callable[[dict], None]) -> None:
    def change(entries: dict[str, bytes]) -> None:
        config = json.loads(entries["config.json"])
        edit(config)
        entries["config.json"] = json.dumps(config).encode()

    rewrite_keras(folder, change)


def marker_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('ran')"


# ---------------------------------------------------------------- Keras configs that run code


@case
def lambda_keras3(folder: Path, marker: Path) -> None:
    import keras

    payload = marker_code(marker)
    model = keras.Sequential(
        [
            keras.Input((64,), name="pixels"),
            keras.layers.Lambda(lambda x: (exec(payload), x)[1]),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.save(folder / "model.keras")


@case
def lambda_tf_keras_h5(folder: Path, marker: Path) -> None:
    import tf_keras

    payload = marker_code(marker)
    model = tf_keras.Sequential(
        [
            tf_keras.Input((64,), name="pixels"),
            tf_keras.layers.Lambda(lambda x: (exec(payload), x)[1]),
            tf_keras.layers.Dense(10, activation="softmax"),
        ]
    )
    (folder / "model.keras").unlink()
    model.save(folder / "model.h5")


@case
def lambda_tf_keras_keras(folder: Path, marker: Path) -> None:
    import tf_keras

    payload = marker_code(marker)
    model = tf_keras.Sequential(
        [
            tf_keras.Input((64,), name="pixels"),
            tf_keras.layers.Lambda(lambda x: (exec(payload), x)[1]),
            tf_keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.save(folder / "model.keras")


@case
def outside_module(folder: Path, marker: Path) -> None:
    def edit(config: dict) -> None:
        layer = config["config"]["layers"][1]
        layer["module"] = "builtins"
        layer["class_name"] = "exec"
        layer["config"] = {"source": marker_code(marker)}

    edit_config(folder, edit)


@case
def initializer_from_outside_module(folder: Path, marker: Path) -> None:
    def edit(config: dict) -> None:
        layer = config["config"]["layers"][1]
        layer["config"]["kernel_initializer"] = {
            "module": "os",
            "class_name": "system",
            "config": {"command": f"touch {marker}"},
            "registered_name": None,
        }

    edit_config(folder, edit)


@case
def custom_object_not_allowed(folder: Path, marker: Path) -> None:
    # evil_layers.py sits in the repository root: importing it would leave the marker.
    (folder.parent.parent / "evil_layers.py").write_text(marker_code(marker) + "\n")

    def edit(config: dict) -> None:
        layer = config["config"]["layers"][1]
        layer.update(module="evil_layers", class_name="EvilDense", registered_name="evil_layers>EvilDense")

    edit_config(folder, edit)


@case
def tfsm_layer(folder: Path, marker: Path) -> None:
    def edit(config: dict) -> None:
        layer = config["config"]["layers"][1]
        layer.update(module="keras.layers", class_name="TFSMLayer", registered_name=None)
        layer["config"] = {"filepath": str(marker.parent), "call_endpoint": "serve", "name": "tfsm"}

    edit_config(folder, edit)


# ---------------------------------------------------------------- SavedModels with file I/O ops


def saved_model_with(folder: Path, body: Callable[[tf.Tensor], tf.Tensor]) -> None:  # noqa: F821
    import tensorflow as tf

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None, 64), tf.float32, name="pixels")])
        def serve(self, pixels):
            return {"output_0": body(pixels)}

    (folder / "model.keras").unlink()
    module = Module()
    tf.saved_model.save(module, str(folder / "saved_model"), signatures={"serving_default": module.serve})


@case
def saved_model_write_file(folder: Path, marker: Path) -> None:
    import tensorflow as tf

    def body(pixels):
        with tf.control_dependencies([tf.io.write_file(str(marker), "ran")]):
            return tf.nn.softmax(pixels[:, :10])

    saved_model_with(folder, body)


@case
def saved_model_read_file(folder: Path, marker: Path) -> None:
    import tensorflow as tf

    def body(pixels):
        secret = tf.strings.length(tf.io.read_file("/etc/hostname"))
        return tf.nn.softmax(pixels[:, :10]) + tf.cast(secret, tf.float32) * 0

    saved_model_with(folder, body)


@case
def saved_model_matching_files(folder: Path, marker: Path) -> None:
    import tensorflow as tf

    def body(pixels):
        found = tf.size(tf.io.matching_files("/root/*"))
        return tf.nn.softmax(pixels[:, :10]) + tf.cast(found, tf.float32) * 0

    saved_model_with(folder, body)


@case
def saved_model_random_bytes(folder: Path, marker: Path) -> None:
    (folder / "model.keras").unlink()
    (folder / "saved_model").mkdir()
    (folder / "saved_model" / "saved_model.pb").write_bytes(noise(2048))


@case
def saved_model_file_name_not_utf8(folder: Path, marker: Path) -> None:
    saved_model_random_bytes(folder, marker)
    (folder / "saved_model" / os.fsdecode(b"variables\xff")).write_bytes(b"")


# ---------------------------------------------------------------- hostile archives


@case
def zip_slip(folder: Path, marker: Path) -> None:
    rewrite_keras(folder, lambda entries: entries.update({"../../markers/zip_slip": b"ran"}))


@case
def absolute_path_entry(folder: Path, marker: Path) -> None:
    rewrite_keras(folder, lambda entries: entries.update({str(marker): b"ran"}))


@case
def symlink_entry(folder: Path, marker: Path) -> None:
    path = folder / "model.keras"
    with zipfile.ZipFile(path, "a") as archive:
        link = zipfile.ZipInfo("assets/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, str(marker))


@case
def zip_bomb(folder: Path, marker: Path) -> None:
    path = folder / "model.keras"
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("assets/bomb.bin", "w", force_zip64=True) as bomb:
            zeros = bytes(1 << 20)
            for _ in range(64):  # 64 MiB of zeros in about 64 KiB: the ratio gives it away
                bomb.write(zeros)


@case
def truncated_keras(folder: Path, marker: Path) -> None:
    path = folder / "model.keras"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@case
def empty_keras(folder: Path, marker: Path) -> None:
    (folder / "model.keras").write_bytes(b"")


@case
def random_bytes_keras(folder: Path, marker: Path) -> None:
    (folder / "model.keras").write_bytes(noise(4096))


@case
def random_bytes_h5(folder: Path, marker: Path) -> None:
    (folder / "model.keras").unlink()
    # The HDF5 signature, then superblock version 255 (no HDF5 library writes it), then noise
    (folder / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n\xff" + noise(4096))


@case
def config_not_json(folder: Path, marker: Path) -> None:
    rewrite_keras(folder, lambda entries: entries.update({"config.json": b"{'not': json"}))


# ---------------------------------------------------------------- weights that read other files


def secret_file(folder: Path) -> Path:
    """What the weights would exfiltrate: in CI, /proc/self/environ holds the secrets."""
    secret = folder.parent.parent / "secret.txt"
    secret.write_bytes(b"GITHUB_TOKEN=ghs_not_a_real_token\n" * 100)
    return secret


@case
def h5_external_dataset(folder: Path, marker: Path) -> None:
    import h5py
    import tf_keras

    model = tf_keras.Sequential([tf_keras.Input((64,), name="pixels"), tf_keras.layers.Dense(10, name="out")])
    (folder / "model.keras").unlink()
    model.save(folder / "model.h5")
    with h5py.File(folder / "model.h5", "a") as h5:
        group = h5["model_weights/out/out"]
        del group["kernel:0"]  # the same shape, read from another file: tf-keras would load its bytes as weights
        group.create_dataset("kernel:0", shape=(64, 10), dtype="f4", external=[(str(secret_file(folder)), 0, 2560)])


@case
def keras_weights_external_link(folder: Path, marker: Path) -> None:
    import io

    import h5py

    def change(entries: dict[str, bytes]) -> None:
        weights = io.BytesIO(entries["model.weights.h5"])
        with h5py.File(weights, "a") as h5:
            del h5["layers/dense/vars/0"]
            h5["layers/dense/vars/0"] = h5py.ExternalLink(str(secret_file(folder)), "/kernel")
        entries["model.weights.h5"] = weights.getvalue()

    rewrite_keras(folder, change)


@case
def npz_entry_not_an_array(folder: Path, marker: Path) -> None:
    x = np.load(folder / "eval.npz")["x"]
    np.savez(folder / "eval.npz", x=x)
    with zipfile.ZipFile(folder / "eval.npz", "a") as npz:
        npz.writestr("y.npy", b"not an array")  # np.load hands back these bytes instead of an array


# ---------------------------------------------------------------- data files


class Payload:
    """Unpickling this object creates the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (marker_code(self.marker),))


@case
def pickle_in_npz(folder: Path, marker: Path) -> None:
    x = np.empty(1, dtype=object)
    x[0] = Payload(marker)
    np.savez(folder / "eval.npz", x=x, y=np.zeros(1, dtype=np.int64))


@case
def strings_in_npz(folder: Path, marker: Path) -> None:
    np.savez(folder / "eval.npz", x=np.array([["a"] * 64]), y=np.zeros(1, dtype=np.int64))


@case
def random_bytes_npz(folder: Path, marker: Path) -> None:
    (folder / "eval.npz").write_bytes(noise(1024))


@case
def wrong_shape(folder: Path, marker: Path) -> None:
    np.savez(folder / "eval.npz", x=np.zeros((5, 8, 8), np.float32), y=np.zeros(5, np.int64))


@case
def nan_in_data(folder: Path, marker: Path) -> None:
    x = np.zeros((5, 64), np.float32)
    x[2, 3] = np.nan
    np.savez(folder / "eval.npz", x=x, y=np.zeros(5, np.int64))


@case
def label_out_of_range(folder: Path, marker: Path) -> None:
    np.savez(folder / "eval.npz", x=np.zeros((5, 64), np.float32), y=np.array([0, 1, 2, 10, 3]))


# ---------------------------------------------------------------- folders and manifests


@case
def two_model_files(folder: Path, marker: Path) -> None:
    shutil.copy(folder / "model.keras", folder / "model.h5")


@case
def missing_eval_data(folder: Path, marker: Path) -> None:
    (folder / "eval.npz").unlink()


@case
def missing_calibration_data(folder: Path, marker: Path) -> None:
    (folder / "train.npz").unlink()


@case
def symlinked_eval_data(folder: Path, marker: Path) -> None:
    (folder / "eval.npz").unlink()
    (folder / "eval.npz").symlink_to("/etc/hostname")


@case
def bad_toml(folder: Path, marker: Path) -> None:
    (folder / "gate.toml").write_text('task = "classification\n')


@case
def unknown_key(folder: Path, marker: Path) -> None:
    (folder / "gate.toml").write_text("calibration_sample = 100\n")


@case
def mistyped_value(folder: Path, marker: Path) -> None:
    (folder / "gate.toml").write_text('calibration_samples = "200"\n')


LIVE_WHEN_BUILT = {"lambda_keras3", "lambda_tf_keras_h5", "lambda_tf_keras_keras"}

MESSAGES = {
    "absolute_path_entry": "{folder}/model.keras: entry '{marker}' has an absolute path, which could write outside "
    'the extraction folder; re-save the model with model.save("model.keras")',
    "bad_toml": "Failed to parse {folder}/gate.toml: Illegal character '\\n' (at line 1, column 23); fix the TOML "
    "syntax",
    "config_not_json": "{folder}/model.keras: config.json: is not valid JSON (JSONDecodeError: Expecting property name "
    "enclosed in double quotes: line 1 column 2 (char 1)); re-save the model with model.save()",
    "custom_object_not_allowed": "{folder}/model.keras: config.json: layer 'dense' (config.layers[1]) is the custom "
    "object 'evil_layers>EvilDense', which runs code from outside Keras when loaded; if you trust it, add "
    '"evil_layers>EvilDense" to allow_custom_objects in gate.toml',
    "empty_keras": "{folder}/model.keras: is not a zip archive (empty, truncated or another format); re-save the model "
    'with model.save("model.keras")',
    "h5_external_dataset": "{folder}/model.h5: dataset 'model_weights/out/out/kernel:0' keeps its data in the outside "
    'file {secret}, so loading would read that file into the weights; re-save the model with model.save("model.keras") '
    '(or model.save("model.h5"))',
    "initializer_from_outside_module": "{folder}/model.keras: config.json: layer 'dense' "
    "(config.layers[1].config.kernel_initializer) names module 'os', which is not part of Keras, so loading would "
    "import it; use Keras' own layers and functions (or a registered custom object listed in allow_custom_objects in "
    "gate.toml)",
    "keras_weights_external_link": "{folder}/model.keras: model.weights.h5: 'layers/dense/vars/0' is an HDF5 external "
    'link to {secret}:/kernel, so loading would read another file; re-save the model with model.save("model.keras")',
    "label_out_of_range": "{folder}/eval.npz: y holds class 10, but the model scores classes 0..9; fix the labels or "
    "the model's output layer",
    "lambda_keras3": "{folder}/model.keras: config.json: layer 'lambda' (config.layers[1]) is a Lambda layer, which "
    "runs arbitrary Python when loaded; replace it with a built-in layer or a custom layer allowed in gate.toml",
    "lambda_tf_keras_h5": "{folder}/model.h5: model_config: layer 'lambda' (config.layers[1]) is a Lambda layer, which "
    "runs arbitrary Python when loaded; replace it with a built-in layer or a custom layer allowed in gate.toml",
    "lambda_tf_keras_keras": "{folder}/model.keras: config.json: layer 'lambda_1' (config.layers[1]) is a Lambda "
    "layer, which runs arbitrary Python when loaded; replace it with a built-in layer or a custom layer allowed in "
    "gate.toml",
    "missing_calibration_data": "{folder}: no candidate could be built: int8, int8-all-calibration, qat-int8, "
    "int8-float-fallback, int8-int16-layers, int16x8: not tried: it needs calibration data: add calib.npz (x) or "
    "train.npz (x, y), or set calibrate_on_eval = true in gate.toml to calibrate on the eval set (the report will "
    "say so); dynamic_range, float16: not tried: its model input is float32, and the policy requires "
    "io.input_dtype = int8",
    "missing_eval_data": "{folder}: no eval.npz; add one with arrays x and y so the gate can measure the model on its "
    "own data",
    "mistyped_value": "{folder}/gate.toml: calibration_samples: expected a whole number from 1 to 100000, got '200'",
    "nan_in_data": "{folder}/eval.npz: x contains NaN or infinite values; remove or impute them",
    "npz_entry_not_an_array": "{folder}/eval.npz: entry 'y' is not a NumPy array; write the file with numpy.savez",
    "outside_module": "{folder}/model.keras: config.json: config.layers[1] names module 'builtins', which is not part "
    "of Keras, so loading would import it; use Keras' own layers and functions (or a registered custom object listed "
    "in allow_custom_objects in gate.toml)",
    "pickle_in_npz": "{folder}/eval.npz: holds a pickled (object) array, which could run code when loaded; save only "
    "numeric arrays",
    "random_bytes_h5": "{folder}/model.h5: is not a readable HDF5 file (OSError: Unable to synchronously open file "
    "(bad "
    'superblock version number)); re-save the model with model.save("model.keras") (or model.save("model.h5"))',
    "random_bytes_keras": "{folder}/model.keras: is not a zip archive (empty, truncated or another format); re-save "
    'the model with model.save("model.keras")',
    "random_bytes_npz": "{folder}/eval.npz: is not a readable .npz file (not a zip archive); write it with numpy.savez",
    "saved_model_matching_files": "{folder}/saved_model/saved_model.pb: function '{{function}}' runs op "
    "'MatchingFiles' (node 'MatchingFiles'), which is not an inference op the gate allows (those never touch files, "
    "the "
    "network or Python); export the model again with model.export() (Keras 3) or tf.saved_model.save()",
    "saved_model_random_bytes": "{folder}/saved_model/saved_model.pb: is not a readable SavedModel ({{detail}}); "
    "export the model again with model.export() (Keras 3) or tf.saved_model.save()",
    "saved_model_file_name_not_utf8": "{folder}/saved_model/variables\\xff: the file name is not valid UTF-8; "
    "TensorFlow writes none like it, so export the model again with model.export() (Keras 3) or tf.saved_model.save()",
    "saved_model_read_file": "{folder}/saved_model/saved_model.pb: function '{{function}}' runs op 'ReadFile' (node "
    "'ReadFile'), which is not an inference op the gate allows (those never touch files, the network or Python); "
    "export "
    "the model again with model.export() (Keras 3) or tf.saved_model.save()",
    "saved_model_write_file": "{folder}/saved_model/saved_model.pb: function '{{function}}' runs op 'WriteFile' (node "
    "'WriteFile'), which is not an inference op the gate allows (those never touch files, the network or Python); "
    "export the model again with model.export() (Keras 3) or tf.saved_model.save()",
    "strings_in_npz": "{folder}/eval.npz: x has dtype <U1; expected numbers (int, uint or float)",
    "symlinked_eval_data": "{folder}/eval.npz: is a symbolic link, which could point anywhere on the machine that runs "
    "the gate; commit the folder or file itself",
    "symlink_entry": "{folder}/model.keras: entry 'assets/link' is a symbolic link, which could point outside the "
    'archive; re-save the model with model.save("model.keras")',
    "tfsm_layer": "{folder}/model.keras: config.json: layer 'tfsm' (config.layers[1]) is a TFSMLayer, which loads and "
    "runs another SavedModel from a path when loaded (CVE-2026-1462); rebuild the model from Keras layers, or gate "
    "that SavedModel on its own",
    "truncated_keras": "{folder}/model.keras: is not a zip archive (empty, truncated or another format); re-save the "
    'model with model.save("model.keras")',
    "two_model_files": "{folder}: found model.keras and model.h5; keep exactly one model per folder so it is clear "
    "which one is gated",
    "unknown_key": "{folder}/gate.toml: unknown key 'calibration_sample' (did you mean 'calibration_samples'?); "
    "allowed "
    "keys: task, metric, direction, policy, method, calibration_samples, calibrate_on_eval, overrides, "
    "override_reason, outputs, allow_custom_objects",
    "wrong_shape": "{folder}/eval.npz: x has shape (5, 8, 8); model input 'pixels' expects (samples, 64)",
    "zip_bomb": "{folder}/model.keras: entry 'assets/bomb.bin' expands {{ratio}}x ({{sizes}}), more than the 100x a "
    'model file needs (a zip bomb?); re-save the model with model.save("model.keras")',
    "zip_slip": "{folder}/model.keras: entry '../../markers/zip_slip' climbs out of the archive with '..', which could "
    'write outside the extraction folder (zip slip); re-save the model with model.save("model.keras")',
}


NOT_UTF8 = "not_utf8_\\xff"  # as reports show the folder name b"not_utf8_\xff"


SHADOWING_MODULES = ("numpy", "h5py", "keras", "tensorflow", "jinja2", "json", "tomllib")


@pytest.fixture(scope="session")
def catalogue_run(tmp_path_factory, healthy_model):
    root = tmp_path_factory.mktemp("catalogue")
    (root / "policies").mkdir()
    for name, text in TEST_POLICIES.items():
        (root / "policies" / f"{name}.toml").write_text(text)
    (root / "markers").mkdir()
    for name, build in CASES.items():
        folder = root / "models" / name
        shutil.copytree(healthy_model, folder)
        marker = root / "markers" / name
        build(folder, marker)
        if name in LIVE_WHEN_BUILT:
            # Keras ran the Lambda while building the model: proof that the payload is live.
            assert marker.exists()
            marker.unlink()
    shutil.copytree(healthy_model, root / "models" / "zz_healthy")
    # Python keeps the undecodable byte as a lone surrogate, which once made writing report.md crash.
    shutil.copytree(healthy_model, root / "models" / os.fsdecode(b"not_utf8_\xff"))
    # A gate.toml beside the model folders once made models/ itself the only model, hiding every folder.
    (root / "models" / "gate.toml").write_text('task = "classification"\n')
    for module in SHADOWING_MODULES:
        # A pull request can commit these at the repository root, where `python -m` would import them first.
        (root / f"{module}.py").write_text(f"open({str(root / 'markers' / module)!r}, 'w').close()\n")
    return root, run_gate("check", cwd=root)


@pytest.mark.slow
def test_the_catalogue_holds_at_least_25_cases_each_refused_by_its_own_defence(catalogue_run) -> None:
    """Counted in gate's report, not in this file: 25 cases that one check refused would test one defence."""
    root, run = catalogue_run
    refusals = {
        model["name"]: model["error"].splitlines()[0].replace(str(Path("models") / model["name"]), "{folder}")
        for model in run.report["models"]
        if model["name"] in CASES and model["status"] == "ERROR"
    }
    assert sorted(refusals) == sorted(CASES) == sorted(MESSAGES)
    assert len(set(refusals.values())) >= 25


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_case_is_refused_with_its_message_and_nothing_runs(catalogue_run, name) -> None:
    root, run = catalogue_run
    model = run.model(name)
    assert model["status"] == "ERROR"
    expected = MESSAGES[name].format(
        folder=Path("models") / name, marker=root / "markers" / name, secret=root / "secret.txt"
    )
    # {function}, {detail}, {ratio}, {sizes}: generated names and sizes that vary between TF versions
    pattern = re.escape(expected).replace(r"\{function\}", r"__inference_\w+").replace(r"\{detail\}", r"[^)]+")
    pattern = pattern.replace(r"\{ratio\}", r"\d+").replace(r"\{sizes\}", r"\d+ to \d+ bytes")
    assert re.fullmatch(pattern, model["error"].splitlines()[0]), model["error"]
    assert not list((root / "markers").iterdir())


def test_modules_committed_at_the_repository_root_are_never_imported(catalogue_run) -> None:
    root, run = catalogue_run
    assert [module for module in SHADOWING_MODULES if (root / "markers" / module).exists()] == []
    assert run.model("zz_healthy")["status"] == "PASS"


def test_model_files_beside_the_model_folders_are_an_error_row_and_hide_none(catalogue_run) -> None:
    root, run = catalogue_run
    assert run.model("models/")["error"] == (
        f"{Path('models')}: holds gate.toml beside model folders; the files of a model belong in a folder of their "
        "own, "
        "models/<name>/, so move them there (or delete them)"
    )
    assert {model["name"] for model in run.report["models"]} == set(CASES) | {"zz_healthy", "models/", NOT_UTF8}


def test_a_folder_name_that_is_not_utf8_is_an_error_row(catalogue_run) -> None:
    import cmarkgfm

    _root, run = catalogue_run
    assert run.model(NOT_UTF8)["error"] == (
        f"{Path('models') / NOT_UTF8}: the folder name is not valid UTF-8 (its other bytes are shown as \\xNN); "
        "rename the folder using UTF-8 characters"
    )
    # Its backslash escaped, so that GitHub shows it (and the underscore before it, which gate.escape escapes
    # wherever one could start or end emphasis): it reads as the folder's name.
    assert "| not_utf8\\_\\\\xff |" in run.markdown
    assert "<td>not_utf8_\\xff</td>" in cmarkgfm.github_flavored_markdown_to_html(run.markdown)


def test_the_healthy_model_in_the_same_run_passes(catalogue_run) -> None:
    _root, run = catalogue_run
    assert run.model("zz_healthy")["status"] == "PASS"
    assert run.exit_code == 1
    assert "Traceback" not in run.stdout + run.stderr
