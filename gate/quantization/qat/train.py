"""Quantization-aware training (method "qat-int8"): `python -m gate.quantization.qat.train REQUEST.json`.

Fine-tunes a model with tfmot's quantization-aware training on its train.npz
(never on the eval set), then converts it to a full-int8 .tflite. tfmot works
only with tf-keras, so this runs in a process of its own, with
TF_USE_LEGACY_KERAS=1 set before anything imports TensorFlow; the parent
builds the request and reads the result with gate.quantization.qat.job. This module
reads the request, runs the steps (gate.quantization.qat.steps) in order and writes the result.

- A Keras 3 model is rebuilt in tf-keras from its config (gate.quantization.qat.rebuild)
  with the weights the parent saved, and must reproduce the original's outputs
  on the eval inputs within the request's tolerance before it is trained.
- Layers tfmot cannot quantize (LSTM, Conv1D, Rescaling, Attention...) are left
  unannotated and listed; the converter quantizes them from the calibration data.
- Where QAT cannot be done (no train.npz, no labels, a subclassed or nested
  model, a layer gate cannot rebuild) the result says why, and the process exits 0.
- The result is written once before conversion, so that when the TFLite
  converter crashes (it has died with SIGSEGV on a BiLSTM) the parent still
  has the training figures.

Exit codes: 0 with a result (OK or UNAVAILABLE), 1 for a bug in gate (traceback
on stderr), 2 for an unreadable request.
"""

import os

# Before anything imports TensorFlow: tf.keras and tfmot then use tf-keras (Keras 2).
# Nothing gate.quantization.qat.train imports below imports TensorFlow at module level (tests/test_qat.py checks).
os.environ["TF_USE_LEGACY_KERAS"] = "1"

import sys
import time
import traceback
from pathlib import Path

from gate.errors import ModelError
from gate.quantization.qat import steps
from gate.quantization.qat.job import QatRequest, QatResult, QatStatus, read_request, write_json


def run(request: QatRequest) -> QatResult:
    """Train and convert; a reason QAT cannot be done becomes an UNAVAILABLE result, never an exception."""
    state = steps.Run(request)
    try:
        return _run(request, state)
    except ModelError as exc:
        return state.result(QatStatus.UNAVAILABLE, str(exc))


def _run(request: QatRequest, state: steps.Run) -> QatResult:
    from gate.inspection import inspect_model

    total = time.perf_counter()
    model_path = Path(request.model_path)
    with state.timed("inspect"):
        inspection = inspect_model(model_path)
        state.source_writer = f"{inspection.writer} {inspection.writer_version}".strip()
        if inspection.format == "saved_model":
            raise ModelError(
                f"{model_path}: a SavedModel has no Keras layers for tfmot to wrap; quantization-aware training "
                "needs the model as model.keras or model.h5"
            )
        train_path = steps.train_file(request)
        # Translated before TensorFlow is imported: an architecture gate cannot rebuild is refused in a blink.
        plan = steps.keras3_plan(model_path, request) if inspection.writer == "keras" else None

    with state.timed("import tensorflow"):
        import tensorflow as tf
        import tf_keras

        tf_keras.utils.set_random_seed(request.seed)
        # Same request, same bytes: deterministic kernels (tests/test_qat.py compares two runs).
        tf.config.experimental.enable_op_determinism()

    with state.timed("load"):
        model = steps.load_model(model_path, plan, request, state)
        if request.unroll:  # before the faithfulness check, which then covers it too
            model = steps.unrolled(model)
        inputs = steps.input_specs(model, request, model_path)
        state.fixed_batch = request.fixed_batch or inspection.has_recurrent_layers
    steps.progress(
        f"{'rebuilt in tf-keras' if state.rebuilt else 'loaded'}: {len(model.layers)} layers, "
        f"{state.seconds['load']:.1f} s"
    )

    with state.timed("faithfulness"):
        state.faithfulness = steps.prove_faithful(model, inputs, request, required=state.rebuilt)
        if state.faithfulness:
            f = state.faithfulness
            steps.progress(
                f"faithful: max |tf-keras - original| {f.max_abs_diff:.3g} <= {f.tolerance:g} on {f.samples} eval "
                "inputs"
            )

    with state.timed("data"):
        from gate.frontends import data
        from gate.frontends.base import OutputSpec

        # Several outputs: y.<output name> for each labelled one, checked by its task (gate.quantization.qat.heads).
        outputs = tuple(
            OutputSpec(name, task, int(tensor.shape[-1]), None)
            for (name, task), tensor in zip(request.outputs, model.outputs, strict=False)
        )
        try:
            train = data.load_dataset(
                train_path,
                model_folder=train_path.parent,
                inputs=inputs,
                task=request.task,
                output_width=int(model.outputs[0].shape[-1]),
                need_labels=True,
                outputs=outputs,
            )
        except ModelError as exc:
            raise ModelError(f"quantization-aware training needs labelled training data: {exc}") from None
        state.train_samples = train.samples

    with state.timed("annotate"):
        from gate.quantization.qat.annotate import annotate

        qat_model, state.annotated, state.unannotated = annotate(model, where=str(model_path))
        unannotated = ", ".join(f"{i.name} ({i.class_name})" for i in state.unannotated) or "none"
        steps.progress(f"annotated {len(state.annotated)} layers; left in float: {unannotated}")

    with state.timed("train"):
        steps.fit(qat_model, model, train, request, state)

    state.stage = "convert"
    write_json(Path(request.result_path), state.result(QatStatus.FAILED, "the process ended while converting"))
    with state.timed("convert"):
        blob = steps.convert_to_int8(qat_model, inputs, train, request, state)
        tflite = Path(request.tflite_path)
        from gate.files import write_atomic

        write_atomic(tflite, blob)
    steps.progress(f"converted to full-int8 .tflite: {len(blob)} bytes, {state.seconds['convert']:.1f} s")
    state.seconds["total"] = round(time.perf_counter() - total, 3)
    return state.result(QatStatus.OK, tflite=tflite)


def main(argv: list[str] | None = None) -> int:
    """`python -m gate.quantization.qat.train REQUEST.json`: run it, write the result (exit codes: module docstring)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m gate.quantization.qat.train REQUEST.json", file=sys.stderr)
        return 2
    try:
        request = read_request(Path(argv[0]))
    except ModelError as exc:
        print(f"gate.quantization.qat.train: {exc}", file=sys.stderr)
        return 2
    try:
        result = run(request)
    except Exception:  # a bug in gate: the traceback goes to stderr for the parent's log
        traceback.print_exc()
        return 1
    write_json(Path(request.result_path), result)
    if result.status is not QatStatus.OK:
        steps.progress(f"not trained: {result.reason.splitlines()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
