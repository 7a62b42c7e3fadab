"""Alert evaluation benchmark: 200 rules over 10 million calls inside a real `callscope serve`, and ingest meanwhile.

Method
------
1. Store: 10M synthetic calls over 30 days (sample_data.bulk, 20 models), generated once into --data-dir and
   reused. A new store's calls end --ahead hours after now, so the short windows (5m) still hold calls for a while
   after generation; the bench prints how many calls the windows hold at the start.
2. Rules: 200 rules written to <data-dir>/alerts.yaml. Metrics cycle through latency p50/p95/p99, ttft p95, error
   rate, 429 share, spend, cost per call, total tokens, calls, unpriced share and generation speed (a third are
   percentiles); windows cycle 5m, 15m, 1h, 24h; every other rule is grouped by model; every fourth is filtered to
   one service; every tenth is relative (% change vs the previous window). All share one interval (--interval,
   default 15 s), so every cycle evaluates all 200: the worst case.
3. Quiet: start `callscope serve` (default settings), wait for --cycles evaluation cycles and read each from
   GET /api/v1/alerts/rules (evaluation.last_cycle: wall seconds, seconds in queries, number of queries).
4. Under load: bench/ingest.py's clients (--clients processes, 512-span OTLP protobuf requests, acked after
   commit) send for --seconds while the rules are evaluated; spans/s acked, and the cycles seen meanwhile. Then the
   rules file is emptied and the server reloads it (SIGHUP), and the same load runs without alert evaluation.

Targets (issue 11): a cycle <= 5 s (aim 2 s) for 200 rules over 10M calls; ingest keeps its rate.

Run: `.venv/bin/python bench/alerts.py [--data-dir DIR] [--calls 10000000] [--cycles 5] [--seconds 30]`
"""

from __future__ import annotations

import argparse
import importlib
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

METRICS = (
    "latency_p95",
    "error_rate",
    "cost_usd",
    "latency_p99",
    "rate_limited_share",
    "ttft_p95",
    "calls",
    "cost_per_call",
    "latency_p50",
    "total_tokens",
    "unpriced_call_share",
    "output_tokens_per_s",
)
WINDOWS = ("5m", "15m", "1h", "24h")


def _ingest_module():
    """bench/ingest.py, importable by name so its spawned client processes find it too."""
    sys.path.insert(0, str(ROOT / "bench"))
    return importlib.import_module("ingest")


def ensure_store(data_dir: Path, calls: int, ahead_hours: float) -> None:
    from core.store import connect
    from sample_data.bulk import write_calls

    db = connect(data_dir / "callscope.duckdb")
    try:
        have = db.execute("SELECT count(*) FROM calls").fetchall()[0][0]
        if have >= calls:
            print(f"store: reusing {have:,} calls in {data_dir}", flush=True)
            return
        end = datetime.now(UTC) + timedelta(hours=ahead_hours)
        started = time.perf_counter()
        write_calls(db, n_calls=calls - have, days=30, end=end, seed=42, n_users=5000, n_models=20, progress=True)
        db.execute("CHECKPOINT")
        print(f"store: generated {calls - have:,} calls in {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        db.close()


def window_counts(data_dir: Path) -> dict[str, int]:
    import duckdb

    db = duckdb.connect(str(data_dir / "callscope.duckdb"), read_only=True)
    try:
        out = {}
        for window in WINDOWS:
            n, unit = int(window[:-1]), {"m": "minutes", "h": "hours"}[window[-1]]
            start = datetime.now(UTC) - timedelta(**{unit: n})
            out[window] = db.execute(
                "SELECT count(*) FROM calls WHERE start_time >= ? AND start_time < now()", [start]
            ).fetchall()[0][0]
        services = [s for (s,) in db.execute("SELECT DISTINCT service FROM calls ORDER BY 1 LIMIT 3").fetchall()]
        out["services"] = services  # type: ignore[assignment]
        return out
    finally:
        db.close()


def rules_yaml(n: int, interval: str, services: list[str]) -> str:
    lines = ["rules:"]
    for i in range(n):
        metric = METRICS[i % len(METRICS)]
        window = WINDOWS[(i // len(METRICS)) % len(WINDOWS)]
        lines += [
            f"  - name: rule-{i:03d}",
            f"    metric: {metric}",
            f"    window: {window}",
            f"    interval: {interval}",
        ]
        lines += ['    op: ">"', "    warning: 1000000", "    critical: 2000000"]  # evaluated in full, never firing
        if i % 2:
            lines.append("    group_by: [model]")
        if i % 4 == 3:
            lines.append(f"    filters: {{service: {services[i % len(services)]}}}")
        if i % 10 == 9:
            lines.append("    relative_to: previous_window")
        lines.append("    min_calls: 10")
    return "\n".join(lines) + "\n"


def evaluation(url: str) -> dict:
    return httpx.get(f"{url}/api/v1/alerts/rules", timeout=120).json()["evaluation"]


def wait_cycles(url: str, n: int, timeout: float) -> list[dict]:
    """The next `n` evaluation cycles (each as evaluation.last_cycle)."""
    cycles: list[dict] = []
    last = (evaluation(url).get("last_cycle") or {}).get("at")
    deadline = time.monotonic() + timeout
    while len(cycles) < n and time.monotonic() < deadline:
        cycle = evaluation(url).get("last_cycle")
        if cycle and cycle["at"] != last:
            cycles.append(cycle)
            last = cycle["at"]
            print(
                f"  cycle at {cycle['at']}: {cycle['rules']} rules, {cycle['queries']} queries,"
                f" {cycle['seconds']:.2f} s ({cycle['query_seconds']:.2f} s in queries)",
                flush=True,
            )
        time.sleep(0.5)
    return cycles


def ingest_run(ingest, port: int, clients: int, seconds: float, server) -> float:
    cfg = ingest.Config(clients, seconds, 3.0, 512, 8, 10.0, False)
    procs, ready, go, schedule_values, acked, results_q = ingest.start_clients(cfg, port)
    try:
        schedule = ingest.release_clients(cfg, ready, go, schedule_values)
        ingest.watch_progress(cfg, schedule, server, acked)
        results = ingest.collect_results(procs, results_q)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
    spans = sum(r.acked_spans_window for r in results)
    return spans / seconds


class CycleWatcher(threading.Thread):
    """Records every evaluation cycle completed while it runs."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.cycles: list[dict] = []
        self.done = threading.Event()
        self.last = (evaluation(url).get("last_cycle") or {}).get("at")

    def run(self) -> None:
        while not self.done.is_set():
            try:
                cycle = evaluation(self.url).get("last_cycle")
            except httpx.HTTPError:
                cycle = None
            if cycle and cycle["at"] != self.last:
                self.cycles.append(cycle)
                self.last = cycle["at"]
            self.done.wait(0.5)


def summary(label: str, cycles: list[dict]) -> str:
    if not cycles:
        return f"{label}: no cycle completed"
    secs = [c["seconds"] for c in cycles]
    return (
        f"{label}: {len(cycles)} cycles of {cycles[0]['rules']} rules, {cycles[0]['queries']} queries each;"
        f" seconds per cycle min {min(secs):.2f} / median {statistics.median(secs):.2f} / max {max(secs):.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--data-dir", type=Path, help="store to use (generated if it holds fewer than --calls)")
    p.add_argument("--calls", type=int, default=10_000_000)
    p.add_argument("--ahead", type=float, default=6.0, help="a new store's calls end this many hours from now")
    p.add_argument("--rules", type=int, default=200)
    p.add_argument("--interval", default="15s", help="every rule's evaluation interval (default 15s)")
    p.add_argument("--cycles", type=int, default=5, help="quiet cycles to time (default 5)")
    p.add_argument("--clients", type=int, default=4, help="ingest client processes (default 4)")
    p.add_argument("--seconds", type=float, default=30.0, help="ingest measurement window (default 30)")
    args = p.parse_args(argv)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="callscope-alerts-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    ensure_store(data_dir, args.calls, args.ahead)
    counts = window_counts(data_dir)
    services = counts.pop("services")
    print("calls in the windows ending now: " + ", ".join(f"{w}: {n:,}" for w, n in counts.items()), flush=True)
    rules_path = data_dir / "alerts.yaml"
    rules_path.write_text(rules_yaml(args.rules, args.interval, services))  # type: ignore[arg-type]
    ingest = _ingest_module()
    server = ingest.start_server(data_dir, timeout=180)
    url = f"http://127.0.0.1:{server.http_port}"
    try:
        rules = httpx.get(f"{url}/api/v1/alerts/rules", timeout=60).json()
        assert len(rules["rules"]) == args.rules and rules["file"]["ok"], rules["file"]
        interval_s = int(args.interval.rstrip("s"))
        print(f"quiet: timing {args.cycles} cycles", flush=True)
        wait_cycles(url, 1, 4 * interval_s + 120)  # the first cycle warms caches; not counted
        quiet = wait_cycles(url, args.cycles, args.cycles * (interval_s + 60) + 60)
        print(f"under load: {args.clients} ingest clients for {args.seconds:g} s", flush=True)
        watcher = CycleWatcher(url)
        watcher.start()
        with_alerts = ingest_run(ingest, server.http_port, args.clients, args.seconds, server)
        watcher.done.set()
        watcher.join()
        loaded = watcher.cycles
        rules_path.write_text("rules: []\n")
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/api/v1/alerts/rules", timeout=60).json()["rules"] and time.monotonic() < deadline:
            time.sleep(0.5)
        print("baseline: the same load without rules", flush=True)
        without = ingest_run(ingest, server.http_port, args.clients, args.seconds, server)
    finally:
        ingest.stop_server(server)
    print()
    print(summary("quiet", quiet))
    print(summary("under ingest load", loaded))
    print(f"ingest: {with_alerts:,.0f} spans/s while evaluating, {without:,.0f} spans/s without rules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
