"""From an alert instance to the calls behind it: the Calls page filtered to the instance's group and window.

The server renders a link into every instance that is not normal (annotations.dashboard_url, alerts/render.py):
it opens the page of the rule's *metric* (Errors, Latency, Cost or the Overview) with the evaluated window
(`from`/`to`), the rule's filters and the group's values, in the query parameters this dashboard reads
(dashboard/filters.py). That link is what e-mails and webhooks carry; its host is the `dashboard_url` setting.

On the Alerts page the same window and filters open the *Calls* page instead, so one click shows the breaching
calls themselves: the failed ones for error metrics, the slowest first for latency, the costliest first for
spend. Dimensions the dashboard cannot filter on (e.g. request_model, meta.<key>) are not in the server's link
either; a rule filter on `status` is kept (the Calls page has a status choice).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

from dashboard.filters import ViewFilters

ERROR_METRICS = frozenset({"errors", "error_rate", "rate_limited", "rate_limited_share"})
# The Calls page's sort (dashboard/calls_explorer.py SORTS) that puts a metric's worst calls first.
SORT_FOR = (
    ("latency_", "duration_ms"),
    ("ttft_", "ttft_ms"),
    ("cost", "cost_usd"),
    ("input_tokens", "input_tokens"),
    ("output_tokens", "output_tokens"),
)


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def server_link(instance: Mapping[str, Any]) -> str | None:
    return (instance.get("annotations") or {}).get("dashboard_url") or None


def calls_view(
    instance: Mapping[str, Any], spec: Mapping[str, Any] | None, tz: str = "UTC"
) -> tuple[ViewFilters, dict[str, str]] | None:
    """The Calls page's filters and its own parameters (status, sort) for an instance; None without a link."""
    link = server_link(instance)
    if link is None:
        return None
    filters = ViewFilters.from_query(_query(link), default_tz=tz)
    if filters.range != "custom":  # a link without its window would show the wrong calls
        return None
    filters = ViewFilters(filters.range, filters.start, filters.end, tz, filters.dims, filters.q)
    metric = (spec or {}).get("metric", "")
    params: dict[str, str] = {}
    status = ((spec or {}).get("filters") or {}).get("status")
    if status in ("ok", "error"):
        params["status"] = status
    elif metric in ERROR_METRICS:
        params["status"] = "error"
    for prefix, sort in SORT_FOR:
        if metric.startswith(prefix):
            params["sort"] = sort
            break
    return filters, params


def page_url(page_address: str, path: str, query: Mapping[str, Any]) -> str:
    """`path` (a page of this app, "" for the Overview) next to the page at `page_address`, with `query`.

    Relative to the page's own address, so a base URL path (server.baseUrlPath) is kept; without an address
    (tests, old runtimes) the link is relative and the browser resolves it the same way.
    """
    relative = f"./{path}?{urlencode(query, doseq=True)}"
    return urljoin(page_address, relative) if page_address else relative


def calls_url(page_address: str, view: tuple[ViewFilters, dict[str, str]]) -> str:
    filters, params = view
    return page_url(page_address, "calls", {**filters.to_query(), **params})


def metric_page_url(page_address: str, instance: Mapping[str, Any], tz: str = "UTC") -> str | None:
    """The server's link, but to this dashboard (whatever host the `dashboard_url` setting names)."""
    link = server_link(instance)
    if link is None:
        return None
    parts = urlsplit(link)
    query = _query(link)
    if tz != "UTC":
        query["tz"] = [tz]
    return page_url(page_address, parts.path.rsplit("/", 1)[-1], query)
