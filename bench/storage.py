"""Storage benchmark: bytes per call at N generated calls, per table and per column of `calls`.

Method: a fresh store (migrated to the current schema), N calls from sample_data.bulk (30 days, 20 models, 5,000
users, no captured content: the generator sends none), CHECKPOINT, then the file's size over the number of calls
and each column's share (core/storage.py's segment accounting). `--half` then deletes the older half of the calls
through the retention code (bounded batches), checkpoints, and prints the file size again, before and after the
compaction that gives the freed blocks back to the file system.

Run: `.venv/bin/python bench/storage.py [--calls 10000000] [--data-dir DIR] [--half]`
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.storage import measure  # noqa: E402
from core.store import connect  # noqa: E402


def column_bytes(db, table: str, block_size: int) -> dict[str, int]:
    """Bytes per column of one table (same accounting as core/storage.py, per column)."""
    rows = db.execute(
        "SELECT table_name, column_name, block_id, block_offset, additional_block_ids FROM ("
        " SELECT ? AS table_name, * FROM pragma_storage_info(?)) WHERE persistent AND block_id >= 0",
        [table, table],
    ).fetchall()
    all_offsets: dict[int, list[int]] = defaultdict(list)
    for t in [r[0] for r in db.execute("SELECT table_name FROM duckdb_tables()").fetchall()]:
        for b, o in db.execute(
            "SELECT block_id, block_offset FROM pragma_storage_info(?) WHERE persistent AND block_id >= 0", [t]
        ).fetchall():
            all_offsets[b].append(o)
    for b in all_offsets:
        all_offsets[b].sort()
    out: dict[str, int] = defaultdict(int)
    for _, column, block, offset, extra in rows:
        following = [o for o in all_offsets[block] if o > offset]
        out[column] += ((following[0] if following else block_size) - offset) + len(extra or []) * block_size
    return dict(out)


def report(db, calls: int, label: str) -> None:
    size = measure(db)
    print(f"{label}: file {size.file_bytes / 1e6:,.1f} MB = {size.file_bytes / max(calls, 1):.1f} bytes per call")
    for table, b in sorted(size.tables.items(), key=lambda kv: -kv[1]):
        if b:
            print(f"  {table:<18} {b / 1e6:10,.1f} MB  {size.rows[table]:>12,} rows")
    accounted = sum(size.tables.values())
    print(f"  {'(indexes and free)':<18} {(size.file_bytes - accounted) / 1e6:10,.1f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse/keep the store here")
    parser.add_argument("--half", action="store_true", help="then delete the older half and measure the file")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="callscope-storage-"))
    path = data_dir / "callscope.duckdb"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"commit {commit.stdout.strip()}, load average {load}")
    db = connect(path)
    have = db.execute("SELECT count(*) FROM calls").fetchall()[0][0]
    if have < args.calls:
        from sample_data.bulk import write_calls

        started = time.perf_counter()
        end = datetime(2026, 6, 1, tzinfo=UTC)
        write_calls(db, n_calls=args.calls - have, days=30, end=end, seed=42, n_users=5000, n_models=20)
        db.execute("CHECKPOINT")
        print(f"generated {args.calls - have:,} calls in {time.perf_counter() - started:.0f} s")
    calls = db.execute("SELECT count(*) FROM calls").fetchall()[0][0]
    report(db, calls, f"{calls:,} calls")
    size = measure(db)
    per_column = column_bytes(db, "calls", size.block_size)
    print("calls, bytes per call by column:")
    for column, b in sorted(per_column.items(), key=lambda kv: -kv[1]):
        print(f"  {column:<20} {b / calls:6.2f}")
    if args.half:
        from analytics import retention

        median = db.execute("SELECT epoch_us(quantile_disc(start_time, 0.5)) FROM calls").fetchall()[0][0]
        started = time.perf_counter()
        removed = retention.delete_before(db, "calls", "start_time", median, batch_rows=200_000)
        db.execute("CHECKPOINT")
        print(f"deleted {removed:,} calls (the older half) in {time.perf_counter() - started:.1f} s")
        report(db, calls - removed, "after DELETE + CHECKPOINT")
        db.close()
        started = time.perf_counter()
        retention.compact_file(path)
        print(f"compacted (copy and swap) in {time.perf_counter() - started:.1f} s")
        db = connect(path)
        report(db, calls - removed, "after compaction")
    db.close()
    if args.data_dir is None:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
