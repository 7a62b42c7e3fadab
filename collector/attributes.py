"""OTLP AnyValue -> plain Python values, and lenient coercions of attribute values (hot path)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

MAX_STRING = 65_536  # longer attribute strings are cut: one huge value must not blow up memory or a row


def any_value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which == "string_value":
        s = v.string_value
        return s if len(s) <= MAX_STRING else s[:MAX_STRING]
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return v.bytes_value.hex()
    return None


def attributes(kvs: Iterable[Any]) -> dict[str, Any]:
    """A KeyValue list as a dict. Written out for speed: this runs for every attribute of every span.

    A non-empty string (or non-zero int) member means the oneof holds it, so the common values are read without
    asking WhichOneof first (which costs as much as reading the value); empty and zero values, and the other
    kinds, take the general path."""
    out: dict[str, Any] = {}
    for kv in kvs:
        v = kv.value
        s = v.string_value
        if s:
            out[kv.key] = s if len(s) <= MAX_STRING else s[:MAX_STRING]
            continue
        n = v.int_value
        if n:
            out[kv.key] = n
            continue
        which = v.WhichOneof("value")
        if which == "string_value" or which == "int_value":
            out[kv.key] = s if which == "string_value" else n
        elif which is not None:
            out[kv.key] = any_value(v)
    return out


_INT_LIMIT = 2**62


def to_int(value: Any) -> int | None:
    """Token counts arrive as ints, floats or strings; anything else (or negative, or absurd) is ignored."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        n = value
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        n = int(value)
    elif isinstance(value, str):
        try:
            n = int(float(value)) if "." in value or "e" in value.lower() else int(value)
        except (ValueError, OverflowError):  # OverflowError: "1e400" is a float, but an infinite one
            return None
    else:
        return None
    return n if 0 <= n < _INT_LIMIT else None


def to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        f = float(value)
    elif isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return None
    else:
        return None
    return f if f == f and abs(f) != float("inf") else None


def to_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return ",".join(s for s in (to_str(v) for v in value) if s) or None
    return orjson.dumps(value).decode()


def to_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
    return None


def to_str_list(value: Any) -> list[str] | None:
    """Tags: an array, a JSON array string, or a comma-separated string."""
    if value is None:
        return None
    if isinstance(value, list):
        items = [to_str(v) for v in value]
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, list):
                return to_str_list(parsed)
        items = [t.strip() for t in text.split(",")]
    else:
        items = [to_str(value)]
    tags = [t for t in items if t]
    return tags or None


def json_object(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.startswith("{"):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None
