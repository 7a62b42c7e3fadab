"""The server's price book: stored entries (core/pricebook.py) kept in step with every Pricer that uses them.

At start the config file's [[prices]] are synced into the store (audited as "config file"); then every change
through the API is checked (no overlap, valid rates), stored with its audit row in one transaction, and the new
book is handed to the server's pricers and to the ingest workers (before the next request each one prepares), so
calls ingested after the change are priced by it. Changes are serialised by a lock: the overlap check and the
insert see the same book.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import duckdb

from collector.pricing import Price, Pricer
from core import pricebook as pb
from core.store import transaction

log = logging.getLogger("callscope.prices")


class PriceBookService:
    def __init__(self, db: duckdb.DuckDBPyConnection, configured: tuple[pb.PriceEntry, ...] = ()) -> None:
        self.db = db
        self.configured = configured
        self.book = pb.PriceBook()
        self._listeners: list[Any] = []  # objects with set_book(book): Pricers, the worker pool
        self._lock = threading.Lock()
        self._generation = 0

    def attach(self, listener: Any) -> None:
        self._listeners.append(listener)
        listener.set_book(self.book)

    def load(self) -> None:
        """Sync the config file's entries into the store, then publish the stored book."""
        with self._lock:
            with transaction(self.db) as cur:
                changes = pb.sync_config_entries(cur, self.configured)
            if changes:
                log.info("price book: %d change(s) from the config file", changes)
            self._publish()

    def _publish(self) -> None:
        cur = self.db.cursor()
        try:
            entries = pb.load_entries(cur)
        finally:
            cur.close()
        self._generation += 1
        self.book = pb.PriceBook(entries, self._generation)
        for listener in self._listeners:
            listener.set_book(self.book)

    def entries(self) -> list[pb.PriceEntry]:
        return list(self.book.entries)

    def add(self, raw: Mapping[str, Any], actor: pb.Actor) -> pb.PriceEntry:
        entry = pb.parse_entry(raw, source="api")
        with self._lock:
            with transaction(self.db) as cur:
                stored = pb.add_entry(cur, entry, actor)
            self._publish()
        return stored

    def update(self, entry_id: int, raw: Mapping[str, Any], actor: pb.Actor) -> pb.PriceEntry:
        entry = pb.parse_entry(raw, source="api")
        with self._lock:
            with transaction(self.db) as cur:
                if pb.get_entry(cur, entry_id).source == "config":
                    raise pb.PriceBookError(f"price entry #{entry_id} comes from the config file: change it there")
                stored = pb.update_entry(cur, entry_id, entry, actor)
            self._publish()
        return stored

    def delete(self, entry_id: int, actor: pb.Actor) -> pb.PriceEntry:
        with self._lock:
            with transaction(self.db) as cur:
                if pb.get_entry(cur, entry_id).source == "config":
                    raise pb.PriceBookError(f"price entry #{entry_id} comes from the config file: remove it there")
                old = pb.delete_entry(cur, entry_id, actor)
            self._publish()
        return old

    def audit(self, limit: int = 500) -> list[dict[str, Any]]:
        cur = self.db.cursor()
        try:
            return pb.audit_log(cur, limit)
        finally:
            cur.close()

    def pricer(self) -> Pricer:
        """A Pricer of its own with the current book (a re-pricing run uses one for its whole run)."""
        return Pricer(self.book)

    def target_rates(self, model: str) -> dict[str, Any] | None:
        return target_rates(self.pricer(), model)

    @staticmethod
    def data_date() -> datetime | None:
        return genai_prices_data_date()

    def entry_label(self, entry_id: int) -> dict[str, Any] | None:
        cur = self.db.cursor()
        try:
            entry = pb.get_entry(cur, entry_id, include_deleted=True)
        except LookupError:
            return None
        finally:
            cur.close()
        return entry.as_dict() | {"label": entry.label()}


def price_now(pricer: Pricer, provider: str | None, model: str, **tokens: int) -> Price:
    """A price at this instant (what-if and tests)."""
    at = int(datetime.now(UTC).timestamp() * 1e9)
    return pricer.price(
        provider,
        model,
        tokens.get("inp"),
        tokens.get("out"),
        tokens.get("cache_read"),
        tokens.get("cache_write"),
        is_error=False,
        at_ns=at,
        reasoning=tokens.get("reasoning"),
    )


def target_rates(pricer: Pricer, model: str) -> dict[str, Any] | None:
    """Today's per-token prices of `model` (price book, then genai-prices) for the what-if: per_token (uncached
    input, cache read, cache write, output, reasoning), max_input (the first tier's start, or None), source, and
    price_call(inp, out, cache_read, cache_write, reasoning) for a single call."""
    provider = pricer.provider_for(model)
    now_ns = int(datetime.now(UTC).timestamp() * 1e9)

    def price_call(inp: int, out: int, cr: int, cw: int, reasoning: int) -> float | None:
        return pricer.price(
            provider, model, inp, out, cr, cw, is_error=False, at_ns=now_ns, reasoning=reasoning
        ).cost_usd

    entry = pricer.book.entry_at(provider, model, now_ns // 1000) if pricer.book.entries else None
    if entry is not None:
        return {"per_token": entry.per_token(), "max_input": None, "source": entry.label(), "price_call": price_call}
    rates = pricer.rates(provider, model, now_ns)
    if rates is None:
        return None
    per = (rates.uncached_input, rates.cache_read, rates.cache_write, rates.output, rates.output)
    return {"per_token": per, "max_input": rates.max_input, "source": rates.source, "price_call": price_call}


def genai_prices_data_date() -> datetime | None:
    """The newest date in the installed genai-prices data (its last known price change): how fresh it is at best.
    The package ships no build date; this is a lower bound of its age."""
    import re
    from importlib.util import find_spec

    spec = find_spec("genai_prices.data")
    if spec is None or spec.origin is None:
        return None
    with open(spec.origin, encoding="utf-8") as fh:
        text = fh.read()
    found = re.findall(r"date(?:time)?\((\d{4}), (\d{1,2}), (\d{1,2})", text)
    dates = [datetime(int(y), int(m), int(d), tzinfo=UTC) for y, m, d in found]
    now = datetime.now(UTC)
    dates = [d for d in dates if d <= now]
    return max(dates) if dates else None
