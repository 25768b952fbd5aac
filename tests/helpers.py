"""Helpers the tests import: tiny real models built in code, and `gate` run as a user runs it.

Each model is a few hundred to a few thousand parameters and trains in about a
second, so the tests run the real TensorFlow converter and LiteRT on them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"
BIN = Path(sys.executable).parent  # the test venv's executables: gate, check-jsonschema, zizmor
TEST_POLICIES = {
    "default": (REPO / "policies" / "default.toml").read_text(),
    # for dynamic-range and float16 models, whose I/O stays float32
    "float_io": "[size]\nmin_reduction = 2.0\n[accuracy]\nmax_drop = 2.0\n"
    '[io]\ninput_dtype = "float32"\noutput_dtype = "float32"\n',
}


@dataclass(frozen=True)
class GateRun:
    exit_code: int
    stdout: str
    stderr: str
    out_dir: Path

    @property
    def report(self) -> dict:
        return json.loads((self.out_dir / "report.json").read_text())

    @property
    def markdown(self) -> str:
        return (self.out_dir / "report.md").read_text()

    def model(self, name: str) -> dict:
        return next(m for m in self.report["models"] if m["name"] == name)


def run_gate(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> GateRun:
    """`gate ...` as a user runs it, in a fresh process (`env` adds to the environment)."""
    process = subprocess.run(
        [sys.executable, "-P", "-m", "gate.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        env=os.environ | env if env else None,
    )
    out = Path(cwd) / (args[args.index("--out") + 1] if "--out" in args else "gate-out")
    return GateRun(process.returncode, process.stdout, process.stderr, out)


def planted(folder: Path, code: str) -> dict[str, str]:
    """The environment that makes every Python process of a run (main, workers) run `code` at start-up.

    For what no real input can make gate do on demand (a converter that hangs, a bug in gate): `code`
    replaces one function of gate, and the rest of the run, processes, pipes and signals, is real.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(code)
    return {"PYTHONPATH": str(folder)}


def digits(features: str = "flat") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)
    x = x.reshape(len(x), 64) if features == "flat" else x  # "rows": 8 time steps of 8 features
    y = data.target.astype(np.int64)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def write_data(folder: Path, x_train, y_train, x_eval, y_eval) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "train.npz", x=x_train, y=y_train)
    np.savez(folder / "eval.npz", x=x_eval, y=y_eval)


def keras3_mlp(folder: Path, manifest: str = "") -> Path:
    """A Keras 3 64-16-10 MLP on the digits, saved with model.save()."""
    import keras

    x_train, y_train, x_eval, y_eval = digits()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,), name="pixels"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=30, batch_size=64, verbose=0)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    write_data(folder, x_train, y_train, x_eval, y_eval)
    if manifest:
        (folder / "gate.toml").write_text(manifest)
    return folder


def outputs_of_repeated_invokes(path: Path, sample: np.ndarray, times: int = 3) -> list[np.ndarray]:
    """The output of invoking the same input `times` times on one interpreter, never resetting it."""
    from ai_edge_litert.interpreter import Interpreter

    from gate.measure import to_model_input

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (detail,), (output,) = interpreter.get_input_details(), interpreter.get_output_details()
    outputs = []
    for _ in range(times):
        interpreter.set_tensor(detail["index"], to_model_input(sample, detail))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output["index"]).copy())
    return outputs


def git(repo: Path, *args: str) -> str:
    """Run git in `repo`; its stdout, stripped."""
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def commit(repo: Path, message: str) -> str:
    """Commit everything in `repo` as a test author; the new commit's SHA."""
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def load_workflow(path: Path) -> dict:
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def workflow_step(workflow: dict, job: str, text: str) -> dict:
    """The one step of `job` whose name or script holds `text`."""
    (step,) = [s for s in workflow["jobs"][job]["steps"] if text in s.get("name", "") or text in s.get("run", "")]
    return step


def heredoc(script: str) -> str:
    """What a step's script writes with `cat > FILE <<'EOF'` ... `EOF`."""
    return script.split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0] + "\n"


def comment_requirements() -> str:
    """The packages the comment job installs besides gate, pinned by hash, as its install step writes them."""
    workflow = load_workflow(WORKFLOWS / "reusable-gate-comment.yml")
    return heredoc(workflow_step(workflow, "comment", "Install gate")["run"])


def run_step(
    step: dict,
    expressions: dict[str, str],
    *,
    cwd: Path,
    path: str = f"{BIN}:/usr/bin:/bin",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """A step's `run:` as the runner runs it (bash -eo pipefail), with its `env:`: each `${{ expression }}` in it
    is taken from `expressions`, so a step that reads one the test did not expect fails here. `env` adds to the
    environment, as the runner's own variables (GITHUB_SHA, ...) do."""

    def value(match: re.Match) -> str:
        return expressions[match.group(1)]

    env = os.environ | (env or {}) | {"PATH": path, "RUNNER_TEMP": str(cwd)}
    env |= {name: re.sub(r"\$\{\{\s*(.+?)\s*\}\}", value, str(text)) for name, text in step.get("env", {}).items()}
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
