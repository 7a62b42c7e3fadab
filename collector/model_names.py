"""One name per model: the canonical model identity stored with every call (the `model` column).

Clients name the same model several ways: an alias (`gpt-4o-mini`), its dated snapshot in the answer
(`gpt-4o-mini-2024-07-18`), and a failed call has no answer at all, only the model it asked for. Grouped by the raw
names, one model becomes two or three rows. The identity here is genai-prices' matched model id (the library's
model matching, the same data that prices the call), so an alias and its snapshots are one model.

The model asked for decides first: every call that asked for the same model gets the same name whether it
succeeded or failed (a failed call has nothing else), and an alias served by a differently-named snapshot
(`mistral-small-latest` answered by `mistral-small-2506`) stays one model. When genai-prices knows the requested
name not, the answered model is matched; when it knows neither, the name as sent is kept (trimmed), answered
model first. request_model and response_model stay stored and queryable as they came.
"""

from __future__ import annotations

from typing import Any

from collector.conventions import PRICING_PROVIDERS

_CACHE_LIMIT = 10_000  # model names come from clients: keep the cache bounded


class ModelNames:
    """canonical(provider, request_model, response_model), cached per distinct triple."""

    def __init__(self, snapshot: Any) -> None:
        self._snapshot = snapshot
        self._cache: dict[tuple[str | None, str | None, str | None], str | None] = {}

    def canonical(self, provider: str | None, request_model: str | None, response_model: str | None) -> str | None:
        key = (provider, request_model, response_model)
        try:
            return self._cache[key]
        except KeyError:
            pass
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        name = self._cache[key] = self._resolve(provider, request_model, response_model)
        return name

    def clear(self) -> None:
        self._cache.clear()

    def _resolve(self, provider: str | None, request_model: str | None, response_model: str | None) -> str | None:
        request, response = _clean(request_model), _clean(response_model)
        for name in (request, response):
            if name is not None and (matched := self.matched_id(provider, name)) is not None:
                return matched
        return response or request

    def matched_id(self, provider: str | None, model: str) -> str | None:
        """genai-prices' model id for `model` under our provider name (any provider when it has none there)."""
        provider_id = PRICING_PROVIDERS.get(provider or "", None)
        try:
            return self._snapshot.find_provider_model(model.lower(), None, provider_id, None)[1].id
        except LookupError:
            if provider_id is None:
                return None
        try:  # the provider may host models genai-prices files elsewhere (as pricing does)
            return self._snapshot.find_provider_model(model.lower(), None, None, None)[1].id
        except LookupError:
            return None


def _clean(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip()
    return name or None


def backfill(db: Any, names: ModelNames) -> int:
    """Fill `model` where it is missing (rows stored before m012, or loaded by a tool that did not set it), in
    `calls` and `call_rollups` alike, in one transaction; returns the number of distinct name triples resolved.

    The name is a function of (provider, request_model, response_model), which are rollup columns too, so an
    hourly rollup row gets exactly the name its calls get and the rollups stay exact."""
    import pyarrow as pa  # only when there is work to do

    missing = "model IS NULL AND (request_model IS NOT NULL OR response_model IS NOT NULL)"
    triples = []
    for table in ("calls", "call_rollups"):
        query = f"SELECT DISTINCT provider, request_model, response_model FROM {table} WHERE {missing}"  # noqa: S608 (constants)
        triples += db.execute(query).fetchall()
    triples = sorted(set(triples), key=str)
    if not triples:
        return 0
    mapping = pa.table(
        {
            "m_provider": [t[0] for t in triples],
            "m_request": [t[1] for t in triples],
            "m_response": [t[2] for t in triples],
            "m_model": [names.canonical(*t) for t in triples],
        }
    )
    match = (
        "t.provider IS NOT DISTINCT FROM m.m_provider AND t.request_model IS NOT DISTINCT FROM m.m_request"
        " AND t.response_model IS NOT DISTINCT FROM m.m_response AND t.model IS NULL"
    )
    db.register("callscope_model_names", mapping)
    try:
        db.execute("BEGIN TRANSACTION")
        try:
            for table in ("calls", "call_rollups"):
                update = f"UPDATE {table} AS t SET model = m.m_model FROM callscope_model_names AS m WHERE {match}"  # noqa: S608 (constants)
                db.execute(update)
            db.execute("COMMIT")
        except Exception:
            db.execute("ROLLBACK")
            raise
    finally:
        db.unregister("callscope_model_names")
    return len(triples)
