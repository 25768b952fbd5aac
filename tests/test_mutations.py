"""Damaged files: inspecting a mutant of a real model gives an Inspection or a ModelError naming the file, nothing else.

A child process builds small real files: a Keras 3 MLP saved as model.keras
and model.h5 (compiled and fitted, so with optimizer state and a
training_config), a SavedModel from model.export() and an eval.npz. Each is
damaged a few dozen ways, seeded: bytes flipped, a run of bytes zeroed, the
file cut short; for the zip formats also inside one entry, re-zipped with a
good CRC, so the damage reaches the JSON, HDF5 or .npy parser behind it.

Another child inspects every mutant (.npz files: reads them with gate's
reader) and reports each as one JSON line, so a crash or a hang of the HDF5
library fails the test naming the mutant instead of taking pytest down.
Mutants that pass inspection are fine: the isolated worker loads them next.

The files are the same bytes on every run: they are built in a fresh
process (TensorFlow names functions by a process-wide counter), the exported
model has one variable (export orders several differently from run to run)
and the .keras archive is re-zipped without its save date and with the
shared objects of its config numbered in order instead of by id().
"""

from __future__ import annotations

import collections
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import gate

pytestmark = pytest.mark.slow  # end-to-end: real TensorFlow conversions or gate runs

GATE_ROOT = Path(gate.__file__).resolve().parent.parent  # the gate these tests import, for the child processes
MUTANTS_PER_FORMAT = 40
CHILD_TIMEOUT_S = 120  # a healthy run takes a few seconds
FIXED_DATE = (2026, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Mutant:
    name: str  # what was damaged and how, e.g. "model.h5 #7: 212 bytes zeroed at 4945"
    path: Path  # what to inspect: the file, or the SavedModel folder
    kind: str  # "model" or "npz"


# --- building the files (run in a child process) ------------------------------------------------------


def build(folder: Path) -> None:
    """The undamaged files, written to `folder`: model.keras, model.h5, saved_model/ and eval.npz."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 4), dtype=np.float32), rng.integers(0, 2, 8)
    layers = [
        keras.Input((4,), name="features"),
        keras.layers.Dense(3, activation="relu", name="hidden"),
        keras.layers.Dense(2, activation="softmax", name="scores"),
    ]
    model = keras.Sequential(layers, name="mlp")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    model.save(folder / "model.h5")
    model.save(folder / "saved.keras")
    linear = keras.Sequential(
        [keras.Input((4,), name="features"), keras.layers.Dense(2, use_bias=False)], name="linear"
    )
    linear.export(str(folder / "saved_model"), verbose=False)
    np.savez(folder / "eval.npz", x=x, y=y)
    with zipfile.ZipFile(folder / "saved.keras") as saved, zipfile.ZipFile(folder / "model.keras", "w") as archive:
        for info in saved.infolist():
            data = saved.read(info)
            if info.filename == "metadata.json":
                data = json.dumps({key: value for key, value in json.loads(data).items() if key != "date_saved"})
            if info.filename == "config.json":
                data = numbered_shared_objects(data)
            archive.writestr(zipfile.ZipInfo(info.filename, FIXED_DATE), data)
    (folder / "saved.keras").unlink()


def numbered_shared_objects(config: bytes) -> bytes:
    """config.json with its shared objects numbered in order of appearance instead of by id(), a memory address."""
    numbers: dict[bytes, int] = {}

    def number(match: re.Match) -> bytes:
        return b'"shared_object_id": %d' % numbers.setdefault(match[1], len(numbers) + 1)

    return re.sub(rb'"shared_object_id": (\d+)', number, config)


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("originals")
    run_child("build", folder, timeout=300)
    return folder


# --- mutants --------------------------------------------------------------------------------------------


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """`data` with bytes flipped, a run of bytes zeroed or its end cut off, and what was done."""
    kind = rng.choice(("flip", "zero", "cut"))
    if kind == "flip":
        damaged = bytearray(data)
        offsets = sorted(rng.sample(range(len(data)), rng.randint(1, 8)))
        for offset in offsets:
            damaged[offset] ^= rng.randint(1, 255)
        return bytes(damaged), f"bytes flipped at {', '.join(map(str, offsets))}"
    if kind == "zero":
        start, count = rng.randrange(len(data)), rng.randint(1, 512)
        count = min(count, len(data) - start)
        return data[:start] + bytes(count) + data[start + count :], f"{count} bytes zeroed at {start}"
    length = rng.randrange(len(data))
    return data[:length], f"cut to {length} of {len(data)} bytes"


def mutate_entry(archive: bytes, entries: tuple[str, ...], rng: random.Random) -> tuple[bytes, str]:
    """A zip archive with one of `entries` mutated, re-zipped with its CRC recomputed."""
    target = rng.choice(entries)
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as source, zipfile.ZipFile(buffer, "w") as damaged:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == target:
                data, how = mutate(data, rng)
            damaged.writestr(info, data)
    return buffer.getvalue(), f"{target}: {how}"


FORMATS = {  # file name: the zip entries to damage besides the whole file, and what reads the file
    "model.keras": (("metadata.json", "config.json", "model.weights.h5"), "model"),
    "model.h5": ((), "model"),
    "saved_model": ((), "model"),
    "eval.npz": (("x.npy", "y.npy"), "npz"),
}


def mutants(originals: Path, name: str, folder: Path) -> list[Mutant]:
    """The intact file and MUTANTS_PER_FORMAT mutants of it, half of them inside an entry for the zip formats."""
    entries, kind = FORMATS[name]
    source = originals / name / "saved_model.pb" if name == "saved_model" else originals / name
    data = source.read_bytes()
    rng = random.Random(f"gate mutations {name}")
    made = []
    for index in range(MUTANTS_PER_FORMAT + 1):
        if index == 0:
            damaged, how = data, "intact"
        elif entries and index % 2 == 0:
            damaged, how = mutate_entry(data, entries, rng)
        else:
            damaged, how = mutate(data, rng)
        path = folder / f"{index:02d}" / name
        target = path / "saved_model.pb" if name == "saved_model" else path
        target.parent.mkdir(parents=True)
        target.write_bytes(damaged)
        made.append(Mutant(f"{name} #{index}: {how}", path, kind))
    return made


# --- inspecting them (run in a child process) -----------------------------------------------------------


def inspect_all(manifest: Path) -> None:
    """Inspect every mutant the manifest lists; print one JSON line each, as soon as it is done."""
    from gate.errors import ModelError
    from gate.frontends.base import InputSpec
    from gate.frontends.data import load_dataset
    from gate.inspection import inspect_model

    for entry in json.loads(manifest.read_text()):
        path = Path(entry["path"])
        try:
            if entry["kind"] == "npz":
                inputs = (InputSpec(name="features", shape=(4,), dtype="float32"),)
                load_dataset(
                    path,
                    model_folder=path.parent,
                    inputs=inputs,
                    task="classification",
                    output_width=2,
                    need_labels=True,
                )
            else:
                inspect_model(path)
            outcome, message = "accepted", ""
        except ModelError as exc:
            outcome, message = "ModelError", str(exc)
        except Exception as exc:  # what the test looks for
            outcome, message = type(exc).__name__, str(exc)
        print(json.dumps({"mutant": entry["name"], "outcome": outcome, "message": message[:1000]}), flush=True)


def run_child(command: str, argument: Path, *, timeout: float) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(GATE_ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-X", "faulthandler", __file__, command, str(argument)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=command == "build",
    )


def text(output: bytes | str | None) -> str:
    """What a timed-out child wrote: subprocess hands it over as bytes on POSIX, even in text mode."""
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


# --- the test ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_mutant_is_inspected_or_refused_with_a_model_error(originals, tmp_path, name) -> None:
    made = mutants(originals, name, tmp_path)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps([{"name": m.name, "path": str(m.path), "kind": m.kind} for m in made]))
    try:
        child = run_child("inspect", manifest, timeout=CHILD_TIMEOUT_S)
        stdout, stderr, code = child.stdout, child.stderr, child.returncode
        ending = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    except subprocess.TimeoutExpired as timeout:
        stdout, stderr = text(timeout.stdout), text(timeout.stderr)
        ending = f"no answer within {CHILD_TIMEOUT_S} s"
    results = {line["mutant"]: line for line in map(json.loads, filter(None, stdout.splitlines()))}
    unfinished = [m.name for m in made if m.name not in results]
    assert not unfinished, f"{unfinished[0]}: the inspection never finished ({ending}):\n{stderr[-3000:]}"

    def acceptable(mutant: Mutant) -> bool:
        result = results[mutant.name]
        if mutant.name.endswith(": intact"):
            return result["outcome"] == "accepted"
        return result["outcome"] == "accepted" or (
            result["outcome"] == "ModelError" and result["message"].startswith(str(mutant.path))
        )

    wrong = [f"{m.name}: {results[m.name]['outcome']}: {results[m.name]['message']}" for m in made if not acceptable(m)]
    assert not wrong, "\n".join(wrong)
    outcomes = collections.Counter(result["outcome"] for result in results.values())
    assert outcomes["ModelError"] >= MUTANTS_PER_FORMAT // 4, outcomes  # the damage reached the parsers


if __name__ == "__main__":
    {"build": build, "inspect": inspect_all}[sys.argv[1]](Path(sys.argv[2]))
