"""One name per model (collector/model_names.py): an alias, its dated snapshots and its failed calls are one model,
named by genai-prices' model matching; rows stored before m012 get the same names, in the calls and the rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
from genai_prices import data_snapshot

from analytics import rollups
from collector.model_names import ModelNames, backfill
from collector.pricing import Pricer
from core.records import CALL_COLUMNS, arrow_schema
from core.store import connect
from tests.calls_factory import make_calls

NAMES = ModelNames(data_snapshot.get_snapshot())


def test_an_alias_its_snapshot_and_its_failed_calls_are_one_model():
    ok = NAMES.canonical("openai", "o4-mini", "o4-mini-2025-04-16")
    failed = NAMES.canonical("openai", "o4-mini", None)
    snapshot_asked = NAMES.canonical("openai", "o4-mini-2025-04-16", "o4-mini-2025-04-16")
    assert ok == failed == snapshot_asked == "o4-mini"
    # an alias served by a snapshot genai-prices files under another id stays the model that was asked for
    assert NAMES.canonical("mistral_ai", "mistral-small-latest", "mistral-small-2506") == "mistral-small-latest"
    assert NAMES.canonical("mistral_ai", "mistral-small-latest", None) == "mistral-small-latest"
    # the id is genai-prices' own: independent of the library's lookup only by going through it here
    _, info = data_snapshot.get_snapshot().find_provider_model("claude-sonnet-4-20250514", None, "anthropic", None)
    assert NAMES.canonical("anthropic", "claude-sonnet-4-20250514", None) == info.id


def test_unknown_models_keep_their_name_and_no_model_is_none():
    assert NAMES.canonical("deepseek", "deepseek-v4-preview", None) == "deepseek-v4-preview"
    assert NAMES.canonical(None, " my-finetune ", "my-finetune-v2") == "my-finetune-v2"  # answered first
    assert NAMES.canonical(None, "gpt-4o", "my-proxy-name") == "gpt-4o"  # a known request decides
    assert NAMES.canonical("openai", None, None) is None
    assert NAMES.canonical("openai", "  ", None) is None


def test_pricer_names_as_the_collector_stores():
    assert Pricer().model_name("openai", "gpt-3.5-turbo", None) == "gpt-3.5-turbo"
    assert Pricer().model_name("openai", "gpt-3.5-turbo", "gpt-3.5-turbo-0125") == "gpt-3.5-turbo"


def test_backfill_names_old_rows_in_calls_and_rollups_alike(tmp_path):
    db = connect(tmp_path / "s.duckdb")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rows = make_calls(400, now - timedelta(hours=6), now, seed=3)
    for i, row in enumerate(rows):  # as stored before m012: no model; some failed, some dated answers
        row["model"] = None
        row["request_model"], row["response_model"] = [
            ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
            ("gpt-4o-mini", None),
            ("claude-3-5-haiku-20241022", "claude-3-5-haiku-20241022"),
            ("made-up-model", None),
        ][i % 4]
        row["provider"] = "anthropic" if "claude" in row["request_model"] else "openai"
    db.register("old_calls", pa.Table.from_pylist(rows, schema=arrow_schema(CALL_COLUMNS)))
    db.execute("INSERT INTO calls SELECT * FROM old_calls")
    rollups.fold(db, lag_s=0, now=now + timedelta(hours=1))  # folded before the names existed
    assert db.execute("SELECT count(*) FROM call_rollups WHERE model IS NULL").fetchone()[0] > 0

    assert backfill(db, NAMES) == 4
    got = dict(db.execute("SELECT model, count(*) FROM calls GROUP BY ALL").fetchall())
    assert got == {"gpt-4o-mini": 200, "claude-3-5-haiku-latest": 100, "made-up-model": 100}
    rolled = dict(db.execute("SELECT model, sum(n)::BIGINT FROM call_rollups GROUP BY ALL").fetchall())
    assert rolled == got
    assert backfill(db, NAMES) == 0  # nothing left to name: a second start does nothing
    db.close()
