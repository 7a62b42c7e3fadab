"""Budget, price book, re-pricing, coverage and what-if routes of the read API, as methods ApiClient inherits.

Kept apart from api_client.py so these routes live in one small module; like the rest of the client it holds no
Streamlit and no SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

Params = Sequence[tuple[str, str]]


class MoneyApi:
    """Mixed into ApiClient, which gives the transport (_json, _send)."""

    _json: Any
    _send: Any

    def budgets(self) -> list[dict[str, Any]]:
        return self._json("/budgets")["budgets"]

    def budget(self, name: str) -> dict[str, Any]:
        return self._json(f"/budgets/{_q(name)}")

    def create_budget(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._send("POST", "/budgets", body)

    def delete_budget(self, name: str) -> dict[str, Any]:
        return self._send("DELETE", f"/budgets/{_q(name)}")

    def price_entries(self) -> list[dict[str, Any]]:
        return self._json("/prices/entries")["entries"]

    def price_audit(self, limit: int = 500) -> list[dict[str, Any]]:
        return self._json("/prices/audit", (("limit", str(limit)),))["changes"]

    def add_price_entry(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._send("POST", "/prices/entries", body)

    def delete_price_entry(self, entry_id: int) -> dict[str, Any]:
        return self._send("DELETE", f"/prices/entries/{int(entry_id)}")

    def start_reprice(self, params: Params) -> dict[str, Any]:
        return self._send("POST", "/prices/reprice", None, params)

    def reprice_run(self, run_id: int) -> dict[str, Any]:
        return self._json(f"/prices/reprice/{int(run_id)}")

    def price_coverage(self, params: Params) -> dict[str, Any]:
        return self._json("/prices/coverage", params)

    def whatif(self, params: Params, others: list[str]) -> dict[str, Any]:
        return self._json("/prices/whatif", (*params, *(("other", o) for o in others)))


def _q(name: str) -> str:
    return quote(name, safe="")
