"""gate.reporting.verify_figures: figures read back that one measurement gives together, or refused naming the field.

One row a forgery an attack found (s30: fidelity dropped or forged, intervals forged, TFLM figures that do not
follow from the file), the exact message it is refused with ("" when gate could have written it). No TensorFlow:
results from tests/factories.py, judged again as gate judges them.
"""

from __future__ import annotations

import dataclasses

import pytest
from factories import DEFAULT_POLICY, model_result
from test_target_results import on_device
from test_verify import built, first, judged, problem, provenance

from gate.reporting.verify import check_result
from gate.results import Evaluation, Fidelity, Interval, ModelResult

replace = dataclasses.replace
FIDELITY_POLICY = DEFAULT_POLICY | {"fidelity.min_top1_agreement": 95.0, "fidelity.min_snr_db": 15.0}
CI = Interval(98.0, 99.9, 0.95, "BCa", 2000)  # as gate draws it under the default confidence
FIDELITY = Fidelity(1000, 99.5, CI, "", 35.0, replace(CI, low=33.0, high=37.0), False)  # 995 of 1000 samples
LINEAR = "its last activation is linear, not softmax or sigmoid"
IDENTICAL = Fidelity(1000, 100.0, replace(CI, low=100.0, high=100.0, method="percentile"), "", None, None, True)


def measured(fidelity: Fidelity | None = FIDELITY, **policy) -> ModelResult:
    """A classifier's result under the fidelity checks, its candidate's fidelity `fidelity`, judged."""
    result = model_result(policy=FIDELITY_POLICY | policy)
    return judged(built(result, fidelity=fidelity))


def output_error(evaluation: Evaluation, value: float) -> Evaluation:
    return replace(evaluation, metric="output_error", value=value, per_sample=(value,) * 4)


def fidelity_task(error: float, fidelity: Fidelity | None) -> ModelResult:
    """A result of the task fidelity, its candidate's output error `error` (percent) and its fidelity `fidelity`."""
    result = model_result(policy={"fidelity.min_top1_agreement": 95.0, "fidelity.min_snr_db": 15.0})
    conversion = result.candidates[0].conversion
    result = replace(
        result,
        task="fidelity",
        float_evaluation=output_error(result.float_evaluation, 0.0),
        reference=replace(result.reference, evaluation=output_error(result.reference.evaluation, 0.0)),
    )
    converted = replace(conversion, evaluation=output_error(conversion.evaluation, error), fidelity=fidelity)
    return judged(first(result, conversion=converted, metric_change=error))


def no_class_scores(reason: str) -> ModelResult:
    """A result of the task fidelity whose output is no class scores, for `reason`."""
    fidelity = replace(FIDELITY, top1_agreement=None, top1_agreement_interval=None, not_class_scores=reason)
    return fidelity_task(0.1, replace(fidelity, snr_db=30.0, snr_db_interval=replace(CI, low=29.0, high=31.0)))


def second(result: ModelResult, fidelity: Fidelity | None) -> ModelResult:
    """`result` with a float16 candidate after its own, built and measured as it is, its fidelity `fidelity`."""
    candidate = result.candidates[0]
    method = "float16"
    conversion = replace(
        candidate.conversion,
        method=method,
        artifact=replace(candidate.conversion.artifact, path=f"artifacts/{result.name}.{method}.tflite"),
        fidelity=fidelity,
    )
    return judged(replace(result, candidates=(candidate, replace(candidate, method=method, conversion=conversion))))


TFLM_UNSUPPORTED = {"arena_bytes": None, "arena_recorded_bytes": None, "files": (), "agreement": None}
LITERT = model_result().candidates[0].conversion.evaluation


def tflm(**figures) -> ModelResult:
    return on_device(model_result(), macs=10, **figures)


TFLM = tflm()
POLICY = TFLM.provenance.effective_policy
CASES = {
    # F1: fidelity on every built candidate or on none; always under the task fidelity
    "measured": (measured(), ""),
    "measured_on_none": (measured(None), ""),  # float outputs zero everywhere: its checks fail (test_fidelity)
    "measured_on_every_candidate": (second(measured(), FIDELITY), ""),
    "dropped_from_one_candidate": (
        second(measured(), None),
        "candidates[1].conversion.fidelity: missing, but candidate 0's is measured, and gate measures every built "
        "candidate against the same float32 outputs (or none, when those are zero on every eval sample)",
    ),
    "dropped_under_the_task_fidelity": (
        fidelity_task(50.0, None),
        "candidates[0].conversion.fidelity: missing, but the task fidelity measures it on every built candidate",
    ),
    # F3: intervals as gate draws them, figures a count of samples can give, an SNR float32 can give
    "metric_change_interval": (judged(first(measured(), metric_change_interval=replace(CI, low=-2.0, high=0.0))), ""),
    "metric_change_interval_dropped_where_the_policy_judges_it": (
        judged(first(measured(**{"statistics.decide_on": "upper_bound"}), metric_change_interval=None)),
        "candidates[0].metric_change_interval: missing, but gate draws one for every built candidate, and its policy "
        "judges it",
    ),
    "top1_agreement_without_its_interval": (
        measured(replace(FIDELITY, top1_agreement_interval=None)),
        "candidates[0].conversion.fidelity: a top-1 agreement comes with its interval, and an interval with its top-1 "
        "agreement",
    ),
    "metric_change_interval_of_fewer_resamples": (
        first(measured(), metric_change_interval=replace(CI, low=-1.0, high=0.5, resamples=1000)),
        "candidates[0].metric_change_interval: 1000 resamples, but gate draws 2000 (fewer only in a percentile "
        "interval of those that give a number)",
    ),
    "metric_change_interval_upside_down": (
        first(measured(), metric_change_interval=replace(CI, low=0.5, high=-1.0)),
        "candidates[0].metric_change_interval: 0.5 to -1.0 is not an interval",
    ),
    "interval_of_another_confidence": (
        measured(replace(FIDELITY, snr_db_interval=replace(CI, low=34.99, high=35.01, confidence=0.5))),
        "candidates[0].conversion.fidelity.snr_db_interval: confidence 0.5, but the effective policy's "
        "statistics.confidence is 0.95",
    ),
    "interval_of_the_policys_confidence": (
        measured(
            replace(FIDELITY, top1_agreement_interval=replace(CI, confidence=0.8)), **{"statistics.confidence": 0.8}
        ),
        "candidates[0].conversion.fidelity.snr_db_interval: confidence 0.95, but the effective policy's "
        "statistics.confidence is 0.8",
    ),  # fmt: skip
    "interval_of_no_resamples": (
        measured(replace(FIDELITY, top1_agreement_interval=replace(CI, resamples=0))),
        "candidates[0].conversion.fidelity.top1_agreement_interval: 0 resamples, but gate draws 2000 (fewer only in a "
        "percentile interval of those that give a number)",
    ),
    "top1_agreement_of_no_whole_sample": (
        measured(replace(FIDELITY, top1_agreement=33.3333)),
        "candidates[0].conversion.fidelity: a top-1 agreement of 33.3333% is no whole number of 1000 samples",
    ),
    "snr_beyond_float32": (
        measured(replace(FIDELITY, snr_db=1e308, snr_db_interval=None)),
        "candidates[0].conversion.fidelity: 1e+308 is out of its figure's range",
    ),
    # F4: the fidelity figures and the evaluation are one measurement of the same outputs
    "identical_but_disagreeing": (
        measured(replace(IDENTICAL, top1_agreement=0.0)),
        "candidates[0].conversion.fidelity: identical outputs, but a top-1 agreement of 0.0%",
    ),
    "identical_but_scoring_otherwise": (
        measured(IDENTICAL),
        "candidates[0].conversion.fidelity: identical outputs to the float32 .tflite's, but its accuracy is 95.0 and "
        "the float32 file's 96.0",
    ),
    "identical_and_scoring_the_same": (
        judged(first(built(measured(IDENTICAL), evaluation=replace(LITERT, value=96.0)), metric_change=0.0)),
        "",
    ),
    # s31 F11: a classifier's top-1 agreement dropped as "no class scores", identical outputs at another batch
    "classifier_said_not_class_scores": (
        measured(replace(FIDELITY, top1_agreement=None, top1_agreement_interval=None, not_class_scores=LINEAR)),
        "candidates[0].conversion.fidelity.not_class_scores: 'its last activation is linear, not softmax or sigmoid', "
        "but a classifier's output is class scores, whose top-1 agreement gate measures",
    ),
    "not_class_scores_in_other_words": (
        no_class_scores("no"),
        "candidates[0].conversion.fidelity.not_class_scores: 'no', but gate gives no such reason",
    ),
    "not_class_scores_of_a_linear_output": (no_class_scores(LINEAR), ""),
    "identical_but_scoring_otherwise_at_another_batch": (
        judged(built(measured(IDENTICAL), evaluation=replace(LITERT, batch_size=1))),
        "candidates[0].conversion.fidelity: identical outputs to the float32 .tflite's, but its accuracy is 95.0 and "
        "the float32 file's 96.0",
    ),
    "accuracy_out_of_its_range": (
        judged(built(measured(), evaluation=replace(LITERT, value=5000.0))),
        "candidates[0].conversion.evaluation.value: 5000.0 is out of the range of its metric",
    ),
    "task_fidelity_snr_of_its_output_error": (
        fidelity_task(0.1, replace(FIDELITY, snr_db=30.0, snr_db_interval=replace(CI, low=29.0, high=31.0))),
        "",
    ),  # fmt: skip
    "task_fidelity_snr_not_of_its_output_error": (
        fidelity_task(50.0, replace(FIDELITY, snr_db=60.0, snr_db_interval=replace(CI, low=59.0, high=61.0))),
        "candidates[0].conversion.fidelity: SNR 60.0 dB, but its output error of 50.0% is an SNR of 3.010300 dB",
    ),
    "task_fidelity_identical_with_an_output_error": (
        fidelity_task(50.0, IDENTICAL),
        "candidates[0].conversion.fidelity: identical outputs to the float32 .tflite's, but its output_error is 50.0 "
        "and the float32 file's 0.0",
    ),
    # F8: TFLM's figures as the file gives them
    "tflm": (TFLM, ""),
    "tflm_flash_smaller_than_the_file": (
        tflm(flash_bytes=1_000),
        "candidates[0].conversion.device.flash_bytes: 1000, but TFLM's flash is the .tflite's 10000",
    ),
    "tflm_operator_it_lacks_unsaid": (
        tflm(operators=("FULLY_CONNECTED x2", "GELU x1")),
        "candidates[0].conversion.device.unsupported: its operators make it 'TFLM has no kernel for operator GELU'",
    ),
    "tflm_operator_it_has_said_missing": (
        tflm(**TFLM_UNSUPPORTED, litert_evaluation=LITERT, unsupported=("TFLM has no kernel for operator ADD",)),
        "candidates[0].conversion.device.unsupported: TFLM has every operator it lists, and this is not what TFLM "
        "says of one it cannot run",
    ),
    "tflm_unsupported_saying_nothing": (
        tflm(**TFLM_UNSUPPORTED, litert_evaluation=LITERT, unsupported=("",)),
        "candidates[0].conversion.device.unsupported: TFLM has every operator it lists, and this is not what TFLM "
        "says of one it cannot run",
    ),
    "tflm_kernel_lacking_the_types": (
        tflm(
            **TFLM_UNSUPPORTED,
            litert_evaluation=LITERT,
            unsupported=("TFLM cannot prepare operator FULLY_CONNECTED (#0): Type INT16 not supported",),
        ),
        "",
    ),  # fmt: skip
    "tflm_unsupported_judging_another_metric": (
        tflm(
            **TFLM_UNSUPPORTED,
            operators=("GELU x1",),
            litert_evaluation=replace(LITERT, value=40.0),
            unsupported=("TFLM has no kernel for operator GELU",),
        ),
        "candidates[0].conversion.device.evaluation: TFLM cannot run the file, so the metric judged is LiteRT's, "
        "litert_evaluation",
    ),  # fmt: skip
    "tflm_operator_name_of_a_megabyte": (
        tflm(operators=("CUSTOM:" + "Y" * 1_000_000 + " x1",)),
        "candidates[0].conversion.device.operators: more than 1000, or one longer than 1000 characters",
    ),
    "tflm_without_ops_supported": (
        judged(provenance(TFLM, effective_policy={k: v for k, v in POLICY.items() if k != "ops.supported"})),
        "candidates[0].conversion.device: measured on tflm, but its effective policy has no ops.supported (gate sets "
        "it)",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_figures_read_back_are_what_one_measurement_gives(name) -> None:
    result, message = CASES[name]
    assert problem(check_result, result) == message


def test_intervals_are_read_back_with_the_resamples_gate_draws() -> None:
    from gate.measurement import stats
    from gate.reporting import verify_figures

    assert verify_figures.DEFAULT_RESAMPLES == stats.DEFAULT_RESAMPLES
