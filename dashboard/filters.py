"""The global filters: which calls every page is about, kept in the URL so a copied link reproduces the view.

`ViewFilters` is plain data (URL query string <-> read-API parameters). `sidebar.render()` draws the widgets and
keeps three places in step: the widgets' session state (the truth while a session lives, so switching pages keeps
the filters), the URL (written after every run; read when a session starts), and the API parameters pages use.
A drill-down (chart point -> its calls) goes through `sidebar.drill_down()`, which queues the new filter values
for the next run, because Streamlit forbids changing a widget's value after the widget was drawn in the same run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PRESETS: dict[str, str] = {
    "15m": "Last 15 minutes",
    "1h": "Last hour",
    "6h": "Last 6 hours",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
    "custom": "Custom range",
}
DEFAULT_RANGE = "24h"
FILTER_DIMS: tuple[str, ...] = ("environment", "service", "provider", "model", "user", "tag")
REFRESH_CHOICES: dict[int, str] = {0: "Off", 30: "Every 30 s", 60: "Every minute", 300: "Every 5 minutes"}
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class ViewFilters:
    """Time range (a preset, or custom ISO instants), time zone, dimension filters and search text."""

    range: str = DEFAULT_RANGE
    start: str | None = None  # custom range only, ISO 8601
    end: str | None = None
    tz: str = "UTC"
    dims: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    q: str | None = None

    # -- the URL ---------------------------------------------------------------------------------------------

    @classmethod
    def from_query(cls, query: Mapping[str, Sequence[str]], default_tz: str = "UTC") -> ViewFilters:
        """From the URL's query string ({name: [values]}); anything unusable falls back to the default."""

        def first(name: str) -> str | None:
            values = query.get(name) or []
            return values[0] if values and values[0] != "" else None

        preset = first("range")
        start, end = first("from"), first("to")
        if start and (preset in (None, "custom")):
            preset = "custom"
        if preset not in PRESETS or (preset == "custom" and not start):
            preset, start, end = DEFAULT_RANGE, None, None
        if preset != "custom":
            start = end = None
        tz = first("tz") or default_tz
        if not valid_zone(tz):
            tz = "UTC"
        dims = {d: tuple(v for v in query.get(d, []) if v) for d in FILTER_DIMS}
        return cls(preset, start, end, tz, {d: v for d, v in dims.items() if v}, first("q"))

    def to_query(self) -> dict[str, str | list[str]]:
        """The URL query string; defaults are left out so links stay short."""
        out: dict[str, str | list[str]] = {}
        if self.range == "custom":
            out["from"] = self.start or ""
            if self.end:
                out["to"] = self.end
        elif self.range != DEFAULT_RANGE:
            out["range"] = self.range
        if self.tz != "UTC":
            out["tz"] = self.tz
        for dim in FILTER_DIMS:
            if self.dims.get(dim):
                out[dim] = list(self.dims[dim])
        if self.q:
            out["q"] = self.q
        return out

    # -- the API ---------------------------------------------------------------------------------------------

    def api_params(self, *, with_dims: bool = True) -> list[tuple[str, str]]:
        """Read-API query parameters: from/to or last, tz, one parameter per selected dimension value, q."""
        params: list[tuple[str, str]] = []
        if self.range == "custom":
            params.append(("from", self.start or ""))
            if self.end:
                params.append(("to", self.end))
        else:
            params.append(("last", self.range))
        params.append(("tz", self.tz))
        if with_dims:
            for dim in FILTER_DIMS:
                params += [(dim, v) for v in self.dims.get(dim, ())]
            if self.q:
                params.append(("q", self.q))
        return params

    def window(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """The time range as aware UTC instants (for labels and for the custom-range widgets)."""
        zone = ZoneInfo(self.tz)
        if self.range == "custom":
            start = _instant(self.start or "", zone)
            end = _instant(self.end, zone) if self.end else (now or datetime.now(UTC))
            return start, end
        end = now or datetime.now(UTC)
        return end - duration(self.range), end

    def scope(self) -> str:
        """A short name of this view (its range as chosen, not as instants: "last 24 hours" stays one view as the
        clock moves), for state that belongs to one view, such as a window picked on a chart."""
        return hashlib.sha1(urlencode(sorted(self.to_query().items()), doseq=True).encode()).hexdigest()[:12]

    def with_window(self, start: datetime, end: datetime) -> ViewFilters:
        return replace(self, range="custom", start=iso(start), end=iso(end))

    def with_dim(self, dim: str, values: Sequence[str]) -> ViewFilters:
        return replace(self, dims={**self.dims, dim: tuple(values)})

    def describe(self) -> str:
        if self.range == "custom":
            zone = ZoneInfo(self.tz)
            start, end = (t.astimezone(zone) for t in self.window())
            until = "now" if not self.end else None
            if until:
                return f"time from {start:%-d %b %Y %H:%M} to now ({self.tz})"
            if start.date() == end.date():
                return f"time from {start:%-d %b %Y}, {start:%H:%M} to {end:%H:%M} ({self.tz})"
            return f"time from {start:%-d %b %H:%M} to {end:%-d %b %Y %H:%M} ({self.tz})"
        return f"{PRESETS[self.range].lower()} ({self.tz})"


def duration(preset: str) -> timedelta:
    return timedelta(**{_UNITS[preset[-1]]: int(preset[:-1])})


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _instant(text: str, zone: ZoneInfo) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)


def valid_instant(text: str) -> bool:
    try:
        _instant(text, ZoneInfo("UTC"))
    except ValueError:
        return False
    return True


def valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def query_dict(raw: Any) -> dict[str, list[str]]:
    """st.query_params (or AppTest's plain dict) as {name: [values]}."""
    if hasattr(raw, "get_all"):
        return {k: raw.get_all(k) for k in raw}
    return {k: list(v) if isinstance(v, list | tuple) else [str(v)] for k, v in dict(raw).items()}
