"""The Ethos-U targets: the .tflite compiled for an Arm Ethos-U NPU by Vela, and what Vela reports.

`vela model.tflite --accelerator-config CONFIG --output-dir out` (the pinned ethos-u-vela 5.2.0, run as a
child process: a compiler can fail or abort on a model) writes out/model_vela.tflite, the model with each
NPU part replaced by an `ethos-u` custom operator (CPU parts stay TFLite operators), and
out/model_summary_<system config>.csv, one row of figures. Measured with 5.2.0 (/work/proto22):

- the CSV gives memory in KiB (floats), `inference_time` in seconds, `cycles_npu`; no operator counts;
- Vela's own "NPU operators = N" counts its lowered operators (a SOFTMAX becomes 29): the share here is by
  the .tflite's operators, those not left as CPU operators in the optimised file;
- each CPU fallback is printed on stdout as "Warning (supported operators) operator: TOPK_V2, ofm: '<tensor>'"
  then "Reason: ..."; Vela also warns about operators it then folds away, so only those whose output the
  optimised file still computes on the CPU are kept;
- `inference_time` covers the NPU's work only: CPU operators are not estimated. A float model compiles to
  0 cycles: nothing runs on the NPU, which the report says instead of a fast time;
- Without --system-config/--memory-mode Vela picks per accelerator: U55 keeps weights in off-chip flash,
  U65/U85 in DRAM (so they have no flash figure).

The host cannot run the optimised model (no NPU): the metric judged is LiteRT's on the int8 file Vela
compiled, and the report says so.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gate.errors import ModelError
from gate.results import CpuFallback, Evaluation, OnDevice
from gate.targets import litert
from gate.targets.base import ETHOS_U_ACCELERATORS, TARGET_FIGURES, Measured, MeasuredOutputs
from gate.targets.graph import GraphError, read_graph

if TYPE_CHECKING:
    from gate.frontends.base import Dataset
    from gate.quantization.base import Method

NPU_OPERATOR = "CUSTOM:ethos-u"
VELA_TIMEOUT_S = 600.0
FLASH_AREAS = {"Off-chip Flash": "off_chip_flash", "On-chip Flash": "on_chip_flash"}  # the CSV's column prefixes
_FALLBACK = re.compile(r"^Warning \(supported operators\) operator: (\S+), ofm: '(.*)'$")
# Isolated (-I: no PYTHONPATH, no working directory on sys.path) and unbuffered (-u: Vela's Python prints and its
# C++ core's share stdout, and a buffered stdout puts its own warnings inside a fallback's reason).
_VELA = (sys.executable, "-I", "-u", "-m", "ethosu.vela")


# Operators an Ethos-U NPU cannot run with int16 activations, as Vela 5.2.0 says (`vela --supported-ops-report`, one
# table for U55 and U65 and one for U85; tests/test_ethos_u.py reads it again): Vela leaves them on the CPU. (Its
# FULLY_CONNECTED is int8-only with dynamic weights alone, which a Keras layer does not have.)
NO_INT16_KERNEL = {
    "ethos-u55": {
        "BATCH_MATMUL": "Vela: IFM precision must be Int8 on U55 and U65",
        "ELU": "Vela: IFM and OFM must be Int8 on U55 and U65",
        "GELU": "Vela: IFM and OFM must be Int8 or UInt8 on U55 and U65",
    },
    "ethos-u85": {
        "ELU": "Vela: IFM and OFM must be Int8 on U85",
        "GELU": "Vela: IFM and OFM must be Int8 or UInt8 on U85",
    },
}
NO_INT16_KERNEL["ethos-u65"] = NO_INT16_KERNEL["ethos-u55"]


class VelaError(ModelError):
    """Vela could not compile the file; the message is Vela's reason."""


@dataclass(frozen=True)
class VelaReport:
    """What Vela said about one file, in bytes, cycles and milliseconds."""

    system_config: str
    memory_mode: str
    sram_bytes: int
    weights_area: str  # where the weights live: "Off-chip Flash", "On-chip Flash", "DRAM", ...
    weights_area_bytes: int
    npu_cycles: int
    inference_ms: float
    operators: int  # in the .tflite
    operators_on_npu: int
    cpu_fallbacks: tuple[CpuFallback, ...]  # only operators the optimised file runs on the CPU

    @property
    def npu_ops_percent(self) -> float:
        return 100.0 * self.operators_on_npu / self.operators if self.operators else 0.0


def compile_model(model_path: Path, optimised: Path, *, accelerator: str) -> VelaReport:
    """Run Vela on `model_path`; the optimised .tflite is written to `optimised`.

    Vela runs on a copy named model.tflite in an empty folder of its own (`vela --list-config-files` walks
    the working directory), so no file name from a pull request reaches its command line.
    """
    try:
        source = read_graph(model_path.read_bytes())
    except GraphError as exc:
        raise VelaError(f"{model_path.name}: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="gate-vela-") as folder:
        work = Path(folder)
        shutil.copyfile(model_path, work / "model.tflite")
        command = [*_VELA, "model.tflite", "--accelerator-config", accelerator, "--output-dir", "out"]
        try:
            done = subprocess.run(
                command, cwd=work, capture_output=True, text=True, errors="replace", timeout=VELA_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise VelaError(f"Vela did not finish within {VELA_TIMEOUT_S:.0f} s") from None
        summaries = sorted((work / "out").glob("model_summary_*.csv"))
        if done.returncode != 0 or len(summaries) != 1 or not (work / "out" / "model_vela.tflite").is_file():
            raise VelaError(f"Vela cannot compile it: {vela_failure(done.stdout + done.stderr, done.returncode)}")
        summary = read_summary(summaries[0])
        shutil.copyfile(work / "out" / "model_vela.tflite", optimised)
    try:
        compiled = read_graph(optimised.read_bytes())
    except GraphError as exc:
        raise VelaError(f"Vela wrote an optimised model that cannot be read: {exc}") from None
    cpu_ops = [op for op in compiled.operators if op.name != NPU_OPERATOR]
    cpu_tensors = {compiled.tensors[op.subgraph][index].name for op in cpu_ops for index in op.outputs}
    area = summary["weights_storage_area"]
    return VelaReport(
        system_config=summary["system_config"],
        memory_mode=summary["memory_mode"],
        sram_bytes=_kib_to_bytes(summary["sram_memory_used"]),
        weights_area=area,
        weights_area_bytes=_kib_to_bytes(summary.get(f"{FLASH_AREAS.get(area, area.lower())}_memory_used", "0")),
        npu_cycles=int(float(summary["cycles_npu"])),
        inference_ms=float(summary["inference_time"]) * 1000,
        operators=len(source.operators),
        operators_on_npu=max(len(source.operators) - len(cpu_ops), 0),
        cpu_fallbacks=tuple(f for f in parse_fallbacks(done.stdout) if f.tensor in cpu_tensors),
    )


def read_summary(path: Path) -> dict[str, str]:
    """The summary CSV's one data row, by column name."""
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    if len(rows) != 1:
        raise VelaError(f"Vela's summary {path.name} holds {len(rows)} rows of figures, not one")
    return rows[0]


def parse_fallbacks(stdout: str) -> tuple[CpuFallback, ...]:
    """Every "Warning (supported operators)" block: the operator, its output tensor, Vela's reason."""
    fallbacks = []
    lines = stdout.splitlines()
    for position, line in enumerate(lines):
        if not (found := _FALLBACK.match(line)):
            continue
        reason = []
        for following in lines[position + 1 :]:
            if not following.strip() or following.startswith(("Warning", "Info:")):
                break
            reason.append(following.strip().removeprefix("Reason: "))
        fallbacks.append(CpuFallback(found.group(1), found.group(2), " ".join(reason)))
    return tuple(fallbacks)


def vela_failure(output: str, returncode: int) -> str:
    """Vela's own reason from its output: the 'Error:' line and the detail under it, or its last line."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    for position, line in enumerate(lines):
        if "Error:" in line:
            detail = [x.strip() for x in lines[position + 1 : position + 4] if not x.startswith("Failed to")]
            return " ".join([line.split("Error:", 1)[1].strip(), *detail])[:400]
    return (lines[-1] if lines else f"Vela exited with status {returncode}")[:400]


def _kib_to_bytes(value: str) -> int:
    return round(float(value) * 1024)


class EthosU:
    """An Arm Ethos-U NPU configuration, as Vela names it ("ethos-u55-128")."""

    def __init__(self, accelerator: str) -> None:
        self.name = accelerator
        self.figures = TARGET_FIGURES[accelerator]
        self.no_int16_kernel: Mapping[str, str] = NO_INT16_KERNEL[accelerator.rpartition("-")[0]]
        self.description = (
            f"Arm {accelerator} (Vela {_vela_version()}): SRAM, flash, NPU cycles and inference time as Vela "
            "estimates them, the share of operators on the NPU and every CPU fallback with Vela's reason; the metric "
            "is LiteRT's on the same int8 file."
        )

    def cannot_run(self, method: Method) -> str:
        if method.float_ops or method.io == "float32":
            return f"the {self.name} NPU runs int8 and int16 operators only: a candidate with float ops runs 0% on it"
        return ""

    def measure(self, artifact: Path, data: Dataset, task: str, *, threads: int, app_resets: bool) -> Measured:
        on_litert = litert.LITERT.measure(artifact, data, task, threads=threads, app_resets=app_resets)
        device, files = self._compiled(artifact, on_litert.float_ops, on_litert.evaluation)
        return Measured(on_litert.inputs, on_litert.outputs, on_litert.float_ops, on_litert.evaluation,
                        on_litert.state, device=device, files=files)  # fmt: skip

    def measure_outputs(self, artifact: Path, data: Dataset, *, threads: int) -> MeasuredOutputs:
        _inputs, _outputs, float_ops = litert.describe(artifact)
        device, files = self._compiled(artifact, float_ops, None)  # each output's metric is LiteRT's (see _compiled)
        return MeasuredOutputs(*litert.signature_outputs(artifact, data, threads=threads), device, files)

    def _compiled(
        self, artifact: Path, float_ops: tuple[str, ...], litert_evaluation: Evaluation | None
    ) -> tuple[OnDevice, tuple[Path, ...]]:
        """Vela's figures for the file, and the optimised file it wrote (none for a file with float ops)."""
        if float_ops:  # the float32 reference: every operator stays on the CPU
            note = f"a file with float ops runs 0% on the {self.name} NPU: Vela was not run on it"
            return OnDevice(self.name, None, None, None, (), litert_evaluation, None, (), (note,),
                            npu_ops_percent=0.0), ()  # fmt: skip
        optimised = artifact.with_name(artifact.name.removesuffix(".tflite") + ".vela.tflite")
        report = compile_model(artifact, optimised, accelerator=self.name)
        notes = [
            f"Vela {_vela_version()}, system config {report.system_config}, memory mode {report.memory_mode}; the "
            "metric is LiteRT's on the int8 file Vela compiled (this machine has no NPU)"
        ]
        if report.npu_ops_percent < 100:
            notes.append("the inference time is the NPU's part only: Vela does not estimate operators left on the CPU")
        if report.weights_area not in FLASH_AREAS:
            notes.append(f"weights in {report.weights_area} ({report.weights_area_bytes:,} bytes), not in flash")
        flash = report.weights_area_bytes if report.weights_area in FLASH_AREAS else None
        device = OnDevice(
            self.name,
            None,
            None,
            flash,
            _operators(artifact),
            litert_evaluation,
            None,
            (),
            tuple(notes),
            sram_bytes=report.sram_bytes,
            npu_cycles=report.npu_cycles,
            inference_ms=report.inference_ms,
            npu_ops_percent=round(report.npu_ops_percent, 3),
            cpu_fallbacks=report.cpu_fallbacks,
        )
        return device, (optimised,)

    # Vela's inference time is the NPU's figure (npu.max_inference_ms); latency checks time LiteRT here.
    time = staticmethod(litert.time_on_this_cpu)


def _operators(artifact: Path) -> tuple[str, ...]:
    counts = read_graph(artifact.read_bytes()).op_counts()
    return tuple(f"{name} x{count}" for name, count in sorted(counts.items()))


def _vela_version() -> str:
    from importlib.metadata import version

    return version("ethos-u-vela")


ETHOS_U = tuple(EthosU(accelerator) for accelerator in ETHOS_U_ACCELERATORS)
