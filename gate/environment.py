"""What the machine and the installed tools are: the parts of a result that are not in the repository.

Read without importing TensorFlow (package metadata and /proc only), so that a
run whose results all come from the cache never imports it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from gate import __version__

# Every distribution a figure can depend on: the converters, the runtime, QAT and the benchmark.
TOOL_DISTRIBUTIONS = (
    "tensorflow",
    "keras",
    "tf-keras",
    "tensorflow-model-optimization",
    "ai-edge-litert",
    "litert-quantizer",
    "numpy",
    "pytest-benchmark",
    "tflite-micro",
    "ethos-u-vela",
)


@functools.cache
def tool_versions() -> dict[str, str]:
    versions = {"gate": __version__, "python": sys.version.split()[0]}
    for distribution in TOOL_DISTRIBUTIONS:
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[distribution] = "not installed"
    return versions


@functools.cache
def gate_source_digest() -> str:
    """sha256 over gate's own code: a changed gate can measure differently, whatever its version says."""
    package = Path(__file__).resolve().parent
    sha = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        sha.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return sha.hexdigest()


@functools.cache
def machine() -> str:
    """The CPU model and core count, e.g. "AMD EPYC 7763 64-Core Processor, 2 cores, x86_64"."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.split(":")[0].strip() in ("model name", "Model", "Processor"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model or platform.processor() or 'unknown CPU'}, {os.cpu_count() or 1} cores, {platform.machine()}"
