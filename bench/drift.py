"""Drift and anomaly jobs over 10 million calls: seconds and peak RSS of each, and ingest while they run.

Method
------
1. Store: --calls (10M) generated calls over --days (30) ending at the last whole hour (sample_data.bulk, seed 42,
   as bench/query.py), in --data-dir (reused when it already holds them; its end is kept in bench-end.txt). The
   jobs run at that end; the --ingest part runs the server's jobs at the real time, so reuse a store of the same
   day for it.
2. Each job runs in a fresh Python process on the store (the store opened read-write, DuckDB's default threads):
   - drift: the drift job's run at the store's end (every cell x 7 metrics, last 24 h vs the 7 days before; it
     always reads both windows whole);
   - anomalies (first run): every complete hour of the last anomaly_history_weeks + 1 weeks from the raw calls,
     scored and stored (what `callscope serve` does the first time on a filled store);
   - anomalies (next run): the hour after, as every later run (touched hours only).
   Printed: wall seconds of the job's run_once, and the process's peak RSS (VmHWM, read before the store is closed:
   the checkpoint at close is not the job's) and its RSS before the job.
3. Precision and recall of the anomalies of the first run against the script's incidents (bench/drift_quality.py
   defines them), on this store.
4. With --ingest: `callscope serve` on the store with drift_interval_seconds 10 (a full drift run every ~10 s,
   against the ~1 per hour by default), and bench/ingest.py's clients (4 processes, 512-span requests) for
   --ingest-seconds after a warm-up; then the same with the drift job every hour (it runs once at start, before the
   window). Printed: acked spans/s of both and the drift runs that fell in the window. This writes the ingested
   spans into the store; run it last.

Targets (issue 12): each job under 30 s over 10M calls, without holding ingest below 30k spans/s.

Run: `.venv/bin/python bench/drift.py [--calls 10000000] [--days 30] [--data-dir DIR] [--ingest]`
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

END_FILE = "bench-end.txt"  # the store's end, written when it is generated (the script's incidents follow from it)


def store_end(data_dir: Path) -> datetime:
    """The instant the store's generated calls end: the last whole hour when generated now, or as recorded."""
    path = data_dir / END_FILE
    if path.exists():
        return datetime.fromisoformat(path.read_text().strip())
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    path.write_text(end.isoformat())
    return end


def status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since exec: unlike ru_maxrss, not inherited from the forking parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_job(data_dir: Path, job: str, now: datetime) -> dict:
    """One job in this process; returns its figures."""
    from analytics.anomalies import job as anomaly_job
    from analytics.anomalies.job import AnomalyConfig
    from analytics.drift import job as drift_job
    from analytics.drift.config import DriftConfig
    from core.store import connect

    db = connect(data_dir / "callscope.duckdb")
    if job == "anomalies-first":
        db.execute("DELETE FROM anomaly_scores; DELETE FROM detection_state WHERE name = 'anomalies'")
    before = status_mb("VmRSS")
    started = time.perf_counter()
    if job == "drift":
        run = drift_job.run_once(db, DriftConfig(), now=now)
        detail = f"{run.cells} cells, {run.drifted} drifted"
    else:
        result = anomaly_job.run_once(db, AnomalyConfig(), now=now)
        detail = f"{result.hours} hours, {result.rows:,} series values, {result.anomalies} anomalies"
    seconds = time.perf_counter() - started
    peak = status_mb("VmHWM")  # before close: its checkpoint is not the job
    db.close()
    return {"job": job, "seconds": seconds, "peak_rss_mb": peak, "rss_before_mb": before, "detail": detail}


def job_in_subprocess(data_dir: Path, job: str, now: datetime) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--data-dir", str(data_dir), "--run-job", job, "--now", now.isoformat()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def precision_recall(data_dir: Path, days: int, end: datetime) -> str:
    import duckdb

    from bench.drift_quality import score_anomalies
    from sample_data.script import script_for

    db = duckdb.connect(str(data_dir / "callscope.duckdb"), read_only=True)
    try:
        score = score_anomalies(db, script_for(end, days), 4)
    finally:
        db.close()
    return (
        f"incidents found {len(score.incidents_found)}/3 (missed: {', '.join(score.incidents_missed) or 'none'});"
        f" incident cells flagged {score.incident_flagged} of {score.incident_cells} scored (recall"
        f" {score.cell_recall:.0%}); {score.flagged} cells flagged: precision {score.precision:.0%} (incident cells),"
        f" {score.precision_scripted:.0%} counting the series of scripted changes ({score.change_flagged})"
    )


def ingest_with_jobs(data_dir: Path, seconds: float, drift_interval: float) -> tuple[float, int]:
    """Acked spans/s of bench/ingest.py's 4 clients against serve on the store, and drift runs in the window."""
    import os

    from bench import ingest

    cfg = ingest.Config(4, seconds, 5.0, 512, 8, 10.0, True)
    os.environ["CALLSCOPE_DRIFT_INTERVAL_SECONDS"] = str(drift_interval)
    log = data_dir / "server.log"
    log.write_text("")
    server = ingest.start_server(data_dir, timeout=600)
    try:
        time.sleep(20)  # the jobs' first runs at start (rollup fold, anomalies, drift) are not the point here
        procs, ready, go, schedule_values, acked, results_q = ingest.start_clients(cfg, server.http_port)
        schedule = ingest.release_clients(cfg, ready, go, schedule_values)
        window = (time.time() + (schedule.measure_from - time.monotonic()), 0.0)
        ingest.watch_progress(cfg, schedule, server, acked)
        window = (window[0], window[0] + cfg.seconds)
        results = ingest.collect_results(procs, results_q)
        spans = sum(r.acked_spans_window for r in results)
    finally:
        ingest.stop_server(server)
        os.environ.pop("CALLSCOPE_DRIFT_INTERVAL_SECONDS", None)
    runs = 0
    for line in log.read_text().splitlines():
        if "callscope.jobs: drift: run" in line or " drift: run " in line:
            stamp = datetime.fromisoformat(line.split(" ", 1)[0]).timestamp()
            runs += window[0] <= stamp <= window[1]
    return spans / cfg.seconds, runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/callscope-drift-bench"))
    parser.add_argument("--ingest", action="store_true", help="also measure ingest while the drift job runs")
    parser.add_argument("--ingest-seconds", type=float, default=30.0)
    parser.add_argument("--run-job", help=argparse.SUPPRESS)
    parser.add_argument("--now", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_job:
        print(json.dumps(run_job(args.data_dir, args.run_job, datetime.fromisoformat(args.now))))
        return 0

    from bench.query import ensure_store

    args.data_dir.mkdir(parents=True, exist_ok=True)
    end = store_end(args.data_dir)
    ensure_store(args.data_dir, args.calls, args.days, end)
    now = end + timedelta(minutes=5)
    for job, at in (("drift", now), ("anomalies-first", now), ("anomalies-next", now + timedelta(hours=1))):
        figures = job_in_subprocess(args.data_dir, job, at)
        print(
            f"{job:16} {figures['seconds']:6.1f} s  peak RSS {figures['peak_rss_mb']:,.0f} MB"
            f" (before the job {figures['rss_before_mb']:,.0f} MB)  {figures['detail']}",
            flush=True,
        )
    print("anomalies vs the script:", precision_recall(args.data_dir, args.days, end), flush=True)
    if args.ingest:
        busy, runs = ingest_with_jobs(args.data_dir, args.ingest_seconds, 10.0)
        quiet, quiet_runs = ingest_with_jobs(args.data_dir, args.ingest_seconds, 3600.0)
        print(
            f"ingest, 4 clients x 512-span requests, {args.ingest_seconds:g} s: {busy:,.0f} spans/s with the drift job"
            f" every 10 s ({runs} full runs in the window) against {quiet:,.0f} spans/s without ({quiet_runs})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
