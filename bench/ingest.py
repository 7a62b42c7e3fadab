"""Ingest benchmark: sustained OTLP/HTTP spans per second into a real `callscope serve`, acknowledged after commit.

Method
------
1. Start `python -m callscope.cli serve` as a subprocess on free loopback ports with a fresh temporary data
   dir and wait until GET /healthz answers 200.
2. Start N client *processes* (multiprocessing, so client CPU never competes for the server's GIL). Before
   the clock starts each client builds a pool of ExportTraceServiceRequest bodies shaped like the ones the
   OTel Python SDK sends for GenAI calls: one resource (service.name, telemetry.sdk.*,
   deployment.environment.name), one scope, N spans of kind CLIENT with ~15 gen_ai.* / server.* / user.id /
   session.id attributes. The bodies are serialized once; for every request the client writes fresh random
   trace ids (16 bytes) and span ids (8 bytes) into the serialized bytes at the recorded offsets, so every
   span of the run is distinct and stored (the primary key is trace_id + span_id).
3. Each client POSTs application/x-protobuf bodies to /v1/traces over one keep-alive connection, one
   request at a time. The server answers 200 only after the rows are committed, so only spans of 200
   answers are counted. A 429/503 is honoured: the client sleeps Retry-After and re-sends the same body;
   those answers are counted.
4. After a warm-up the measurement window runs for --seconds. Throughput is acked spans (and requests)
   completed inside the window divided by its length; latencies are those of the 200 answers in the window.
   Server CPU is that of the server process plus its ingest worker processes; peak RSS (VmHWM) is the
   server process's.
5. The server is stopped with SIGTERM (it commits what is queued and exits 0). The DuckDB file is then opened
   read-only: `count(*) FROM calls` must equal every span acked during the whole run (warm-up included),
   and the store size (callscope.duckdb + .wal) divided by that count gives the bytes stored per call.

Run: `.venv/bin/python bench/ingest.py [--clients 4] [--seconds 30] [--spans-per-request 512] [--keep]`
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Event
from pathlib import Path

import duckdb
import psutil
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

ROOT = Path(__file__).resolve().parent.parent
TRACES_PATH = "/v1/traces"
HEADERS = {"Content-Type": "application/x-protobuf"}
RETRY_STATUSES = (429, 503)
TRACE_ID_LEN = 16
SPAN_ID_LEN = 8
# (provider, request model, response model, server address)
MODELS: tuple[tuple[str, str, str, str], ...] = (
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "api.openai.com"),
    ("openai", "gpt-4.1", "gpt-4.1-2025-04-14", "api.openai.com"),
    ("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "api.anthropic.com"),
)
FINISH_REASONS = ("stop", "stop", "stop", "length", "tool_calls")


# -- configuration and results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    clients: int
    seconds: float
    warmup: float
    spans_per_request: int
    pool_size: int
    progress_every: float
    keep: bool


@dataclass(frozen=True)
class Schedule:
    """Times on the system-wide monotonic clock, shared by every process."""

    start: float
    measure_from: float
    end: float


@dataclass
class ClientResult:
    """What one client saw. Latencies and retries are those inside the measurement window."""

    acked_spans_total: int = 0
    acked_spans_window: int = 0
    acked_requests_window: int = 0
    latencies_window: list[float] = field(default_factory=list)
    retries: dict[int, int] = field(default_factory=dict)
    retries_window: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StoreFigures:
    calls: int
    spans: int
    size_bytes: int


# -- request bodies --------------------------------------------------------------------------------------


def _kv(key: str, value: str | int | float | bool | list[str]) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    elif isinstance(value, list):
        kv.value.array_value.values.extend(AnyValue(string_value=v) for v in value)
    else:
        kv.value.string_value = value
    return kv


def _genai_attributes(rng: random.Random, model: tuple[str, str, str, str]) -> list[KeyValue]:
    """The 15 attributes the OTel GenAI instrumentations put on a chat span."""
    provider, request_model, response_model, host = model
    input_tokens = rng.randint(50, 8000)
    return [
        _kv("gen_ai.operation.name", "chat"),
        _kv("gen_ai.provider.name", provider),
        _kv("gen_ai.request.model", request_model),
        _kv("gen_ai.response.model", response_model),
        _kv("gen_ai.response.id", f"chatcmpl-{rng.getrandbits(96):024x}"),
        _kv("gen_ai.request.max_tokens", rng.choice((256, 1024, 4096))),
        _kv("gen_ai.request.temperature", rng.choice((0.0, 0.2, 0.7, 1.0))),
        _kv("gen_ai.response.finish_reasons", [rng.choice(FINISH_REASONS)]),
        _kv("gen_ai.usage.input_tokens", input_tokens),
        _kv("gen_ai.usage.output_tokens", rng.randint(1, 2000)),
        _kv("gen_ai.usage.cache_read.input_tokens", rng.choice((0, 0, input_tokens // 2))),
        _kv("server.address", host),
        _kv("server.port", 443),
        _kv("user.id", f"user-{rng.randint(1, 500)}"),
        _kv("session.id", f"session-{rng.randint(1, 5000)}"),
    ]


def _span(rng: random.Random, now_ns: int) -> Span:
    start = now_ns - rng.randint(200_000_000, 20_000_000_000)
    error = rng.random() < 0.01
    model = rng.choice(MODELS)
    span = Span(
        trace_id=rng.randbytes(TRACE_ID_LEN),
        span_id=rng.randbytes(SPAN_ID_LEN),
        name=f"chat {model[1]}",
        kind=Span.SpanKind.SPAN_KIND_CLIENT,
        start_time_unix_nano=start,
        end_time_unix_nano=start + rng.randint(150_000_000, 15_000_000_000),
        flags=0x101,  # sampled, parent-is-remote known (what the SDK sends)
        status=Status(code=Status.STATUS_CODE_ERROR, message="Error code: 429") if error else Status(),
    )
    span.attributes.extend(_genai_attributes(rng, model))
    if error:
        span.attributes.append(_kv("error.type", "RateLimitError"))
    return span


def build_request(rng: random.Random, n_spans: int, client: int) -> ExportTraceServiceRequest:
    """An export request as the OTel Python SDK's OTLP/HTTP exporter builds it."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(
        [
            _kv("service.name", f"bench-app-{client}"),
            _kv("telemetry.sdk.language", "python"),
            _kv("telemetry.sdk.name", "opentelemetry"),
            _kv("telemetry.sdk.version", "1.38.0"),
            _kv("deployment.environment.name", "bench"),
        ]
    )
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.openai_v2"
    ss.scope.version = "2.1b0"
    now_ns = time.time_ns()
    ss.spans.extend(_span(rng, now_ns) for _ in range(n_spans))
    return request


@dataclass(frozen=True)
class BodyTemplate:
    """A serialized request cut at its id fields: body = gap0 + ids0 + gap1 + ids1 + ... + gapN."""

    gaps: tuple[bytes, ...]
    id_lengths: tuple[int, ...]

    def render(self, fresh_ids: bytes) -> bytes:
        parts: list[bytes] = [self.gaps[0]]
        pos = 0
        for length, gap in zip(self.id_lengths, self.gaps[1:], strict=True):
            parts.append(fresh_ids[pos : pos + length])
            parts.append(gap)
            pos += length
        return b"".join(parts)

    @property
    def ids_size(self) -> int:
        return sum(self.id_lengths)


def _unique_offset(body: bytes, needle: bytes) -> int:
    offset = body.find(needle)
    if offset < 0 or body.find(needle, offset + 1) >= 0:
        raise ValueError("an id does not occur exactly once in the serialized body")
    return offset


def make_template(request: ExportTraceServiceRequest) -> BodyTemplate:
    """Serialize once and record where every trace id and span id sits in the bytes."""
    body = request.SerializeToString()
    cuts = sorted(
        (_unique_offset(body, value), len(value))
        for span in request.resource_spans[0].scope_spans[0].spans
        for value in (span.trace_id, span.span_id)
    )
    gaps, prev = [], 0
    for offset, length in cuts:
        gaps.append(body[prev:offset])
        prev = offset + length
    gaps.append(body[prev:])
    return BodyTemplate(tuple(gaps), tuple(length for _, length in cuts))


def build_pool(client: int, size: int, n_spans: int) -> list[BodyTemplate]:
    rng = random.Random(client * 7919 + 1)
    pool: list[BodyTemplate] = []
    while len(pool) < size:
        try:
            pool.append(make_template(build_request(rng, n_spans, client)))
        except ValueError:
            continue  # an id collided with other bytes of the body: draw again
    return pool


# -- the client processes --------------------------------------------------------------------------------


def _post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, float]:
    """One POST; returns (status, Retry-After seconds)."""
    conn.request("POST", TRACES_PATH, body=body, headers=HEADERS)
    response = conn.getresponse()
    response.read()
    retry_after = response.getheader("Retry-After")
    return response.status, float(retry_after) if retry_after else 0.2


def _count_retry(result: ClientResult, status: int, in_window: bool) -> None:
    result.retries[status] = result.retries.get(status, 0) + 1
    if in_window:
        result.retries_window[status] = result.retries_window.get(status, 0) + 1


def _send_until_acked(
    conn: http.client.HTTPConnection, body: bytes, schedule: Schedule, result: ClientResult
) -> tuple[float, float] | None:
    """Send `body` until a 200, honouring Retry-After. Returns (latency of the 200, completion time).

    None when the run ends before the body was accepted: a 429/503 body was not committed, so nothing is lost.
    """
    while True:
        sent = time.monotonic()
        status, retry_after = _post(conn, body)
        done = time.monotonic()
        if status == 200:
            return done - sent, done
        if status not in RETRY_STATUSES:
            raise RuntimeError(f"unexpected HTTP {status} from {TRACES_PATH}")
        _count_retry(result, status, schedule.measure_from <= done <= schedule.end)
        if done + retry_after >= schedule.end:
            return None
        time.sleep(retry_after)


def _record_ack(result: ClientResult, n_spans: int, latency: float, done: float, schedule: Schedule) -> None:
    result.acked_spans_total += n_spans
    if schedule.measure_from <= done <= schedule.end:
        result.acked_spans_window += n_spans
        result.acked_requests_window += 1
        result.latencies_window.append(latency)


def client_main(
    client: int,
    cfg: Config,
    port: int,
    ready: Queue,
    go: Event,
    schedule_values: SynchronizedArray,
    acked: SynchronizedArray,
    results: Queue,
) -> None:
    """One client process: build the pool, wait for the start, send until the end, report."""
    pool = build_pool(client, cfg.pool_size, cfg.spans_per_request)
    ready.put(client)
    go.wait()
    schedule = Schedule(*schedule_values[:])
    result = ClientResult()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while time.monotonic() < schedule.start:
        time.sleep(0.001)
    i = 0
    try:
        while time.monotonic() < schedule.end:
            template = pool[i % len(pool)]
            i += 1
            body = template.render(os.urandom(template.ids_size))
            acked_at = _send_until_acked(conn, body, schedule, result)
            if acked_at is None:
                break  # the run is over
            _record_ack(result, cfg.spans_per_request, *acked_at, schedule)
            with acked.get_lock():
                acked[client] += cfg.spans_per_request
    except (OSError, http.client.HTTPException, RuntimeError) as exc:
        result.errors.append(f"client {client}: {type(exc).__name__}: {exc}")
    finally:
        conn.close()
    results.put(result)


# -- the server ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Server:
    data_dir: Path
    http_port: int
    proc: subprocess.Popen[bytes]

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def start_server(data_dir: Path, timeout: float = 60.0, env: dict[str, str] | None = None) -> Server:
    """Start `callscope serve` and wait for /healthz to answer 200; `env`: extra environment (bench/lake.py)."""
    http_port, grpc_port = free_port(), free_port()
    cmd = [
        sys.executable,
        "-m",
        "callscope.cli",
        "serve",
        "--data-dir",
        str(data_dir),
        "--otlp-http-port",
        str(http_port),
        "--otlp-grpc-port",
        str(grpc_port),
    ]
    with (data_dir / "server.log").open("ab") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    server = Server(data_dir, http_port, proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            if http_get(http_port, "/healthz")[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server did not become healthy within {timeout}s:\n{server.log_tail()}")


def stop_server(server: Server, timeout: float = 120.0) -> int:
    """SIGTERM: the server commits what is queued, checkpoints and exits 0."""
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
        raise


def peak_rss_bytes(pid: int) -> int:
    """VmHWM: the resident set's high-water mark since the process started."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def queue_rows(port: int) -> int | None:
    try:
        status, body = http_get(port, "/healthz")
    except OSError:
        return None
    return json.loads(body).get("queue_rows") if status == 200 else None


# -- the run ---------------------------------------------------------------------------------------------


def start_clients(
    cfg: Config, port: int
) -> tuple[list[mp.Process], Queue, Event, SynchronizedArray, SynchronizedArray, Queue]:
    ctx = mp.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    schedule_values = ctx.Array("d", 3)
    acked = ctx.Array("q", cfg.clients)
    procs = [
        ctx.Process(
            target=client_main,
            args=(i, cfg, port, ready, go, schedule_values, acked, results),
            name=f"bench-client-{i}",
            daemon=True,
        )
        for i in range(cfg.clients)
    ]
    for p in procs:
        p.start()
    return procs, ready, go, schedule_values, acked, results


def release_clients(cfg: Config, ready: Queue, go: Event, schedule_values: SynchronizedArray) -> Schedule:
    """Wait until every client has its pool, then publish the schedule and let them go."""
    for _ in range(cfg.clients):
        ready.get(timeout=600)
    start = time.monotonic() + 0.2
    schedule = Schedule(start, start + cfg.warmup, start + cfg.warmup + cfg.seconds)
    schedule_values[:] = [schedule.start, schedule.measure_from, schedule.end]
    go.set()
    return schedule


def _progress_line(elapsed: float, phase: str, n: int, rate: float, rss: int, queue: int | None) -> str:
    return (
        f"  [{elapsed:5.1f}s {phase:7}] acked {n:>10,} spans  {rate:>9,.0f} spans/s  "
        f"server RSS {rss / 2**20:5.0f} MiB  writer queue {queue} rows"
    )


def watch_progress(
    cfg: Config, schedule: Schedule, server: Server, acked: SynchronizedArray
) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """Print a progress line every few seconds; return the CPU seconds of the server (process, workers) at the
    window's start and end."""
    proc = psutil.Process(server.proc.pid)
    cpu_from = cpu_to = None
    last_t, last_n = schedule.start, 0
    while cpu_to is None:
        time.sleep(0.1)
        now = time.monotonic()
        if server.proc.poll() is not None:
            raise RuntimeError(f"server died with {server.proc.returncode}:\n{server.log_tail()}")
        if cpu_from is None and now >= schedule.measure_from:
            cpu_from = _cpu_seconds(proc)
        if now >= schedule.end:
            cpu_to = _cpu_seconds(proc)
        if now - last_t >= cfg.progress_every:
            n = sum(acked[:])
            phase = "warm-up" if now < schedule.measure_from else "measure"
            rss = proc.memory_info().rss
            print(
                _progress_line(
                    now - schedule.start, phase, n, (n - last_n) / (now - last_t), rss, queue_rows(server.http_port)
                ),
                flush=True,
            )
            last_t, last_n = now, n
    return cpu_from, cpu_to


def _cpu_seconds(proc: psutil.Process) -> tuple[float, float]:
    """(CPU seconds of the server process, of its worker processes)."""
    times = proc.cpu_times()
    workers = 0.0
    for child in proc.children(recursive=True):
        try:
            t = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        workers += t.user + t.system
    return times.user + times.system, workers


def collect_results(procs: list[mp.Process], results: Queue, timeout: float = 180.0) -> list[ClientResult]:
    out = [results.get(timeout=timeout) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    return out


def store_figures(data_dir: Path) -> StoreFigures:
    """Open the stopped store read-only and measure it."""
    db_path = data_dir / "callscope.duckdb"
    size = sum(p.stat().st_size for p in (db_path, data_dir / "callscope.duckdb.wal") if p.exists())
    db = duckdb.connect(str(db_path), read_only=True)
    try:
        calls = db.execute("SELECT count(*) FROM calls").fetchone()[0]
        spans = db.execute("SELECT count(*) FROM spans").fetchone()[0]
    finally:
        db.close()
    return StoreFigures(calls, spans, size)


def writer_figures(port: int) -> dict[str, float]:
    """The writer's counters from the server's /metrics (commits, seconds committing, rows committed)."""
    try:
        status, body = http_get(port, "/metrics")
    except OSError:
        return {}
    wanted = ("callscope_commits_total", "callscope_commit_seconds_sum", "callscope_commit_seconds_max")
    wanted += ("callscope_calls_recorded_total", "callscope_spans_recorded_total")
    out: dict[str, float] = {}
    for line in body.decode().splitlines() if status == 200 else ():
        name, _, value = line.partition(" ")
        if name in wanted:
            out[name] = float(value)
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# -- report ----------------------------------------------------------------------------------------------


def print_summary(
    cfg: Config,
    results: list[ClientResult],
    cpu_seconds: tuple[float, float] | None,
    peak_rss: int,
    worker_rss: int,
    exit_code: int,
    store: StoreFigures,
    writer: dict[str, float],
) -> bool:
    """Print the summary block; return whether the stored row count matches the acked spans."""
    latencies = [x for r in results for x in r.latencies_window]
    spans_window = sum(r.acked_spans_window for r in results)
    requests_window = sum(r.acked_requests_window for r in results)
    acked_total = sum(r.acked_spans_total for r in results)
    retries_window = {s: sum(r.retries_window.get(s, 0) for r in results) for s in RETRY_STATUSES}
    retries_total = {s: sum(r.retries.get(s, 0) for r in results) for s in RETRY_STATUSES}
    matches = store.calls == acked_total
    cpu_text = "n/a"
    if cpu_seconds is not None:
        main, workers = (c / cfg.seconds * 100 for c in cpu_seconds)
        cpu_text = f"{main + workers:.0f}% of one core (server process {main:.0f}%, ingest workers {workers:.0f}%)"
    per_call = store.size_bytes / store.calls if store.calls else float("nan")
    print(
        "\n==================== callscope ingest benchmark ====================\n"
        f"  clients x spans/request     {cfg.clients} x {cfg.spans_per_request}  "
        f"(window {cfg.seconds:g} s after {cfg.warmup:g} s warm-up, {os.cpu_count()} CPUs)\n"
        f"  sustained throughput        {spans_window / cfg.seconds:,.0f} spans/s   "
        f"{requests_window / cfg.seconds:,.1f} requests/s\n"
        f"  request latency (200s)      p50 {percentile(latencies, 50) * 1000:,.0f} ms   "
        f"p99 {percentile(latencies, 99) * 1000:,.0f} ms   max {max(latencies, default=0) * 1000:,.0f} ms\n"
        f"  429 / 503 answers (window)  {retries_window[429]} / {retries_window[503]}   "
        f"(whole run {retries_total[429]} / {retries_total[503]}, retried after Retry-After)\n"
        f"  server CPU in window        {cpu_text}\n"
        f"  server peak RSS (VmHWM)     {peak_rss / 2**20:,.0f} MiB  (ingest workers {worker_rss / 2**20:,.0f} MiB)\n"
        f"  writer (whole run)          {_writer_text(writer)}\n"
        f"  server exit code            {exit_code}\n"
        f"  store size on disk          {store.size_bytes / 2**20:,.1f} MiB (callscope.duckdb + .wal)\n"
        f"  bytes stored per call       {per_call:,.0f}\n"
        f"  acked spans (whole run)     {acked_total:,}\n"
        f"  rows in calls               {store.calls:,}  ({'matches' if matches else 'MISMATCH'}; "
        f"spans table {store.spans:,})\n"
        "===================================================================="
    )
    for r in results:
        for err in r.errors:
            print(f"  client error: {err}")
    return matches


def _writer_text(writer: dict[str, float]) -> str:
    commits = writer.get("callscope_commits_total", 0)
    if not commits:
        return "n/a"
    rows = writer.get("callscope_calls_recorded_total", 0) + writer.get("callscope_spans_recorded_total", 0)
    seconds = writer.get("callscope_commit_seconds_sum", 0)
    return (
        f"{commits:,.0f} commits, {rows / commits:,.0f} rows each, {seconds / commits * 1000:,.0f} ms each "
        f"(max {writer.get('callscope_commit_seconds_max', 0) * 1000:,.0f} ms), {seconds / rows * 1e6:.1f} us/row"
    )


def run(cfg: Config) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="callscope-bench-"))
    server = start_server(data_dir)
    print(f"server pid {server.proc.pid}, http port {server.http_port}, data dir {data_dir}", flush=True)
    procs: list[mp.Process] = []
    try:
        procs, ready, go, schedule_values, acked, results_q = start_clients(cfg, server.http_port)
        print(
            f"building {cfg.pool_size} request bodies of {cfg.spans_per_request} spans in each client ...", flush=True
        )
        schedule = release_clients(cfg, ready, go, schedule_values)
        print(f"running: {cfg.warmup:g} s warm-up, then {cfg.seconds:g} s measured", flush=True)
        cpu_from, cpu_to = watch_progress(cfg, schedule, server, acked)
        results = collect_results(procs, results_q)
        writer = writer_figures(server.http_port)
        peak_rss = peak_rss_bytes(server.proc.pid)
        worker_rss = sum(peak_rss_bytes(c.pid) for c in psutil.Process(server.proc.pid).children(recursive=True))
        exit_code = stop_server(server)
        if exit_code != 0:
            print(f"server exited with {exit_code}:\n{server.log_tail()}", file=sys.stderr)
        store = store_figures(data_dir)
        cpu_seconds = (
            (cpu_to[0] - cpu_from[0], cpu_to[1] - cpu_from[1]) if cpu_from is not None and cpu_to is not None else None
        )
        ok = print_summary(cfg, results, cpu_seconds, peak_rss, worker_rss, exit_code, store, writer)
        return 0 if ok and exit_code == 0 else 1
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        if cfg.keep:
            print(f"data dir kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--clients", type=int, default=4, help="concurrent client processes (default 4)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the measurement window (default 30)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before the window (default 3)")
    p.add_argument("--spans-per-request", type=int, default=512, help="spans in each request (default 512)")
    p.add_argument("--pool-size", type=int, default=8, help="distinct request bodies per client (default 8)")
    p.add_argument("--progress-every", type=float, default=5.0, help="seconds between progress lines")
    p.add_argument("--keep", action="store_true", help="keep the temporary data dir (store and server.log)")
    a = p.parse_args(argv)
    return Config(a.clients, a.seconds, a.warmup, a.spans_per_request, a.pool_size, a.progress_every, a.keep)


if __name__ == "__main__":
    sys.exit(run(parse_args()))
