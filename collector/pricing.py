"""Cost at ingest: genai-prices (bundled data, no network) plus the user's overrides.

Prices are looked up once per (provider, model) and cached. For the common case (no tier applies) the cost
is a dot product with per-token rates that were measured by asking genai-prices itself, so it is priced
exactly as the library prices it; a call large enough to reach a tier is priced by the library directly.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version

from genai_prices import Usage, data_snapshot
from genai_prices.types import TieredPrices

from callscope.records import Pricing
from callscope.settings import PriceOverride
from collector.conventions import PRICING_PROVIDERS

log = logging.getLogger(__name__)
GENAI_PRICES_VERSION = version("genai-prices")


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

    def cost(self, inp: int, out: int, cache_read: int, cache_write: int) -> float:
        uncached = max(inp - cache_read - cache_write, 0)
        return (
            uncached * self.uncached_input
            + cache_read * self.cache_read
            + cache_write * self.cache_write
            + out * self.output
        )


@dataclass(frozen=True)
class Price:
    cost_usd: float | None
    pricing: Pricing
    source: str | None


class Pricer:
    def __init__(self, overrides: tuple[PriceOverride, ...] = ()) -> None:
        self._overrides = {(o.provider, o.model): o for o in overrides}
        self._cache: dict[tuple[str | None, str], Rates | None] = {}
        self._snapshot = data_snapshot.get_snapshot()

    def rates(self, provider: str | None, model: str) -> Rates | None:
        key = (provider, model)
        try:
            return self._cache[key]
        except KeyError:
            pass
        rates = self._lookup(provider, model)
        self._cache[key] = rates
        return rates

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
    ) -> Price:
        if not model:
            return Price(None, Pricing.UNPRICED, None)
        rates = self.rates(provider, model)
        if rates is None:
            return Price(None, Pricing.UNPRICED, None)
        if inp is None and out is None:
            # An error answered before any token was billed costs nothing; a success without usage is unknown.
            return Price(0.0, rates.pricing, rates.source) if is_error else Price(None, Pricing.NO_USAGE, None)
        inp, out, cr, cw = inp or 0, out or 0, cache_read or 0, cache_write or 0
        if rates.max_input is None or inp <= rates.max_input:
            return Price(rates.cost(inp, out, cr, cw), rates.pricing, rates.source)
        return Price(self._library_cost(rates, inp, out, cr, cw), rates.pricing, rates.source)

    def _lookup(self, provider: str | None, model: str) -> Rates | None:
        model_l = model.lower()
        override = self._overrides.get((provider or "", model_l)) or self._overrides.get(("*", model_l))
        if override:
            per = 1e-6
            return Rates(
                uncached_input=override.input_mtok * per,
                cache_read=(override.cache_read_mtok if override.cache_read_mtok is not None else override.input_mtok)
                * per,
                cache_write=(
                    override.cache_write_mtok if override.cache_write_mtok is not None else override.input_mtok
                )
                * per,
                output=override.output_mtok * per,
                max_input=None,
                source="override",
                pricing=Pricing.OVERRIDE,
            )
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
        model_price = model_info.get_prices(datetime.now(tz=UTC))
        tier_starts = [
            tier.start
            for value in vars(model_price).values()
            if isinstance(value, TieredPrices)
            for tier in value.tiers
        ]

        def probe(**usage: int) -> float:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return float(model_price.calc_price(Usage(**usage))["total_price"])

        million = 1_000_000
        max_input = min(tier_starts) if tier_starts else None
        n = min(million, max_input) if max_input else million
        return Rates(
            uncached_input=probe(input_tokens=n) / n,
            cache_read=probe(input_tokens=n, cache_read_tokens=n) / n,
            cache_write=probe(input_tokens=n, cache_write_tokens=n) / n,
            output=probe(output_tokens=million) / million,
            max_input=max_input,
            source=f"genai-prices {GENAI_PRICES_VERSION}: {found_provider.id}/{model_info.id}",
            pricing=Pricing.PRICED,
            model_price=model_price,
        )

    @staticmethod
    def _library_cost(rates: Rates, inp: int, out: int, cr: int, cw: int) -> float:
        usage = Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cr or None, cache_write_tokens=cw or None)
        return float(Decimal(rates.model_price.calc_price(usage)["total_price"]))  # type: ignore[union-attr]
