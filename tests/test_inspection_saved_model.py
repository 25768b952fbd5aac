"""gate.inspection.saved_model: SavedModel graphs may run inference ops only, and the saver ops where they belong."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from inspection_models import payload_saved_model, refused, write_file

from gate.inspection import inspect_model

# Each test compares the inspection with what TensorFlow writes or parses: TensorFlow's import alone takes seconds.
pytestmark = pytest.mark.slow


def read_file(marker: Path) -> Callable:
    import tensorflow as tf

    return lambda x: tf.io.write_file(str(marker), tf.io.read_file("/etc/hostname"))


def matching_files(marker: Path) -> Callable:
    import tensorflow as tf

    return lambda x: tf.io.write_file(str(marker), tf.strings.reduce_join(tf.io.matching_files("/etc/*")))


def print_to_file(marker: Path) -> Callable:
    import tensorflow as tf

    return lambda x: tf.print(x, output_stream=f"file://{marker}")


def save_tensors(marker: Path) -> Callable:
    import tensorflow as tf

    return lambda x: tf.raw_ops.SaveV2(prefix=str(marker), tensor_names=["x"], shape_and_slices=[""], tensors=[x])


def while_writing(marker: Path) -> Callable:
    import tensorflow as tf

    def body(i):
        with tf.control_dependencies([tf.io.write_file(str(marker), "pwned")]):
            return i + 1

    return lambda x: tf.while_loop(lambda i: i < 1, body, [tf.constant(0)])


def python_function(marker: Path) -> Callable:
    import tensorflow as tf

    return lambda x: tf.py_function(lambda: float(marker.write_text("pwned")), [], tf.float32)


SERVE = r"function '__inference_serve_\d+'"
SAVED_MODEL_PAYLOADS: list[tuple[Callable[[Path], Callable], str]] = [
    (write_file, rf"{SERVE} runs op 'WriteFile' \(node '[^']+'\), which is not an inference op the gate allows"),
    (read_file, rf"{SERVE} runs op 'ReadFile'"),
    (matching_files, rf"{SERVE} runs op 'MatchingFiles'"),
    (print_to_file, rf"{SERVE} runs op 'PrintV2'"),
    (save_tensors, rf"{SERVE} runs op 'SaveV2' \(node '[^']+'\) outside the functions TensorFlow writes to load"),
    (while_writing, r"function '[^']*body[^']*' runs op 'WriteFile'"),
    (python_function, rf"{SERVE} runs op 'EagerPyFunc'"),
]


@pytest.mark.parametrize(("payload", "message"), SAVED_MODEL_PAYLOADS, ids=lambda case: getattr(case, "__name__", ""))
def test_saved_model_payloads_are_refused(tmp_path, payload, message) -> None:
    marker = tmp_path / "marker"
    folder = payload_saved_model(tmp_path / "saved_model", payload(marker))
    assert not list(tmp_path.glob("marker*")), "saving ran the payload"
    refused(folder, rf"^{re.escape(str(folder / 'saved_model.pb'))}: " + message)
    assert not list(tmp_path.glob("marker*"))


def edited_saved_model(source: Path, folder: Path, edit: Callable | None = None) -> Path:
    """A copy of the SavedModel `source` whose saved_model.pb went through `edit(meta_graph)`."""
    import shutil

    from tensorflow.core.protobuf import saved_model_pb2

    shutil.copytree(source, folder)
    if edit:
        proto = saved_model_pb2.SavedModel.FromString((folder / "saved_model.pb").read_bytes())
        edit(proto.meta_graphs[0])
        (folder / "saved_model.pb").write_bytes(proto.SerializeToString())
    return folder


def functions(meta_graph, part: str) -> list:
    return [f for f in meta_graph.graph_def.library.function if part in f.signature.name]


def call_restore_from_serving(meta_graph) -> None:
    restore = functions(meta_graph, "traced_restore")[0].signature.name
    node = functions(meta_graph, "signature_wrapper")[0].node_def.add(name="sneaky", op="StatefulPartitionedCall")
    node.attr["f"].func.name = restore


def restore_from_a_constant(meta_graph) -> None:
    restore = functions(meta_graph, "traced_restore")[0]
    node = next(n for n in restore.node_def if n.op == "RestoreV2")
    node.input[0] = "RestoreV2/tensor_names:output:0"


def restore_node_without_placeholder(meta_graph) -> None:
    root = meta_graph.saver_def.restore_op_name
    node = next(n for n in meta_graph.graph_def.node if n.name == root)
    node.input[0] = "Const"


def call_an_op_as_a_function(meta_graph) -> None:
    node = functions(meta_graph, "signature_wrapper")[0].node_def.add(name="call_op", op="PartitionedCall")
    node.attr["f"].func.name = "WriteFile"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            call_restore_from_serving,
            (
                r"node 'sneaky' calls '__inference__traced_restore_\d+', which loads or saves variables and only the "
                r"loader"
            ),
        ),
        (
            restore_from_a_constant,
            r"function '__inference__traced_restore_\d+' restores variables \(node 'RestoreV2'\) from another path",
        ),
        (
            restore_node_without_placeholder,
            r"saver_def names 'StatefulPartitionedCall_\d+' to restore variables, .* placeholder 'saver_filename:0'",
        ),
        (call_an_op_as_a_function, r"node 'call_op' calls 'WriteFile', which is not a function of the SavedModel"),
    ],
)
def test_tampered_saver_functions_are_refused(keras3_models, tmp_path, edit, message) -> None:
    folder = edited_saved_model(keras3_models["cnn.export"], tmp_path / "saved_model", edit)
    refused(folder, message)


def test_a_second_graph_file_is_refused(keras3_models, tmp_path) -> None:
    folder = edited_saved_model(keras3_models["cnn.export"], tmp_path / "saved_model")
    (folder / "saved_model.pbtxt").write_text("meta_graphs {}")
    refused(folder, r"holds saved_model\.pbtxt next to saved_model\.pb and TensorFlow may read either")


def test_a_symlink_inside_a_saved_model_is_refused(keras3_models, tmp_path) -> None:
    folder = edited_saved_model(keras3_models["cnn.export"], tmp_path / "saved_model")
    (folder / "assets" / "vocabulary.txt").symlink_to("/etc/passwd")
    refused(folder, r"assets/vocabulary\.txt: is a symbolic link, which could make TensorFlow read files outside")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("missing", r"has no saved_model\.pb"),
        ("empty", r"saved_model\.pb: holds no MetaGraph"),
        ("random", r"saved_model\.pb: is not a readable SavedModel \("),
        ("truncated", r"saved_model\.pb: is not a readable SavedModel \(truncated"),
    ],
)
def test_unreadable_saved_models_are_refused(keras3_models, garbage, tmp_path, content, message) -> None:
    valid = (keras3_models["cnn.export"] / "saved_model.pb").read_bytes()
    folder = tmp_path / "saved_model"
    folder.mkdir()
    if content != "missing":
        data = {"empty": b"", "random": garbage, "truncated": valid[: len(valid) // 2]}[content]
        (folder / "saved_model.pb").write_bytes(data)
    refused(folder, message)


# --- hand-encoded graphs: how the fields protobuf merges are read --------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def message(number: int, *parts: bytes) -> bytes:
    """A length-delimited field: a submessage made of `parts`, or a string."""
    payload = b"".join(parts)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def text(number: int, value: str) -> bytes:
    return message(number, value.encode())


def node(name: str, *ops: str, attributes: bytes = b"") -> bytes:
    """GraphDef.node (1): a NodeDef with name (1), every op (2) and attr entries (5)."""
    return message(1, text(1, name), *(text(2, op) for op in ops), attributes)


def tensor_info(*dims: int) -> bytes:
    """TensorInfo: dtype (2) DT_FLOAT, tensor_shape (3) with a dim (2) of each size (1)."""
    return b"\x10\x01" + message(3, *(message(2, b"\x08" + varint(d)) for d in dims))


# MetaGraphDef.signature_def (5): serving_default, one input "x" of [1, 4] and one output "y" of [1, 2].
SERVING = message(
    5,
    text(1, "serving_default"),
    message(
        2,
        message(1, text(1, "x"), message(2, tensor_info(1, 4))),
        message(2, text(1, "y"), message(2, tensor_info(1, 2))),
    ),
)


def saved_model_file(folder: Path, *meta_graph: bytes) -> tuple[Path, object]:
    """A folder whose saved_model.pb is SavedModel{meta_graphs: [meta_graph]}, and TensorFlow's parse of it."""
    from tensorflow.core.protobuf import saved_model_pb2

    data = message(2, *meta_graph)
    folder.mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(data)
    return folder, saved_model_pb2.SavedModel.FromString(data).meta_graphs[0]


def test_the_nodes_of_every_graph_def_occurrence_are_checked(tmp_path) -> None:
    """MetaGraphDef.graph_def is a singular message: its occurrences merge, and their nodes add up."""
    folder, reference = saved_model_file(
        tmp_path / "saved_model", message(2, node("a", "Identity")), message(2, node("b", "WriteFile"))
    )
    assert [(n.name, n.op) for n in reference.graph_def.node] == [("a", "Identity"), ("b", "WriteFile")]
    refused(folder, r"saved_model\.pb: the graph runs op 'WriteFile' \(node 'b'\), which is not an inference op")


@pytest.mark.parametrize("ops", [("WriteFile", "Identity"), ("Identity", "WriteFile")])
def test_every_op_a_node_names_is_checked(tmp_path, ops) -> None:
    """Protobuf keeps the last op of a node; the inspection refuses any op it names that is not allowed."""
    folder, reference = saved_model_file(tmp_path / "saved_model", message(2, node("n", *ops)))
    assert reference.graph_def.node[0].op == ops[-1]
    refused(folder, r"the graph runs op 'WriteFile' \(node 'n'\)")


def test_a_function_attribute_given_twice_names_the_function_protobuf_keeps(tmp_path) -> None:
    """An attr value, and the NameAttrList in it, merge: the last name is the function TensorFlow calls."""
    first, second = message(10, text(1, "not_a_function")), message(10, text(1, "fn"))
    attribute = message(5, text(1, "f"), message(2, first), message(2, second))  # NodeDef.attr["f"]
    library = message(2, message(1, message(1, text(1, "fn"))))  # GraphDef.library.function[0].signature.name
    folder, reference = saved_model_file(
        tmp_path / "saved_model", message(2, node("call", "PartitionedCall", attributes=attribute), library), SERVING
    )
    assert reference.graph_def.node[0].attr["f"].func.name == "fn"
    inspection = inspect_model(folder)
    assert (inspection.format, inspection.writer, inspection.writer_version) == ("saved_model", "tensorflow", "")
    # Read as TensorFlow reads the signature.
    (x,), (y,) = (
        reference.signature_def["serving_default"].inputs.values(),
        reference.signature_def["serving_default"].outputs.values(),
    )
    assert [d.size for d in x.tensor_shape.dim] == [1, 4] and [d.size for d in y.tensor_shape.dim] == [1, 2]
    assert [(i.name, i.shape, i.dtype) for i in inspection.signature.inputs] == [("x", (4,), "float32")]
    assert inspection.signature.output_width == 2


def test_a_saved_model_without_a_serving_signature_is_refused_before_loading(tmp_path) -> None:
    folder, _reference = saved_model_file(tmp_path / "saved_model", message(2, node("a", "Identity")))
    refused(folder, r"saved_model: has no serving_default signature; export it with model\.export\(\) or a signatures=")


def test_an_op_behind_a_tag_above_32_bits_is_refused(tmp_path) -> None:
    """TensorFlow's C++ parser reads this tag's low 32 bits, field 2 (NodeDef.op): the op must not go unchecked."""
    hidden_op = b"\x92\x80\x80\x80\x10" + varint(len("WriteFile")) + b"WriteFile"
    folder = tmp_path / "saved_model"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(message(2, message(2, message(1, text(1, "n"), hidden_op))))
    refused(
        folder,
        r"saved_model\.pb: is not a readable SavedModel \(field tag of more than 5 bytes or 32 bits at byte 3 of a "
        r"message\)",
    )


def test_attributes_nested_deeper_than_protobuf_reads_are_refused(tmp_path) -> None:
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    value = message(10, text(1, "fn"))  # AttrValue{func: NameAttrList{name: "fn"}}
    for _ in range(40):  # three messages a level: AttrValue, NameAttrList and its attr entry
        value = message(10, text(1, "fn"), message(2, text(1, "x"), message(2, value)))
    data = message(2, message(2, node("n", "PartitionedCall", attributes=message(5, text(1, "f"), message(2, value)))))
    with pytest.raises(DecodeError):
        saved_model_pb2.SavedModel.FromString(data)  # protobuf refuses it too
    folder = tmp_path / "saved_model"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(data)
    refused(folder, r"saved_model\.pb: is not a readable SavedModel \(messages nested more than 100 deep\)")
