"""What every read-API route shares: the server's connection behind a query-slot gate, the read-key check, and
the parameter types. Routers live in analytics/routes_*.py; analytics/api.py composes them."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import duckdb
from fastapi import Depends, HTTPException, Query, Request

from analytics.drift.config import DriftConfig
from analytics.retention import Policy
from core.keys import HOW_TO_SEND, is_allowed, presented_key
from core.storage import CachedSize, StoreSize

PERCENTILE_DEFINITION = (
    "linear interpolation between the closest ranks (numpy.percentile method='linear', Hyndman-Fan type 7),"
    " exact, over the raw calls"
)


class ReadApi:
    """What the routes need from the server: a connection to read through and the read keys."""

    def __init__(
        self,
        db: duckdb.DuckDBPyConnection,
        read_keys: frozenset[str],
        max_queries: int,
        cost_parts: Callable[[dict[str, Any]], dict[str, float] | None] | None = None,
        drift: DriftConfig | None = None,
        retention: Policy | None = None,
        retention_batch_rows: int = 50_000,
    ) -> None:
        self.db = db
        self.read_keys = read_keys
        self.slots = threading.BoundedSemaphore(max_queries)
        # Splits a call's cost by token kind with the collector's prices (the server passes Pricer.cost_parts).
        self.cost_parts = cost_parts
        # The drift job's windows, tests and thresholds, for comparisons asked through the API.
        self.drift = drift or DriftConfig()
        # The retention policy (analytics/retention.py) the run route applies; None: the defaults.
        self.retention: Policy | None = retention
        self.retention_batch_rows = retention_batch_rows
        self._size = CachedSize(db)

    def storage_size(self) -> StoreSize:
        """Measured now unless measured in the last 5 minutes or since the last deletion (GET /storage)."""
        return self._size.get()

    def storage_latest(self) -> StoreSize | None:
        """The last measurement, refreshed in the background (/meta and /metrics never wait for it)."""
        return self._size.latest()

    def storage_invalidate(self) -> None:
        self._size.invalidate()

    @contextlib.contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.slots:
            cur = self.db.cursor()
            try:
                cur.execute("SET TimeZone = 'UTC'")
                yield cur
            finally:
                cur.close()


def read_api(request: Request) -> ReadApi:
    return request.app.state.read_api


def check_read_key(request: Request) -> None:
    presented = presented_key(request.headers.get("authorization"), request.headers.get("x-api-key"))
    if not is_allowed(read_api(request).read_keys, presented):
        raise HTTPException(401, f"a read key is required: {HOW_TO_SEND}")


Api = Annotated[ReadApi, Depends(read_api)]
Format = Annotated[str | None, Query(description="json (default), arrow (Arrow IPC stream) or csv")]
