"""`callscope migrate --to`: copy a stopped embedded store into a lake, resumable, with verified counts.

The source file is attached read-only to the lake's connection and copied table by table with INSERT ... SELECT
in chunks of source rowids (stable in a file nobody writes). Each chunk commits together with its progress row in
`callscope_copy_progress` (one DuckLake transaction), so a copy that was stopped resumes after its last committed
chunk and never copies a row twice. At the end every table's count is compared with the source's; when all agree
the progress table is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from core.store import applied_migrations

PROGRESS = "callscope_copy_progress"


class CopyError(RuntimeError):
    """The copy cannot start or did not verify; the message says why."""


@dataclass
class TableCopy:
    table: str
    source_rows: int
    lake_rows: int = 0

    @property
    def ok(self) -> bool:
        return self.source_rows == self.lake_rows


def _tables(db: duckdb.DuckDBPyConnection, catalog: str) -> list[str]:
    rows = db.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main' ORDER BY table_name",
        [catalog],
    ).fetchall()
    return [r[0] for r in rows if r[0] not in ("schema_migrations", PROGRESS)]


def _columns(db: duckdb.DuckDBPyConnection, catalog: str, table: str) -> list[str]:
    rows = db.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'main'"
        " AND table_name = ? ORDER BY column_index",
        [catalog, table],
    ).fetchall()
    return [r[0] for r in rows]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def copy_store(
    lake_db: duckdb.DuckDBPyConnection,
    source: Path,
    *,
    chunk_rows: int = 500_000,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> list[TableCopy]:
    """Copy the embedded store at `source` into the lake open on `lake_db` (core/lake.connect). `total` is told
    the rows still to copy, `progress` each chunk's rows. Returns each table's counts (verified by the caller)."""
    if not source.is_file():
        raise CopyError(f"no callscope store at {source}")
    db = lake_db.cursor()
    db.execute(f"ATTACH {_literal(str(source))} AS copy_source (READ_ONLY)")
    try:
        src_done = [r[0] for r in db.execute("SELECT name FROM copy_source.schema_migrations ORDER BY name").fetchall()]
        lake_done = applied_migrations(db)
        if src_done != lake_done:
            raise CopyError(
                "the source store and the lake are at different schema versions: open the source once with this"
                " version's `callscope serve` (it migrates), then copy"
            )
        db.execute(f"CREATE TABLE IF NOT EXISTS {PROGRESS} (table_name VARCHAR NOT NULL, next_rowid BIGINT NOT NULL)")
        resumed = dict(db.execute(f"SELECT table_name, next_rowid FROM {PROGRESS}").fetchall())  # noqa: S608
        plan = []
        for table in _tables(db, "lake"):
            cols = [c for c in _columns(db, "lake", table) if c in set(_columns(db, "copy_source", table))]
            n = db.execute(f"SELECT count(*) FROM copy_source.main.{_quote(table)}").fetchone()[0]  # noqa: S608
            (end,) = db.execute(f"SELECT coalesce(max(rowid) + 1, 0) FROM copy_source.main.{_quote(table)}").fetchone()  # noqa: S608
            start = resumed.get(table, 0)
            if table not in resumed:
                (there,) = db.execute(f"SELECT count(*) FROM lake.main.{_quote(table)}").fetchone()  # noqa: S608
                if there:
                    raise CopyError(f"the lake's table {table} already holds {there} rows: copy into an empty lake")
            left = db.execute(
                f"SELECT count(*) FROM copy_source.main.{_quote(table)} WHERE rowid >= ?",  # noqa: S608
                [start],
            ).fetchone()[0]
            plan.append((table, cols, n, start, end, left))
        if total is not None:
            total(sum(p[5] for p in plan))
        results = []
        for table, cols, n, start, end, _left in plan:
            names = ", ".join(_quote(c) for c in cols)
            for lo in range(start, end, chunk_rows):
                hi = min(lo + chunk_rows, end)
                db.execute("BEGIN TRANSACTION")
                try:
                    (copied,) = db.execute(
                        f"INSERT INTO lake.main.{_quote(table)} ({names}) SELECT {names}"  # noqa: S608
                        f" FROM copy_source.main.{_quote(table)} WHERE rowid >= ? AND rowid < ?",
                        [lo, hi],
                    ).fetchone()
                    db.execute(f"DELETE FROM {PROGRESS} WHERE table_name = ?", [table])  # noqa: S608
                    db.execute(f"INSERT INTO {PROGRESS} VALUES (?, ?)", [table, hi])  # noqa: S608
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                if progress is not None:
                    progress(int(copied))
            (there,) = db.execute(f"SELECT count(*) FROM lake.main.{_quote(table)}").fetchone()  # noqa: S608
            results.append(TableCopy(table, int(n), int(there)))
        if all(r.ok for r in results):
            db.execute(f"DROP TABLE {PROGRESS}")
        return results
    finally:
        db.execute("USE lake")
        db.execute("DETACH copy_source")
        db.close()


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
