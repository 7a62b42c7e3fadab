"""Retention benchmark: does ingest keep its rate while the retention job deletes?

Method
------
1. A fresh store with --old-calls generated calls (sample_data.bulk) over the 30 days before now - 1 day.
2. `callscope serve` over it with CALLSCOPE_RETENTION="calls=<keep-days>" (the scheduled run pushed out of the
   way: the run is asked for through POST /api/v1/retention/run, so its start and end are known), and wait until
   the rollup job has folded the store (raw calls are removed only once folded).
3. bench/ingest.py's client processes send OTLP/HTTP GenAI spans (acked after commit) for the whole run. The acked
   span count is sampled every 0.25 s. After --before seconds the retention run is asked for; it deletes in
   batches of retention_batch_rows on its own cursor while the writer thread keeps committing.
4. Printed: ingest spans/s before the run and during it, the run's rows removed, batches and seconds, and the
   store file size before and after (the freed blocks are reused by DuckDB: the file does not shrink while the
   server runs; `callscope retention --compact` on a stopped store gives the space back, see bench/storage.py).

Run: `.venv/bin/python bench/retention.py [--old-calls 2000000] [--keep-days 10] [--clients 2] [--before 15]`
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402
    Config,
    release_clients,
    start_clients,
    start_server,
    stop_server,
)


def _get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return json.loads(r.read())


def _post(port: int, path: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST")
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.loads(r.read())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--old-calls", type=int, default=2_000_000)
    p.add_argument("--keep-days", type=int, default=10)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--before", type=float, default=15.0, help="seconds of ingest before the retention run")
    p.add_argument("--after", type=float, default=5.0, help="seconds of ingest after the run ended")
    p.add_argument("--batch-rows", type=int, default=50_000)
    a = p.parse_args()
    print(f"load average {Path('/proc/loadavg').read_text().split()[:3]}", flush=True)
    data_dir = Path(tempfile.mkdtemp(prefix="callscope-retention-"))
    from core.store import connect
    from sample_data.bulk import write_calls

    db = connect(data_dir / "callscope.duckdb")
    end = datetime.now(UTC) - timedelta(days=1)
    write_calls(db, n_calls=a.old_calls, days=30, end=end, seed=7, progress=False)
    db.execute("CHECKPOINT")
    db.close()
    os.environ["CALLSCOPE_RETENTION"] = f"calls={a.keep_days}"
    os.environ["CALLSCOPE_RETENTION_INTERVAL_SECONDS"] = "86400"
    os.environ["CALLSCOPE_RETENTION_BATCH_ROWS"] = str(a.batch_rows)
    server = start_server(data_dir, timeout=300)
    port = server.http_port
    procs = []
    try:
        while not _get(port, "/api/v1/meta").get("rollups_folded_through"):
            time.sleep(0.2)
        size_before = _get(port, "/api/v1/storage")["file_bytes"]
        total = a.before + 600 + a.after
        cfg = Config(a.clients, total, 2.0, 256, 8, 5.0, False)
        procs, ready, go, schedule_values, acked, _results = start_clients(cfg, port)
        schedule = release_clients(cfg, ready, go, schedule_values)
        samples: list[tuple[float, int]] = []
        run: dict = {}
        marks: dict[str, float] = {}

        def retention_run() -> None:
            marks["start"] = time.monotonic()
            run.update(_post(port, "/api/v1/retention/run"))
            marks["end"] = time.monotonic()

        runner = threading.Thread(target=retention_run)
        while True:
            now = time.monotonic()
            samples.append((now, sum(acked[:])))
            if "start" not in marks and now >= schedule.measure_from + a.before:
                runner.start()
                marks["start"] = now
            if "end" in marks and now >= marks["end"] + a.after:
                break
            time.sleep(0.25)
        for proc in procs:  # the clients were told to run long: stop them here
            proc.terminate()
        size_after = _get(port, "/api/v1/storage")["file_bytes"]
        stop_server(server)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        if server.proc.poll() is None:
            server.proc.kill()

    def rate(t0: float, t1: float) -> float:
        inside = [(t, n) for t, n in samples if t0 <= t <= t1]
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]) if len(inside) > 1 else float("nan")

    before = rate(schedule.measure_from, marks["start"])
    during = rate(marks["start"], marks["end"])
    after = rate(marks["end"], marks["end"] + a.after)
    print(f"ingest before the run: {before:,.0f} spans/s ({a.clients} clients)")
    print(f"ingest during the run: {during:,.0f} spans/s ({during / before:.0%} of before)")
    print(f"ingest after the run:  {after:,.0f} spans/s")
    print(
        f"retention run: removed {run.get('removed')} in {run.get('batches')} batches, {run.get('seconds')} s"
        f" (wall {marks['end'] - marks['start']:.1f} s)"
    )
    print(f"store file while serving: {size_before / 1e6:,.1f} MB before, {size_after / 1e6:,.1f} MB after")
    print(f"load average {Path('/proc/loadavg').read_text().split()[:3]}")
    shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
