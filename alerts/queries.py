"""The statistics an evaluation needs, asked with as few queries as possible, from a store or a running server.

All rules evaluated at one instant that share filters, group-by and a time range share one query: their metrics
are computed together (analytics/stats.py `run`, the read API's own query builder, so an alert's value is the
number the API and the dashboard show for that window). A relative rule adds the same question over its baseline
range. Each query runs through `cursor()`, which in the server is the read API's (bounded by api_max_queries, so
evaluation waits its turn like any API request and never starves ingest).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx
import orjson
import pyarrow as pa

from alerts.rules import Rule
from analytics.budgets import budget_signals, signals_of
from analytics.query import Filters, Selection
from analytics.stats import StatsQuery, run
from analytics.timewin import TimeRange

GroupKey = tuple[str | None, ...]
BUDGET_GROUP = ("budget",)  # the group-by of a budget metric's rule: one series per budget
Row = Mapping[str, float | int | None]


@dataclass(frozen=True)
class Query:
    """One statistics question: metrics over calls passing `filters` in [start, end), grouped by `group_by`."""

    filters: Filters
    filter_spec: tuple[tuple[str, tuple[str, ...]], ...]
    group_by: tuple[str, ...]
    start: datetime
    end: datetime
    metrics: tuple[str, ...] = ()

    @property
    def key(self) -> tuple:
        return (self.filter_spec, self.group_by, self.start, self.end)


@dataclass
class Plan:
    """The queries of one evaluation and, per rule, which answers it reads (current window, baseline)."""

    queries: list[Query] = field(default_factory=list)
    current: dict[str, int] = field(default_factory=dict)
    baseline: dict[str, int] = field(default_factory=dict)


def window_range(rule: Rule, at: datetime) -> tuple[datetime, datetime]:
    return at - rule.window, at


def baseline_range(rule: Rule, at: datetime) -> tuple[datetime, datetime]:
    assert rule.relative_to is not None
    offset = rule.relative_to.offset(rule.window)
    return at - rule.window - offset, at - offset


def plan(rules: Sequence[Rule], at: datetime) -> Plan:
    result = Plan()
    index: dict[tuple, int] = {}

    def need(rule: Rule, start: datetime, end: datetime) -> int:
        spec = tuple(sorted(rule.filter_spec.items()))
        query = Query(rule.filters, spec, rule.group_by, start, end)
        i = index.get(query.key)
        if i is None:
            i = index[query.key] = len(result.queries)
            result.queries.append(query)
        metrics = [rule.metric, "calls"] if rule.min_calls else [rule.metric]
        existing = result.queries[i]
        merged = existing.metrics + tuple(m for m in metrics if m not in existing.metrics)
        result.queries[i] = Query(
            existing.filters, existing.filter_spec, existing.group_by, existing.start, existing.end, merged
        )
        return i

    for rule in rules:
        result.current[rule.id] = need(rule, *window_range(rule, at))
        if rule.relative_to is not None:
            result.baseline[rule.id] = need(rule, *baseline_range(rule, at))
    return result


def label_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def answer_rows(table: pa.Table, query: Query) -> dict[GroupKey, Row]:
    """{group values: {metric: value}} from the statistics table."""
    out: dict[GroupKey, Row] = {}
    for row in table.to_pylist():
        key = tuple(label_text(row[g]) for g in query.group_by)
        out[key] = {m: row[m] for m in query.metrics}
    return out


class MetricSource(Protocol):
    def fetch(self, query: Query) -> dict[GroupKey, Row]: ...


CursorFactory = Callable[[], contextlib.AbstractContextManager[Any]]


class StoreSource:
    """Queries a DuckDB store directly (the server's connection through the read API's slots, or a stopped
    store opened read-only by `callscope alerts test`)."""

    def __init__(self, cursor: CursorFactory) -> None:
        self._cursor = cursor

    def fetch(self, query: Query) -> dict[GroupKey, Row]:
        if query.group_by == BUDGET_GROUP:
            names = dict(query.filter_spec).get("budget", ())
            with self._cursor() as cur:
                signals = budget_signals(cur, query.end, names)
            return {(name,): {m: values[m] for m in query.metrics} for name, values in signals.items()}
        selection = Selection(TimeRange(query.start, query.end), query.filters)
        stats = StatsQuery(selection, query.metrics, query.group_by)
        with self._cursor() as cur:
            table = run(cur, stats)
        return answer_rows(table, query)


@contextlib.contextmanager
def connection_cursor(db: Any) -> Iterator[Any]:
    cur = db.cursor()
    try:
        cur.execute("SET TimeZone = 'UTC'")
        yield cur
    finally:
        cur.close()


class ApiSource:
    """Asks a running server's read API (GET /api/v1/stats as Arrow), which runs the same query on its store."""

    def __init__(self, base_url: str, read_key: str | None = None, *, timeout: float = 120.0) -> None:
        headers = {"accept": "application/vnd.apache.arrow.stream"}
        if read_key:
            headers["authorization"] = f"Bearer {read_key}"
        self._client = httpx.Client(base_url=base_url.rstrip("/") + "/api/v1", headers=headers, timeout=timeout)

    def fetch(self, query: Query) -> dict[GroupKey, Row]:
        if query.group_by == BUDGET_GROUP:
            return self._budgets(query)
        params: list[tuple[str, str]] = [
            ("from", query.start.isoformat()),
            ("to", query.end.isoformat()),
            ("metrics", ",".join(query.metrics)),
            ("format", "arrow"),
        ]
        if query.group_by:
            params.append(("group_by", ",".join(query.group_by)))
        for name, values in query.filter_spec:
            if name == "q":
                params.append(("q", values[0]))
            elif name.startswith("meta."):
                params += [("meta", f"{name[5:]}={v}") for v in values]
            else:
                params += [(name, v) for v in values]
        response = self._client.get("/stats", params=params)
        if response.status_code != 200:
            try:
                reason = orjson.loads(response.content).get("error", response.text)
            except orjson.JSONDecodeError:
                reason = response.text
            raise ConnectionError(f"{self._client.base_url}/stats answered {response.status_code}: {reason}")
        table = pa.ipc.open_stream(io.BytesIO(response.content)).read_all()
        return answer_rows(table, query)

    def _budgets(self, query: Query) -> dict[GroupKey, Row]:
        response = self._client.get(
            "/budgets", params={"at": query.end.isoformat()}, headers={"accept": "application/json"}
        )
        if response.status_code != 200:
            raise ConnectionError(f"{self._client.base_url}/budgets answered {response.status_code}: {response.text}")
        names = dict(query.filter_spec).get("budget", ())
        out: dict[GroupKey, Row] = {}
        for result in response.json()["budgets"]:
            name = result["budget"]["name"]
            if not names or name in names:
                values = signals_of(result)
                out[(name,)] = {m: values[m] for m in query.metrics}
        return out

    def close(self) -> None:
        self._client.close()
