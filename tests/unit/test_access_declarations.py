"""Every route of the composed app (callscope/server.py: the read API with alerts', notifications', access and any
router added later) declares who may call it, exactly once; a route that declares nothing stops the app from being
built; and no changing route is open to viewers unless it is known to change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import APIRouter
from starlette.routing import Mount

from analytics import anomalies
from analytics.access import Access, api_routes, requires
from analytics.anomalies.queries import AnomalyFilter
from analytics.anomalies.queries import anomalies as stored_anomalies
from analytics.api import UndeclaredRoute, create_app
from analytics.api_context import ReadApi
from analytics.drift import results
from analytics.drift.compare import compare
from analytics.drift.config import DriftConfig
from analytics.drift.job import default_windows
from analytics.drift.results import ResultFilter
from analytics.timewin import TimeRange
from callscope.server import build
from core.access import ALL, Principal, Role
from core.settings import load_settings
from core.store import connect
from tests.calls_factory import make_calls, store_rows

# Changing methods that may be open to viewers or to anyone, because they change nothing stored.
READING_POSTS = {
    "POST /alerts/preview": "viewer",  # evaluates a rule over past calls of the asker's projects; saves nothing
    "POST /auth/login": "public",  # checks a password, starts a session
    "POST /auth/logout": "signed in",  # ends the caller's own session
}


@pytest.fixture
def composed(tmp_path: Path):
    settings = load_settings(cli={"data_dir": str(tmp_path), "ingest_workers": 0}, env={})
    db = connect(settings.db_path)
    parts = build(settings, db)
    api = next(r for r in parts.app.routes if isinstance(r, Mount)).app
    yield api, db
    db.close()


def test_every_route_of_the_composed_app_declares_exactly_one_requirement(composed) -> None:
    api, _ = composed
    routes = api_routes(api)
    assert len(routes) >= 45  # the walk reaches the routes of included routers, not just the app's own
    for route in routes:
        assert len(route.requirements) == 1, f"{route} declares {len(route.requirements)} requirements"
    for route in routes:
        declared = route.requirements[0].describe()
        if route.methods & {"POST", "PUT", "PATCH", "DELETE"}:
            allowed = READING_POSTS.get(str(route))
            if allowed is not None:
                assert declared == allowed, str(route)
            else:
                assert route.requirements[0].role is not None and route.requirements[0].role >= Role.editor, (
                    f"{route} changes something but is declared for {declared}"
                )


def test_a_router_added_without_a_requirement_stops_the_build(composed) -> None:
    """What a parallel branch (budgets, prices, retention) adding an undeclared router would meet at start-up."""
    _, db = composed
    budgets = APIRouter()

    @budgets.put("/widgets/{name}")
    def put_budget(name: str) -> dict:
        return {"name": name}

    access = Access(db, {}, {})
    with pytest.raises(UndeclaredRoute, match=r"PUT /widgets/\{name\}"):
        create_app(ReadApi(db, 2), "test", access, routers=[budgets])
    declared = APIRouter(dependencies=[requires(Role.editor)])
    declared.add_api_route("/widgets/{name}", put_budget, methods=["PUT"])
    app = create_app(ReadApi(db, 2), "test", access, routers=[declared])
    assert [r.requirements[0].describe() for r in api_routes(app) if r.path == "/widgets/{name}"] == ["editor"]


def test_a_requirement_given_where_a_router_is_included_counts() -> None:
    prices = APIRouter()

    @prices.delete("/prices/{model}")
    def delete_price(model: str) -> dict:
        return {"model": model}

    from fastapi import FastAPI

    app = FastAPI()
    app.include_router(prices, prefix="/v2", dependencies=[requires(Role.editor)])
    assert [(str(r), r.requirements[0].describe()) for r in api_routes(app)] == [
        ("DELETE /v2/prices/{model}", "editor")
    ]


def test_principals_roles_per_project() -> None:
    p = Principal("ann", "user", {"A": Role.editor, "B": Role.viewer})
    assert p.can(Role.viewer, "A") and p.can(Role.editor, "A") and not p.can(Role.admin, "A")
    assert p.can(Role.viewer, "B") and not p.can(Role.editor, "B") and p.role_in("C") is None
    assert p.projects(Role.viewer) == {"A", "B"} and p.projects(Role.editor) == {"A"}
    assert p.projects(Role.admin) == frozenset() and not p.everywhere(Role.viewer)
    root = Principal("root", "user", {ALL: Role.viewer, "A": Role.admin})
    assert root.projects(Role.viewer) is None and root.projects(Role.admin) == {"A"}
    assert root.can(Role.viewer, "Z") and not root.can(Role.editor, "Z")


def test_stored_anomalies_and_drift_verdicts_are_cut_to_projects(tmp_path: Path) -> None:
    """The filters the drift and anomaly routes build keep rows of the asker's projects only, on stored rows."""
    db = connect(tmp_path / "s.duckdb")
    hour = int(datetime(2026, 3, 2, 10, tzinfo=UTC).timestamp()) * 1_000_000
    for project, value in (("A", 1.0), ("B", 2.0), ("C", 3.0)):
        db.execute(
            "INSERT INTO anomaly_scores VALUES (?, ?, 'service', 'svc', NULL, 'spend', ?, 10, 0.5, 0.1, 9.0,"
            " 'seasonal', 4, TRUE, now())",
            [hour, project, value],
        )
    window = TimeRange(datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC))
    got = lambda projects: sorted(r["project"] for r in stored_anomalies(db, window, AnomalyFilter(projects=projects)))  # noqa: E731
    assert got(None) == ["A", "B", "C"]
    assert got(frozenset({"B"})) == ["B"] and got(frozenset({"A", "C"})) == ["A", "C"] and got(frozenset()) == []
    series = anomalies.queries.series(db, window, AnomalyFilter(project="A", projects=frozenset({"B"})))
    assert series.num_rows == 0  # asking for A while allowed B: nothing, not A

    db.close()


def test_stored_drift_verdicts_are_cut_to_projects(tmp_path: Path) -> None:
    """A drift run over calls of three projects, stored; the routes' filter returns the asker's cells only."""
    end = datetime(2026, 3, 9, tzinfo=UTC)
    rows = []
    for i, project in enumerate(("A", "B", "C")):
        for row in make_calls(300, end - timedelta(days=8), end, seed=i):
            rows.append(row | {"project": project})
    store_rows(tmp_path, rows)
    db = connect(tmp_path / "callscope.duckdb")
    config = DriftConfig()
    windows = default_windows(end, config)
    results.save(db, compare(db, windows, config), windows, computed_at=end, seconds=1.0, retention=timedelta(days=9))
    run = results.latest_run_id(db)
    assert run is not None
    projects = lambda f: set(results.results(db, run, f).column("project").to_pylist())  # noqa: E731
    assert projects(ResultFilter()) == {"A", "B", "C"}
    assert projects(ResultFilter(projects=frozenset({"B"}))) == {"B"}
    assert projects(ResultFilter(project="A", projects=frozenset({"B"}))) == set()
    history = results.history(
        db, ResultFilter(projects=frozenset({"A", "C"})), end - timedelta(days=1), end + timedelta(1)
    )
    assert set(history.column("project").to_pylist()) == {"A", "C"}
    db.close()
