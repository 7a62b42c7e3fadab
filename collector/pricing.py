"""Cost at ingest and at re-pricing: the price book (core/pricebook.py: the config file's [[prices]] and entries
added through the API, with effective dates) first, then genai-prices (bundled data, no network).

Prices are looked up once per (provider, model) and cached. For the common case (no tier applies) the cost
is a dot product with per-token rates that were measured by asking genai-prices itself, so it is priced
exactly as the library prices it; a call large enough to reach a tier is priced by the library directly.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version
from time import time_ns
from typing import Any

from genai_prices import Usage, data_snapshot
from genai_prices.types import TieredPrices

from collector.conventions import INFERRED_PROVIDERS, PRICING_PROVIDERS
from collector.model_names import ModelNames
from core.pricebook import PriceBook, PriceEntry
from core.records import Pricing

log = logging.getLogger(__name__)
GENAI_PRICES_VERSION = version("genai-prices")
_CACHE_LIMIT = 10_000  # distinct (provider, model) prices and model -> provider answers kept


@dataclass(frozen=True)
class Rates:
    """USD per token for each token kind, valid while input_tokens <= max_input (None: no tier limit)."""

    uncached_input: float
    cache_read: float
    cache_write: float
    output: float
    max_input: int | None
    source: str
    pricing: Pricing
    model_price: object | None = None  # the genai-prices ModelPrice, for calls beyond max_input

    def parts(self, inp: int, out: int, cache_read: int, cache_write: int) -> dict[str, float]:
        """USD per token kind (cached tokens are inside input_tokens, so uncached input is the rest)."""
        uncached = max(inp - cache_read - cache_write, 0)
        return {
            "input": uncached * self.uncached_input,
            "cache_read": cache_read * self.cache_read,
            "cache_write": cache_write * self.cache_write,
            "output": out * self.output,
        }

    def cost(self, inp: int, out: int, cache_read: int, cache_write: int) -> float:
        return sum(self.parts(inp, out, cache_read, cache_write).values())  # same order and floats as the parts


@dataclass(frozen=True)
class Price:
    cost_usd: float | None
    pricing: Pricing
    source: str | None
    entry_id: int | None = None  # the price book entry used


def entry_cost(entry: PriceEntry, inp: int, out: int, cache_read: int, cache_write: int, reasoning: int) -> float:
    """A call's cost by a price book entry (token kinds as in core/pricebook.py's docstring)."""
    r_in, r_cr, r_cw, r_out, r_reason = entry.per_token()
    reasoning = min(reasoning, out)
    return (
        max(inp - cache_read - cache_write, 0) * r_in
        + cache_read * r_cr
        + cache_write * r_cw
        + (out - reasoning) * r_out
        + reasoning * r_reason
    )


class _TimeDependent:
    """A model whose price depends on when the call was made (off-peak discounts, dated price changes).

    genai-prices picks the applicable price for an instant; rates are measured once per such price."""

    def __init__(self, model_info: object, provider_id: str) -> None:
        self.model_info = model_info
        self.provider_id = provider_id
        self._by_price: dict[int, Rates] = {}

    def at(self, when: datetime) -> Rates:
        model_price = self.model_info.get_prices(when)  # type: ignore[attr-defined]
        rates = self._by_price.get(id(model_price))
        if rates is None:
            rates = self._by_price[id(model_price)] = _measure(model_price, self.provider_id, self.model_info)
        return rates


class Pricer:
    """Prices calls. `book` is the price book (entries of the config file, stored entries); `set_book` swaps it
    (the server does when the book changes, and sends it to the ingest workers)."""

    def __init__(self, book: PriceBook | tuple[PriceEntry, ...] = ()) -> None:
        self.book = book if isinstance(book, PriceBook) else PriceBook(book)
        self._cache: dict[tuple[str | None, str], Rates | _TimeDependent | None] = {}
        self._providers: dict[str, str | None] = {}
        self._snapshot = data_snapshot.get_snapshot()
        self.names = ModelNames(self._snapshot)

    def model_name(self, provider: str | None, request_model: str | None, response_model: str | None) -> str | None:
        """The call's canonical model identity (collector/model_names.py): the `model` column."""
        return self.names.canonical(provider, request_model, response_model)

    def set_book(self, book: PriceBook) -> None:
        self.book = book

    def provider_for(self, model: str) -> str | None:
        """The provider genai-prices' model matching assigns to `model` (our provider name), or None when no
        provider's models match it. Looked up once per model: this runs for every call that names no provider.

        It is the provider a call without one is priced under, so a call stored with it is priced by it too."""
        try:
            return self._providers[model]
        except KeyError:
            pass
        if len(self._providers) >= _CACHE_LIMIT:  # model names come from clients: keep the caches bounded
            self._providers.clear()
            self._trim_library_caches()
        try:
            provider_id = self._snapshot.find_provider(model.lower(), None, None).id
        except LookupError:
            name = None
        else:
            name = INFERRED_PROVIDERS.get(provider_id, provider_id)
        self._providers[model] = name
        return name

    def _trim_library_caches(self) -> None:
        """genai-prices remembers every model name it was asked about, found or not (its snapshot's lookup caches:
        ~400 bytes per name, 77 MiB after 200,000 made-up names). Forget them with ours, so a client sending
        endless new model names cannot grow a worker's memory without bound."""
        self.names.clear()
        for name in ("_lookup_cache", "_provider_cache", "_provider_misses"):
            cache = getattr(self._snapshot, name, None)
            if cache is not None and hasattr(cache, "clear"):
                cache.clear()

    def rates(self, provider: str | None, model: str, at_ns: int | None = None) -> Rates | None:
        """The rates of a call made at `at_ns` (ns since the epoch; default now)."""
        key = (provider, model)
        try:
            entry = self._cache[key]
        except KeyError:
            if len(self._cache) >= _CACHE_LIMIT:  # model names come from clients: keep the caches bounded
                self._cache.clear()
                self._trim_library_caches()
            entry = self._cache[key] = self._lookup(provider, model)
        if isinstance(entry, _TimeDependent):
            when = datetime.now(UTC) if at_ns is None else datetime.fromtimestamp(at_ns / 1e9, UTC)
            return entry.at(when)
        return entry

    def linear(self, provider: str | None, model: str | None) -> Rates | None:
        """The rates of every call of (provider, model) whatever its time, when they are the same for all: no price
        book entry matches the model and genai-prices has one price for it (not time-dependent). Re-pricing prices
        such calls with array arithmetic (the same operations, in the same order, as `Rates.cost`); None: price
        call by call."""
        if not model or (self.book.entries and self.book.candidates(provider, model)):
            return None
        if self.is_time_dependent(provider, model):
            return None
        return self.rates(provider, model)

    def is_time_dependent(self, provider: str | None, model: str) -> bool:
        self.rates(provider, model)
        return isinstance(self._cache.get((provider, model)), _TimeDependent)

    def price(
        self,
        provider: str | None,
        model: str | None,
        inp: int | None,
        out: int | None,
        cache_read: int | None,
        cache_write: int | None,
        *,
        is_error: bool,
        at_ns: int | None = None,
        reasoning: int | None = None,
    ) -> Price:
        if not model:
            return Price(None, Pricing.UNPRICED, None)
        if self.book.entries:
            at_us = (time_ns() if at_ns is None else at_ns) // 1000
            entry = self.book.entry_at(provider, model, at_us)
            if entry is not None:
                return self._book_price(entry, inp, out, cache_read, cache_write, reasoning, is_error)
        rates = self.rates(provider, model, at_ns)
        if rates is None:
            return Price(None, Pricing.UNPRICED, None)
        if inp is None and out is None:
            # An error answered before any token was billed costs nothing; a success without usage is unknown.
            return Price(0.0, rates.pricing, rates.source) if is_error else Price(None, Pricing.NO_USAGE, None)
        inp, out, cr, cw = inp or 0, out or 0, cache_read or 0, cache_write or 0
        if rates.max_input is None or inp <= rates.max_input:
            return Price(rates.cost(inp, out, cr, cw), rates.pricing, rates.source)
        return Price(self._library_cost(rates, inp, out, cr, cw), rates.pricing, rates.source)

    @staticmethod
    def _book_price(
        entry: PriceEntry,
        inp: int | None,
        out: int | None,
        cache_read: int | None,
        cache_write: int | None,
        reasoning: int | None,
        is_error: bool,
    ) -> Price:
        pricing = Pricing.OVERRIDE if entry.source == "config" else Pricing.BOOK
        source = entry.label() if entry.entry_id is not None else "override"
        if inp is None and out is None:
            return Price(0.0, pricing, source, entry.entry_id) if is_error else Price(None, Pricing.NO_USAGE, None)
        cost = entry_cost(entry, inp or 0, out or 0, cache_read or 0, cache_write or 0, reasoning or 0)
        return Price(cost, pricing, source, entry.entry_id)

    def cost_parts(self, call: dict[str, Any]) -> dict[str, float] | None:
        """A stored call's cost split by token kind, priced as at ingest (the call's model, provider and time).

        None when the call is unpriced, has no usage, reached a tier genai-prices prices as a whole, or was priced
        with prices that have changed since.
        """
        model = call.get("response_model") or call.get("request_model")
        if not model or call.get("cost_usd") is None or not call.get("start_time"):
            return None
        at = datetime.fromisoformat(str(call["start_time"]).replace("Z", "+00:00"))
        entry = (
            self.book.entry_at(call.get("provider"), model, int(at.timestamp() * 1e6)) if self.book.entries else None
        )
        if entry is not None:
            return _entry_parts(entry, call)
        rates = self.rates(call.get("provider"), model, int(at.timestamp() * 1e9))
        inp = int(call.get("input_tokens") or 0)
        if rates is None or (rates.max_input is not None and inp > rates.max_input):
            return None
        parts = rates.parts(
            inp,
            int(call.get("output_tokens") or 0),
            int(call.get("cache_read_tokens") or 0),
            int(call.get("cache_write_tokens") or 0),
        )
        # Prices changed since ingest (a new genai-prices, an edited override): these parts would not add up to
        # the stored cost, so show none rather than a split of a different amount.
        if not math.isclose(sum(parts.values()), call["cost_usd"], rel_tol=1e-9, abs_tol=1e-12):
            return None
        return parts

    def _lookup(self, provider: str | None, model: str) -> Rates | _TimeDependent | None:
        model_l = model.lower()
        provider_id = PRICING_PROVIDERS.get(provider or "", None)
        try:
            found_provider, model_info = self._snapshot.find_provider_model(model_l, None, provider_id, None)
        except LookupError:
            if provider_id is None:
                return None
            try:  # the provider may host models genai-prices files elsewhere; let it search by model
                found_provider, model_info = self._snapshot.find_provider_model(model_l, None, None, None)
            except LookupError:
                return None
        if isinstance(model_info.prices, list):  # conditional prices: which one applies depends on the call's time
            return _TimeDependent(model_info, found_provider.id)
        return _measure(model_info.prices, found_provider.id, model_info)

    @staticmethod
    def _library_cost(rates: Rates, inp: int, out: int, cr: int, cw: int) -> float:
        usage = Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cr or None, cache_write_tokens=cw or None)
        return float(Decimal(rates.model_price.calc_price(usage)["total_price"]))  # type: ignore[union-attr]


def _entry_parts(entry: PriceEntry, call: dict[str, Any]) -> dict[str, float] | None:
    inp, out = int(call.get("input_tokens") or 0), int(call.get("output_tokens") or 0)
    cr, cw = int(call.get("cache_read_tokens") or 0), int(call.get("cache_write_tokens") or 0)
    reasoning = min(int(call.get("reasoning_tokens") or 0), out)
    r_in, r_cr, r_cw, r_out, r_reason = entry.per_token()
    parts = {
        "input": max(inp - cr - cw, 0) * r_in,
        "cache_read": cr * r_cr,
        "cache_write": cw * r_cw,
        "output": (out - reasoning) * r_out,
        "reasoning": reasoning * r_reason,
    }
    if not math.isclose(sum(parts.values()), call["cost_usd"], rel_tol=1e-9, abs_tol=1e-12):
        return None
    return parts


def _measure(model_price: object, provider_id: str, model_info: object) -> Rates:
    """Per-token rates of one genai-prices price, measured by asking the library itself."""
    tier_starts = [
        tier.start for value in vars(model_price).values() if isinstance(value, TieredPrices) for tier in value.tiers
    ]

    def probe(**usage: int) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(model_price.calc_price(Usage(**usage))["total_price"])  # type: ignore[attr-defined]

    million = 1_000_000
    max_input = min(tier_starts) if tier_starts else None
    n = min(million, max_input) if max_input else million
    return Rates(
        uncached_input=probe(input_tokens=n) / n,
        cache_read=probe(input_tokens=n, cache_read_tokens=n) / n,
        cache_write=probe(input_tokens=n, cache_write_tokens=n) / n,
        output=probe(output_tokens=million) / million,
        max_input=max_input,
        source=f"genai-prices {GENAI_PRICES_VERSION}: {provider_id}/{model_info.id}",  # type: ignore[attr-defined]
        pricing=Pricing.PRICED,
        model_price=model_price,
    )
