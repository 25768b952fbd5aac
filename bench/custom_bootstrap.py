"""What a custom metric's interval costs: the function called again on every bootstrap resample (and jackknife sample).

gate.measurement.custom.metric_change_interval on synthetic outputs of a 2-class model and a quantized copy of
it (the float outputs plus noise), on eval sets of 100 to 5,000 samples, 2,000 resamples, BCa (its jackknife adds
one call per sample and model). Three metrics: `f1` (no mean of its per-sample scores: the exact path, which
calls the function), `accuracy` returned by the function as the mean of its scores (the fast path: the scores
resampled, no call), and, for comparison, the built-in classification task's interval of the same accuracy.
Prints the calls, the seconds and the interval of each.

    python bench/custom_bootstrap.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from gate.measurement import custom  # noqa: E402
from gate.measurement.stats import change_interval  # noqa: E402
from gate.results import Evaluation  # noqa: E402
from gate.tasks import TASKS  # noqa: E402
from gate.tasks.custom import CustomMetric, bound, call_metric  # noqa: E402

SOURCE = """
import numpy as np

calls = 0

def f1(outputs, labels):
    global calls
    calls += 1
    predicted = np.argmax(outputs, axis=1)
    tp = np.sum((predicted == 1) & (labels == 1))
    return float(200 * tp / (np.sum(predicted == 1) + np.sum(labels == 1))), (predicted == labels) * 1.0

def accuracy(outputs, labels):
    global calls
    calls += 1
    correct = (np.argmax(outputs, axis=1) == labels) * 100.0
    return float(correct.mean()), correct
"""


def main() -> None:
    root = Path(tempfile.mkdtemp())
    (root / "bench_metrics.py").write_text(SOURCE)
    task = TASKS["custom-higher"]
    print(f"{'samples':>8} {'metric':<9} {'path':<6} {'calls':>7} {'seconds':>8} {'interval':>16}   built-in: seconds")
    for samples in (100, 1000, 5000):
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 2, samples)
        float_outputs = rng.normal(size=(samples, 2)) + np.eye(2)[labels] * 1.5
        quantized = float_outputs + rng.normal(scale=0.5, size=(samples, 2))
        for name in ("f1", "accuracy"):
            with bound(f"bench_metrics:{name}", root=root, where=Path("gate.toml")) as metric:
                assert metric is not None
                module = sys.modules["bench_metrics"]
                evaluations = [_evaluation(metric, outputs, labels, root) for outputs in (float_outputs, quantized)]
                exact = not all(custom.is_mean_of_scores(evaluation) for evaluation in evaluations)
                module.calls = 0
                start = time.perf_counter()
                interval = custom.metric_change_interval(task, *evaluations, labels, float_outputs,
                                                         lambda: quantized, confidence=0.95)  # fmt: skip
                seconds, calls = time.perf_counter() - start, module.calls
            correct = [(np.argmax(o, axis=1) == labels) * 100.0 for o in (float_outputs, quantized)]
            start = time.perf_counter()
            change_interval(*correct, TASKS["classification"], confidence=0.95)
            built_in = time.perf_counter() - start
            print(
                f"{samples:>8} {name:<9} {'exact' if exact else 'fast':<6} {calls:>7,} {seconds:>8.2f} "
                f"{f'{interval.low:+.2f} to {interval.high:+.2f}':>16}   {built_in:.2f}"
            )


def _evaluation(metric: CustomMetric, outputs: np.ndarray, labels: np.ndarray, root: Path) -> Evaluation:
    value, scores = call_metric(metric, outputs, labels, root=root)
    return Evaluation("custom-higher", value, len(outputs), 64, tuple(scores.tolist()))


if __name__ == "__main__":
    main()
