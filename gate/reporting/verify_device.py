"""A device target's figures read back (gate.reporting.verify calls `device_problem` on every conversion's).

Each figure is one the target could have written, and the figures one run gives agree:

- sizes are not negative, percentages are percentages, each file is one the layout gives;
- TFLM's smallest arena is never below TFLM's own record of what it allocated in it;
- Vela's inference time is its total cycles at the NPU clock, and the total is at least the NPU's cycles; a file
  with operators on the NPU takes SRAM, flash (where its weights are) and cycles;
- TFLM's agreement with LiteRT is there exactly when TFLM ran the file, counts at most the eval samples, gives a
  predicted class only for a classification with one output, and "no sample differs" only beside the same metric;
- free text (LiteRT's name, the notes) is gate's own form and bounded, as the operators are.
"""

from __future__ import annotations

import math
import re

from gate.layout import resolver_path, vela_path
from gate.reporting.verify_figures import in_range
from gate.results import Agreement, Conversion, ModelResult, OnDevice
from gate.targets import DEFAULT_TARGET, TARGET_NAMES
from gate.targets.base import ETHOS_U_ACCELERATORS, ETHOS_U_CLOCK_HZ
from gate.tasks import CLASSIFICATION, TASKS

# gate.targets.agreement's name of the LiteRT it compares, with the installed ai-edge-litert's version.
_LITERT = re.compile(r"LiteRT [0-9][0-9A-Za-z.+_-]{0,40} as gate measures it \(its default XNNPACK delegate\)")
# A target writes a few notes of a few sentences (TFLM's host note is the longest, about 330 characters).
MAX_NOTES, MAX_NOTE_CHARS = 10, 1000
# Vela's inference time and cycles are rounded (milliseconds from its CSV's seconds): a relative tolerance.
_CLOCK_TOLERANCE = 1e-6
_SIZES = ("arena_bytes", "arena_recorded_bytes", "flash_bytes", "sram_bytes", "npu_cycles", "inference_ms")


def device_problem(result: ModelResult, conversion: Conversion) -> str:
    """What in `conversion.device` a device target could not have written, as "field: problem", or ""."""
    device = conversion.device
    assert device is not None
    if device.target not in TARGET_NAMES or device.target == DEFAULT_TARGET:
        return f"target: {device.target[:50]!r} is not a device target"
    for field in _SIZES:
        value = getattr(device, field)
        if value is not None and not (math.isfinite(value) and value >= 0):
            return f"{field}: {value} is not a size"
    # A path is one the layout gives, never one read from the data.
    allowed = {resolver_path(result.name, conversion.method), vela_path(result.name, conversion.method)}
    for index, file in enumerate(device.files):
        if file.path not in allowed:
            return f"files[{index}].path: {file.path[:80]!r} is not one of {sorted(allowed)}"
    if device.npu_ops_percent is not None and not 0 <= device.npu_ops_percent <= 100:
        return f"npu_ops_percent: {device.npu_ops_percent} is not a percentage"
    if device.litert_evaluation is not None and not in_range(device.litert_evaluation):
        return "litert_evaluation.value: out of the range of its metric"
    if len(device.notes) > MAX_NOTES or any(len(note) > MAX_NOTE_CHARS for note in device.notes):
        return f"notes: more than {MAX_NOTES}, or one longer than {MAX_NOTE_CHARS} characters"
    if device.arena_bytes is not None and device.arena_recorded_bytes is not None:
        if device.arena_bytes < device.arena_recorded_bytes:
            return (
                f"arena_bytes: {device.arena_bytes}, below the {device.arena_recorded_bytes} bytes TFLM records it "
                "allocated in the arena: no smaller arena allocates and invokes the file"
            )
    if device.target in ETHOS_U_ACCELERATORS and (problem := _vela_problem(device)):
        return problem
    return _agreement_problem(result, conversion, device)


def _vela_problem(device: OnDevice) -> str:
    """Vela's figures of one compiled file: its time at the clock follows from its cycles, and NPU work takes room."""
    if not device.npu_ops_percent:  # nothing runs on the NPU (or Vela was not run): 0 cycles, 0 bytes
        return ""
    if None in (device.sram_bytes, device.npu_cycles, device.inference_ms) or 0 in (
        device.sram_bytes, device.npu_cycles, device.flash_bytes,
    ):  # fmt: skip
        return (
            f"sram_bytes: {device.npu_ops_percent}% of its operators on the NPU, but SRAM {device.sram_bytes}, flash "
            f"{device.flash_bytes} bytes, {device.npu_cycles} NPU cycles and {device.inference_ms} ms: Vela gives "
            "each (flash where its weights are) and none is 0"
        )
    assert device.npu_cycles is not None and device.inference_ms is not None  # checked just above
    clock = ETHOS_U_CLOCK_HZ[device.target.rpartition("-")[0]]
    least_ms = device.npu_cycles / clock * 1000
    if device.inference_ms < least_ms * (1 - _CLOCK_TOLERANCE):
        return (
            f"inference_ms: {device.inference_ms!r}, but its {device.npu_cycles:,} NPU cycles at the "
            f"{clock / 1e6:g} MHz clock Vela uses take at least {least_ms:.6g} ms"
        )
    return ""


def _agreement_problem(result: ModelResult, conversion: Conversion, device: OnDevice) -> str:
    """TFLM's outputs against LiteRT's, as gate.targets.agreement writes them."""
    same = device.agreement
    if device.unsupported:  # nothing TFLM measured: gate.reporting.verify refuses an agreement beside it
        return ""
    if (same is not None) != (device.target == "tflm"):
        return "agreement: given exactly when TFLM ran the file (against LiteRT's outputs of it)"
    if same is None:
        return ""
    samples = conversion.evaluation.samples
    if not _LITERT.fullmatch(same.litert):
        return f"agreement.litert: {same.litert[:80]!r} is not gate's name of the LiteRT it measures"
    if same.samples != samples or not 0 <= same.differing_samples <= samples:
        return (
            f"agreement: {same.differing_samples} of {same.samples} samples differ, but the file was evaluated on "
            f"{samples} samples"
        )
    if not (math.isfinite(same.max_steps) and same.max_steps >= 0) or (same.differing_samples == 0) > (
        same.max_steps == 0
    ):
        return f"agreement.max_steps: {same.max_steps!r} is not the largest difference of its differing samples"
    return _prediction_problem(result, conversion, device, same)


def _prediction_problem(result: ModelResult, conversion: Conversion, device: OnDevice, same: Agreement) -> str:
    one_classifier = not conversion.per_output and TASKS.get(result.task) is CLASSIFICATION
    if one_classifier != (same.same_prediction is not None):
        return "agreement.same_prediction: given exactly for a classification with one output"
    if same.same_prediction is not None:
        if not 0 <= same.same_prediction <= 100:
            return f"agreement.same_prediction: {same.same_prediction!r} is not a percentage"
        if same.differing_samples == 0 and same.same_prediction != 100:
            return f"agreement.same_prediction: {same.same_prediction!r}%, but no sample's outputs differ"
    litert = device.litert_evaluation
    # The same outputs score the same: one output's TFLM metric is LiteRT's when no sample differs.
    if same.differing_samples == 0 and not conversion.per_output and litert is not None:
        judged = conversion.evaluation
        if not math.isclose(judged.value, litert.value, rel_tol=1e-9, abs_tol=1e-12):
            return (
                f"agreement: no sample's outputs differ from LiteRT's, but its {judged.metric} is {judged.value!r} "
                f"in TFLM and {litert.value!r} in LiteRT"
            )
    return ""
