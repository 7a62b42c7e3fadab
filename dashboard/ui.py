"""Pieces every page shares: KPI tiles with deltas, the empty-store guide, API error messages, chart drill-downs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import streamlit as st

from dashboard import alert_rows, auth, charts, data, fmt, plot, static_table, tables
from dashboard.api_client import ApiError
from dashboard.figure import Figure
from dashboard.filters import ViewFilters, query_dict

OTLP_HINT = """\
export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"""


@dataclass(frozen=True)
class Kpi:
    metric: str
    label: str
    format: Callable[[float | None], str]
    up_is_good: bool = False
    help: str | None = None


def kpi_row(row: dict[str, Any], kpis: Sequence[Kpi], *, compare: bool = True, columns: Sequence[Any] = ()) -> None:
    """st.metric tiles; with compare, the delta against the previous period of the same length, and when that
    period had no calls, a badge saying so (rather than no badge at all)."""
    for column, kpi in zip(columns or st.columns(len(kpis)), kpis, strict=True):
        value = row.get(kpi.metric)
        delta, arrow, color = None, "auto", "normal" if kpi.up_is_good else "inverse"
        if compare:
            prev = row.get(f"{kpi.metric}_prev")
            pct = row.get(f"{kpi.metric}_delta_pct")
            if pct is not None:
                delta = fmt.signed_pct(pct)
            elif prev is None or row.get("calls_prev") == 0:
                delta, arrow, color = NO_EARLIER, "off", "off"
            elif prev == 0:
                delta, arrow, color = "was 0 before", "off", "off"
        column.metric(
            kpi.label,
            kpi.format(value),
            delta=delta,
            delta_color=color,
            delta_arrow=arrow,
            help=(kpi.help or "") + (" Change vs the previous period of the same length." if compare else ""),
            border=True,
        )


NO_EARLIER = "no earlier data"


@dataclass(frozen=True)
class Section:
    """A tab of a page drawn only when it is open: what it asks the API (`loaders(filters)`, asked together with
    the page's own questions) and how it draws the answers (`draw(filters, *answers)`)."""

    loaders: Callable[[ViewFilters], list[Callable[[], Any]]]
    draw: Callable[..., None]


def open_tab(key: str, labels: Sequence[str]) -> str:
    """The tab of `st.tabs(labels, key=key, bind="query-params")` this run will show, known before the tabs are
    drawn (so its data is asked together with the rest of the page): the session's, else the URL's, else the
    first."""
    chosen = st.session_state.get(key)
    if chosen is None:
        chosen = next(iter(query_dict(st.query_params).get(key, [])), None)
    return chosen if chosen in labels else next(iter(labels))


def show_api_error(exc: ApiError) -> None:
    """A clear message and what to do; never a traceback."""
    if exc.kind == "unreachable":
        st.error(f"**The callscope server is not reachable.** {exc}")
        st.markdown(
            "Start it with `callscope serve` (or `callscope up`, which also starts this dashboard), or point the "
            "dashboard at it with `CALLSCOPE_API_URL=http://HOST:PORT/api/v1`."
        )
    elif exc.kind == "unauthorized" and auth.signed_in_session():
        st.error("**Signed out.** Your session has ended: reload the page to sign in again.")
    elif exc.kind == "unauthorized":
        st.error(f"**The read key was refused.** {exc}")
    elif exc.kind == "forbidden":
        with st.container(key="not_allowed"):
            st.error(f"**Not allowed.** {exc.reason.removeprefix('not allowed: ')}")
    else:
        st.error(str(exc))


def load(filters: ViewFilters, *loaders: Callable[[], Any]) -> list[Any] | None:
    """The page's data, or None (after explaining why) when the store is empty or the window has no calls.

    The checks run together with the page's own queries rather than before them: one round of waiting, not two.
    """
    empty, window, *results = data.parallel(data.store_is_empty, lambda: data.totals(filters, ("calls",)), *loaders)
    if empty:
        empty_store()
        return None
    if window["calls"] == 0:
        st.info(
            f"No calls match these filters in the {filters.describe()}. Widen the time range or clear filters "
            "in the sidebar."
        )
        return None
    return results


def empty_store() -> None:
    st.info("**No calls recorded yet.** Point an application's OpenTelemetry exporter at callscope:")
    st.code(OTLP_HINT, language="bash")
    st.markdown(
        "Any GenAI instrumentation works (the official OpenAI instrumentation, OpenLLMetry, OpenInference, "
        "OpenLIT, Langfuse, Vercel AI SDK, Logfire, litellm). gRPC is on port 4317 "
        "(`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`). Calls appear here within seconds; this page refreshes on reload."
    )


def selected_window(event: Any, buckets: Sequence[datetime]) -> tuple[datetime, datetime] | None:
    """The time window a chart selection covers: a box's x range, else the buckets of the picked points.

    A picked bucket covers [its start, the next bucket's start); the last one gets the width of the one before.
    """
    selection = _selection(event)
    if not selection:
        return None
    starts = sorted(buckets)
    if not starts:
        return None
    width = starts[-1] - starts[-2] if len(starts) > 1 else timedelta(hours=1)

    def end_of(start: datetime) -> datetime:
        later = [b for b in starts if b > start]
        return later[0] if later else start + width

    boxes = selection.get("box") or []
    if boxes:
        xs = [_as_time(x, starts[0]) for b in boxes for x in b.get("x", [])]
        xs = [x for x in xs if x is not None]
        if len(xs) >= 2:
            return min(xs), max(xs)
    picked = [_as_time(p.get("x"), starts[0]) for p in selection.get("points", [])]
    picked = [p for p in picked if p is not None]
    if not picked:
        return None
    lo, hi = min(picked), max(picked)
    return lo, end_of(hi)


def selected_point(event: Any) -> dict[str, Any] | None:
    selection = _selection(event)
    points = selection.get("points") if selection else None
    return points[0] if points else None


def _selection(event: Any) -> dict[str, Any] | None:
    if not event:
        return None
    selection = event.get("selection") if isinstance(event, dict) else getattr(event, "selection", None)
    return selection or None


def _as_time(value: Any, like: datetime) -> datetime | None:
    """Plotly hands back x values as strings like '2026-01-02 10:00' (in the data's zone, without offset)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace(" ", "T"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=like.tzinfo)
    return moment


def chart(
    fig: Figure,
    key: str,
    *,
    select: str | tuple[str, ...] | None = None,
    filters: ViewFilters | None = None,
    anomalies: Sequence[dict[str, Any]] = (),
    empty: str = "No data in this range for these filters.",
) -> Any:
    """Draw a chart with the dashboard's defaults; with `select`, returns the selection event.

    With `filters`, a time chart spans the whole selected range (every time chart of a page shares its axis) and
    carries the anomaly job's marks; a chart without any value says `empty` instead of drawing empty axes."""
    if not charts.has_data(fig):
        fig = charts.with_message(fig, empty)
    elif filters is not None:
        start, end = filters.window()
        zone = ZoneInfo(filters.tz)
        # whole minutes: the same figure on a rerun within the minute (a redraw would clear a box selection)
        start, end = start.replace(second=0, microsecond=0), end.replace(second=0, microsecond=0) + timedelta(minutes=1)
        charts.time_axis(fig, start, end, zone)
        charts.mark_anomalies(fig, [a for a in anomalies if start <= _hour(a) < end], zone)
    scope = filters.scope() if select and filters is not None else ""
    return plot.draw(fig, key, select=select, scope=scope)


def fine_bucket(filters: ViewFilters) -> str:
    """Buckets for counting events (errors by provider): about 300 or more over the range, so a burst of half an
    hour is one or two bars rather than a sliver of a day's bar."""
    start, end = filters.window()
    hours = (end - start).total_seconds() / 3600
    for bucket, size_h in (("minute", 1 / 60), ("5m", 5 / 60), ("15m", 0.25), ("30m", 0.5), ("hour", 1)):
        if hours / size_h <= 400:
            return bucket
    return "auto"


def stacked_bucket(filters: ViewFilters) -> str:
    """Buckets for bars stacked by group (spend by model): hours from half a day to two days (where the server's
    choice would be 15 minutes), so a day is 24 bars, each an hour as the anomaly job's marks are. Eight groups of
    96 quarter-hour bars were ~770 shapes for the browser to draw in every new tab (~0.05 s)."""
    start, end = filters.window()
    return "hour" if 12 <= (end - start).total_seconds() / 3600 <= 48 else "auto"


def _hour(row: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(row["hour"]).replace("Z", "+00:00"))


def table(
    frame: pl.DataFrame,
    key: str,
    *,
    column_config: dict[str, Any] | None = None,
    units: dict[str, str] | None = None,
    rows: int | None = None,
    max_rows: int = tables.MAX_ROWS_SHOWN,
    links: Sequence[str] | None = None,
    link_column: str | None = None,
    **kwargs: Any,
) -> Any:
    """A table as people read it: missing values as a dash (never "None"), the `units` columns formatted by unit
    (dashboard/tables.py), tall enough for `rows` rows (default: all of them, up to a limit).

    A table only read is plain HTML (dashboard/static_table.py: no data grid to load, about 0.2 s of a new tab),
    with `links` (one address per row) opened from the row's `link_column` cell, else from a first column; one
    people pick rows from (`on_select`) is st.dataframe, and its selection is returned."""
    shown = tables.readable(frame, units) if units else frame
    height = tables.height_for(frame.height if rows is None else rows, max_rows)
    if "on_select" not in kwargs:
        numeric = [c for c, unit in (units or {}).items() if unit in tables.NUMERIC_UNITS]
        st.html(
            static_table.render(
                shown,
                column_config=column_config,
                numeric=numeric,
                max_height=height,
                links=links,
                link_column=link_column,
            )
        )
        return None
    if links is not None:
        raise ValueError("links are for read-only tables; a table with on_select opens what is picked itself")
    return st.dataframe(
        shown,
        column_config=column_config,
        hide_index=True,
        key=key,
        placeholder=fmt.DASH,
        height=height,
        **kwargs,
    )


def money_table(frame: pl.DataFrame, money: Sequence[str] = (), shares: Sequence[str] = ()) -> pl.DataFrame:
    """Money columns rounded for reading (exact values stay in exports), shares as percentages."""
    exprs = [pl.col(c).round(6) for c in money if c in frame.columns]
    exprs += [(pl.col(c) * 100).round(2).alias(c) for c in shares if c in frame.columns]
    return frame.with_columns(exprs) if exprs else frame


ALERTS_PAGE = "views/alerts.py"  # listed in dashboard/nav.py


def firing_alerts(instances: Future) -> None:
    """The Overview's tile: firing alert instances now (whatever the time range), by severity, and the way to the
    Alerts page. `instances` is the pending answer of data.alert_instances (fetched while the page ran)."""
    try:
        found = instances.result()
    except ApiError as exc:
        st.caption(f"Alerts are not available from this server: {exc.reason}")
        return
    counts = alert_rows.firing_counts(found)
    cols = st.columns([1, 1, 2], vertical_alignment="center")
    cols[0].metric("Critical firing", f"{counts['critical']:,}", border=True, help="Firing alert instances now")
    cols[1].metric("Warning firing", f"{counts['warning']:,}", border=True, help="Firing alert instances now")
    with cols[2]:
        pending = sum(1 for i in found if i["state"] == "pending")
        if pending:
            st.caption(f"{pending:,} more pending (true, waiting out their rule's `for`).")
        st.page_link(ALERTS_PAGE, label="Open Alerts: what fires, its calls, silences", icon=":material/arrow_forward:")
