"""Re-pricing speed over a large store, and budget evaluation time.

Method
------
1. Store: --calls synthetic calls (default 10M) over 30 days (20 models; sample_data.bulk, as bench/query.py),
   written straight into a fresh store, or an existing store reused with --data-dir.
2. Re-pricing (analytics/reprice.py, the engine behind `callscope reprice` and the API action), in-process on the
   store file (as `callscope reprice` does on a stopped store):
   a. a price entry for the most used model is added, then the whole store is re-priced: every call is read and
      priced, the changed ones (that model's) are written with their previous cost kept;
   b. the same run again: every call read and priced, nothing changes (idempotent) - the scan-and-price speed.
   Each prints seconds and calls/s.
3. Budget evaluation (analytics/budgets.py evaluate: month to date + 112 days of history as daily spend, answered
   from the hourly rollups where exact as the read API does, after the rollup job's fold; forecast): 5 budgets
   (the whole store, one service, one model, a tag, a weekly budget), --repeat times each; min / median seconds.

Run: `.venv/bin/python bench/reprice.py [--calls 10000000] [--data-dir DIR] [--repeat 5]`
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics import budgets, reprice
from analytics.query import Filters, Selection
from analytics.rollups import fold
from analytics.timewin import TimeRange
from bench.query import ensure_store, store_bounds
from collector.price_book import PriceBookService
from core.store import connect


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def timed_run(db, selection: Selection, service: PriceBookService, label: str) -> None:
    progress = reprice.start_run(db, selection, "bench", {})
    started = time.perf_counter()
    result = reprice.run(db, selection, service.pricer(), progress, grace_s=0)
    seconds = time.perf_counter() - started
    print(
        f"reprice {label}: {result.scanned:,} calls in {seconds:.1f} s = {result.scanned / seconds:,.0f} calls/s;"
        f" {result.changed:,} changed; status {result.status}; {load()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-reprice", action="store_true", help="only the budget evaluation")
    args = parser.parse_args()
    tmp = None
    data_dir = args.data_dir
    if data_dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="callscope-reprice-"))
        data_dir = tmp
    try:
        ensure_store(data_dir, args.calls, args.days, datetime.now(UTC))
        lo, hi = store_bounds(data_dir)
        db = connect(data_dir / "callscope.duckdb")
        try:
            top_model = db.execute(
                "SELECT coalesce(response_model, request_model) m, provider FROM calls GROUP BY ALL"
                " ORDER BY count(*) DESC LIMIT 1"
            ).fetchone()
            service = PriceBookService(db)
            service.load()
            for entry in service.entries():
                if entry.source == "api" and entry.note == "bench":
                    service.delete(entry.entry_id, "bench")  # type: ignore[arg-type]
            service.add(
                {
                    "provider": top_model[1] or "*",
                    "model": top_model[0],
                    "input_mtok": 1.234,
                    "output_mtok": 5.678,
                    "note": "bench",
                    "valid_from": lo.isoformat(),
                },
                "bench",
            )
            selection = Selection(TimeRange(lo, datetime.now(UTC)), Filters())
            print(f"store: {db.execute('SELECT count(*) FROM calls').fetchone()[0]:,} calls; entry for {top_model[0]}")
            if not args.skip_reprice:
                timed_run(db, selection, service, "with changes (a new entry)")
                timed_run(db, selection, service, "again (idempotent, nothing changes)")
            started = time.perf_counter()
            folded = fold(db, lag_s=0)  # as the server's rollup job does; budgets read whole hours from rollups
            print(f"rollups: {folded.hours} hours folded in {time.perf_counter() - started:.1f} s")
            service_name = db.execute("SELECT service FROM calls WHERE service IS NOT NULL LIMIT 1").fetchone()[0]
            specs = [
                {"name": "all", "amount_usd": 10_000},
                {"name": "service", "amount_usd": 1_000, "filters": {"service": service_name}},
                {"name": "model", "amount_usd": 1_000, "filters": {"model": top_model[0]}},
                {"name": "tag", "amount_usd": 500, "filters": {"tag": "beta"}},
                {"name": "weekly", "amount_usd": 2_000, "period": "week"},
            ]
            for spec in specs:
                budget = budgets.parse_budget(spec)
                times = []
                for _ in range(args.repeat + 1):
                    started = time.perf_counter()
                    result = budgets.evaluate(db, budget, hi)
                    times.append(time.perf_counter() - started)
                times = times[1:]
                print(
                    f"budget {spec['name']:<8} evaluate: min {min(times) * 1000:.0f} ms, median"
                    f" {statistics.median(times) * 1000:.0f} ms (spent {result['spent_usd']:,.0f} USD); {load()}"
                )
        finally:
            db.close()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
