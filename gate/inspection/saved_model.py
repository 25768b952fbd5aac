"""SavedModel folders: the files in it, then every op of saved_model.pb's graphs and functions.

A SavedModel graph can read and write files, run Python or print to any path,
so every op of the graph and of every function in its library must be one that
plain inference graphs use, and the save and restore ops only where
tf.saved_model.save puts them: in the functions the loader runs to restore the
variables. saved_model.pb is read with the wire-format reader in protobuf.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gate.errors import ModelError, printable
from gate.inspection import protobuf
from gate.inspection.keras_config import VERSION
from gate.inspection.problems import damaged_file, raise_problems
from gate.inspection.signature import Signature, saved_model_signature

# fmt: off
# Op types that inference graphs of Keras models use: every op in the graphs and
# function libraries of SavedModels written by keras.Model.export() (Keras 3)
# and tf.saved_model.save(tf_keras_model) for CNN, MLP, MobileNetV2, LSTM, GRU,
# SimpleRNN, Bidirectional, ConvLSTM2D, attention, embedding, normalization,
# regularizer, dropout, pooling, resizing, augmentation and 1D/3D models
# (probed with tensorflow 2.21), then reviewed: none touches files, the network,
# Python or the environment. The saver functions' file ops are in _SAVE_OPS and
# _RESTORE_OPS.
_INFERENCE_OPS = frozenset({
    "Abs", "AddN", "AddV2", "AdjustContrastv2", "All", "Any", "Assert", "AssignVariableOp", "AvgPool", "AvgPool3D",
    "BatchMatMulV2", "BatchToSpaceND", "BiasAdd", "Bitcast", "Bucketize", "Cast", "ConcatOffset", "ConcatV2",
    "Const", "Conv2D", "Conv2DBackpropInput", "Conv3D", "Conv3DBackpropInputV2", "Cos", "CudnnRNNBackpropV3",
    "CudnnRNNV3", "Cumsum", "DenseBincount", "DepthwiseConv2dNative", "DivNoNan", "Einsum", "Elu", "EnsureShape",
    "Erfc", "Exp", "ExpandDims", "Expm1", "Fill", "FloorDiv", "FloorMod", "FusedBatchNormV3", "GatherV2", "Greater",
    "GreaterEqual", "Identity", "IdentityN", "If", "ImageProjectiveTransformV3", "InvertPermutation", "L2Loss",
    "LeakyRelu", "Less", "LessEqual", "LogSoftmax", "LogicalAnd", "MatMul", "MatrixDiagV3", "Max", "MaxPool",
    "MaxPool3D", "Maximum", "Mean", "Min", "Minimum", "Mul", "Neg", "NoOp", "NotEqual", "OnesLike", "Pack", "Pad",
    "PartitionedCall", "Placeholder", "Pow", "Prod", "RandomStandardNormal", "RandomUniform", "Range", "Rank",
    "ReadVariableOp", "RealDiv", "Relu", "Relu6", "Reshape", "ResizeBicubic", "ResizeBilinear",
    "ResizeNearestNeighbor", "ResourceGather", "ReverseSequence", "ReverseV2", "RngReadAndSkip", "Round", "Rsqrt",
    "SelectV2", "Selu", "Shape", "Sigmoid", "Sin", "Size", "Slice", "Softmax", "Softplus", "Softsign",
    "SpaceToBatchND", "Split", "SplitV", "Sqrt", "Square", "SquaredDifference", "Squeeze",
    "StatefulPartitionedCall", "StatelessRandomGetKeyCounter", "StatelessRandomUniformFullIntV2",
    "StatelessRandomUniformV2", "StatelessWhile", "StopGradient", "StridedSlice", "Sub", "Sum", "Tan", "Tanh",
    "TensorListFromTensor", "TensorListGetItem", "TensorListReserve", "TensorListSetItem", "TensorListStack",
    "Tile", "TopKV2", "Transpose", "Unpack", "VarHandleOp", "VarIsInitializedOp", "While", "ZerosLike",
    # Reviewed additions, not in the probes: element-wise, shape and control-flow math only.
    "ArgMax", "ArgMin", "BatchMatMulV3", "BroadcastTo", "Ceil", "ClipByValue", "Cumprod", "DepthToSpace", "Equal",
    "Erf", "Floor", "FusedBatchNorm", "FusedBatchNormV2", "GatherNd", "Log", "Log1p", "LogicalNot", "LogicalOr",
    "MaxPoolV2", "MirrorPad", "OneHot", "PadV2", "Reciprocal", "Select", "Sign", "SpaceToDepth", "StatelessIf",
})

# Ops only the functions that tf.saved_model.save writes for variables may run.
# TensorFlow's C++ loader runs the restore function with the variables path; the
# save function runs only when the loaded model is saved again.
_SAVE_OPS = frozenset({
    "DisableCopyOnRead", "MergeV2Checkpoints", "SaveV2", "ShardedFilename", "StaticRegexFullMatch", "StringJoin",
})
# fmt: on
_RESTORE_OPS = frozenset({"RestoreV2"})
_LOOP_OPS = frozenset({"While", "StatelessWhile"})
_CALL_OPS = frozenset({"StatefulPartitionedCall", "PartitionedCall"})
_MAX_SAVED_MODEL_BYTES = 1 << 30
_MAX_SAVED_MODEL_FILES = 10_000
_UNREADABLE = "is not a readable SavedModel"
_EXPORT_AGAIN = "export the model again with model.export() (Keras 3) or tf.saved_model.save()"


@dataclass(frozen=True)
class _Node:
    name: str
    ops: tuple[str, ...]  # protobuf keeps the last `op` of a node; every one is checked
    inputs: tuple[str, ...]
    calls: tuple[str, ...]  # functions named in the node's attributes (f, body, then_branch...)


@dataclass(frozen=True)
class _Function:
    name: str
    first_input: str
    nodes: tuple[_Node, ...]
    attributes: frozenset[str]


# A tensor of a signature: its DataType (tensorflow/core/framework/types.proto) and its dimensions (-1: any size),
# or None when the signature leaves its rank unknown.
_TensorSpec = tuple[int, tuple[int, ...] | None]


@dataclass(frozen=True)
class _MetaGraph:
    nodes: tuple[_Node, ...]
    functions: tuple[_Function, ...]
    saver: tuple[str, str, str]  # filename tensor, save tensor, restore op
    object_graph: bytes
    tensorflow_version: str
    serving: dict[str, dict[str, _TensorSpec]] | None  # serving_default's "inputs" and "outputs" by name, if any


@dataclass(frozen=True)
class SavedModelFindings:
    """What inspection established about a SavedModel whose every op is allowed."""

    tensorflow_version: str  # "" if the graph does not say
    has_loops: bool  # a While loop, which is how recurrent layers are exported
    signature: Signature | None  # None: the graph's serving signature does not say


def inspect_saved_model(path: Path) -> SavedModelFindings:
    """Check the files of a SavedModel folder and every op of its graphs; raise ModelError on any problem."""
    _check_saved_model_files(path)
    graph_file = path / "saved_model.pb"
    with damaged_file(str(graph_file), _UNREADABLE, _EXPORT_AGAIN):
        if graph_file.stat().st_size > _MAX_SAVED_MODEL_BYTES:
            raise ModelError(f"{graph_file}: is larger than {_MAX_SAVED_MODEL_BYTES} bytes; {_EXPORT_AGAIN}")
        data = graph_file.read_bytes()
        try:
            graphs = _parse_saved_model(data)
        except protobuf.Malformed as exc:  # says what is wrong in its own words: "truncated message"
            raise ModelError(f"{graph_file}: {_UNREADABLE} ({exc}); {_EXPORT_AGAIN}") from None
    if not graphs:
        raise ModelError(f"{graph_file}: holds no MetaGraph; {_EXPORT_AGAIN}")
    raise_problems([problem for graph in graphs for problem in _graph_problems(graph_file, graph)])
    versions = [g.tensorflow_version for g in graphs if g.tensorflow_version]
    ops = {op for g in graphs for f in g.functions for node in f.nodes for op in node.ops}
    serving = [g.serving for g in graphs if g.serving is not None]
    return SavedModelFindings(
        tensorflow_version=versions[-1] if versions and VERSION.fullmatch(versions[-1]) else "",
        has_loops=bool(ops & _LOOP_OPS),
        signature=saved_model_signature(str(path), serving[-1] if serving else None),
    )


def _check_saved_model_files(path: Path) -> None:
    if not (path / "saved_model.pb").is_file():
        raise ModelError(f"{path}: has no saved_model.pb; {_EXPORT_AGAIN}")
    for other in ("saved_model.pbtxt", "saved_model.cpb"):
        if (path / other).exists():
            raise ModelError(
                f"{path}: holds {other} next to saved_model.pb and TensorFlow may read either; keep only saved_model.pb"
            )
    seen = 0
    for folder, directories, files in os.walk(path):
        for name in directories + files:
            seen += 1
            if seen > _MAX_SAVED_MODEL_FILES:
                raise ModelError(f"{path}: holds more than {_MAX_SAVED_MODEL_FILES} files; {_EXPORT_AGAIN}")
            if printable(name) != name:
                raise ModelError(
                    f"{printable(os.path.join(folder, name))}: the file name is not valid UTF-8; TensorFlow "
                    f"writes none like it, so {_EXPORT_AGAIN}"
                )
            if os.path.islink(os.path.join(folder, name)):
                raise ModelError(
                    f"{Path(folder) / name}: is a symbolic link, which could make TensorFlow read files outside the "
                    "model; commit the file itself"
                )


def _graph_problems(graph_file: Path, graph: _MetaGraph) -> list[str]:
    """Every op of the graph and of each library function must be an inference op, or a saver op where it belongs."""
    problems: list[str] = []
    functions: dict[str, _Function] = {}
    for function in graph.functions:
        if function.name in functions:
            problems.append(f"{graph_file}: defines function {function.name!r} twice; {_EXPORT_AGAIN}")
        functions[function.name] = function
    roles, roots, saver_problems = _saver_roles(graph_file, graph, functions)
    problems += saver_problems
    saver_functions = frozenset().union(*roles.values())

    def check(container: str, node: _Node, allowed_ops: frozenset[str], may_call_saver: bool) -> None:
        for op in node.ops:
            if op in allowed_ops:
                continue
            if op in _SAVE_OPS | _RESTORE_OPS:
                why = " outside the functions TensorFlow writes to load and save variables, so it could touch any file"
            else:
                why = ", which is not an inference op the gate allows (those never touch files, the network or Python)"
            problems.append(f"{graph_file}: {container} runs op {op!r} (node {node.name!r}){why}; {_EXPORT_AGAIN}")
        for callee in node.calls:
            if callee not in functions:
                problems.append(
                    f"{graph_file}: {container} node {node.name!r} calls {callee!r}, which is not a function of the "
                    f"SavedModel (TensorFlow would run it as an op); {_EXPORT_AGAIN}"
                )
            elif callee in saver_functions and not may_call_saver:
                problems.append(
                    f"{graph_file}: {container} node {node.name!r} calls {callee!r}, which loads or saves variables "
                    f"and only the loader may run; {_EXPORT_AGAIN}"
                )

    for node in graph.nodes:
        check("the graph", node, _INFERENCE_OPS, node.name in roots)
    for function in graph.functions:
        function_roles = frozenset(role for role, members in roles.items() if function.name in members)
        # A function reached from both the save and the restore node gets neither's file ops.
        extra = {frozenset({"save"}): _SAVE_OPS, frozenset({"restore"}): _RESTORE_OPS}.get(function_roles, frozenset())
        for node in function.nodes:
            check(f"function {function.name!r}", node, _INFERENCE_OPS | extra, bool(function_roles))
    return problems


def _saver_roles(
    graph_file: Path, graph: _MetaGraph, functions: dict[str, _Function]
) -> tuple[dict[str, frozenset[str]], frozenset[str], list[str]]:
    """The functions behind the save and restore nodes that saver_def names, and what is wrong with them.

    tf.saved_model.save writes a `saver_filename` placeholder and two call nodes,
    one to a save and one to a restore function; the loader feeds the variables
    path to the placeholder. Only there may SaveV2 and RestoreV2 run.
    """
    filename, save, restore = graph.saver
    nodes = {node.name: node for node in graph.nodes}
    placeholder = nodes.get(_node_name(filename))
    roles: dict[str, frozenset[str]] = {}
    roots: set[str] = set()
    problems: list[str] = []
    for role, tensor in (("save", save), ("restore", restore)):
        if not tensor:
            continue
        root = nodes.get(_node_name(tensor))
        if (
            root is None
            or not root.ops
            or not set(root.ops) <= _CALL_OPS
            or placeholder is None
            or placeholder.ops != ("Placeholder",)
            or not root.inputs
            or _node_name(root.inputs[0]) != placeholder.name
        ):
            problems.append(
                f"{graph_file}: saver_def names {tensor!r} to {role} variables, which is not a function call taking "
                f"its file name from the placeholder {filename!r}; {_EXPORT_AGAIN}"
            )
            continue
        roots.add(root.name)
        roles[role] = _reachable(root.calls, functions)
    for role, members in roles.items():
        for name in sorted(members):
            function = functions[name]
            if "api_implements" in function.attributes:
                # Grappler may swap a call to any function implementing the same API.
                problems.append(
                    f"{graph_file}: function {name!r}, which {role}s variables, has api_implements; {_EXPORT_AGAIN}"
                )
            if name.encode() in graph.object_graph:
                problems.append(
                    f"{graph_file}: the object graph exposes function {name!r}, which {role}s variables, as a "
                    f"callable; {_EXPORT_AGAIN}"
                )
            if role == "restore":
                for node in function.nodes:
                    if "RestoreV2" in node.ops and (not node.inputs or node.inputs[0] != function.first_input):
                        problems.append(
                            f"{graph_file}: function {name!r} restores variables (node {node.name!r}) from another "
                            f"path than the one the loader passes; {_EXPORT_AGAIN}"
                        )
    return roles, frozenset(roots), problems


def _reachable(start: tuple[str, ...], functions: dict[str, _Function]) -> frozenset[str]:
    found: set[str] = set()
    pending = [name for name in start if name in functions]
    while pending:
        name = pending.pop()
        if name not in found:
            found.add(name)
            pending += [callee for node in functions[name].nodes for callee in node.calls if callee in functions]
    return frozenset(found)


def _node_name(tensor: str) -> str:
    """'StatefulPartitionedCall_2:0' and '^NoOp' name the nodes 'StatefulPartitionedCall_2' and 'NoOp'."""
    return tensor.lstrip("^").split(":", 1)[0]


# Field numbers from tensorflow/core/protobuf/{saved_model,meta_graph,saver}.proto
# and tensorflow/core/framework/{graph,function,node_def,attr_value,op_def}.proto.


def _parse_saved_model(data: bytes) -> list[_MetaGraph]:
    return [_parse_meta_graph(meta_graph) for meta_graph in protobuf.repeated(protobuf.parse(data), 2)]  # meta_graphs


def _parse_meta_graph(fields: protobuf.Fields) -> _MetaGraph:
    graph = protobuf.message(fields, 2)  # MetaGraphDef.graph_def
    library = protobuf.message(graph, 2)  # GraphDef.library
    saver = protobuf.message(fields, 3)  # MetaGraphDef.saver_def
    signatures = _map(fields, 5)  # MetaGraphDef.signature_def
    return _MetaGraph(
        nodes=tuple(_parse_node(node) for node in protobuf.repeated(graph, 1)),  # GraphDef.node
        functions=tuple(_parse_function(function) for function in protobuf.repeated(library, 1)),  # .function
        # SaverDef.filename_tensor_name, save_tensor_name, restore_op_name
        saver=(protobuf.last_string(saver, 1), protobuf.last_string(saver, 2), protobuf.last_string(saver, 3)),
        # Searched for function names, as bytes: every occurrence of MetaGraphDef.object_graph_def.
        object_graph=b"".join(bytes(part) for part in protobuf.raw(fields, 7)),
        tensorflow_version=protobuf.last_string(protobuf.message(fields, 1), 5),  # meta_info_def.tensorflow_version
        serving=_parse_signature(signatures["serving_default"]) if "serving_default" in signatures else None,
    )


def _map(fields: protobuf.Fields, number: int) -> dict[str, protobuf.Fields]:
    """A map<string, message> field: entries of key (1) and value (2); the last entry of a key wins."""
    return {protobuf.last_string(entry, 1): protobuf.message(entry, 2) for entry in protobuf.repeated(fields, number)}


def _parse_signature(fields: protobuf.Fields) -> dict[str, dict[str, _TensorSpec]]:
    """SignatureDef.inputs (1) and outputs (2): TensorInfo's dtype (2) and tensor_shape (3)."""

    def spec(info: protobuf.Fields) -> _TensorSpec:
        shape = protobuf.message(info, 3)  # TensorShapeProto: dim (2) of size (1), unknown_rank (3)
        dims = tuple(protobuf.last_int(dim, 1) for dim in protobuf.repeated(shape, 2))
        return protobuf.last_int(info, 2), None if protobuf.last_int(shape, 3) else dims

    return {
        side: {name: spec(info) for name, info in _map(fields, number).items()}
        for side, number in (("inputs", 1), ("outputs", 2))
    }


def _parse_function(fields: protobuf.Fields) -> _Function:
    signature = protobuf.message(fields, 1)  # FunctionDef.signature, an OpDef
    inputs = protobuf.repeated(signature, 2)  # OpDef.input_arg
    return _Function(
        name=protobuf.last_string(signature, 1),
        first_input=protobuf.last_string(inputs[0], 1) if inputs else "",  # ArgDef.name
        nodes=tuple(_parse_node(node) for node in protobuf.repeated(fields, 3)),  # FunctionDef.node_def
        # FunctionDef.attr, a map: entries of key (1) and value (2)
        attributes=frozenset(protobuf.last_string(entry, 1) for entry in protobuf.repeated(fields, 5)),
    )


def _parse_node(fields: protobuf.Fields) -> _Node:
    calls = [
        name
        for entry in protobuf.repeated(fields, 5)  # NodeDef.attr: map entries of key (1) and AttrValue (2)
        for name in _called_functions(protobuf.message(entry, 2))
    ]
    # NodeDef.name, op (protobuf keeps the last; every one is checked) and input.
    ops, inputs = protobuf.strings(fields, 2), protobuf.strings(fields, 3)
    return _Node(protobuf.last_string(fields, 1), tuple(ops), tuple(inputs), tuple(calls))


def _called_functions(attr_value: protobuf.Fields) -> list[str]:
    """Functions an AttrValue names: its `func` (10), its `list.func` (1, 9), and those in their attributes.

    AttrValue is a oneof, of which protobuf keeps the field set last; every one
    present is read, so a `func` followed by a `list` is checked too. The
    recursion ends where protobuf's does, at protobuf.MAX_DEPTH messages deep.
    """
    name_lists = [protobuf.message(attr_value, 10)] if 10 in attr_value else []
    name_lists += protobuf.repeated(protobuf.message(attr_value, 1), 9)
    names = []
    for name_list in name_lists:
        names.append(protobuf.last_string(name_list, 1))  # NameAttrList.name
        for entry in protobuf.repeated(name_list, 2):  # NameAttrList.attr
            names += _called_functions(protobuf.message(entry, 2))
    return names
