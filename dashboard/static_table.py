"""Read-only tables as plain HTML: what a short summary table needs, without st.dataframe's data grid.

Why: st.dataframe draws on a canvas with a data grid whose code every new browser tab loads and runs. On a 2-core
machine one grid cost a chart page about 0.2 s in a new tab and 0.2-0.3 s with an empty cache (interleaved A/B
over 10M calls: Overview 2.03 -> 1.81 s warm, 2.29 -> 1.96 s cold; Errors 2.05 -> 1.89 and 2.33 -> 2.13). The
tables beside the charts are short (a top 10, the latest 50 errors) and only read, so they are drawn as HTML: the
cells people read (dashboard/tables.py), column labels, help and number formats from the same column_config
st.dataframe takes, numbers right-aligned, long text cut with the whole of it on hover, and optionally a link per
row (to a call's page). Tables people pick rows from stay st.dataframe.

Each header cell carries its column's name (`data-col`), so a test reads the table back by column.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from dashboard import fmt

CLASS = "cs-table"
# Row height and borders like st.dataframe's; the header stays on top while a long table scrolls inside its box.
STYLE = f"""<style>
.{CLASS} {{ overflow: auto; border: 1px solid rgba(49, 51, 63, 0.12); border-radius: 0.5rem; }}
.{CLASS} table {{ border-collapse: separate; border-spacing: 0; width: 100%; font-size: 14px;
  font-variant-numeric: tabular-nums; color: inherit; margin: 0; }}
.{CLASS} th, .{CLASS} td {{ height: 34px; padding: 0 0.6rem; white-space: nowrap; text-align: left;
  border: none; border-bottom: 1px solid rgba(49, 51, 63, 0.08); }}
.{CLASS} th {{ position: sticky; top: 0; background: #f8f9fb; color: rgba(49, 51, 63, 0.75); font-weight: 400; }}
.{CLASS} td {{ max-width: 18rem; overflow: hidden; text-overflow: ellipsis; }}
.{CLASS} td.wide {{ max-width: 40rem; }}
.{CLASS} .num {{ text-align: right; }}
.{CLASS} tbody tr:last-child td {{ border-bottom: none; }}
.{CLASS} tbody tr:hover td {{ background: rgba(49, 51, 63, 0.04); }}
</style>"""
LONG_TEXT = 30  # longer cell text also goes into the cell's title, shown on hover when the cell cuts it


def render(
    frame: pl.DataFrame,
    *,
    column_config: Mapping[str, Any] | None = None,
    numeric: Sequence[str] = (),
    max_height: int | None = None,
    links: Sequence[str] | None = None,
    link_label: str = "Call",
    link_column: str | None = None,
) -> str:
    """`frame` (cells already readable, see dashboard/tables.py) as an HTML table. `column_config`: what
    st.dataframe takes (a label, or a st.column_config.* with label, help, width and a number format); `numeric`:
    columns that hold numbers, though formatted as text (right-aligned); `links`: one address per row, opened from
    the text of the row's `link_column` cell, else from an "open" in a first column named `link_label`."""
    config = dict(column_config or {})
    columns = frame.columns
    right = set(numeric) | {c for c, t in frame.schema.items() if t.is_numeric()}
    if link_column is not None and link_column not in columns:
        raise ValueError(f"link_column {link_column!r} is not a column of the table")
    extra_column = links is not None and link_column is None
    head = [f'<th scope="col">{html.escape(link_label)}</th>'] if extra_column else []
    for name in columns:
        title, help_text = _label(name, config.get(name)), _help(config.get(name))
        attrs = f' data-col="{html.escape(name)}"'
        attrs += ' class="num"' if name in right else ""
        attrs += f' title="{html.escape(help_text)}"' if help_text else ""
        head.append(f'<th scope="col"{attrs}>{html.escape(title)}</th>')
    body = []
    formats = {name: _format(config.get(name)) for name in columns}
    wide = {name for name in columns if _width(config.get(name)) == "large"}
    for i, row in enumerate(frame.iter_rows()):
        cells = []
        if extra_column:
            cells.append(f'<td><a href="{html.escape(links[i])}">open</a></td>')
        for name, value in zip(columns, row, strict=True):
            text = cell_text(value, formats[name])
            classes = " ".join(c for c in ("num" if name in right else "", "wide" if name in wide else "") if c)
            attrs = f' class="{classes}"' if classes else ""
            attrs += f' title="{html.escape(text)}"' if len(text) > LONG_TEXT else ""
            shown = html.escape(text)
            if links is not None and name == link_column:
                shown = f'<a href="{html.escape(links[i])}">{shown}</a>'
            cells.append(f"<td{attrs}>{shown}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        span = len(head)
        body.append(f'<tr><td colspan="{span}">No rows.</td></tr>')
    box = f' style="max-height: {int(max_height)}px"' if max_height else ""
    return (
        f'{STYLE}<div class="{CLASS}"{box}><table><thead><tr>{"".join(head)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def cell_text(value: Any, number_format: str | None = None) -> str:
    """A cell as text: a dash for a missing value, numbers by the column's format (st.column_config's "localized",
    "percent" or a printf pattern such as "%.1f"), else with thousands separators and four significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return fmt.DASH
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if number_format == "percent":
        return fmt.pct(value, 1)
    if number_format and "%" in number_format:
        return number_format % value
    if isinstance(value, int):
        return f"{value:,}"
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _label(name: str, config: Any) -> str:
    if isinstance(config, str):
        return config
    if isinstance(config, Mapping) and config.get("label"):
        return str(config["label"])
    return name


def _help(config: Any) -> str | None:
    return str(config["help"]) if isinstance(config, Mapping) and config.get("help") else None


def _width(config: Any) -> str | None:
    return config.get("width") if isinstance(config, Mapping) else None


def _format(config: Any) -> str | None:
    if not isinstance(config, Mapping):
        return None
    type_config = config.get("type_config") or {}
    return type_config.get("format")
