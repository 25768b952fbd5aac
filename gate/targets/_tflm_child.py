"""Run TFLM on one .tflite in a process of its own: `python -I _tflm_child.py MODE MODEL ARENA [FOLDER RESET]`.

The parent (gate.targets.tflm) reads this process's exit status, its stdout (one JSON line) and its
C-level stderr, where TFLM's MicroPrintf writes every error and print_allocations() its figures.
A failed allocation can crash the interpreter (SIGSEGV), which is why this is a process.

Modes:
  probe   allocate with ARENA bytes, invoke once on zeros, print the recorded allocations
  run     allocate, then for each sample in FOLDER/input_<i>.npy: reset() (when RESET is "reset"), set
          inputs, invoke; write FOLDER/output_<j>.npy (the raw output tensors, stacked)

Imports only numpy and tflite_micro (no TensorFlow), so a probe costs a Python start and one invoke.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str]) -> int:
    mode, model_path, arena = argv[0], Path(argv[1]), int(argv[2])
    from tflite_micro.python.tflite_micro import runtime
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = model_path.read_bytes()
    main_graph = schema.Model.GetRootAs(model, 0).Subgraphs(0)
    interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena)
    # Asking past the last input makes TFLM print an error on stderr: count them in the flatbuffer.
    inputs = [interpreter.get_input_details(i) for i in range(main_graph.InputsLength())]
    outputs = [interpreter.get_output_details(i) for i in range(main_graph.OutputsLength())]
    if mode == "probe":
        for index, detail in enumerate(inputs):
            interpreter.set_input(np.zeros(detail["shape"], detail["dtype"]), index)
        interpreter.invoke()
        sys.stderr.flush()
        interpreter.print_allocations()  # to the C-level stderr, after invoke as the wrapper asks
    elif mode == "run":
        folder, reset = Path(argv[3]), argv[4] == "reset"
        feeds = [np.load(folder / f"input_{i}.npy", allow_pickle=False) for i in range(len(inputs))]
        results: list[list[np.ndarray]] = [[] for _ in outputs]
        for sample in range(len(feeds[0]) if feeds else 0):
            # With a reset, each sample starts from the state a fresh interpreter has: variable tensors
            # (an LSTM's state) and resource variables keep the previous invoke's values otherwise.
            if reset:
                interpreter.reset()
            for index, feed in enumerate(feeds):
                interpreter.set_input(feed[sample].reshape(inputs[index]["shape"]), index)
            interpreter.invoke()
            for index in range(len(outputs)):
                results[index].append(np.array(interpreter.get_output(index)))
        for index, values in enumerate(results):
            np.save(folder / f"output_{index}.npy", np.stack(values) if values else np.zeros(0), allow_pickle=False)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps({"inputs": [_describe(d) for d in inputs], "outputs": [_describe(d) for d in outputs]}))
    return 0


def _describe(detail: dict) -> dict:
    quantization = detail["quantization_parameters"]
    return {
        "shape": [int(x) for x in detail["shape"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "scales": [float(x) for x in quantization["scales"]],
        "zero_points": [int(x) for x in quantization["zero_points"]],
    }


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
