"""The Budgets and Price book pages, the Overview's budget tiles, the Cost page's what-if table and the call page's
price entry, through streamlit's AppTest against a real `callscope serve` over calls written into its store.
Values shown are checked against the API's own answers and, for spend, against the rows."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import fmt
from tests.calls_factory import make_calls, store_rows
from tests.helpers import ROOT, ServerProcess

APP = ROOT / "dashboard" / "app.py"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, list[dict[str, Any]]]]:
    data = Path(tmp_path_factory.mktemp("budgets_page"))
    now = datetime.now(UTC)
    rows = make_calls(1500, now - timedelta(days=40), now - timedelta(minutes=5), seed=21)
    store_rows(data, rows)
    proc = ServerProcess(data).start()
    api = proc.http_url + "/api/v1"
    httpx.post(
        api + "/budgets", json={"name": "team-agent", "amount_usd": 0.5, "filters": {"service": "agent"}}
    ).raise_for_status()
    httpx.post(
        api + "/prices/entries",
        json={"provider": "openai", "model": "gpt-4.1", "input_mtok": 1, "output_mtok": 3, "valid_from": "2020-01-01"},
    ).raise_for_status()
    yield proc, rows
    proc.stop()


@pytest.fixture
def api(server, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CALLSCOPE_API_URL", server[0].http_url + "/api/v1")
    monkeypatch.delenv("CALLSCOPE_API_KEY", raising=False)
    st.cache_data.clear()
    return server[0].http_url + "/api/v1"


def page(path: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    if path:
        at.switch_page(path).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def figures(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(json.loads(c.proto.json)["figure"]) for c in at.get("bidi_component")]


def test_budgets_page_and_overview_tiles_show_the_api_figures(api: str, server) -> None:
    budget = httpx.get(api + "/budgets/team-agent", timeout=30).json()
    month = datetime.fromisoformat(budget["period_start"])
    rows = server[1]
    spent = sum(r["cost_usd"] for r in rows if r["service"] == "agent" and r["cost_usd"] and r["start_time"] >= month)
    assert budget["spent_usd"] == pytest.approx(spent, rel=1e-12)
    at = page("views/budgets.py")
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["team-agent"] == f"{fmt.usd(spent)} of {fmt.usd(0.5)}"
    chart = next(f for f in figures(at) if "team-agent" in f["layout"]["title"]["text"])
    names = [t.get("name") for t in chart["data"]]
    assert {"spent", "forecast", "budget"} <= set(names)
    spent = next(t for t in chart["data"] if t.get("name") == "spent")
    assert spent["y"][-1] == pytest.approx(budget["spent_usd"])
    line = next(t for t in chart["data"] if t.get("name") == "budget")
    assert line["y"] == [0.5, 0.5]
    overview = page()
    assert "Budgets" in [h.value for h in overview.subheader]
    assert {m.label: m.value for m in overview.metric}["team-agent"] == tiles["team-agent"]


def test_a_zero_budget_added_on_the_page_is_refused_with_the_reason(api: str) -> None:
    at = page("views/budgets.py")
    at.text_input(key="budget_name").input("nothing")
    at.number_input(key="budget_amount").set_value(0.0)
    at.button(key="budget_add").click().run()
    assert any("more than 0" in e.value for e in at.error)
    assert [b["budget"]["name"] for b in httpx.get(api + "/budgets").json()["budgets"]] == ["team-agent"]


def test_price_book_page_lists_entries_and_the_audit_log(api: str) -> None:
    at = page("views/prices.py")
    frames = [d.value for d in at.dataframe]
    entries = next(f for f in frames if "input_mtok" in f.columns)
    assert list(entries["model"]) == ["gpt-4.1"] and list(entries["output_mtok"]) == [3.0]
    audit = next(f for f in frames if "actor" in f.columns)
    assert list(audit["actor"]) == [
        "local"
    ]  # local mode: the server acts as the machine's user and list(audit["action"]) == ["create"]


def test_cost_page_what_if_table_matches_the_api(api: str) -> None:
    at = page("views/cost.py")
    at.session_state["section"] = "What if"  # its tab
    at.run()
    table = next(d.value for d in at.dataframe if "other_model" in d.value.columns)
    chosen = sorted(set(table["other_model"]))
    params = [("last", "24h"), *[("other", m) for m in chosen]]
    rows = httpx.get(api + "/prices/whatif", params=params, timeout=30).json()["rows"]
    want = {(r["model"], r["other_model"]): r["other_cost_usd"] for r in rows}
    got = dict(zip(zip(table["model"], table["other_model"], strict=True), table["other_cost_usd"], strict=True))
    assert got.keys() == want.keys()
    for key, value in want.items():  # the page's frame shows a missing price as NaN
        assert (value is None and math.isnan(got[key])) or got[key] == pytest.approx(value), key
