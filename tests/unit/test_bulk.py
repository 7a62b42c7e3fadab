"""The bulk path: generated calls straight into a real DuckDB store, checked with SQL and numpy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from core.records import CALL_COLUMNS
from core.store import connect
from sample_data.bulk import write_calls
from sample_data.catalog import UNPRICED_MODEL

END = datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_bulk_fills_every_column_plausibly(tmp_path: Path) -> None:
    db = connect(tmp_path / "callscope.duckdb")
    assert write_calls(db, n_calls=120_000, days=10, end=END, seed=3, n_users=800, progress=False) == 120_000
    n, keys, lo, hi, received = db.execute(
        "SELECT count(*), count(DISTINCT (trace_id, span_id)), epoch_us(min(start_time)), epoch_us(max(start_time)),"
        " epoch_us(max(received_at)) FROM calls"
    ).fetchone()
    assert n == keys == 120_000
    end_us = int(END.timestamp() * 1e6)
    assert end_us - 10 * 86400e6 <= lo and hi < received <= end_us  # nothing received after `end`
    for col in CALL_COLUMNS:
        if col.name in {"input_content", "output_content", "price_entry_id"}:  # no content; no price book entry
            continue
        assert db.execute(f"SELECT count({col.name}) FROM calls").fetchone()[0] > 0, col.name

    err, rl, rl_status = db.execute(
        "SELECT avg((status = 'error')::INT), count(*) FILTER (error_type = 'RateLimitError'),"
        " count(*) FILTER (error_type = 'RateLimitError' AND http_status = 429) FROM calls"
    ).fetchone()
    assert 0.012 < err < 0.04 and rl == rl_status > 0
    assert db.execute("SELECT count(DISTINCT request_model) FROM calls").fetchone()[0] == 20
    # one name per model, as the collector names it: every call has one, failed calls included
    from collector.pricing import Pricer

    names = Pricer()
    triples = db.execute("SELECT DISTINCT provider, request_model, response_model, model FROM calls").fetchall()
    assert all(model == names.model_name(p, asked, answered) for p, asked, answered, model in triples)
    assert db.execute("SELECT count(*) FROM calls WHERE model IS NULL").fetchone()[0] == 0
    users = np.array([r[0] for r in db.execute("SELECT count(*) FROM calls GROUP BY user_id").fetchall()])
    users.sort()
    assert users[-len(users) // 100 :].sum() > 0.15 * users.sum()  # heavy tail: top 1% of users > 15% of calls
    # cost of the answering model (as the collector prices it), recomputed by genai-prices its own calculator
    from genai_prices import Usage, calc_price

    rows = db.execute(
        "SELECT coalesce(response_model, request_model), provider, input_tokens, output_tokens,"
        " cache_read_tokens, cache_write_tokens, cost_usd, epoch_us(start_time)"
        " FROM calls WHERE status = 'ok' AND pricing = 'priced' USING SAMPLE 200 ROWS"
    ).fetchall()
    providers = {
        "openai": "openai",
        "anthropic": "anthropic",
        "gcp.gemini": "google",
        "mistral_ai": "mistral",
        "x_ai": "x-ai",
    }
    for model, provider, inp, out, cr, cw, cost, start_us in rows:
        usage = Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cr or None, cache_write_tokens=cw or None)
        at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=start_us)  # off-peak prices depend on it
        expected = float(
            calc_price(usage, model, provider_id=providers.get(provider), genai_request_timestamp=at).total_price
        )
        assert abs(cost - expected) <= 1e-9 + 1e-6 * expected, (model, cost, expected)
    unpriced = db.execute(
        "SELECT count(*), count(cost_usd), min(pricing), max(pricing) FROM calls WHERE request_model = ?",
        [UNPRICED_MODEL],
    ).fetchone()
    assert unpriced[0] > 0 and unpriced[1] == 0 and unpriced[2] == unpriced[3] == "unpriced"
    streaming = db.execute("SELECT count(*), count(ttft_ms) FROM calls WHERE streaming AND status = 'ok'").fetchone()
    assert streaming[0] > 0 and streaming[0] == streaming[1]
    db.close()
