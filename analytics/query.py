"""A validated description of which calls a question is about, and the parameterised SQL that selects them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

from analytics.dimensions import META_PREFIX, Dimension, parse_value, resolve
from analytics.errors import QueryError
from analytics.timewin import TimeRange, parse_range, parse_zone

Value = str | int | bool | None


class Params:
    """Named bind parameters ($p0, $p1, ...): SQL text never contains a caller's value."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"${name}"


@dataclass(frozen=True)
class Filters:
    """Which calls: dimension -> accepted values (any of them), metadata key -> values, free-text search."""

    dims: Mapping[str, tuple[Value, ...]] = field(default_factory=dict)
    search: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Sequence[str]], meta: Sequence[str] = (), search: str | None = None) -> Filters:
        """From request values: {"service": ["a", "b"], ...} and meta=["team=search", ...]."""
        dims: dict[str, tuple[Value, ...]] = {}
        for name, values in raw.items():
            if not values:
                continue
            dim = resolve(name)
            dims[name] = tuple(parse_value(dim, v) for v in values)
        for item in meta:
            key, sep, value = item.partition("=")
            if not sep:
                raise QueryError(f"meta={item!r} must be key=value")
            dim = resolve(META_PREFIX + key)
            dims.setdefault(dim.name, ())
            dims[dim.name] = (*dims[dim.name], parse_value(dim, value))
        if search is not None and len(search) > 256:
            raise QueryError("search text is longer than 256 characters")
        return cls(dims, search or None)


def dimension_sql(dim: Dimension, params: Params) -> str:
    if dim.name.startswith(META_PREFIX):
        return dim.sql.format(key=params.add(dim.name[len(META_PREFIX) :]))
    return dim.sql


def project_clause(projects: frozenset[str] | None, params: Params, column: str = "project") -> str:
    """Only rows of these projects (None: every project; empty: none at all)."""
    if projects is None:
        return "TRUE"
    if not projects:
        return "FALSE"
    return f"{column} IN ({', '.join(params.add(p) for p in sorted(projects))})"


def _values_sql(expr: str, values: tuple[Value, ...], params: Params) -> str:
    present = [v for v in values if v is not None]
    parts = []
    if present:
        parts.append(f"{expr} IN ({', '.join(params.add(v) for v in present)})")
    if len(present) < len(values):
        parts.append(f"{expr} IS NULL")
    return "(" + " OR ".join(parts) + ")"


_SEARCHED = (
    "span_name",
    "model",
    "request_model",
    "response_model",
    "user_id",
    "session_id",
    "error_type",
    "error_message",
    "service",
)


@dataclass(frozen=True)
class Selection:
    """Calls in a time range that pass the filters."""

    range: TimeRange
    filters: Filters = field(default_factory=Filters)
    # The projects the asker may see (analytics/access.py sets it from the principal); None: every project.
    projects: frozenset[str] | None = None

    def with_range(self, time_range: TimeRange) -> Selection:
        return replace(self, range=time_range)

    def time_where(self, params: Params) -> str:
        return (
            f"start_time >= make_timestamptz({params.add(self.range.start_us)}::BIGINT)"
            f" AND start_time < make_timestamptz({params.add(self.range.end_us)}::BIGINT)"
        )

    def dims_where(self, params: Params) -> str:
        """The dimension filters and search, without the time range (also valid over the rollup table)."""
        clauses = ["TRUE", project_clause(self.projects, params)]
        for name, values in self.filters.dims.items():
            dim = resolve(name)
            if name == "tag":
                present = [v for v in values if v is not None]
                tag_parts = []
                if present:
                    tag_parts.append(f"list_has_any(tags, [{', '.join(params.add(v) for v in present)}])")
                if len(present) < len(values):
                    tag_parts.append("coalesce(len(tags), 0) = 0")
                clauses.append("(" + " OR ".join(tag_parts) + ")")
            else:
                clauses.append(_values_sql(dimension_sql(dim, params), values, params))
        if self.filters.search:
            needle = params.add(self.filters.search.lower())
            searched = [f"contains(lower(coalesce({col}, '')), {needle})" for col in _SEARCHED]
            searched.append(f"lower(hex(trace_id)) = {needle}")
            clauses.append("(" + " OR ".join(searched) + ")")
        return " AND ".join(clauses)

    def where(self, params: Params) -> str:
        return f"{self.time_where(params)} AND {self.dims_where(params)}"

    def source(self, params: Params, group_by: Sequence[str] = ()) -> str:
        """FROM clause: the calls table, or (grouping by tag) one row per call and tag."""
        where = self.where(params)
        if "tag" in group_by:
            return (
                "(SELECT *, unnest(CASE WHEN coalesce(len(tags), 0) > 0 THEN tags ELSE [NULL::VARCHAR] END) AS tag"
                f" FROM calls WHERE {where})"
            )
        return f"calls WHERE {where}"


def parse_group_by(names: Sequence[str], *, limit: int = 4) -> tuple[str, ...]:
    out: list[str] = []
    for raw in names:
        for name in (n.strip() for n in raw.split(",")):
            if not name:
                continue
            resolve(name)
            if name not in out:
                out.append(name)
    if len(out) > limit:
        raise QueryError(f"group by at most {limit} dimensions")
    return tuple(out)


def parse_selection(
    start: str | None,
    end: str | None,
    last: str | None,
    tz: str | None,
    dims: Mapping[str, Sequence[str]],
    meta: Sequence[str] = (),
    search: str | None = None,
) -> tuple[Selection, ZoneInfo]:
    """The calls a request (API parameters or `callscope export` flags) is about, and the zone it speaks in."""
    zone = parse_zone(tz)
    return Selection(parse_range(start, end, last, zone), Filters.parse(dims, meta, search)), zone
