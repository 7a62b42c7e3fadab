"""/api/v1/histogram against numpy.histogram over the same rows, with the edges the API chose."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest

from analytics.histogram import edges_for
from tests.calls_factory import make_calls, store_rows
from tests.helpers import ServerProcess

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 3, tzinfo=UTC)
ROWS = make_calls(2000, START, END, seed=11)
WINDOW = {"from": START.isoformat(), "to": END.isoformat()}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("histogram")
    store_rows(data, ROWS)
    proc = ServerProcess(Path(data)).start()
    yield proc.http_url + "/api/v1"
    proc.stop()


def histogram(api: str, **params: object) -> list[dict]:
    response = httpx.get(api + "/histogram", params={**WINDOW, **params}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["data"]


@pytest.mark.parametrize(("field", "scale", "bins"), [("duration_ms", "log", 40), ("duration_ms", "linear", 25)])
def test_counts_equal_numpy(api: str, field: str, scale: str, bins: int) -> None:
    rows = histogram(api, field=field, scale=scale, bins=bins)
    values = np.array([r[field] for r in ROWS])
    edges = [rows[0]["lo"]] + [r["hi"] for r in rows]
    assert len(rows) == bins
    assert edges[0] == values.min() and edges[-1] == values.max()
    want, _ = np.histogram(values, bins=np.array(edges))
    assert [r["calls"] for r in rows] == want.tolist()
    assert sum(r["calls"] for r in rows) == len(ROWS)
    if scale == "log":  # geometric: every bin has the same ratio hi/lo
        ratios = [r["hi"] / r["lo"] for r in rows]
        assert max(ratios) == pytest.approx(min(ratios))


def test_ttft_counts_only_streamed_calls_and_filters_apply(api: str) -> None:
    rows = histogram(api, field="ttft_ms", service="summarizer")
    values = np.array([r["ttft_ms"] for r in ROWS if r["ttft_ms"] is not None and r["service"] == "summarizer"])
    edges = [rows[0]["lo"]] + [r["hi"] for r in rows]
    want, _ = np.histogram(values, bins=np.array(edges))
    assert [r["calls"] for r in rows] == want.tolist()


def test_values_on_edges_land_like_numpy() -> None:
    edges = edges_for(1.0, 1000.0, 3, "log")
    assert edges == pytest.approx([1.0, 10.0, 100.0, 1000.0])
    assert edges_for(5.0, 5.0, 2, "log") == [4.5, 5.0, 5.5]


def test_empty_window_and_bad_parameters(api: str) -> None:
    empty = httpx.get(api + "/histogram", params={"from": "2030-01-01", "to": "2030-01-02"}, timeout=30)
    assert empty.status_code == 200 and empty.json()["data"] == []
    for params, reason in (({"field": "cost_usd"}, "field"), ({"scale": "cubic"}, "scale"), ({"bins": 0}, "bins")):
        response = httpx.get(api + "/histogram", params={**WINDOW, **params}, timeout=30)
        assert response.status_code == 400 and reason in response.json()["error"]
