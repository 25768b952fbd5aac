"""A reader of the protobuf wire format, for the few fields of saved_model.pb that inspection needs.

TensorFlow's own protos cannot be imported without importing TensorFlow, so
this reads the wire format directly (https://protobuf.dev/programming-guides/encoding/):
a message is a sequence of fields, each a tag (field number and wire type)
and a value. The reader splits a message into its fields, by number, every
occurrence in order, and the caller picks the ones it knows, applying
protobuf's rules for fields that occur more than once:

- a repeated field is every occurrence, in order (`repeated`, `strings`);
- a singular scalar field is its last occurrence (`last_string`);
- a singular embedded message is every occurrence merged, as if its bytes
  were concatenated (`message`): repeated fields inside add up, and singular
  ones take the last occurrence across them all.

Where TensorFlow's parser and this reader could read the same bytes
differently, the reader refuses them (Malformed): a tag of more than 5 bytes
or above 32 bits (TensorFlow's C++ protobuf keeps the low 32 bits of a 5-byte
tag, so it would read a field this reader skips: a hidden NodeDef.op), a
length of more than 5 bytes or of 2 GiB and more, messages nested more than
MAX_DEPTH deep (protobuf's own limit), groups and the undefined wire types 6
and 7, field number 0, a known field with the wrong wire type (protobuf would
keep it as an unknown field) and strings that are not UTF-8 (TensorFlow's
protos are proto3, whose strings are UTF-8).
"""

from __future__ import annotations

Value = memoryview | int | None  # a length-delimited field's bytes, a varint, or None for a fixed-width field

_MAX_VARINT32_BYTES = 5  # tags and lengths are 32-bit values: protobuf reads at most 5 bytes of them
_MAX_LENGTH = (1 << 31) - 1  # protobuf's limit on a message's or string's size
_MAX_VARINT_BYTES = 10
_VARINT_BITS = (1 << 64) - 1
MAX_DEPTH = 100  # protobuf's default recursion limit: a message inside 100 others is the deepest it parses


class Malformed(ValueError):
    """The bytes do not follow the protobuf wire format (or follow it in a way the reader refuses)."""


class Fields(dict[int, list[Value]]):
    """The fields of one message by number, every occurrence in order; `depth` counts the messages around it."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        self.depth = depth


def parse(data: memoryview | bytes, depth: int = 0) -> Fields:
    """The fields of one message by number, every occurrence in order (fixed-width values are skipped)."""
    if depth > MAX_DEPTH:
        raise Malformed(f"messages nested more than {MAX_DEPTH} deep")
    data = memoryview(data)
    fields = Fields(depth)
    position, end = 0, len(data)
    while position < end:
        start = position
        tag, position = _varint(data, position)
        if position - start > _MAX_VARINT32_BYTES or tag >> 32:
            raise Malformed(f"field tag of more than 5 bytes or 32 bits at byte {start} of a message")
        number, wire_type = tag >> 3, tag & 0x7
        if number == 0:
            raise Malformed(f"field number 0 at byte {start} of a message")
        value: Value = None
        if wire_type == 0:
            value, position = _varint(data, position)
        elif wire_type == 1:
            position += 8
        elif wire_type == 2:
            length_start = position
            length, position = _varint(data, position)
            if position - length_start > _MAX_VARINT32_BYTES or length > _MAX_LENGTH:
                raise Malformed(f"length of more than 5 bytes or 2 GiB at byte {length_start} of a message")
            value = data[position : position + length]
            position += length
        elif wire_type == 5:
            position += 4
        else:  # groups (3, 4), which TensorFlow's protos do not use, and the undefined 6 and 7
            raise Malformed(f"wire type {wire_type} at byte {start} of a message")
        if position > end:
            raise Malformed("truncated message")
        fields.setdefault(number, []).append(value)
    return fields


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    """A varint and the position after it; like protobuf, the bits past 64 of a 10-byte varint are dropped."""
    result = 0
    for index in range(_MAX_VARINT_BYTES):
        if position >= len(data):
            raise Malformed("truncated message")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << (7 * index)
        if byte < 0x80:
            return result & _VARINT_BITS, position
    raise Malformed("varint longer than 10 bytes")


def raw(fields: Fields, number: int) -> list[memoryview]:
    """The bytes of every occurrence of a length-delimited field."""
    values = fields.get(number, [])
    if not all(isinstance(value, memoryview) for value in values):
        raise Malformed(f"field {number} has the wrong wire type")
    return values  # type: ignore[return-value]  # checked above


def repeated(fields: Fields, number: int) -> list[Fields]:
    """A repeated embedded message: every occurrence, each parsed on its own."""
    return [parse(value, fields.depth + 1) for value in raw(fields, number)]


def message(fields: Fields, number: int) -> Fields:
    """A singular embedded message: every occurrence merged, as protobuf does (empty when absent)."""
    merged = Fields(fields.depth + 1)
    for occurrence in repeated(fields, number):
        for inner, values in occurrence.items():
            merged.setdefault(inner, []).extend(values)
    return merged


def strings(fields: Fields, number: int) -> list[str]:
    """A repeated string field: every occurrence."""
    try:
        return [bytes(value).decode("utf-8") for value in raw(fields, number)]
    except UnicodeDecodeError as exc:
        raise Malformed(f"field {number} is not UTF-8 text ({exc.reason} at byte {exc.start} of it)") from None


def last_string(fields: Fields, number: int) -> str:
    """A singular string field: the last occurrence wins ("" when absent, protobuf's default)."""
    values = strings(fields, number)
    return values[-1] if values else ""


def last_int(fields: Fields, number: int) -> int:
    """A singular int64, enum or bool field: the last occurrence wins (0 when absent); int64 -1 reads as -1."""
    values = fields.get(number, [])
    if not all(isinstance(value, int) for value in values):
        raise Malformed(f"field {number} has the wrong wire type")
    value = values[-1] if values else 0
    assert isinstance(value, int)  # checked above
    return value - (1 << 64) if value >> 63 else value
