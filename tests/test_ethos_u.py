"""The Ethos-U targets, against the pinned ethos-u-vela itself: the report's figures are Vela's own for the file."""

from __future__ import annotations

import csv
import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from factories import candidate, conversion
from helpers import REPO, run_gate

from gate.policy.checks import Context
from gate.policy.judge import CHECKS
from gate.results import CpuFallback, OnDevice, Status
from gate.targets import ethos_u
from gate.targets.base import ETHOS_U_ACCELERATORS, ETHOS_U_CLOCK_HZ


@pytest.fixture(scope="module")
def npu_run(tmp_path_factory, healthy_model: Path):
    """`gate check` under policies/ethos-u55.toml: the healthy MLP (int8), and the same asked for dynamic range."""
    root = tmp_path_factory.mktemp("npu")
    shutil.copytree(REPO / "policies", root / "policies")
    for name, method in (("fits", "auto"), ("dynamic", "dynamic_range")):
        shutil.copytree(healthy_model, root / "models" / name)
        (root / "models" / name / "gate.toml").write_text(f'policy = "ethos-u55"\nmethod = "{method}"\n')
    return run_gate("check", "--out", root / "out", cwd=root)


def vela_by_hand(model: Path, folder: Path, accelerator: str = "ethos-u55-128") -> tuple[dict[str, str], str]:
    """Vela run as a user runs it: its summary CSV's row and its stdout."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ethosu.vela",
            str(model),
            "--accelerator-config",
            accelerator,
            "--output-dir",
            str(folder),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    (summary,) = folder.glob("*_summary_*.csv")
    with summary.open(newline="") as file:
        (row,) = csv.DictReader(file)
    return row, done.stdout


def test_the_reports_figures_are_velas_own_for_the_published_file(npu_run, tmp_path) -> None:
    fits = npu_run.model("fits")
    assert fits["status"] == "PASS", npu_run.stdout + npu_run.stderr
    published = fits["candidates"][fits["chosen"]]
    device = published["conversion"]["device"]
    artifact = npu_run.out_dir / published["conversion"]["artifact"]["path"]
    row, stdout = vela_by_hand(artifact, tmp_path)
    assert device["sram_bytes"] == round(float(row["sram_memory_used"]) * 1024)
    assert device["flash_bytes"] == round(float(row["off_chip_flash_memory_used"]) * 1024)
    assert device["npu_cycles"] == int(float(row["cycles_npu"]))
    assert device["inference_ms"] == pytest.approx(float(row["inference_time"]) * 1000)
    assert re.search(r"^Total SRAM used\s+(\S+) KiB", stdout, re.M).group(1) == f"{device['sram_bytes'] / 1024:.2f}"
    assert device["npu_ops_percent"] == 100.0 and device["cpu_fallbacks"] == []
    # The published Vela-optimised model is the file Vela writes by hand, and it is listed in SHA256SUMS.
    (vela_file,) = device["files"]
    assert vela_file["path"] == "artifacts/fits.int8.vela.tflite"
    assert (npu_run.out_dir / vela_file["path"]).read_bytes() == next(tmp_path.glob("*_vela.tflite")).read_bytes()
    assert "fits.int8.vela.tflite" in (npu_run.out_dir / "SHA256SUMS").read_text()
    checks = {c["name"]: c["status"] for c in published["checks"]}
    assert checks["npu.min_ops_on_npu"] == checks["npu.max_inference_ms"] == checks["memory.max_arena_kib"] == "PASS"


@pytest.mark.parametrize("accelerator", ["ethos-u55-128", "ethos-u65-256", "ethos-u85-256"])
def test_velas_figures_in_each_family_are_what_verify_holds_them_to(npu_run, tmp_path, accelerator) -> None:
    """Vela's time is its total cycles at the core clock of the system config it picks (gate picks none): read back,
    a time below the NPU cycles at ETHOS_U_CLOCK_HZ is refused, so the constant must be Vela's own clock; and a file
    on the NPU takes SRAM (gate.reporting.verify_device)."""
    published = npu_run.model("fits")["candidates"][npu_run.model("fits")["chosen"]]
    row, _stdout = vela_by_hand(npu_run.out_dir / published["conversion"]["artifact"]["path"], tmp_path, accelerator)
    assert float(row["core_clock"]) == ETHOS_U_CLOCK_HZ[accelerator.rpartition("-")[0]]
    assert float(row["inference_time"]) >= int(float(row["cycles_npu"])) / float(row["core_clock"]) > 0
    assert float(row["sram_memory_used"]) > 0


def test_the_float_reference_runs_nothing_on_the_npu_and_says_so(npu_run) -> None:
    reference = npu_run.model("fits")["reference"]["device"]
    assert reference["npu_ops_percent"] == 0.0 and reference["npu_cycles"] is None
    assert "runs 0% on the ethos-u55-128 NPU" in reference["notes"][0]


def test_a_candidate_with_float_ops_is_not_tried_and_the_table_says_why(npu_run) -> None:
    dynamic = npu_run.model("dynamic")
    (skipped,) = dynamic["candidates"]
    assert skipped["status"] == "SKIP"
    assert "runs int8 and int16 operators only" in skipped["reason"]
    assert "runs int8 and int16 operators only" in npu_run.markdown


def test_the_inference_time_check_skips_when_nothing_runs_on_the_npu() -> None:
    device = OnDevice(
        "ethos-u55-128",
        None,
        None,
        None,
        (),
        None,
        None,
        (),
        (),
        sram_bytes=0,
        npu_cycles=0,
        inference_ms=0.0,
        npu_ops_percent=0.0,
    )
    built = dataclasses.replace(candidate(), conversion=dataclasses.replace(conversion(), device=device))
    context = Context({"target.runtime": "ethos-u55-128"}, "classification")
    status, _, message = CHECKS["npu.max_inference_ms"].evaluate(built, 5.0, context)
    assert status is Status.SKIP and "0% on the NPU" in message
    status, measured, message = CHECKS["npu.min_ops_on_npu"].evaluate(built, 100, context)
    assert (status, measured) == (Status.FAIL, 0.0)


def test_the_npu_share_check_names_what_runs_on_the_cpu() -> None:
    fallback = CpuFallback("TOPK_V2", "t", "Unsupported opType")
    device = OnDevice(
        "ethos-u55-128",
        None,
        None,
        None,
        (),
        None,
        None,
        (),
        (),
        sram_bytes=100,
        npu_cycles=10,
        inference_ms=0.5,
        npu_ops_percent=80.0,
        cpu_fallbacks=(fallback,),
    )
    built = dataclasses.replace(candidate(), conversion=dataclasses.replace(conversion(), device=device))
    context = Context({"target.runtime": "ethos-u55-128"}, "classification")
    status, measured, message = CHECKS["npu.min_ops_on_npu"].evaluate(built, 100, context)
    assert (status, measured) == (Status.FAIL, 80.0) and "on the CPU: TOPK_V2" in message
    status, _, message = CHECKS["npu.max_inference_ms"].evaluate(built, 5.0, context)
    assert status is Status.PASS and "the NPU's part only" in message


# fmt: skip on this table: a case a row or two, as it reads; ruff format would give each field a line.
@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        # As Vela 5.2.0 prints them (measured in /work/proto22 on a TOPK_V2 model and a float MLP).
        ("\nWarning (supported operators) operator: TOPK_V2, ofm: 'a;b'\nReason: Unsupported opType\n\nNetwork",
         [("TOPK_V2", "a;b", "Unsupported opType")]),
        ("Warning (supported operators) operator: SOFTMAX, ofm: 'out:0'\nReason: Operation has tensor with "
         "unsupported DataType Float32 (x)\nFeature-map dataTypes must be one of {\"INT8\"}\n"
         "Warning (supported operators) operator: RELU, ofm: 'h'\nReason: r\n",
         [("SOFTMAX", "out:0", "Operation has tensor with unsupported DataType Float32 (x) Feature-map dataTypes "
                               "must be one of {\"INT8\"}"), ("RELU", "h", "r")]),
        ("Network summary for m\nCPU operators = 0 (0.0%)\n", []),
        ("Warning (supported operators) operator: TOPK_V2, ofm: 't'\nReason: Unsupported opType\n"
         "Warning: No configuration file specified. Using a default of ['vela.ini'].\n",
         [("TOPK_V2", "t", "Unsupported opType")]),
    ],
)  # fmt: skip
def test_velas_fallback_warnings_are_parsed(stdout: str, expected: list[tuple[str, str, str]]) -> None:
    assert [(f.operator, f.tensor, f.reason) for f in ethos_u.parse_fallbacks(stdout)] == expected


def test_the_accelerators_are_velas_choices() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "ethosu.vela", "--help"], capture_output=True, text=True, check=True
    ).stdout
    choices = re.search(r"--accelerator-config \{([^}]+)\}", help_text).group(1).split(",")
    assert tuple(choices) == ETHOS_U_ACCELERATORS


def test_the_operators_said_to_lack_an_int16_kernel_are_those_velas_report_restricts_to_int8(tmp_path) -> None:
    """Vela's own supported-operators report (one table for U55 and U65, one for U85): an operator whose constraints
    allow only Int8 (or UInt8) is one the NPU runs at int16 nowhere; FULLY_CONNECTED only with dynamic weights."""
    subprocess.run([sys.executable, "-m", "ethosu.vela", "--supported-ops-report", "--accelerator-config",
                    "ethos-u55-128"], cwd=tmp_path, capture_output=True, check=True)  # fmt: skip
    report = (tmp_path / "SUPPORTED_OPS.md").read_text()
    for family, heading in (("ethos-u55", "Ethos-U55 and Ethos-U65"), ("ethos-u85", "Ethos-U85")):
        int8_only = set()
        for section in re.split(r"^### ", report, flags=re.M):
            title, _, body = section.partition("\n")
            if (found := re.match(f"{heading} TFLite (\\S+) Constraints", title)) and re.search(
                r"must be U?Int8(?: or U?Int8)?\s*$", body, flags=re.M
            ):
                int8_only.add(found.group(1))
        assert set(ethos_u.NO_INT16_KERNEL[family]) == int8_only - {"FULLY_CONNECTED"}, family
        assert ethos_u.NO_INT16_KERNEL["ethos-u65"] == ethos_u.NO_INT16_KERNEL["ethos-u55"]
