"""How much of the store each table takes on disk, and how to give freed space back to the file system.

DuckDB reports no per-table size, but `pragma_storage_info` says, per column segment, which block holds it and
at which offset. A segment's size is the distance to the next segment in the same block (or to the block's end),
plus the whole blocks it continues into. Indexes (primary keys) live in blocks no segment names: they are the
part of the file the tables do not account for, reported as `(indexes and free)`.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import duckdb

OTHER = "(indexes and free)"


@dataclass(frozen=True)
class StoreSize:
    file_bytes: int  # the database file on disk (without its WAL)
    wal_bytes: int
    block_size: int
    used_blocks: int
    free_blocks: int
    tables: dict[str, int]  # table -> bytes its column segments take
    rows: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return {
            "file_bytes": self.file_bytes,
            "wal_bytes": self.wal_bytes,
            "used_blocks": self.used_blocks,
            "free_blocks": self.free_blocks,
            "block_size": self.block_size,
            "tables": {t: {"bytes": b, "rows": self.rows.get(t, 0)} for t, b in sorted(self.tables.items())},
        }


def database_file(db: duckdb.DuckDBPyConnection) -> Path | None:
    rows = db.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    return Path(rows[0][0]) if rows and rows[0][0] else None


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except FileNotFoundError:
        return 0


def measure(db: duckdb.DuckDBPyConnection) -> StoreSize:
    """Bytes per table (column segments only, as last checkpointed: rows still in the WAL count as WAL)."""
    info = db.execute("SELECT block_size, total_blocks, used_blocks, free_blocks FROM pragma_database_size()")
    block_size, _total, used, free = info.fetchall()[0]
    tables = [
        r[0]
        for r in db.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    ]
    segments: list[tuple[str, int, int, list[int]]] = []  # table, block, offset, further blocks
    rows: dict[str, int] = {}
    for table in tables:
        quoted = table.replace("'", "''")
        found = db.execute(
            "SELECT block_id, block_offset, additional_block_ids FROM pragma_storage_info(?)"
            " WHERE persistent AND block_id IS NOT NULL AND block_id >= 0",
            [quoted],
        ).fetchall()
        segments += [(table, b, o, list(extra or [])) for b, o, extra in found]
        rows[table] = db.execute(f'SELECT count(*) FROM "{table.replace(chr(34), chr(34) * 2)}"').fetchall()[0][0]  # noqa: S608 (catalogue names)
    offsets: dict[int, list[int]] = defaultdict(list)
    for _, block, offset, _ in segments:
        offsets[block].append(offset)
    for block in offsets:
        offsets[block].sort()
    sizes: dict[str, int] = defaultdict(int)
    for table, block, offset, extra in segments:
        following = [o for o in offsets[block] if o > offset]
        end = following[0] if following else block_size
        sizes[table] += (end - offset) + len(extra) * block_size
    path = database_file(db)
    wal = path.with_name(path.name + ".wal") if path is not None else None
    return StoreSize(
        file_bytes=_size(path),
        wal_bytes=_size(wal),
        block_size=int(block_size),
        used_blocks=int(used),
        free_blocks=int(free),
        tables={t: sizes.get(t, 0) for t in tables},
        rows=rows,
    )


class CachedSize:
    """`measure` at most once per `max_age_s` (reading the storage info of every table takes 1-2 s of CPU at 10M
    calls, which on a small machine competes with queries and ingest)."""

    def __init__(self, db: duckdb.DuckDBPyConnection, max_age_s: float = 300.0) -> None:
        self._db = db
        self._max_age = max_age_s
        self._lock = threading.Lock()
        self._value: StoreSize | None = None
        self._at = 0.0
        self._refreshing = False

    def get(self) -> StoreSize:
        with self._lock:
            if self._value is None or time.monotonic() - self._at > self._max_age:
                cur = self._db.cursor()
                try:
                    self._value = measure(cur)
                finally:
                    cur.close()
                self._at = time.monotonic()
            return self._value

    def latest(self) -> StoreSize | None:
        """The last measurement without waiting (at 10M calls measuring takes ~1-2 s): a stale or missing one is
        refreshed in the background, and None is answered until the first measurement is done."""
        with self._lock:
            stale = self._value is None or time.monotonic() - self._at > self._max_age
            if stale and not self._refreshing:
                self._refreshing = True
                threading.Thread(target=self._refresh, name="callscope-store-size", daemon=True).start()
            return self._value

    def _refresh(self) -> None:
        try:
            cur = self._db.cursor()
            try:
                value = measure(cur)
            finally:
                cur.close()
            with self._lock:
                self._value, self._at = value, time.monotonic()
        except Exception:  # a closing store: the next call tries again
            pass
        finally:
            with self._lock:
                self._refreshing = False

    def invalidate(self) -> None:
        """After a deletion: the next look measures again (the last value stays until then)."""
        with self._lock:
            self._at = float("-inf")


def render_metrics(size: StoreSize) -> str:
    """Prometheus text for /metrics: the file, its WAL, and bytes and rows per table."""
    lines = [
        "# HELP callscope_store_file_bytes Size of the DuckDB file on disk.",
        "# TYPE callscope_store_file_bytes gauge",
        f"callscope_store_file_bytes {size.file_bytes}",
        "# HELP callscope_store_wal_bytes Size of the write-ahead log not yet checkpointed.",
        "# TYPE callscope_store_wal_bytes gauge",
        f"callscope_store_wal_bytes {size.wal_bytes}",
        "# HELP callscope_store_free_bytes Free blocks inside the file (reused before the file grows).",
        "# TYPE callscope_store_free_bytes gauge",
        f"callscope_store_free_bytes {size.free_blocks * size.block_size}",
        "# HELP callscope_store_table_bytes Bytes of a table's column segments (as of the last checkpoint).",
        "# TYPE callscope_store_table_bytes gauge",
    ]
    lines += [f'callscope_store_table_bytes{{table="{t}"}} {b}' for t, b in sorted(size.tables.items())]
    lines += [
        "# HELP callscope_store_table_rows Rows of a table.",
        "# TYPE callscope_store_table_rows gauge",
    ]
    lines += [f'callscope_store_table_rows{{table="{t}"}} {n}' for t, n in sorted(size.rows.items())]
    return "\n".join(lines) + "\n"
