"""Tables people can read: no "None" in a cell, numbers rounded by their unit, money with sensible precision.

st.dataframe shows a missing value as the word "None" (numbers too), and a float as all its digits. `readable()`
turns the columns a page shows into what a person should see: a missing value is a dash, durations are whole
milliseconds, money is rounded to what matters at its size (fmt.usd_cell), counts get thousands separators.
Columns without missing values and with a plain number format stay numbers (they sort as numbers); the others
become text formatted by unit. `height_for()` makes a table tall enough for its rows (up to a limit), so a page
of 50 calls is not a window of 10.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from dashboard import fmt

ROW_PX = 35
MAX_ROWS_SHOWN = 25  # taller than this and the table scrolls (the Calls page pages by 50)

# How a column of each unit reads in a cell.
CELL: dict[str, Callable[[Any], str]] = {
    "USD": lambda v: fmt.usd_cell(v),
    "ms": lambda v: fmt.DASH if v is None else f"{v:,.0f}",
    "count": lambda v: fmt.DASH if v is None else f"{round(v):,}",
    "ratio": lambda v: fmt.pct(v, 1),
    "int": lambda v: fmt.DASH if v is None else f"{int(v)}",
    "text": lambda v: fmt.DASH if v is None or v == "" else str(v),
    "time": lambda v: fmt.DASH if v is None else fmt.when(v),
    # signed changes
    "USD+": lambda v: fmt.DASH if v is None else ("+" if v > 0 else "") + fmt.usd_cell(v),
    "ratio+": lambda v: fmt.DASH if v is None else f"{v * 100:+.1f}%",
    "count+": lambda v: fmt.DASH if v is None else f"{round(v):+,}",
    "ms+": lambda v: fmt.DASH if v is None else f"{v:+,.0f}",
}

NUMERIC_UNITS = frozenset(u for u in CELL if u not in ("text", "time"))  # cells that read as numbers (right-aligned)


def readable(frame: pl.DataFrame, units: Mapping[str, str] | None = None) -> pl.DataFrame:
    """The columns of `frame` as a person reads them: `units` names each numeric column's unit (USD, ms, count,
    ratio, int, time); string columns get a dash for missing values; every formatted column becomes text."""
    units = dict(units or {})
    exprs = []
    for name, dtype in frame.schema.items():
        unit = units.get(name)
        if unit is None:
            if dtype == pl.String or dtype == pl.Categorical:
                unit = "text"
            elif dtype.is_temporal():
                unit = "time"
            elif frame[name].null_count() == 0:
                continue  # a plain number with no gaps: stays a number
            else:
                unit = "count" if dtype.is_integer() else "ms"
        fn = CELL[unit]
        exprs.append(pl.col(name).map_elements(fn, return_dtype=pl.String, skip_nulls=False).alias(name))
    return frame.with_columns(exprs) if exprs else frame


def height_for(rows: int, limit: int = MAX_ROWS_SHOWN) -> int:
    """Pixels showing `rows` rows (up to `limit`) and the header without an inner scroll bar."""
    return ROW_PX * (min(max(rows, 1), limit) + 1) + 3
