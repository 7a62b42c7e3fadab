"""Several `callscope serve` nodes on one lake (store = lake: a real PostgreSQL catalog in a temp folder, Parquet
files in a shared folder), fed concurrently by the real OpenTelemetry SDK's OTLP/HTTP exporter.

- every span a node acknowledged is stored once, also when a node is SIGKILLed mid-load and its clients' retries
  go to another node, and when acknowledged batches are re-sent to other nodes (a lost ack): the read API's
  counts and sums (checked against numpy over what was sent) and its export agree on every node;
- the job lease: exactly one node holds it; SIGKILL the holder and another node takes it within a stated time.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.helpers import ServerProcess
from tests.pg import lake_env

pytestmark = [pytest.mark.lake, pytest.mark.slow]

CLIENTS, BATCHES, PER_BATCH = 3, 24, 25
LEASE_S = 0.5
TAKEOVER_BOUND_S = 10.0  # the README's stated bound: lease_seconds plus the next node's try, with margin for load
MODELS = ("gpt-4o-mini", "gpt-4.1", "claude-sonnet-4-5")


def _spans(client: int) -> list:
    """CLIENTS x BATCHES x PER_BATCH chat spans made by the real SDK (kept in memory, exported by hand below)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": f"client-{client}"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test.lake")
    rng = np.random.default_rng(client)
    for i in range(BATCHES * PER_BATCH):
        model = MODELS[i % 3]
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic" if model.startswith("claude") else "openai",
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": int(rng.integers(10, 5000)),
            "gen_ai.usage.output_tokens": int(rng.integers(1, 800)),
        }
        with tracer.start_as_current_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attrs):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def _start_nodes(tmp_path: Path, conninfo: str, count: int) -> list[ServerProcess]:
    data = tmp_path / "lake-data"  # the shared folder every node writes its Parquet files to
    nodes = []
    for i in range(count):
        env = lake_env(
            conninfo,
            data,
            CALLSCOPE_LAKE_NODE_NAME=f"node-{i}",
            CALLSCOPE_LAKE_LEASE_SECONDS=str(LEASE_S),
            CALLSCOPE_BATCH_MAX_WAIT_MS="20",
        )
        nodes.append(ServerProcess(tmp_path / f"node-{i}", env=env).start(timeout=90))
    return nodes


def _health(node: ServerProcess) -> dict:
    return httpx.get(node.http_url + "/healthz", timeout=10).json()


def _stats(node: ServerProcess) -> dict:
    params = {"last": "1d", "metrics": "calls,input_tokens,output_tokens"}
    r = httpx.get(node.http_url + "/api/v1/stats", params=params, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["data"][0]


def _exported(node: ServerProcess) -> list[dict]:
    r = httpx.get(node.http_url + "/api/v1/export", params={"format": "jsonl", "last": "1d"}, timeout=120)
    assert r.status_code == 200, r.text
    return [orjson.loads(line) for line in r.content.splitlines() if line.strip()]


def test_nodes_store_every_acked_span_once_through_a_kill_and_resends(tmp_path, postgres):
    nodes = _start_nodes(tmp_path, postgres.new_database(), 3)
    spans = {c: _spans(c) for c in range(CLIENTS)}
    acked: dict[int, list[tuple[int, int]]] = {c: [] for c in range(CLIENTS)}  # (batch, node) per client
    lock = threading.Lock()
    dead: set[int] = set()

    def client(c: int) -> None:
        exporters = [OTLPSpanExporter(endpoint=n.http_url + "/v1/traces", timeout=5) for n in nodes]
        for b in range(BATCHES):
            batch = spans[c][b * PER_BATCH : (b + 1) * PER_BATCH]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                # a load balancer's choice: this client's node, else the next live one
                order = [(c + k) % len(nodes) for k in range(len(nodes))]
                target = next(i for i in order if i not in dead)
                if exporters[target].export(batch) == SpanExportResult.SUCCESS:
                    with lock:
                        acked[c].append((b, target))
                    break
                with lock:
                    if nodes[target].proc is not None and nodes[target].proc.poll() is not None:
                        dead.add(target)  # refused: the balancer takes the node out
                time.sleep(0.05)
            else:
                raise AssertionError(f"client {c}: batch {b} never acknowledged")

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while sum(len(a) for a in acked.values()) < CLIENTS * BATCHES // 3:
        assert time.monotonic() < deadline, "the nodes acknowledged too little"
        time.sleep(0.01)
    nodes[0].kill()  # SIGKILL mid-load: its clients' retries go to the other nodes
    for t in threads:
        t.join(300)
    assert all(len(a) == BATCHES for a in acked.values())
    assert any(target == 0 for a in acked.values() for _, target in a), "node 0 acknowledged nothing before the kill"

    # A lost ack: every batch node 0 acknowledged, and a few of the others, re-sent to another node.
    resend = OTLPSpanExporter(endpoint=nodes[2].http_url + "/v1/traces", timeout=10)
    resent = 0
    for c in range(CLIENTS):
        for b, target in acked[c]:
            if target == 0 or b % 5 == 0:
                assert resend.export(spans[c][b * PER_BATCH : (b + 1) * PER_BATCH]) == SpanExportResult.SUCCESS
                resent += 1
    assert resent > 0

    # A retry racing the first try: the same batches sent to two nodes at the same moment, both acknowledged.
    racing = _spans(CLIENTS)[: 10 * PER_BATCH]
    start = threading.Barrier(2)
    raced: list[SpanExportResult] = []

    def race(node: ServerProcess) -> None:
        exporter = OTLPSpanExporter(endpoint=node.http_url + "/v1/traces", timeout=10)
        for b in range(10):
            start.wait()
            raced.append(exporter.export(racing[b * PER_BATCH : (b + 1) * PER_BATCH]))

    racers = [threading.Thread(target=race, args=(n,)) for n in nodes[1:]]
    for t in racers:
        t.start()
    for t in racers:
        t.join(120)
    assert raced == [SpanExportResult.SUCCESS] * 20

    sent = [s for c in range(CLIENTS) for s in spans[c]] + racing
    expected_ids = {f"{s.context.trace_id:032x}{s.context.span_id:016x}" for s in sent}
    expected_input = int(np.sum([s.attributes["gen_ai.usage.input_tokens"] for s in sent]))
    expected_output = int(np.sum([s.attributes["gen_ai.usage.output_tokens"] for s in sent]))
    for node in nodes[1:]:
        stats = _stats(node)
        assert stats["calls"] == len(expected_ids) == (CLIENTS * BATCHES + 10) * PER_BATCH
        assert stats["input_tokens"] == expected_input
        assert stats["output_tokens"] == expected_output
    rows = _exported(nodes[1])
    ids = [r["trace_id"] + r["span_id"] for r in rows]
    assert len(ids) == len(set(ids)), "the export holds a span twice"
    assert set(ids) == expected_ids
    assert (
        nodes[1].metric("callscope_calls_deduplicated_total") + nodes[2].metric("callscope_calls_deduplicated_total")
        >= resent * PER_BATCH * 0.5
    )  # the re-sent spans were recognised (not all batches went to one node)
    for node in nodes[1:]:
        assert node.stop() == 0


def test_the_job_lease_has_one_holder_and_moves_when_it_dies(tmp_path, postgres):
    nodes = _start_nodes(tmp_path, postgres.new_database(), 2)
    deadline = time.monotonic() + 30
    while not any(_health(n)["holds_job_lease"] for n in nodes):
        assert time.monotonic() < deadline, "no node took the job lease"
        time.sleep(0.1)
    health = [_health(n) for n in nodes]
    holders = [i for i, h in enumerate(health) if h["holds_job_lease"]]
    assert len(holders) == 1
    holder = holders[0]
    other = 1 - holder
    assert health[other]["job_lease_holder"] == f"node-{holder}"  # every node can say who holds it
    assert "lake_data_files" in health[other] and "lake_snapshot_id" in health[other]

    nodes[holder].kill()
    killed_at = time.monotonic()
    while not _health(nodes[other])["holds_job_lease"]:
        assert time.monotonic() - killed_at < TAKEOVER_BOUND_S, "no node took over the job lease"
        time.sleep(0.05)
    took = time.monotonic() - killed_at
    print(f"job lease moved {took:.2f} s after the holder was killed")  # the README's figure (pytest -s)
    assert took < TAKEOVER_BOUND_S
    assert _health(nodes[other])["job_lease_holder"] == f"node-{other}"
    assert nodes[other].metric("callscope_lake_job_lease_held") == 1
    assert "job lease taken" in nodes[other].log()
    assert nodes[other].stop() == 0


def test_maintenance_merges_the_small_files_of_many_commits_while_nodes_read_and_write(tmp_path, postgres):
    conninfo = postgres.new_database()
    data = tmp_path / "lake-data"
    env = lake_env(
        conninfo,
        data,
        CALLSCOPE_LAKE_LEASE_SECONDS=str(LEASE_S),
        CALLSCOPE_LAKE_MAINTENANCE_SECONDS="12",  # the first run comes after the batches below
        CALLSCOPE_LAKE_SNAPSHOT_KEEP_HOURS="0.0001",
    )
    nodes = [ServerProcess(tmp_path / f"m{i}", env=env).start(timeout=90) for i in range(2)]
    spans = _spans(0)
    exporters = [OTLPSpanExporter(endpoint=n.http_url + "/v1/traces", timeout=10) for n in nodes]
    for b in range(BATCHES):  # one commit, so at least one Parquet file, per batch
        assert exporters[b % 2].export(spans[b * PER_BATCH : (b + 1) * PER_BATCH]) == SpanExportResult.SUCCESS
    files_before = _health(nodes[0])["lake_data_files"]
    assert sum(n.metric("callscope_lake_maintenance_runs_total") for n in nodes) == 0
    assert files_before >= BATCHES
    deadline = time.monotonic() + 60
    while sum(n.metric("callscope_lake_maintenance_runs_total") for n in nodes) < 1:
        assert time.monotonic() < deadline, "no maintenance run"
        time.sleep(0.2)
    files_after = _health(nodes[1])["lake_data_files"]
    assert files_after < files_before / 2
    for node in nodes:  # both still read everything (readers survive files merged and deleted under them)
        assert _stats(node)["calls"] == BATCHES * PER_BATCH
        assert node.stop() == 0
