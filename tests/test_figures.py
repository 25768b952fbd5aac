"""The named figures a check reads (gate.figures.FIGURES), the targets that add them, and the limit check on them."""

from __future__ import annotations

import dataclasses

import pytest
from factories import candidate, conversion

from gate.figures import FIGURES
from gate.keys import Number
from gate.policy.checks import CheckDefinition, Context
from gate.policy.judge import CHECKS
from gate.results import CpuFallback, OnDevice, Status
from gate.targets.base import TARGET_FIGURES


def on_device(target: str, **figures) -> object:
    device = dataclasses.replace(OnDevice(target, None, None, None, (), None, None, (), ()), **figures)
    return dataclasses.replace(candidate(), conversion=dataclasses.replace(conversion(), device=device))


def test_every_figure_a_check_or_a_target_names_is_in_the_registry() -> None:
    named = {name for check in CHECKS.values() for name in check.figures}
    named |= {name for figures in TARGET_FIGURES.values() for name in figures}
    assert named <= FIGURES.keys()
    assert {name for name, figure in FIGURES.items() if not any(name in c.figures for c in CHECKS.values())} == set()


def test_a_check_without_an_evaluation_of_its_own_is_a_limit_on_figures_a_message_can_say() -> None:
    for check in CHECKS.values():
        if check.evaluation is None:
            assert check.figures and check.bound in ("max", "min"), check.name
            assert all(FIGURES[name].says is not None for name in check.figures), check.name


def test_each_target_names_the_figures_its_entry_adds() -> None:
    from gate.targets import TARGETS

    assert {name: target.figures for name, target in TARGETS.items()} == TARGET_FIGURES


def test_a_new_figure_check_is_one_entry_with_no_evaluation_of_its_own() -> None:
    """What docs/development.md shows: a CHECKS entry naming a figure judges it, says it and skips without it."""
    check = CheckDefinition(
        "memory.min_flash_kib", Number(0.0, 1e7), "KiB", "Least flash.", bound="min", figures=("flash_kib",)
    )
    context = Context({"target.runtime": "tflm"}, "classification")
    assert check.evaluate(on_device("tflm", flash_bytes=2048), 4, context) == (
        Status.FAIL,
        2.0,
        "flash 2,048 bytes = 2.00 KiB (need ≥ 4 KiB)",
    )
    assert check.evaluate(on_device("tflm", flash_bytes=4096), 4, context)[:2] == (Status.PASS, 4.0)
    assert check.evaluate(candidate(), 4, Context({"target.runtime": "litert"}, "classification")) == (
        Status.SKIP,
        None,
        "the target (litert) measures no flash: tflm and the Ethos-U targets do (see docs/targets.md)",
    )


@pytest.mark.parametrize(
    ("target", "figures", "expected"),
    [
        # Ethos-U measures the arena as Vela's SRAM: the check reads the first of its figures that was measured.
        (
            "ethos-u55-128",
            {"sram_bytes": 70 * 1024},
            (Status.FAIL, 70.0, "SRAM 71,680 bytes = 70.00 KiB (budget ≤ 64 KiB)"),
        ),
        ("tflm", {"arena_bytes": 1000}, (Status.PASS, 0.977, "tensor arena 1,000 bytes = 0.98 KiB (budget ≤ 64 KiB)")),
        # A target that measures the figure but not for this file says so, naming its own figure, not the other's.
        ("ethos-u55-128", {}, (Status.SKIP, None, "no SRAM was measured for this file")),
        (
            "litert",
            {},
            (
                Status.SKIP,
                None,
                "the target (litert) measures no tensor arena or SRAM: tflm and the "
                "Ethos-U targets do (see docs/targets.md)",
            ),
        ),
    ],
)
def test_the_arena_check_reads_the_figure_the_target_measures(target, figures, expected) -> None:
    context = Context({"target.runtime": target}, "classification")
    assert CHECKS["memory.max_arena_kib"].evaluate(on_device(target, **figures), 64, context) == expected


def test_a_limit_is_said_in_the_figures_unit() -> None:
    """A latency limit under a millisecond in µs, as the measured one; a percent with no space, as "80.0%"."""
    context = Context({"target.runtime": "litert"}, "classification")
    assert CHECKS["latency.max_p50_ms"].evaluate(candidate(), 0.5, context) == (
        Status.FAIL,
        1.0,
        "p50 1 ms at batch 1, 1 thread(s) (budget ≤ 500 µs)",
    )
    built = on_device("ethos-u55-128", npu_ops_percent=80.0, cpu_fallbacks=(CpuFallback("TOPK_V2", "t", "why"),))
    npu = Context({"target.runtime": "ethos-u55-128"}, "classification")
    assert CHECKS["npu.min_ops_on_npu"].evaluate(built, 100, npu) == (
        Status.FAIL,
        80.0,
        "80.0% of the operators run on the NPU (on the CPU: TOPK_V2) (need ≥ 100%)",
    )


def test_a_policy_that_names_no_target_is_judged_on_litert() -> None:
    assert CHECKS["memory.max_arena_kib"].evaluate(candidate(), 64, Context({}, "classification")) == (
        Status.SKIP,
        None,
        "the target (litert) measures no tensor arena or SRAM: tflm and the Ethos-U targets do (see docs/targets.md)",
    )


def test_a_file_exactly_three_times_smaller_than_float32_is_told_what_int8_can_reach() -> None:
    """The int8 explanation starts at 3× against float32 (a file that far along is int8 weights)."""
    at_three = dataclasses.replace(candidate(), size_reduction_vs_float32=3.0)
    context = Context({"size.baseline": "float32_tflite"}, "classification")
    status, measured, message = CHECKS["size.min_reduction"].evaluate(at_three, 4.0, context)
    assert (status, measured) == (Status.FAIL, 3.0)
    assert message.endswith("What passes: `min_reduction = 3` under `[size]`, what this file reaches")
