"""The dashboard's tables read back from an AppTest run, whatever draws them: st.dataframe (tables people pick rows
from) or plain HTML (dashboard/static_table.py, tables only read). An HTML table comes back as a pandas DataFrame
of the cell texts a person reads, by column name (its header's data-col); its rows' links are in `attrs["links"]`."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pandas as pd
from streamlit.testing.v1 import AppTest

from dashboard.static_table import CLASS


class _TableParser(HTMLParser):
    """Header names (data-col) and each row's cells as (text, link address or None)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.columns: list[str] = []
        self.rows: list[list[tuple[str, str | None]]] = []
        self._in_body = False
        self._text: list[str] | None = None
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "th" and "data-col" in named:
            self.columns.append(named["data-col"] or "")
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body and "colspan" not in named:  # colspan: the "No rows." line
            self._text, self._href = [], None
        elif tag == "a" and self._text is not None:
            self._href = named.get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._text is not None:
            self.rows[-1].append(("".join(self._text), self._href))
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def parse(body: str) -> pd.DataFrame:
    """One HTML table (dashboard/static_table.py render) as a DataFrame of cell texts."""
    parser = _TableParser()
    parser.feed(body)
    width = len(parser.columns)
    rows = [r for r in parser.rows if r]
    frame = pd.DataFrame([[text for text, _ in r[-width:]] for r in rows], columns=parser.columns)
    # a row's link: in a first column of its own, or on one of its cells
    frame.attrs["links"] = [href for r in rows if (href := next((h for _, h in r if h), None))]
    return frame


def html_tables(at: AppTest) -> list[pd.DataFrame]:
    """Every HTML table of the run, in page order."""
    return [parse(e.proto.body) for e in at.get("html") if f'class="{CLASS}"' in e.proto.body]


def all_tables(at: AppTest) -> list[Any]:
    """The run's st.dataframe values and its HTML tables."""
    return [frame.value for frame in at.dataframe] + html_tables(at)


def table(at: AppTest, *columns: str) -> Any:
    """The first table (st.dataframe or HTML) that has these columns."""
    for value in all_tables(at):
        if all(c in value.columns for c in columns):
            return value
    raise AssertionError(f"no table with columns {columns}")
