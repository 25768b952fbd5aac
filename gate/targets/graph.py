"""A .tflite's operators and tensors, read from the flatbuffer itself, and its multiply-accumulate count.

Read with ai_edge_litert's generated `tflite` schema (ai-edge-litert is already a gate dependency, and
its schema imports in 0.03 s where TensorFlow's copy imports TensorFlow), never by running the model:
the op list is what a firmware must register, whatever runtime is asked.

MACs are counted per inference from the tensor shapes stored in the file (a dynamic batch is stored
as 1, so the count is per sample). Only operators that multiply by weights or by another tensor along
a reduction axis count, as Vela's `nn_macs` and TensorFlow's converter ("Estimated count of arithmetic
ops ... MACs") count them: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, BATCH_MATMUL, TRANSPOSE_CONV,
CONV_3D, CONV_3D_TRANSPOSE, UNIDIRECTIONAL_SEQUENCE_LSTM. Elementwise ops, pooling and activations
count zero. Operators inside WHILE/IF bodies are counted once per call site's subgraph, not per
iteration (the trip count is data, not graph): `MacCount.uncounted` names what was not counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

from ai_edge_litert import schema_py_generated as schema

_BUILTIN_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
_TYPE_NAMES = {code: name for name, code in vars(schema.TensorType).items() if not name.startswith("_")}
# Control flow runs other subgraphs a number of times the graph does not say.
_CONTROL_FLOW = frozenset({"WHILE", "IF", "STABLEHLO_WHILE", "STABLEHLO_CASE"})


class GraphError(ValueError):
    """The bytes are not a .tflite this reader understands; the message says why."""


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]  # as stored: a dynamic batch reads 1
    dtype: str  # the schema's TensorType name: INT8, FLOAT32, INT16, ...
    is_variable: bool
    scale: float | None  # per-tensor scale (the first one when per-channel), None when not quantized
    zero_point: int | None


@dataclass(frozen=True)
class Operator:
    subgraph: int
    index: int  # position in its subgraph's execution order
    name: str  # BuiltinOperator name ("CONV_2D"), or "CUSTOM:<custom code>"
    version: int
    inputs: tuple[int, ...]  # tensor indices in its subgraph; -1 is an omitted optional input
    outputs: tuple[int, ...]
    adj_x: bool = False  # BATCH_MATMUL's options, the only ones the MAC count needs
    adj_y: bool = False


@dataclass(frozen=True)
class Graph:
    operators: tuple[Operator, ...]  # every subgraph's, subgraph 0 first
    tensors: tuple[tuple[Tensor, ...], ...]  # per subgraph
    inputs: tuple[int, ...]  # subgraph 0's input tensor indices, in the order runtimes number them
    outputs: tuple[int, ...]

    def tensor(self, op: Operator, position: int, *, output: bool = False) -> Tensor | None:
        indices = op.outputs if output else op.inputs
        if position >= len(indices) or indices[position] < 0:
            return None
        return self.tensors[op.subgraph][indices[position]]

    def op_counts(self) -> dict[str, int]:
        """How many of each operator the file holds, e.g. {"FULLY_CONNECTED": 2, "SOFTMAX": 1}."""
        return dict(Counter(op.name for op in self.operators))

    def op_versions(self) -> dict[str, tuple[int, ...]]:
        """The versions of each operator the file uses (TFLite picks a version per op's types and options)."""
        versions: dict[str, set[int]] = {}
        for op in self.operators:
            versions.setdefault(op.name, set()).add(op.version)
        return {name: tuple(sorted(found)) for name, found in versions.items()}


def read_graph(model: bytes) -> Graph:
    """Every subgraph's operators and tensors; a file that is not a TFLite flatbuffer raises GraphError."""
    model = bytes(model)
    if len(model) < 8 or model[4:8] != b"TFL3":
        raise GraphError("not a TFLite flatbuffer (no 'TFL3' file identifier at byte 4)")
    try:
        root = schema.Model.GetRootAs(model, 0)
        codes = [_opcode_name(root.OperatorCodes(i)) for i in range(root.OperatorCodesLength())]
        operators: list[Operator] = []
        tensors: list[tuple[Tensor, ...]] = []
        for s in range(root.SubgraphsLength()):
            subgraph = root.Subgraphs(s)
            tensors.append(tuple(_tensor(subgraph.Tensors(t)) for t in range(subgraph.TensorsLength())))
            for o in range(subgraph.OperatorsLength()):
                op = subgraph.Operators(o)
                name, version = codes[op.OpcodeIndex()]
                adj_x = adj_y = False
                if name == "BATCH_MATMUL" and op.BuiltinOptions() is not None:
                    options = schema.BatchMatMulOptions()
                    options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
                    adj_x, adj_y = bool(options.AdjX()), bool(options.AdjY())
                operators.append(
                    Operator(s, o, name, version, _ints(op.InputsAsNumpy()), _ints(op.OutputsAsNumpy()), adj_x, adj_y)
                )
        main = root.Subgraphs(0)
        return Graph(tuple(operators), tuple(tensors), _ints(main.InputsAsNumpy()), _ints(main.OutputsAsNumpy()))
    except GraphError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged flatbuffer raises IndexError, struct.error, TypeError...
        raise GraphError(f"damaged TFLite flatbuffer ({type(exc).__name__}: {str(exc)[:120]})") from None


def _opcode_name(code: schema.OperatorCode) -> tuple[str, int]:
    # Codes above 127 live in builtin_code; the deprecated int8 field holds 127 for them (schema v3a).
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.CustomCode()
        return f"CUSTOM:{custom.decode(errors='replace') if custom else ''}", code.Version()
    return _BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}"), code.Version()


def _tensor(tensor: schema.Tensor) -> Tensor:
    quantization = tensor.Quantization()
    scale = zero_point = None
    if quantization is not None and quantization.ScaleLength():
        scale = float(quantization.Scale(0))
        zero_point = int(quantization.ZeroPoint(0)) if quantization.ZeroPointLength() else 0
    name = tensor.Name()
    return Tensor(
        name=name.decode(errors="replace") if name else "",
        shape=_ints(tensor.ShapeAsNumpy()),
        dtype=_TYPE_NAMES.get(tensor.Type(), f"TYPE_{tensor.Type()}"),
        is_variable=bool(tensor.IsVariable()),
        scale=scale,
        zero_point=zero_point,
    )


def _ints(array: Any) -> tuple[int, ...]:
    # The generated reader returns 0 (not an empty array) for an absent vector.
    return tuple(int(x) for x in array) if not isinstance(array, int) else ()


# ---------------------------------------------------------------- multiply-accumulates


@dataclass(frozen=True)
class MacCount:
    total: int
    by_operator: dict[str, int]  # per operator name, summed
    uncounted: tuple[str, ...]  # control-flow ops whose bodies run a data-dependent number of times


def count_macs(graph: Graph) -> MacCount:
    """Multiply-accumulates per inference (batch as stored), deterministic: the same file, the same count."""
    by_operator: Counter[str] = Counter()
    for op in graph.operators:
        try:
            macs = _macs(graph, op)
        except IndexError:  # an operator without the weights tensor its kind has: a damaged file, nothing to count
            macs = 0
        if macs:
            by_operator[op.name] += macs
    uncounted = tuple(sorted({op.name for op in graph.operators if op.name in _CONTROL_FLOW}))
    return MacCount(sum(by_operator.values()), dict(by_operator), uncounted)


def _shape(graph: Graph, op: Operator, position: int, *, output: bool = False) -> tuple[int, ...]:
    """A tensor's shape; () for an omitted optional one (its MACs then count nothing)."""
    tensor = graph.tensor(op, position, output=output)
    return tensor.shape if tensor is not None else ()


def _macs(graph: Graph, op: Operator) -> int:
    out = _shape(graph, op, 0, output=True)
    if not out:
        return 0
    if op.name in ("CONV_2D", "CONV_3D"):
        # filter [out_channels, kh, kw, in_channels / groups] (CONV_3D: [kd, kh, kw, in, out])
        weights = _shape(graph, op, 1)
        per_output = prod(weights[1:]) if op.name == "CONV_2D" else prod(weights[:-1])
        return prod(out) * per_output
    if op.name == "DEPTHWISE_CONV_2D":
        weights = _shape(graph, op, 1)  # [1, kh, kw, out_channels]
        return prod(out) * weights[1] * weights[2]
    if op.name == "FULLY_CONNECTED":
        weights = _shape(graph, op, 1)  # [units, depth]
        return prod(out) * weights[-1]
    if op.name == "BATCH_MATMUL":
        lhs = _shape(graph, op, 0)
        depth = lhs[-2] if op.adj_x else lhs[-1]
        return prod(out) * depth
    if op.name == "TRANSPOSE_CONV":
        # inputs: output_shape, filter [out_channels, kh, kw, in_channels], input: every input pixel
        # scatters a kh x kw x out_channels patch.
        weights, data = _shape(graph, op, 1), _shape(graph, op, 2)
        return prod(data) * prod(weights[:3])
    if op.name == "CONV_3D_TRANSPOSE":
        weights, data = _shape(graph, op, 1), _shape(graph, op, 2)  # filter [kd, kh, kw, out, in]
        return prod(data) * prod(weights[:4])
    if op.name == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        return _lstm_macs(graph, op)
    return 0


def _lstm_macs(graph: Graph, op: Operator) -> int:
    """Four gates' input and recurrent matrices per time step, plus the projection when there is one."""
    data = _shape(graph, op, 0)  # [batch, time, input] (time-major: [time, batch, input])
    steps_times_batch = prod(data[:-1])
    matrices = [_shape(graph, op, i) for i in range(1, 9)]  # input_to_{i,f,c,o}, recurrent_to_{i,f,c,o}
    per_step = sum(prod(shape) for shape in matrices if shape)
    projection = _shape(graph, op, 16)
    if projection:
        per_step += prod(projection)
    return steps_times_batch * per_step


def macs_of(model_path: Path) -> int | None:
    """The MAC count of a .tflite on disk; None when it cannot be read as one (its runtime says why elsewhere)."""
    try:
        return count_macs(read_graph(model_path.read_bytes())).total
    except GraphError:
        return None
