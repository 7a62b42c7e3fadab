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
        self._mutex = threading.Lock()

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

    @contextlib.contextmanager
    def locked(self, key: int) -> Iterator[None]:
        """Hold advisory lock `key` for the block (waiting for it). A broken connection is reopened once."""
        with self._mutex:
            try:
                self.open()
                assert self._conn is not None
                self._conn.execute("SELECT pg_advisory_lock(%s)", [key])
            except psycopg.OperationalError:
                self.close()
                self.open()
                assert self._conn is not None
                self._conn.execute("SELECT pg_advisory_lock(%s)", [key])
            try:
                yield
            finally:
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
