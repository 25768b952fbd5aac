"""Can the layer ranking measure fewer variants? Two pre-selections against measuring every op alone.

gate.quantization.ranking.rank_layers quantizes each op alone (every other op float) and measures the
model output's noise-to-signal ratio: one quantizer call and one run per op. On issue 26's ResNet50 that
is about 4.5 s an op, 75 ops. The report's table shows the worst 10, the fallback keeps up to
`search.max_float_layers` float: only those need the exact figure, if the others can be ruled out
faithfully. On the bundled digits_outlier_mlp and digits_mobilenetv2 (the first 200 training samples
calibrate, the first 64 are run, as in gate), this prints for each way:

- every op alone, on the model output (what gate does) and on the logits (the tensor a final SOFTMAX
  reads): variants run, the top 5, the eval accuracy with the first 2 ops float;
- (b) a local pre-score from one fully int8 run with every tensor kept: each op's output tensor's
  noise-to-signal ratio less its inputs' largest. Printed: where it puts the true 10 worst;
- (a) group testing: the ops in 8 groups (no op in the group of its producer or consumer), each group
  quantized in one variant; best first, the largest measure left is split in halves or, an op's own,
  settled, until 10 are. Faithful only if a group's error bounds each member's (errors that add).
  Printed: variants run (for the worst 10, and for the worst 5), whether it settles the same ops, the
  worst case of a member measured alone against a group it was in, the accuracy with its first 2 float.

With `resnet50_64` it also runs an untrained keras.applications ResNet50 at 64×64 (seeded, 10 classes,
200 generated calibration samples uniform in [-1, 1]; no eval data, so no accuracy): issue 26's shape of
model, smaller. It takes many minutes.

    python bench/ranking_preselection.py [resnet50_64]
"""

from __future__ import annotations

import heapq
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

import numpy as np  # noqa: E402

MODELS = {"digits_outlier_mlp": "pixels", "digits_mobilenetv2": "image"}
TOP = 10
GROUPS = 8
PRESCORE_SAMPLES = 16


class Variants:
    """One variant per set of ops quantized (every other op float), run once; its output and logits errors kept."""

    def __init__(self, saved_model: Path, calibration: Mapping[str, np.ndarray]) -> None:
        from gate.quantization.convert import calibrated_model, mlir_quantize
        from gate.quantization.ranking import RANKING_SAMPLES, _rankable, tflite_ops

        self.calibrated = calibrated_model(saved_model, calibration)
        self.probe = {name: array[:RANKING_SAMPLES] for name, array in calibration.items()}
        self.ops = tflite_ops(self.calibrated)
        self.rankable = [op for op in self.ops if _rankable(op)]
        self.every_tensor = [name for op in self.ops for name in op.outputs]
        final = self.ops[-1]
        self.logits = final.inputs[0] if final.name in ("SOFTMAX", "LOGISTIC") else None
        self.reference_model = mlir_quantize(
            self.calibrated, denylist=self.every_tensor, input_dtype="float32", output_dtype="float32"
        )
        self.reference = self._outputs(self.reference_model)
        self.errors: dict[tuple[int, ...], tuple[float, float]] = {}

    def _outputs(self, model: bytes) -> tuple[np.ndarray, np.ndarray]:
        """The model output and the logits (the output itself without a final softmax), on the probe."""
        from gate.quantization.ranking import _interpreter

        interpreter = _interpreter(model, preserve=True)
        runner = interpreter.get_signature_runner("serving_default")
        result = runner(
            **{name: np.asarray(self.probe[name], d["dtype"]) for name, d in runner.get_input_details().items()}
        )
        output = np.concatenate([result[key].reshape(len(result[key]), -1) for key in sorted(result)], axis=1)
        if self.logits is None:
            return output.astype(np.float64), output.astype(np.float64)
        detail = next(t for t in interpreter.get_tensor_details() if t["name"] == self.logits)
        logits = interpreter.get_tensor(detail["index"]).astype(np.float64)
        scale, zero_point = detail["quantization"]
        logits = (logits - zero_point) * scale if scale else logits
        return output.astype(np.float64), logits.reshape(len(logits), -1)

    def error(self, items: Sequence[int], on: str) -> float:
        """Noise-to-signal ratio of the output ("output") or the logits ("logits") with `items` alone int8."""
        from gate.quantization.convert import mlir_quantize

        key = tuple(sorted(items))
        if key not in self.errors:
            quantized = {name for index in key for name in self.rankable[index].outputs}
            model = mlir_quantize(
                self.calibrated,
                denylist=[name for name in self.every_tensor if name not in quantized],
                input_dtype="float32",
                output_dtype="float32",
            )
            self.errors[key] = tuple(  # type: ignore[assignment]
                float(np.sum(np.square(got - want)) / np.sum(np.square(want)))
                for got, want in zip(self._outputs(model), self.reference, strict=True)
            )
        return self.errors[key][0 if on == "output" else 1]


def settle(groups: Sequence[Sequence[int]], top: int, measure: Callable[[Sequence[int]], float]) -> list[int]:
    """Best first: the largest measure left is split in halves if a group's, settled if an op's own."""
    heap = [(-measure(group), min(group), tuple(group)) for group in groups]
    heapq.heapify(heap)
    settled: list[int] = []
    while heap and len(settled) < top:
        _, _, items = heapq.heappop(heap)
        if len(items) == 1:
            settled.append(items[0])
        else:
            for half in (items[: (len(items) + 1) // 2], items[(len(items) + 1) // 2 :]):
                heapq.heappush(heap, (-measure(half), min(half), half))
    return settled


def apart(ops: Sequence, count: int) -> list[list[int]]:
    """Op k in group k mod count, or the next group holding neither its producer nor its consumer."""
    produced_by = {name: index for index, op in enumerate(ops) for name in op.outputs}
    neighbours: list[set[int]] = [set() for _ in ops]
    for index, op in enumerate(ops):
        for producer in (produced_by[name] for name in op.inputs if name in produced_by):
            neighbours[index].add(producer)
            neighbours[producer].add(index)
    groups: list[list[int]] = [[] for _ in range(count)]
    for index in range(len(ops)):
        free = (groups[(index + shift) % count] for shift in range(count))
        group = next((group for group in free if not neighbours[index].intersection(group)), None)
        if group is None:
            groups.append(group := [])
        group.append(index)
    return [group for group in groups if group]


def prescore(variants: Variants) -> list[int]:
    """(b): the ops by the error each adds in one fully int8 run (output tensor's ratio less its inputs' largest)."""
    from gate.quantization.convert import mlir_quantize
    from gate.quantization.ranking import _interpreter

    int8 = mlir_quantize(variants.calibrated, denylist=[], input_dtype="float32", output_dtype="float32")
    reference, other = _interpreter(variants.reference_model, preserve=True), _interpreter(int8, preserve=True)
    probe = {name: array[:PRESCORE_SAMPLES] for name, array in variants.probe.items()}
    for interpreter in (reference, other):
        runner = interpreter.get_signature_runner("serving_default")
        runner(**{name: np.asarray(probe[name], d["dtype"]) for name, d in runner.get_input_details().items()})
    floats = {t["name"]: t["index"] for t in reference.get_tensor_details() if np.dtype(t["dtype"]).kind == "f"}
    ratio = {}
    for detail in other.get_tensor_details():
        if detail["name"] not in floats:
            continue
        try:
            values, want = (
                other.get_tensor(detail["index"]).astype(np.float64),
                reference.get_tensor(floats[detail["name"]]),
            )
        except ValueError:  # not allocated
            continue
        scale, zero_point = detail["quantization"]
        values = (values - zero_point) * scale if scale else values
        if values.shape == want.shape and np.any(want):
            ratio[detail["name"]] = float(np.sum(np.square(values - want)) / np.sum(np.square(want, dtype=np.float64)))
    added = [
        ratio.get(op.outputs[0], 0.0) - max((ratio.get(name, 0.0) for name in op.inputs), default=0.0)
        for op in variants.rankable
    ]
    return sorted(range(len(added)), key=lambda index: -added[index])


def resnet50_64(folder: Path) -> tuple[Path, dict[str, np.ndarray]]:
    import keras

    from gate.frontends.keras import _load_keras3

    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)
    model.save(folder / "resnet50_64.keras")
    loaded = _load_keras3(folder / "resnet50_64.keras", folder / "resnet50_64", fixed_batch=False)
    x = np.random.default_rng(0).uniform(-1, 1, (200, 64, 64, 3)).astype(np.float32)
    return loaded.saved_model_dir, {loaded.inputs[0].name: x}


def main() -> None:
    from ranking_samples import accuracy

    from gate.frontends.keras import _load_keras3
    from gate.quantization.fallback import convert_selective
    from gate.quantization.ranking import display_names, variable_layers

    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        for model_name, input_name in MODELS.items():
            folder = REPO / "models" / model_name
            loaded = _load_keras3(folder / "model.keras", Path(tmp) / model_name, fixed_batch=False)
            with np.load(folder / "train.npz") as train, np.load(folder / "eval.npz") as evaluation:
                calibration = {input_name: train["x"][:200].astype(np.float32)}
                evaluate = (evaluation["x"].astype(np.float32), evaluation["y"], input_name)
            cases.append((model_name, loaded.saved_model_dir, calibration, evaluate))
        if "resnet50_64" in sys.argv[1:]:
            cases.append(("resnet50_64", *resnet50_64(Path(tmp)), None))
        for model_name, saved_model, calibration, evaluate in cases:
            variants = Variants(saved_model, calibration)
            names = [op.outputs[0] for op in variants.rankable]
            labels = display_names(variants.ops, variable_layers(saved_model))
            count = len(variants.rankable)
            top = min(TOP, count)
            print(f"\n{model_name}: {count} ops", flush=True)

            def two_float(order: Sequence[int], evaluate: tuple | None = evaluate) -> str:
                if evaluate is None:
                    return "no eval data"
                model = convert_selective(saved_model, calibration, keep_float=[names[i] for i in order[:2]],
                                          input_dtype="float32", output_dtype="float32")  # fmt: skip
                return f"{accuracy(model, *evaluate):.2f}%"

            for on in ("output", "logits"):
                start = time.perf_counter()
                every = sorted(range(count), key=lambda index: (-variants.error([index], on), index))
                seconds = time.perf_counter() - start
                top5 = ", ".join(f"{labels[names[i]]} {variants.error([i], on):.2g}" for i in every[:5])
                print(f"  every op alone, {on}: {count} variants ({seconds:.1f} s); top 5: {top5}; "
                      f"2 float: {two_float(every)}")  # fmt: skip
                asked: list[tuple[int, ...]] = []

                def measure(items: Sequence[int], on: str = on, asked: list = asked) -> float:
                    asked.append(tuple(items))
                    return variants.error(items, on)

                five = settle(apart(variants.rankable, GROUPS), min(5, top), measure)
                for_five = len(asked)  # what search.max_float_layers' default needs
                asked.clear()
                selected = settle(apart(variants.rankable, GROUPS), top, measure)
                worst = max(
                    (max(variants.error([i], on) for i in group) / max(variants.error(group, on), 1e-12), group)
                    for group in asked
                    if len(group) > 1
                ) if count > top else (0.0, ())  # fmt: skip
                shared = len(set(selected[:5]) & set(every[:5]))
                print(f"  (a) groups, {on}: {len(asked)} variants ({sum(len(g) > 1 for g in asked)} groups); "
                      f"{for_five} for the worst 5 ({'the same' if five == every[:5] else 'ANOTHER'}); "
                      f"settles {'the same' if selected == every[:top] else 'ANOTHER'} {top}; the worst op "
                      f"{'found' if selected[:1] == every[:1] else 'MISSED'}; {shared} of the top 5; "
                      f"a member alone measured {worst[0]:.2f}× its group's error at worst; "
                      f"2 float: {two_float(selected)}", flush=True)  # fmt: skip
                if on == "output":
                    order = prescore(variants)
                    print(f"  (b) local pre-score: the true {top} worst at places "
                          f"{[order.index(i) for i in every[:top]]} of {count}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
