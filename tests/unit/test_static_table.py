"""Read-only tables drawn as HTML (dashboard/static_table.py): the cells people read, labels and formats from the
column_config st.dataframe takes, numbers right-aligned, text escaped, row links."""

from __future__ import annotations

import math

import polars as pl
import pytest
import streamlit as st

from dashboard import fmt, static_table, tables
from tests.dashboard_tables import parse


def test_cells_read_as_in_a_dataframe_with_labels_help_and_formats() -> None:
    frame = pl.DataFrame(
        {
            "model": ["gpt-4.1", None],
            "calls": [12345, 7],
            "share": [0.1234, 0.5],
            "score": [3.14159, 2.0],
            "p95": [812.4, 12.0],
            "cost": [0.000571, 12.5],
        }
    )
    shown = tables.readable(frame, {"p95": "ms", "cost": "USD"})
    body = static_table.render(
        shown,
        column_config={
            "model": st.column_config.TextColumn("Model", help="One name per model"),
            "calls": st.column_config.NumberColumn("Calls", format="localized"),
            "share": st.column_config.NumberColumn("Share", format="percent"),
            "score": st.column_config.NumberColumn("Score", format="%.1f"),
            "p95": "p95 (ms)",
        },
        numeric=["p95", "cost"],
    )
    table = parse(body)
    assert list(table.columns) == ["model", "calls", "share", "score", "p95", "cost"]
    assert table.to_dict("list") == {
        "model": ["gpt-4.1", fmt.DASH],
        "calls": ["12,345", "7"],
        "share": [fmt.pct(0.1234, 1), fmt.pct(0.5, 1)],
        "score": ["3.1", "2.0"],
        "p95": ["812", "12"],
        "cost": [fmt.usd_cell(0.000571), fmt.usd_cell(12.5)],
    }
    assert "None" not in body
    assert '<th scope="col" data-col="model" title="One name per model">Model</th>' in body
    assert '<th scope="col" data-col="p95" class="num">p95 (ms)</th>' in body  # numbers read right-aligned
    assert '<th scope="col" data-col="calls" class="num">Calls</th>' in body


def test_text_is_escaped_long_text_has_its_whole_on_hover_and_wide_columns_are_wide() -> None:
    message = "<script>alert(1)</script> upstream connect error or disconnect/reset before headers"
    body = static_table.render(
        pl.DataFrame({"error_message": [message]}),
        column_config={"error_message": st.column_config.TextColumn("Message", width="large")},
    )
    assert "<script>alert" not in body
    assert parse(body)["error_message"].tolist() == [message]
    assert '<td class="wide" title="&lt;script&gt;' in body


def test_rows_link_to_their_pages_and_an_empty_table_says_so() -> None:
    frame = pl.DataFrame({"trace_id": ["ab", "cd"], "duration_ms": ["1,200", "900"]})
    links = ["call?trace=ab&span=01", "call?trace=cd&span=02"]
    table = parse(static_table.render(frame, links=links))
    assert table.attrs["links"] == links and table["trace_id"].tolist() == ["ab", "cd"]
    assert '<th scope="col">Call</th>' in static_table.render(frame, links=links)
    # or from a cell's own text: no column is added
    on_cell = static_table.render(frame, links=links, link_column="trace_id")
    assert '<td><a href="call?trace=cd&amp;span=02">cd</a></td>' in on_cell and ">open<" not in on_cell
    assert parse(on_cell).attrs["links"] == links and parse(on_cell).columns.tolist() == ["trace_id", "duration_ms"]
    with pytest.raises(ValueError, match="not a column"):
        static_table.render(frame, links=links, link_column="span_id")
    empty = static_table.render(frame.head(0))
    assert "No rows." in empty and parse(empty).empty


def test_plain_numbers_get_separators_and_four_significant_digits() -> None:
    assert static_table.cell_text(1234567) == "1,234,567"
    assert static_table.cell_text(1234.5678) == "1,235"
    assert static_table.cell_text(0.000123456) == "0.0001235"
    assert static_table.cell_text(3.0) == "3"
    assert static_table.cell_text(math.nan) == fmt.DASH
    assert static_table.cell_text(True) == "True"
