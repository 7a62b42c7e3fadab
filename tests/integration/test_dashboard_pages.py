"""Every dashboard page through streamlit.testing.v1.AppTest against a real `callscope serve` with known rows.

The KPIs the pages show are compared with the read API's numbers (and the call counts with the rows themselves);
filters set in the URL must change what is shown. The app reads the API location from CALLSCOPE_API_URL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import fmt
from dashboard.filters import query_dict
from tests.dashboard_seed import AGENT_TRACE, CHILD_SPANS, seed
from tests.dashboard_tables import all_tables, table
from tests.helpers import ROOT, ServerProcess, free_port

APP = ROOT / "dashboard" / "app.py"
START = datetime(2026, 6, 1, tzinfo=UTC)
MID = datetime(2026, 6, 2, tzinfo=UTC)
END = datetime(2026, 6, 3, tzinfo=UTC)
WINDOW = {"from": "2026-06-02T00:00:00Z", "to": "2026-06-03T00:00:00Z"}  # the day before is the comparison
PAGES = ("views/overview.py", "views/cost.py", "views/latency.py", "views/errors.py", "views/calls.py")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    data = Path(tmp_path_factory.mktemp("dash"))
    rows = seed(data, START, END, n=2000)
    proc = ServerProcess(data).start()
    yield proc.http_url + "/api/v1", rows
    proc.stop()


@pytest.fixture
def api(store: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CALLSCOPE_API_URL", store[0])
    monkeypatch.delenv("CALLSCOPE_API_KEY", raising=False)
    return store[0]


def app(query: dict[str, Any] | None = None, page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.query_params.update(query or {})
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def api_get(api: str, path: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(api + path, params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def url(at: AppTest, name: str) -> list[str]:
    """A query parameter of the app's URL, as a list (AppTest keeps single values as plain strings)."""
    return query_dict(at.query_params).get(name, [])


def widget(widgets: Any, label: str) -> Any:
    return next(w for w in widgets if w.label == label)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def figures(at: AppTest) -> list[dict[str, Any]]:
    """The plotly figures the page drew (dashboard.plot sends each as JSON to its component)."""
    return [json.loads(json.loads(c.proto.json)["figure"]) for c in at.get("bidi_component")]


def in_window(rows: list[dict[str, Any]], **where: str) -> list[dict[str, Any]]:
    start, end = MID, END
    return [r for r in rows if start <= r["start_time"] < end and all(r[k] == v for k, v in where.items())]


def test_every_page_renders_without_exception(api: str) -> None:
    at = app(WINDOW)
    assert [t.value for t in at.title] == ["Overview"]
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])
        assert at.title[0].value == page.split("/")[1].removesuffix(".py").capitalize()
    at.switch_page("views/call.py").run()
    assert not at.exception and "Pick a call" in at.info[0].value


def test_overview_kpis_equal_the_api(api: str, store: tuple[str, list[dict[str, Any]]]) -> None:
    at = app(WINDOW)
    want = api_get(
        api,
        "/stats",
        **WINDOW,
        compare="true",
        metrics="cost_usd,calls,error_rate,latency_p95,ttft_p50,total_tokens",
    )["data"][0]
    shown = metrics(at)
    assert shown["Spend"] == fmt.usd(want["cost_usd"])
    assert shown["Calls"] == fmt.count(want["calls"]) == f"{len(in_window(store[1])):,}"
    assert shown["Error rate"] == fmt.pct(want["error_rate"])
    assert shown["p95 latency"] == fmt.ms(want["latency_p95"])
    assert shown["TTFT p50"] == fmt.ms(want["ttft_p50"])
    assert shown["Tokens"] == fmt.compact(want["total_tokens"])
    calls_tile = next(m for m in at.metric if m.label == "Calls")
    assert calls_tile.proto.delta == fmt.signed_pct(want["calls_delta_pct"])  # against the day before
    assert len(figures(at)) == 2
    movers = table(at, "model", "cost_usd_delta")
    assert set(movers["model"]) == {r["response_model"] for r in in_window(store[1])}


def test_filters_in_the_url_change_what_is_shown(api: str, store: tuple[str, list[dict[str, Any]]]) -> None:
    everything = metrics(app(WINDOW))
    at = app({**WINDOW, "model": "gpt-4.1", "environment": "prod"})
    narrowed = metrics(at)
    want = len(in_window(store[1], response_model="gpt-4.1", environment="prod"))
    assert narrowed["Calls"] == f"{want:,}" != everything["Calls"]
    assert narrowed["Spend"] != everything["Spend"]
    # The sidebar shows the filters the URL carried, and writes them back into the URL.
    assert at.multiselect(key="f_model").value == ["gpt-4.1"]
    assert url(at, "model") == ["gpt-4.1"] and url(at, "from") == [WINDOW["from"]]

    at.multiselect(key="f_model").set_value(["claude-sonnet-4"]).run()
    assert metrics(at)["Calls"] == f"{len(in_window(store[1], response_model='claude-sonnet-4', environment='prod')):,}"
    assert url(at, "model") == ["claude-sonnet-4"]


def test_cost_page_numbers_and_unpriced_models(api: str, store: tuple[str, list[dict[str, Any]]]) -> None:
    at = app(WINDOW, "views/cost.py")
    want = api_get(api, "/stats", **WINDOW, metrics="cost_usd,cost_per_call,cost_per_1k_tokens,unpriced_call_share")[
        "data"
    ][0]
    shown = metrics(at)
    assert shown["Spend"] == fmt.usd(want["cost_usd"])
    assert shown["Cost per call"] == fmt.usd(want["cost_per_call"])
    assert shown["Cost per 1k tokens"] == fmt.usd(want["cost_per_1k_tokens"])
    assert shown["Unpriced calls"] == fmt.pct(want["unpriced_call_share"])
    assert fmt.pct(want["unpriced_call_share"]) in at.warning[0].value
    # the top spenders' tab is open first: the ten users who spent most, each row opening that user's calls
    spend: dict[str, float] = {}
    calls: dict[str, int] = {}
    for row in in_window(store[1]):
        calls[row["user_id"]] = calls.get(row["user_id"], 0) + 1
        if row["cost_usd"] is not None:
            spend[row["user_id"]] = spend.get(row["user_id"], 0.0) + row["cost_usd"]
    top_users = sorted(spend, key=spend.__getitem__, reverse=True)[:10]
    users = table(at, "user", "cost_usd")
    assert list(users["user"]) == top_users
    assert list(users["cost_usd"]) == [fmt.usd_cell(spend[u]) for u in top_users]
    assert list(users["calls"]) == [f"{calls[u]:,}" for u in top_users]
    assert {urlsplit(link).path for link in users.attrs["links"]} == {"calls"}
    assert [parse_qs(urlsplit(link).query) for link in users.attrs["links"]] == [
        {**{k: [v] for k, v in WINDOW.items()}, "user": [u]} for u in top_users
    ]
    # the unpriced models' table is in a tab, asked for and drawn only when chosen
    assert not [f for f in all_tables(at) if "unpriced_calls" in f.columns]
    at.session_state["section"] = "Unpriced calls"
    at.run()
    unpriced = table(at, "unpriced_calls")
    assert list(unpriced["model"]) == ["acme-large"]
    # Spend per hour, stacked by model: each hour's bars add up to that hour's spend
    hourly: dict[datetime, float] = {}
    for row in in_window(store[1]):
        if row["cost_usd"] is not None:
            hour = row["start_time"].astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            hourly[hour] = hourly.get(hour, 0.0) + row["cost_usd"]
    drawn: dict[datetime, float] = {}
    for trace in figures(at)[0]["data"]:
        for x, y in zip(trace["x"], trace["y"], strict=True):
            drawn[datetime.fromisoformat(x)] = drawn.get(datetime.fromisoformat(x), 0.0) + (y or 0.0)
    assert sorted(drawn) == sorted(hourly) and len(drawn) == 24
    assert [drawn[h] for h in sorted(hourly)] == pytest.approx([hourly[h] for h in sorted(hourly)])
    # A breakdown by provider: the spend chart has one series per provider that has a price.
    at.segmented_control(key="cost_by").set_value("provider").run()
    figure = figures(at)[0]
    assert {trace["name"] for trace in figure["data"]} == {"openai", "anthropic", "google", "acme"}
    assert figure["layout"]["yaxis"]["title"]["text"] == "Spend (USD)"


def test_latency_page_percentiles_histogram_and_slowest(api: str, store: tuple[str, list[dict[str, Any]]]) -> None:
    at = app({**WINDOW, "service": "summarizer"}, "views/latency.py")
    want = api_get(api, "/stats", **WINDOW, service="summarizer", metrics="latency_p50,latency_p95,latency_p99")
    row = want["data"][0]
    shown = metrics(at)
    assert shown["p50 latency"] == fmt.ms(row["latency_p50"])
    assert shown["p95 latency"] == fmt.ms(row["latency_p95"])
    assert shown["p99 latency"] == fmt.ms(row["latency_p99"])
    specs = figures(at)
    percentile_chart = specs[0]
    assert [t["name"] for t in percentile_chart["data"]] == ["p50", "p90", "p95", "p99"]
    assert all(t["type"] == "scatter" for t in percentile_chart["data"])  # lines, never stacked
    histogram = next(s for s in specs if s["layout"].get("xaxis", {}).get("type") == "log")
    assert sum(histogram["data"][0]["y"]) == len(in_window(store[1], service="summarizer"))
    slowest = table(at, "duration_ms", "ttft_ms")
    want_slowest = sorted((r["duration_ms"] for r in in_window(store[1], service="summarizer")), reverse=True)[:20]
    assert list(slowest["duration_ms"]) == [f"{v:,.0f}" for v in want_slowest]  # whole milliseconds, readable
    streamed = {r["duration_ms"]: r["ttft_ms"] for r in in_window(store[1], service="summarizer")}
    assert list(slowest["ttft_ms"]) == [
        fmt.DASH if streamed[v] is None else f"{streamed[v]:,.0f}" for v in want_slowest
    ]
    # Each row opens its call's page, keeping the page's filters.
    slowest_call = max(in_window(store[1], service="summarizer"), key=lambda r: r["duration_ms"])
    link = urlsplit(slowest.attrs["links"][0])
    assert link.path == "call" and len(slowest.attrs["links"]) == len(slowest)
    assert parse_qs(link.query) == {
        **{k: [v] for k, v in WINDOW.items()},
        "service": ["summarizer"],
        "trace": [slowest_call["trace_id"].hex()],
        "span": [slowest_call["span_id"].hex()],
    }


def test_errors_page(api: str, store: tuple[str, list[dict[str, Any]]]) -> None:
    at = app(WINDOW, "views/errors.py")
    rows = in_window(store[1])
    errors = [r for r in rows if r["status"] == "error"]
    shown = metrics(at)
    assert shown["Errors"] == f"{len(errors):,}"
    assert shown["Error rate"] == fmt.pct(len(errors) / len(rows))
    assert shown["Rate limited (429) share"] == fmt.pct(sum(r["http_status"] == 429 for r in rows) / len(rows))
    recent = table(at, "error_type", "http_status")
    assert len(recent) == min(50, len(errors)) and recent["error_type"].notna().all()
    assert set(recent["error_type"]) <= {"RateLimitError", "InternalServerError"}
    by_span = {r["span_id"].hex(): r for r in errors}
    assert all(
        by_span[s]["error_message"] == m for s, m in zip(recent["span_id"], recent["error_message"], strict=True)
    )
    # Each row opens its call's page.
    opened = [parse_qs(urlsplit(link).query) for link in recent.attrs["links"]]
    assert [(q["trace"][0], q["span"][0]) for q in opened] == list(
        zip(recent["trace_id"], recent["span_id"], strict=True)
    )


def test_calls_explorer_search_status_and_pages(api: str, store: tuple[str, list[dict[str, Any]]]) -> None:
    at = app(WINDOW, "views/calls.py")
    rows = in_window(store[1])
    shown = table(at, "trace_id", "cost_usd")
    assert len(shown) == 50
    assert f"of {len(rows):,} in the" in at.caption[0].value
    assert list(shown["start_time"]) == sorted(shown["start_time"], reverse=True)

    widget(at.text_input, "Search").set_value("user-3").run()  # search: user ids contain the text
    want = [r for r in rows if "user-3" in r["user_id"]]
    assert f"of {len(want):,} in the" in at.caption[0].value
    assert url(at, "q") == ["user-3"]
    widget(at.selectbox, "Status").set_value("error").run()
    want = [r for r in want if r["status"] == "error"]
    assert f"of {len(want):,} in the" in at.caption[0].value
    assert set(table(at, "trace_id", "cost_usd")["status"]) == {"error"}

    at = app({**WINDOW, "service": "agent"}, "views/calls.py")
    first_page = list(table(at, "trace_id", "cost_usd")["span_id"])
    at.button(key="next_page").click().run()
    assert url(at, "page") == ["2"]
    second_page = list(table(at, "trace_id", "cost_usd")["span_id"])
    assert second_page and not set(first_page) & set(second_page)
    assert len(at.get("download_button")) == 2


def test_call_page_fields_cost_and_trace(api: str, store: tuple[str, list[dict[str, Any]]]) -> None:
    trace, span = AGENT_TRACE.hex(), CHILD_SPANS[1].hex()
    at = app({**WINDOW, "trace": trace, "span": span}, "views/call.py")
    row = next(r for r in store[1] if r["span_id"] == CHILD_SPANS[1])
    fields = dict(zip(*table(at, "field", "value").to_dict("list").values(), strict=True))
    assert fields["trace_id"] == trace and fields["span_id"] == span
    assert fields["parent_span_id"] == "01" * 8
    shown = metrics(at)
    assert shown["Duration"] == fmt.ms(row["duration_ms"]) and shown["Cost"] == fmt.usd(row["cost_usd"])
    waterfall = figures(at)[0]["data"][0]
    assert len(waterfall["y"]) == 3 and waterfall["y"][0].startswith("agent run")
    assert waterfall["base"][0] == 0 and waterfall["base"][2] > waterfall["base"][1] > 0  # the steps follow each other


def test_empty_store_explains_how_to_send_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc = ServerProcess(tmp_path / "empty").start()
    try:
        monkeypatch.setenv("CALLSCOPE_API_URL", proc.http_url + "/api/v1")
        at = app()
        assert "No calls recorded yet" in at.info[0].value
        assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318" in at.code[0].value
        assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in at.code[0].value
        assert not figures(at)
    finally:
        proc.stop()


def test_unreachable_server_and_wrong_key_are_messages_not_tracebacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLSCOPE_API_URL", f"http://127.0.0.1:{free_port()}/api/v1")
    at = app()
    assert "not reachable" in at.error[0].value

    proc = ServerProcess(tmp_path / "keyed", env={"CALLSCOPE_READ_KEYS": "right-read-key"}).start()
    try:
        monkeypatch.setenv("CALLSCOPE_API_URL", proc.http_url + "/api/v1")
        monkeypatch.setenv("CALLSCOPE_API_KEY", "wrong-read-key")
        at = app(page="views/cost.py")
        assert "read key was refused" in at.error[0].value
        monkeypatch.setenv("CALLSCOPE_API_KEY", "right-read-key")
        at = app()
        assert not at.error and "No calls recorded yet" in at.info[0].value
    finally:
        proc.stop()


def test_formats() -> None:
    # Whole dollars from a thousand (a KPI tile has no room for cents of thousands), cents for dollars.
    assert [fmt.usd(v) for v in (None, 0, 49_874.894, -1_234.5, 684.5337, 0.01234, 0.00691, 0.000123, -2.5)] == [
        "—",
        "$0.00",
        "$49,875",
        "-$1,234",  # Python rounds half to even
        "$684.53",
        "$0.0123",
        "$0.00691",
        "$0.000123",
        "-$2.50",
    ]
    assert [fmt.ms(v) for v in (None, 673.4, 1728.2)] == ["—", "673 ms", "1.73 s"]
    assert [fmt.compact(v) for v in (950, 12_345, 3_469_876)] == ["950", "12.3k", "3.47M"]
    assert fmt.pct(0.05421) == "5.42%" and fmt.signed_pct(-0.017) == "-1.7%" and fmt.signed_pct(None) is None
