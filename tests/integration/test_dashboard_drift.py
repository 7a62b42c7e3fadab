"""The Drift page through streamlit.testing.v1.AppTest against a real `callscope serve` whose jobs ran over generated
traffic (the scripted release ~22 hours ago): the matrix, one cell's distributions and the anomaly list show the
read API's numbers; the comparison since a release; a cell and an anomaly open their calls."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.store import connect
from dashboard import fmt
from dashboard.filters import query_dict
from sample_data.bulk import write_calls
from tests.dashboard_tables import all_tables, table
from tests.helpers import ROOT, ServerProcess

APP = ROOT / "dashboard" / "app.py"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = Path(tmp_path_factory.mktemp("drift-page"))
    db = connect(data / "callscope.duckdb")
    write_calls(db, n_calls=80_000, days=3, end=datetime.now(UTC), seed=5, progress=False)
    db.execute("CHECKPOINT")
    db.close()
    proc = ServerProcess(data, env={"CALLSCOPE_ROLLUP_INTERVAL_SECONDS": "1"}).start()
    url = proc.http_url + "/api/v1"
    deadline = time.monotonic() + 90
    while (
        not httpx.get(url + "/drift/runs", timeout=30).json()["runs"]
        or not httpx.get(url + "/anomalies", params={"last": "7d"}, timeout=30).json()["anomalies"]
    ):
        assert time.monotonic() < deadline, proc.log()[-3000:]
        time.sleep(0.5)
    yield url
    proc.stop()


@pytest.fixture
def page(api: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("CALLSCOPE_API_URL", api)
    monkeypatch.delenv("CALLSCOPE_API_KEY", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.run()
    at.switch_page("views/drift.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def get(api: str, path: str, **params: Any) -> Any:
    response = httpx.get(api + path, params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def figures(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(json.loads(c.proto.json)["figure"]) for c in at.get("bidi_component")]


def tiles(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_matrix_and_counts_are_the_latest_run(api: str, page: AppTest) -> None:
    rows = get(api, "/drift")["data"]
    drifted = [r for r in rows if r["drifted"]]
    assert page.title[0].value == "Drift" and not page.error
    shown = tiles(page)
    assert shown["Drifted cells"] == fmt.count(len(drifted)) and drifted
    assert shown["Not enough data"] == fmt.count(sum(r["status"] == "not_enough_data" for r in rows))
    matrix = figures(page)[0]
    assert sum(len(trace["x"]) for trace in matrix["data"]) == len(rows)  # one square per verdict
    outlined = sum(w == 3 for trace in matrix["data"] for w in trace["marker"]["line"]["width"])
    assert outlined == len(drifted)
    table = next(t for t in all_tables(page) if "threshold" in t.columns)
    assert len(table) == len(drifted)


def test_a_cell_shows_both_distributions_as_the_api_gives_them(api: str, page: AppTest) -> None:
    run = get(api, "/drift/runs")["runs"][0]
    rows = get(api, "/drift")["data"]
    opened = next(r for r in rows if r["drifted"])  # the page opens on the first drifted cell
    assert page.selectbox(key="drift_metric").value == opened["metric"]
    assert tiles(page)["Verdict"] == "drifted"
    # then pick the first drifted cell of a numeric metric through the pickers, as a person would
    first = next(r for r in rows if r["drifted"] and r["kind"] == "numeric")
    cells = sorted({(r["project"], r["service"], r["model"]) for r in rows}, key=lambda c: [str(x) for x in c])
    page.selectbox(key="drift_cell").set_value(cells.index((first["project"], first["service"], first["model"])))
    page.selectbox(key="drift_metric").set_value(first["metric"]).run()
    dist = get(
        api,
        "/drift/distribution",
        service=first["service"],
        model=first["model"],
        metric=first["metric"],
        run_id=run["run_id"],
    )
    shown = tiles(page)
    assert shown["Verdict"] == "drifted" and shown["Test"] == first["test"]
    assert shown["Score"] == f"{first['score']:.4g}"
    assert shown["Calls (reference / current)"] == f"{first['n_reference']:,} / {first['n_current']:,}"
    specs = figures(page)
    histogram = next(f for f in specs if f["layout"]["title"]["text"].startswith("Histogram"))
    reference, current = histogram["data"]
    assert reference["y"] == pytest.approx(dist["distribution"]["reference"]["shares"])
    assert current["y"] == pytest.approx(dist["distribution"]["current"]["shares"])
    ecdf = next(f for f in specs if f["layout"]["title"]["text"] == "Empirical CDF")
    assert ecdf["data"][1]["x"] == pytest.approx(dist["distribution"]["current"]["ecdf"]["x"])

    # a mix: the finish reasons of a cell that has some (embeddings and some conventions report none)
    mix = next(r for r in rows if r["metric"] == "finish_reason" and r["n_current"] and r["n_reference"])
    page.selectbox(key="drift_cell").set_value(cells.index((mix["project"], mix["service"], mix["model"])))
    page.selectbox(key="drift_metric").set_value("finish_reason").run()
    categories = next(f for f in figures(page) if f["layout"]["title"]["text"] == "Share of calls per category")
    want = get(
        api,
        "/drift/distribution",
        service=mix["service"],
        model=mix["model"],
        metric="finish_reason",
        run_id=run["run_id"],
    )["distribution"]
    assert [t["x"] for t in categories["data"]] == [want["labels"], want["labels"]]
    assert [t["y"] for t in categories["data"]] == [want["reference"]["shares"], want["current"]["shares"]]

    page.selectbox(key="drift_cell").set_value(cells.index((first["project"], first["service"], first["model"])))
    page.selectbox(key="drift_metric").set_value(first["metric"]).run()
    page.button(key="drift_cell_calls").click().run()  # the calls of that cell in the current window
    assert query_dict(page.query_params).get("request_model") == [first["model"]]
    assert query_dict(page.query_params).get("service") == [first["service"]]
    want = get(
        api,
        "/calls",
        service=first["service"],
        request_model=first["model"],
        **{"from": first["current_from"], "to": first["current_to"]},
        limit=1,
    )["meta"]["total"]
    assert f"of {want:,} in the" in next(c.value for c in page.caption if " in the " in c.value)


def test_since_a_release(api: str, page: AppTest) -> None:
    page.selectbox(key="drift_compare").set_value("since support-bot 2.14.0").run()
    assert not page.exception
    want = get(api, "/drift/compare", service="support-bot", release="2.14.0")["data"]
    assert tiles(page)["Drifted cells"] == fmt.count(sum(r["drifted"] for r in want))
    assert any(r["drifted"] and r["metric"] == "input_tokens" for r in want)
    assert "before release 2.14.0" in " ".join(c.value for c in page.caption)


def test_recent_anomalies_and_their_calls(api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    anomalies = get(api, "/anomalies", last="7d")["anomalies"]
    # a person's marker on the newest anomaly's service an hour before it, so the series shows at least one line
    first = anomalies[0]
    hour = datetime.fromisoformat(first["hour"])
    service = first["service"] if first["scope"] == "service" else "support-bot"
    marker = {"service": service, "release": "hotfix-1", "released_at": (hour - timedelta(hours=1)).isoformat()}
    assert httpx.post(api + "/releases", json=marker, timeout=30).status_code == 200
    monkeypatch.setenv("CALLSCOPE_API_URL", api)
    st.cache_data.clear()  # answers are cached for 30 s across app runs of this process; the marker is new
    page = AppTest.from_file(str(APP), default_timeout=90)
    page.run()
    page.switch_page("views/drift.py").run()
    assert not page.exception
    shown = table(page, "baseline", "score")
    assert list(shown["score"]) == [f"{a['score']:.1f}" for a in anomalies]
    assert list(shown["hour"]) == [
        datetime.fromisoformat(a["hour"].replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M") for a in anomalies
    ]
    # each row opens the calls of its hour, of its service or model
    assert len(shown.attrs["links"]) == len(anomalies)
    for address, anomaly in zip(shown.attrs["links"], anomalies, strict=True):
        link, opened = anomaly["calls_filter"], urlsplit(address)
        assert opened.path == "calls"
        assert parse_qs(opened.query) == {
            "from": [link["from"]],
            "to": [link["to"]],
            **({"service": [link["service"]]} if "service" in link else {}),
            **({"request_model": [link["request_model"]]} if "request_model" in link else {}),
        }
    series = next(f for f in figures(page) if [t["name"] for t in f["data"]] == ["baseline", "value", "anomaly"])
    assert anomalies[0]["hour"].replace("Z", "") in [x.replace(" ", "T")[:19] for x in series["data"][2]["x"]]
    # release markers of the series' service (every service for a model's series) in its 4 days, as dashed lines
    markers = [
        m
        for m in get(api, "/releases")["releases"]
        if hour - timedelta(days=3) <= datetime.fromisoformat(m["released_at"]) < hour + timedelta(days=1)
        and (anomalies[0]["scope"] == "model" or m["service"] == anomalies[0]["service"])
    ]
    lines = [shape for shape in series["layout"].get("shapes", []) if shape["type"] == "line"]
    assert len(lines) == len(markers) >= 1
    assert sorted(a["text"] for a in series["layout"].get("annotations", [])) == sorted(
        f"{m['service']} {m['release']}" for m in markers
    )
    # another row's series, and its calls
    other = next(
        (
            i
            for i, a in enumerate(anomalies)
            if (a["scope"], a["service"], a["model"]) != (first["scope"], first["service"], first["model"])
        ),
        len(anomalies) - 1,
    )
    page.selectbox(key="anomaly_pick").set_value(other).run()
    series = next(f for f in figures(page) if [t["name"] for t in f["data"]] == ["baseline", "value", "anomaly"])
    picked = anomalies[other]
    name = picked["service"] if picked["scope"] == "service" else picked["model"]
    assert series["layout"]["title"]["text"].startswith(f"{picked['metric']} of {picked['scope']} {name}")
    assert picked["hour"].replace("Z", "") in [x.replace(" ", "T")[:19] for x in series["data"][2]["x"]]
    page.button(key="anomaly_calls").click().run()
    link = anomalies[other]["calls_filter"]
    params = query_dict(page.query_params)
    assert params["from"] == [link["from"]] and params["to"] == [link["to"]]
    assert params.get("request_model", []) == ([link["request_model"]] if "request_model" in link else [])
    want = get(api, "/calls", **link, limit=1)["meta"]["total"]
    assert f"of {want:,} in the" in next(c.value for c in page.caption if " in the " in c.value)
