"""OTLP logs and metrics -> rows: GenAI content events (opt-in) and metric data points."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from collector.attributes import any_value, attributes, to_str
from collector.normalize import ContentOptions, stored_content

# Log events that carry prompt/completion content (OTel GenAI 1.27-1.36 events and the 1.37+ details event).
CONTENT_LOG_EVENTS = frozenset(
    {
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.assistant.message",
        "gen_ai.tool.message",
        "gen_ai.choice",
        "gen_ai.client.inference.operation.details",
        "gen_ai.content.prompt",
        "gen_ai.content.completion",
    }
)


def _event_name(record: Any, attrs: dict[str, Any]) -> str | None:
    name = getattr(record, "event_name", "") or attrs.get("event.name") or attrs.get("gen_ai.event.name")
    return to_str(name)


def content_rows(request: Any, project: str, options: ContentOptions, received_us: int) -> tuple[list[dict], int]:
    """GenAI content log records as rows (only when content capture is on); returns (rows, records seen)."""
    rows: list[dict[str, Any]] = []
    seen = 0
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                seen += 1
                if not options.capture:
                    continue
                attrs = attributes(record.attributes)
                name = _event_name(record, attrs)
                if name not in CONTENT_LOG_EVENTS:
                    continue
                body = any_value(record.body) if record.HasField("body") else None
                role = None
                if isinstance(body, dict):
                    message = body.get("message")  # gen_ai.choice: {"message": {"role": ...}}; any type may come
                    role = to_str(body.get("role") or (message.get("role") if isinstance(message, dict) else None))
                role = role or name.removeprefix("gen_ai.").removesuffix(".message")
                text = body if isinstance(body, str) else orjson.dumps(body, default=str).decode()
                rows.append(
                    {
                        "event_id": hashlib.blake2b(
                            record.SerializeToString(deterministic=True), digest_size=16
                        ).digest(),
                        "trace_id": record.trace_id if len(record.trace_id) == 16 else None,
                        "span_id": record.span_id if len(record.span_id) == 8 else None,
                        "project": project,
                        "time": (record.time_unix_nano or record.observed_time_unix_nano) // 1000 or None,
                        "event_name": name,
                        "role": role,
                        "content": stored_content(text, options),
                        "received_at": received_us,
                    }
                )
    return rows, seen


# Counts are uint64 in OTLP and BIGINT in the store: a count past 2^63-1 is stored as NULL (no real one gets there).
_INT64_MAX = 2**63 - 1


def metric_rows(request: Any, project: str, received_us: int) -> list[dict[str, Any]]:
    """Every data point of every metric, kept as it came (sums, gauges, histograms)."""
    rows: list[dict[str, Any]] = []
    for rm in request.resource_metrics:
        res = attributes(rm.resource.attributes)
        service = to_str(res.get("service.name"))
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                data = getattr(metric, kind)
                for point in data.data_points:
                    attrs = {k: s for k, v in attributes(point.attributes).items() if (s := to_str(v)) is not None}
                    row: dict[str, Any] = {
                        "point_id": hashlib.blake2b(
                            metric.name.encode()
                            + b"\0"
                            + (service or "").encode()
                            + b"\0"
                            + point.SerializeToString(deterministic=True),
                            digest_size=16,
                        ).digest(),
                        "project": project,
                        "service": service,
                        "metric": metric.name,
                        "unit": metric.unit,
                        "kind": kind,
                        "time": point.time_unix_nano // 1000 or None,
                        "attributes": attrs or None,
                        "received_at": received_us,
                    }
                    if kind in ("histogram", "exponential_histogram", "summary"):
                        row["count"] = point.count if point.count <= _INT64_MAX else None
                        row["sum"] = point.sum if kind == "summary" or point.HasField("sum") else None
                    if kind == "histogram":
                        row["min"] = point.min if point.HasField("min") else None
                        row["max"] = point.max if point.HasField("max") else None
                        buckets = list(point.bucket_counts)
                        row["bucket_counts"] = buckets if all(n <= _INT64_MAX for n in buckets) else None
                        row["explicit_bounds"] = list(point.explicit_bounds)
                    elif kind in ("sum", "gauge"):
                        which = point.WhichOneof("value")
                        row["value"] = float(getattr(point, which)) if which else None
                    rows.append(row)
    return rows
