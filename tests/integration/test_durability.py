"""Crash safety and overload, against a real server process.

- SIGKILL mid-load: every batch answered 200 before the kill is in the store afterwards; with the client
  retrying everything that was not acknowledged, no span is stored twice.
- Offered load far above capacity: 429/503 with Retry-After, bounded RSS, no crash, every ack stored.
"""

from __future__ import annotations

import threading
import time

import duckdb
import httpx
import psutil
import pytest

from tests.helpers import ServerProcess
from tests.load import genai_request

pytestmark = pytest.mark.slow


def _stored_span_ids(data_dir) -> list[bytes]:
    db = duckdb.connect(str(data_dir / "callscope.duckdb"), read_only=True)
    try:
        return [r[0] for r in db.execute("SELECT span_id FROM calls").fetchall()]
    finally:
        db.close()


def test_sigkill_loses_nothing_acknowledged_and_retries_do_not_duplicate(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    batches = {i: genai_request(i, 200) for i in range(150)}
    acked: set[int] = set()
    lock = threading.Lock()
    stop_sending = threading.Event()

    def client(ids: list[int]) -> None:
        with httpx.Client(timeout=10) as http:
            for i in ids:
                body = batches[i][0]
                while not stop_sending.is_set():
                    try:
                        r = http.post(
                            server.http_url + "/v1/traces",
                            content=body,
                            headers={"content-type": "application/x-protobuf"},
                        )
                    except httpx.HTTPError:
                        time.sleep(0.05)  # server down: retry the same batch, as an OTLP exporter does
                        continue
                    if r.status_code == 200:
                        with lock:
                            acked.add(i)
                        break
                    time.sleep(float(r.headers.get("retry-after", "0.05")))

    threads = [threading.Thread(target=client, args=(list(range(k, 150, 3)),)) for k in range(3)]
    for t in threads:
        t.start()
    while len(acked) < 20:
        time.sleep(0.01)
    server.kill()  # SIGKILL mid-load
    with lock:
        acked_before_kill = set(acked)
    stored = set(_stored_span_ids(server.data_dir))
    for i in acked_before_kill:
        assert set(batches[i][1]) <= stored, f"batch {i} was acknowledged but is not in the store"

    server.start()  # same store, same ports; clients retry what was not acknowledged
    for t in threads:
        t.join(120)
    stop_sending.set()
    assert acked == set(batches)
    assert server.stop() == 0
    stored_list = _stored_span_ids(server.data_dir)
    assert len(stored_list) == len(set(stored_list)) == 150 * 200


def test_overload_answers_retry_after_keeps_memory_bounded_and_loses_no_ack(tmp_path):
    server = ServerProcess(
        tmp_path / "data", env={"CALLSCOPE_QUEUE_MAX_ROWS": "2000", "CALLSCOPE_MAX_INFLIGHT_REQUESTS": "4"}
    ).start()
    proc = psutil.Process(server.proc.pid)
    bodies = [genai_request(i, 1000) for i in range(24)]
    acked: list[int] = []
    refusals: list[tuple[int, str | None]] = []
    rss_peak = 0
    lock = threading.Lock()
    deadline = time.monotonic() + 8

    def client(k: int) -> None:
        n = 0
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < deadline:
                i = k * 1000 + n
                body, ids = genai_request(i, 1000) if n >= 1 else bodies[k]
                r = http.post(
                    server.http_url + "/v1/traces", content=body, headers={"content-type": "application/x-protobuf"}
                )
                with lock:
                    if r.status_code == 200:
                        acked.extend(ids)
                        n += 1
                    else:
                        refusals.append((r.status_code, r.headers.get("retry-after")))
                        # no backing off: offered load stays far above capacity

    threads = [threading.Thread(target=client, args=(k,)) for k in range(24)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        rss_peak = max(rss_peak, proc.memory_info().rss)
        time.sleep(0.05)
    assert server.proc.poll() is None, "the server survived"
    assert httpx.get(server.http_url + "/healthz").status_code == 200
    assert refusals, "offered load far above capacity must be refused, not buffered"
    assert {code for code, _ in refusals} <= {429, 503}
    assert all(retry_after == "1" for _, retry_after in refusals)
    assert rss_peak < 600 * 1024 * 1024, f"RSS peaked at {rss_peak / 2**20:.0f} MiB"
    prepared = server.metric("callscope_spans_received_total")
    assert server.stop() == 0
    # Refusals are decided before decoding: few requests are normalised only to find the queue full.
    assert prepared - len(acked) <= 0.05 * prepared, f"{prepared - len(acked):.0f} of {prepared:.0f} spans wasted"
    stored = set(_stored_span_ids(server.data_dir))
    assert set(acked) <= stored
    assert len(stored) == len(acked)  # nothing refused was stored, nothing acked lost
