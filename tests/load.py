"""Building OTLP requests of unique GenAI spans for the durability and overload tests."""

from __future__ import annotations

import os

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def genai_request(batch_id: int, spans: int) -> tuple[bytes, list[bytes]]:
    """A protobuf export request of `spans` unique chat spans; returns (body, span ids)."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "load"
    ss = rs.scope_spans.add()
    ids = []
    base = 1_760_000_000_000_000_000 + batch_id * 1_000_000_000
    for i in range(spans):
        span_id = os.urandom(8)
        ids.append(span_id)
        span = ss.spans.add(
            trace_id=os.urandom(16),
            span_id=span_id,
            name="chat gpt-4o-mini",
            kind=3,
            start_time_unix_nano=base + i * 1000,
            end_time_unix_nano=base + i * 1000 + 5_000_000,
        )
        attrs = span.attributes
        attrs.add(key="gen_ai.operation.name").value.string_value = "chat"
        attrs.add(key="gen_ai.provider.name").value.string_value = "openai"
        attrs.add(key="gen_ai.request.model").value.string_value = "gpt-4o-mini"
        attrs.add(key="gen_ai.usage.input_tokens").value.int_value = 100 + i
        attrs.add(key="gen_ai.usage.output_tokens").value.int_value = 20
        attrs.add(key="batch.id").value.int_value = batch_id
    return req.SerializeToString(), ids
