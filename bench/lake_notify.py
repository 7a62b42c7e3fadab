"""Notification on a lake against the embedded file: what the lake's safety costs per message.

Method: a PostgreSQL in a temp folder (bench/pg.py) with a fresh lake, and an embedded store file. On each:
1. queue N webhook messages in one transaction (ids drawn: the file's sequence, or the catalog's; the keys already
   queued left out by a join), timed;
2. deliver them with the real DeliveryWorker to a local HTTP receiver answering 200. On the lake the worker runs as
   the lease holder's does (LakeNode.sharing()): per message a claim under the commit lock after asking PostgreSQL
   whether the lease is still held, the receiver's acceptance recorded in the catalog's ledger, then `sent` under
   the commit lock. Figures: messages/s and ms per message; the ledger's write alone (what stands between a
   receiver's acceptance and a record that survives a SIGKILL) timed separately.

Run: `.venv-lake/bin/python bench/lake_notify.py [--messages 200]` (lake mode needs the lake extra).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Run as a script, this folder is first on sys.path and its alerts.py would hide the alerts package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts import outbox
from alerts.delivery import DeliveryWorker, WebhookSender
from bench.pg import Postgres
from callscope.lake_node import LakeNode
from core import lake
from core.settings import load_settings
from core.store import connect, transaction


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _messages(n: int, url: str, tag: str) -> list[outbox.NewMessage]:
    """Small messages whose webhook body is given as is (a digest's), so the figures are the store's, not rendering."""
    return [
        outbox.NewMessage(
            f"{tag}:{i}",
            "digest",
            "oncall",
            "oncall/webhook/0",
            "webhook",
            {"url": url},
            {"webhook": {"i": i}},
            f"m{i}",
        )
        for i in range(n)
    ]


def _run(name: str, db, n: int, url: str, sharing=None) -> dict[str, float]:
    lock = sharing.lock if sharing is not None else None
    started = time.perf_counter()
    with transaction(db, lock) as cur:
        queued = outbox.enqueue_many(cur, _messages(n, url, name), datetime.now(UTC))
    queue_s = time.perf_counter() - started
    assert len(queued) == n
    worker = DeliveryWorker(db, {"webhook": WebhookSender()}, sharing=sharing)
    started = time.perf_counter()
    counts = worker.run_once(now=datetime.now(UTC) + timedelta(seconds=1), limit=n)
    deliver_s = time.perf_counter() - started
    assert counts.sent == n, counts
    return {"queue_s": queue_s, "deliver_s": deliver_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    n = args.messages
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    root = Path(tempfile.mkdtemp(prefix="callscope-bench-"))
    os.chmod(root, 0o755)  # PostgreSQL runs as its own user when we are root
    pg = Postgres(root / "pg").start()
    print(f"load before: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    try:
        embedded = connect(root / "file" / "callscope.duckdb")
        file_figures = _run("embedded", embedded, n, url)
        embedded.close()

        conninfo = pg.new_database()
        settings = load_settings(
            {
                "data_dir": str(root / "node"),
                "store": "lake",
                "lake_catalog": conninfo,
                "lake_data_path": str(root / "lake-data"),
                "lake_node_name": "bench",
                "lake_lease_seconds": 0.2,
            },
            env={},
        )
        db = lake.connect(lake.LakeConfig.from_settings(settings))
        node = LakeNode(settings, db)
        node.start_lease(lambda: [])
        deadline = time.monotonic() + 10
        while not node.holds_lease:
            assert time.monotonic() < deadline, "the lease was not taken"
            time.sleep(0.05)
        lake_figures = _run("lake", db, n, url, node.sharing())
        ledger_ms = []
        for i in range(200):
            started = time.perf_counter()
            node.ledger.accepted(10_000_000 + i, "200")
            ledger_ms.append((time.perf_counter() - started) * 1000)
        node.stop()
        db.close()
    finally:
        pg.stop()
        server.shutdown()
    print(f"load after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"{n} webhook messages to a local receiver answering 200")
    print(f"{'':24} {'embedded file':>16} {'lake (lease holder)':>20}")
    for label, key in (("queue all (one txn)", "queue_s"), ("deliver all", "deliver_s")):
        print(f"{label:24} {file_figures[key]:>14.3f} s {lake_figures[key]:>18.3f} s")
    for label, figures in (("embedded", file_figures), ("lake", lake_figures)):
        print(
            f"{label}: {n / figures['deliver_s']:.1f} messages/s, {figures['deliver_s'] / n * 1000:.1f} ms per message"
        )
    print(
        f"ledger write (acceptance -> a record that survives SIGKILL): median {statistics.median(ledger_ms):.2f} ms,"
        f" p95 {sorted(ledger_ms)[int(len(ledger_ms) * 0.95)]:.2f} ms"
    )


if __name__ == "__main__":
    main()
