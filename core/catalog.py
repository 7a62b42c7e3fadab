"""The lake's catalog database (PostgreSQL) as the nodes' meeting point: advisory locks.

- the commit lock: every node's writer holds it from the start of a lake transaction to its COMMIT, so commits
  are serialised and each one sees every span committed before it (the exactly-once check, collector/writer.py);
- the job lease: the node holding it runs the jobs that must run once per store (rollups, alerts, notification,
  detection, maintenance). It is a session lock: when a node dies its connection closes and PostgreSQL frees the
  lock at once (a machine that vanishes without closing: within the TCP keepalive time set below); a standby
  node takes it at its next try.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

import psycopg

log = logging.getLogger(__name__)

COMMIT_LOCK = 0x63730002
JOB_LEASE = 0x63730003
# A vanished peer (no FIN) is noticed by PostgreSQL after about idle + interval * count seconds.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}


def open_connection(conninfo: str) -> psycopg.Connection:
    return psycopg.connect(conninfo, autocommit=True, connect_timeout=10, **KEEPALIVE)


class Catalog:
    """One connection to the catalog database, for locks (not for data: DuckLake keeps its own)."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.Connection | None = None
        self._mutex = threading.RLock()  # re-entered by execute() and by a nested locked() of the same thread
        self._held: dict[int, int] = {}  # advisory lock -> how deeply the thread holding _mutex holds it

    def __enter__(self) -> Catalog:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = open_connection(self._conninfo)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def execute(self, sql: str, params: list | None = None) -> psycopg.Cursor:
        """One statement on this connection (autocommit), e.g. the id sequences (core/ids.py)."""
        with self._mutex:
            try:
                self.open()
                assert self._conn is not None
                return self._conn.execute(sql, params)
            except psycopg.OperationalError:  # broken since its last use: reopened once
                self.close()
                self.open()
                assert self._conn is not None
                return self._conn.execute(sql, params)

    @contextlib.contextmanager
    def locked(self, key: int) -> Iterator[None]:
        """Hold advisory lock `key` for the block (waiting for it). A broken connection is reopened once.
        Re-entrant: a block of the thread already holding it holds it on (a write inside a job's locked block)."""
        with self._mutex:
            if self._held.get(key):
                self._held[key] += 1
                try:
                    yield
                finally:
                    self._held[key] -= 1
                return
            try:
                self.open()
                assert self._conn is not None
                self._conn.execute("SELECT pg_advisory_lock(%s)", [key])
            except psycopg.OperationalError:
                self.close()
                self.open()
                assert self._conn is not None
                self._conn.execute("SELECT pg_advisory_lock(%s)", [key])
            self._held[key] = 1
            try:
                yield
            finally:
                self._held.pop(key, None)
                try:
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", [key])
                except psycopg.Error:
                    self.close()  # the session is gone, and its locks with it


class Lease:
    """Try to hold the job lease every `interval_s`; call `on_gain` when it is taken and `on_loss` when the
    connection holding it breaks (then the jobs must stop: another node may take the lease)."""

    def __init__(
        self,
        conninfo: str,
        interval_s: float,
        on_gain: Callable[[], None],
        on_loss: Callable[[], None],
        key: int = JOB_LEASE,
    ) -> None:
        self._conninfo = conninfo
        self._interval = interval_s
        self._on_gain = on_gain
        self._on_loss = on_loss
        self._key = key
        self._conn: psycopg.Connection | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="callscope-lease", daemon=True)
        self.held = False
        self.holder: str | None = None  # the catalog's application_name of the holder, when known

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        if self.held:
            self._lose()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:
                log.exception("job lease: the catalog did not answer; trying again")
                if self.held:
                    self._lose()
                if self._conn is not None:
                    with contextlib.suppress(Exception):
                        self._conn.close()
                self._conn = None
            self._stop.wait(self._interval)

    def verify(self) -> bool:
        """Whether this node holds the lease now, asked of PostgreSQL (not of the last try): a session that broke
        since has lost it, whether or not the lease thread noticed yet."""
        conn = self._conn
        if not self.held or conn is None or conn.closed:
            return False
        try:
            row = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()"
                " AND classid = 0 AND objid = %s AND objsubid = 1",
                [self._key],
            ).fetchone()
        except psycopg.Error:
            return False
        return bool(row and row[0])

    def _step(self) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = open_connection(self._conninfo)
        if self.held:
            self._conn.execute("SELECT 1")  # still there: the lock lives as long as this session
            return
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", [self._key]).fetchone()
        if row and row[0]:
            self.held = True
            log.info("job lease taken: this node runs the once-per-store jobs")
            self._on_gain()

    def _lose(self) -> None:
        self.held = False
        log.warning("job lease lost: stopping the once-per-store jobs")
        try:
            self._on_loss()
        except Exception:
            log.exception("job lease: stopping the jobs failed")


class LeaseLost(RuntimeError):
    """A once-per-store job tried to write after this node lost the job lease; nothing was written."""


LEDGER = "callscope.notify_accepted"  # beside the id sequences (core/ids.py)


def prepare_ledger(catalog: Catalog) -> None:
    """The notification ledger's table (idempotent; the caller holds the migration lock): which outbox rows a
    receiver accepted, written the moment it did (alerts/delivery.py SendLedger). Rows older than a week are
    dropped here: by then the lake has long said `sent`."""
    catalog.execute("CREATE SCHEMA IF NOT EXISTS callscope")
    catalog.execute(
        f"CREATE TABLE IF NOT EXISTS {LEDGER} (outbox_id BIGINT PRIMARY KEY, node TEXT NOT NULL,"
        " accepted_at TIMESTAMPTZ NOT NULL DEFAULT now(), note TEXT)"
    )
    catalog.execute(f"DELETE FROM {LEDGER} WHERE accepted_at < now() - interval '7 days'")  # noqa: S608


class NotifyLedger:
    """The ledger on a connection of its own (its writes are single autocommit statements of ~1 ms)."""

    def __init__(self, conninfo: str, node: str) -> None:
        self._catalog = Catalog(conninfo)
        self._node = node

    def accepted(self, outbox_id: int, note: str | None) -> None:
        self._catalog.execute(
            f"INSERT INTO {LEDGER} (outbox_id, node, note) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",  # noqa: S608
            [outbox_id, self._node, note],
        )

    def accepted_of(self, outbox_ids: list[int]) -> dict[int, str | None]:
        rows = self._catalog.execute(
            f"SELECT outbox_id, note FROM {LEDGER} WHERE outbox_id = ANY(%s)",  # noqa: S608
            [outbox_ids],
        ).fetchall()
        return {int(r[0]): r[1] for r in rows}

    def close(self) -> None:
        self._catalog.close()
