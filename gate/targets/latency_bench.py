"""The pytest-benchmark test that gate.targets.latency.measure_latency runs for each model.

Not part of gate's own test suite: the cases come from a plugin that
`measure_latency` passes to `pytest.main`. Each round times one `invoke` at
batch 1 on a real eval sample; the next sample is set between rounds, untimed.
"""

from __future__ import annotations

import itertools

from ai_edge_litert.interpreter import Interpreter


def test_latency(benchmark, latency_case) -> None:
    interpreter = Interpreter(model_path=str(latency_case.model_path), num_threads=latency_case.threads)
    for detail in interpreter.get_input_details():
        if detail["shape_signature"][0] == -1:
            interpreter.resize_tensor_input(detail["index"], [1, *detail["shape"][1:]], strict=True)
    interpreter.allocate_tensors()
    samples = itertools.cycle(latency_case.feeds)

    def set_next_sample() -> None:
        for index, array in next(samples).items():
            interpreter.set_tensor(index, array)

    benchmark.pedantic(
        interpreter.invoke,
        setup=set_next_sample,
        rounds=latency_case.rounds,
        warmup_rounds=latency_case.warmup_rounds,
        iterations=1,
    )
