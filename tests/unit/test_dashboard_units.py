"""Dashboard parts that need no server: URL state, chart selections, the launcher's command and environment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from callscope.dashboard_launch import dashboard_env, streamlit_command
from core.settings import load_settings
from dashboard.filters import ViewFilters
from dashboard.ui import selected_window


def test_filters_round_trip_through_the_url() -> None:
    view = ViewFilters("custom", "2026-06-02T00:00:00Z", "2026-06-03T00:00:00Z", "Europe/Paris", {"model": ("a", "b")})
    query = view.to_query()
    assert query == {"from": "2026-06-02T00:00:00Z", "to": "2026-06-03T00:00:00Z", "tz": "Europe/Paris",
                     "model": ["a", "b"]}  # fmt: skip
    again = ViewFilters.from_query({k: v if isinstance(v, list) else [v] for k, v in query.items()})
    assert again == view
    assert view.api_params() == [
        ("from", "2026-06-02T00:00:00Z"),
        ("to", "2026-06-03T00:00:00Z"),
        ("tz", "Europe/Paris"),
        ("model", "a"),
        ("model", "b"),
    ]
    # Defaults stay out of the URL; nonsense falls back to them.
    assert ViewFilters().to_query() == {}
    assert ViewFilters.from_query({"range": ["fortnight"], "tz": ["Mars/Base"]}) == ViewFilters()
    assert ViewFilters.from_query({"range": ["7d"]}).api_params()[0] == ("last", "7d")


def test_a_view_is_one_scope_as_the_clock_moves_and_another_with_other_filters() -> None:
    """A window picked on a chart is kept while the view stays (its scope) and dropped when the filters change."""
    day = ViewFilters()
    assert day.scope() == ViewFilters.from_query({}).scope() == ViewFilters.from_query({"range": ["24h"]}).scope()
    others = [
        ViewFilters(range="7d"),
        ViewFilters(tz="Europe/Paris"),
        ViewFilters(dims={"model": ("a",)}),
        ViewFilters(dims={"model": ("a", "b")}),
        ViewFilters(q="timeout"),
        ViewFilters("custom", "2026-06-02T00:00:00Z", None),
        ViewFilters("custom", "2026-06-02T00:00:00Z", "2026-06-03T00:00:00Z"),
    ]
    scopes = {day.scope(), *(view.scope() for view in others)}
    assert len(scopes) == len(others) + 1
    assert all(scope.isalnum() for scope in scopes)  # it goes into a widget key


def test_a_chart_selection_becomes_a_time_window() -> None:
    hours = [datetime(2026, 6, 2, h, tzinfo=UTC) for h in range(5)]
    clicked = {"selection": {"points": [{"x": "2026-06-02 03:00", "y": 12}], "box": []}}
    assert selected_window(clicked, hours) == (hours[3], hours[4])
    last = {"selection": {"points": [{"x": "2026-06-02 04:00"}]}}
    assert selected_window(last, hours) == (hours[4], hours[4] + timedelta(hours=1))
    box = {"selection": {"points": [], "box": [{"x": ["2026-06-02 01:30", "2026-06-02 02:45"]}]}}
    assert selected_window(box, hours) == (hours[1] + timedelta(minutes=30), hours[2] + timedelta(minutes=45))
    assert selected_window({"selection": {"points": [], "box": []}}, hours) is None
    assert selected_window(None, hours) is None


def test_launcher_runs_headless_without_telemetry_and_keeps_the_key_off_the_command_line(tmp_path) -> None:
    env = {
        "CALLSCOPE_DATA_DIR": str(tmp_path),
        "CALLSCOPE_HOST": "0.0.0.0",
        "CALLSCOPE_READ_KEYS": "zz-read-key-2,aa-read-key-1",
        "CALLSCOPE_DASHBOARD_PORT": "9999",
    }
    settings = load_settings(env=env)
    command = streamlit_command(settings)
    joined = " ".join(command)
    assert "--browser.gatherUsageStats false" in joined and "--server.headless true" in joined
    assert "--server.port 9999" in joined and "--server.address 127.0.0.1" in joined
    assert "read-key" not in joined
    child = dashboard_env(settings, base={})
    assert child["CALLSCOPE_API_URL"] == "http://127.0.0.1:4318/api/v1"  # 0.0.0.0 is reached on loopback
    assert child["CALLSCOPE_API_KEY"] == "aa-read-key-1"
    assert child["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] == "false"
    explicit = load_settings(env={**env, "CALLSCOPE_API_KEY": "my-own-key", "CALLSCOPE_API_URL": "http://x:1/api/v1/"})
    child = dashboard_env(explicit, base={})
    assert child["CALLSCOPE_API_KEY"] == "my-own-key" and child["CALLSCOPE_API_URL"] == "http://x:1/api/v1"
    assert "my-own-key" not in str(explicit.describe())
