"""Query benchmark: the read API's answers over 10 million calls, timed through a real `callscope serve`.

Method
------
1. Store: 10M synthetic calls over 30 days (20 models, 5,000 users; sample_data.bulk, the same distributions as the
   demo) written straight into a fresh store, or an existing store reused with --data-dir (generated once if it
   has fewer calls than --calls).
2. Start `callscope serve` over it and wait until the rollup job has folded the store (its first run).
3. Time each question as the dashboard asks it, over HTTP with Arrow answers (`format=arrow`, as the dashboard's
   client asks; --json for JSON), --repeat times after one warm-up run; print min / median / max seconds:
   - overview: KPIs with the previous-period comparison (spend, calls, error rate, p95, ttft, tokens), the hourly
     spend/calls series, and p50/p95/p99 per model per hour, for 30 days (the three run one after another; the
     sum is the overview's time);
   - breakdown by user: top 50 users by cost over 30 days;
   - calls page: the newest 50 calls with the total count;
   - what changed: a day's cost change against the day before, by service and model;
   - the call page: one call from the middle of the store by its ids, and its trace (point lookups: no index).
4. Peak server RSS (VmHWM) and the store's size on disk.

Targets (issue 3): overview <= 1 s, hourly p50/p95/p99 by model <= 0.5 s, calls page <= 0.2 s.

Run: `.venv/bin/python bench/query.py [--calls 10000000] [--days 30] [--data-dir DIR] [--repeat 5]`
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import free_port  # noqa: E402


def ensure_store(data_dir: Path, calls: int, days: int, end: datetime) -> float:
    """Generate the calls unless the store already holds them; returns the seconds spent generating."""
    from core.store import connect

    db = connect(data_dir / "callscope.duckdb")
    try:
        have = db.execute("SELECT count(*) FROM calls").fetchall()[0][0]
        if have >= calls:
            print(f"store: reusing {have:,} calls in {data_dir}")
            return 0.0
        from sample_data.bulk import write_calls

        started = time.perf_counter()
        write_calls(db, n_calls=calls - have, days=days, end=end, seed=42, n_users=5000, n_models=20)
        db.execute("CHECKPOINT")
        seconds = time.perf_counter() - started
        print(f"store: generated {calls - have:,} calls in {seconds:.1f} s ({(calls - have) / seconds:,.0f} calls/s)")
        return seconds
    finally:
        db.close()


def store_bounds(data_dir: Path) -> tuple[datetime, datetime]:
    db = duckdb.connect(str(data_dir / "callscope.duckdb"), read_only=True)
    try:
        lo, hi = db.execute("SELECT epoch_us(min(start_time)), epoch_us(max(start_time)) FROM calls").fetchall()[0]
    finally:
        db.close()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + timedelta(microseconds=lo), epoch + timedelta(microseconds=hi)


def sample_call(data_dir: Path) -> tuple[str, str]:
    """The ids (hex) of one call from the middle of the store: not the newest, which a scan may meet first."""
    db = duckdb.connect(str(data_dir / "callscope.duckdb"), read_only=True)
    try:
        row = db.execute(
            "SELECT hex(trace_id), hex(span_id) FROM calls"
            " WHERE start_time >= (SELECT min(start_time) + (max(start_time) - min(start_time)) / 2 FROM calls)"
            " ORDER BY start_time LIMIT 1"
        ).fetchall()[0]
    finally:
        db.close()
    return row[0].lower(), row[1].lower()


def timed(client: httpx.Client, path: str, params: dict) -> float:
    started = time.perf_counter()
    response = client.get(path, params=params)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"{path} {params} -> {response.status_code}: {response.text[:500]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--data-dir", type=Path, help="reuse (or create) this store instead of a temporary one")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="ask for JSON instead of Arrow")
    args = parser.parse_args()

    temp = None if args.data_dir else Path(tempfile.mkdtemp(prefix="callscope-query-bench-"))
    data_dir = args.data_dir or temp
    assert data_dir is not None
    data_dir.mkdir(parents=True, exist_ok=True)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    ensure_store(data_dir, args.calls, args.days, end)
    first, last = store_bounds(data_dir)
    end = last + timedelta(seconds=1)
    start = end - timedelta(days=args.days)
    size = sum(f.stat().st_size for f in data_dir.glob("callscope.duckdb*"))
    trace_id, span_id = sample_call(data_dir)

    port = free_port()
    env = {**os.environ, "CALLSCOPE_LOG_LEVEL": "warning"}
    cmd = [sys.executable, "-m", "callscope.cli", "serve", "--data-dir", str(data_dir)]
    cmd += ["--otlp-http-port", str(port), "--otlp-grpc-port", str(free_port())]
    started = time.perf_counter()
    server = subprocess.Popen(cmd, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            while True:
                try:
                    if client.get("/meta").json()["rollups_folded_through"]:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None:
                    raise SystemExit("the server exited")
                time.sleep(0.2)
            print(f"server: ready with rollups folded {time.perf_counter() - started:.1f} s after start")
            window = {"from": start.isoformat(), "to": end.isoformat()}
            day = end - timedelta(days=1)
            questions = {
                "overview: KPIs + previous period": (
                    "/stats",
                    {
                        **window,
                        "compare": "true",
                        "metrics": "cost_usd,calls,error_rate,latency_p95,ttft_p50,total_tokens",
                    },
                ),
                "overview: hourly spend and calls": (
                    "/stats",
                    {**window, "bucket": "hour", "metrics": "cost_usd,calls"},
                ),
                "overview: hourly p50/p95/p99 by model": (
                    "/stats",
                    {
                        **window,
                        "bucket": "hour",
                        "group_by": "model",
                        "metrics": "latency_p50,latency_p95,latency_p99",
                    },
                ),
                "breakdown: top 50 users by cost": (
                    "/stats",
                    {**window, "group_by": "user", "metrics": "cost_usd,calls", "order_by": "cost_usd", "limit": 50},
                ),
                "calls page (newest 50 + total)": ("/calls", {**window, "limit": 50}),
                "what changed: a day's cost by service, model": (
                    "/changes",
                    {"from": day.isoformat(), "to": end.isoformat(), "metric": "cost_usd", "dims": "service,model"},
                ),
                "call page: one call by its ids": (f"/calls/{trace_id}/{span_id}", {}),
                "trace view: the call's trace": (f"/traces/{trace_id}", {}),
            }
            results: dict[str, list[float]] = {}
            for name, (path, params) in questions.items():
                if path == "/stats" or path == "/calls":
                    params = {**params, "format": "json" if args.json else "arrow"}
                timed(client, path, params)  # warm-up
                results[name] = [timed(client, path, params) for _ in range(args.repeat)]
        rss = psutil.Process(server.pid).memory_full_info().rss
        peak = _peak_rss(server.pid) or rss
    finally:
        server.terminate()
        server.wait(60)
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)

    print(f"\nstore: {args.calls:,} calls, {first:%Y-%m-%d} .. {last:%Y-%m-%d}, {size / 2**20:,.0f} MiB on disk")
    print(f"{'question':48} {'min':>7} {'median':>7} {'max':>7}  (seconds, {args.repeat} runs after a warm-up)")
    overview = 0.0
    for name, values in results.items():
        print(f"{name:48} {min(values):7.3f} {statistics.median(values):7.3f} {max(values):7.3f}")
        if name.startswith("overview"):
            overview += statistics.median(values)
    print(f"{'overview total (sum of medians)':48} {overview:23.3f}")
    print(f"server peak RSS: {peak / 2**20:,.0f} MiB")


def _peak_rss(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


if __name__ == "__main__":
    main()
