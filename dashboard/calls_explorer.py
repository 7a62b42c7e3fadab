"""State of the calls explorer (search, status, sort, page) in the URL, and how its table is shown."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import streamlit as st

from dashboard.filters import query_dict

SORTS = {
    "start_time": "Start time",
    "duration_ms": "Duration",
    "cost_usd": "Cost",
    "ttft_ms": "Time to first token",
    "input_tokens": "Input tokens",
    "output_tokens": "Output tokens",
}
# The columns that matter first (when, what, how it went, what it cost), the details after.
COLUMNS: dict[str, Any] = {
    "start_time": "Started (UTC)",
    "service": "Service",
    "model": st.column_config.TextColumn("Model", help="One name per model: aliases and snapshots are one model"),
    "status": "Status",
    "duration_ms": "Duration (ms)",
    "input_tokens": st.column_config.NumberColumn("Input tokens", format="localized"),
    "output_tokens": st.column_config.NumberColumn("Output tokens", format="localized"),
    "cost_usd": "Cost",
    "error_type": "Error",
    "provider": "Provider",
    "ttft_ms": "TTFT (ms)",
    "error_message": "Error message",
    "user_id": "User",
    "session_id": "Session",
    "environment": "Env",
    "trace_id": "Trace",
    "span_id": "Span",
}
UNITS = {"start_time": "time", "duration_ms": "ms", "ttft_ms": "ms", "cost_usd": "USD"}


@dataclass(frozen=True)
class PageState:
    q: str = ""
    status: str = "all"
    sort: str = "start_time"
    desc: bool = True
    page: int = 1
    request_model: str = ""  # the model asked for (links from the Drift page: drift and anomalies are keyed by it)

    @classmethod
    def from_query(cls, raw: Any) -> PageState:
        query = {k: v[0] for k, v in query_dict(raw).items() if v}
        status = query.get("status", "all")
        sort = query.get("sort", "start_time")
        page = query.get("page", "1")
        return cls(
            q=query.get("q", ""),
            status=status if status in ("all", "ok", "error") else "all",
            sort=sort if sort in SORTS else "start_time",
            desc=query.get("order", "desc") != "asc",
            page=int(page) if page.isdigit() and int(page) >= 1 else 1,
            request_model=query.get("request_model", ""),
        )

    def key(self) -> tuple[str, str, str, bool, str]:
        return (self.q, self.status, self.sort, self.desc, self.request_model)

    def first_page(self) -> PageState:
        return replace(self, page=1)

    def at(self, page: int) -> PageState:
        return replace(self, page=max(1, page))

    def api_params(self) -> list[tuple[str, str]]:
        params = []
        if self.q:
            params.append(("q", self.q))
        if self.status != "all":
            params.append(("status", self.status))
        if self.request_model:
            params.append(("request_model", self.request_model))
        return params

    def write(self, query_params: Any) -> None:
        wanted = {
            "q": self.q or None,
            "status": None if self.status == "all" else self.status,
            "sort": None if self.sort == "start_time" else self.sort,
            "order": None if self.desc else "asc",
            "page": None if self.page == 1 else str(self.page),
            "request_model": self.request_model or None,
        }
        for key, value in wanted.items():
            if value is None:
                if key in query_params:
                    del query_params[key]
            elif query_params.get(key) != value:
                query_params[key] = value
