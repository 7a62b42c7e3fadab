"""How numbers read on screen: money with sensible precision, durations, tokens, shares. None is "—" (unknown)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

DASH = "—"


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def usd(value: float | None) -> str:
    """$12,346 from a thousand dollars (cents would not fit a KPI tile), $123.46 for dollars, four decimals under a
    dollar, three significant figures under a cent."""
    if _missing(value):
        return DASH
    assert value is not None
    sign, v = ("-" if value < 0 else ""), abs(value)
    if v == 0:
        return "$0.00"
    if v >= 1000:
        return f"{sign}${v:,.0f}"
    if v >= 1:
        return f"{sign}${v:,.2f}"
    if v >= 0.01:
        return f"{sign}${v:.4f}"
    return f"{sign}${v:.3g}" if v >= 1e-4 else f"{sign}${v:.2e}"


def usd_cell(value: float | None) -> str:
    """Money in a table cell: cents from a dollar up ($1,234.56), three significant figures under a dollar
    ($0.0571, $0.000570): a call's cost is readable and a column of them compares at a glance."""
    if _missing(value):
        return DASH
    assert value is not None
    sign, v = ("-" if value < 0 else ""), abs(value)
    if v == 0:
        return "$0.00"
    if v >= 1:
        return f"{sign}${v:,.2f}"
    digits = min(2 - math.floor(math.log10(v)), 10)
    return f"{sign}${v:.{digits}f}"


def when(value: Any) -> str:
    """An instant in a cell: 2026-12-02 14:03:05 (the column title names the zone; no microseconds)."""
    if _missing(value):
        return DASH
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    text = str(value).replace("T", " ")
    return text[:19]


def span_range(start: datetime, end: datetime) -> str:
    """A time range as people write it: '29 Nov 18:00 to 30 Nov 02:00', the date once when it is one day."""
    if start.date() == end.date():
        return f"{start:%-d %b %Y}, {start:%H:%M} to {end:%H:%M}"
    return f"{start:%-d %b %H:%M} to {end:%-d %b %Y %H:%M}"


def plural(n: int, one: str, many: str | None = None) -> str:
    """'1 span', '3 spans'."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def usd_exact(value: float | None) -> str:
    """For hovers and detail pages: the stored value to the micro-dollar."""
    return DASH if _missing(value) else f"${value:,.6f}"


def count(value: float | None) -> str:
    return DASH if _missing(value) else f"{round(value):,}"  # type: ignore[arg-type]


def tokens(value: float | None) -> str:
    return DASH if _missing(value) else f"{round(value):,} tokens"  # type: ignore[arg-type]


def ms(value: float | None) -> str:
    if _missing(value):
        return DASH
    assert value is not None
    return f"{value / 1000:,.2f} s" if value >= 1000 else f"{value:,.0f} ms"


def pct(value: float | None, digits: int = 2) -> str:
    return DASH if _missing(value) else f"{value * 100:.{digits}f}%"  # type: ignore[operator]


def rate(value: float | None) -> str:
    return DASH if _missing(value) else f"{value:,.0f} tok/s"


def compact(value: float | None) -> str:
    """12,345 -> 12.3k, 3,469,876 -> 3.47M: for tiles, where space is short (hovers keep exact values)."""
    if _missing(value):
        return DASH
    assert value is not None
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:,.0f}"


def signed_pct(value: float | None) -> str | None:
    """A delta for st.metric: '+12.3%'; None when there is nothing to compare with."""
    if _missing(value):
        return None
    return f"{value * 100:+.1f}%"  # type: ignore[operator]


def duration(seconds: float) -> str:
    """A span of time as rules write it: 45s, 51m, 1h30m, 2d."""
    left, out = int(seconds), ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            out += f"{left // size}{unit}"
            left %= size
    return out or "0s"


def change(value: float | None) -> str:
    """A change already in percent (a relative alert rule's value): +12.3%."""
    return DASH if _missing(value) else f"{value:+.1f}%"


BY_UNIT = {"USD": usd, "calls": count, "tokens": tokens, "ms": ms, "ratio": pct, "tokens/s": rate, "%": change}


def by_unit(unit: str, value: float | None) -> str:
    return BY_UNIT.get(unit, lambda v: DASH if _missing(v) else f"{v:,}")(value)
