"""One op int8 and every other float, spliced from two conversions instead of one quantizer call per op.

The layer ranking (gate.quantization.ranking) measures each op quantized alone. TensorFlow's MLIR quantizer,
called with every other op denylisted, builds such a model in 1.2 to 1.9 s on issue 26's 94 MB ResNet50: one
call per op, 75 ops. Each of those models is the float model (every op denylisted) with one op replaced by the
fully int8 model's own: a QUANTIZE of each float input to the scale the int8 model gives that tensor, the op
with the int8 model's weights, bias, options and operator version, and a DEQUANTIZE back into the float tensor
its consumers read. `OneOpInt8` builds exactly that from the two conversions, which the ranking makes anyway,
in milliseconds. Its models run bit-identical to the quantizer's, op for op, on the bundled models and the
ResNet50 (tests/test_splice.py; bench/ranking_splice.py prints both, with their times).

An op the int8 model computes from a tensor the float model does not have (a requantization the quantizer
added to meet an operator's scale constraint), or that is not in the main graph, is not spliced: `alone`
returns None and the ranking asks the quantizer, as before.

These are gate's own conversions of the model, not files a pull request wrote; imported only in the worker.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import flatbuffers
from ai_edge_litert import schema_py_generated as schema

_QUANTIZE, _DEQUANTIZE = schema.BuiltinOperator.QUANTIZE, schema.BuiltinOperator.DEQUANTIZE
_QUANTIZED = (schema.TensorType.INT8, schema.TensorType.UINT8, schema.TensorType.INT16)


class OneOpInt8:
    """The float model with any one op int8, built on demand from the float and the fully int8 conversions.

    Both must come from the same calibrated model (the same tensor names and ranges) with float model I/O.
    """

    def __init__(self, float_model: bytes, int8_model: bytes) -> None:
        self._float = schema.ModelT.InitFromPackedBuf(bytearray(float_model), 0)
        self._int8 = schema.ModelT.InitFromPackedBuf(bytearray(int8_model), 0)
        graph, int8_graph = self._float.subgraphs[0], self._int8.subgraphs[0]
        self._float_tensor = {tensor.name: index for index, tensor in enumerate(graph.tensors)}
        self._float_op = {graph.tensors[op.outputs[0]].name: index for index, op in enumerate(graph.operators)}
        self._int8_codes = {_builtin(code): code for code in self._int8.operatorCodes}
        codes = [_builtin(code) for code in self._int8.operatorCodes]
        produced_by = {op.outputs[0]: op for op in int8_graph.operators if op.outputs}
        # The float tensor an int8 tensor stands for: the one of its name, or across the int8 model's edges, the
        # QUANTIZE of a model input ("tfl.quantize") and the DEQUANTIZE into a model output ("...:01" -> "...:0").
        self._stands_for: dict[int, bytes] = {}
        for index in range(len(int8_graph.tensors)):
            source = index
            while (
                int8_graph.tensors[source].name not in self._float_tensor
                and source in produced_by
                and codes[produced_by[source].opcodeIndex] == _QUANTIZE
            ):
                source = produced_by[source].inputs[0]
            if int8_graph.tensors[source].name in self._float_tensor:
                self._stands_for[index] = int8_graph.tensors[source].name
        for op in int8_graph.operators:
            if codes[op.opcodeIndex] == _DEQUANTIZE and int8_graph.tensors[op.outputs[0]].name in self._float_tensor:
                self._stands_for[op.inputs[0]] = int8_graph.tensors[op.outputs[0]].name
        self._int8_op = {
            self._stands_for.get(op.outputs[0]): op
            for op in int8_graph.operators
            if op.outputs and codes[op.opcodeIndex] not in (_QUANTIZE, _DEQUANTIZE)
        }
        self._float_types = [tensor.type for tensor in graph.tensors]
        # Large models keep their buffers outside the flatbuffer (offset, size): not spliced. A float-I/O int8 model
        # has the QUANTIZE and DEQUANTIZE a splice copies at its edges.
        self._spliceable = all(not buffer.offset for buffer in (*self._float.buffers, *self._int8.buffers)) and {
            _QUANTIZE,
            _DEQUANTIZE,
        } <= set(self._int8_codes)
        # Room in front of the float model for what a splice adds: the op's int8 weights and the lists that name them.
        largest = max((len(buffer.data) for buffer in self._int8.buffers if buffer.data is not None), default=0)
        self._base = self._packed_once(len(float_model) + 2 * largest + 65536)
        self._packed = _state(self._base)

    def _packed_once(self, size: int) -> flatbuffers.Builder:
        """What every splice keeps of the float model (weights, tensors, ops, signatures), packed once.

        Each splice packs only what it adds, in front of it (flatbuffer offsets count from the end), and the builder
        is then put back as it was here (`_packed`): packing the whole model each time took 0.57 s an op on the
        ResNet50, and copying the packed model for each splice 0.11 s. The model's lists hold `_Packed` stand-ins
        from here on, which its generated Pack methods take for the items.
        """
        model, graph = self._float, self._float.subgraphs[0]
        builder = flatbuffers.Builder(size)
        model.buffers = [_Packed(buffer.Pack(builder)) for buffer in model.buffers]
        graph.tensors = [_Packed(tensor.Pack(builder)) for tensor in graph.tensors]
        graph.operators = [_Packed(op.Pack(builder)) for op in graph.operators]
        model.subgraphs[1:] = [_Packed(subgraph.Pack(builder)) for subgraph in model.subgraphs[1:]]
        for field in ("signatureDefs", "metadata"):
            if getattr(model, field) is not None:
                setattr(model, field, [_Packed(item.Pack(builder)) for item in getattr(model, field)])
        return builder

    def alone(self, tensor: str) -> bytes | None:
        """The float model with the op that writes `tensor` int8, or None when it cannot be spliced."""
        name = tensor.encode()
        if not self._spliceable or name not in self._int8_op or name not in self._float_op:
            return None
        model, graph = self._float, self._float.subgraphs[0]
        kept = (len(graph.tensors), len(model.buffers), len(model.operatorCodes), graph.operators)
        try:  # The float model is extended in place, packed, and put back as it was, and so is the builder.
            return self._spliced(name)
        finally:
            graph.operators = kept[3]
            del graph.tensors[kept[0] :], model.buffers[kept[1] :], model.operatorCodes[kept[2] :]
            _restore(self._base, self._packed)

    def _spliced(self, name: bytes) -> bytes | None:
        model, graph, int8_graph = self._float, self._float.subgraphs[0], self._int8.subgraphs[0]
        int8_op = self._int8_op[name]
        before: list[Any] = []  # QUANTIZE ops of the op's float inputs
        after: list[Any] = []  # DEQUANTIZE ops of its outputs
        inputs: list[int] = []
        for index in int8_op.inputs:
            if index < 0:  # an optional input left out
                inputs.append(index)
            elif self._is_constant(index):  # the int8 model's weights and bias
                inputs.append(self._copy_tensor(index))
            elif index not in self._stands_for:  # a tensor only the int8 model has
                return None
            else:
                float_index = self._float_tensor[self._stands_for[index]]
                if int8_graph.tensors[index].type == self._float_types[float_index]:
                    inputs.append(float_index)
                    continue
                inputs.append(self._copy_tensor(index))
                before.append(self._op(_QUANTIZE, [float_index], [inputs[-1]]))
        outputs: list[int] = []
        for index in int8_op.outputs:
            if index not in self._stands_for:
                return None
            float_index = self._float_tensor[self._stands_for[index]]
            if int8_graph.tensors[index].type == self._float_types[float_index]:
                outputs.append(float_index)
                continue
            outputs.append(self._copy_tensor(index))
            after.append(self._op(_DEQUANTIZE, [outputs[-1]], [float_index]))
        op = copy.copy(int8_op)
        op.opcodeIndex = self._code_index(self._int8.operatorCodes[int8_op.opcodeIndex])
        op.inputs, op.outputs = inputs, outputs
        at = self._float_op[name]
        graph.operators = [*graph.operators[:at], *before, op, *after, *graph.operators[at + 1 :]]
        builder = self._base
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(memoryview(builder.Bytes)[builder.Head() :])

    def _is_constant(self, index: int) -> bool:
        data = self._int8.buffers[self._int8.subgraphs[0].tensors[index].buffer].data
        return data is not None and len(data) > 0

    def _copy_tensor(self, index: int) -> int:
        """The int8 model's tensor `index` (and its data) added to the float model; its index there."""
        tensor = copy.copy(self._int8.subgraphs[0].tensors[index])
        if self._is_constant(index):
            self._float.buffers.append(schema.BufferT(data=self._int8.buffers[tensor.buffer].data))
            tensor.buffer = len(self._float.buffers) - 1
        else:
            tensor.buffer = 0  # buffer 0 is the schema's empty buffer: a tensor the interpreter allocates
        graph = self._float.subgraphs[0]
        graph.tensors.append(tensor)
        return len(graph.tensors) - 1

    def _op(self, builtin: int, inputs: list[int], outputs: list[int]) -> Any:
        """A QUANTIZE or DEQUANTIZE op, at the int8 model's operator version."""
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = self._code_index(self._int8_codes[builtin]), inputs, outputs
        return op

    def _code_index(self, code: Any) -> int:
        return _code_index(self._float, code)


class KeptFloat:
    """The int8 model with chosen ops float, built from it and the float conversion: float fallback's tries.

    The MLIR quantizer, given ops to keep float (a denylist), computes each in float32 from DEQUANTIZEd int8
    inputs (or its float neighbour's output, when that op is kept too) and QUANTIZEs its output to the int8
    model's scale for it. This builds that from the two conversions the search has anyway, in a fraction of a
    second instead of a quantizer call (1.5 s on issue 26's ResNet50). It only predicts: float fallback publishes
    the quantizer's own build of the layers it chose, measured as it is (gate.quantization.fallback). `with_float`
    returns None for what it does not splice: an op at a float32 model output's edge, one of several subgraphs.
    """

    def __init__(self, int8_model: bytes, float_model: bytes) -> None:
        self._int8 = schema.ModelT.InitFromPackedBuf(bytearray(int8_model), 0)
        self._float = schema.ModelT.InitFromPackedBuf(bytearray(float_model), 0)
        graph, float_graph = self._int8.subgraphs[0], self._float.subgraphs[0]
        self._tensor = _unique_names(graph.tensors)
        self._op = {graph.tensors[op.outputs[0]].name: index for index, op in enumerate(graph.operators) if op.outputs}
        self._float_tensor = _unique_names(float_graph.tensors)
        self._float_op = {float_graph.tensors[op.outputs[0]].name: op for op in float_graph.operators if op.outputs}
        self._spliceable = (
            len(self._int8.subgraphs) == len(self._float.subgraphs) == 1
            and all(not buffer.offset for buffer in (*self._int8.buffers, *self._float.buffers))
            and self._tensor is not None
            and self._float_tensor is not None
        )

    def with_float(self, tensors: Sequence[str]) -> bytes | None:
        """The int8 model with the ops that write `tensors` computed in float, or None when it cannot be spliced."""
        names = [tensor.encode() for tensor in tensors]
        if not self._spliceable or any(name not in self._op or name not in self._float_op for name in names):
            return None
        model = copy.copy(self._int8)
        graph = copy.copy(self._int8.subgraphs[0])
        model.subgraphs, model.buffers, model.operatorCodes = [graph], list(model.buffers), list(model.operatorCodes)
        graph.tensors, graph.operators = list(graph.tensors), list(graph.operators)
        floats: dict[bytes, int] = {}  # float tensor name -> its index in the new model (a kept op's, a DEQUANTIZE's)
        replaced: dict[int, list[Any]] = {}
        for name in sorted(names, key=self._op.__getitem__):  # in graph order: a kept op's producer comes first
            ops = self._float_op_spliced(model, graph, name, floats)
            if ops is None:
                return None
            replaced[self._op[name]] = ops
        graph.operators = [op for index, old in enumerate(graph.operators) for op in replaced.get(index, [old])]
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    def _float_op_spliced(self, model: Any, graph: Any, name: bytes, floats: dict[bytes, int]) -> list[Any] | None:
        """The ops that compute the op writing `name` in float: DEQUANTIZEs of its int8 inputs, it, a QUANTIZE."""
        assert self._tensor is not None and self._float_tensor is not None
        float_graph = self._float.subgraphs[0]
        float_op, int8_op = self._float_op[name], graph.operators[self._op[name]]
        before: list[Any] = []
        inputs: list[int] = []
        for index in float_op.inputs:
            tensor = float_graph.tensors[index] if index >= 0 else None
            if tensor is None:
                inputs.append(index)
            elif self._float.buffers[tensor.buffer].data is not None and len(self._float.buffers[tensor.buffer].data):
                inputs.append(_added(model, graph, tensor, self._float.buffers[tensor.buffer].data))  # float weights
            elif tensor.name in floats:
                inputs.append(floats[tensor.name])  # a kept op's output, or an input already dequantized
            elif tensor.name not in self._tensor:
                return None
            elif graph.tensors[self._tensor[tensor.name]].type not in _QUANTIZED:
                inputs.append(self._tensor[tensor.name])  # a float model input, a shape (int32)
            else:  # an int8 tensor: DEQUANTIZEd once, for every kept op that reads it
                floats[tensor.name] = _added(model, graph, tensor)
                inputs.append(floats[tensor.name])
                before.append(_op(model, self._int8, _DEQUANTIZE, [self._tensor[tensor.name]], [inputs[-1]]))
        after: list[Any] = []
        outputs: list[int] = []
        if len(float_op.outputs) != len(int8_op.outputs):
            return None
        for index, int8_index in zip(float_op.outputs, int8_op.outputs, strict=True):
            tensor = float_graph.tensors[index]
            if (
                graph.tensors[int8_index].type == schema.TensorType.FLOAT32
                or int8_index in graph.outputs
                and (graph.tensors[int8_index].name != tensor.name)
            ):
                return None  # the model's float32 output edge: the quantizer leaves out the QUANTIZE/DEQUANTIZE pair
            outputs.append(_added(model, graph, tensor))
            floats[tensor.name] = outputs[-1]
            after.append(_op(model, self._int8, _QUANTIZE, [outputs[-1]], [int8_index]))
        op = copy.copy(float_op)
        op.opcodeIndex = _code_index(model, self._float.operatorCodes[float_op.opcodeIndex])
        op.inputs, op.outputs = inputs, outputs
        return [*before, op, *after]


def _unique_names(tensors: Sequence[Any]) -> dict[bytes, int] | None:
    """Each tensor's index by name, or None when two share a name (then a name does not say which)."""
    names = {tensor.name: index for index, tensor in enumerate(tensors)}
    return names if len(names) == len(tensors) else None


def _added(model: Any, graph: Any, tensor: Any, data: Any = None) -> int:
    """A copy of `tensor` (float32, its data if any) added to `graph`; its index."""
    tensor = copy.copy(tensor)
    tensor.quantization = None
    if data is not None:
        model.buffers.append(schema.BufferT(data=data))
        tensor.buffer = len(model.buffers) - 1
    else:
        tensor.buffer = 0  # the schema's empty buffer: a tensor the interpreter allocates
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _op(model: Any, source: Any, builtin: int, inputs: list[int], outputs: list[int]) -> Any:
    """A QUANTIZE or DEQUANTIZE op, at the version `source` model uses."""
    op = schema.OperatorT()
    code = next((c for c in source.operatorCodes if _builtin(c) == builtin), None)
    if code is None:
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.version = 1
    op.opcodeIndex, op.inputs, op.outputs = _code_index(model, code), inputs, outputs
    return op


def _code_index(model: Any, code: Any) -> int:
    """The index of operator `code` in `model`'s list, added when it is not there yet."""
    for index, known in enumerate(model.operatorCodes):
        if (_builtin(known), known.version, known.customCode) == (_builtin(code), code.version, code.customCode):
            return index
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


class _Packed:
    """An item already packed into the base builder: a generated Pack method takes its offset as it is."""

    __slots__ = ("offset",)

    def __init__(self, offset: int) -> None:
        self.offset = offset

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 - the generated code's name
        return self.offset


def _state(builder: flatbuffers.Builder) -> dict[str, Any]:
    """Where `builder` stands: the bytes it wrote stay where they are, at the end of its buffer, while it writes on."""
    return _copied({name: getattr(builder, name) for name in builder.__slots__ if hasattr(builder, name)})


def _restore(builder: flatbuffers.Builder, state: dict[str, Any]) -> None:
    """Put `builder` back where `_state` found it; what it wrote since is left in front, to be written over."""
    for name, value in _copied(state).items():
        setattr(builder, name, value)


def _copied(state: dict[str, Any]) -> dict[str, Any]:
    return {name: dict(value) if isinstance(value, dict) else value for name, value in state.items()}


def _builtin(code: Any) -> int:
    # The schema keeps operators numbered above 127 in builtinCode and the older ones in deprecatedBuiltinCode too.
    return max(code.builtinCode, code.deprecatedBuiltinCode)
