"""Device figures in results, reports and comparisons: stored result objects, no TensorFlow."""

from __future__ import annotations

import dataclasses
import re

import pytest
from factories import LITERT, model_result, on_device, regression_result, two_output_result

from gate.reporting.compare import Baseline, compare
from gate.reporting.markdown import render_markdown
from gate.reporting.verify import check_result
from gate.results import Agreement, Fidelity, FileDigest, Interval, ModelResult

EVALUATION = model_result().candidates[0].conversion.evaluation


def test_the_comparison_shows_the_mac_count_and_the_targets_figures_as_deltas() -> None:
    base = on_device(model_result(), macs=25_600, arena_bytes=3_680)
    head = on_device(model_result(), macs=26_112, arena_bytes=3_776)
    text = render_markdown([head], compare([head], Baseline("main@3f2a1c9", "3f" * 20, {"digits": base})))
    assert "| 25,600 → 26,112 (+512, +2.0%) | arena 3.6 KiB → 3.7 KiB (+0.1 KiB, +2.6%) |" in text


def test_the_comparison_shows_npu_cycles_as_deltas() -> None:
    base = on_device(model_result(), macs=100, sram_bytes=2048, npu_cycles=90_000, target="ethos-u55-128")
    head = on_device(model_result(), macs=100, sram_bytes=2048, npu_cycles=86_400, target="ethos-u55-128")
    text = render_markdown([head], compare([head], Baseline("main@3f2a1c9", "3f" * 20, {"digits": base})))
    cycles = "NPU cycles 90,000 → 86,400 (−3,600, −4.0%)"
    assert f"| 100 → 100 (±0, +0.0%) | arena 2.0 KiB → 2.0 KiB (±0.0 KiB, +0.0%); {cycles} |" in text


# fmt: skip on this table: a case a row or two, as it reads; ruff format would give each field a line.
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"files": (FileDigest("../../etc/passwd", 10, "ab" * 32),)}, "device.files[0].path: '../../etc/passwd'"),
        ({"files": (FileDigest("artifacts/other.int8.ops.h", 10, "ab" * 32),)}, "is not one of"),
        ({"target": "litert"}, "device.target: 'litert' is not a device target"),
        ({"target": "tpu"}, "device.target: 'tpu' is not a device target"),
        ({"target": "t" * 60}, f"device.target: {'t' * 50!r} is not a device target"),
        ({"files": (FileDigest("a" * 100, 10, "ab" * 32),)}, f"device.files[0].path: {'a' * 80!r} is not one of"),
        ({"arena_bytes": -16}, "device.arena_bytes: -16 is not a size"),
        ({"npu_ops_percent": 101.0}, "device.npu_ops_percent: 101.0 is not a percentage"),
        # measured where its policy says, with that target's figures and file (found by an attack)
        ({"arena_bytes": None}, "device: a file measured on tflm has arena_bytes"),
        ({"arena_bytes": None, "flash_bytes": None}, "device: a file measured on tflm has arena_bytes and flash_bytes"),
        ({"litert_evaluation": dataclasses.replace(EVALUATION, value=100.5)},
         "device.litert_evaluation.value: out of the range of its metric"),
        ({"files": ()}, "device.files: a file measured on tflm publishes 'artifacts/digits.int8.ops.h' alone"),
        ({"files": (FileDigest("artifacts/digits.int8.vela.tflite", 10, "ab" * 32),)},
         "device.files: a file measured on tflm publishes 'artifacts/digits.int8.ops.h' alone"),
        ({"files": (FileDigest("artifacts/digits.int8.ops.h", 10, "not a digest"),)},
         "device.files[0]: sha256 'not a digest' or size 10 is not a file's"),
    ],
)  # fmt: skip
def test_device_figures_read_back_are_checked_and_their_files_are_the_layouts(change, message) -> None:
    """A report written elsewhere (a shard, a cache entry) names no file outside the layout and no impossible figure."""
    with pytest.raises(ValueError, match=re.escape(message)):
        check_result(on_device(model_result(), macs=10, **change))
    check_result(on_device(model_result(), macs=10))
    check_result(on_device(model_result(), macs=10, target="ethos-u55-128"))


def agreeing(**changes) -> Agreement:
    """TFLM's agreement with LiteRT on the factory's eval set, as gate writes it, with `changes`."""
    return dataclasses.replace(Agreement(LITERT, EVALUATION.samples, 0.0, 0, 100.0), **changes)


SAMPLES = EVALUATION.samples
ETHOS_U = {"target": "ethos-u55-128"}


# The figures one run of a device target gives tie together (found by an attack: a forged shard turned a FAIL into a
# PASS by editing one of them, and printed an agreement no run gives, or 100 KB of free text).
# fmt: skip on this table: a case a row or two, as it reads.
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"arena_bytes": 16}, "device.arena_bytes: 16, below the 3328 bytes TFLM records it allocated in the arena"),
        ({**ETHOS_U, "npu_cycles": 10**9},
         "device.inference_ms: 0.2, but its 1,000,000,000 NPU cycles at the 500 MHz clock Vela uses take at least"),
        ({"target": "ethos-u65-256", "npu_cycles": 300_000},  # 0.3 ms at U65's 1 GHz
         "device.inference_ms: 0.2, but its 300,000 NPU cycles at the 1000 MHz clock"),
        ({**ETHOS_U, "sram_bytes": 0}, "device.sram_bytes: 100.0% of its operators on the NPU, but SRAM 0"),
        ({**ETHOS_U, "flash_bytes": 0}, "on the NPU, but SRAM 1280, flash 0 bytes"),
        ({**ETHOS_U, "npu_cycles": None}, "device.sram_bytes: 100.0% of its operators on the NPU, but SRAM 1280"),
        ({**ETHOS_U, "inference_ms": float("nan")}, "device.inference_ms: nan is not a size"),
        ({"agreement": None}, "device.agreement: given exactly when TFLM ran the file"),
        ({**ETHOS_U, "agreement": agreeing()}, "device.agreement: given exactly when TFLM ran the file"),
        ({"agreement": agreeing(differing_samples=SAMPLES + 1, max_steps=1.0)},
         f"device.agreement: {SAMPLES + 1} of {SAMPLES} samples differ, but the file was evaluated on {SAMPLES}"),
        ({"agreement": agreeing(samples=5)},
         f"device.agreement: 0 of 5 samples differ, but the file was evaluated on {SAMPLES} samples"),
        ({"agreement": agreeing(differing_samples=-1)}, "device.agreement: -1 of"),
        ({"agreement": agreeing(differing_samples=3, max_steps=-3.0)}, "device.agreement.max_steps: -3.0 is not"),
        ({"agreement": agreeing(differing_samples=3, max_steps=float("inf"))}, "device.agreement.max_steps: inf"),
        ({"agreement": agreeing(max_steps=2.0)}, "device.agreement.max_steps: 2.0 is not the largest difference"),
        ({"agreement": agreeing(differing_samples=3, max_steps=1.0, same_prediction=1e6)},
         "device.agreement.same_prediction: 1000000.0 is not a percentage"),
        ({"agreement": agreeing(same_prediction=90.0)},
         "device.agreement.same_prediction: 90.0%, but no sample's outputs differ"),
        ({"agreement": agreeing(same_prediction=None)},
         "device.agreement.same_prediction: given exactly for a classification with one output"),
        ({"litert_evaluation": dataclasses.replace(EVALUATION, value=EVALUATION.value - 10)},
         "device.agreement: no sample's outputs differ from LiteRT's, but its accuracy is"),
        ({"agreement": agreeing(litert="<img src=x> " * 10_000)},
         "device.agreement.litert: '<img src=x> <img src=x> "),
        ({"notes": ("n" * 1001,)}, "device.notes: more than 10, or one longer than 1000 characters"),
        ({"notes": ("a note",) * 11}, "device.notes: more than 10, or one longer than 1000 characters"),
    ],
)  # fmt: skip
def test_device_figures_of_one_run_tie_together(change, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_result(on_device(model_result(), macs=10, **change))


def test_an_agreement_as_gate_writes_it_is_accepted_on_every_task_and_target() -> None:
    """TFLM's differing samples beside a different LiteRT figure; Ethos-U's time above its cycles at the clock (its
    total cycles wait on memory too); a predicted class nowhere but on one classification output."""
    differing = agreeing(differing_samples=3, max_steps=1.0, same_prediction=99.0)
    litert = dataclasses.replace(EVALUATION, value=EVALUATION.value - 1)
    check_result(on_device(model_result(), macs=10, agreement=differing, litert_evaluation=litert))
    check_result(on_device(model_result(), macs=10, target="ethos-u85-256", npu_cycles=100_000, inference_ms=5.0))
    for result in (regression_result(), two_output_result()):
        check_result(on_device(result, macs=10))
        with pytest.raises(ValueError, match=re.escape("same_prediction: given exactly for a classification with")):
            same = agreeing(samples=result.candidates[0].conversion.evaluation.samples)
            check_result(on_device(result, macs=10, agreement=same))


@pytest.mark.parametrize(
    "figures",
    [
        # Nothing of the file runs on the NPU: Vela places 0% there, in 0 cycles, 0 ms and 0 bytes of SRAM.
        {"target": "ethos-u55-128", "sram_bytes": 0, "npu_cycles": 0, "inference_ms": 0.0, "npu_ops_percent": 0.0},
        {"litert_evaluation": EVALUATION},  # LiteRT's figure beside the device's
    ],
)
def test_device_figures_of_zero_and_litert_figure_beside_are_accepted(figures) -> None:
    check_result(on_device(model_result(), macs=0, **figures))


def test_a_result_is_refused_unless_measured_where_its_policy_says() -> None:
    """A forged shard cannot drop a device's figures (its memory checks would SKIP) or relabel another target's."""
    measured = on_device(model_result(), macs=10)
    dropped = dataclasses.replace(measured.candidates[0].conversion, device=None)
    with pytest.raises(
        ValueError, match=re.escape("device: none, but the effective policy's target.runtime is 'tflm'")
    ):
        check_result(
            dataclasses.replace(measured, candidates=(dataclasses.replace(measured.candidates[0], conversion=dropped),))
        )
    relabelled = on_device(model_result(), macs=10, target="ethos-u55-128")
    policy = {**relabelled.provenance.effective_policy, "target.runtime": "tflm"}
    with pytest.raises(ValueError, match=re.escape("device.target: 'ethos-u55-128', but the effective policy's")):
        provenance = dataclasses.replace(relabelled.provenance, effective_policy=policy)
        check_result(dataclasses.replace(relabelled, provenance=provenance))
    with pytest.raises(ValueError, match=re.escape("device: 'tflm', but the effective policy's target.runtime is")):
        check_result(dataclasses.replace(measured, provenance=model_result().provenance))


AGREEMENT = Agreement(LITERT, EVALUATION.samples, 0.0, 0, 100.0)


@pytest.mark.parametrize(
    ("figures", "refused"),
    [
        ({"arena_bytes": None, "arena_recorded_bytes": None, "files": ()}, False),  # nothing TFLM measured or wrote
        ({"files": ()}, True),  # an arena TFLM could not have measured
        ({"arena_bytes": None, "arena_recorded_bytes": None}, True),  # a resolver TFLM never wrote
        ({"arena_bytes": None, "arena_recorded_bytes": None, "files": (), "agreement": AGREEMENT}, True),
        ({"target": "ethos-u55-128", "files": ()}, True),  # only TFLM says it cannot run a file
    ],
)
def test_a_file_tflm_cannot_run_carries_no_tflm_figures_or_files(figures, refused) -> None:
    """A forged result cannot say TFLM ran what it could not, nor hide a missing operator behind figures."""
    result = on_device(
        model_result(), macs=10, operators=("FULLY_CONNECTED x2", "GELU x1"), litert_evaluation=EVALUATION,
        unsupported=("TFLM has no kernel for operator GELU",), **{"agreement": None, **figures},
    )  # fmt: skip
    if not refused:
        check_result(result)
        return
    with pytest.raises(ValueError, match=re.escape("unsupported: only a file TFLM cannot run has it")):
        check_result(result)


def test_fidelity_figures_read_back_belong_to_a_candidate_and_its_evaluation() -> None:
    """verify runs the fidelity read-back on every conversion: the reference has none, a candidate's its samples'."""
    result = model_result()
    candidate, conversion = result.candidates[0], result.candidates[0].conversion
    interval = Interval(98.0, 99.6, 0.95, "BCa", 2000)
    fidelity = Fidelity(conversion.evaluation.samples, 99.0, interval, "", 30.0, None, False)

    def with_fidelity(reference: Fidelity | None, built: Fidelity | None) -> ModelResult:
        converted = dataclasses.replace(conversion, fidelity=built)
        return dataclasses.replace(
            result,
            reference=dataclasses.replace(result.reference, fidelity=reference),
            candidates=(dataclasses.replace(candidate, conversion=converted),),
        )

    check_result(with_fidelity(None, fidelity))
    with pytest.raises(ValueError, match=re.escape("reference.fidelity: the float32 .tflite is what the others")):
        check_result(with_fidelity(fidelity, fidelity))
    other = dataclasses.replace(fidelity, samples=fidelity.samples + 1)
    with pytest.raises(ValueError, match=re.escape(f"fidelity: measured on {other.samples} samples")):
        check_result(with_fidelity(None, other))


@pytest.mark.parametrize("exact", [True, False])
def test_a_custom_metric_on_tflm_says_its_interval_is_of_litert_outputs_beside_the_devices_notes(exact) -> None:
    """A custom metric's exact interval calls the function on resamples of LiteRT's outputs of the file (TFLM's are not
    kept); a metric that is the mean of its scores resamples the device's own scores, and the report says nothing."""
    measured = on_device(model_result(), macs=10, litert_evaluation=EVALUATION, agreement=AGREEMENT)
    candidate = measured.candidates[0]

    def custom(evaluation):  # an F1-like figure is no mean of its per-sample scores
        scores = (0.0, 1.0, 1.0, 1.0) if exact else (evaluation.value,) * 4
        return dataclasses.replace(evaluation, metric="custom-higher", per_sample=scores)

    conversion = dataclasses.replace(candidate.conversion, evaluation=custom(candidate.conversion.evaluation))
    provenance = dataclasses.replace(measured.provenance, custom_metric="my_metrics:f1")
    result = dataclasses.replace(
        measured, task="custom-higher", provenance=provenance, float_evaluation=custom(measured.float_evaluation),
        candidates=(dataclasses.replace(candidate, conversion=conversion,
                                        metric_change_interval=Interval(-1.0, 0.5, 0.95, "BCa", 2000)),),
    )  # fmt: skip
    text = render_markdown([result])
    note = (
        "The my_metrics:f1 change's interval is of LiteRT's outputs of this file, not tflm's: the exact bootstrap of a "
        "custom metric calls it on resamples of the outputs, and gate runs the file once more in LiteRT for them (the "
        "agreement above says how far the two differ)."
    )
    assert (note in text) is exact
    device = text[text.index("**On the device (tflm).**") :]
    assert (note in device.split("Compared with LiteRT")[0]) is exact  # with the device's other notes
