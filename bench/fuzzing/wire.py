"""The protobuf wire format, just enough to mutate a message below the level of its schema.

A message is a sequence of fields (tag = number << 3 | wire type, then the value). Parsing into that list and
encoding it back lets a mutator duplicate, drop, reorder and re-type fields, write lengths that lie, and reach
into nested messages, none of which the protobuf API would let it do.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

VARINT, FIXED64, LEN, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5
MAX_DEPTH = 12  # how deep a mutation follows nested messages
GROWTH_LIMIT = 1 << 20  # a mutation that repeats bytes stops at about this many


@dataclass
class Field:
    number: int
    wire_type: int
    value: int | bytes  # varint/fixed: the integer; length-delimited (and groups): the payload bytes


def encode_varint(n: int) -> bytes:
    """A varint; negative numbers as their 64-bit two's complement (10 bytes), as protobuf writes int64."""
    n &= (1 << 64) - 1 if n < 0 else (1 << 70) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position); raises ValueError on a truncated or over-long varint."""
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def parse(data: bytes) -> list[Field] | None:
    """The fields of a message, or None when the bytes are not a well-formed field sequence."""
    fields = []
    pos = 0
    try:
        while pos < len(data):
            tag, pos = decode_varint(data, pos)
            number, wire_type = tag >> 3, tag & 7
            if number == 0:
                return None
            if wire_type == VARINT:
                value, pos = decode_varint(data, pos)
            elif wire_type == FIXED64:
                if pos + 8 > len(data):
                    return None
                value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
            elif wire_type == FIXED32:
                if pos + 4 > len(data):
                    return None
                value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
            elif wire_type == LEN:
                length, pos = decode_varint(data, pos)
                if pos + length > len(data):
                    return None
                value, pos = data[pos : pos + length], pos + length
            else:
                return None  # groups are never used by OTLP: not worth parsing
            fields.append(Field(number, wire_type, value))
    except ValueError:
        return None
    return fields


def encode_field(f: Field) -> bytes:
    tag = encode_varint(f.number << 3 | f.wire_type)
    if f.wire_type == VARINT:
        return tag + encode_varint(int(f.value))
    if f.wire_type == FIXED64:
        return tag + (int(f.value) & (1 << 64) - 1).to_bytes(8, "little")
    if f.wire_type == FIXED32:
        return tag + (int(f.value) & (1 << 32) - 1).to_bytes(4, "little")
    if f.wire_type in (START_GROUP, END_GROUP):
        return tag  # a bare marker
    payload = f.value if isinstance(f.value, bytes) else encode_varint(f.value)
    return tag + encode_varint(len(payload)) + payload


def encode(fields: list[Field]) -> bytes:
    return b"".join(encode_field(f) for f in fields)


def is_message(payload: bytes) -> bool:
    """Whether a length-delimited payload parses as a non-empty message (strings and bytes usually do not)."""
    fields = parse(payload)
    return bool(fields)


_INTERESTING_VARINTS = (0, 1, 2, 127, 128, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, 2**63, 2**64 - 1, -1)
_INTERESTING_FIXED64 = (
    0,
    2**64 - 1,
    2**63,
    struct.unpack("<Q", struct.pack("<d", float("nan")))[0],
    struct.unpack("<Q", struct.pack("<d", float("inf")))[0],
    struct.unpack("<Q", struct.pack("<d", float("-inf")))[0],
    struct.unpack("<Q", struct.pack("<d", -0.0))[0],
    struct.unpack("<Q", struct.pack("<d", 1e308))[0],
)
_INVALID_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\xc0\xaf", b"\x80")


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One schema-blind structural mutation somewhere in the message tree of `data` (unchanged if it does not
    parse as a message)."""
    fields = parse(data)
    if not fields:
        return data
    return encode(_mutate_fields(fields, rng, 0))


def _mutate_fields(fields: list[Field], rng: random.Random, depth: int) -> list[Field]:
    nested = [i for i, f in enumerate(fields) if isinstance(f.value, bytes) and is_message(f.value)]
    if nested and depth < MAX_DEPTH and rng.random() < 0.7:
        i = rng.choice(nested)
        inner = parse(_payload(fields[i]))
        assert inner is not None
        fields = list(fields)
        mutated = _mutate_fields(inner, rng, depth + 1)
        fields[i] = Field(fields[i].number, LEN, encode(mutated))
        return fields
    return _mutate_here(fields, rng)


def _mutate_here(fields: list[Field], rng: random.Random) -> list[Field]:
    fields = list(fields)
    i = rng.randrange(len(fields))
    f = fields[i]
    op = rng.randrange(11)
    if op == 0:  # duplicate a field (repeated: one more element; singular: last one wins)
        fields.insert(rng.randrange(len(fields) + 1), Field(f.number, f.wire_type, f.value))
    elif op == 1:  # reorder
        rng.shuffle(fields)
    elif op == 2:  # drop
        del fields[i]
    elif op == 3:  # the same value under another wire type
        wire_type = rng.choice([t for t in (VARINT, FIXED64, LEN, FIXED32) if t != f.wire_type])
        fields[i] = Field(f.number, wire_type, _retyped(f.value, wire_type))
    elif op == 4:  # an extreme number where a number (or anything) was
        if f.wire_type == FIXED64:
            fields[i] = Field(f.number, FIXED64, rng.choice(_INTERESTING_FIXED64))
        else:
            fields[i] = Field(f.number, VARINT, rng.choice(_INTERESTING_VARINTS))
    elif op == 5 and f.wire_type == LEN:  # invalid UTF-8 inside a string
        payload = _payload(f)
        at = rng.randrange(len(payload) + 1)
        fields[i] = Field(f.number, LEN, payload[:at] + rng.choice(_INVALID_UTF8) + payload[at:])
    elif op == 6:  # an unknown field number
        number = rng.choice([15, 99, 1000, 2**29 - 1])
        extra = Field(number, VARINT, 7) if rng.random() < 0.5 else Field(number, LEN, b"junk")
        fields.insert(rng.randrange(len(fields) + 1), extra)
    elif op == 7 and f.wire_type == LEN:  # a long payload: the same bytes many times over
        payload = _payload(f)
        payload = payload or b"x"
        fields[i] = Field(f.number, LEN, payload * min(rng.choice([2, 100, 10_000]), GROWTH_LIMIT // len(payload) + 1))
    elif op == 8:  # many copies of one field
        size = (len(f.value) if isinstance(f.value, bytes) else 8) or 1
        copies = min(rng.choice([10, 1000]), GROWTH_LIMIT // size + 1)
        fields[i:i] = [Field(f.number, f.wire_type, f.value) for _ in range(copies)]
    elif op == 9:  # a group marker, which OTLP never uses
        fields.insert(i, Field(f.number, rng.choice([START_GROUP, END_GROUP]), b""))
    else:  # an empty value
        fields[i] = Field(f.number, f.wire_type, b"" if f.wire_type == LEN else 0)
    return fields


def _payload(f: Field) -> bytes:
    return f.value if isinstance(f.value, bytes) else b""


def _retyped(value: int | bytes, wire_type: int) -> int | bytes:
    if wire_type == LEN:
        return value if isinstance(value, bytes) else encode_varint(value)
    return int.from_bytes(value[:8], "little") if isinstance(value, bytes) else value


def lying_length(data: bytes, rng: random.Random) -> bytes:
    """Rewrite the length of one length-delimited field (at any depth) to a lie: huge, negative as a varint,
    over-long (11 bytes) or one more than what follows."""
    offsets = _length_offsets(data, 0, 0)
    if not offsets:
        return data
    start, end, _ = rng.choice(offsets)
    lie = rng.choice(
        [
            encode_varint(2**31 - 1),
            encode_varint(2**32 + 5),
            encode_varint(2**63 - 1),
            encode_varint(2**64 - 1),
            b"\xff" * 10 + b"\x01",  # over-long varint
            encode_varint(len(data)),
            encode_varint(len(data) - start + 1),
        ]
    )
    return data[:start] + lie + data[end:]


def _length_offsets(data: bytes, base: int, depth: int) -> list[tuple[int, int, int]]:
    """(start, end, payload length) of the length varint of every length-delimited field, nested ones too."""
    out = []
    pos = 0
    while pos < len(data):
        try:
            tag, pos = decode_varint(data, pos)
        except ValueError:
            break
        wire_type = tag & 7
        try:
            if wire_type == VARINT:
                _, pos = decode_varint(data, pos)
            elif wire_type == FIXED64:
                pos += 8
            elif wire_type == FIXED32:
                pos += 4
            elif wire_type == LEN:
                start = pos
                length, pos = decode_varint(data, pos)
                out.append((base + start, base + pos, length))
                payload = data[pos : pos + length]
                if depth < MAX_DEPTH and is_message(payload):
                    out.extend(_length_offsets(payload, base + pos, depth + 1))
                pos += length
            else:
                break
        except ValueError:
            break
    return out


def nested_any_value(depth: int, leaf: bytes = b"") -> bytes:
    """An AnyValue nested `depth` arrays deep (AnyValue.array_value = 5, ArrayValue.values = 1), as bytes:
    deeper than protobuf's recursion limit the decoder must refuse it, not overflow its stack."""
    value = leaf or encode_field(Field(1, LEN, b"leaf"))  # string_value = 1
    for _ in range(depth):
        array = encode_field(Field(1, LEN, value))
        value = encode_field(Field(5, LEN, array))
    return value


def replace_payload(data: bytes, old: bytes, new: bytes, depth: int = 0) -> bytes:
    """`data` with every length-delimited payload equal to `old` (at any depth) replaced by `new`, the lengths
    of the enclosing messages rewritten to match."""
    fields = parse(data)
    if not fields or depth > MAX_DEPTH:
        return data
    for f in fields:
        if f.wire_type == LEN and isinstance(f.value, bytes):
            f.value = new if f.value == old else replace_payload(f.value, old, new, depth + 1)
    return encode(fields)
