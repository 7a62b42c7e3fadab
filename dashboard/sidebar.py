"""The sidebar: global filter widgets, kept in step with the URL (see dashboard/filters.py), and auto-refresh."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import streamlit as st

from dashboard import data
from dashboard.api_client import ApiError
from dashboard.filters import (
    FILTER_DIMS,
    PRESETS,
    REFRESH_CHOICES,
    ViewFilters,
    iso,
    query_dict,
    valid_instant,
    valid_zone,
)

_STATE = "view_filters"
_PENDING = "_pending_filters"
_KEYS = {"range": "f_range", "from": "f_from", "to": "f_to", "tz": "f_tz", "refresh": "f_refresh"}
GLOBAL_URL_KEYS = ("range", "from", "to", "tz", "refresh", *FILTER_DIMS)
LABELS = {
    "environment": "Environment",
    "service": "Service",
    "provider": "Provider",
    "model": "Model",
    "user": "User",
    "tag": "Tag",
}


def _dim_key(dim: str) -> str:
    return f"f_{dim}"


def _load(filters: ViewFilters, refresh: int) -> None:
    """Put a ViewFilters into the widgets' session state (before the widgets are drawn)."""
    st.session_state[_KEYS["range"]] = filters.range
    start, end = (filters.start, filters.end) if filters.range == "custom" else (None, None)
    if start is None:
        w_start, w_end = filters.window()
        start, end = iso(w_start), iso(w_end)
    st.session_state[_KEYS["from"]] = start or ""
    st.session_state[_KEYS["to"]] = end or ""
    st.session_state[_KEYS["tz"]] = filters.tz
    st.session_state[_KEYS["refresh"]] = refresh
    for dim in FILTER_DIMS:
        st.session_state[_dim_key(dim)] = list(filters.dims.get(dim, ()))


def _browser_zone() -> str:
    try:
        return st.context.timezone or "UTC"
    except Exception:  # older runtimes or tests without a browser
        return "UTC"


def _refresh_from(query: dict[str, list[str]]) -> int:
    raw = (query.get("refresh") or ["0"])[0]
    return int(raw) if raw.isdigit() and int(raw) in REFRESH_CHOICES else 0


def current() -> ViewFilters:
    """The filters of this run (set by `render()`); pages call this."""
    return st.session_state.get(_STATE) or ViewFilters()


def drill_down(page: Any, filters: ViewFilters, **page_params: str) -> None:
    """Open `page` with new global filters (applied next run) and page parameters in the URL."""
    st.session_state[_PENDING] = filters
    st.switch_page(page, query_params={**filters.to_query(), **page_params})


def render() -> Callable[[], None]:
    """Draw the filter widgets and write the filters into the URL; return the function that draws the pickers.

    The dimension pickers need each dimension's values from the API, but the filters they stand for are known
    from the session already. So their values are fetched in the background while the page runs, and the app
    calls the returned function after the page to draw them in their place.
    """
    query = query_dict(st.query_params)
    if _PENDING in st.session_state:
        _load(st.session_state.pop(_PENDING), int(st.session_state.get(_KEYS["refresh"], 0)))
    elif _KEYS["range"] not in st.session_state:  # a new session: the URL is the truth
        _load(ViewFilters.from_query(query, default_tz=_browser_zone()), _refresh_from(query))

    sb = st.sidebar
    sb.markdown("### Filters")
    preset = sb.selectbox("Time range", list(PRESETS), format_func=PRESETS.__getitem__, key=_KEYS["range"])
    start = end = None
    if preset == "custom":
        start = sb.text_input("From (ISO 8601)", key=_KEYS["from"], help="e.g. 2026-01-31T09:00:00Z")
        end = sb.text_input("To (ISO 8601, empty for now)", key=_KEYS["to"])
        if not valid_instant(start) or (end and not valid_instant(end)):
            sb.error("From/To must be ISO 8601 times, e.g. 2026-01-31T09:00:00Z; showing the last 24 hours.")
            preset, start, end = "24h", None, None
    tz = sb.text_input("Time zone (IANA)", key=_KEYS["tz"], help="Buckets and times are shown in this zone.")
    draft = ViewFilters(preset, start, end or None, tz if _zone_ok(tz) else "UTC")
    if not _zone_ok(tz):
        sb.error(f"Unknown time zone {tz!r}; using UTC.")

    known = data.background(lambda: data.dimension_values(draft, FILTER_DIMS))
    chosen = {dim: [str(v) for v in st.session_state.get(_dim_key(dim), [])] for dim in FILTER_DIMS}
    pickers = sb.container()
    filters = ViewFilters(
        draft.range, draft.start, draft.end, draft.tz, {dim: tuple(v) for dim, v in chosen.items() if v}
    )

    refresh = sb.selectbox(
        "Auto-refresh", list(REFRESH_CHOICES), format_func=REFRESH_CHOICES.__getitem__, key=_KEYS["refresh"]
    )
    if sb.button("Refresh now", width="stretch"):
        data.clear()
    sb.caption(f"Data from {data.config().url}")
    _retention_note(sb)

    st.session_state[_STATE] = filters
    _write_url(filters, refresh)
    if refresh:
        _auto_refresh(refresh)

    def draw_pickers() -> None:
        try:
            values = known.result()
        except ApiError:  # the page says what is wrong; the pickers keep what is selected
            values = {}
        for dim in FILTER_DIMS:
            options = [str(v) for v in values.get(dim, []) if v is not None]
            options += [v for v in chosen[dim] if v not in options]
            pickers.multiselect(LABELS[dim], options, key=_dim_key(dim), placeholder="All")

    return draw_pickers


def _retention_note(sb: Any) -> None:
    """Say when raw calls were removed by retention: ranges before then are answered from rollups only."""
    try:
        before = data.meta().get("rollups_only_before")
    except ApiError:  # the page itself says what is wrong
        return
    if before:
        sb.caption(
            f"Raw calls before {before[:16].replace('T', ' ')} UTC were removed by retention: ranges before then"
            " are answered from rollups only (counts, tokens, cost exact; percentiles and call lists cover only"
            " the calls kept)."
        )


def _zone_ok(name: str) -> bool:
    return bool(name) and valid_zone(name)


def _write_url(filters: ViewFilters, refresh: int) -> None:
    wanted: dict[str, Any] = filters.to_query()
    if refresh:
        wanted["refresh"] = str(refresh)
    current = query_dict(st.query_params)
    for key in GLOBAL_URL_KEYS:
        value = wanted.get(key)
        values = value if isinstance(value, list) else ([value] if value is not None else [])
        if current.get(key, []) != values:
            if values:
                st.query_params[key] = values
            elif key in st.query_params:
                del st.query_params[key]


def _auto_refresh(seconds: int) -> None:
    """Re-run the whole app every `seconds`: a fragment ticks on its own and asks for a full rerun."""
    st.session_state["_ran_at"] = time.monotonic()

    @st.fragment(run_every=seconds)
    def tick() -> None:
        if time.monotonic() - st.session_state.get("_ran_at", 0.0) >= seconds * 0.9:
            st.rerun(scope="app")

    tick()
