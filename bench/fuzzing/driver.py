"""Send fuzz cases to a running `callscope serve` over OTLP/HTTP and OTLP/gRPC and judge every answer.

A right answer is one of 200/400/413/415/429/503 (gRPC: OK, INVALID_ARGUMENT, RESOURCE_EXHAUSTED,
UNAVAILABLE) that the case allows, with its reason in the body (google.rpc.Status / gRPC details), and for a
partial batch partial_success naming exactly its bad spans. The receivers answer an unexpected exception with
503/UNAVAILABLE "... could not commit ..." so a client retries: the fuzzer counts that as an internal error,
not as overload. The server's RSS (and its workers') is sampled throughout.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import grpc
import httpx
import orjson
import psutil
import pyarrow as pa
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2

from bench.fuzzing.cases import OVERLOAD, Case, Seeds, case_rng, make_case
from collector.decode import RESPONSE_TYPES, Signal

HTTP_STATUSES = frozenset({200, 400, 413, 415, 429, 503})
GRPC_CODES = {
    200: grpc.StatusCode.OK,
    400: grpc.StatusCode.INVALID_ARGUMENT,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
}
GRPC_ALLOWED = frozenset(GRPC_CODES.values())
_RPC_CODE_FOR_HTTP = {
    400: code_pb2.INVALID_ARGUMENT,
    413: code_pb2.INVALID_ARGUMENT,
    415: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}
INTERNAL_MARKER = "could not commit"  # the receivers' answer to an unexpected exception (see module docstring)
_SERVICES = {
    Signal.TRACES: "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    Signal.METRICS: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    Signal.LOGS: "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
MAX_RETRIES = 30
MAX_INTERNAL_RETRIES = 3


@dataclass
class Violation:
    transport: str
    index: int
    generator: str
    message: str


@dataclass
class Report:
    http_sent: int = 0
    grpc_sent: int = 0
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)  # "http 400", "grpc INVALID_ARGUMENT"
    by_generator: Counter[tuple[str, str]] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    server_errors: int = 0  # HTTP 5xx other than 503, gRPC codes outside the allowed ones
    internal_errors: int = 0  # 503/UNAVAILABLE "could not commit": an exception inside the server
    transport_errors: int = 0  # no answer at all (connection reset, timeout)
    crashed: bool = False
    fuzzer_errors: list[str] = field(default_factory=list)  # cases the fuzzer could not build (its own bugs)
    peak_rss_mb: float = 0.0  # the server process
    peak_rss_total_mb: float = 0.0  # the server and its ingest workers
    start_rss_mb: float = 0.0
    good_expected: set[tuple[bytes, bytes]] = field(default_factory=set)  # acked partial-batch calls
    good_unacked: int = 0  # partial-batch calls never acknowledged (gave up after retries): not expected
    partial_batches: int = 0
    retries: int = 0

    @property
    def sent(self) -> int:
        return self.http_sent + self.grpc_sent


class _Run:
    """Shared state of one run: the report (under a lock), where to save failing bodies, the stop flag."""

    def __init__(self, seeds: Seeds, seed: int, failures_dir: Path | None) -> None:
        self.seeds = seeds
        self.seed = seed
        self.report = Report()
        self.lock = threading.Lock()
        self.failures_dir = failures_dir
        self.stop = threading.Event()
        self.saved = 0

    def record(self, case: Case, label: str, violation: str | None, internal: bool = False) -> None:
        with self.lock:
            r = self.report
            r.statuses[f"{case.transport} {label}"] += 1
            r.by_generator[(case.generator, f"{case.transport} {label}")] += 1
            if internal:
                r.internal_errors += 1
            if violation is not None:
                r.violations.append(Violation(case.transport, case.index, case.generator, violation))
                self._save(case, violation)

    def _save(self, case: Case, violation: str) -> None:
        if self.failures_dir is None or self.saved >= 200:
            return
        self.saved += 1
        self.failures_dir.mkdir(parents=True, exist_ok=True)
        stem = self.failures_dir / f"{case.transport}-{case.index}-{case.generator}"
        stem.with_suffix(".bin").write_bytes(case.body)
        meta = {
            "seed": self.seed,
            "index": case.index,
            "transport": case.transport,
            "generator": case.generator,
            "path": case.path,
            "content_type": case.content_type,
            "content_encoding": case.content_encoding,
            "violation": violation,
        }
        stem.with_suffix(".json").write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))


# -- judging answers ------------------------------------------------------------------------------------


def judge_http(case: Case, status: int, headers: httpx.Headers, body: bytes) -> tuple[str | None, bool]:
    """(what is wrong with this answer or None, whether it is the catch-all internal error)."""
    if status not in HTTP_STATUSES:
        return f"HTTP {status} is not an OTLP answer: {body[:200]!r}", False
    media = headers.get("content-type", "").split(";")[0].strip()
    if status == 200:
        response = RESPONSE_TYPES[case.signal]()
        try:
            if media == "application/json":
                from google.protobuf import json_format

                json_format.ParseDict(orjson.loads(body), response)
            else:
                response.ParseFromString(body)
        except (DecodeError, ValueError) as exc:
            return f"200 with an unreadable Export response ({exc})", False
        if case.rejected is not None:
            partial = response.partial_success
            if partial.rejected_spans != case.rejected:
                return f"partial success rejected {partial.rejected_spans} spans, expected {case.rejected}", False
            if case.rejected and not partial.error_message:
                return "partial success without an error message", False
        return (None if 200 in case.expected else f"200, expected {sorted(case.expected)}"), False
    try:
        if media == "application/json":
            tree = orjson.loads(body)
            code, message = tree.get("code"), tree.get("message")
        else:
            st = status_pb2.Status.FromString(body)
            code, message = st.code, st.message
    except (DecodeError, ValueError, AttributeError) as exc:
        return f"{status} without a readable google.rpc.Status ({exc}): {body[:200]!r}", False
    if not message:
        return f"{status} without a reason", False
    if INTERNAL_MARKER in message:
        return f"internal error: {status} {message}", True
    if code != _RPC_CODE_FOR_HTTP[status]:
        return f"{status} with google.rpc code {code}", False
    if status in OVERLOAD and not headers.get("retry-after"):
        return f"{status} without Retry-After", False
    if status not in case.expected | OVERLOAD:
        return f"{status} ({message[:200]}), expected {sorted(case.expected)}", False
    return None, False


def judge_grpc(case: Case, code: grpc.StatusCode, details: str, response: bytes | None) -> tuple[str | None, bool]:
    if code not in GRPC_ALLOWED:
        return f"gRPC {code.name} is not an OTLP answer: {details[:200]}", False
    if code is grpc.StatusCode.OK:
        parsed = RESPONSE_TYPES[case.signal]()
        try:
            parsed.ParseFromString(response or b"")
        except DecodeError as exc:
            return f"OK with an unreadable Export response ({exc})", False
        if case.rejected is not None and parsed.partial_success.rejected_spans != case.rejected:
            return f"partial success rejected {parsed.partial_success.rejected_spans}, expected {case.rejected}", False
    elif not details:
        return f"gRPC {code.name} without details", False
    elif INTERNAL_MARKER in details:
        return f"internal error: {code.name} {details}", True
    expected = {GRPC_CODES[s] for s in case.expected} | {grpc.StatusCode.UNAVAILABLE}
    if code not in expected:
        return f"gRPC {code.name} ({details[:200]}), expected {sorted(c.name for c in expected)}", False
    return None, False


# -- senders ---------------------------------------------------------------------------------------------


def _retry_after(headers: httpx.Headers) -> float:
    try:
        return min(2.0, float(headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def _send_http(run: _Run, client: httpx.Client, case: Case) -> None:
    headers = {}
    if case.content_type is not None:
        headers["content-type"] = case.content_type
    if case.content_encoding is not None:
        headers["content-encoding"] = case.content_encoding
    for attempt in range(MAX_RETRIES):
        try:
            response = client.post(case.path, content=case.body, headers=headers)
        except httpx.HTTPError as exc:
            if case.expected == frozenset({413}) and isinstance(exc, httpx.WriteError | httpx.RemoteProtocolError):
                # The server answered 413 from Content-Length and closed before the whole body was written.
                run.record(case, "413 (closed early)", None)
                return
            with run.lock:
                run.report.transport_errors += 1
            run.record(case, "no answer", f"no answer: {exc!r}")
            return
        violation, internal = judge_http(case, response.status_code, response.headers, response.content)
        if response.status_code >= 500 and response.status_code != 503:
            with run.lock:
                run.report.server_errors += 1
        run.record(case, str(response.status_code), violation, internal)
        if _retry(case, response.status_code in OVERLOAD, internal, attempt):
            with run.lock:
                run.report.retries += 1
            time.sleep(_retry_after(response.headers))
            continue
        _account_partial(run, case, response.status_code == 200)
        return
    _account_partial(run, case, False)


def _send_grpc(run: _Run, channel: grpc.Channel, case: Case) -> None:
    stub = channel.unary_unary(_SERVICES[case.signal], request_serializer=None, response_deserializer=None)
    compression = grpc.Compression.Gzip if case.grpc_gzip else None
    for attempt in range(MAX_RETRIES):
        try:
            response = stub(case.body, timeout=60, compression=compression)
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as exc:
            response, code, details = None, exc.code(), exc.details() or ""
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            with run.lock:
                run.report.transport_errors += 1
        violation, internal = judge_grpc(case, code, details, response)
        if code not in GRPC_ALLOWED:
            with run.lock:
                run.report.server_errors += 1
        run.record(case, code.name, violation, internal)
        if _retry(case, code is grpc.StatusCode.UNAVAILABLE, internal, attempt):
            with run.lock:
                run.report.retries += 1
            time.sleep(0.5)
            continue
        _account_partial(run, case, code is grpc.StatusCode.OK)
        return
    _account_partial(run, case, False)


def _retry(case: Case, overloaded: bool, internal: bool, attempt: int) -> bool:
    """Whether to re-send a partial batch, as an exporter would: after overload, a few times after an internal
    error (which a retry rarely cures; it is a violation either way)."""
    if not case.good_ids or not overloaded:
        return False
    return attempt + 1 < (MAX_INTERNAL_RETRIES if internal else MAX_RETRIES)


def _account_partial(run: _Run, case: Case, acked: bool) -> None:
    if case.rejected is None:
        return
    with run.lock:
        run.report.partial_batches += 1
        if acked:
            run.report.good_expected.update(case.good_ids)
        else:
            run.report.good_unacked += len(case.good_ids)


def _worker(run: _Run, transport: str, indexes: _Counter, make_sender: Callable[[], Callable[[Case], None]]) -> None:
    send = make_sender()
    while not run.stop.is_set():
        index = indexes.next()
        if index is None:
            return
        try:
            case = make_case(run.seeds, case_rng(run.seed, transport, index), transport, index)
        except Exception as exc:  # a bug of the fuzzer itself: reported, and the run goes on
            with run.lock:
                run.report.fuzzer_errors.append(f"{transport} #{index}: {exc!r}")
            continue
        send(case)
        with run.lock:
            if transport == "http":
                run.report.http_sent += 1
            else:
                run.report.grpc_sent += 1


class _Counter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.value = 0
        self.lock = threading.Lock()

    def next(self) -> int | None:
        with self.lock:
            if self.value >= self.limit:
                return None
            self.value += 1
            return self.value - 1


# -- the server's memory ---------------------------------------------------------------------------------


class RssSampler(threading.Thread):
    """Peak RSS of the server process and of the server with its children, sampled every `interval` s."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(name="fuzz-rss", daemon=True)
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = self.peak_total = self.first = 0
        self.alive = True
        self._stop_event = threading.Event()

    def sample(self) -> None:
        try:
            rss = self.process.memory_info().rss
            total = rss
            for child in self.process.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.NoSuchProcess:
            self.alive = False
            return
        except psutil.Error:
            return
        self.first = self.first or rss
        self.peak = max(self.peak, rss)
        self.peak_total = max(self.peak_total, total)

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.sample()


# -- a run ----------------------------------------------------------------------------------------------


def run_fuzz(
    *,
    http_url: str,
    grpc_target: str,
    server_pid: int,
    seeds: Seeds,
    http_count: int,
    grpc_count: int,
    seed: int = 1,
    http_clients: int = 4,
    grpc_clients: int = 2,
    failures_dir: Path | None = None,
    progress: Callable[[Report], None] | None = None,
    progress_every: float = 5.0,
    server_alive: Callable[[], bool] | None = None,
) -> Report:
    """Send `http_count` HTTP and `grpc_count` gRPC fuzz cases (concurrently) and judge every answer."""
    run = _Run(seeds, seed, failures_dir)
    sampler = RssSampler(server_pid)
    sampler.sample()
    sampler.start()
    http_indexes, grpc_indexes = _Counter(http_count), _Counter(grpc_count)
    clients: list[httpx.Client] = []
    channels: list[grpc.Channel] = []

    def http_sender() -> Callable[[Case], None]:
        client = httpx.Client(base_url=http_url, timeout=60)
        clients.append(client)
        return lambda case: _send_http(run, client, case)

    def grpc_sender() -> Callable[[Case], None]:
        channel = grpc.insecure_channel(grpc_target, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)])
        channels.append(channel)
        return lambda case: _send_grpc(run, channel, case)

    threads = [
        threading.Thread(target=_worker, args=(run, "http", http_indexes, http_sender), daemon=True)
        for _ in range(http_clients if http_count else 0)
    ] + [
        threading.Thread(target=_worker, args=(run, "grpc", grpc_indexes, grpc_sender), daemon=True)
        for _ in range(grpc_clients if grpc_count else 0)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    last = started
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(0.2)
        if not sampler.alive or (server_alive is not None and not server_alive()):
            run.report.crashed = True
            run.stop.set()
        if progress is not None and time.monotonic() - last >= progress_every:
            last = time.monotonic()
            _fill_memory(run.report, sampler, started)
            progress(run.report)
    sampler.stop()
    if not sampler.alive:
        run.report.crashed = True
    for client in clients:
        client.close()
    for channel in channels:
        channel.close()
    _fill_memory(run.report, sampler, started)
    return run.report


def _fill_memory(report: Report, sampler: RssSampler, started: float) -> None:
    report.seconds = time.monotonic() - started
    report.start_rss_mb = sampler.first / 2**20
    report.peak_rss_mb = sampler.peak / 2**20
    report.peak_rss_total_mb = sampler.peak_total / 2**20


def stored_calls(db_path: Path, ids: set[tuple[bytes, bytes]]) -> set[tuple[bytes, bytes]]:
    """Which of `ids` are rows of `calls` in a stopped store."""
    if not ids:
        return set()
    wanted = pa.table({"trace_id": [t for t, _ in ids], "span_id": [s for _, s in ids]})
    db = duckdb.connect(str(db_path), read_only=True)
    try:
        db.register("wanted", wanted)
        rows = db.execute("SELECT c.trace_id, c.span_id FROM calls c JOIN wanted USING (trace_id, span_id)").fetchall()
    finally:
        db.close()
    return {(bytes(t), bytes(s)) for t, s in rows}


def log_errors(log_text: str) -> list[str]:
    """The ERROR lines and tracebacks of a server log (each the first line of its block)."""
    return [line for line in log_text.splitlines() if " ERROR " in line or line.startswith("Traceback")]


def format_report(report: Report, stored: int | None = None) -> str:
    lines = [
        f"bodies: {report.sent} ({report.http_sent} HTTP, {report.grpc_sent} gRPC) in {report.seconds:.1f} s"
        f" = {report.sent / max(report.seconds, 1e-9):.0f} bodies/s",
        "answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(report.statuses.items())),
        f"server errors (500 / codes outside OTLP): {report.server_errors}; internal errors: {report.internal_errors};"
        f" no answer: {report.transport_errors}; crashed: {report.crashed}",
        f"violations: {len(report.violations)}; cases the fuzzer failed to build: {len(report.fuzzer_errors)}",
        f"server RSS: start {report.start_rss_mb:.0f} MB, peak {report.peak_rss_mb:.0f} MB"
        f" (with ingest workers: {report.peak_rss_total_mb:.0f} MB)",
        f"partial batches: {report.partial_batches} ({report.retries} retries after 429/503);"
        f" good spans acked: {len(report.good_expected)}, never acked: {report.good_unacked}",
    ]
    if stored is not None:
        lines.append(f"good spans stored as calls: {stored}/{len(report.good_expected)}")
    lines.extend(f"  fuzzer error {e}" for e in report.fuzzer_errors[:5])
    for v in report.violations[:20]:
        lines.append(f"  {v.transport} #{v.index} [{v.generator}]: {v.message[:300]}")
    return "\n".join(lines)
