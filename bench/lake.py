"""Lake benchmark: embedded file against lake (DuckLake, PostgreSQL catalog + Parquet in a local folder), side by side.

Method
------
1. Start a PostgreSQL in a temp folder (initdb/pg_ctl, bench/pg.py); each lake gets a fresh database.
2. Ingest, one node: the client processes of bench/ingest.py (OTLP/HTTP protobuf, fresh ids per request, ack after
   commit) against `callscope serve` on an embedded file, then against one lake node, same load and window.
   Figures: acked spans/s, server CPU (process + ingest workers) per acked span, commit latency (the writer's
   metrics: a lake commit includes taking the catalog's commit lock, the exactly-once check and DuckLake's commit).
3. Ingest, two lake nodes at once on the same lake, each with its own clients: total spans/s.
4. Maintenance: the lake's live data files after the ingest runs, then after `core.lake.maintain` (what the lease
   holder runs on a schedule), with the overview question timed before and after.
5. Read API over --calls calls: an embedded store made by the bulk generator, copied into a fresh lake
   (core/lake_copy.py, what `callscope migrate` does); the overview questions of bench/query.py against a server
   on each (median of --repeat after a warm-up).
6. The catalog's capacity: commits are serialised by the commit lock, so one catalog takes at most
   1 / (commit latency) commits per second; with the spans per commit seen in 2. that is its spans/s, and divided
   by one node's spans/s, how many nodes it feeds.

Run: `.venv/bin/python bench/lake.py [--calls 10000000] [--seconds 20] [--clients 2]`
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench import ingest
from bench.pg import Postgres, lake_env
from core import lake
from core.lake_copy import copy_store
from core.store import connect
from sample_data.bulk import write_calls

OVERVIEW = {
    "KPIs + previous period": {"compare": "true", "metrics": "cost_usd,calls,error_rate,latency_p95,ttft_p50"},
    "hourly spend and calls": {"bucket": "hour", "metrics": "cost_usd,calls"},
    "hourly p50/p95/p99 by model": {"bucket": "hour", "group_by": "model", "metrics": "latency_p50,latency_p95"},
}


def _uptime() -> str:
    return Path("/proc/loadavg").read_text().split()[0:3].__str__()


def ingest_run(cfg: ingest.Config, env: dict[str, str] | None, label: str, nodes: int = 1) -> dict[str, float]:
    """One ingest run against `nodes` servers (each with cfg.clients clients); returns its figures."""
    dirs = [Path(tempfile.mkdtemp(prefix=f"callscope-lake-bench-{label}-")) for _ in range(nodes)]
    servers = [ingest.start_server(d, timeout=120, env=env) for d in dirs]
    groups = []
    try:
        for s in servers:
            groups.append(ingest.start_clients(cfg, s.http_port))
        schedules = [ingest.release_clients(cfg, g[1], g[2], g[3]) for g in groups]
        cpu = [ingest.watch_progress(cfg, schedules[i], s, groups[i][4]) for i, s in enumerate(servers[:1])]
        time.sleep(max(0.0, max(sc.end for sc in schedules) - time.monotonic()))
        results = [r for g in groups for r in ingest.collect_results(g[0], g[5])]
        writers = [ingest.writer_figures(s.http_port) for s in servers]
        for s in servers:
            ingest.stop_server(s)
    finally:
        for s in servers:
            if s.proc.poll() is None:
                s.proc.kill()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    spans = sum(r.acked_spans_window for r in results)
    cpu_from, cpu_to = cpu[0]
    cpu_s = (cpu_to[0] - cpu_from[0]) + (cpu_to[1] - cpu_from[1]) if cpu_from and cpu_to else float("nan")
    first = sum(r.acked_spans_window for r in results[: cfg.clients])
    commits = sum(w.get("callscope_commits_total", 0) for w in writers)
    commit_s = sum(w.get("callscope_commit_seconds_sum", 0) for w in writers)
    rows = sum(w.get("callscope_calls_recorded_total", 0) + w.get("callscope_spans_recorded_total", 0) for w in writers)
    return {
        "spans_per_s": spans / cfg.seconds,
        "cpu_us_per_span": cpu_s / first * 1e6 if first else float("nan"),
        "commit_ms": commit_s / commits * 1000 if commits else float("nan"),
        "commit_max_ms": max(w.get("callscope_commit_seconds_max", 0) for w in writers) * 1000,
        "rows_per_commit": rows / commits if commits else float("nan"),
        "acked_total": sum(r.acked_spans_total for r in results),
    }


def timed_overview(base: str, start: datetime, end: datetime, repeat: int) -> float:
    """Sum of the medians of the overview questions (seconds)."""
    total = 0.0
    window = {"from": start.isoformat(), "to": end.isoformat(), "format": "arrow"}
    with httpx.Client(base_url=base, timeout=300) as client:
        for params in OVERVIEW.values():
            client.get("/stats", params={**window, **params}).raise_for_status()  # warm-up
            runs = []
            for _ in range(repeat):
                t = time.perf_counter()
                client.get("/stats", params={**window, **params}).raise_for_status()
                runs.append(time.perf_counter() - t)
            total += statistics.median(runs)
    return total


def _serve(data_dir: Path, env: dict[str, str] | None) -> tuple[ingest.Server, str]:
    server = ingest.start_server(data_dir, timeout=300, env=env)
    base = f"http://127.0.0.1:{server.http_port}/api/v1"
    deadline = time.monotonic() + 600
    while httpx.get(base + "/meta", timeout=60).json().get("rollups_folded_through") is None:
        if time.monotonic() > deadline:
            raise RuntimeError("rollups never folded")
        time.sleep(0.5)
    return server, base


def _print_ingest(a: argparse.Namespace, embedded: dict, one: dict, two: dict) -> None:
    capacity_commits = 1000 / one["commit_ms"]
    capacity_spans = capacity_commits * one["rows_per_commit"]
    print("\n==================== callscope lake benchmark ====================")
    print(f"  ingest ({a.clients} clients x {a.spans_per_request} spans/request per node, {a.seconds:g} s window)")
    print(f"  {'':28}{'spans/s':>10}{'CPU us/span':>13}{'commit ms':>11}{'max ms':>8}{'rows/commit':>13}")
    for label, r in (("embedded file", embedded), ("lake, one node", one), ("lake, two nodes (total)", two)):
        print(
            f"  {label:28}{r['spans_per_s']:>10,.0f}{r['cpu_us_per_span']:>13,.0f}{r['commit_ms']:>11,.1f}"
            f"{r['commit_max_ms']:>8,.0f}{r['rows_per_commit']:>13,.0f}"
        )
    print(
        f"  one catalog: <= {capacity_commits:,.0f} commits/s (1 / {one['commit_ms']:.1f} ms under the commit lock)"
        f" x {one['rows_per_commit']:,.0f} rows/commit = {capacity_spans:,.0f} spans/s"
        f" = {capacity_spans / one['spans_per_s']:.1f} nodes at {one['spans_per_s']:,.0f} spans/s each"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--calls", type=int, default=10_000_000, help="calls behind the read API comparison")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--seconds", type=float, default=20.0, help="ingest measurement window")
    p.add_argument("--clients", type=int, default=2, help="client processes per node")
    p.add_argument("--spans-per-request", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--ingest-only", action="store_true", help="only steps 2, 3 and 6 (no maintenance, no read API)")
    a = p.parse_args()
    cfg = ingest.Config(a.clients, a.seconds, 3.0, a.spans_per_request, 4, 1e9, False)
    root = Path(tempfile.mkdtemp(prefix="callscope-lake-bench-"))
    pg_root = Path(tempfile.mkdtemp(prefix="callscope-pg-"))  # its own: the postgres user must reach it
    pg = Postgres(pg_root).start()
    try:
        print(f"load before: {_uptime()}", flush=True)
        conninfo = pg.new_database()
        lake_dir = root / "lake-data"
        env = lake_env(conninfo, lake_dir, CALLSCOPE_LAKE_MAINTENANCE_SECONDS="86400")
        embedded = ingest_run(cfg, None, "embedded")
        one = ingest_run(cfg, env, "lake")
        two = ingest_run(cfg, env, "lake2", nodes=2)
        print(f"load after ingest: {_uptime()}", flush=True)

        db = lake.connect(lake.LakeConfig(conninfo, str(lake_dir)))
        (stored,) = db.execute("SELECT count(*) FROM calls").fetchone()
        assert stored == one["acked_total"] + two["acked_total"], (stored, one, two)
        if a.ingest_only:
            db.close()
            _print_ingest(a, embedded, one, two)
            print(f"  stored in the lake = acked: {stored:,}; load average at the end: {_uptime()}")
            return 0
        node_dir = root / "node"
        node_dir.mkdir()
        server, base = _serve(node_dir, env)
        end = datetime.now(UTC) + timedelta(minutes=1)
        before_q = timed_overview(base, end - timedelta(days=1), end, a.repeat)
        t = time.perf_counter()
        report = lake.maintain(db, keep_hours=0.0)
        maintain_s = time.perf_counter() - t
        after_q = timed_overview(base, end - timedelta(days=1), end, a.repeat)
        ingest.stop_server(server)
        db.close()

        src = root / "embedded"
        src.mkdir()
        t = time.perf_counter()
        sdb = connect(src / "callscope.duckdb")
        write_calls(sdb, n_calls=a.calls, days=a.days, end=datetime.now(UTC), seed=1)
        sdb.execute("CHECKPOINT")
        sdb.close()
        print(f"bulk store of {a.calls:,} calls in {time.perf_counter() - t:.0f} s", flush=True)
        big = pg.new_database()
        big_dir = root / "big-lake"
        t = time.perf_counter()
        bdb = lake.connect(lake.LakeConfig(big, str(big_dir)))
        copy_store(bdb, src / "callscope.duckdb", chunk_rows=2_000_000)
        big_files = lake.data_files(bdb)
        bdb.close()
        copy_s = time.perf_counter() - t
        print(f"copied into a lake in {copy_s:.0f} s ({big_files} data files)", flush=True)
        q_end = datetime.now(UTC) + timedelta(minutes=1)
        q_start = q_end - timedelta(days=a.days)
        results = {}
        for label, env_q, data_dir in (("embedded", None, src), ("lake", lake_env(big, big_dir), root / "bignode")):
            data_dir.mkdir(exist_ok=True)
            server, base = _serve(data_dir, env_q)
            results[label] = timed_overview(base, q_start, q_end, a.repeat)
            ingest.stop_server(server)
        load = _uptime()
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(pg_root, ignore_errors=True)

    _print_ingest(a, embedded, one, two)
    print(
        f"  maintenance: data files {report['data_files_before']} -> {report['data_files_after']} in"
        f" {maintain_s:.1f} s; overview (last day, {stored:,} calls) {before_q:.3f} s -> {after_q:.3f} s"
    )
    print(f"  read API overview over {a.calls:,} calls ({a.days} days; sum of 3 medians):")
    print(f"    embedded file {results['embedded']:.3f} s   lake {results['lake']:.3f} s   (copy took {copy_s:.0f} s)")
    print(f"  load average at the end: {load}")
    print("==================================================================")
    return 0


if __name__ == "__main__":
    sys.exit(main())
