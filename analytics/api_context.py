"""What every read-API route shares: the server's connection behind a query-slot gate and the parameter types
(who may ask is analytics/access.py's). Routers live in analytics/routes_*.py; analytics/api.py composes them."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import duckdb
from fastapi import Depends, Query, Request

from analytics.drift.config import DriftConfig
from analytics.retention import Policy
from core.storage import CachedSize, StoreSize

PERCENTILE_DEFINITION = (
    "linear interpolation between the closest ranks (numpy.percentile method='linear', Hyndman-Fan type 7),"
    " exact, over the raw calls"
)


class ReadApi:
    """What the routes need from the server: a connection to read through."""

    def __init__(
        self,
        db: duckdb.DuckDBPyConnection,
        max_queries: int,
        cost_parts: Callable[[dict[str, Any]], dict[str, float] | None] | None = None,
        drift: DriftConfig | None = None,
        retention: Policy | None = None,
        retention_batch_rows: int = 50_000,
    ) -> None:
        self.db = db
        self.slots = threading.BoundedSemaphore(max_queries)
        # Splits a call's cost by token kind with the collector's prices (the server passes Pricer.cost_parts).
        self.cost_parts = cost_parts
        # The drift job's windows, tests and thresholds, for comparisons asked through the API.
        self.drift = drift or DriftConfig()
        # The price book (the server passes collector.price_book.PriceBookService): entries, audit, pricers.
        self.prices: Any = None
        self.prices_max_age_days = 60
        self.reprice_lock = threading.Lock()  # one re-pricing run at a time
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


Api = Annotated[ReadApi, Depends(read_api)]
Format = Annotated[str | None, Query(description="json (default), arrow (Arrow IPC stream) or csv")]
