"""Why quantization hurts a model: the layers it distorts most, and inputs it cannot represent.

Runs in the worker after the search, on what the search built.

- Layer errors: for a model whose int8 candidate changed the metric, each
  layer's effect on the model's output when it alone is int8 (gate.quantization.fallback), worst first.
- Input ranges: one int8 scale covers a whole input tensor. A model fed raw
  physical units that normalizes them inside itself (a feature spanning 0–0.9
  beside one spanning 900–3,600) loses the small features entirely: they fall
  into a handful of the 256 levels. No fallback inside the network can repair
  that, so the report names the tensor, the features that collide and the fixes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gate.findings import Finding, LayerError
from gate.keys import Value
from gate.policy.judge import policy_key
from gate.quantization.base import Setup
from gate.results import Candidate, Status, TensorInfo
from gate.tasks import TASKS

INT8_FAMILY = ("int8", "int8-all-calibration")
TOP_LAYERS = 10
# An input feature that spans fewer levels than this, in a tensor whose widest feature spans many, has collapsed.
COLLAPSED_LEVELS = 8
WIDE_LEVELS = 64


def diagnose(
    candidates: Sequence[Candidate],
    published: Candidate,
    setup: Setup,
    saved_model_dir: Path,
    eval_data: Any,
    policy: Mapping[str, Value],
    task: str,
) -> tuple[tuple[LayerError, ...], tuple[Finding, ...]]:
    """Layer errors when the published or the int8 candidate lost accuracy (or MAE, ...: on a model with several
    outputs, on any output); input findings when int8 failed its metric check (of any output)."""

    def changes(candidate: Candidate) -> list[tuple[str, float | None]]:
        return [(c.task, c.metric_change) for c in candidate.per_output] or [(task, candidate.metric_change)]

    def lost(candidate: Candidate | None) -> bool:
        return candidate is not None and any(
            change is not None and TASKS[judged].loss(change) > 0 for judged, change in changes(candidate)
        )

    int8 = next((c for c in candidates if c.method in INT8_FAMILY and c.conversion is not None), None)
    findings = []
    metric_checks = {TASKS[judged].policy_key for judged, _ in changes(int8)} if int8 else set()
    if int8 and any(policy_key(check.name) in metric_checks and check.status is Status.FAIL for check in int8.checks):
        assert int8.conversion is not None
        findings = [f for tensor in int8.conversion.inputs if (f := input_range_finding(tensor, eval_data.inputs))]
    # The ranking quantizes layers as int8 does: without an int8 candidate (its converter crashed) it cannot run.
    errors = layer_errors(saved_model_dir, setup) if int8 and (lost(published) or lost(int8)) else ()
    return errors, tuple(findings)


def failed(reason: str) -> Finding:
    """The diagnosis itself crashed (the scheduler resumed the model without it): say so instead of the layer errors."""
    return Finding("diagnosis", "The layer ranking could not run", f"{reason}; the model's figures are unaffected.")


def layer_errors(saved_model_dir: Path, setup: Setup) -> tuple[LayerError, ...]:
    """The TOP_LAYERS layers with the largest int8 quantization error, or () when the debugger cannot run."""
    if not setup.calibration:
        return ()
    try:
        from gate.quantization import ranking

        ranked = ranking.ranked_layers(saved_model_dir, setup.calibration)
    except Exception as exc:  # a diagnosis must never cost the model its result
        print(f"gate: the quantization debugger could not rank layers: {type(exc).__name__}: {exc}", flush=True)
        return ()
    return tuple(ranked[:TOP_LAYERS])


def input_range_finding(tensor: TensorInfo, inputs: Mapping[str, np.ndarray]) -> Finding | None:
    """A Finding when one scale for the whole input tensor leaves some of its features a handful of levels."""
    if not tensor.scale or tensor.name not in inputs or inputs[tensor.name].dtype.kind != "f":
        return None
    data = inputs[tensor.name]
    features = data.reshape(-1, data.shape[-1]) if data.ndim > 1 else data.reshape(-1, 1)
    low, high = features.min(axis=0), features.max(axis=0)
    levels = (high - low) / tensor.scale
    collapsed = np.flatnonzero((levels < COLLAPSED_LEVELS) & (high > low))
    if not len(collapsed) or levels.max() < WIDE_LEVELS:
        return None
    widest = int(np.argmax(levels))
    examples = ", ".join(
        f"feature {i} spans {low[i]:.3g} to {high[i]:.3g} ({levels[i]:.1f} levels)" for i in collapsed[:3]
    )
    detail = (
        f"input '{tensor.name}' is quantized with one int8 scale, {tensor.scale:.4g}, for all its {len(levels)} "
        "features. "
        f"Feature {widest} spans {low[widest]:.4g} to {high[widest]:.4g} ({levels[widest]:.0f} of the 256 levels), so "
        f"{len(collapsed)} feature(s) get fewer than {COLLAPSED_LEVELS}: {examples}. No layer kept in float can "
        "restore what the input quantization loses. Fix it before the model: normalize the features (for example "
        "standardize them) in the code that feeds the model, so that the model's input has one range; or gate it "
        'under a policy that allows float32 (or int16) input, `io.input_dtype = "float32"`, under which `auto` '
        "can keep the input in float."
    )
    return Finding("input_range", f"The input '{tensor.name}' cannot be represented in int8", detail)
