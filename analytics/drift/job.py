"""The scheduled drift run: every cell (project, service, model) and drift metric, current window vs reference,
stored with its history.

Windows end at the last whole hour, so consecutive runs compare whole hours and a run never reads an hour still
being written. The default reference is the `reference` just before the current window; a service pinned to a
release (drift_baselines) is compared with the `reference` before that release was first seen, its current
window starting no earlier than the release.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import duckdb

from analytics import releases
from analytics.drift import results
from analytics.drift.compare import CellResult, Scope, Windows, compare
from analytics.drift.config import DriftConfig
from analytics.errors import QueryError
from analytics.timewin import TimeRange

log = logging.getLogger("callscope.drift")


def whole_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def default_windows(end: datetime, config: DriftConfig) -> Windows:
    current = TimeRange(end - config.current, end)
    return Windows(TimeRange(current.start - config.reference, current.start), current)


def since_release(marker: releases.Marker, end: datetime, config: DriftConfig, *, whole: bool = False) -> Windows:
    """Reference: the `reference` before the release; current: from the release (or, with `whole` False, at most
    the current window's length before `end`) up to `end`."""
    at = marker.released_at
    start = at if whole else max(at, end - config.current)
    current = TimeRange(start, max(end, start + timedelta(microseconds=1)))
    return Windows(TimeRange(at - config.reference, at), current, f"before release {marker.release}")


def plan(db: duckdb.DuckDBPyConnection, config: DriftConfig, end: datetime) -> list[tuple[Windows, Scope]]:
    """Which windows for which services: the default pair for every service not pinned to a release that is known."""
    pinned: list[tuple[Windows, Scope]] = []
    for service, release in sorted(config.baselines.items()):
        try:
            marker = releases.find(db, service, release)
        except QueryError as exc:
            log.warning("drift: %s; %s keeps the default reference until the release is seen", exc, service)
            continue
        pinned.append((since_release(marker, end, config), Scope(services=(service,), project=marker.project)))
    services = tuple(scope.services[0] for _, scope in pinned if scope.services)
    return [(default_windows(end, config), Scope(exclude_services=services)), *pinned]


def first_run_at(db: duckdb.DuckDBPyConnection, config: DriftConfig, interval: timedelta, now: datetime) -> datetime:
    """When the first run after a start is due: at once, unless the store's newest run already compared the windows
    a run now would compare (the same whole hour, the same window lengths); then one interval after that run, as if
    the server had not stopped. A restart does not redo work the Drift page already shows (seconds of CPU over a
    large store) while the first visitors wait for their pages."""
    row = db.execute(
        "SELECT computed_at, current_from, current_to, reference_from, reference_to"
        " FROM drift_runs ORDER BY run_id DESC LIMIT 1"
    ).fetchall()
    if not row:
        return now
    computed_at, *stored = row[0]
    due = default_windows(whole_hour(now), config)
    if stored != [due.current.start, due.current.end, due.reference.start, due.reference.end]:
        return now
    return max(now, computed_at + interval)


def run_once(db: duckdb.DuckDBPyConnection, config: DriftConfig, *, now: datetime | None = None) -> results.Run:
    """Compare, store, prune; return the run."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    end = whole_hour(now)
    rows: list[CellResult] = []
    groups = plan(db, config, end)
    for windows, scope in groups:
        rows += compare(db, windows, config, scope)
    run = results.save(
        db,
        rows,
        groups[0][0],
        computed_at=now,
        seconds=time.perf_counter() - started,
        retention=config.retention,
    )
    return run
