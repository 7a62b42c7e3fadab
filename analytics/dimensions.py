"""The record dimensions a caller may filter or group by, each a fixed SQL expression over `calls`.

Only names from this table reach SQL; values always travel as bound parameters. `tag` and `meta.<key>` are the
two dimensions whose expression depends on the request: a call with several tags counts once under each tag when
grouped by tag, and a metadata key is bound as a parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from analytics.errors import QueryError


@dataclass(frozen=True)
class Dimension:
    name: str
    sql: str
    kind: str = "text"  # text | int | bool
    help: str = ""
    rollup: bool = False  # kept in the hourly rollups, so filters/groups on it can be served from them


DIMENSIONS: dict[str, Dimension] = {
    d.name: d
    for d in (
        Dimension("project", "project", help="project of the ingest key", rollup=True),
        Dimension("service", "service", help="service.name of the sending application", rollup=True),
        Dimension("service_version", "service_version", help="service.version: the release of the sending application"),
        Dimension("environment", "environment", help="deployment.environment", rollup=True),
        Dimension("provider", "provider", help="model provider (openai, anthropic, ...)", rollup=True),
        Dimension("operation", "operation", help="chat, embeddings, ...", rollup=True),
        Dimension("request_model", "request_model", help="model asked for", rollup=True),
        Dimension("response_model", "response_model", help="model that answered", rollup=True),
        Dimension(
            "model",
            "model",
            help="one name per model: genai-prices' id of the model asked for (else of the one that answered), so an"
            " alias, its dated snapshots and its failed calls are one model",
            rollup=True,
        ),
        Dimension("status", "status", help="ok or error", rollup=True),
        Dimension("error_type", "error_type", help="error class or code", rollup=True),
        Dimension("http_status", "http_status", "int", help="HTTP status of a failed call", rollup=True),
        Dimension("streaming", "streaming", "bool", help="true for streamed responses", rollup=True),
        Dimension("convention", "convention", help="instrumentation convention the call came in", rollup=True),
        Dimension("finish_reason", "finish_reason", help="stop, length, tool_calls, ..."),
        Dimension("user", "user_id", help="end user id"),
        Dimension("session", "session_id", help="session or conversation id"),
        Dimension("tag", "tag", help="one of the call's tags"),
    )
}
_META_KEY = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")
META_PREFIX = "meta."


def resolve(name: str) -> Dimension:
    """A dimension by name, including `meta.<key>`; unknown names are a 400."""
    if name in DIMENSIONS:
        return DIMENSIONS[name]
    if name.startswith(META_PREFIX):
        key = name[len(META_PREFIX) :]
        if not _META_KEY.match(key):
            raise QueryError(f"metadata key {key!r} must be 1-128 letters, digits or _.:/-")
        return Dimension(name, "metadata[{key}]", help=f"metadata value of {key}")
    known = ", ".join([*DIMENSIONS, "meta.<key>"])
    raise QueryError(f"unknown dimension {name!r}; known: {known}")


def parse_value(dim: Dimension, raw: str) -> str | int | bool | None:
    """A filter value typed for its dimension; the literal `null` (or empty) selects missing values."""
    if raw in ("", "null"):
        return None
    if dim.kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise QueryError(f"{dim.name} must be an integer, got {raw!r}") from None
    if dim.kind == "bool":
        lowered = raw.lower()
        if lowered not in ("true", "false"):
            raise QueryError(f"{dim.name} must be true or false, got {raw!r}")
        return lowered == "true"
    if len(raw) > 1024:
        raise QueryError(f"{dim.name} value is longer than 1024 characters")
    return raw
