"""Every statistic of the read API against an independent numpy computation over the same rows.

Percentile definition under test: numpy.percentile(method="linear") (Hyndman-Fan type 7). The store holds
3,000 calls over 4 days around the Europe/Paris fall-back transition (2026-10-25 03:00 CEST -> 02:00 CET).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pytest

from core import lake
from core.lake_copy import copy_store
from tests.calls_factory import make_calls, store_rows
from tests.helpers import ServerProcess
from tests.pg import lake_env

START = datetime(2026, 10, 23, tzinfo=UTC)
END = datetime(2026, 10, 27, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")
ROWS = make_calls(3000, START, END, seed=7)
# A call that starts just before a bucket boundary and ends after it: it belongs to the bucket it started in.
BOUNDARY_CALL = {
    **ROWS[0],
    "trace_id": b"\x01" * 16,
    "span_id": b"\x02" * 8,
    "start_time": datetime(2026, 10, 23, 10, 59, 59, 500000, tzinfo=UTC),
    "end_time": datetime(2026, 10, 23, 11, 0, 30, tzinfo=UTC),
    "duration_ms": 30500.0,
}
ROWS.append(BOUNDARY_CALL)


@pytest.fixture(scope="module", params=["embedded", pytest.param("lake", marks=pytest.mark.lake)])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same rows behind the read API of a server on the embedded file, and of a node on a lake (store = lake:
    the file copied in by `callscope migrate`'s copy): every known answer below must hold on both."""
    data = tmp_path_factory.mktemp("stats")
    store_rows(data, ROWS)
    env = {"CALLSCOPE_ROLLUP_LAG_SECONDS": "0"}
    if request.param == "lake":
        conninfo = request.getfixturevalue("postgres").new_database()
        lake_data = data / "lake-data"
        lake_db = lake.connect(lake.LakeConfig(conninfo, str(lake_data)))
        copy_store(lake_db, data / "callscope.duckdb")
        lake_db.close()
        data = tmp_path_factory.mktemp("stats-node")
        env.update(lake_env(conninfo, lake_data))
    proc = ServerProcess(Path(data), env=env).start(timeout=90)
    url = proc.http_url + "/api/v1"
    deadline = time.monotonic() + 30
    while httpx.get(url + "/meta", timeout=10).json()["rollups_folded_through"] is None:  # first fold at start
        assert time.monotonic() < deadline, "rollups never folded"
        time.sleep(0.1)
    yield url
    proc.stop()


def get(api: str, path: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(api + path, params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def iso(moment: datetime) -> str:
    return moment.isoformat()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q, method="linear"))


def expected(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every metric, computed directly from the rows with numpy."""
    n = len(rows)
    dur = [r["duration_ms"] for r in rows]
    priced = [r for r in rows if r["cost_usd"] is not None]
    tokens = [r["input_tokens"] + r["output_tokens"] for r in rows]
    unpriced = [r for r in rows if r["pricing"] == "unpriced"]
    ttft = [r["ttft_ms"] for r in rows if r["ttft_ms"] is not None]
    speeds = [
        r["output_tokens"] / ((r["duration_ms"] - (r["ttft_ms"] or 0)) / 1000)
        for r in rows
        if r["status"] == "ok" and r["output_tokens"] > 0 and r["duration_ms"] - (r["ttft_ms"] or 0) > 0
    ]
    errors = sum(r["status"] == "error" for r in rows)
    cost = float(np.sum([r["cost_usd"] for r in priced])) if priced else (0.0 if n == 0 else None)
    priced_tokens = sum(r["input_tokens"] + r["output_tokens"] for r in priced)
    return {
        "calls": n,
        "errors": errors,
        "error_rate": errors / n if n else None,
        "rate_limited": sum(r["http_status"] == 429 for r in rows),
        "server_errors": sum((r["http_status"] or 0) >= 500 for r in rows),
        "input_tokens": sum(r["input_tokens"] for r in rows),
        "output_tokens": sum(r["output_tokens"] for r in rows),
        "cache_read_tokens": sum(r["cache_read_tokens"] for r in rows),
        "reasoning_tokens": sum(r["reasoning_tokens"] for r in rows),
        "total_tokens": sum(tokens),
        "input_tokens_per_call": float(np.mean([r["input_tokens"] or 0 for r in rows])) if n else None,
        "output_tokens_per_call": float(np.mean([r["output_tokens"] or 0 for r in rows])) if n else None,
        "cost_usd": cost,
        "cost_per_call": cost / len(priced) if priced else None,
        "cost_per_1k_tokens": cost * 1000 / priced_tokens if priced and priced_tokens else None,
        "unpriced_calls": len(unpriced),
        "unpriced_call_share": len(unpriced) / n if n else None,
        "unpriced_token_share": (
            sum(r["input_tokens"] + r["output_tokens"] for r in unpriced) / sum(tokens) if sum(tokens) else None
        ),
        "latency_p50": pct(dur, 50) if n else None,
        "latency_p90": pct(dur, 90) if n else None,
        "latency_p95": pct(dur, 95) if n else None,
        "latency_p99": pct(dur, 99) if n else None,
        "latency_max": max(dur) if n else None,
        "ttft_p50": pct(ttft, 50) if ttft else None,
        "ttft_p95": pct(ttft, 95) if ttft else None,
        "output_tokens_per_s": float(np.median(speeds)) if speeds else None,
    }


def assert_metrics(got: dict[str, Any], want: dict[str, Any]) -> None:
    for name, value in want.items():
        if value is None:
            assert got[name] is None, name
        else:
            assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def in_window(start: datetime, end: datetime, rows: list[dict[str, Any]] = ROWS) -> list[dict[str, Any]]:
    return [r for r in rows if start <= r["start_time"] < end]


def test_totals_equal_numpy(api: str) -> None:
    body = get(api, "/stats", **{"from": iso(START), "to": iso(END)})
    assert_metrics(body["data"][0], expected(ROWS))
    assert body["meta"]["units"]["cost_usd"] == "USD" and body["meta"]["units"]["latency_p95"] == "ms"


def test_filters_and_group_by_equal_numpy(api: str) -> None:
    params = {"from": iso(START), "to": iso(END), "group_by": "model", "service": "support-bot", "environment": "prod"}
    body = get(api, "/stats", **params)
    chosen = [r for r in ROWS if r["service"] == "support-bot" and r["environment"] == "prod"]
    groups = defaultdict(list)
    for r in chosen:
        groups[r["response_model"]].append(r)
    assert {row["model"] for row in body["data"]} == set(groups)
    for row in body["data"]:
        assert_metrics(row, expected(groups[row["model"]]))


def test_unpriced_model_has_no_cost_never_zero(api: str) -> None:
    row = get(api, "/stats", **{"from": iso(START), "to": iso(END), "model": "acme-large"})["data"][0]
    assert row["calls"] > 0 and row["cost_usd"] is None and row["unpriced_call_share"] == 1.0
    assert row["cost_per_call"] is None


def test_all_errors_and_one_call_and_empty_range(api: str) -> None:
    errors = get(api, "/stats", **{"from": iso(START), "to": iso(END), "status": "error"})["data"][0]
    assert errors["error_rate"] == 1.0
    assert_metrics(errors, expected([r for r in ROWS if r["status"] == "error"]))

    one = min(ROWS, key=lambda r: r["start_time"])
    window = {"from": iso(one["start_time"]), "to": iso(one["start_time"] + timedelta(microseconds=1))}
    single = get(api, "/stats", **window)["data"][0]
    assert single["calls"] == 1
    for q in ("latency_p50", "latency_p95", "latency_p99", "latency_max"):
        assert single[q] == one["duration_ms"]

    empty = get(api, "/stats", **{"from": "2030-01-01T00:00:00Z", "to": "2030-01-02T00:00:00Z"})["data"][0]
    assert empty["calls"] == 0 and empty["cost_usd"] == 0.0
    assert empty["error_rate"] is None and empty["latency_p95"] is None


def test_hourly_buckets_across_dst_fall_back(api: str) -> None:
    start, end = datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 4, tzinfo=UTC)
    body = get(api, "/stats", **{"from": iso(start), "to": iso(end), "bucket": "hour", "tz": "Europe/Paris"})
    want: Counter[datetime] = Counter()
    for r in in_window(start, end):
        local = r["start_time"].astimezone(PARIS)  # carries fold for the repeated hour
        want[local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)] += 1
    got = {datetime.fromisoformat(row["bucket"]).astimezone(UTC): row["calls"] for row in body["data"]}
    assert len(got) == 6  # 00:00, 01:00, 02:00 CEST, 02:00 CET, 03:00, 04:00 local: six distinct hours
    assert got == {k: want.get(k, 0) for k in got}
    labels = [row["bucket"] for row in body["data"]]
    assert "2026-10-25T02:00:00+02:00" in labels and "2026-10-25T02:00:00+01:00" in labels


def test_daily_buckets_local_days_are_23_24_25_hours(api: str) -> None:
    body = get(api, "/stats", **{"from": "2026-10-24", "to": "2026-10-27", "bucket": "day", "tz": "Europe/Paris"})
    starts = [datetime.fromisoformat(row["bucket"]) for row in body["data"]]
    assert [s.date().isoformat() for s in starts] == ["2026-10-24", "2026-10-25", "2026-10-26"]
    assert starts[2] - starts[1] == timedelta(hours=25)  # wall-clock difference is 24h; the instants differ by 25h
    assert starts[2].astimezone(UTC) - starts[1].astimezone(UTC) == timedelta(hours=25)
    want = Counter(r["start_time"].astimezone(PARIS).date().isoformat() for r in ROWS)
    for start, row in zip(starts, body["data"], strict=True):
        assert row["calls"] == want[start.date().isoformat()]


def test_call_spanning_a_boundary_counts_in_its_start_bucket(api: str) -> None:
    body = get(api, "/stats", **{"from": "2026-10-23T10:00:00Z", "to": "2026-10-23T12:00:00Z", "bucket": "hour"})
    counts = {row["bucket"]: row["calls"] for row in body["data"]}
    want = Counter(r["start_time"].hour for r in in_window(START.replace(hour=10), START.replace(hour=12)))
    assert counts == {"2026-10-23T10:00:00+00:00": want[10], "2026-10-23T11:00:00+00:00": want[11]}


def test_empty_buckets_are_zero_and_series_matches_numpy(api: str) -> None:
    body = get(api, "/stats", **{"from": "2026-10-26T20:00:00Z", "to": "2026-10-27T04:00:00Z", "bucket": "hour"})
    assert len(body["data"]) == 8
    after_end = [row for row in body["data"] if row["bucket"] >= "2026-10-27"]
    assert after_end and all(r["calls"] == 0 and r["cost_usd"] == 0 and r["latency_p95"] is None for r in after_end)
    for row in body["data"]:
        start = datetime.fromisoformat(row["bucket"])
        assert_metrics(row, expected(in_window(start, start + timedelta(hours=1))))


def test_compare_with_previous_period(api: str) -> None:
    mid = START + (END - START) / 2
    body = get(api, "/stats", **{"from": iso(mid), "to": iso(END), "compare": "true", "metrics": "calls,cost_usd"})
    row = body["data"][0]
    now, before = expected(in_window(mid, END)), expected(in_window(START, mid))
    assert row["calls"] == now["calls"] and row["calls_prev"] == before["calls"]
    assert row["cost_usd_delta"] == pytest.approx(now["cost_usd"] - before["cost_usd"])
    assert row["cost_usd_delta_pct"] == pytest.approx((now["cost_usd"] - before["cost_usd"]) / before["cost_usd"])


def test_top_users_by_cost(api: str) -> None:
    body = get(
        api,
        "/stats",
        **{"from": iso(START), "to": iso(END), "group_by": "user", "metrics": "cost_usd,calls"},
        order_by="cost_usd",
        limit=5,
    )
    spend: defaultdict[str, float] = defaultdict(float)
    for r in ROWS:
        spend[r["user_id"]] += r["cost_usd"] or 0.0
    want = sorted(spend.items(), key=lambda kv: -kv[1])[:5]
    assert [row["user"] for row in body["data"]] == [u for u, _ in want]
    assert [row["cost_usd"] for row in body["data"]] == pytest.approx([c for _, c in want])


def test_top_groups_ranked_by_another_metric(api: str) -> None:
    """top_by=calls keeps the busiest groups, whatever metric is drawn (a p95 ranking would keep the slowest)."""
    params = {"from": iso(START), "to": iso(END), "group_by": "model", "metrics": "latency_p95", "bucket": "day"}
    body = get(api, "/stats", **params, top_groups=2, top_by="calls")
    busiest = [m for m, _ in Counter(r["model"] for r in ROWS).most_common(2)]
    assert {row["model"] for row in body["data"]} == {*busiest, "(other)"}
    day = [
        r
        for r in ROWS
        if r["model"] == busiest[0] and START + timedelta(days=1) <= r["start_time"] < END - timedelta(days=2)
    ]
    got = [row for row in body["data"] if row["model"] == busiest[0] and row["bucket"].startswith("2026-10-24")]
    assert got[0]["latency_p95"] == pytest.approx(pct([r["duration_ms"] for r in day], 95), rel=1e-9)
    response = httpx.get(api + "/stats", params={**params, "top_by": "calls"}, timeout=30)
    assert response.status_code == 400 and "top_groups" in response.json()["error"]
    response = httpx.get(api + "/stats", params={**params, "top_groups": 2, "top_by": "nope"}, timeout=30)
    assert response.status_code == 400 and "unknown metric" in response.json()["error"]


def test_what_changed_additive_and_ratio(api: str) -> None:
    mid = START + (END - START) / 2
    window = {"from": iso(mid), "to": iso(END)}
    body = get(api, "/changes", **window, metric="cost_usd", dims="service", limit=100)
    now, before = in_window(mid, END), in_window(START, mid)

    def cost_by(rows: list[dict[str, Any]]) -> defaultdict[str, float]:
        out: defaultdict[str, float] = defaultdict(float)
        for r in rows:
            out[r["service"]] += r["cost_usd"] or 0.0
        return out

    c_now, c_before = cost_by(now), cost_by(before)
    delta = sum(c_now.values()) - sum(c_before.values())
    assert body["delta"] == pytest.approx(delta)
    for row in body["contributors"]:
        want = c_now[row["service"]] - c_before[row["service"]]
        assert row["contribution"] == pytest.approx(want)
        assert row["share_of_change"] == pytest.approx(want / delta)
    assert sum(row["share_of_change"] for row in body["contributors"]) == pytest.approx(1.0)

    body = get(api, "/changes", **window, metric="error_rate", dims="provider", limit=100)
    rate_now = sum(r["status"] == "error" for r in now) / len(now)
    rate_before = sum(r["status"] == "error" for r in before) / len(before)
    assert body["delta"] == pytest.approx(rate_now - rate_before)
    assert sum(row["contribution"] for row in body["contributors"]) == pytest.approx(rate_now - rate_before)


def test_tag_and_metadata_filters_and_group_by_tag(api: str) -> None:
    window = {"from": iso(START), "to": iso(END), "metrics": "calls"}
    beta = get(api, "/stats", **window, tag="beta")["data"][0]["calls"]
    assert beta == sum("beta" in r["tags"] for r in ROWS)
    search = get(api, "/stats", **window, meta="team=search")["data"][0]["calls"]
    assert search == sum(dict(r["metadata"])["team"] == "search" for r in ROWS)
    by_tag = {row["tag"]: row["calls"] for row in get(api, "/stats", **window, group_by="tag")["data"]}
    assert by_tag == {"beta": beta, None: len(ROWS) - beta}
    by_team = get(api, "/stats", **window, group_by="meta.team")["data"]
    assert {row["meta.team"]: row["calls"] for row in by_team}["search"] == search


def test_calls_page_sort_and_pagination(api: str) -> None:
    window = {"from": iso(START), "to": iso(END)}
    first = get(api, "/calls", **window, order_by="duration_ms", limit=10)
    second = get(api, "/calls", **window, order_by="duration_ms", limit=10, offset=10)
    want = sorted((r["duration_ms"] for r in ROWS), reverse=True)[:20]
    assert [c["duration_ms"] for c in first["data"] + second["data"]] == want
    assert first["meta"]["total"] == len(ROWS)
    one = first["data"][0]
    call = get(api, f"/calls/{one['trace_id']}/{one['span_id']}")
    assert call["duration_ms"] == one["duration_ms"] and call["metadata"]["team"] in ("search", "growth")


def test_arrow_and_csv_match_json(api: str) -> None:
    import pyarrow as pa

    params = {"from": iso(START), "to": iso(END), "group_by": "provider", "metrics": "calls,latency_p95"}
    rows = get(api, "/stats", **params)["data"]
    arrow = httpx.get(api + "/stats", params={**params, "format": "arrow"}, timeout=30)
    table = pa.ipc.open_stream(arrow.content).read_all()
    assert table.to_pylist() == rows
    csv = httpx.get(api + "/stats", params=params, headers={"accept": "text/csv"}, timeout=30)
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0] == '"provider","calls","latency_p95"'
    assert len(csv.text.splitlines()) == len(rows) + 1


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"group_by": "colour"}, "unknown dimension"),
        ({"servce": "x"}, "unknown parameter"),
        ({"from": "2026-10-27", "to": "2026-10-23"}, "empty or reversed"),
        ({"from": "yesterday"}, "not an ISO 8601"),
        ({"http_status": "abc"}, "must be an integer"),
        ({"streaming": "maybe"}, "true or false"),
        ({"meta": "team"}, "key=value"),
        ({"metrics": "calls; DROP TABLE calls"}, "unknown metric"),
        ({"group_by": "service) UNION SELECT 1 --"}, "unknown dimension"),
        ({"tz": "Mars/Olympus"}, "unknown time zone"),
        ({"bucket": "fortnight"}, "bucket"),
        ({"bucket": "minute", "last": "30d"}, "choose a wider bucket"),
        ({"order_by": "calls", "metrics": "cost_usd"}, "order_by"),
        ({"limit": "-1"}, "limit"),
    ],
)
def test_invalid_input_is_400_with_reason(api: str, params: dict[str, str], reason: str) -> None:
    response = httpx.get(api + "/stats", params=params, timeout=30)
    assert response.status_code == 400
    assert reason in response.json()["error"]


def test_injection_in_values_is_just_a_value(api: str) -> None:
    evil = "x'; DROP TABLE calls; --"
    body = get(api, "/stats", **{"from": iso(START), "to": iso(END), "service": evil, "metrics": "calls"})
    assert body["data"][0]["calls"] == 0
    assert get(api, "/stats", **{"from": iso(START), "to": iso(END), "metrics": "calls"})["data"][0]["calls"] == len(
        ROWS
    )


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-10-23T03:17:00Z", "to": "2026-10-26T19:41:30Z"},
        {"from": "2026-10-23T03:17:00Z", "to": "2026-10-26T19:41:30Z", "group_by": "model,status", "service": "agent"},
        {"from": "2026-10-23T00:00:00", "to": "2026-10-27T00:00:00", "bucket": "day", "tz": "Europe/Paris"},
        {"from": "2026-10-24T05:30:00Z", "to": "2026-10-26T07:00:00Z", "bucket": "hour", "group_by": "provider"},
    ],
)
def test_rollups_answer_exactly_like_raw_calls(api: str, params: dict[str, str]) -> None:
    metrics = "calls,errors,rate_limited,total_tokens,cost_usd,cost_per_1k_tokens,unpriced_call_share,latency_max"
    fast = get(api, "/stats", **params, metrics=metrics)
    raw = get(api, "/stats", **params, metrics=metrics, rollups="false")
    assert fast["meta"]["source"] == "rollups+raw" and raw["meta"]["source"] == "raw"
    assert len(fast["data"]) == len(raw["data"])
    for got, want in zip(fast["data"], raw["data"], strict=True):
        assert got.keys() == want.keys()
        for key, value in want.items():
            assert got[key] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value), key


def test_percentiles_and_non_rollup_dimensions_use_raw_calls(api: str) -> None:
    window = {"from": iso(START), "to": iso(END)}
    assert get(api, "/stats", **window, metrics="latency_p95")["meta"]["source"] == "raw"
    assert get(api, "/stats", **window, metrics="calls", user="user-1")["meta"]["source"] == "raw"
    assert get(api, "/stats", **window, metrics="calls", bucket="hour", tz="Asia/Kolkata")["meta"]["source"] == "raw"


def test_values_of_a_dimension_most_calls_first(api: str) -> None:
    body = get(api, "/values/model", **{"from": iso(START), "to": iso(END)}, limit=3)
    want = Counter(r["response_model"] for r in ROWS).most_common(3)
    assert [(v["model"], v["calls"]) for v in body["values"]] == want
    assert httpx.get(api + "/values/colour", timeout=10).status_code == 400


def test_openapi_documents_every_route_and_dimension(api: str) -> None:
    spec = httpx.get(api + "/openapi.json", timeout=10).json()
    assert {"/stats", "/changes", "/calls", "/calls/{trace_id}/{span_id}", "/traces/{trace_id}", "/export"} <= set(
        spec["paths"]
    )
    documented = {p["name"] for p in spec["paths"]["/stats"]["get"]["parameters"]}
    assert {
        "from",
        "to",
        "last",
        "tz",
        "meta",
        "q",
        "service",
        "model",
        "user",
        "tag",
        "group_by",
        "bucket",
    } <= documented
