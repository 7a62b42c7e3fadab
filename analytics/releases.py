"""Release markers: when each release of a service appeared, from the calls' service.version (found by the
scheduled job) or added by a person through the API. "Drift since release X" compares the calls after the
marker with those before it.

A version's marker is the start time of its first call (the earliest, also when calls arrive late or out of
order: a later-read earlier call moves it back). A marker a person added is never moved by the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from analytics.errors import QueryError
from analytics.query import Params, project_clause
from analytics.timewin import US, to_us
from core.store import set_state

STATE_NAME = "release_markers"
FROM_CALLS = "service.version"
BY_USER = "user"
# Calls are read by received_at up to now - lag; the next run reads again from this long before the last mark, so
# a call committed late with an older received_at (the writer's open transaction) is not missed. Reading a call
# twice is harmless: the marker keeps the earliest time.
OVERLAP = timedelta(minutes=10)
MAX_TEXT = 200


@dataclass(frozen=True)
class Marker:
    project: str
    service: str
    release: str
    released_at: datetime
    source: str
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "service": self.service,
            "release": self.release,
            "released_at": self.released_at,
            "source": self.source,
            "note": self.note,
        }


def _through(db: duckdb.DuckDBPyConnection) -> int:
    rows = db.execute("SELECT through_us FROM detection_state WHERE name = ?", [STATE_NAME]).fetchall()
    return rows[0][0] if rows else 0


def record_versions(db: duckdb.DuckDBPyConnection, *, now: datetime | None = None, lag_s: float = 60.0) -> int:
    """Add (or move earlier) the marker of every service version in the calls received since the last run; return
    how many versions were seen. One transaction."""
    now = now or datetime.now(UTC)
    upto = to_us(now) - int(lag_s * US)
    since = max(0, _through(db) - int(OVERLAP.total_seconds() * US))
    db.execute("BEGIN TRANSACTION")
    try:
        found = db.execute(
            """
            MERGE INTO release_markers m USING (
                SELECT project, service, service_version AS release, min(start_time) AS released_at
                FROM calls
                WHERE received_at > make_timestamptz($since::BIGINT)
                  AND received_at <= make_timestamptz($upto::BIGINT)
                  AND service_version IS NOT NULL AND service IS NOT NULL
                GROUP BY project, service, service_version
            ) s ON m.project = s.project AND m.service = s.service AND m.release = s.release
            WHEN MATCHED AND m.source = $source THEN UPDATE SET released_at = least(m.released_at, s.released_at)
            WHEN NOT MATCHED THEN INSERT VALUES (s.project, s.service, s.release, s.released_at, $source, NULL, $now)
            """,
            {"source": FROM_CALLS, "now": now, "since": since, "upto": upto},
        ).fetchall()
        set_state(db, "detection_state", "through_us", STATE_NAME, upto)
        db.execute("COMMIT")
    except Exception:
        db.execute("ROLLBACK")
        raise
    return int(found[0][0]) if found else 0


def _text(value: str | None, name: str, *, required: bool = True) -> str | None:
    if value is None or not value.strip():
        if required:
            raise QueryError(f"{name} is required")
        return None
    if len(value) > MAX_TEXT:
        raise QueryError(f"{name} is longer than {MAX_TEXT} characters")
    return value.strip()


def add_marker(
    db: duckdb.DuckDBPyConnection,
    *,
    project: str,
    service: str,
    release: str,
    released_at: datetime,
    note: str | None = None,
    now: datetime | None = None,
) -> Marker:
    """A person's marker (e.g. a prompt change that carries no version): it replaces a marker the job found for
    the same release."""
    marker = Marker(
        _text(project, "project") or "default",
        _text(service, "service") or "",
        _text(release, "release") or "",
        released_at.astimezone(UTC),
        BY_USER,
        _text(note, "note", required=False),
    )
    db.execute(
        """
        MERGE INTO release_markers m
        USING (SELECT $project AS project, $service AS service, $release AS release) k
        ON m.project = k.project AND m.service = k.service AND m.release = k.release
        WHEN MATCHED THEN UPDATE SET released_at = $at, source = $source, note = $note, recorded_at = $now
        WHEN NOT MATCHED THEN INSERT VALUES ($project, $service, $release, $at, $source, $note, $now)
        """,
        {
            "project": marker.project,
            "service": marker.service,
            "release": marker.release,
            "at": marker.released_at,
            "source": BY_USER,
            "note": marker.note,
            "now": now or datetime.now(UTC),
        },
    )
    return marker


def markers(
    db: duckdb.DuckDBPyConnection,
    *,
    project: str | None = None,
    services: tuple[str, ...] = (),
    start: datetime | None = None,
    end: datetime | None = None,
    projects: frozenset[str] | None = None,
) -> list[Marker]:
    """Markers, oldest first, optionally of some services and within [start, end); `projects`: only those the
    asker may see (None: all)."""
    params = Params()
    clauses = ["TRUE", project_clause(projects, params)]
    if project is not None:
        clauses.append(f"project = {params.add(project)}")
    if services:
        clauses.append(f"service IN ({', '.join(params.add(s) for s in services)})")
    if start is not None:
        clauses.append(f"released_at >= make_timestamptz({params.add(to_us(start))}::BIGINT)")
    if end is not None:
        clauses.append(f"released_at < make_timestamptz({params.add(to_us(end))}::BIGINT)")
    rows = db.execute(
        "SELECT project, service, release, released_at, source, note FROM release_markers"
        f" WHERE {' AND '.join(clauses)} ORDER BY released_at, project, service, release",
        params.values,
    ).fetchall()
    return [Marker(*row) for row in rows]


def find(
    db: duckdb.DuckDBPyConnection,
    service: str,
    release: str,
    project: str | None = None,
    projects: frozenset[str] | None = None,
) -> Marker:
    """The marker of one release of a service; QueryError when there is none, or one per project and no project."""
    found = [m for m in markers(db, project=project, services=(service,), projects=projects) if m.release == release]
    if not found:
        raise QueryError(f"no release {release!r} of service {service!r} is known (see /api/v1/releases)")
    if len(found) > 1:
        projects = ", ".join(sorted(m.project for m in found))
        raise QueryError(f"release {release!r} of {service!r} exists in several projects ({projects}); name one")
    return found[0]
