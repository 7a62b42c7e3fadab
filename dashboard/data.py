"""Data access for the pages: the API client under st.cache_resource, every answer under st.cache_data(ttl).

Pages call these functions and nothing else to get numbers. The cache key is the API URL plus the exact query, so
two servers (or two tests) never share answers, and a refresh older than TTL_S asks the server again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

import polars as pl
import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from dashboard import auth
from dashboard.api_client import ENV_URL, ApiClient, ApiConfig, ApiError, Params
from dashboard.filters import ViewFilters, iso

DEFAULT_URL = "http://127.0.0.1:4318/api/v1"
TTL_S = 30
# Wide enough to see whether anything was ever stored (the API allows ranges up to 3 years).
EVER = (("last", "156w"),)


def config() -> ApiConfig:
    """Where the API is (CALLSCOPE_API_URL, set by the launcher) and the credential of this session's user
    (dashboard/auth.py)."""
    return ApiConfig(os.environ.get(ENV_URL) or DEFAULT_URL, auth.current_token())


def scope() -> str:
    """The first argument of every cached function: the API's URL and who asks (a hash of the credential), so an
    answer cached for one user is never shown to another."""
    cfg = config()
    who = hashlib.sha256(cfg.key.encode()).hexdigest()[:20] if cfg.key else "-"
    return f"{cfg.url}|{who}"


@st.cache_resource(show_spinner=False, max_entries=256)
def _client(url: str, key: str | None) -> ApiClient:
    return ApiClient(ApiConfig(url, key))


def client() -> ApiClient:
    cfg = config()
    return _client(cfg.url, cfg.key)


def _p(filters: ViewFilters | None, extra: Sequence[tuple[str, str]] = ()) -> tuple[tuple[str, str], ...]:
    base = filters.api_params() if filters is not None else []
    return tuple(base) + tuple(extra)


# Each cached function takes the URL first so the cache never mixes servers; the client comes from the resource.


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _stats(url: str, params: Params, metrics: tuple[str, ...], opts: tuple[tuple[str, Any], ...]) -> pl.DataFrame:
    return client().stats(params, metrics, **dict(opts))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _compare(url: str, params: Params, metrics: tuple[str, ...], group_by: tuple[str, ...], limit) -> pl.DataFrame:
    return client().compare(params, metrics, group_by=group_by, limit=limit)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _json(url: str, kind: str, args: tuple[Any, ...]) -> Any:
    c = client()
    if kind == "changes":
        params, metric, dims, limit, baseline = args
        return c.changes(params, metric, dims, limit=limit, baseline=baseline)
    if kind == "call":
        return c.call(*args)
    if kind == "trace":
        return c.trace(*args)
    if kind == "meta":
        return c.meta()
    if kind == "whatif":
        params, models = args
        return c.whatif(params, list(models))
    if kind in _DETECTION:
        return getattr(c, kind)(*args)
    raise ValueError(kind)


_DETECTION = ("drift", "drift_compare", "drift_distribution", "releases", "anomalies", "anomaly_series")


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _histogram(url: str, params: Params, field: str, bins: int, scale: str) -> pl.DataFrame:
    return client().histogram(params, field, bins, scale)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _calls(url: str, params: Params, order_by: str, desc: bool, limit: int, offset: int):
    return client().calls(params, order_by=order_by, desc=desc, limit=limit, offset=offset)


def stats(
    filters: ViewFilters,
    metrics: Sequence[str],
    *,
    extra: Sequence[tuple[str, str]] = (),
    group_by: Sequence[str] = (),
    bucket: str | None = None,
    order_by: str | None = None,
    limit: int | None = None,
    top_groups: int | None = None,
    top_by: str | None = None,
) -> pl.DataFrame:
    """/stats; with top_groups, the groups ranked by `top_by` (e.g. "calls": the busiest, whatever the metric)."""
    opts = (("group_by", tuple(group_by)), ("bucket", bucket), ("order_by", order_by), ("limit", limit))
    opts += (("top_groups", top_groups),)
    if top_by is not None:
        opts += (("top_by", top_by),)
    return _stats(scope(), _p(filters, extra), tuple(metrics), opts)


def totals(filters: ViewFilters, metrics: Sequence[str], extra: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """One row of totals for the window."""
    return stats(filters, metrics, extra=extra).row(0, named=True)


def compare(
    filters: ViewFilters, metrics: Sequence[str], *, group_by: Sequence[str] = (), limit: int | None = None
) -> pl.DataFrame:
    return _compare(scope(), _p(filters), tuple(metrics), tuple(group_by), limit)


def changes(
    filters: ViewFilters,
    metric: str,
    dims: Sequence[str],
    *,
    limit: int = 10,
    baseline: tuple[datetime, datetime] | None = None,
) -> dict[str, Any]:
    base = (iso(baseline[0]), iso(baseline[1])) if baseline else None
    return _json(scope(), "changes", (_p(filters), metric, tuple(dims), limit, base))


# The sidebar's pick lists: a scan of the window per dimension on every page, and they change slowly (a new service
# or model shows up in them within this time).
VALUES_TTL_S = 300


@st.cache_data(ttl=VALUES_TTL_S, show_spinner=False)
def _values(url: str, dimension: str, params: Params, limit: int) -> list[Any]:
    return client().values(dimension, params, limit)


def values(filters: ViewFilters, dimension: str, limit: int = 200) -> list[Any]:
    """Values of a dimension in the window, most calls first; other filters are ignored so choices never vanish."""
    return _values(scope(), dimension, tuple(filters.api_params(with_dims=False)), limit)


def histogram(filters: ViewFilters, field: str = "duration_ms", bins: int = 40, scale: str = "log") -> pl.DataFrame:
    return _histogram(scope(), _p(filters), field, bins, scale)


def calls(
    filters: ViewFilters,
    *,
    extra: Sequence[tuple[str, str]] = (),
    order_by: str = "start_time",
    desc: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> tuple[pl.DataFrame, int | None]:
    return _calls(scope(), _p(filters, extra), order_by, desc, limit, offset)


def whatif(params: Sequence[tuple[str, str]], models: Sequence[str]) -> dict[str, Any]:
    """The Cost page's what-if answer, cached like every answer (it was asked again on every visit)."""
    return _json(scope(), "whatif", (tuple(params), tuple(models)))


def call(trace_id: str, span_id: str) -> dict[str, Any]:
    return _json(scope(), "call", (trace_id, span_id))


def trace(trace_id: str) -> dict[str, Any]:
    return _json(scope(), "trace", (trace_id,))


def meta() -> dict[str, Any]:
    """Dimensions and metrics (with their units) the API knows."""
    return _json(scope(), "meta", ())


# -- alerts ----------------------------------------------------------------------------------------------------
# Alert state changes with every evaluation, so its answers are kept only briefly, and every change made from the
# dashboard (a rule saved, a silence created) drops them at once so the page shows it on the same run.

ALERTS_TTL_S = 5


@st.cache_data(ttl=ALERTS_TTL_S, show_spinner=False, max_entries=64)
def _alerts(url: str, kind: str, args: tuple[Any, ...]) -> Any:
    c = client()
    if kind == "rules":
        return c.alert_rules()
    if kind == "instances":
        return c.alert_instances()
    if kind == "history":
        start, end, limit = args
        return c.alert_history(start=start, end=end, limit=limit)
    if kind == "silences":
        return c.silences()
    if kind == "notifications":
        return c.notifications(limit=args[0])
    raise ValueError(kind)


@st.cache_data(ttl=TTL_S, show_spinner=False, max_entries=32)
def _preview(url: str, spec_json: str, last: str) -> dict[str, Any]:
    return client().preview_rule(json.loads(spec_json), last)


def alert_rules() -> dict[str, Any]:
    return _alerts(scope(), "rules", ())


def alert_instances() -> list[dict[str, Any]]:
    return _alerts(scope(), "instances", ())


def alert_history(start: datetime | None, end: datetime | None, limit: int = 2000) -> list[dict[str, Any]]:
    """State changes in [start, end) (open ends allowed), newest first."""
    return _alerts(scope(), "history", (iso(start) if start else None, iso(end) if end else None, limit))


def silences() -> list[dict[str, Any]]:
    return _alerts(scope(), "silences", ())


def notifications(limit: int = 200) -> dict[str, Any]:
    return _alerts(scope(), "notifications", (limit,))


def preview_rule(spec: dict[str, Any], last: str) -> dict[str, Any]:
    """The rule replayed over the `last` days (cached by its exact spec: the same question is asked once)."""
    return _preview(scope(), json.dumps(spec, sort_keys=True), last)


def create_rule(spec: dict[str, Any]) -> dict[str, Any]:
    return _changed(client().create_rule(spec))


def update_rule(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _changed(client().update_rule(name, spec))


def delete_rule(name: str) -> dict[str, Any]:
    return _changed(client().delete_rule(name))


def create_silence(body: dict[str, Any]) -> dict[str, Any]:
    return _changed(client().create_silence(body))


def expire_silence(silence_id: str) -> dict[str, Any]:
    return _changed(client().expire_silence(silence_id))


def _changed(answer: dict[str, Any]) -> dict[str, Any]:
    """After a change: forget the alert answers, so this run and the next show the change."""
    _alerts.clear()
    return answer


def store_is_empty() -> bool:
    """True when the store has never received a call (then pages explain how to send some)."""
    return _stats(scope(), EVER, ("calls",), ()).item(0, "calls") == 0


def export(filters: ViewFilters, fmt: str, extra: Sequence[tuple[str, str]] = ()) -> bytes:
    """The /export stream gathered for st.download_button (called only when the button is clicked)."""
    return b"".join(client().export(list(_p(filters, extra)), fmt))


def parallel(*calls: Callable[[], Any]) -> list[Any]:
    """Run several of the functions above at once (the API answers up to api_max_queries in parallel).

    Each runs in a thread that carries this script run's context, so caching works as in the page itself; the
    first exception is raised, as if the calls had been made one after the other.
    """
    if len(calls) <= 1:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=min(len(calls), 12), thread_name_prefix="callscope-data") as pool:
        futures = [pool.submit(_in_this_run(call)) for call in calls]
        return [f.result() for f in futures]


def _in_this_run(call: Callable[[], Any]) -> Callable[[], Any]:
    """`call` for another thread, carrying this script run's context (so st.cache_data works there)."""
    ctx = get_script_run_ctx(suppress_warning=True)

    def run() -> Any:
        if ctx is not None:
            add_script_run_ctx(ctx=ctx)
        return call()

    return run


_background = ThreadPoolExecutor(max_workers=4, thread_name_prefix="callscope-background")


def background(call: Callable[[], Any]) -> Future:
    """Start `call` now (with this script run's context) and collect its result later with `.result()`."""
    return _background.submit(_in_this_run(call))


def dimension_values(filters: ViewFilters, dims: Sequence[str]) -> dict[str, list[Any]]:
    """Values of several dimensions (the sidebar pickers), fetched at once."""
    lists = parallel(*(lambda d=d: values(filters, d) for d in dims))
    return dict(zip(dims, lists, strict=True))


def clear() -> None:
    st.cache_data.clear()


def detection(kind: str, params: Sequence[tuple[str, str]] = ()) -> Any:
    """Drift and anomaly answers (kind: drift, drift_compare, drift_distribution, releases, anomalies,
    anomaly_series), cached like every answer."""
    return _json(scope(), kind, (tuple(params),))


def anomalies(filters: ViewFilters) -> list[dict[str, Any]]:
    """The anomaly job's anomalous hours in the view's range (for its service filter), for marks on time charts;
    none when this server has no anomaly detection."""
    window = [p for p in filters.api_params(with_dims=False) if p[0] != "tz"]  # `last` keeps the cache key stable
    params = [*window, *(("service", s) for s in filters.dims.get("service", ()))]
    try:
        return detection("anomalies", params)["anomalies"]
    except ApiError:
        return []
