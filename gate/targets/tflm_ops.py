"""Which operators TFLM has, by the name of the MicroMutableOpResolver method that registers each; which of a
file's it lacks; and the resolver snippet that registers exactly a file's operators.

The tflite-micro wheel ships the compiled runtime, not its headers, and the resolver's Add*() methods
are inlined away in `_runtime.so`: the names cannot be read from the package. This table was transcribed
from tensorflow/lite/micro/micro_mutable_op_resolver.h at tflite-micro commit 90b983c2b3f1 (2026-08-20), the
newest the mirror here holds; the pinned wheel, 0.dev20261023182759 (g8f6596d), is two months newer. The
Python runtime's resolver (python/tflite_micro/python_ops_resolver.cc) calls every one of these methods, so a
builtin in this table is one the host runtime has. tests/test_tflm.py checks that every key is a builtin
operator of the TFLite schema and every method spells its operator (the case is the header's, as transcribed).

A naive CamelCase of the builtin name gets 9 of the 100 wrong (AddConv2D, AddMaxPool2D, AddBatchMatMul,
AddCumSum, AddPadV2, AddUnidirectionalSequenceLSTM, ...): hence a table.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gate.targets.graph import Graph

RESOLVER_METHODS: dict[str, str] = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ADD_N": "AddAddN",
    "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo",
    "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast",
    "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "COS": "AddCos",
    "CUMSUM": "AddCumSum",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEQUANTIZE": "AddDequantize",
    "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice",
    "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual",
    "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill",
    "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog",
    "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MIRROR_PAD": "AddMirrorPad",
    "MUL": "AddMul",
    "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable",
    "REDUCE_ALL": "AddReduceAll",
    "REDUCE_MAX": "AddReduceMax",
    "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound",
    "RSQRT": "AddRsqrt",
    "SELECT_V2": "AddSelectV2",
    "SHAPE": "AddShape",
    "SIN": "AddSin",
    "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQRT": "AddSqrt",
    "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "SVDF": "AddSvdf",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile",
    "ZEROS_LIKE": "AddZerosLike",
}

# Custom operators the resolver registers by name (AddCustom): the custom code in the .tflite -> method.
# "ethos-u" is the operator Vela writes for the part of a model it compiled for the NPU.
CUSTOM_RESOLVER_METHODS: dict[str, str] = {
    "ethos-u": "AddEthosU",
    "TFLite_Detection_PostProcess": "AddDetectionPostprocess",
    "CIRCULAR_BUFFER": "AddCircularBuffer",
}


def missing_operators(graph: Graph) -> tuple[str, ...]:
    """The file's operators TFLM has no kernel for, by name ("GELU", "CUSTOM:MyOp"), from the resolver table."""
    return missing_from(op.name for op in graph.operators)


def missing_from(names: Iterable[str]) -> tuple[str, ...]:
    """Which of these operator names TFLM has no kernel for, sorted: pure Python, so a reader can recompute it."""
    missing = set()
    for name in names:
        custom = name.removeprefix("CUSTOM:")
        if custom not in CUSTOM_RESOLVER_METHODS if name.startswith("CUSTOM:") else name not in RESOLVER_METHODS:
            missing.add(name)
    return tuple(sorted(missing))


def no_kernel(missing: Sequence[str]) -> str:
    """What gate says of a file with operators TFLM has no kernel for (OnDevice.unsupported)."""
    return f"TFLM has no kernel for operator{'s' * (len(missing) > 1)} {', '.join(missing)}"


# What TFLM says (gate.targets.tflm.parse_failure) when it lacks an operator, or the operator's version (its types),
# that the resolver table has: the file's failure on TFLM, not gate's.
RUNTIME_REFUSALS = ("TFLM has no kernel for an operator of op code", "TFLM cannot prepare operator",
                    "TFLM cannot invoke operator", "the model uses builtin operator code")  # fmt: skip


def op_resolver_snippet(graph: Graph, *, model: str, method: str, source: str) -> str:
    """C++ for the firmware: a MicroMutableOpResolver<N> that registers exactly the file's operators.

    Its names come from the model folder's name and the method (c_identifier: one name each, so two models'
    headers can be included in one firmware); `source` (the artifact's file name) goes into a comment, stripped
    of anything that could end it. The caller has made sure TFLM has every operator (missing_operators).
    """
    methods = sorted(
        {
            CUSTOM_RESOLVER_METHODS[op.name.removeprefix("CUSTOM:")]
            if op.name.startswith("CUSTOM:")
            else RESOLVER_METHODS[op.name]
            for op in graph.operators
        }
    )
    identifier = f"{c_identifier(model)}_{method.replace('-', '_')}"  # method names: [a-z0-9-], from METHODS
    # One // line: no newline, and no backslash, which would splice the next line into the comment.
    comment = re.sub(r"[^\w .,:()+=-]", "_", source, flags=re.ASCII)
    lines = [
        f"// The operators of {comment}, and no others (generated by gate).",
        f"#ifndef GATE_{identifier}_OPS_H",
        f"#define GATE_{identifier}_OPS_H",
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"',
        "",
        f"using {identifier}_op_resolver = tflite::MicroMutableOpResolver<{len(methods)}>;",
        "",
        f"inline TfLiteStatus Register_{identifier}_ops({identifier}_op_resolver& op_resolver) {{",
        *(f"  TF_LITE_ENSURE_STATUS(op_resolver.{method}());" for method in methods),
        "  return kTfLiteOk;",
        "}",
        "#endif",
    ]
    return "\n".join(lines) + "\n"


def c_identifier(name: str) -> str:
    """`name` as a C identifier, a different one for every name: a name that is one already stays as it is (no
    leading underscore, which C reserves); any other gets its characters outside [A-Za-z0-9_] replaced and the
    first 8 hex digits of its sha256 (kws-v2 and kws.v2 would both be kws_v2 otherwise)."""
    if name.isascii() and name.isidentifier() and not name.startswith("_"):
        return name
    cleaned = re.sub(r"\W", "_", name, flags=re.ASCII)
    return f"m_{cleaned}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"
