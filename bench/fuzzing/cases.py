"""Fuzz cases: one request to send (transport, signal, headers, body) and what a right answer is.

`make_case(seeds, rng, transport)` draws a generator by weight and builds its case from real seed bodies:
the recorded protobuf captures and the OTLP/JSON convention fixtures (tests/fixtures, read as data).
A case is reproduced from its Random's seed (see `case_rng`).
"""

from __future__ import annotations

import base64
import copy
import json
import random
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.fuzzing import mutators as mu
from bench.fuzzing import wire
from collector.decode import REQUEST_TYPES, Signal

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FIXTURES = ROOT / "tests" / "fixtures"
OVERLOAD = frozenset({429, 503})  # always acceptable (the answer to retry later), but never the catch-all error
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId"})


@dataclass
class Case:
    index: int
    generator: str
    transport: str  # "http" or "grpc"
    signal: Signal
    body: bytes
    content_type: str | None = PROTOBUF
    content_encoding: str | None = None
    grpc_gzip: bool = False  # gRPC: compress the message (the grpc library's own gzip)
    # HTTP statuses that are right for this body (429/503 are always acceptable); gRPC maps them to codes.
    expected: frozenset[int] = frozenset({200, 400})
    good_ids: tuple[tuple[bytes, bytes], ...] = ()  # (trace_id, span_id) of spans that must be stored as calls
    rejected: int | None = None  # the rejected span count partial success must report

    @property
    def path(self) -> str:
        return f"/v1/{self.signal.value}"


@dataclass(frozen=True)
class Seeds:
    """Real request bodies to mutate, per signal: protobuf bytes and OTLP/JSON trees."""

    protobuf: dict[Signal, tuple[bytes, ...]]
    json: dict[Signal, tuple[dict[str, Any], ...]]
    max_body: int = 20 * 1024 * 1024
    all_protobuf: tuple[bytes, ...] = field(default=())

    @classmethod
    def load(cls, fixtures: Path = DEFAULT_FIXTURES, max_body: int = 20 * 1024 * 1024) -> Seeds:
        pb: dict[Signal, list[bytes]] = {s: [] for s in Signal}
        for path in sorted((fixtures / "otlp_captures").glob("*/*-protobuf.bin")):
            signal = Signal(path.name.split("-")[1])
            pb[signal].append(path.read_bytes())
        pb[Signal.LOGS].append(_log_seed().SerializeToString())
        trees: dict[Signal, list[dict[str, Any]]] = {s: [] for s in Signal}
        for path in sorted((fixtures / "conventions").glob("*.json")):
            if not path.name.endswith(".expected.json"):
                trees[Signal.TRACES].append(orjson.loads(path.read_bytes()))
        for signal, bodies in pb.items():
            for body in bodies:
                message = REQUEST_TYPES[signal].FromString(body)
                trees[signal].append(to_otlp_json(message))
        missing = [s.value for s in Signal if not pb[s] or not trees[s]]
        if missing:
            raise FileNotFoundError(f"no seed bodies for {missing} under {fixtures}")
        return cls(
            protobuf={s: tuple(b) for s, b in pb.items()},
            json={s: tuple(t) for s, t in trees.items()},
            max_body=max_body,
            all_protobuf=tuple(b for bodies in pb.values() for b in bodies),
        )


def _log_seed() -> ExportLogsServiceRequest:
    """GenAI content events as the OTel GenAI instrumentations log them (no log capture is recorded)."""
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.add(key="service.name").value.string_value = "chat-app"
    sl = rl.scope_logs.add()
    sl.scope.name = "opentelemetry.instrumentation.openai_v2"
    for name, role, text in (("gen_ai.user.message", "user", "hi"), ("gen_ai.choice", "assistant", "hello")):
        record = sl.log_records.add(
            time_unix_nano=1_760_000_000_000_000_000,
            trace_id=bytes(range(1, 17)),
            span_id=bytes(range(1, 9)),
            event_name=name,
        )
        record.attributes.add(key="gen_ai.provider.name").value.string_value = "openai"
        body = record.body.kvlist_value.values
        if name == "gen_ai.choice":
            body.add(key="index").value.int_value = 0
            message = body.add(key="message").value.kvlist_value.values
            message.add(key="role").value.string_value = role
            message.add(key="content").value.string_value = text
        else:
            body.add(key="content").value.string_value = text
    return request


def to_otlp_json(message: Message) -> dict[str, Any]:
    """A protobuf request as OTLP/JSON: protobuf's JSON mapping with ids in hex, as OTLP/JSON specifies."""
    tree = json_format.MessageToDict(message)
    stack: list[Any] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _ID_KEYS and isinstance(value, str):
                    node[key] = _b64_to_hex(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return tree


def _b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def dumps(tree: Any) -> bytes:
    """JSON text of a mutated tree: the standard library writes what orjson refuses (integers past 64 bits,
    NaN literals); deep nesting is spliced in as text."""
    return mu.splice_deep_values(json.dumps(tree, separators=(",", ":")).encode())


# -- generators -------------------------------------------------------------------------------------


def _signal(rng: random.Random) -> Signal:
    r = rng.random()
    return Signal.TRACES if r < 0.7 else Signal.METRICS if r < 0.85 else Signal.LOGS


def _maybe_other_path(signal: Signal, rng: random.Random) -> Signal:
    """Now and then a body of one signal is posted to another signal's endpoint."""
    return rng.choice(list(Signal)) if rng.random() < 0.05 else signal


def gen_pb_bytes(seeds: Seeds, rng: random.Random, case: Case) -> None:
    signal = _signal(rng)
    case.body = mu.mutate_bytes(rng.choice(seeds.protobuf[signal]), rng, seeds.all_protobuf)
    case.signal = _maybe_other_path(signal, rng)


def gen_pb_wire(seeds: Seeds, rng: random.Random, case: Case) -> None:
    signal = _signal(rng)
    body = rng.choice(seeds.protobuf[signal])
    r = rng.random()
    if r < 0.1 and signal is Signal.TRACES:
        body = _deep_attribute(body, rng)
    elif r < 0.2:
        body = wire.lying_length(body, rng)
    else:
        for _ in range(rng.choice((1, 1, 2, 3))):
            body = wire.mutate(body, rng)
    if len(body) > seeds.max_body // 4:  # repeated fields can grow: keep bodies well under the limit
        body = body[: seeds.max_body // 4]
    case.body = body
    case.signal = _maybe_other_path(signal, rng)


def _deep_attribute(body: bytes, rng: random.Random) -> bytes:
    """A span attribute nested deeper (or not) than protobuf's recursion limit, spliced in at the wire level
    (the protobuf API cannot build what its parser would refuse)."""
    request = ExportTraceServiceRequest.FromString(body)
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    if not spans:
        return body
    span = rng.choice(spans)
    depth = rng.choice((10, 40, 45, 60, 100, 1000))
    attribute = wire.encode_field(wire.Field(1, wire.LEN, b"deep")) + wire.encode_field(
        wire.Field(2, wire.LEN, wire.nested_any_value(depth))
    )
    raw_span = span.SerializeToString() + wire.encode_field(wire.Field(9, wire.LEN, attribute))  # Span.attributes
    span.Clear()
    span.name = "\x00placeholder\x00"
    return wire.replace_payload(request.SerializeToString(), span.SerializeToString(), raw_span)


def gen_pb_message(seeds: Seeds, rng: random.Random, case: Case) -> None:
    """A decoded seed with edge values in it, re-encoded: still a valid request, so the answer must be 200
    (partial success naming the spans it cannot store)."""
    signal = _signal(rng)
    message = REQUEST_TYPES[signal].FromString(rng.choice(seeds.protobuf[signal]))
    {Signal.TRACES: mu.fuzz_traces, Signal.METRICS: mu.fuzz_metrics, Signal.LOGS: mu.fuzz_logs}[signal](message, rng)
    case.signal = signal
    case.expected = frozenset({200})
    if case.transport == "http" and rng.random() < 0.35:
        case.content_type = JSON
        case.body = orjson.dumps(to_otlp_json(message))
    else:
        case.body = message.SerializeToString()


def gen_json_tree(seeds: Seeds, rng: random.Random, case: Case) -> None:
    signal = _signal(rng)
    tree = copy.deepcopy(rng.choice(seeds.json[signal]))
    case.body = dumps(mu.mutate_json_tree(tree, rng))
    case.content_type = JSON
    case.signal = _maybe_other_path(signal, rng)


def gen_json_wrong_type(seeds: Seeds, rng: random.Random, case: Case) -> None:
    """A value of a wrong type at a uniformly drawn depth of a seed tree (every level equally often)."""
    signal = _signal(rng)
    tree = rng.choice(seeds.json[signal])
    paths = mu.json_paths(tree)
    depth = rng.randint(1, max(len(p) for p in paths))
    at_depth = [p for p in paths if len(p) == depth]
    case.body = dumps(mu.wrong_type_at(tree, rng.choice(at_depth), rng.choice(mu._WRONG_TYPES)))
    case.content_type = JSON
    case.signal = signal


def gen_json_text(seeds: Seeds, rng: random.Random, case: Case) -> None:
    signal = _signal(rng)
    case.body = mu.mutate_json_text(orjson.dumps(rng.choice(seeds.json[signal])), rng)
    case.content_type = JSON
    case.signal = signal


def gen_compression(seeds: Seeds, rng: random.Random, case: Case) -> None:
    signal = _signal(rng)
    if rng.random() < 0.5:
        body, case.content_type = rng.choice(seeds.protobuf[signal]), PROTOBUF
    else:
        body, case.content_type = orjson.dumps(rng.choice(seeds.json[signal])), JSON
    case.body, case.content_encoding, case.expected = mu.bad_compression(body, rng)
    case.signal = signal


_CONTENT_TYPES: tuple[tuple[str | None, str | None, frozenset[int]], ...] = (
    # (Content-Type sent, which seed it carries (None: either), the right statuses)
    (None, None, frozenset({415})),
    ("", None, frozenset({415})),
    ("text/plain", None, frozenset({415})),
    ("application/xml", None, frozenset({415})),
    ("application/x-www-form-urlencoded", None, frozenset({415})),
    ("multipart/form-data; boundary=x", None, frozenset({415})),
    ("application/grpc", PROTOBUF, frozenset({415})),
    ("application/json-seq", JSON, frozenset({415})),
    ("application/x-protobuf; charset=utf-8", PROTOBUF, frozenset({200})),
    ("APPLICATION/X-PROTOBUF", PROTOBUF, frozenset({200})),
    ("application/protobuf", PROTOBUF, frozenset({200})),
    ("application/json; charset=utf-8", JSON, frozenset({200})),
    ("application/json", PROTOBUF, frozenset({400})),  # a protobuf body labelled JSON
    ("application/x-protobuf", JSON, frozenset({200, 400})),  # JSON text read as protobuf: 400, or junk fields
)


def gen_content_type(seeds: Seeds, rng: random.Random, case: Case) -> None:
    signal = _signal(rng)
    content_type, carries, expected = rng.choice(_CONTENT_TYPES)
    carries = carries or rng.choice((PROTOBUF, JSON))
    case.body = (
        rng.choice(seeds.protobuf[signal]) if carries == PROTOBUF else orjson.dumps(rng.choice(seeds.json[signal]))
    )
    case.content_type, case.expected, case.signal = content_type, expected, signal


def gen_partial(seeds: Seeds, rng: random.Random, case: Case) -> None:
    """A batch of storable model calls (with edge values in everything but their ids and start) mixed with
    spans that must be rejected (bad ids, no start): 200, partial success naming exactly the bad ones, and
    every good span stored."""
    request, good, bad = partial_batch(rng)
    case.signal = Signal.TRACES
    case.expected = frozenset({200})
    case.good_ids, case.rejected = tuple(good), bad
    if case.transport == "http" and rng.random() < 0.4:
        case.content_type = JSON
        case.body = orjson.dumps(to_otlp_json(request))
    else:
        case.body = request.SerializeToString()
    if case.transport == "http" and rng.random() < 0.3:
        case.content_encoding = rng.choice(mu.CODINGS)
        # gzip members and zstd frames may be concatenated: every one must be read
        pieces = rng.choice((2, 3)) if case.content_encoding != "deflate" and rng.random() < 0.3 else 1
        case.body = mu.compress(case.body, case.content_encoding, pieces)
    elif case.transport == "grpc":
        case.grpc_gzip = rng.random() < 0.3


_MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet-20241022", "gemini-1.5-pro", "no-such-model", "💥", "m" * 300)


def partial_batch(rng: random.Random) -> tuple[ExportTraceServiceRequest, list[tuple[bytes, bytes]], int]:
    """(request, (trace_id, span_id) of its good calls, how many spans it has that must be rejected)."""
    request = ExportTraceServiceRequest()
    scopes = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        rs = request.resource_spans.add()
        for _ in range(rng.choice((0, 1, 3))):
            rs.resource.attributes.append(mu.interesting_attribute(rng, keep_call=True))
        for _ in range(rng.choice((1, 2))):
            ss = rs.scope_spans.add()
            ss.scope.name = rng.choice(("opentelemetry.instrumentation.openai_v2", "", "x\x00", "openllmetry"))
            scopes.append(ss)
    good: list[tuple[bytes, bytes]] = []
    bad = 0
    for _ in range(rng.randint(1, 12)):
        span = rng.choice(scopes).spans.add()
        span.trace_id, span.span_id = rng.randbytes(16), rng.randbytes(8)
        while span.trace_id == bytes(16) or span.span_id == bytes(8):  # vanishingly rare, but then valid
            span.trace_id, span.span_id = rng.randbytes(16), rng.randbytes(8)
        span.name = "chat"
        span.kind = 3
        span.start_time_unix_nano = 1_760_000_000_000_000_000 + rng.randrange(10**15)
        span.end_time_unix_nano = span.start_time_unix_nano + rng.randrange(10**10)
        span.attributes.add(key="gen_ai.request.model").value.string_value = rng.choice(_MODELS)
        if rng.random() < 0.7:
            usage = span.attributes
            usage.add(key="gen_ai.usage.input_tokens").value.int_value = rng.randrange(10_000)
            usage.add(key="gen_ai.usage.output_tokens").value.int_value = rng.randrange(1_000)
        if rng.random() < 0.8:
            mu.fuzz_span(span, rng, keep_call=True)
        if rng.random() < 0.4:
            bad += 1
            which = rng.randrange(3)
            if which == 0:
                span.trace_id = mu.wrong_length_id(rng, 16)
            elif which == 1:
                span.span_id = mu.wrong_length_id(rng, 8)
            else:
                span.start_time_unix_nano = 0
        else:
            good.append((span.trace_id, span.span_id))
    return request, good, bad


@cache
def _oversized(size: int) -> bytes:
    return b"\x0a" + b"\xff" * size


@cache
def _bomb(size: int) -> bytes:
    return mu.compress(b"\x00" * size, "gzip")


def gen_oversize(seeds: Seeds, rng: random.Random, case: Case) -> None:
    """A body over the limit, as sent or once inflated: 413 (gRPC: RESOURCE_EXHAUSTED)."""
    case.signal = _signal(rng)
    case.expected = frozenset({413})
    if case.transport == "http" and rng.random() < 0.5:
        case.body, case.content_encoding = _bomb(seeds.max_body + 1), "gzip"
    else:
        case.body = _oversized(seeds.max_body + 1)


HTTP_GENERATORS = (
    (gen_pb_bytes, 22),
    (gen_pb_wire, 18),
    (gen_pb_message, 14),
    (gen_json_tree, 9),
    (gen_json_wrong_type, 6),
    (gen_json_text, 6),
    (gen_partial, 12),
    (gen_compression, 8),
    (gen_content_type, 5),
    (gen_oversize, 0.02),
)
GRPC_GENERATORS = (
    (gen_pb_bytes, 30),
    (gen_pb_wire, 25),
    (gen_pb_message, 20),
    (gen_partial, 25),
    (gen_oversize, 0.05),
)


def case_rng(seed: int, transport: str, index: int) -> random.Random:
    """The Random that builds case `index` of `transport` in a run seeded `seed`."""
    return random.Random(f"{seed}:{transport}:{index}")


def make_case(seeds: Seeds, rng: random.Random, transport: str, index: int = 0) -> Case:
    table = HTTP_GENERATORS if transport == "http" else GRPC_GENERATORS
    generator = rng.choices([g for g, _ in table], weights=[w for _, w in table])[0]
    case = Case(index, generator.__name__.removeprefix("gen_"), transport, Signal.TRACES, b"")
    generator(seeds, rng, case)
    return case
