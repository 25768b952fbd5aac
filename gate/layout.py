"""Where a run writes its outputs: the one place that names every file in --out.

A model's worker writes only into that model's staging folder
(`--out/.staging/<model>/`), laid out as the final folder is. When the model
was gated (PASS or FAIL), `publish` moves the files its result keeps into
place; when it was not (ERROR), `discard` removes the staging folder. So a
model that could not be gated leaves no artifact, whatever it had written.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from gate.files import refuse_links

REPORT_MD, REPORT_JSON, CHECKSUMS, COMMENT_MD = "report.md", "report.json", "SHA256SUMS", "comment.md"
ARTIFACTS, BENCHMARKS, LOGS = "artifacts", "benchmarks", "logs"
STAGING = ".staging"
# What a run writes into --out; all of it is removed when a run starts, so a report or artifact left by
# an earlier or interrupted run is never mistaken for this run's.
OUTPUTS = (REPORT_MD, REPORT_JSON, CHECKSUMS, COMMENT_MD, ARTIFACTS, BENCHMARKS, LOGS, STAGING)


# The longest file name most file systems allow, in bytes (NAME_MAX).
MAX_NAME_BYTES = 255
# A model with several outputs: what each output's Keras name may be, as gate.toml's [outputs.<name>], eval.npz's
# y.<name>, the checks ("accuracy.max_drop (<name>)") and a result read back name it; and how many a model may have.
OUTPUT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MAX_OUTPUTS = 32


def name_problem(name: str, *, loose_files: bool = False) -> str:
    """Why `name`, read from data written elsewhere, cannot be a model's name (a folder name), or "".

    Every output path is built from it (`artifacts/<name>.<method>.tflite`), so it must be one plain path
    component. With `loose_files`, it may also be the ERROR row of files beside the model folders, `<name>/`.
    """
    plain = name[:-1] if loose_files and name.endswith("/") else name
    if plain in ("", ".", "..") or "/" in plain or "\0" in plain:
        return f"{name[:80]!r} is not a folder name"
    if any(0xD800 <= ord(character) <= 0xDFFF for character in plain):
        return f"{name[:80]!r} is not valid UTF-8"
    if len(plain.encode()) > MAX_NAME_BYTES:
        return f"{name[:80]!r}… is longer than a folder name can be ({MAX_NAME_BYTES} bytes)"
    return ""


def artifact_path(model: str, method: str) -> str:
    """An artifact's path inside --out (and inside the model's staging folder), as results record it."""
    return f"{ARTIFACTS}/{model}.{method}.tflite"


def resolver_path(model: str, method: str) -> str:
    """The tflm target's op resolver snippet, beside its artifact: `artifacts/<model>.<method>.ops.h`."""
    return f"{ARTIFACTS}/{model}.{method}.ops.h"


def vela_path(model: str, method: str) -> str:
    """An Ethos-U target's Vela-optimised model, beside its artifact: `artifacts/<model>.<method>.vela.tflite`."""
    return f"{ARTIFACTS}/{model}.{method}.vela.tflite"


def benchmark_path(model: str) -> str:
    return f"{BENCHMARKS}/{model}.json"


def log_path(model: str) -> str:
    return f"{LOGS}/{model}.log"


@dataclass(frozen=True)
class ModelOutputs:
    """The staging folder of one model: relative paths inside it are the final paths inside --out."""

    out_dir: Path
    model: str

    @property
    def root(self) -> Path:
        return self.out_dir / STAGING / self.model

    def artifact(self, method: str) -> Path:
        return self.root / artifact_path(self.model, method)

    @property
    def benchmark(self) -> Path:
        return self.root / benchmark_path(self.model)

    @property
    def log(self) -> Path:
        """Logs are written in place at once: they explain an ERROR too."""
        return self.out_dir / log_path(self.model)

    def publish(self, keep: set[str]) -> None:
        """Move the staged files whose relative paths are in `keep` into --out, then drop the rest."""
        for relative in sorted(keep):
            source = self.root / relative
            if source.is_file():
                target = self.out_dir / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def clear_outputs(out_dir: Path) -> None:
    """Remove what an earlier run wrote (only gate's own files, never anything else in the folder).

    Raises ConfigError, before anything is deleted, when `out_dir` is or lies under a symbolic link:
    `gate check` and `gate merge` would otherwise delete and write in the folder it points to.
    """
    refuse_links(out_dir, "pass a real folder with --out (gate deletes its earlier outputs there)")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        path = out_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for leftover in out_dir.glob(".*.tmp"):  # temporaries of an interrupted write_atomic
        leftover.unlink()
