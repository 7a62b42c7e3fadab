"""Release markers in a real store file: a version's marker is its first call, also when earlier calls arrive
later; the job reads incrementally; a person's marker is kept as given; lookups say what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analytics import releases
from analytics.errors import QueryError
from core.store import connect
from tests.calls_factory import make_calls, store_rows

T0 = datetime(2026, 5, 4, 9, tzinfo=UTC)


def calls_of(service: str, version: str | None, at: datetime, received: datetime, n: int = 3, seed: int = 0):
    rows = make_calls(n, at, at + timedelta(minutes=10), seed=seed)
    for row in rows:
        row.update(service=service, service_version=version, received_at=received)
    return rows


def test_markers_are_first_calls_and_move_back_for_late_earlier_calls(tmp_path: Path) -> None:
    day2 = T0 + timedelta(days=1)
    v11 = calls_of("api", "1.1", day2, day2, seed=1)
    store_rows(tmp_path, calls_of("api", "1.0", T0, T0) + v11 + calls_of("worker", None, T0, T0, seed=2))
    db = connect(tmp_path / "callscope.duckdb")
    try:
        assert releases.record_versions(db, now=T0 + timedelta(days=2)) == 2  # "worker" has no service.version
        found = releases.markers(db)
        assert [(m.service, m.release, m.source) for m in found] == [
            ("api", "1.0", "service.version"),
            ("api", "1.1", "service.version"),
        ]
        assert found[1].released_at == min(r["start_time"] for r in v11)
    finally:
        db.close()
    # a call of 1.1 from before its known start arrives late: the next run reads only what arrived since its last
    # run, and the marker moves back to that call
    late = calls_of("api", "1.1", T0 + timedelta(hours=12), T0 + timedelta(days=2, hours=1), n=1, seed=3)
    store_rows(tmp_path, late)
    db = connect(tmp_path / "callscope.duckdb")
    try:
        assert releases.record_versions(db, now=T0 + timedelta(days=3)) == 1
        assert releases.find(db, "api", "1.1").released_at == late[0]["start_time"]
    finally:
        db.close()


def test_a_person_s_marker_is_kept_and_lookups_explain(tmp_path: Path) -> None:
    store_rows(tmp_path, calls_of("api", "2.0", T0, T0))
    db = connect(tmp_path / "callscope.duckdb")
    try:
        given = T0 + timedelta(hours=5)
        releases.add_marker(db, project="default", service="api", release="2.0", released_at=given, note="canary")
        releases.record_versions(db, now=T0 + timedelta(days=1))
        marker = releases.find(db, "api", "2.0")
        assert (marker.released_at, marker.source, marker.note) == (given, "user", "canary")
        with pytest.raises(QueryError, match=r"no release '9\.9' of service 'api'"):
            releases.find(db, "api", "9.9")
        releases.add_marker(db, project="other", service="api", release="2.0", released_at=given)
        with pytest.raises(QueryError, match="several projects"):
            releases.find(db, "api", "2.0")
        assert releases.find(db, "api", "2.0", project="other").project == "other"
        with pytest.raises(QueryError, match="release is required"):
            releases.add_marker(db, project="default", service="api", release=" ", released_at=given)
        assert [m.release for m in releases.markers(db, start=T0 + timedelta(hours=1))] == ["2.0", "2.0"]
        assert releases.markers(db, services=("nope",)) == []
    finally:
        db.close()
