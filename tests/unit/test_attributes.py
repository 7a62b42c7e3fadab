"""Attribute decoding: the fast path (non-empty string, non-zero int read directly) agrees with the oneof."""

from __future__ import annotations

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collector.attributes import MAX_STRING, any_value, attributes


def _kv(key: str, **value) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


def test_every_kind_of_value_including_empty_and_zero():
    kvs = [
        _kv("s", string_value="text"),
        _kv("empty", string_value=""),
        _kv("i", int_value=-7),
        _kv("zero", int_value=0),
        _kv("d", double_value=0.0),
        _kv("b", bool_value=False),
        _kv("bytes", bytes_value=b"\x01\xff"),
        _kv("arr", array_value={"values": [AnyValue(string_value="a"), AnyValue(int_value=0)]}),
        _kv("kv", kvlist_value={"values": [_kv("x", int_value=1)]}),
        KeyValue(key="unset"),
        _kv("long", string_value="x" * (MAX_STRING + 5)),
    ]
    got = attributes(kvs)
    assert got == {
        "s": "text",
        "empty": "",
        "i": -7,
        "zero": 0,
        "d": 0.0,
        "b": False,
        "bytes": "01ff",
        "arr": ["a", 0],
        "kv": {"x": 1},
        "long": "x" * MAX_STRING,
    }
    assert type(got["d"]) is float and type(got["b"]) is bool and type(got["zero"]) is int
    assert list(got) == [kv.key for kv in kvs if kv.key != "unset"]  # wire order kept
    assert all(got[kv.key] == any_value(kv.value) for kv in kvs if kv.key != "unset")


def test_a_later_duplicate_key_wins():
    assert attributes([_kv("k", string_value="a"), _kv("k", int_value=2)]) == {"k": 2}
