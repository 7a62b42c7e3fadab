"""What the access-control tests share: users made in a real store file before the server starts, calls of two
projects sent over OTLP by the OpenTelemetry SDK with each project's ingest key, and signing in over HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from core import users
from core.access import ALL, Principal, Role
from core.store import connect

SETUP = Principal("cli:test", "cli", {ALL: Role.admin})
INGEST_KEYS = {"A": "ingest-key-project-a", "B": "ingest-key-project-b"}
READ_KEY_A = "read-key-project-a-123"
WRITE_KEY_A = "write-key-project-a-123"
PASSWORD = "correct horse battery"
# name -> grants; every one signs in with PASSWORD
PEOPLE: dict[str, dict[str, Role]] = {
    "root": {ALL: Role.admin},
    "viewer_a": {"A": Role.viewer},
    "editor_a": {"A": Role.editor},
    "admin_a": {"A": Role.admin},
    "viewer_b": {"B": Role.viewer},
    "editor_b": {"B": Role.editor},
}


def server_env() -> dict[str, str]:
    return {
        "CALLSCOPE_API_KEYS": ",".join(f"{k}={p}" for p, k in INGEST_KEYS.items()),
        "CALLSCOPE_READ_KEYS": f"{READ_KEY_A}=A",
        "CALLSCOPE_WRITE_KEYS": f"{WRITE_KEY_A}=A",
    }


def seed_users(data_dir: Path, people: dict[str, dict[str, Role]] = PEOPLE, oidc_only: tuple[str, ...] = ()) -> None:
    """The users, written into the store file while no server holds it (as `callscope users add` does); those
    in `oidc_only` get no password (they sign in through the identity provider only)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    db = connect(data_dir / "callscope.duckdb")
    try:
        for name, grants in people.items():
            users.add_user(db, SETUP, name, None if name in oidc_only else PASSWORD, grants)
    finally:
        db.close()


@dataclass(frozen=True)
class Sent:
    project: str
    service: str
    trace_id: str
    span_id: str
    model: str
    duration_ms: float


def send_calls(base_url: str, project: str, service: str, durations_ms: list[float], model: str) -> list[Sent]:
    """Chat spans through the OTel SDK's OTLP/HTTP exporter with the project's ingest key; committed on return."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("callscope.tests.access")
    start = datetime.now(UTC) - timedelta(minutes=10)
    for i, ms in enumerate(durations_ms):
        start_ns = int((start + timedelta(seconds=i)).timestamp() * 1e9)
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": 100 + i,
            "gen_ai.usage.output_tokens": 20,
        }
        span = tracer.start_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes, start_time=start_ns)
        span.end(end_time=start_ns + int(ms * 1e6))
    spans = memory.get_finished_spans()
    exporter = OTLPSpanExporter(
        endpoint=f"{base_url}/v1/traces", headers={"x-api-key": INGEST_KEYS[project]}, timeout=30
    )
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
        provider.shutdown()
    return [
        Sent(project, service, f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}", model, ms)
        for s, ms in zip(spans, durations_ms, strict=True)
    ]


def sign_in(api_url: str, name: str, password: str = PASSWORD) -> str:
    answer = httpx.post(f"{api_url}/auth/login", json={"name": name, "password": password}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]
