"""gate.inspection.protobuf: the wire-format reader, on hand-encoded bytes.

Where protobuf's own parser (the python package's upb) can read the same
bytes, it is the reference: google.protobuf.descriptor_pb2's
UninterpretedOption has a repeated message (name, 2), a string
(identifier_value, 3), a uint64 (positive_int_value, 4) and a double
(double_value, 6); FileDescriptorProto has a singular message (options, 8).
"""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

from gate.inspection import protobuf
from gate.inspection.protobuf import Malformed

Option = descriptor_pb2.UninterpretedOption


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def length_delimited(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


# --- varints ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"\x20\x00", 0),
        (b"\x20\x01", 1),
        (b"\x20\x96\x01", 150),  # the example of protobuf's encoding guide
        (b"\x20\xac\x02", 300),
        (b"\x20\xff\xff\xff\xff\x0f", 2**32 - 1),
        (b"\x20\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 2**63),
        (b"\x20" + b"\xff" * 9 + b"\x01", 2**64 - 1),  # 10 bytes, the longest varint
        (b"\x20" + b"\xff" * 9 + b"\x7f", 2**64 - 1),  # the bits past 64 are dropped, as protobuf drops them
        (b"\x20\x80\x00", 0),  # not the shortest encoding, which protobuf accepts too
    ],
)
def test_varints(data, value) -> None:
    assert protobuf.parse(data) == {4: [value]}
    assert Option.FromString(data).positive_int_value == value


@pytest.mark.parametrize("value", [0, 1, 127, 128, 150, 16383, 16384, 2**32, 2**63 - 1, 2**64 - 1])
def test_varints_protobuf_writes(value) -> None:
    assert protobuf.parse(Option(positive_int_value=value).SerializeToString()) == {4: [value]}


def test_fixed_width_fields_are_skipped() -> None:
    data = Option(double_value=1.5).SerializeToString() + b"\x2d\x00\x00\xc0\x3f"  # field 5 as fixed32 1.5
    assert data[0] == 6 << 3 | 1
    assert protobuf.parse(data) == {6: [None], 5: [None]}


# --- length-delimited and repeated fields -------------------------------------------------------------


def test_a_length_delimited_field() -> None:
    data = b"\x1a\x07testing"
    assert data == Option(identifier_value="testing").SerializeToString()
    fields = protobuf.parse(data)
    assert [bytes(value) for value in protobuf.raw(fields, 3)] == [b"testing"]
    assert protobuf.last_string(fields, 3) == "testing"


def test_an_empty_length_delimited_field_and_an_absent_one() -> None:
    fields = protobuf.parse(b"\x1a\x00")
    assert protobuf.strings(fields, 3) == [""]
    assert protobuf.strings(fields, 7) == [] and protobuf.last_string(fields, 7) == ""
    assert protobuf.repeated(fields, 2) == [] and protobuf.message(fields, 2) == {}


def test_repeated_fields_keep_every_occurrence_in_order() -> None:
    names = [Option.NamePart(name_part=part, is_extension=False) for part in ("a", "b", "c")]
    data = Option(name=names, identifier_value="x").SerializeToString()
    parts = protobuf.repeated(protobuf.parse(data), 2)
    assert [protobuf.last_string(part, 1) for part in parts] == ["a", "b", "c"]
    assert [part[2] for part in parts] == [[0], [0], [0]]  # NamePart.is_extension, a bool varint


def test_repeated_occurrences_may_be_interleaved_with_other_fields() -> None:
    data = b"\x12\x05\x0a\x01a\x10\x00" + b"\x1a\x01x" + b"\x12\x05\x0a\x01b\x10\x00"  # name, identifier_value, name
    parts = protobuf.repeated(protobuf.parse(data), 2)
    assert [protobuf.last_string(part, 1) for part in parts] == ["a", "b"]
    assert [part.name_part for part in Option.FromString(data).name] == ["a", "b"]
    assert protobuf.strings(protobuf.parse(b"\x1a\x01a\x20\x01\x1a\x01b"), 3) == ["a", "b"]


def test_nested_messages() -> None:
    inner = length_delimited(1, b"relu")
    data = length_delimited(2, length_delimited(5, inner))
    assert protobuf.last_string(protobuf.message(protobuf.message(protobuf.parse(data), 2), 5), 1) == "relu"


# --- fields that occur more than once ------------------------------------------------------------------


def test_the_last_occurrence_of_a_scalar_field_wins() -> None:
    data = b"\x1a\x05first\x20\x01\x1a\x06second"
    assert protobuf.last_string(protobuf.parse(data), 3) == "second"
    assert Option.FromString(data).identifier_value == "second"


def test_occurrences_of_an_embedded_message_are_merged() -> None:
    """Scalars inside take the last occurrence across all of them; repeated fields inside add up."""
    first = descriptor_pb2.FileOptions(
        java_package="first", java_outer_classname="Kept", uninterpreted_option=[Option(identifier_value="1")]
    )
    second = descriptor_pb2.FileOptions(java_package="second", uninterpreted_option=[Option(identifier_value="2")])
    data = length_delimited(8, first.SerializeToString()) + length_delimited(8, second.SerializeToString())
    reference = descriptor_pb2.FileDescriptorProto.FromString(data).options

    options = protobuf.message(protobuf.parse(data), 8)
    assert protobuf.last_string(options, 1) == reference.java_package == "second"
    assert protobuf.last_string(options, 8) == reference.java_outer_classname == "Kept"
    assert [protobuf.last_string(option, 3) for option in protobuf.repeated(options, 999)] == ["1", "2"]
    assert [option.identifier_value for option in reference.uninterpreted_option] == ["1", "2"]
    assert len(protobuf.repeated(protobuf.parse(data), 8)) == 2  # read as a repeated field, they stay apart


# --- damaged and malformed input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"\x9a",  # a tag cut short
        b"\x1a",  # a length missing
        b"\x1a\x05abc",  # a length past the end
        b"\x1a\x85",  # a length cut short
        b"\x20\x96",  # a varint value cut short
        b"\x31\x00\x00\x00",  # a fixed64 cut short
        b"\x2d\x00",  # a fixed32 cut short
    ],
)
def test_truncated_input_is_refused(data) -> None:
    with pytest.raises(Malformed, match="^truncated message$"):
        protobuf.parse(data)
    with pytest.raises(DecodeError):
        Option.FromString(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x20" + b"\x80" * 10 + b"\x01", "varint longer than 10 bytes"),
        (b"\x9a\x80\x80\x80\x80\x00\x01a", "field tag of more than 5 bytes or 32 bits at byte 0 of a message"),
        (b"\x1a\x81\x80\x80\x80\x80\x00a", "length of more than 5 bytes or 2 GiB at byte 1 of a message"),
        (b"\x1a\x80\x80\x80\x80\x08", "length of more than 5 bytes or 2 GiB at byte 1 of a message"),
    ],
)
def test_malformed_varints_are_refused(data, message) -> None:
    with pytest.raises(Malformed, match=f"^{message}$"):
        protobuf.parse(data)
    with pytest.raises(DecodeError):
        Option.FromString(data)


def test_a_tag_above_32_bits_is_refused() -> None:
    """TensorFlow's C++ protobuf keeps the low 32 bits of this tag and reads field 2, wire type 2 (NodeDef.op).

    A reader that took the whole value would skip field 2**29 + 2 as unknown,
    and the op it names would never be checked against the allowlist.
    """
    data = b"\x92\x80\x80\x80\x10\x09WriteFile"
    with pytest.raises(Malformed, match="^field tag of more than 5 bytes or 32 bits at byte 0 of a message$"):
        protobuf.parse(data)
    with pytest.raises(DecodeError):  # upb refuses it too
        Option.FromString(data)


def test_padded_tags_and_lengths_of_5_bytes_are_read_as_protobuf_reads_them() -> None:
    data = b"\x9a\x80\x80\x80\x00\x81\x80\x80\x80\x00a"  # field 3, length 1, both padded to 5 bytes
    assert protobuf.last_string(protobuf.parse(data), 3) == Option.FromString(data).identifier_value == "a"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x0b\x0c", "wire type 3 at byte 0 of a message"),  # a group: TensorFlow's protos have none
        (b"\x0c", "wire type 4 at byte 0 of a message"),
        (b"\x0e", "wire type 6 at byte 0 of a message"),
        (b"\x1a\x01a\x0f", "wire type 7 at byte 3 of a message"),
        (b"\x02\x00", "field number 0 at byte 0 of a message"),
    ],
)
def test_wire_types_and_field_numbers_protobuf_does_not_define_are_refused(data, message) -> None:
    with pytest.raises(Malformed, match=f"^{message}$"):
        protobuf.parse(data)


@pytest.mark.parametrize(
    ("data", "read"),
    [
        (b"\x18\x01", protobuf.strings),  # identifier_value as a varint
        (b"\x1d\x00\x00\x00\x00", protobuf.last_string),  # as a fixed32
        (b"\x10\x01", protobuf.repeated),  # name as a varint
        (b"\x11" + bytes(8), protobuf.message),  # as a fixed64
    ],
)
def test_a_known_field_with_the_wrong_wire_type_is_refused(data, read) -> None:
    fields = protobuf.parse(data)
    number = next(iter(fields))
    with pytest.raises(Malformed, match=f"^field {number} has the wrong wire type$"):
        read(fields, number)


def test_strings_that_are_not_utf8_are_refused() -> None:
    fields = protobuf.parse(b"\x1a\x02\xff\xfe")
    with pytest.raises(Malformed, match=r"^field 3 is not UTF-8 text \(invalid start byte at byte 0 of it\)$"):
        protobuf.last_string(fields, 3)


def nested(levels: int) -> bytes:
    """A DescriptorProto holding `levels` nested_type messages (3), each inside the one before."""
    data = b""
    for _ in range(levels):
        data = length_delimited(3, data)
    return data


def innermost(data: bytes) -> protobuf.Fields:
    fields = protobuf.parse(data)
    while 3 in fields:
        fields = protobuf.message(fields, 3)
    return fields


def test_messages_nested_as_deep_as_protobuf_reads_them_are_read() -> None:
    assert innermost(nested(protobuf.MAX_DEPTH)).depth == 100
    descriptor_pb2.DescriptorProto.FromString(nested(100))


def test_messages_nested_deeper_than_protobuf_reads_them_are_refused() -> None:
    with pytest.raises(Malformed, match="^messages nested more than 100 deep$"):
        innermost(nested(protobuf.MAX_DEPTH + 1))
    with pytest.raises(DecodeError):
        descriptor_pb2.DescriptorProto.FromString(nested(101))
    with pytest.raises(Malformed, match="^messages nested more than 100 deep$"):
        protobuf.repeated(protobuf.parse(nested(2), depth=100), 3)
