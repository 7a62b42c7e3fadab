"""Readable tables and the Overview's "what changed" (issue 17): money by size, no "None" in a cell, and the
callouts picked by volume-aware rules, checked against a direct computation over the same rows."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl

from dashboard import charts, fmt, movers, tables
from dashboard.call_layout import field_rows
from dashboard.filters import ViewFilters


def test_money_in_cells_has_sensible_precision() -> None:
    assert fmt.usd_cell(0.0005702999999999999) == "$0.000570"
    assert fmt.usd_cell(0.0571234) == "$0.0571"
    assert fmt.usd_cell(12.345) == "$12.35"
    assert fmt.usd_cell(12345.6) == "$12,345.60"
    assert fmt.usd_cell(-0.25) == "-$0.250"
    assert fmt.usd_cell(0) == "$0.00" and fmt.usd_cell(None) == fmt.DASH


def test_readable_tables_never_show_none() -> None:
    frame = pl.DataFrame(
        {
            "model": ["gpt-4o-mini", None],
            "ttft_ms": [9914.00487011807, None],
            "http_status": [None, 429],
            "cost_usd": [0.0005702999999999999, None],
            "calls": [1200, 3],
        }
    )
    shown = tables.readable(frame, {"ttft_ms": "ms", "http_status": "int", "cost_usd": "USD"})
    assert shown.to_dicts() == [
        {"model": "gpt-4o-mini", "ttft_ms": "9,914", "http_status": fmt.DASH, "cost_usd": "$0.000570", "calls": 1200},
        {"model": fmt.DASH, "ttft_ms": fmt.DASH, "http_status": "429", "cost_usd": fmt.DASH, "calls": 3},
    ]
    assert tables.height_for(50, 50) == 35 * 51 + 3 and tables.height_for(50) == 35 * 26 + 3


def test_the_call_page_fields_read_as_values() -> None:
    rows = field_rows({"ttft_ms": 9914.00487011807, "error_type": None, "cost_usd": 0.00057, "tags": ["a"]})
    assert dict(rows.iter_rows()) == {
        "ttft_ms": "9,914.005 ms",
        "error_type": fmt.DASH,
        "cost_usd": "$0.000570",
        "tags": '["a"]',
    }


def test_time_ranges_and_counts_read_as_people_write_them() -> None:
    custom = ViewFilters(range="custom", start="2026-11-29T18:00:00Z", end="2026-11-30T02:00:00Z")
    assert custom.describe() == "time from 29 Nov 18:00 to 30 Nov 2026 02:00 (UTC)"
    assert fmt.plural(1, "span") == "1 span" and fmt.plural(3, "span") == "3 spans"


def test_an_empty_chart_says_why() -> None:
    fig = charts.series(pl.DataFrame({"bucket": [], "calls": []}), "calls", "calls", "Calls")
    assert not charts.has_data(fig)
    assert charts.with_message(fig, "No data").layout.annotations[0].text == "No data"


def test_a_few_calls_get_whole_number_ticks() -> None:
    hours = [datetime(2026, 12, 1, h, tzinfo=UTC) for h in (0, 0, 1, 2)]
    few = pl.DataFrame({"bucket": hours, "model": ["a", "b", "a", "b"], "unpriced_calls": [2, 3, 1, 1]})
    # stacked, the first hour holds 2 + 3 = 5 calls: ticks 0, 1, 2, ... (plotly's own would be 0, 500m, 1, ...)
    stacked = charts.series(few, "unpriced_calls", "calls", "t", group="model", kind="bar", stacked=True)
    assert (stacked.layout.yaxis.dtick, stacked.layout.yaxis.tickformat) == (1, "d")
    more = few.with_columns(pl.col("unpriced_calls") * 2)  # 10 calls in the first hour: plotly's ticks again
    stacked = charts.series(more, "unpriced_calls", "calls", "t", group="model", kind="bar", stacked=True)
    assert stacked.layout.yaxis.dtick is None and stacked.layout.yaxis.tickformat == ",~s"
    side_by_side = charts.series(more, "unpriced_calls", "calls", "t", group="model", kind="bar")
    assert side_by_side.layout.yaxis.dtick is None  # 6 calls in the tallest bar
    ratio = charts.series(few.with_columns(pl.col("unpriced_calls") / 10), "unpriced_calls", "ratio", "t")
    assert ratio.layout.yaxis.dtick is None and ratio.layout.yaxis.tickformat == ".1%"


def _compare(rows: list[dict], dim: str) -> pl.DataFrame:
    """What /stats?compare=true answers per group, computed here from plain per-call rows with numpy."""
    out = []
    for value in sorted({r[dim] for r in rows}):
        now = [r for r in rows if r[dim] == value and r["now"]]
        before = [r for r in rows if r[dim] == value and not r["now"]]

        def m(part: list[dict]) -> dict:
            n = len(part)
            errors = sum(r["error"] for r in part)
            return {
                "calls": n,
                "cost_usd": float(np.sum([r["cost"] for r in part])) if n else None,
                "errors": errors,
                "error_rate": errors / n if n else None,
                "latency_p95": float(np.percentile([r["ms"] for r in part], 95)) if n else None,
                "input_tokens_per_call": float(np.mean([r["inp"] for r in part])) if n else None,
                "output_tokens_per_call": float(np.mean([r["out"] for r in part])) if n else None,
            }

        a, b = m(now), m(before)
        out.append({dim: value, **a, **{f"{k}_prev": v for k, v in b.items()}})
    return pl.DataFrame(out)


def test_what_changed_ranks_by_volume_not_by_small_groups() -> None:
    rng = np.random.default_rng(1)
    rows = []
    for now in (False, True):
        for _ in range(4000):  # a busy service whose prompts grow 40% and a few more errors than before
            rows.append(
                {
                    "service": "busy",
                    "now": now,
                    "cost": 0.01 * (1.3 if now else 1),
                    "error": rng.random() < (0.04 if now else 0.02),
                    "ms": rng.lognormal(7, 0.3),
                    "inp": 1000 * (1.4 if now else 1),
                    "out": 200,
                }
            )
        for _ in range(6):  # a tiny one: 100% errors and 10x latency now, on 6 calls
            rows.append(
                {
                    "service": "tiny",
                    "now": now,
                    "cost": 0.001,
                    "error": now,
                    "ms": 50_000 if now else 5000,
                    "inp": 10,
                    "out": 5,
                }
            )
    frame = _compare(rows, "service")
    found = {c.measure: c for c in movers.biggest({"service": frame}, total_calls=4006)}
    busy = frame.filter(pl.col("service") == "busy").row(0, named=True)
    assert found["spend"].value == "busy" and found["spend"].change == busy["cost_usd"] - busy["cost_usd_prev"]
    # excess errors: 4000 x (4% - 2%) ~ 80 beat the tiny service's 6
    assert found["error_rate"].value == "busy"
    assert found["error_rate"].change == busy["errors"] - busy["calls"] * busy["error_rate_prev"]
    # 6 calls are under the floor: their 10x p95 is not a callout; the busy service's prompt growth is
    assert found["latency_p95"].value == "busy"
    assert found["tokens_per_call"].value == "busy" and found["tokens_per_call"].detail == "input"
    assert abs(found["tokens_per_call"].change - 0.4) < 1e-9


def test_no_earlier_calls_no_callouts() -> None:
    frame = pl.DataFrame(
        {"service": ["a"], "calls": [10], "calls_prev": [0], "cost_usd": [1.0], "cost_usd_prev": [0.0]}
    )
    assert movers.biggest({"service": frame}, 10) == []


def test_anomaly_marks_and_the_time_axis() -> None:
    frame = pl.DataFrame({"bucket": [datetime(2026, 1, 1, h, tzinfo=UTC) for h in range(3)], "calls": [5, 50, 6]})
    fig = charts.series(frame, "calls", "calls", "Calls")
    zone = UTC
    charts.time_axis(fig, datetime(2025, 12, 31, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC), zone)
    assert list(fig.layout.xaxis.range) == [datetime(2025, 12, 31), datetime(2026, 1, 2)]
    charts.mark_anomalies(
        fig,
        [{"hour": "2026-01-01T01:00:00Z", "metric": "calls", "scope": "service", "service": "x", "score": 7.5}],
        zone,
    )
    marks = fig.data[-1]
    assert marks.name == "anomaly" and list(marks.x) == [datetime(2026, 1, 1, 1, 30)] and list(marks.y) == [50]
