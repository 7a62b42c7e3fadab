"""The price book and re-pricing on a real store file: every call's cost checked against genai-prices' own
calc_price (called here, independently of collector/pricing.py) or against the entry's rates written out here."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import duckdb
import pytest
from genai_prices import Usage, calc_price

from analytics import reprice
from analytics.query import Filters, Selection
from analytics.rollups import fold
from analytics.timewin import TimeRange
from collector.price_book import PriceBookService
from core.pricebook import PriceBookError, parse_entry
from core.store import connect
from tests.calls_factory import make_calls, store_rows

JAN, FEB, MAR, APR = (datetime(2026, m, 1, tzinfo=UTC) for m in (1, 2, 3, 4))
GENAI_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "google": None}


def genai_cost(row: dict) -> float | None:
    """genai-prices' own price of a stored call (None: a model it does not know)."""
    if row["provider"] not in GENAI_PROVIDER:
        return None
    usage = Usage(
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cache_read_tokens=row["cache_read_tokens"] or None,
        cache_write_tokens=row["cache_write_tokens"] or None,
    )
    found = calc_price(
        usage,
        row["request_model"],
        provider_id=GENAI_PROVIDER[row["provider"]],
        genai_request_timestamp=row["start_time"],
    )
    return float(found.total_price)


def entry_cost(row: dict, inp: float, out: float, reasoning: float) -> float:
    """The price book's rule written out: cached input at the input rate (no cache rates given), reasoning inside
    output at its own rate."""
    r = row["reasoning_tokens"] or 0
    return (row["input_tokens"] * inp + (row["output_tokens"] - r) * out + r * reasoning) / 1e6


@pytest.fixture
def store(tmp_path):
    rows = make_calls(600, JAN, APR, seed=3)
    store_rows(tmp_path, rows)
    db = connect(tmp_path / "callscope.duckdb")
    fold(db, lag_s=0)
    yield db, rows
    db.close()


def stored(db: duckdb.DuckDBPyConnection) -> dict[bytes, tuple]:
    return {
        r[0]: r[1:]
        for r in db.execute("SELECT span_id, cost_usd, pricing, price_entry_id, price_source FROM calls").fetchall()
    }


def run(db, service, start=JAN, end=APR, filters=None):
    selection = Selection(TimeRange(start, end), Filters.parse(filters or {}))
    progress = reprice.start_run(db, selection, "test", filters or {})
    return reprice.run(db, selection, service.pricer(), progress, chunk=150)


def test_an_entry_changes_exactly_the_calls_in_its_range_and_is_audited(store):
    db, rows = store
    service = PriceBookService(db)
    service.load()
    first = run(db, service)  # the factory's made-up costs become genai-prices' own
    assert first.status == "done" and first.scanned == len(rows)
    before = stored(db)
    for row in rows:
        cost, pricing, entry_id, _ = before[row["span_id"]]
        expected = genai_cost(row)
        if expected is None:
            assert cost is None and pricing == "unpriced"
        else:
            assert math.isclose(cost, expected, rel_tol=1e-9, abs_tol=1e-15), row["request_model"]
            assert pricing == "priced" and entry_id is None

    entry = service.add(
        {
            "provider": "openai",
            "model": "gpt-4.1*",
            "input_mtok": 1.0,
            "output_mtok": 4.0,
            "reasoning_mtok": 6.0,
            "valid_from": "2026-02-01",
            "valid_to": "2026-03-01",
        },
        actor="alice",
    )
    second = run(db, service)
    after = stored(db)
    in_range = [
        r for r in rows if r["request_model"] == "gpt-4.1" and FEB <= r["start_time"] < MAR and r["status"] == "ok"
    ]
    in_range_errors = [
        r for r in rows if r["request_model"] == "gpt-4.1" and FEB <= r["start_time"] < MAR and r["status"] == "error"
    ]
    assert len(in_range) > 10
    for row in rows:
        cost, pricing, entry_id, source = after[row["span_id"]]
        if row in in_range or row in in_range_errors:
            assert entry_id == entry.entry_id and pricing == "book" and source.startswith(f"price book #{entry_id}")
            assert math.isclose(cost, entry_cost(row, 1.0, 4.0, 6.0), rel_tol=1e-12)
        else:
            assert after[row["span_id"]] == before[row["span_id"]]  # untouched, exactly
    changed = {r["span_id"] for r in in_range + in_range_errors if before[r["span_id"]][0] != after[r["span_id"]][0]}
    assert second.changed == len(in_range) + len(in_range_errors) >= len(changed)
    history = db.execute(
        "SELECT span_id, old_cost_usd, new_cost_usd FROM cost_history WHERE run_id = ?", [second.run_id]
    ).fetchall()
    assert {h[0] for h in history} == {r["span_id"] for r in in_range + in_range_errors}
    for span_id, old, new in history:
        assert old == before[span_id][0] and new == after[span_id][0]
    # the rollups answer the new costs
    (rolled,) = db.execute("SELECT sum(cost_sum) FROM call_rollups").fetchone()
    (raw,) = db.execute("SELECT sum(cost_usd) FROM calls").fetchone()
    assert math.isclose(rolled, raw, rel_tol=1e-9)
    audit = service.audit()
    assert audit[0]["actor"] == "alice" and audit[0]["action"] == "create" and audit[0]["old"] is None
    assert audit[0]["new"]["model"] == "gpt-4.1*" and audit[0]["new"]["valid_from"].startswith("2026-02-01")

    third = run(db, service)  # idempotent
    assert third.changed == 0 and stored(db) == after
    assert db.execute("SELECT count(*) FROM cost_history WHERE run_id = ?", [third.run_id]).fetchone()[0] == 0


def test_a_filter_limits_the_calls_re_priced(store):
    db, rows = store
    service = PriceBookService(db)
    service.load()
    service.add({"provider": "*", "model": "gpt-4o-mini", "input_mtok": 9, "output_mtok": 9}, actor="bob")
    result = run(db, service, filters={"service": ["agent"]})
    after = stored(db)
    for row in rows:
        if row["request_model"] == "gpt-4o-mini":
            assert (after[row["span_id"]][2] is not None) == (row["service"] == "agent")
    assert result.changed == sum(1 for r in rows if r["service"] == "agent" and r["request_model"] != "acme-large")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"provider": "openai", "model": "gpt-4.1", "input_mtok": -1, "output_mtok": 2}, "input_mtok"),
        ({"provider": "openai", "model": "gpt-4.1", "input_mtok": 1, "output_mtok": "x"}, "output_mtok"),
        ({"provider": "openai", "model": "gpt-4.1", "input_mtok": 1}, "output_mtok is required"),
        ({"provider": "openai", "model": "", "input_mtok": 1, "output_mtok": 1}, "model is required"),
        ({"provider": "openai", "model": "m", "input_mtok": 1, "output_mtok": 1, "colour": 1}, "unknown field"),
        (
            {
                "provider": "openai",
                "model": "m",
                "input_mtok": 1,
                "output_mtok": 1,
                "valid_from": "2026-03-01",
                "valid_to": "2026-02-01",
            },
            "valid_to must be after",
        ),
        (
            {"provider": "openai", "model": "gpt-4.1", "input_mtok": 1, "output_mtok": 1, "valid_from": "2026-02-15"},
            "overlaps price book #1",
        ),
    ],
)
def test_bad_entries_are_refused_and_nothing_changes(store, raw, reason):
    db, _ = store
    service = PriceBookService(db)
    service.load()
    service.add(
        {"provider": "openai", "model": "gpt-4.1", "input_mtok": 1, "output_mtok": 2, "valid_to": "2026-03-01"}, "a"
    )
    entries, audit = service.entries(), service.audit()
    with pytest.raises(PriceBookError, match=reason):
        service.add(raw, "mallory")
    assert service.entries() == entries and service.audit() == audit
    assert db.execute("SELECT count(*) FROM price_entries").fetchone()[0] == 1


def test_entries_that_touch_do_not_overlap_and_the_most_specific_wins(store):
    db, _ = store
    service = PriceBookService(db)
    service.load()
    a = service.add(
        {"provider": "openai", "model": "gpt-4.1", "input_mtok": 1, "output_mtok": 2, "valid_to": "2026-02-01"}, "a"
    )
    b = service.add(
        {"provider": "openai", "model": "gpt-4.1", "input_mtok": 3, "output_mtok": 4, "valid_from": "2026-02-01"}, "a"
    )
    g = service.add({"provider": "*", "model": "gpt-4*", "input_mtok": 5, "output_mtok": 6}, "a")
    book = service.book
    t = int(datetime(2026, 1, 31, 23, 59, tzinfo=UTC).timestamp() * 1e6)
    assert book.entry_at("openai", "gpt-4.1", t).entry_id == a.entry_id
    assert book.entry_at("openai", "gpt-4.1", t + 60_000_000).entry_id == b.entry_id
    assert book.entry_at("openai", "GPT-4o", t).entry_id == g.entry_id
    assert book.entry_at("openai", "claude", t) is None


def test_config_entries_are_synced_and_audited(tmp_path):
    db = connect(tmp_path / "s.duckdb")
    configured = (
        parse_entry({"provider": "*", "model": "my-ft", "input_mtok": 3, "output_mtok": 12}, source="config"),
    )
    service = PriceBookService(db, configured)
    service.load()
    service.load()  # a restart with the same file changes nothing
    assert [(e.model, e.source) for e in service.entries()] == [("my-ft", "config")]
    assert [(c["actor"], c["action"]) for c in service.audit()] == [("config file", "create")]
    with pytest.raises(PriceBookError, match="config file"):
        service.delete(service.entries()[0].entry_id, "x")
    db.close()
