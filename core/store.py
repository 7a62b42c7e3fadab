"""Opening the DuckDB store and bringing its schema up to date."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb

from core.migrations import MIGRATIONS

log = logging.getLogger(__name__)


class StoreLockedError(RuntimeError):
    """Another process holds the store open (DuckDB allows one read-write process per file)."""


class StoreVersionError(RuntimeError):
    """The store file was written by a newer DuckDB than the pinned one (see the README for the conversion)."""


def connect(
    path: Path, *, read_only: bool = False, checkpoint_mb: int | None = None, threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    """Open the store; a missing file is created (unless read_only) and migrated. `checkpoint_mb`: the WAL size
    at which DuckDB checkpoints (its default is 16 MB); `threads`: DuckDB's worker threads (its default is one
    per CPU)."""
    if read_only and not path.exists():
        raise FileNotFoundError(f"no callscope store at {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StoreLockedError(
                f"the store {path} is in use by another process (is `callscope serve` running?)"
            ) from exc
        if "created with an newer version" in str(exc) or "newer version of DuckDB" in str(exc):
            raise StoreVersionError(
                f"the store {path} was written by a newer DuckDB than the installed {duckdb.__version__} (lake"
                " mode's install pins 1.5.5): convert it once as the README says under 'Stores written by DuckDB 2.x'"
            ) from exc
        raise
    db.execute("SET TimeZone = 'UTC'")
    if checkpoint_mb is not None and not read_only:
        db.execute(f"SET checkpoint_threshold = '{int(checkpoint_mb)}MB'")
    if threads is not None:
        db.execute(f"SET threads = {int(threads)}")
    if not read_only:
        migrate(db)
    return db


def open_store(settings, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """The store the settings name: the embedded file (default) or the lake (core/lake.py), schema up to date.
    `settings`: core.settings.Settings (not imported here: settings imports nothing of the store)."""
    if settings.store == "lake":
        from core import lake

        return lake.connect(lake.LakeConfig.from_settings(settings), threads=settings.duckdb_threads or None)
    return connect(
        settings.db_path,
        read_only=read_only,
        checkpoint_mb=None if read_only else settings.checkpoint_mb,
        threads=settings.duckdb_threads or None,
    )


def set_state(db: duckdb.DuckDBPyConnection, table: str, column: str, name: str, value: int) -> None:
    """Upsert one (name -> value) row of a job's bookmark table (rollup_state, detection_state). MERGE rather
    than INSERT ... ON CONFLICT: a lake (core/lake.py) has no primary key to conflict on, and both stores take
    MERGE. `table` and `column` are constants of the callers."""
    db.execute(
        f"MERGE INTO {table} t USING (SELECT $name AS name, $value::BIGINT AS value) s ON t.name = s.name"
        f" WHEN MATCHED THEN UPDATE SET {column} = s.value WHEN NOT MATCHED THEN INSERT VALUES (s.name, s.value)",
        {"name": name, "value": value},
    )


def applied_migrations(db: duckdb.DuckDBPyConnection) -> list[str]:
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
    )
    return [row[0] for row in db.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()]


def migrate(db: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations not yet applied, each in its own transaction; return their names."""
    done = set(applied_migrations(db))
    newly = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        db.execute("BEGIN TRANSACTION")
        try:
            fn(db)
            db.execute("INSERT INTO schema_migrations VALUES (?, now())", [name])
            db.execute("COMMIT")
        except Exception:
            db.execute("ROLLBACK")
            raise
        log.info("applied migration %s", name)
        newly.append(name)
    return newly


# How a writer serialises its transactions with the other writers of a shared store: a context manager held from
# before BEGIN until after COMMIT (a lake's commit lock, callscope/lake_node.py). None: nothing to serialise with
# (the embedded file, whose transactions DuckDB isolates itself).
WriteLock = Callable[[], contextlib.AbstractContextManager[None]]


_store_lock: WriteLock | None = None


def serialise_writes(lock: WriteLock | None) -> None:
    """Make every transaction() of this process without a lock of its own hold `lock`: a lake node's commit lock
    (set by `callscope serve`), so budgets, users, sessions and keys written on several nodes are serialised like
    the collector's and the alerts' writes (DuckLake let two concurrent transactions update the same row and both
    commit). The callers pass cursors as often as connections, hence the process, not the connection, holds it."""
    global _store_lock
    _store_lock = lock


def held(lock: WriteLock | None) -> contextlib.AbstractContextManager[None]:
    """The lock's block, or nothing to hold."""
    return lock() if lock is not None else contextlib.nullcontext()


@contextlib.contextmanager
def transaction(db: duckdb.DuckDBPyConnection, lock: WriteLock | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor of its own (UTC) inside one transaction: committed when the block ends, rolled back if it raises.
    `lock`: held around the whole transaction, so it begins after every commit made under the lock before it;
    by default the process's (serialise_writes: a lake node's commit lock; none on the embedded file)."""
    with held(lock if lock is not None else _store_lock), _transaction(db) as cur:
        yield cur


_IS_LAKE = "SELECT 1 FROM duckdb_databases() WHERE database_name = 'lake' AND type = 'ducklake'"


@contextlib.contextmanager
def _transaction(db: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    cur = db.cursor()
    try:
        # A cursor's own cursor starts in DuckDB's default database, not the one its parent USEs: on a lake (attached
        # as `lake`, whose cursors USE it: core/lake.py) the transaction must work in the lake whatever it was given.
        # Asked on the new cursor only: `db` may be the connection other threads use.
        if cur.execute(_IS_LAKE).fetchall():
            cur.execute("USE lake")
        cur.execute("SET TimeZone = 'UTC'")
        cur.execute("BEGIN TRANSACTION")
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
    finally:
        cur.close()
