"""The call record is defined once (callscope/records.py): its columns are the store's, the export's and the
demotion's. A record goes into a real DuckDB store and comes back as the same record."""

from __future__ import annotations

from dataclasses import fields

from analytics.export import EXPORT_COLUMNS, NOT_EXPORTED
from collector.decode import Encoding, Signal, decode_request
from collector.normalize import ContentOptions, SpanNormalizer
from collector.pricing import Pricer
from core.records import CALL_COLUMNS, SPAN_COLUMNS, CallRecord, SpanRecord, records_table
from core.store import connect
from tests.helpers import FIXTURES


def test_the_column_lists_are_the_records_fields():
    assert [c.name for c in CALL_COLUMNS] == [f.name for f in fields(CallRecord)]
    assert [c.name for c in SPAN_COLUMNS] == [f.name for f in fields(SpanRecord)]


def test_every_call_column_is_exported_or_deliberately_not():
    exported = [name for name, _ in EXPORT_COLUMNS]
    columns = {c.name for c in CALL_COLUMNS}
    assert set(exported) <= columns, "the export names only stored columns"
    assert not set(exported) & NOT_EXPORTED
    assert columns - set(exported) == NOT_EXPORTED, "a new call column is exported, or named in NOT_EXPORTED"


def test_records_round_trip_through_the_store(tmp_path):
    normalizer = SpanNormalizer(Pricer(), ContentOptions(capture=True))
    records: list[CallRecord] = []
    for name in ("otel_genai", "langfuse", "langfuse_openai", "openinference_nested", "vercel_ai_legacy"):
        body = (FIXTURES / "conventions" / f"{name}.json").read_bytes()
        out = normalizer.normalize(decode_request(Signal.TRACES, Encoding.JSON, body), "default", 1_800_000_000_000)
        records += out.calls
    assert len(records) >= 8 and any(r.metadata for r in records) and any(r.tags for r in records)
    db = connect(tmp_path / "s.duckdb")
    db.register("batch", records_table(records, CALL_COLUMNS))
    names = ", ".join(c.name for c in CALL_COLUMNS)
    db.execute(f"INSERT INTO calls ({names}) SELECT {names} FROM batch")
    back = db.sql(f"SELECT {names} FROM calls").to_arrow_table().to_pylist()
    db.close()
    by_key = {(r.trace_id, r.span_id): r for r in records}
    assert len(back) == len(records)
    for row in back:
        again = CallRecord.from_row(row)
        assert again == by_key[(again.trace_id, again.span_id)]
